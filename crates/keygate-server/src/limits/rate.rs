//! Rate limiting per bucket (a key, a key on a route, a session user) with GCRA from
//! keygate-core.
//! In memory by default; with `redis_url`, one shared limit for every node through a
//! `SharedLimiter`, and the operator's policy decides while Redis is unreachable.
//!
//! A bucket keeps, beside its TAT, the emission interval it was written under, so a bucket
//! whose limit changed (a key's PATCH, its account's plan) carries its spent units over to the
//! new limit instead of its debt in the old limit's time (`ratelimit::carry_over`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use keygate_core::RateLimit;
use keygate_core::ratelimit::{Decision, carry_over, check};

use crate::config::FailurePolicy;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// A limit shared across nodes (Redis). Errors mean "could not decide".
#[async_trait::async_trait]
pub trait SharedLimiter: Send + Sync {
    async fn check(&self, bucket: &str, limit: &RateLimit, cost: u32) -> Result<Decision, String>;

    /// One round trip, bounded like a check, for `/readyz`.
    async fn ping(&self) -> Result<(), String> {
        Ok(())
    }
}

pub struct RateLimiter {
    /// bucket → (theoretical arrival time in ns since `epoch`, the emission interval in ns it
    /// was written under).
    local: DashMap<String, (u64, u64), crate::FastHash>,
    epoch: Instant,
    shared: Option<Arc<dyn SharedLimiter>>,
    policy: FailurePolicy,
    metrics: Arc<Metrics>,
    /// Seconds since `epoch` of the last logged shared-limit failure.
    last_failure_log: AtomicU64,
}

impl RateLimiter {
    pub fn new(shared: Option<Arc<dyn SharedLimiter>>, policy: FailurePolicy, metrics: Arc<Metrics>) -> Self {
        RateLimiter {
            local: DashMap::default(),
            epoch: Instant::now(),
            shared,
            policy,
            metrics,
            last_failure_log: AtomicU64::new(0),
        }
    }

    fn now_ns(&self) -> u64 {
        // Offset by one window so the first request never sits at zero.
        self.epoch.elapsed().as_nanos() as u64 + 1_000_000_000
    }

    pub async fn check(&self, bucket: &str, limit: &RateLimit, cost: u32) -> Result<Decision, ApiError> {
        if let Some(shared) = &self.shared {
            match shared.check(bucket, limit, cost).await {
                Ok(d) => return Ok(d),
                Err(cause) => {
                    self.metrics.shared_limit_failures.inc();
                    // Once per 10 s at most: an outage must not flood the logs (the counter
                    // in /metrics has every failure).
                    let now = self.epoch.elapsed().as_secs();
                    let last = self.last_failure_log.load(Ordering::Relaxed);
                    if (last == 0 || now >= last + 10)
                        && self
                            .last_failure_log
                            .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                            .is_ok()
                    {
                        tracing::warn!(%cause, policy = ?self.policy, "shared rate limit unavailable");
                    }
                    return match self.policy {
                        // Fail open still limits per node, so one node's share holds.
                        FailurePolicy::FailOpen => Ok(self.check_local(bucket, limit, cost)),
                        FailurePolicy::FailClosed => Err(ApiError::unavailable()),
                    };
                }
            }
        }
        Ok(self.check_local(bucket, limit, cost))
    }

    /// Whether requests can be decided: `Err` only when a shared limiter is configured with
    /// `fail_closed` and does not answer — then every limited request would get 503.
    pub async fn ready(&self) -> Result<(), String> {
        match (&self.shared, self.policy) {
            (Some(shared), FailurePolicy::FailClosed) => shared.ping().await,
            _ => Ok(()),
        }
    }

    fn check_local(&self, bucket: &str, limit: &RateLimit, cost: u32) -> Decision {
        let now = self.now_ns();
        // A bucket in use is found by `&str`; only a new one costs its name's allocation.
        let mut entry = match self.local.get_mut(bucket) {
            Some(entry) => entry,
            None => self.local.entry(bucket.to_owned()).or_insert((0, 0)),
        };
        let (tat, written) = *entry;
        let tat = (tat > 0).then(|| carry_over(tat, now, written, limit));
        let (decision, new_tat) = check(tat, now, limit, cost);
        if let Some(t) = new_tat {
            *entry = (t, limit.emission_interval_ns());
        }
        decision
    }

    /// Drops buckets whose allowance is whole again; keeps memory bounded by active keys.
    pub fn prune(&self) {
        let now = self.now_ns();
        self.local.retain(|_, (tat, _)| *tat > now);
    }

    pub fn spawn_pruner(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            loop {
                tick.tick().await;
                match me.upgrade() {
                    Some(l) => l.prune(),
                    None => break,
                }
            }
        });
    }
}
