//! The audit log's hash chain: `hash = SHA-256(prev_hash || canonical(entry))`, per account.
//! Canonical form is JSON with sorted object keys and no whitespace, so any backend that
//! stores the same fields recomputes the same hash.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The hash that starts every account's chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The fields that are chained. `at` is milliseconds since the Unix epoch.
#[derive(Debug, Clone, Serialize)]
pub struct ChainedFields<'a> {
    pub id: &'a str,
    pub seq: i64,
    pub at: i64,
    pub account_id: &'a str,
    pub actor: &'a serde_json::Value,
    pub action: &'a str,
    pub target: &'a serde_json::Value,
    pub ip: Option<&'a str>,
    pub details: &'a serde_json::Value,
}

pub fn entry_hash(prev_hash: &str, fields: &ChainedFields<'_>) -> String {
    // serde_json's Value keeps objects in a BTreeMap (no preserve_order), so going through
    // Value sorts every key, nested ones included.
    let canonical = serde_json::to_value(fields).map(|v| v.to_string()).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical.as_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hash_depends_on_every_field_and_on_the_previous_hash() {
        let actor = json!({"type": "user", "user_id": "usr_1"});
        let target = json!({"type": "key", "id": "key_1"});
        let details = json!({"b": 1, "a": 2});
        let f = ChainedFields {
            id: "aud_1",
            seq: 1,
            at: 5,
            account_id: "acc_1",
            actor: &actor,
            action: "key.created",
            target: &target,
            ip: None,
            details: &details,
        };
        let h1 = entry_hash(GENESIS, &f);
        assert_eq!(h1, entry_hash(GENESIS, &f.clone()));
        assert_ne!(h1, entry_hash(&h1, &f));
        let changed = ChainedFields { action: "key.revoked", ..f.clone() };
        assert_ne!(h1, entry_hash(GENESIS, &changed));
    }

    #[test]
    fn key_order_does_not_matter() {
        let a = json!({"a": 1, "b": 2});
        let b: serde_json::Value = serde_json::from_str(r#"{"b":2,"a":1}"#).expect("json");
        let t = json!({});
        let mk = |d| ChainedFields {
            id: "aud_1",
            seq: 1,
            at: 5,
            account_id: "acc_1",
            actor: &t,
            action: "x",
            target: &t,
            ip: None,
            details: d,
        };
        assert_eq!(entry_hash(GENESIS, &mk(&a)), entry_hash(GENESIS, &mk(&b)));
    }
}
