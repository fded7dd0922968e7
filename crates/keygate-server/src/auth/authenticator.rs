//! The authenticator: the one component every request of a customer's API passes through
//! (ARCHITECTURE.md, "The hot path"):
//!
//! parse → checksum → digest → cache → store on miss → status checks → rate limit → usage.
//!
//! Malformed and bad-checksum credentials are refused by `KeyFormat::parse` before any
//! storage access. Cached entries carry the invalidation epochs they were filled under, so a
//! change anywhere (revoke, patch, member removal, plan change…) is honoured at the next use.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use keygate_core::ratelimit::Decision;
use keygate_core::{CredentialKind, Digest, KeyFormat, Parsed};
use keygate_store::{Account, Membership, SessionAuth, Store};
use moka::sync::Cache;

use super::checks::{Refusal, Requirements, check_key};
use super::invalidation::{Epochs, Stamp};
use super::resolved::ResolvedKey;
use crate::FastHash;
use crate::address_allowance::AddressAllowance;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::plans::Plans;
use crate::ratelimit::RateLimiter;
use crate::usage::UsageRecorder;

#[derive(Clone)]
struct CachedKey {
    key: Option<Arc<ResolvedKey>>,
    stamp: Stamp,
}

#[derive(Clone)]
struct CachedSession {
    auth: Option<Arc<SessionAuth>>,
    stamp: Stamp,
}

#[derive(Clone)]
struct CachedMembership {
    found: Option<Arc<(Account, Membership)>>,
    stamp: Stamp,
}

/// What a request brings besides its credential. Borrowed, not owned: a gateway request's
/// requirements and limit are its route's, compiled once, and must not be copied per request.
#[derive(Debug, Clone, Copy)]
pub struct AuthContext<'a> {
    /// The sender: its address is checked against IP allowlists and answers for unknown
    /// credentials (`AddressAllowance`, always).
    pub ip: IpAddr,
    pub requirements: &'a Requirements,
    /// Units of rate limit and usage this request spends (verify's `cost`; 1 elsewhere).
    pub cost: u32,
    /// An extra limit on top of the key's own: (bucket name, limit), e.g. a gateway route's.
    pub extra_limit: Option<&'a (String, keygate_core::RateLimit)>,
}

/// A key that may proceed, with what the caller needs to answer.
#[derive(Debug, Clone)]
pub struct Granted {
    pub key: Arc<ResolvedKey>,
    /// The tightest limit that applied (for `RateLimit-*` headers); `None` when unlimited.
    pub rate: Option<Decision>,
    pub usage_remaining: Option<i64>,
}

/// A refusal, with the key when it was found (verify reports its id and account).
#[derive(Debug, Clone)]
pub struct Refused {
    pub refusal: Refusal,
    pub key: Option<Arc<ResolvedKey>>,
}

pub struct Authenticator {
    pub format: KeyFormat,
    store: Arc<dyn Store>,
    keys: Cache<Digest, CachedKey, FastHash>,
    /// Unknown digests, apart from the positive cache so a flood of made-up keys with valid
    /// checksums cannot evict real ones.
    unknown: Cache<Digest, Stamp, FastHash>,
    sessions: Cache<Digest, CachedSession, FastHash>,
    /// Bounds the storage reads that unknown keys and tokens cost, per sending address.
    unknown_throttle: AddressAllowance,
    memberships: Cache<(String, String), CachedMembership, FastHash>,
    /// The account every cached key of it shares (see `ResolvedKey`), by id.
    accounts: Cache<String, Arc<Account>, FastHash>,
    epochs: Arc<Epochs>,
    plans: Arc<Plans>,
    limiter: Arc<RateLimiter>,
    usage: Arc<UsageRecorder>,
    metrics: Arc<Metrics>,
    session_idle: chrono::Duration,
}

pub struct AuthenticatorParts {
    pub format: KeyFormat,
    pub store: Arc<dyn Store>,
    pub epochs: Arc<Epochs>,
    pub plans: Arc<Plans>,
    pub limiter: Arc<RateLimiter>,
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
            keys: Cache::builder()
                .max_capacity(p.cache_max_entries.max(1))
                .time_to_live(p.cache_ttl)
                .build_with_hasher(FastHash::default()),
            unknown: Cache::builder()
                .max_capacity(small)
                .time_to_live(p.cache_ttl)
                .build_with_hasher(FastHash::default()),
            sessions: Cache::builder()
                .max_capacity(small)
                .time_to_live(p.cache_ttl)
                .build_with_hasher(FastHash::default()),
            memberships: Cache::builder()
                .max_capacity(small)
                .time_to_live(p.cache_ttl)
                .build_with_hasher(FastHash::default()),
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
            usage: p.usage,
            metrics: p.metrics,
            session_idle: p.session_idle,
        }
    }

    /// The offline checks and the digest, once: callers that route by kind (gateway, the
    /// management API's extractor) pass the result on instead of the raw credential.
    pub fn parse(&self, credential: &str) -> Option<Parsed> {
        self.format.parse(credential).ok()
    }

    /// The whole hot path for an API key. `Err(Ok(refused))` is a decision against the key,
    /// `Err(Err(api_error))` a failure to decide (storage down: 503, fail closed).
    pub async fn authenticate_key(
        &self,
        credential: &str,
        ctx: &AuthContext<'_>,
    ) -> Result<Granted, Result<Refused, ApiError>> {
        match self.parse(credential) {
            Some(parsed) => self.authenticate_parsed_key(&parsed, ctx).await,
            None => self.refused_offline(),
        }
    }

    fn refused_offline(&self) -> Result<Granted, Result<Refused, ApiError>> {
        tracing::debug!("credential refused offline (format, checksum or not an API key)");
        self.metrics.decision("NOT_FOUND");
        Err(Ok(Refused { refusal: Refusal::NotFound, key: None }))
    }

    /// `authenticate_parsed_key` for callers that answer a refusal as an error (the gateway,
    /// the management API) rather than as a decision (verify).
    pub async fn admit_key(&self, parsed: &Parsed, ctx: &AuthContext<'_>) -> Result<Granted, ApiError> {
        self.authenticate_parsed_key(parsed, ctx).await.map_err(|failed| match failed {
            Ok(refused) => refused.refusal.to_api_error(),
            Err(e) => e,
        })
    }

    /// `authenticate_key` for a credential already parsed.
    pub async fn authenticate_parsed_key(
        &self,
        parsed: &Parsed,
        ctx: &AuthContext<'_>,
    ) -> Result<Granted, Result<Refused, ApiError>> {
        let refused = |refusal, key| Err(Ok(Refused { refusal, key }));
        if parsed.kind == CredentialKind::Session {
            return self.refused_offline();
        }
        let key = match self.lookup_key(&parsed.digest, ctx.ip).await.map_err(Err)? {
            Lookup::Found(key) => key,
            Lookup::Unknown => {
                self.metrics.decision("NOT_FOUND");
                return refused(Refusal::NotFound, None);
            }
            Lookup::Throttled(d) => {
                self.metrics.decision("RATE_LIMITED");
                return refused(Refusal::RateLimited(d), None);
            }
        };
        let now = Utc::now();
        let plan = match check_key(&key, &self.plans, now, ctx.ip, ctx.requirements) {
            Ok(plan) => plan,
            Err(r) => {
                tracing::debug!(key_id = %key.key.id, refusal = r.verify_code(), "key refused");
                self.metrics.decision(r.verify_code());
                return refused(r, Some(key));
            }
        };
        let mut rate = None;
        if let Some(limit) = key.key.rate_limit.or(plan.rate_limit) {
            let bucket = format!("k:{}", key.key.id);
            let d = self.limiter.check(&bucket, &limit, ctx.cost).await.map_err(Err)?;
            if !d.allowed {
                self.metrics.decision("RATE_LIMITED");
                return refused(Refusal::RateLimited(d), Some(key));
            }
            rate = Some(d);
        }
        if let Some((name, limit)) = ctx.extra_limit {
            let bucket = format!("r:{name}:{}", key.key.id);
            let d = self.limiter.check(&bucket, limit, ctx.cost).await.map_err(Err)?;
            if !d.allowed {
                self.metrics.decision("RATE_LIMITED");
                return refused(Refusal::RateLimited(d), Some(key));
            }
            rate = Some(tighter(rate, d));
        }
        let mut usage_remaining = None;
        if key.key.usage_limit.is_some() {
            match self.store.consume_usage(&key.key.id, i64::from(ctx.cost)).await.map_err(|e| Err(e.into()))? {
                Some(left) => usage_remaining = Some(left),
                None => {
                    self.metrics.decision("USAGE_EXCEEDED");
                    return refused(Refusal::UsageExceeded, Some(key));
                }
            }
        }
        self.usage.record(&key.key.id, keygate_store::Outcome::Valid, ctx.ip, now);
        self.metrics.decision("VALID");
        Ok(Granted { key, rate, usage_remaining })
    }

    /// The key behind `digest`: from the cache, else from storage unless `sender` has spent
    /// its allowance of unknown credentials (then nothing is read).
    async fn lookup_key(&self, digest: &Digest, sender: IpAddr) -> Result<Lookup, ApiError> {
        self.feed_confirmed()?;
        if let Some(c) = self.keys.get(digest) {
            let (account, user) = c
                .key
                .as_ref()
                .map(|k| (Some(k.key.account_id.as_str()), k.key.user_id.as_deref()))
                .unwrap_or((None, None));
            if self.epochs.is_current(c.stamp, account, user) {
                self.metrics.cache_hits.inc();
                return Ok(c.key.map_or(Lookup::Unknown, Lookup::Found));
            }
        } else if let Some(stamp) = self.unknown.get(digest)
            && self.epochs.is_current(stamp, None, None)
        {
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
            if self.epochs.changes() == before {
                self.unknown.insert(*digest, self.epochs.stamp(None, None));
            }
            self.unknown_throttle.charge(sender);
            return Ok(Lookup::Unknown);
        };
        let stamp = self.epochs.stamp(Some(&auth.key.account_id), auth.key.user_id.as_deref());
        let resolved = ResolvedKey::from_auth(auth, |a| self.shared_account(a));
        if self.epochs.changes() == before {
            self.keys.insert(*digest, CachedKey { key: Some(Arc::clone(&resolved)), stamp });
        }
        Ok(Lookup::Found(resolved))
    }

    /// Before any cached decision is used: a node that has not confirmed its invalidation feed
    /// within `FEED_MAX_AGE` may have missed a revocation, so it answers 503 `unavailable`
    /// until it hears again (docs/api.md, Storage and partitions). Not a storage read instead:
    /// the database is most likely what it lost, and the read would hang. One atomic load on
    /// a node without a remote feed; a monotonic clock read and a load with one.
    fn feed_confirmed(&self) -> Result<(), ApiError> {
        if self.epochs.feed.is_fresh() {
            return Ok(());
        }
        tracing::debug!("invalidation feed not confirmed within 1 s: cache not used");
        Err(ApiError::unavailable())
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

    /// A session token: valid, not revoked, within its idle and absolute timeouts. `sender`
    /// answers for it when it is unknown, as for keys.
    pub async fn authenticate_session(&self, credential: &str, sender: IpAddr) -> Result<Arc<SessionAuth>, ApiError> {
        let parsed = self.parse(credential).ok_or_else(ApiError::invalid_credentials)?;
        self.authenticate_parsed_session(&parsed, sender).await
    }

    /// `authenticate_session` for a credential already parsed.
    pub async fn authenticate_parsed_session(
        &self,
        parsed: &Parsed,
        sender: IpAddr,
    ) -> Result<Arc<SessionAuth>, ApiError> {
        if parsed.kind != CredentialKind::Session {
            return Err(ApiError::invalid_credentials());
        }
        self.feed_confirmed()?;
        let cached = self.sessions.get(&parsed.digest).filter(|c| {
            let user = c.auth.as_ref().map(|a| a.user.id.as_str());
            self.epochs.is_current(c.stamp, None, user)
        });
        let auth = match cached {
            Some(c) => {
                self.metrics.cache_hits.inc();
                c.auth
            }
            None => {
                if let Some(d) = self.unknown_throttle.refusal(sender) {
                    self.metrics.unknown_credentials_throttled.inc();
                    return Err(ApiError::rate_limited(d));
                }
                self.metrics.cache_misses.inc();
                let before = self.epochs.changes();
                let found = self.store.session_by_digest(&parsed.digest.to_hex()).await?;
                if found.is_none() {
                    self.unknown_throttle.charge(sender);
                }
                let user = found.as_ref().map(|a| a.user.id.clone());
                let stamp = self.epochs.stamp(None, user.as_deref());
                let found = found.map(Arc::new);
                if self.epochs.changes() == before {
                    self.sessions.insert(parsed.digest, CachedSession { auth: found.clone(), stamp });
                }
                found
            }
        };
        let Some(auth) = auth else { return Err(ApiError::invalid_credentials()) };
        let now = Utc::now();
        let s = &auth.session;
        if s.revoked_at.is_some() || s.expires_at <= now || s.last_seen_at + self.session_idle <= now {
            return Err(ApiError::session_expired());
        }
        // Idle tracking writes at most once a minute per session, off the request's path.
        if now - s.last_seen_at > chrono::Duration::seconds(60) {
            self.touch_session(&parsed.digest, &auth, now);
        }
        Ok(auth)
    }

    fn touch_session(&self, digest: &Digest, auth: &Arc<SessionAuth>, now: DateTime<Utc>) {
        let mut updated = (**auth).clone();
        updated.session.last_seen_at = now;
        let stamp = self.epochs.stamp(None, Some(&auth.user.id));
        self.sessions.insert(*digest, CachedSession { auth: Some(Arc::new(updated)), stamp });
        let store = Arc::clone(&self.store);
        let id = auth.session.id.clone();
        tokio::spawn(async move {
            if let Err(e) = store.touch_session(&id, now).await {
                tracing::debug!(error = %e, "could not record session activity");
            }
        });
    }

    /// The session user's membership in `account_id` with the account, cached like keys.
    pub async fn membership(
        &self,
        account_id: &str,
        user_id: &str,
    ) -> Result<Option<Arc<(Account, Membership)>>, ApiError> {
        self.feed_confirmed()?;
        let k = (account_id.to_owned(), user_id.to_owned());
        if let Some(c) = self.memberships.get(&k)
            && self.epochs.is_current(c.stamp, Some(account_id), Some(user_id))
        {
            return Ok(c.found);
        }
        let before = self.epochs.changes();
        let stamp = self.epochs.stamp(Some(account_id), Some(user_id));
        let account = self.store.account_by_id(account_id).await?;
        let found = match account {
            Some(a) => self.store.membership(account_id, user_id).await?.map(|m| Arc::new((a, m))),
            None => None,
        };
        if self.epochs.changes() == before {
            self.memberships.insert(k, CachedMembership { found: found.clone(), stamp });
        }
        Ok(found)
    }

    /// Rate limit for a session at the gateway: per user and route, on top of the plan's.
    pub async fn limit_session(
        &self,
        user_id: &str,
        account: &Account,
        extra: Option<&(String, keygate_core::RateLimit)>,
    ) -> Result<Option<Decision>, ApiError> {
        let plan = self.plans.access(account, Utc::now());
        let mut rate = None;
        if let Some(limit) = plan.rate_limit {
            let d = self.limiter.check(&format!("s:{}:{user_id}", account.id), &limit, 1).await?;
            if !d.allowed {
                return Err(ApiError::rate_limited(d));
            }
            rate = Some(d);
        }
        if let Some((name, limit)) = extra {
            let d = self.limiter.check(&format!("r:{name}:{user_id}"), limit, 1).await?;
            if !d.allowed {
                return Err(ApiError::rate_limited(d));
            }
            rate = Some(tighter(rate, d));
        }
        Ok(rate)
    }

    /// The key's `usage_limit` credits left now, read from storage rather than the cached key
    /// (whose count is the one at its fill: every granted use since spent credits without
    /// touching the cache). For verify's refusals, which must report the exact count too; a
    /// granted use gets it from its own spend (`Granted::usage_remaining`). `None` when the key
    /// has no `usage_limit` or the count cannot be read now (the refusal stands either way).
    pub async fn usage_remaining_now(&self, key: &ResolvedKey) -> Option<i64> {
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

    pub fn plans(&self) -> &Plans {
        &self.plans
    }

    /// Entries in the positive key cache (for BENCHMARKS.md's memory figures).
    pub fn cached_keys(&self) -> u64 {
        self.keys.run_pending_tasks();
        self.keys.entry_count()
    }
}

/// What the cache or storage knows of a key digest.
enum Lookup {
    Found(Arc<ResolvedKey>),
    Unknown,
    /// Not looked up: the sender's allowance of unknown credentials is spent.
    Throttled(Decision),
}

/// The decision with less room left: its numbers go into the `RateLimit-*` headers.
fn tighter(a: Option<Decision>, b: Decision) -> Decision {
    match a {
        Some(a) if a.remaining <= b.remaining => a,
        _ => b,
    }
}
