//! A key as the hot path wants it: parsed once when it enters the cache, not on every request,
//! and holding only what decisions and answers read.

use std::sync::{Arc, OnceLock};

use ipnet::IpNet;
use keygate_core::{Authority, Permissions, RateLimit, ScopeSet};
use keygate_store::{Account, KeyAuth, KeyClass, KeyStatus, Time};

use super::headers::Identity;

/// One cached key. Memory per cached key is the cache's cost (BENCHMARKS.md), so it keeps what
/// the status checks, limits and answers read and nothing else of the stored row (its name,
/// metadata, digest… are read from storage by whoever shows them). The account is shared by
/// every cached key of that account.
#[derive(Debug)]
pub struct CachedKey {
    pub key: KeyFacts,
    pub permissions: Permissions,
    pub allowlist: Vec<IpNet>,
    /// `None`: the account was deleted.
    pub account: Option<Arc<Account>>,
    /// The user's current authority in the account (user keys); `None`: no longer a member.
    pub member_authority: Option<Authority>,
    /// The key's own rate-limit bucket (`k:<id>`), named on first use by a limited key.
    pub rate_bucket: OnceLock<Box<str>>,
    /// The buckets of its account's plan limits (`a:<account>:<name>`), named on first use: a
    /// cached key's account, hence its plan, never changes (a change makes a new cached key).
    pub account_buckets: OnceLock<Box<[Box<str>]>>,
    /// The key's named limits: name, bucket, (`k:<id>:<name>`), named once here so a
    /// request builds no bucket name.
    pub named_limits: Box<[NamedBucket]>,
    /// Verify's JSON for the fields that depend only on this key (`key_id` … `expires_at`),
    /// rendered by `routes::verify` on the key's first verify: a cached key is immutable, and
    /// rendering them per request was the largest part of verify's own work.
    pub verify_fields: OnceLock<Box<str>>,
    /// The `X-Keygate-*` header values the gateway sends for this key, made on first use.
    /// Boxed: an empty slot costs a pointer, not five header values, on keys never proxied.
    pub gateway_identity: OnceLock<Box<Identity>>,
}

/// The stored key's fields that decisions and answers read (the names of `ApiKey`'s).
#[derive(Debug)]
pub struct KeyFacts {
    pub id: String,
    pub account_id: String,
    pub user_id: Option<String>,
    pub class: KeyClass,
    pub authority: Authority,
    /// As stored, for verify's answer; `CachedKey::permissions` is what decisions read.
    pub scopes: Vec<String>,
    pub role_id: Option<String>,
    pub expires_at: Option<Time>,
    pub starts_at: Option<Time>,
    pub staged: bool,
    pub revoked: bool,
    pub usage_limit: Option<i64>,
    pub rate_limit: Option<RateLimit>,
    /// The key's metadata, for verify's answer and the gateway's `X-Keygate-Metadata` (each
    /// rendered once per cached key); `None` when it is empty (most keys: no memory spent).
    pub metadata: Option<serde_json::Value>,
}

/// One of a key's named limits as requests spend it: its name (shared, for verify's
/// `ratelimits`), its bucket (`k:<id>:<name>`) and the limit.
pub type NamedBucket = (Arc<str>, Box<str>, RateLimit);

impl KeyFacts {
    /// `ApiKey::status`, by the same rule.
    pub fn status(&self, now: Time) -> KeyStatus {
        KeyStatus::at(self.revoked, self.staged, self.starts_at, self.expires_at, now)
    }
}

impl CachedKey {
    /// `share` turns the stored account into the one `Arc` every key of it points to.
    pub fn from_auth(auth: KeyAuth, share: impl FnOnce(Account) -> Arc<Account>) -> Arc<Self> {
        // Stored scopes were validated when written; anything unparsable is dropped, which
        // can only narrow the key (fail closed).
        let scopes = ScopeSet::new(auth.key.scopes.iter().filter_map(|s| keygate_core::Scope::parse(s).ok()).collect());
        let role = auth
            .role_permissions
            .map(|p| ScopeSet::new(p.iter().filter_map(|s| keygate_core::Scope::parse(s).ok()).collect()));
        let allowlist = auth.key.ip_allowlist.iter().filter_map(|c| keygate_core::net::parse_cidr(c)).collect();
        let k = auth.key;
        let named_limits = k
            .rate_limits
            .iter()
            .map(|l| (l.name.as_str().into(), format!("k:{}:{}", k.id, l.name).into(), l.rate()))
            .collect();
        let metadata = Some(k.metadata).filter(|m| m.as_object().is_none_or(|o| !o.is_empty()));
        Arc::new(CachedKey {
            key: KeyFacts {
                id: k.id,
                account_id: k.account_id,
                user_id: k.user_id,
                class: k.class,
                authority: k.authority,
                scopes: k.scopes,
                role_id: k.role_id,
                expires_at: k.expires_at,
                starts_at: k.starts_at,
                staged: k.staged,
                revoked: k.revoked_at.is_some(),
                usage_limit: k.usage_limit,
                rate_limit: k.rate_limit,
                metadata,
            },
            permissions: Permissions { scopes, role },
            allowlist,
            account: auth.account.map(share),
            member_authority: auth.member_authority,
            rate_bucket: OnceLock::new(),
            account_buckets: OnceLock::new(),
            named_limits,
            verify_fields: OnceLock::new(),
            gateway_identity: OnceLock::new(),
        })
    }

    /// The key's authority, capped for a user key by its user's current authority.
    pub fn effective_authority(&self) -> Authority {
        match (self.key.class, self.member_authority) {
            (KeyClass::User, Some(member)) => self.key.authority.min(member),
            _ => self.key.authority,
        }
    }

    /// The buckets of `limits` (its account's plan limits), kept after the first use; `None`
    /// if the kept ones are for other limits (then the caller names them for this request).
    pub fn account_buckets(&self, limits: &[crate::plans::AccountLimit]) -> Option<&[Box<str>]> {
        let kept = self.account_buckets.get_or_init(|| {
            limits.iter().map(|l| super::spend::account_bucket(&self.key.account_id, &l.name)).collect()
        });
        let same = kept.len() == limits.len()
            && kept.iter().zip(limits).all(|(b, l)| b.strip_suffix(&*l.name).is_some_and(|p| p.ends_with(':')));
        same.then_some(&**kept)
    }

    /// The bucket of the key's own rate limit.
    pub fn rate_bucket(&self) -> &str {
        self.rate_bucket.get_or_init(|| format!("k:{}", self.key.id).into())
    }
}

/// A stored org key with an allowlist and metadata, for tests.
#[cfg(test)]
pub(crate) fn sample_auth(key_id: &str) -> KeyAuth {
    use chrono::{TimeZone, Utc};
    use keygate_store::ApiKey;
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
            success_count: 0,
            usage_limit: None,
            usage_used: 0,
            refill: None,
            refilled_at: None,
            rate_limit: None,
            rate_limits: vec![],
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
            overrides: Default::default(),
        }),
        member_authority: None,
    }
}

#[cfg(test)]
mod tests {
    use keygate_store::ApiKey;

    use super::*;

    #[test]
    fn a_cached_key_keeps_what_decisions_read_and_shares_its_account() {
        let shared = Arc::new(sample_auth("key_0").account.expect("account"));
        let share = |a: Account| if a == *shared { Arc::clone(&shared) } else { Arc::new(a) };
        let a = CachedKey::from_auth(sample_auth("key_1"), share);
        let b = CachedKey::from_auth(sample_auth("key_2"), share);
        assert!(Arc::ptr_eq(a.account.as_ref().expect("a"), b.account.as_ref().expect("b")));
        // What decisions and answers read survives; the rest of the row has no field here.
        assert_eq!((a.key.id.as_str(), a.key.account_id.as_str()), ("key_1", "acc_1"));
        assert_eq!(a.key.scopes, ["*:read"]);
        assert_eq!(a.allowlist.len(), 1, "the allowlist is kept parsed");
        assert_eq!(a.rate_bucket(), "k:key_1");
        assert_eq!(a.key.metadata, Some(serde_json::json!({ "team": "data" })));
        let mut named = sample_auth("key_3");
        named.key.rate_limits =
            vec![keygate_core::NamedRateLimit { name: "minute".into(), limit: 5, window_seconds: 60, burst: None }];
        named.key.metadata = serde_json::json!({});
        let n = CachedKey::from_auth(named, Arc::new);
        assert_eq!(&*n.named_limits[0].0, "minute", "its name, for verify's `ratelimits`");
        assert_eq!(&*n.named_limits[0].1, "k:key_3:minute", "each named limit has its own bucket");
        assert_eq!(n.key.metadata, None, "empty metadata is not kept");
    }

    #[test]
    fn the_status_rule_is_the_stored_keys() {
        let now = chrono::Utc::now();
        type Change = fn(&mut ApiKey);
        let cases: [(Change, KeyStatus); 5] = [
            (|_| {}, KeyStatus::Active),
            (|k| k.revoked_at = Some(chrono::Utc::now()), KeyStatus::Revoked),
            (|k| k.staged = true, KeyStatus::Inactive),
            (|k| k.starts_at = Some(chrono::Utc::now() + chrono::Duration::hours(1)), KeyStatus::Inactive),
            (|k| k.expires_at = Some(chrono::Utc::now() - chrono::Duration::hours(1)), KeyStatus::Expired),
        ];
        for (i, (change, want)) in cases.into_iter().enumerate() {
            let mut auth = sample_auth("key_1");
            change(&mut auth.key);
            assert_eq!(auth.key.status(now), want, "row {i}");
            assert_eq!(CachedKey::from_auth(auth, Arc::new).key.status(now), want, "row {i}");
        }
    }
}
