//! A key as the hot path wants it: parsed once when it enters the cache, not on every request.

use std::sync::{Arc, OnceLock};

use ipnet::IpNet;
use keygate_core::{Authority, Permissions, ScopeSet};
use keygate_store::{Account, ApiKey, KeyAuth};

/// One cached key. Memory per cached key is the cache's cost (BENCHMARKS.md), so `key` keeps
/// what decisions and answers read and drops the rest of the stored row: `digest`,
/// `key_part`, `name`, `created_by`, `metadata`, `last_used_ip` and `ip_allowlist` (parsed
/// into `allowlist`) are empty here — read the key from storage to show them. The account is
/// shared by every cached key of that account.
#[derive(Debug)]
pub struct ResolvedKey {
    pub key: ApiKey,
    pub permissions: Permissions,
    pub allowlist: Vec<IpNet>,
    /// `None`: the account was deleted.
    pub account: Option<Arc<Account>>,
    /// The user's current authority in the account (user keys); `None`: no longer a member.
    pub member_authority: Option<Authority>,
    /// Verify's JSON for the fields that depend only on this key (`key_id` … `expires_at`),
    /// rendered by `routes::verify` on the key's first verify: a cached key is immutable, and
    /// rendering them per request was the largest part of verify's own work.
    pub verify_fields: OnceLock<Box<str>>,
    /// The `X-Keygate-*` header values the gateway sends for this key, made on first use.
    /// Boxed: an empty slot costs a pointer, not five header values, on keys never proxied.
    pub gateway_identity: OnceLock<Box<crate::gateway::proxy::Identity>>,
}

impl ResolvedKey {
    /// `share` turns the stored account into the one `Arc` every key of it points to.
    pub fn from_auth(auth: KeyAuth, share: impl FnOnce(Account) -> Arc<Account>) -> Arc<Self> {
        // Stored scopes were validated when written; anything unparsable is dropped, which
        // can only narrow the key (fail closed).
        let scopes = ScopeSet::new(auth.key.scopes.iter().filter_map(|s| keygate_core::Scope::parse(s).ok()).collect());
        let role = auth
            .role_permissions
            .map(|p| ScopeSet::new(p.iter().filter_map(|s| keygate_core::Scope::parse(s).ok()).collect()));
        let allowlist = auth.key.ip_allowlist.iter().filter_map(|c| keygate_core::net::parse_cidr(c)).collect();
        let mut key = auth.key;
        for unread in [&mut key.digest, &mut key.key_part, &mut key.name, &mut key.created_by] {
            *unread = String::new();
        }
        key.metadata = serde_json::Value::Null;
        key.last_used_ip = None;
        key.ip_allowlist = Vec::new();
        Arc::new(ResolvedKey {
            permissions: Permissions { scopes, role },
            allowlist,
            account: auth.account.map(share),
            member_authority: auth.member_authority,
            key,
            verify_fields: OnceLock::new(),
            gateway_identity: OnceLock::new(),
        })
    }

    /// The key's authority, capped for a user key by its user's current authority.
    pub fn effective_authority(&self) -> Authority {
        match (self.key.class, self.member_authority) {
            (keygate_store::KeyClass::User, Some(member)) => self.key.authority.min(member),
            _ => self.key.authority,
        }
    }
}

/// A stored org key with an allowlist and metadata, for tests.
#[cfg(test)]
pub(crate) fn sample_auth(key_id: &str) -> KeyAuth {
    use chrono::{TimeZone, Utc};
    use keygate_store::KeyClass;
    let now = Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).single().expect("a valid time");
    KeyAuth {
        key: ApiKey {
            id: key_id.to_owned(),
            digest: "ab".repeat(32),
            key_part: "kg_org_12345678".to_owned(),
            class: KeyClass::Org,
            name: "billing export".to_owned(),
            account_id: "acc_1".to_owned(),
            user_id: None,
            authority: Authority::User,
            scopes: vec!["*:read".to_owned()],
            role_id: None,
            created_at: now,
            created_by: "usr_1".to_owned(),
            expires_at: None,
            starts_at: None,
            staged: false,
            revoked_at: None,
            last_used_at: None,
            last_used_ip: Some("10.0.0.1".to_owned()),
            request_count: 0,
            usage_limit: None,
            usage_used: 0,
            rate_limit: None,
            ip_allowlist: vec!["10.0.0.0/8".to_owned()],
            metadata: serde_json::json!({ "team": "data" }),
            rolled_to: None,
        },
        role_permissions: None,
        account: Some(Account {
            id: "acc_1".to_owned(),
            name: "Acme".to_owned(),
            url: None,
            domain: None,
            plan: "free".to_owned(),
            trial_ends_at: None,
            created_at: now,
        }),
        member_authority: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_key_keeps_what_decisions_read_and_shares_its_account() {
        let shared = Arc::new(sample_auth("key_0").account.expect("account"));
        let share = |a: Account| if a == *shared { Arc::clone(&shared) } else { Arc::new(a) };
        let a = ResolvedKey::from_auth(sample_auth("key_1"), share);
        let b = ResolvedKey::from_auth(sample_auth("key_2"), share);
        assert!(Arc::ptr_eq(a.account.as_ref().expect("a"), b.account.as_ref().expect("b")));
        // What decisions and answers read survives…
        assert_eq!((a.key.id.as_str(), a.key.account_id.as_str()), ("key_1", "acc_1"));
        assert_eq!(a.key.scopes, ["*:read"]);
        assert_eq!(a.allowlist.len(), 1, "the allowlist is kept parsed");
        // …the rest of the row is not held per cached key.
        assert!(
            a.key.digest.is_empty()
                && a.key.name.is_empty()
                && a.key.key_part.is_empty()
                && a.key.created_by.is_empty()
        );
        assert!(a.key.metadata.is_null() && a.key.ip_allowlist.is_empty() && a.key.last_used_ip.is_none());
    }
}
