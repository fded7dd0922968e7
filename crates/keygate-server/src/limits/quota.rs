//! Quotas: an account's requests per UTC calendar period (docs/api.md §7 "Plan limits").
//!
//! With Redis, one counter per account and period start, spent by a check-and-INCRBY script
//! (`redis_quota`), so every node together lets through exactly the quota. Without Redis, each
//! node counts in memory: an allowed request costs no storage write, and N nodes without Redis
//! can let through up to N × the quota (documented). A node's count starts at zero when it
//! starts (a known limit, docs/operations.md "Selling plans").
//!
//! The clock is injected (`Clock`), so tests cross a day or month boundary without sleeping.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use keygate_core::quota::Quota;

use crate::config::FailurePolicy;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// The wall clock quotas count periods by.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// A quota counter shared across nodes (Redis). Errors mean "could not decide".
#[async_trait::async_trait]
pub trait SharedQuota: Send + Sync {
    /// Adds `cost` to the counter `counter` unless that would pass `limit`; answers whether it
    /// did and the count after (or, refused, the count as it stands). The counter expires
    /// `ttl_seconds` from now.
    async fn spend(&self, counter: &str, limit: u64, cost: u64, ttl_seconds: u64) -> Result<(bool, u64), String>;

    /// Gives `cost` back (a request refused after its quota was spent).
    async fn refund(&self, counter: &str, cost: u64) -> Result<(), String>;
}

/// The decision on a quota, for the answer (`quota: {limit, remaining, reset}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaDecision {
    pub allowed: bool,
    pub limit: u64,
    pub remaining: u64,
    /// Seconds to the next period's start (also `Retry-After` when refused).
    pub reset_seconds: u64,
    /// The period this was counted in (Unix seconds of its start), for a refund.
    pub period_start: i64,
}

impl QuotaDecision {
    /// As a rate decision, for `RateLimit-*` and `Retry-After` (the next period's start when
    /// refused). A quota past `u32::MAX` reports limit 0, which leaves the headers out.
    pub fn as_rate(&self) -> keygate_core::ratelimit::Decision {
        let fits = u32::try_from(self.limit).is_ok();
        keygate_core::ratelimit::Decision {
            allowed: self.allowed,
            limit: if fits { self.limit as u32 } else { 0 },
            remaining: u32::try_from(self.remaining).unwrap_or(u32::MAX),
            reset_seconds: self.reset_seconds,
            retry_after_seconds: if self.allowed { 0 } else { self.reset_seconds.max(1) },
        }
    }
}

pub struct QuotaCounter {
    /// account id → (period start, units used in it).
    local: DashMap<String, (i64, u64), crate::FastHash>,
    shared: Option<Arc<dyn SharedQuota>>,
    policy: FailurePolicy,
    clock: Clock,
    metrics: Arc<Metrics>,
}

impl QuotaCounter {
    pub fn new(
        shared: Option<Arc<dyn SharedQuota>>,
        policy: FailurePolicy,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> Self {
        QuotaCounter { local: DashMap::default(), shared, policy, clock, metrics }
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// Spends `cost` of the account's quota for the current period, or refuses without
    /// spending anything.
    pub async fn spend(&self, account_id: &str, quota: &Quota, cost: u32) -> Result<QuotaDecision, ApiError> {
        let now = self.now();
        let start = quota.period.start(now).timestamp();
        let reset_seconds = quota.period.seconds_left(now);
        let cost = u64::from(cost);
        let answer = |allowed: bool, used: u64| QuotaDecision {
            allowed,
            limit: quota.requests,
            remaining: quota.requests.saturating_sub(used),
            reset_seconds,
            period_start: start,
        };
        if let Some(shared) = &self.shared {
            // Kept a day past the period's end: a node whose clock lags reads the same counter.
            let ttl = reset_seconds + 86_400;
            match shared.spend(&counter_key(account_id, start), quota.requests, cost, ttl).await {
                Ok((allowed, used)) => return Ok(answer(allowed, used)),
                Err(cause) => {
                    self.metrics.shared_limit_failures.inc();
                    tracing::debug!(%cause, policy = ?self.policy, "shared quota unavailable");
                    if self.policy == FailurePolicy::FailClosed {
                        return Err(ApiError::unavailable());
                    }
                }
            }
        }
        let (allowed, used) = self.spend_local(account_id, start, quota.requests, cost);
        Ok(answer(allowed, used))
    }

    fn spend_local(&self, account_id: &str, start: i64, limit: u64, cost: u64) -> (bool, u64) {
        // An account in use is found by `&str`; only its first request allocates its id.
        let mut entry = match self.local.get_mut(account_id) {
            Some(e) => e,
            None => self.local.entry(account_id.to_owned()).or_insert((start, 0)),
        };
        if entry.0 != start {
            *entry = (start, 0);
        }
        let after = entry.1.saturating_add(cost);
        if after > limit {
            return (false, entry.1);
        }
        entry.1 = after;
        (true, after)
    }

    /// Gives back what `spent` took (a later check refused the request). Best effort: a refund
    /// that cannot reach Redis leaves the units spent (never more let through).
    pub async fn refund(&self, account_id: &str, spent: &QuotaDecision, cost: u32) {
        let cost = u64::from(cost);
        if let Some(shared) = &self.shared
            && shared.refund(&counter_key(account_id, spent.period_start), cost).await.is_ok()
        {
            return;
        }
        if let Some(mut e) = self.local.get_mut(account_id)
            && e.0 == spent.period_start
        {
            e.1 = e.1.saturating_sub(cost);
        }
    }

    /// Forgets counts of periods that have ended; keeps memory bounded by active accounts.
    pub fn prune(&self) {
        let now = self.now();
        // A month is the longest period: a count from before this month's start is over,
        // whatever its period (a day's count from earlier this month is reset on next use).
        let oldest = keygate_core::quota::QuotaPeriod::Month.start(now).timestamp();
        self.local.retain(|_, (start, _)| *start >= oldest);
    }

    pub fn spawn_pruner(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
            loop {
                tick.tick().await;
                match me.upgrade() {
                    Some(q) => q.prune(),
                    None => break,
                }
            }
        });
    }
}

/// `kg:q:{a:<account>}:<period start>`: the account is the Redis Cluster hash tag.
fn counter_key(account_id: &str, start: i64) -> String {
    format!("kg:q:{{a:{account_id}}}:{start}")
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use chrono::TimeZone;
    use keygate_core::quota::QuotaPeriod;

    use super::*;

    fn driven(at: &Arc<AtomicI64>) -> Clock {
        let at = Arc::clone(at);
        Arc::new(move || Utc.timestamp_opt(at.load(Ordering::SeqCst), 0).single().unwrap_or_default())
    }

    #[tokio::test]
    async fn a_daily_quota_refuses_until_midnight_utc_and_refunds_give_back() {
        let t0 = Utc.with_ymd_and_hms(2026, 5, 31, 23, 59, 0).single().expect("time").timestamp();
        let at = Arc::new(AtomicI64::new(t0));
        let q = QuotaCounter::new(None, FailurePolicy::FailClosed, driven(&at), Arc::new(Metrics::new()));
        let quota = Quota { requests: 3, period: QuotaPeriod::Day };
        let first = q.spend("acc_1", &quota, 2).await.expect("decided");
        assert!(first.allowed && first.remaining == 1 && first.reset_seconds == 60, "{first:?}");
        let refused = q.spend("acc_1", &quota, 2).await.expect("decided");
        assert!(!refused.allowed && refused.remaining == 1, "a refusal spends nothing: {refused:?}");
        assert!(q.spend("acc_2", &quota, 3).await.expect("decided").allowed, "accounts count apart");
        q.refund("acc_1", &first, 2).await;
        assert_eq!(q.spend("acc_1", &quota, 3).await.expect("decided").remaining, 0);
        at.store(t0 + 60, Ordering::SeqCst);
        let next_day = q.spend("acc_1", &quota, 3).await.expect("decided");
        assert!(next_day.allowed && next_day.reset_seconds == 86_400, "{next_day:?}");
        q.prune();
        assert!(q.local.get("acc_2").is_none(), "yesterday's count is forgotten");
    }
}
