//! Passwords: argon2id (m = 19 MiB, t = 2, p = 1, PHC strings), always off the async threads
//! and behind a semaphore sized to the cores, so a flood of sign-ins queues (and past a
//! bound, is refused with 503) instead of starving every other request.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::error::ApiError;

pub(crate) struct Passwords {
    permits: Arc<Semaphore>,
    /// A real hash of a random password: verified when the email is unknown, so both answers
    /// take the same time.
    dummy_hash: String,
}

fn argon() -> Result<Argon2<'static>, ApiError> {
    let params = Params::new(19 * 1024, 2, 1, None).map_err(ApiError::internal)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_now(password: &str) -> Result<String, ApiError> {
    let mut salt = [0u8; 16];
    keygate_core::base62::fill_random(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(ApiError::internal)?;
    Ok(argon()?.hash_password(password.as_bytes(), &salt).map_err(ApiError::internal)?.to_string())
}

fn verify_now(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    argon().is_ok_and(|a| a.verify_password(password.as_bytes(), &parsed).is_ok())
}

impl Passwords {
    pub(crate) fn new() -> Result<Self, ApiError> {
        let dummy_hash = hash_now(&keygate_core::base62::random(24))?;
        Ok(Passwords { permits: Arc::new(Semaphore::new(num_cpus::get().max(1))), dummy_hash })
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
        let permit = tokio::time::timeout(Duration::from_secs(10), Arc::clone(&self.permits).acquire_owned())
            .await
            .map_err(|_| ApiError::unavailable())?
            .map_err(ApiError::internal)?;
        let out = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        })
        .await
        .map_err(ApiError::internal)?;
        Ok(out)
    }

    pub(crate) async fn hash(&self, password: &SecretString) -> Result<String, ApiError> {
        let pw = password.expose_secret().to_owned();
        self.run(move || hash_now(&pw)).await?
    }

    /// Verifies against `phc`, or against the dummy hash when there is no user (answering false).
    pub(crate) async fn verify(&self, password: &SecretString, phc: Option<&str>) -> Result<bool, ApiError> {
        let pw = password.expose_secret().to_owned();
        let (target, real) = match phc {
            Some(h) => (h.to_owned(), true),
            None => (self.dummy_hash.clone(), false),
        };
        let ok = self.run(move || verify_now(&pw, &target)).await?;
        Ok(ok && real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_phc_and_verify() {
        let p = Passwords::new().expect("init");
        let pw = SecretString::from("correct horse battery staple".to_owned());
        let h = p.hash(&pw).await.expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(p.verify(&pw, Some(&h)).await.expect("verify"));
        let wrong = SecretString::from("wrong".to_owned());
        assert!(!p.verify(&wrong, Some(&h)).await.expect("verify"));
        assert!(!p.verify(&pw, None).await.expect("verify"));
    }
}
