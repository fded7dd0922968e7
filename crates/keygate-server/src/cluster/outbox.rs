//! The invalidation outbox: how a lone SQLite server learns of changes that another process
//! made to its database file — `keygate admin` revoking a key or changing a plan next to a
//! running server. That process appends the event ([`publish`]); the server reads what is new
//! every [`POLL_INTERVAL`] and applies it as a PostgreSQL node applies a NOTIFY. So a revocation
//! from the shell is honoured within a fraction of a second, not the cache TTL.
//!
//! The server's own changes never go through here: it applies them to its epochs directly.
//! PostgreSQL deployments use `pg_bus`; the table exists there only to keep the backends alike.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use keygate_store::{Store, StoreResult};
use tokio_util::sync::CancellationToken;

use crate::auth::invalidation::{Epochs, Invalidation, InvalidationBus};
use crate::metrics::Metrics;

/// How often the server looks for new entries: one indexed read, so revocations from the
/// shell land well within the 1 s every node honours.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Entries read per poll; a longer backlog is read over the next polls.
const BATCH: u32 = 1000;
/// Entries older than this are pruned: a server that was down longer starts with an empty
/// cache and from the newest entry anyway.
const KEEP: chrono::Duration = chrono::Duration::hours(1);
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Records `inv` for the server that shares this database (the admin CLI's side).
pub(crate) async fn publish(store: &dyn Store, inv: &Invalidation) -> StoreResult<()> {
    let payload = serde_json::to_string(inv).unwrap_or_else(|_| r#"{"kind":"all"}"#.to_owned());
    store.append_invalidation(&payload, Utc::now()).await.map(|_| ())
}

/// The outbox as an invalidation bus: what a process beside a SQLite server (`keygate admin`)
/// publishes its changes through. A failure is logged, not raised: the change itself is
/// committed, and the server catches up within `cache.ttl_seconds`.
pub(crate) struct OutboxBus {
    store: Arc<dyn Store>,
}

impl OutboxBus {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        OutboxBus { store }
    }
}

#[async_trait::async_trait]
impl InvalidationBus for OutboxBus {
    async fn publish(&self, inv: &Invalidation) {
        if let Err(cause) = publish(self.store.as_ref(), inv).await {
            tracing::warn!(%cause, "running servers were not notified; they catch up within cache.ttl_seconds");
        }
    }
}

/// Polls the outbox in the background until `stop`. Starts after the newest entry: what came
/// before concerns no decision this fresh process has cached.
pub(crate) async fn spawn_poller(
    store: Arc<dyn Store>,
    epochs: Arc<Epochs>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let start = match store.last_invalidation().await {
        Ok(seq) => Some(seq),
        Err(cause) => {
            tracing::warn!(%cause, "cannot read the invalidation outbox yet; retrying in the background");
            None
        }
    };
    tokio::spawn(run(store, start, epochs, metrics, stop));
}

async fn run(
    store: Arc<dyn Store>,
    mut last: Option<i64>,
    epochs: Arc<Epochs>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pruned_at = tokio::time::Instant::now();
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let polled = match last {
            Some(after) => poll(&*store, after, &epochs, &metrics).await.map(Some),
            // Entries appended while the outbox was unreadable are unknown: forget everything.
            None => store.last_invalidation().await.map(|seq| {
                epochs.apply(&Invalidation::All);
                Some(seq)
            }),
        };
        match polled {
            Ok(seq) => {
                if failing {
                    tracing::info!("invalidation outbox readable again");
                    failing = false;
                }
                last = seq;
            }
            Err(cause) => {
                if !failing {
                    tracing::warn!(%cause, "cannot read the invalidation outbox; retrying every poll");
                    failing = true;
                }
            }
        }
        if pruned_at.elapsed() >= PRUNE_EVERY {
            pruned_at = tokio::time::Instant::now();
            if let Err(cause) = store.prune_invalidations(Utc::now() - KEEP).await {
                tracing::debug!(%cause, "could not prune the invalidation outbox");
            }
        }
    }
}

/// Applies every entry after `after`; answers the newest sequence number applied.
async fn poll(store: &dyn Store, after: i64, epochs: &Epochs, metrics: &Metrics) -> StoreResult<i64> {
    let mut last = after;
    for (seq, payload) in store.invalidations_after(after, BATCH).await? {
        super::receive(&payload, epochs, metrics);
        last = seq;
    }
    Ok(last)
}
