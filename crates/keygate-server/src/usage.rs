//! Usage counting without a storage write per request: uses gather in memory and are flushed
//! as increments in batches (every `flush_interval_ms`, and once more at shutdown), so counts
//! from many nodes add up and none are lost on a clean stop.

pub mod retention;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use keygate_store::{Outcome, OutcomeCounts, Store, UsageDelta};

use crate::metrics::Metrics;

#[derive(Debug, Clone)]
struct Pending {
    /// Requests per outcome: counting one is an indexed add, whatever the outcome.
    outcomes: OutcomeCounts,
    last_used_at: DateTime<Utc>,
    last_used_ip: IpAddr,
}

/// One key's uses not yet flushed, per UTC hour (hours since 1970): one hour, or two around
/// the turn of an hour.
#[derive(Debug, Default)]
struct KeyUsage {
    hours: Vec<(i64, Pending)>,
}

impl KeyUsage {
    fn add(&mut self, hour: i64, outcomes: &OutcomeCounts, at: DateTime<Utc>, ip: IpAddr) {
        self.counts_of(hour, at, ip).merge(outcomes);
    }

    fn add_one(&mut self, hour: i64, outcome: Outcome, at: DateTime<Utc>, ip: IpAddr) {
        self.counts_of(hour, at, ip).add(outcome, 1);
    }

    /// The counters of `hour`, after noting a use at `at` from `ip` (the latest use is kept).
    fn counts_of(&mut self, hour: i64, at: DateTime<Utc>, ip: IpAddr) -> &mut OutcomeCounts {
        let i = match self.hours.iter().position(|(h, _)| *h == hour) {
            Some(i) => i,
            None => {
                let fresh = Pending { outcomes: OutcomeCounts::default(), last_used_at: at, last_used_ip: ip };
                self.hours.push((hour, fresh));
                self.hours.len() - 1
            }
        };
        let p = &mut self.hours[i].1;
        if at >= p.last_used_at {
            p.last_used_at = at;
            p.last_used_ip = ip;
        }
        &mut p.outcomes
    }
}

/// The hour `at` falls in, as hours since 1970 (UTC).
fn hour_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(3600)
}

pub struct UsageRecorder {
    /// Key id → uses not yet flushed. Keyed by the id alone so that a use of a key already
    /// pending is found with the borrowed id: no allocation per request.
    pending: DashMap<String, KeyUsage, crate::FastHash>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl UsageRecorder {
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        UsageRecorder { pending: DashMap::default(), store, metrics }
    }

    /// Counts one request made with a known key, granted (`Outcome::Valid`) or refused.
    pub fn record(&self, key_id: &str, outcome: Outcome, ip: IpAddr, now: DateTime<Utc>) {
        let hour = hour_of(now);
        if let Some(mut usage) = self.pending.get_mut(key_id) {
            usage.add_one(hour, outcome, now, ip);
            return;
        }
        self.pending.entry(key_id.to_owned()).or_default().add_one(hour, outcome, now, ip);
    }

    /// Writes everything gathered so far. On failure the deltas go back into the map, so a
    /// storage outage delays counts but does not lose them.
    pub async fn flush(&self) -> Result<usize, keygate_store::StoreError> {
        let keys: Vec<_> = self.pending.iter().map(|e| e.key().clone()).collect();
        let mut deltas = Vec::with_capacity(keys.len());
        for k in keys {
            let Some((key_id, usage)) = self.pending.remove(&k) else { continue };
            for (hour, p) in usage.hours {
                let Some(start) = DateTime::from_timestamp(hour * 3600, 0) else { continue };
                deltas.push(UsageDelta {
                    key_id: key_id.clone(),
                    hour: start,
                    outcomes: p.outcomes,
                    last_used_at: p.last_used_at,
                    last_used_ip: Some(p.last_used_ip.to_string()),
                });
            }
        }
        if deltas.is_empty() {
            return Ok(0);
        }
        let started = std::time::Instant::now();
        match self.store.record_usage(&deltas).await {
            Ok(()) => {
                self.metrics.usage_flush_seconds.observe(started.elapsed().as_secs_f64());
                Ok(deltas.len())
            }
            Err(e) => {
                for d in deltas {
                    let ip =
                        d.last_used_ip.as_deref().and_then(|s| s.parse().ok()).unwrap_or(IpAddr::from([0, 0, 0, 0]));
                    self.pending.entry(d.key_id).or_default().add(hour_of(d.hour), &d.outcomes, d.last_used_at, ip);
                }
                Err(e)
            }
        }
    }

    /// Flushes every `interval` until `stop` fires, then once more.
    pub fn spawn_flusher(
        self: &Arc<Self>,
        interval: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(e) = me.flush().await {
                            tracing::warn!(error = %e, "usage flush failed; will retry");
                        }
                    }
                    _ = stop.cancelled() => break,
                }
            }
            for attempt in 0..3 {
                match me.flush().await {
                    Ok(n) => {
                        tracing::info!(keys = n, "usage flushed at shutdown");
                        break;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, attempt, "usage flush at shutdown failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn uses_of_a_key_are_counted_per_utc_hour_and_outcome_with_the_latest_use_kept() {
        let at = |h: u32, m: u32| Utc.with_ymd_and_hms(2026, 11, 23, h, m, 0).single().expect("time");
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let mut usage = KeyUsage::default();
        usage.add_one(hour_of(at(23, 59)), Outcome::Valid, at(23, 59), a);
        usage.add_one(hour_of(at(23, 58)), Outcome::RateLimited, at(23, 58), b); // late: counted, not the latest
        usage.add_one(hour_of(at(23, 10)), Outcome::Valid, at(23, 10), b);
        let next_hour = at(23, 59) + chrono::Duration::minutes(2);
        usage.add_one(hour_of(next_hour), Outcome::Revoked, next_hour, b);
        assert_eq!(usage.hours.len(), 2);
        let (hour, first) = &usage.hours[0];
        assert_eq!(*hour, at(23, 0).timestamp() / 3600);
        assert_eq!((first.outcomes.get(Outcome::Valid), first.outcomes.get(Outcome::RateLimited)), (2, 1));
        assert_eq!((first.last_used_at, first.last_used_ip), (at(23, 59), a));
        let (_, second) = &usage.hours[1];
        assert_eq!((second.outcomes.get(Outcome::Revoked), second.outcomes.total(), second.last_used_ip), (1, 1, b));
    }
}
