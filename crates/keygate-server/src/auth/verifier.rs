//! Who may call verify (docs/api.md, "Verify callers"): a company's backend asking about a
//! customer's key, nobody else.
//!
//! - Callers whose client address is in `[verify] anonymous_from` (default loopback: a sidecar
//!   on the same host, the demo) need no credential.
//! - Any other caller sends `Authorization: Bearer <verifier token>` (one of `[verify] tokens`)
//!   or the operator's `admin_token`: none is 401 `missing_credentials`, a wrong one 401
//!   `invalid_credentials`. A credential sent from an anonymous address is checked too.
//! - Only an authenticated caller's `ip` is believed (see `routes::verify`).
//!
//! Tokens are configured as the secret or as `sha256:<hex>` of it; only the digests are kept,
//! and a presented token is hashed once and compared with every digest in constant time.

use std::fmt;
use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use crate::config::verify::VerifySettings;
use crate::config::verify::{DIGEST_PREFIX, token_digest};
use crate::error::ApiError;

/// The prefix `keygate verifier-token` gives the tokens it makes, so a secret scanner (and a
/// person) can tell one from an API key.
pub const TOKEN_PREFIX: &str = "kgv_";
/// A fresh verifier token and the `sha256:` form of it to paste into `[verify] tokens`:
/// `kgv_` and the format of API keys (32 random base62 characters and a CRC32 checksum).
pub fn new_token() -> (keygate_core::Secret, String) {
    let g = keygate_core::credential::generate_with_prefix(TOKEN_PREFIX);
    let digest = format!("{DIGEST_PREFIX}{}", g.digest.to_hex());
    (g.secret, digest)
}

/// A verify caller that passed: its `ip` is believed only when it authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyCaller {
    /// From `anonymous_from`, without a credential.
    Anonymous,
    /// With a verifier token or the operator token.
    Verifier,
}

/// `[verify]` and the operator token, ready for requests.
pub struct VerifyCallers {
    anonymous_from: Vec<IpNet>,
    /// SHA-256 of every accepted token: the verifier tokens, then the operator's.
    digests: Vec<[u8; 32]>,
}

impl fmt::Debug for VerifyCallers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyCallers")
            .field("anonymous_from", &self.anonymous_from)
            .field("digests", &format_args!("[{} redacted]", self.digests.len()))
            .finish()
    }
}

impl VerifyCallers {
    /// From validated settings (entries that do not parse are skipped: `validate` refused them).
    pub fn new(settings: &VerifySettings, admin_token: &SecretString) -> Self {
        let mut digests: Vec<[u8; 32]> =
            settings.tokens.iter().filter_map(|t| token_digest(t.expose_secret())).collect();
        let admin = admin_token.expose_secret();
        if !admin.is_empty() {
            digests.push(Sha256::digest(admin.as_bytes()).into());
        }
        let anonymous_from = settings.anonymous_from.iter().filter_map(|a| keygate_core::net::parse_cidr(a)).collect();
        VerifyCallers { anonymous_from, digests }
    }

    /// Who is calling, from the `Authorization` header and the caller's client address; the
    /// contract's 401 otherwise. A credential that is sent is checked even from an anonymous
    /// address (a wrong token is a misconfiguration to report, not to ignore).
    pub fn identify(&self, headers: &HeaderMap, client: IpAddr) -> Result<VerifyCaller, ApiError> {
        // Only the Authorization header: the key being verified travels in the body, and an
        // X-API-Key header is not a verifier token.
        let Some(authorization) = headers.get(axum::http::header::AUTHORIZATION) else {
            if keygate_core::net::allowed(&self.anonymous_from, client) {
                return Ok(VerifyCaller::Anonymous);
            }
            tracing::debug!(%client, "verify without a verifier token from outside verify.anonymous_from");
            let mut e = ApiError::missing_credentials();
            e.message = "Verify needs a verifier token: Authorization: Bearer <token>.".into();
            return Err(e);
        };
        let sent = authorization.to_str().ok().and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            let token = token.trim();
            (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
        });
        let Some(sent) = sent else { return Err(ApiError::invalid_credentials()) };
        if self.accepts(sent) {
            Ok(VerifyCaller::Verifier)
        } else {
            tracing::debug!(%client, "verify with a wrong verifier token");
            Err(ApiError::invalid_credentials())
        }
    }

    /// Whether `sent` is one of the tokens: one hash, then every digest compared in constant
    /// time (no early exit, so timing tells neither which token nor how much of it matched).
    fn accepts(&self, sent: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(sent.as_bytes()).into();
        let mut found = subtle::Choice::from(0);
        for d in &self.digests {
            found |= d.ct_eq(&digest);
        }
        bool::from(found)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    const TOKEN: &str = "kgv_0123456789abcdefghijABCDEFGHIJ01234567";

    fn callers(tokens: &[&str], admin: &str) -> VerifyCallers {
        let settings = VerifySettings {
            tokens: tokens.iter().map(|t| SecretString::from((*t).to_owned())).collect(),
            ..VerifySettings::default()
        };
        assert!(settings.validate().is_ok());
        VerifyCallers::new(&settings, &SecretString::from(admin.to_owned()))
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).expect("ascii"));
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn who_may_call_verify() {
        let sha = format!("sha256:{}", hex::encode(Sha256::digest(b"another-verifier-token-of-32-chars!")));
        let c = callers(&[TOKEN, &sha], "operator-token");
        let remote = ip("203.0.113.5");
        let none = HeaderMap::new();
        let code = |r: Result<VerifyCaller, ApiError>| r.map_err(|e| e.code);
        // (headers, client address, decision)
        let table: Vec<(HeaderMap, IpAddr, Result<VerifyCaller, &str>)> = vec![
            (none.clone(), ip("127.0.0.1"), Ok(VerifyCaller::Anonymous)),
            (none.clone(), ip("::1"), Ok(VerifyCaller::Anonymous)),
            (none.clone(), ip("::ffff:127.0.0.1"), Ok(VerifyCaller::Anonymous)),
            (none.clone(), remote, Err("missing_credentials")),
            (bearer(TOKEN), remote, Ok(VerifyCaller::Verifier)),
            (bearer("another-verifier-token-of-32-chars!"), remote, Ok(VerifyCaller::Verifier)),
            (bearer("operator-token"), remote, Ok(VerifyCaller::Verifier)),
            (bearer(TOKEN), ip("127.0.0.1"), Ok(VerifyCaller::Verifier)),
            (bearer("kgv_wrong"), remote, Err("invalid_credentials")),
            (bearer("kgv_wrong"), ip("127.0.0.1"), Err("invalid_credentials")),
            (bearer(&sha), remote, Err("invalid_credentials")),
        ];
        for (i, (headers, client, want)) in table.into_iter().enumerate() {
            assert_eq!(code(c.identify(&headers, client)), want, "row {i}");
        }
        let mut basic = HeaderMap::new();
        basic.insert(axum::http::header::AUTHORIZATION, HeaderValue::from_static("Basic dXNlcjpwdw=="));
        assert_eq!(code(c.identify(&basic, remote)), Err("invalid_credentials"));
        let mut api_key_only = HeaderMap::new();
        api_key_only.insert("x-api-key", HeaderValue::from_static(TOKEN));
        assert_eq!(code(c.identify(&api_key_only, remote)), Err("missing_credentials"), "X-API-Key is not a token");
    }

    #[test]
    fn no_tokens_and_no_operator_token_admit_no_one_remote() {
        let c = callers(&[], "");
        assert_eq!(c.identify(&bearer(""), ip("203.0.113.5")).map_err(|e| e.code), Err("invalid_credentials"));
        let c = VerifyCallers::new(
            &VerifySettings { anonymous_from: Vec::new(), tokens: Vec::new() },
            &SecretString::from(String::new()),
        );
        assert_eq!(c.identify(&HeaderMap::new(), ip("127.0.0.1")).map_err(|e| e.code), Err("missing_credentials"));
    }

    #[test]
    fn weak_or_malformed_tokens_are_refused_without_showing_them() {
        for bad in ["short-secret", "sha256:abc", "sha256:zz", "a token with spaces that is long enough!!"] {
            let s = VerifySettings { tokens: vec![SecretString::from(bad.to_owned())], ..VerifySettings::default() };
            let err = s.validate().expect_err(bad);
            assert!(err.contains("verify.tokens[0]") && !err.contains(bad), "{err}");
        }
        let s = VerifySettings { anonymous_from: vec!["10.0.0.0/99".into()], ..VerifySettings::default() };
        assert!(s.validate().is_err());
    }

    #[test]
    fn debug_and_new_tokens_keep_the_secret() {
        let (secret, digest) = new_token();
        let token = secret.expose();
        assert!(token.starts_with(TOKEN_PREFIX) && token.len() == TOKEN_PREFIX.len() + 38, "{token}");
        assert_eq!(digest, format!("sha256:{}", hex::encode(Sha256::digest(token.as_bytes()))));
        let s = VerifySettings { tokens: vec![SecretString::from(token.to_owned())], ..VerifySettings::default() };
        let c = VerifyCallers::new(&s, &SecretString::from(String::new()));
        for shown in [format!("{s:?}"), format!("{c:?}")] {
            assert!(!shown.contains(token) && !shown.contains(&digest[7..]), "{shown}");
        }
    }

    #[test]
    fn the_environment_form_is_a_comma_separated_string() {
        let s: VerifySettings = toml::from_str("tokens = \"sha256:00, kgv_x\"").expect("parses");
        let tokens: Vec<&str> = s.tokens.iter().map(|t| t.expose_secret()).collect();
        assert_eq!(tokens, ["sha256:00", "kgv_x"]);
    }
}
