//! Usage counting without a storage write per request: uses gather in memory and are flushed
//! as increments in batches (every `flush_interval_ms`, and once more at shutdown), so counts
//! from many nodes add up and none are lost on a clean stop.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use dashmap::DashMap;
use keygate_store::{Store, UsageDelta};

use crate::metrics::Metrics;

#[derive(Debug, Clone)]
struct Pending {
    requests: i64,
    last_used_at: DateTime<Utc>,
    last_used_ip: IpAddr,
}

/// One key's uses not yet flushed, per UTC day: one day, or two around midnight.
#[derive(Debug, Default)]
struct KeyUsage {
    days: Vec<(NaiveDate, Pending)>,
}

impl KeyUsage {
    fn add(&mut self, day: NaiveDate, requests: i64, at: DateTime<Utc>, ip: IpAddr) {
        match self.days.iter_mut().find(|(d, _)| *d == day) {
            Some((_, p)) => {
                p.requests += requests;
                if at >= p.last_used_at {
                    p.last_used_at = at;
                    p.last_used_ip = ip;
                }
            }
            None => self.days.push((day, Pending { requests, last_used_at: at, last_used_ip: ip })),
        }
    }
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

    pub fn record(&self, key_id: &str, ip: IpAddr, now: DateTime<Utc>) {
        let day = now.date_naive();
        if let Some(mut usage) = self.pending.get_mut(key_id) {
            usage.add(day, 1, now, ip);
            return;
        }
        self.pending.entry(key_id.to_owned()).or_default().add(day, 1, now, ip);
    }

    /// Writes everything gathered so far. On failure the deltas go back into the map, so a
    /// storage outage delays counts but does not lose them.
    pub async fn flush(&self) -> Result<usize, keygate_store::StoreError> {
        let keys: Vec<_> = self.pending.iter().map(|e| e.key().clone()).collect();
        let mut deltas = Vec::with_capacity(keys.len());
        for k in keys {
            let Some((key_id, usage)) = self.pending.remove(&k) else { continue };
            for (day, p) in usage.days {
                deltas.push(UsageDelta {
                    key_id: key_id.clone(),
                    day,
                    requests: p.requests,
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
                    self.pending.entry(d.key_id).or_default().add(d.day, d.requests, d.last_used_at, ip);
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
    fn uses_of_a_key_are_counted_per_utc_day_with_the_latest_use_kept() {
        let at = |h: u32, m: u32| Utc.with_ymd_and_hms(2026, 11, 23, h, m, 0).single().expect("time");
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let mut usage = KeyUsage::default();
        usage.add(at(23, 59).date_naive(), 1, at(23, 59), a);
        usage.add(at(23, 58).date_naive(), 2, at(23, 58), b); // late: counted, not the latest
        let next_day = at(23, 59) + chrono::Duration::minutes(2);
        usage.add(next_day.date_naive(), 1, next_day, b);
        assert_eq!(usage.days.len(), 2);
        let (day, first) = &usage.days[0];
        assert_eq!(
            (*day, first.requests, first.last_used_at, first.last_used_ip),
            (at(0, 0).date_naive(), 3, at(23, 59), a)
        );
        assert_eq!((usage.days[1].1.requests, usage.days[1].1.last_used_ip), (1, b));
    }
}
