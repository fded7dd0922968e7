//! Usage counting without a storage write per request: uses gather in memory and are flushed
//! as increments in batches (every `flush_interval_ms`, and once more at shutdown), so counts
//! from many nodes add up and none are lost on a clean stop.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use keygate_store::{Store, UsageDelta};

use crate::metrics::Metrics;

#[derive(Debug, Clone)]
struct Pending {
    requests: i64,
    last_used_at: DateTime<Utc>,
    last_used_ip: IpAddr,
}

pub struct UsageRecorder {
    /// (key id, UTC day) → uses not yet flushed.
    pending: DashMap<(String, chrono::NaiveDate), Pending>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl UsageRecorder {
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        UsageRecorder { pending: DashMap::new(), store, metrics }
    }

    pub fn record(&self, key_id: &str, ip: IpAddr, now: DateTime<Utc>) {
        let mut p = self
            .pending
            .entry((key_id.to_owned(), now.date_naive()))
            .or_insert(Pending { requests: 0, last_used_at: now, last_used_ip: ip });
        p.requests += 1;
        if now >= p.last_used_at {
            p.last_used_at = now;
            p.last_used_ip = ip;
        }
    }

    /// Writes everything gathered so far. On failure the deltas go back into the map, so a
    /// storage outage delays counts but does not lose them.
    pub async fn flush(&self) -> Result<usize, keygate_store::StoreError> {
        let keys: Vec<_> = self.pending.iter().map(|e| e.key().clone()).collect();
        let mut deltas = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(((key_id, day), p)) = self.pending.remove(&k) {
                deltas.push(UsageDelta {
                    key_id,
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
                    let ip = d.last_used_ip.as_deref().and_then(|s| s.parse().ok()).unwrap_or(IpAddr::from([0, 0, 0, 0]));
                    let mut p = self
                        .pending
                        .entry((d.key_id, d.day))
                        .or_insert(Pending { requests: 0, last_used_at: d.last_used_at, last_used_ip: ip });
                    p.requests += d.requests;
                    if d.last_used_at > p.last_used_at {
                        p.last_used_at = d.last_used_at;
                        p.last_used_ip = ip;
                    }
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
