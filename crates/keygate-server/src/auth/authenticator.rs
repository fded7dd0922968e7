//! The authenticator: the one component every request of a customer's API passes through
//! (docs/architecture.md, "The hot path"):
//!
//! parse → checksum → digest → cache → store on miss → status checks → limits → usage.
//!
//! One dispatch (`authenticate`) serves verify, the gateway and the management API. Malformed
//! and bad-checksum credentials are refused by `KeyFormat::parse` before any storage access.
//! Cached entries carry the invalidation epochs they were filled under (`cache`), so a change
//! anywhere (revoke, patch, member removal, plan change…) is honoured at the next use. Session
//! tokens and memberships are in `sessions`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use keygate_core::ratelimit::Decision;
use keygate_core::{CredentialKind, Digest, KeyFormat, Parsed};
use keygate_store::{Account, Outcome, SessionAuth, Store};
use moka::sync::Cache;

use super::cache::{FoundMembership, StampedCache};
use super::cached_key::CachedKey;
use super::checks::{Refusal, check_key};
use super::invalidation::Epochs;
use super::spend::{self, Applied};
use super::verdict::{Accept, AuthContext, Authenticated, Granted, Refused, Verdict};
use crate::FastHash;
use crate::error::ApiError;
use crate::limits::{AddressAllowance, QuotaCounter, RateLimiter};
use crate::metrics::Metrics;
use crate::plans::Plans;
use crate::usage::UsageRecorder;

pub struct Authenticator {
    pub format: KeyFormat,
    pub(super) store: Arc<dyn Store>,
    keys: StampedCache<Digest, Arc<CachedKey>>,
    /// Unknown digests, apart from the positive cache so a flood of made-up keys with valid
    /// checksums cannot evict real ones.
    unknown: StampedCache<Digest, ()>,
    pub(super) sessions: StampedCache<Digest, Option<Arc<SessionAuth>>>,
    /// Bounds the storage reads that unknown keys and tokens cost, per sending address.
    pub(super) unknown_throttle: AddressAllowance,
    pub(super) memberships: StampedCache<(String, String), FoundMembership>,
    /// The account every cached key of it shares (see `CachedKey`), by id.
    accounts: Cache<String, Arc<Account>, FastHash>,
    pub(super) epochs: Arc<Epochs>,
    pub(super) plans: Arc<Plans>,
    pub(super) limiter: Arc<RateLimiter>,
    pub(super) quotas: Arc<QuotaCounter>,
    usage: Arc<UsageRecorder>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) session_idle: chrono::Duration,
}

pub struct AuthenticatorParts {
    pub format: KeyFormat,
    pub store: Arc<dyn Store>,
    pub epochs: Arc<Epochs>,
    pub plans: Arc<Plans>,
    pub limiter: Arc<RateLimiter>,
    pub quotas: Arc<QuotaCounter>,
    pub usage: Arc<UsageRecorder>,
    pub metrics: Arc<Metrics>,
    pub cache_max_entries: u64,
    pub cache_ttl: Duration,
    pub session_idle: chrono::Duration,
    /// Distinct unknown credentials one address may send per minute (0: no limit).
    pub unknown_per_address_per_minute: u32,
}

impl Authenticator {
    pub fn new(p: AuthenticatorParts) -> Self {
        let small = (p.cache_max_entries / 10).max(1);
        Authenticator {
            keys: StampedCache::new(p.cache_max_entries, p.cache_ttl),
            unknown: StampedCache::new(small, p.cache_ttl),
            sessions: StampedCache::new(small, p.cache_ttl),
            memberships: StampedCache::new(small, p.cache_ttl),
            accounts: Cache::builder()
                .max_capacity(small)
                .time_to_live(p.cache_ttl)
                .build_with_hasher(FastHash::default()),
            unknown_throttle: AddressAllowance::new(p.unknown_per_address_per_minute, 60),
            format: p.format,
            store: p.store,
            epochs: p.epochs,
            plans: p.plans,
            limiter: p.limiter,
            quotas: p.quotas,
            usage: p.usage,
            metrics: p.metrics,
            session_idle: p.session_idle,
        }
    }

    /// The offline checks and the digest, once.
    pub fn parse(&self, credential: &str) -> Option<Parsed> {
        self.format.parse(credential).ok()
    }

    /// The one credential dispatch, for verify, the gateway and the management API: parse
    /// once, then the key's path (a [`Verdict`]) or the session's. `Err` only when nothing
    /// could be decided (storage down: 503, fail closed) — and, for sessions, their refusals.
    pub async fn authenticate(
        &self,
        credential: &str,
        accept: Accept,
        ctx: &AuthContext<'_>,
    ) -> Result<Authenticated, ApiError> {
        match (self.parse(credential), accept) {
            (Some(parsed), _) if parsed.kind != CredentialKind::Session => {
                self.decide_key(&parsed, ctx).await.map(Authenticated::Key)
            }
            (Some(parsed), Accept::KeysAndSessions) => {
                self.authenticate_parsed_session(&parsed, ctx.ip).await.map(Authenticated::Session)
            }
            (None, Accept::KeysAndSessions) => Ok(Authenticated::Unreadable),
            (_, Accept::KeysOnly) => Ok(Authenticated::Key(self.refused_offline())),
        }
    }

    /// `authenticate` for keys only (`Accept::KeysOnly`), answered as the verdict.
    pub async fn authenticate_key(&self, credential: &str, ctx: &AuthContext<'_>) -> Result<Verdict, ApiError> {
        match self.authenticate(credential, Accept::KeysOnly, ctx).await? {
            Authenticated::Key(verdict) => Ok(verdict),
            Authenticated::Session(_) | Authenticated::Unreadable => Ok(self.refused_offline()),
        }
    }

    /// Not a key of this deployment (format, checksum, a session token where only keys are
    /// decided): an unknown key, without a read.
    pub fn refused_offline(&self) -> Verdict {
        tracing::debug!("credential refused offline (format, checksum or not an API key)");
        self.refused(Refusal::NotFound, None)
    }

    fn refused(&self, refusal: Refusal, key: Option<Arc<CachedKey>>) -> Verdict {
        self.metrics.decision(refusal.verify_code());
        Verdict::Refused(Refused { refusal, key, limit: None })
    }

    /// A refusal of a known key, which its usage counts (docs/api.md, "Usage"): in memory,
    /// like a grant, so refusing costs no storage write either.
    /// `limit` is the rate limit that refused, when the caller asked for it.
    fn refused_key(
        &self,
        refusal: Refusal,
        key: Arc<CachedKey>,
        at: (IpAddr, DateTime<Utc>),
        limit: Option<Applied>,
    ) -> Verdict {
        if let Some(outcome) = refusal.outcome() {
            self.usage.record(&key.key.id, outcome, at.0, at.1);
        }
        self.metrics.decision(refusal.verify_code());
        Verdict::Refused(Refused { refusal, key: Some(key), limit })
    }

    /// The whole hot path for a parsed API key.
    async fn decide_key(&self, parsed: &Parsed, ctx: &AuthContext<'_>) -> Result<Verdict, ApiError> {
        let key = match self.lookup_key(&parsed.digest, ctx.ip).await? {
            Lookup::Found(key) => key,
            Lookup::Unknown => return Ok(self.refused(Refusal::NotFound, None)),
            Lookup::Throttled(d) => return Ok(self.refused(Refusal::RateLimited(d), None)),
        };
        let now = Utc::now();
        let plan = match check_key(&key, &self.plans, now, ctx.ip, ctx.requirements) {
            Ok(plan) => plan,
            Err(r) => {
                tracing::debug!(key_id = %key.key.id, refusal = r.verify_code(), "key refused");
                return Ok(self.refused_key(r, key, (ctx.ip, now), None));
            }
        };
        // Every limit of the key, its route and its account, then the account's quota
        // (docs/api.md §7 "Plan limits"); a refusal gives back what was already spent.
        // The limits borrow the key while the verdict takes it: one more reference, no copy.
        let held = Arc::clone(&key);
        let fresh;
        let buckets = match held.account_buckets(&plan.account_limits) {
            Some(kept) => kept,
            None => {
                fresh = spend::account_buckets(&key.key.account_id, &plan.account_limits);
                &fresh[..]
            }
        };
        let route = ctx.extra_limit.map(|(name, limit)| (name.as_str(), limit));
        let route_bucket = route.map(|(name, _)| format!("r:{name}:{}", key.key.id));
        let route = route.zip(route_bucket.as_deref()).map(|((_, limit), bucket)| (bucket, limit));
        let limits = spend::key_limits(&held, &plan, route, buckets);
        let quota = plan.quota.as_ref().map(|q| (key.key.account_id.as_str(), q));
        let spent = match self.spend(limits.clone(), quota, ctx.cost, ctx.report_limits).await? {
            Ok(spent) => spent,
            Err(refused) => return Ok(self.refused_key(refused.refusal, key, (ctx.ip, now), refused.applied)),
        };
        let mut usage_remaining = None;
        if key.key.usage_limit.is_some() {
            let consumed = self.store.consume_usage(&key.key.id, i64::from(ctx.cost), now).await;
            if !matches!(consumed, Ok(Some(_))) {
                let quota_spent = quota.zip(spent.quota.as_ref()).map(|((account, _), q)| (account, q));
                self.give_back(limits, quota_spent, ctx.cost).await;
            }
            match consumed? {
                Some(left) => usage_remaining = Some(left),
                None => return Ok(self.refused_key(Refusal::UsageExceeded, key, (ctx.ip, now), None)),
            }
        }
        self.usage.record(&key.key.id, Outcome::Valid, ctx.ip, now);
        self.metrics.decision("VALID");
        Ok(Verdict::Granted(Granted {
            key,
            rate: spent.rate,
            usage_remaining,
            limits: spent.applied,
            quota: spent.quota,
        }))
    }

    /// The key behind `digest`: from the cache, else from storage unless `sender` has spent
    /// its allowance of unknown credentials (then nothing is read).
    async fn lookup_key(&self, digest: &Digest, sender: IpAddr) -> Result<Lookup, ApiError> {
        if let Some(key) = self.keys.get(digest, &self.epochs)? {
            self.metrics.cache_hits.inc();
            return Ok(Lookup::Found(key));
        }
        if self.unknown.get(digest, &self.epochs)?.is_some() {
            self.metrics.cache_hits.inc();
            return Ok(Lookup::Unknown);
        }
        if let Some(d) = self.unknown_throttle.refusal(sender) {
            tracing::debug!(ip = %sender, "unknown-credential allowance spent: not looked up");
            self.metrics.unknown_credentials_throttled.inc();
            return Ok(Lookup::Throttled(d));
        }
        self.metrics.cache_misses.inc();
        let before = self.epochs.changes();
        let Some(auth) = self.store.key_auth_by_digest(&digest.to_hex()).await? else {
            self.unknown.keep(*digest, (), &self.epochs, before);
            self.unknown_throttle.charge(sender);
            return Ok(Lookup::Unknown);
        };
        let key = CachedKey::from_auth(auth, |a| self.shared_account(a));
        self.keys.keep(*digest, Arc::clone(&key), &self.epochs, before);
        Ok(Lookup::Found(key))
    }

    /// The one `Arc` for this state of the account: the cached one while it is equal to what
    /// storage just said, else this one (which replaces it).
    fn shared_account(&self, account: Account) -> Arc<Account> {
        if let Some(shared) = self.accounts.get(&account.id)
            && *shared == account
        {
            return shared;
        }
        let shared = Arc::new(account);
        self.accounts.insert(shared.id.clone(), Arc::clone(&shared));
        shared
    }

    /// The key's `usage_limit` credits left now, read from storage rather than the cached key
    /// (whose count is the one at its fill: every granted use since spent credits without
    /// touching the cache). For verify's refusals, which must report the exact count too; a
    /// granted use gets it from its own spend (`Granted::usage_remaining`). `None` when the key
    /// has no `usage_limit` or the count cannot be read now (the refusal stands either way).
    pub async fn usage_remaining_now(&self, key: &CachedKey) -> Option<i64> {
        key.key.usage_limit?;
        match self.store.key_by_handle(&key.key.account_id, &key.key.id).await {
            Ok(found) => found.and_then(|k| k.usage_remaining()),
            Err(e) => {
                tracing::debug!(key_id = %key.key.id, error = %e, "usage_remaining of a refusal not read");
                None
            }
        }
    }

    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    pub fn quotas(&self) -> &QuotaCounter {
        &self.quotas
    }

    pub fn plans(&self) -> &Plans {
        &self.plans
    }

    /// Entries in the positive key cache (for BENCHMARKS.md's memory figures).
    pub fn cached_keys(&self) -> u64 {
        self.keys.entry_count()
    }
}

/// What the cache or storage knows of a key digest.
enum Lookup {
    Found(Arc<CachedKey>),
    Unknown,
    /// Not looked up: the sender's allowance of unknown credentials is spent.
    Throttled(Decision),
}
