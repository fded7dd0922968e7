//! Opaque, type-prefixed identifiers (`usr_…`, `acc_…`, `key_…`, `rol_…`, `ses_…`, `aud_…`).
//!
//! Shape: `<prefix>_<8 base62 chars of Unix milliseconds><12 random base62 chars>`. The time part
//! makes ids sort by creation (newest-first lists page by `id < cursor`), the random part keeps
//! them unguessable.

use crate::base62;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    User,
    Account,
    Key,
    Role,
    Session,
    Audit,
}

impl IdKind {
    pub fn prefix(self) -> &'static str {
        match self {
            IdKind::User => "usr_",
            IdKind::Account => "acc_",
            IdKind::Key => "key_",
            IdKind::Role => "rol_",
            IdKind::Session => "ses_",
            IdKind::Audit => "aud_",
        }
    }
}

pub fn new_id(kind: IdKind) -> String {
    let millis = chrono::Utc::now().timestamp_millis().max(0) as u64;
    format!("{}{}{}", kind.prefix(), base62::encode_fixed(millis, 8), base62::random(12))
}

/// Whether `s` has the shape of an id of `kind`. Used to turn a malformed path segment into a
/// clean 404 without a storage round trip.
pub fn looks_like(kind: IdKind, s: &str) -> bool {
    s.strip_prefix(kind.prefix()).is_some_and(|rest| rest.len() == 20 && base62::is_base62(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_shape() {
        let id = new_id(IdKind::Key);
        assert!(id.starts_with("key_"));
        assert!(looks_like(IdKind::Key, &id));
        assert!(!looks_like(IdKind::User, &id));
        assert!(!looks_like(IdKind::Key, "key_../../etc"));
    }

    #[test]
    fn later_ids_sort_after_earlier_ones() {
        let a = new_id(IdKind::Account);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id(IdKind::Account);
        assert!(a < b);
    }
}
