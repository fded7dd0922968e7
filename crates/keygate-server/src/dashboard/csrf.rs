//! CSRF tokens for the dashboard's forms.
//!
//! Signed in, a form's token is HMAC-SHA256 keyed with the session token (the cookie's
//! value) over a fixed label. Only someone who can read the cookie can compute it, it changes
//! with every session (so a sign-out or password change retires it), and it needs no server
//! state, so any node of a cluster checks what another rendered.
//!
//! Before sign-in (the sign-up and sign-in forms) there is no session: a random token is set
//! in a `SameSite=Strict` cookie and repeated in the form (double submit), which stops
//! another site from signing a visitor in to an account of its choosing.
//!
//! Tokens are compared in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const BLOCK: usize = 64;
const LABEL: &[u8] = b"keygate dashboard csrf v1";

/// HMAC-SHA256 (RFC 2104). Written out rather than pulled in: it is ten lines over `sha2`,
/// and the RFC 4231 vectors below pin it.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The token every form of a signed-in page carries.
pub(crate) fn session_token(session_secret: &str) -> String {
    hex::encode(hmac_sha256(session_secret.as_bytes(), LABEL))
}

/// A fresh random token for the sign-in and sign-up forms (double submit).
pub(crate) fn new_presession_token() -> String {
    keygate_core::base62::random(32)
}

pub(crate) fn equal(a: &str, b: &str) -> bool {
    !a.is_empty() && a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        // Test case 6: a key longer than the block is hashed first.
        let mac = hmac_sha256(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First");
        assert_eq!(hex::encode(mac), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    }

    #[test]
    fn tokens_are_bound_to_the_session() {
        let a = session_token("kgs_one");
        assert_eq!(a, session_token("kgs_one"));
        assert_ne!(a, session_token("kgs_two"));
        assert!(equal(&a, &session_token("kgs_one")));
        assert!(!equal(&a, &session_token("kgs_two")));
        assert!(!equal("", ""), "an empty token never matches");
        assert_ne!(new_presession_token(), new_presession_token());
    }
}
