//! The credential format of docs/api.md §2 Credentials on the wire, shared by API keys and session
//! tokens: `<prefix><32 base62 random chars><6 base62 chars of CRC32(prefix + random)>`.
//!
//! Parsing is the first gate of the hot path: anything that is not one of our credentials —
//! wrong prefix, length, alphabet or checksum — is refused here, before any storage access.

use std::fmt;

use sha2::{Digest as _, Sha256};
use thiserror::Error;

use crate::base62;

pub const RANDOM_LEN: usize = 32;
pub const CHECKSUM_LEN: usize = 6;
/// Characters after the prefix: random part plus checksum.
pub const BODY_LEN: usize = RANDOM_LEN + CHECKSUM_LEN;
/// Random characters shown in a `key_part` handle.
pub const KEY_PART_RANDOM_LEN: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    UserKey,
    OrgKey,
    Session,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::UserKey => "user_key",
            CredentialKind::OrgKey => "org_key",
            CredentialKind::Session => "session",
        }
    }
}

/// A full credential as handed out once. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// SHA-256 of the full credential: the only form in which it is stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub fn of(credential: &str) -> Self {
        Digest(Sha256::digest(credential.as_bytes()).into())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Digest(out))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A digest is not a secret, but a short form keeps logs readable.
        write!(f, "Digest({}…)", &self.to_hex()[..12])
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FormatError {
    #[error("prefixes must be non-empty, at most 32 characters of [A-Za-z0-9_-]")]
    BadPrefix,
    #[error("the user key, org key and session prefixes must be distinct")]
    PrefixesNotDistinct,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("no known credential prefix")]
    UnknownPrefix,
    #[error("wrong length")]
    WrongLength,
    #[error("characters outside base62")]
    BadCharacters,
    #[error("checksum mismatch")]
    BadChecksum,
}

/// A freshly generated credential: the secret to show once, and what gets stored.
#[derive(Debug, Clone)]
pub struct Generated {
    pub secret: Secret,
    pub digest: Digest,
    pub key_part: String,
}

/// A credential that passed every offline check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub kind: CredentialKind,
    pub digest: Digest,
}

/// A credential of this format under any prefix, for secrets that are not API keys but should
/// look and be as strong as one (verifier tokens, `kgv_…`).
pub fn generate_with_prefix(prefix: &str) -> Generated {
    let random = base62::random(RANDOM_LEN);
    let checksum = checksum(prefix, &random);
    let secret = format!("{prefix}{random}{checksum}");
    Generated {
        digest: Digest::of(&secret),
        key_part: format!("{prefix}{}", &random[..KEY_PART_RANDOM_LEN]),
        secret: Secret(secret),
    }
}

/// The deployment's prefixes, checked once at start.
#[derive(Debug, Clone)]
pub struct KeyFormat {
    /// (prefix, kind), longest prefix first so that `kg_org_` wins over `kg_`.
    by_length: Vec<(String, CredentialKind)>,
}

impl KeyFormat {
    pub fn new(user_prefix: &str, org_prefix: &str, session_prefix: &str) -> Result<Self, FormatError> {
        let mut by_length = vec![
            (user_prefix.to_owned(), CredentialKind::UserKey),
            (org_prefix.to_owned(), CredentialKind::OrgKey),
            (session_prefix.to_owned(), CredentialKind::Session),
        ];
        for (p, _) in &by_length {
            let ok = !p.is_empty()
                && p.len() <= 32
                && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !ok {
                return Err(FormatError::BadPrefix);
            }
        }
        if by_length[0].0 == by_length[1].0 || by_length[0].0 == by_length[2].0 || by_length[1].0 == by_length[2].0 {
            return Err(FormatError::PrefixesNotDistinct);
        }
        by_length.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        Ok(KeyFormat { by_length })
    }

    pub fn prefix(&self, kind: CredentialKind) -> &str {
        self.by_length.iter().find(|(_, k)| *k == kind).map(|(p, _)| p.as_str()).unwrap_or_default()
    }

    pub fn generate(&self, kind: CredentialKind) -> Generated {
        generate_with_prefix(self.prefix(kind))
    }

    /// Offline checks and the digest to look the credential up by. Never touches storage.
    pub fn parse(&self, credential: &str) -> Result<Parsed, ParseError> {
        let kind = self.check(credential)?;
        Ok(Parsed { kind, digest: Digest::of(credential) })
    }

    /// Offline checks only: prefix, length, alphabet, checksum; the kind when all pass. No
    /// digest: callers that only route by kind should not hash the credential twice.
    pub fn check(&self, credential: &str) -> Result<CredentialKind, ParseError> {
        let (prefix, kind) =
            self.by_length.iter().find(|(p, _)| credential.starts_with(p.as_str())).ok_or(ParseError::UnknownPrefix)?;
        let body = &credential[prefix.len()..];
        if body.len() != BODY_LEN {
            return Err(ParseError::WrongLength);
        }
        if !base62::is_base62(body) {
            return Err(ParseError::BadCharacters);
        }
        let (random, sum) = body.split_at(RANDOM_LEN);
        if !checksum_matches(prefix, random, sum) {
            return Err(ParseError::BadChecksum);
        }
        Ok(*kind)
    }

    /// Whether `s` has the shape of a `key_part` handle (prefix of an API key class + 8 chars).
    pub fn is_key_part(&self, s: &str) -> bool {
        self.by_length.iter().any(|(p, kind)| {
            *kind != CredentialKind::Session
                && s.strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.len() == KEY_PART_RANDOM_LEN && base62::is_base62(rest))
        })
    }

    /// A regular expression that matches exactly the API keys and session tokens of this
    /// deployment, for secret scanners (published in docs/api.md).
    pub fn scanner_regex(&self) -> String {
        let mut prefixes: Vec<String> = self.by_length.iter().map(|(p, _)| regex_escape(p)).collect();
        prefixes.sort();
        format!(r"\b(?:{})[0-9A-Za-z]{{{BODY_LEN}}}\b", prefixes.join("|"))
    }
}

fn checksum(prefix: &str, random: &str) -> String {
    let mut h = crc32fast::Hasher::new();
    h.update(prefix.as_bytes());
    h.update(random.as_bytes());
    base62::encode_fixed(u64::from(h.finalize()), CHECKSUM_LEN)
}

/// `checksum(prefix, random) == sum` without building the expected checksum as a `String`:
/// this runs for every presented credential, including floods of made-up ones (BENCHMARKS.md).
fn checksum_matches(prefix: &str, random: &str, sum: &str) -> bool {
    let mut h = crc32fast::Hasher::new();
    h.update(prefix.as_bytes());
    h.update(random.as_bytes());
    let mut n = u64::from(h.finalize());
    let sum = sum.as_bytes();
    if sum.len() != CHECKSUM_LEN {
        return false;
    }
    // Same digits as `base62::encode_fixed(n, CHECKSUM_LEN)`, compared from the last one.
    for &expected in sum.iter().rev() {
        if expected != base62::ALPHABET[(n % 62) as usize] {
            return false;
        }
        n /= 62;
    }
    true
}

fn regex_escape(s: &str) -> String {
    s.chars().flat_map(|c| if c == '-' { vec!['\\', c] } else { vec![c] }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn default_format() -> KeyFormat {
        KeyFormat::new("kg_", "kg_org_", "kgs_").expect("valid prefixes")
    }

    #[test]
    fn generated_credentials_have_the_contract_shape() {
        let f = default_format();
        let g = f.generate(CredentialKind::OrgKey);
        let s = g.secret.expose();
        assert!(s.starts_with("kg_org_"));
        assert_eq!(s.len(), "kg_org_".len() + BODY_LEN);
        assert_eq!(g.key_part.len(), "kg_org_".len() + 8);
        assert!(s.starts_with(&g.key_part));
        assert_eq!(g.digest, Digest::of(s));
    }

    #[test]
    fn check_decides_like_parse_without_the_digest() {
        let f = default_format();
        let g = f.generate(CredentialKind::UserKey);
        let s = g.secret.expose();
        assert_eq!(f.check(s), Ok(CredentialKind::UserKey));
        let mut tampered = s.to_owned();
        let last = if tampered.ends_with('A') { "B" } else { "A" };
        tampered.replace_range(tampered.len() - 1.., last);
        assert_eq!(f.check(&tampered), f.parse(&tampered).map(|p| p.kind));
        assert!(f.check(&tampered).is_err());
        assert_eq!(f.check("kg_short"), Err(ParseError::WrongLength));
    }

    #[test]
    fn longest_prefix_wins() {
        let f = default_format();
        let org = f.generate(CredentialKind::OrgKey);
        assert_eq!(f.parse(org.secret.expose()).map(|p| p.kind), Ok(CredentialKind::OrgKey));
        let user = f.generate(CredentialKind::UserKey);
        assert_eq!(f.parse(user.secret.expose()).map(|p| p.kind), Ok(CredentialKind::UserKey));
    }

    #[test]
    fn branded_prefixes_work() {
        let f = KeyFormat::new("sk_live_", "sk_live_org_", "sess_").expect("valid");
        let k = f.generate(CredentialKind::OrgKey);
        assert_eq!(f.parse(k.secret.expose()).map(|p| p.kind), Ok(CredentialKind::OrgKey));
    }

    #[test]
    fn prefixes_must_be_distinct_and_clean() {
        assert_eq!(KeyFormat::new("kg_", "kg_", "kgs_").err(), Some(FormatError::PrefixesNotDistinct));
        assert_eq!(KeyFormat::new("", "kg_org_", "kgs_").err(), Some(FormatError::BadPrefix));
        assert_eq!(KeyFormat::new("k g", "kg_org_", "kgs_").err(), Some(FormatError::BadPrefix));
    }

    #[test]
    fn garbage_is_rejected_offline() {
        let f = default_format();
        assert_eq!(f.parse("hello"), Err(ParseError::UnknownPrefix));
        assert_eq!(f.parse("kg_short"), Err(ParseError::WrongLength));
        assert_eq!(f.parse(&format!("kg_{}", "!".repeat(BODY_LEN))), Err(ParseError::BadCharacters));
        assert_eq!(f.parse(&format!("kg_{}", "0".repeat(BODY_LEN))), Err(ParseError::BadChecksum));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let g = default_format().generate(CredentialKind::UserKey);
        assert!(!format!("{g:?}").contains(g.secret.expose()));
    }

    #[test]
    fn key_part_handles_are_recognised() {
        let f = default_format();
        let g = f.generate(CredentialKind::UserKey);
        assert!(f.is_key_part(&g.key_part));
        assert!(!f.is_key_part("kg_abc"));
        assert!(!f.is_key_part("key_123"));
    }

    proptest! {
        #[test]
        fn every_generated_key_parses_back(kind in prop_oneof![
            Just(CredentialKind::UserKey), Just(CredentialKind::OrgKey), Just(CredentialKind::Session)
        ]) {
            let f = default_format();
            let g = f.generate(kind);
            let parsed = f.parse(g.secret.expose()).expect("parses");
            prop_assert_eq!(parsed.kind, kind);
            prop_assert_eq!(parsed.digest, g.digest);
        }

        #[test]
        fn any_one_character_change_is_rejected(pos in 0usize..BODY_LEN, replacement in 0usize..62) {
            let f = default_format();
            let g = f.generate(CredentialKind::UserKey);
            let mut bytes = g.secret.expose().as_bytes().to_vec();
            let i = "kg_".len() + pos;
            let new = base62::ALPHABET[replacement];
            prop_assume!(bytes[i] != new);
            bytes[i] = new;
            let changed = String::from_utf8(bytes).expect("ascii");
            prop_assert_eq!(f.parse(&changed), Err(ParseError::BadChecksum));
        }

        #[test]
        fn the_published_regex_matches_every_key(kind in prop_oneof![
            Just(CredentialKind::UserKey), Just(CredentialKind::OrgKey), Just(CredentialKind::Session)
        ]) {
            let f = default_format();
            let re = regex::Regex::new(&f.scanner_regex()).expect("regex compiles");
            let g = f.generate(kind);
            let text = format!("export API_KEY={} # ci", g.secret.expose());
            let found = re.find(&text).map(|m| m.as_str().to_owned());
            prop_assert_eq!(found.as_deref(), Some(g.secret.expose()));
        }
    }

    #[test]
    fn the_published_regex_ignores_other_text() {
        let re = regex::Regex::new(&default_format().scanner_regex()).expect("regex compiles");
        assert!(!re.is_match("kg_tooshort and key_0123456789abcdefghij"));
    }
}
