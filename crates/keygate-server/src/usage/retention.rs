//! Old hourly usage goes (docs/operations.md, "Usage retention"): hours are kept
//! [`HOURLY_KEEP_DAYS`] days, longer than the 8 days an hourly read may span, and deleted by a
//! background task once an hour (and at start), in batches of [`BATCH`] rows so no delete holds
//! the database's writer for long. Days are kept; nothing here touches them.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use keygate_store::Store;
use tokio_util::sync::CancellationToken;

/// Hourly counts are kept this many days (hourly reads span at most 8).
pub const HOURLY_KEEP_DAYS: i64 = 8;
/// Rows one delete statement removes at most.
pub const BATCH: u32 = 5_000;
const EVERY: Duration = Duration::from_secs(3600);
/// Between two full batches: room for the usage flush and other writers.
const PAUSE: Duration = Duration::from_millis(20);

/// Prunes at start and then every hour until `stop` fires. Every node does it; the deletes
/// of several nodes at once are harmless (each removes what is still there).
pub fn spawn_pruner(store: Arc<dyn Store>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let pruned = prune(store.as_ref(), Utc::now(), &stop).await;
                    tracing::debug!(rows = pruned, "old hourly usage pruned");
                }
                _ = stop.cancelled() => break,
            }
        }
    })
}

/// Deletes every hourly row older than the horizon at `now`, batch after batch, until a
/// batch comes back short, a delete fails (the next hour tries again) or `stop` fires.
/// Answers the rows deleted.
pub async fn prune(store: &dyn Store, now: DateTime<Utc>, stop: &CancellationToken) -> u64 {
    let before = now - chrono::Duration::days(HOURLY_KEEP_DAYS);
    let mut total = 0;
    loop {
        match store.prune_usage_hours(before, BATCH).await {
            Ok(n) => {
                total += n;
                if n < u64::from(BATCH) || stop.is_cancelled() {
                    return total;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not prune old hourly usage; will retry in an hour");
                return total;
            }
        }
        tokio::time::sleep(PAUSE).await;
    }
}
