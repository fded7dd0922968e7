//! `[verify]`: who may call verify without a credential, and the verifier tokens (the secret
//! or `sha256:<hex>` of it). Read and checked with the other settings; `auth::verifier` turns
//! them into the per-request check (docs/api.md, "Verify callers").

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// The form of a token given as its digest.
pub(crate) const DIGEST_PREFIX: &str = "sha256:";
/// A token given as the secret must be at least this long (a generated one is 42).
const MIN_TOKEN_CHARS: usize = 32;

/// `[verify]`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerifySettings {
    /// Client addresses (CIDR) that may call verify without a credential.
    pub anonymous_from: Vec<String>,
    /// Verifier tokens: the secret or `sha256:<64 hex>` of it. A list, or (for the environment,
    /// `KEYGATE_VERIFY__TOKENS`) one string of comma-separated tokens.
    #[serde(serialize_with = "expose_for_layering", deserialize_with = "one_or_many")]
    pub tokens: Vec<SecretString>,
}

impl Default for VerifySettings {
    fn default() -> Self {
        VerifySettings { anonymous_from: vec!["127.0.0.1/32".into(), "::1/128".into()], tokens: Vec::new() }
    }
}

impl fmt::Debug for VerifySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifySettings")
            .field("anonymous_from", &self.anonymous_from)
            .field("tokens", &format_args!("[{} redacted]", self.tokens.len()))
            .finish()
    }
}

fn expose_for_layering<S: Serializer>(tokens: &[SecretString], ser: S) -> Result<S::Ok, S::Error> {
    // Only used to seed figment with defaults; never reaches logs (Debug is redacted).
    ser.collect_seq(tokens.iter().map(|t| t.expose_secret()))
}

fn one_or_many<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<SecretString>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let list = match OneOrMany::deserialize(de)? {
        OneOrMany::One(s) => s.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect(),
        OneOrMany::Many(v) => v,
    };
    Ok(list.into_iter().map(SecretString::from).collect())
}

impl VerifySettings {
    /// The message names the entry by position, never by content.
    pub fn validate(&self) -> Result<(), String> {
        for a in &self.anonymous_from {
            if keygate_core::net::parse_cidr(a).is_none() {
                return Err(format!("verify.anonymous_from: `{a}` is not an IP address or CIDR"));
            }
        }
        for (i, t) in self.tokens.iter().enumerate() {
            if token_digest(t.expose_secret()).is_none() {
                return Err(format!(
                    "verify.tokens[{i}]: a token must be at least {MIN_TOKEN_CHARS} characters without white space, \
                     or {DIGEST_PREFIX}<64 hex digits> (`keygate verifier-token` makes one)"
                ));
            }
        }
        Ok(())
    }
}

/// The digest a configured token stands for, or `None` when it is not acceptable.
pub(crate) fn token_digest(configured: &str) -> Option<[u8; 32]> {
    if let Some(hex_digest) = configured.strip_prefix(DIGEST_PREFIX) {
        let mut out = [0u8; 32];
        return hex::decode_to_slice(hex_digest.trim(), &mut out).ok().map(|()| out);
    }
    let ok = configured.len() >= MIN_TOKEN_CHARS && !configured.chars().any(char::is_whitespace);
    ok.then(|| Sha256::digest(configured.as_bytes()).into())
}
