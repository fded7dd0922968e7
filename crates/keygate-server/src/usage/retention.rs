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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use sqlx::Row;

    use super::*;

    /// More old rows than two batches, and some recent ones: every old row goes, batch after
    /// batch, and nothing recent.
    #[tokio::test]
    async fn a_backlog_of_old_hours_is_pruned_in_batches_and_recent_hours_stay() {
        let dir = tempfile::tempdir().expect("tmp");
        let url = format!("sqlite://{}", dir.path().join("prune.db").display());
        let store = keygate_store::open(&url).await.expect("store");
        let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&url).await.expect("pool");
        let now = Utc.with_ymd_and_hms(2026, 3, 20, 12, 0, 0).single().expect("now");
        let old = (now - chrono::Duration::days(HOURLY_KEEP_DAYS + 1)).timestamp_millis();
        let recent = (now - chrono::Duration::days(HOURLY_KEEP_DAYS - 1)).timestamp_millis();
        let old_rows = i64::from(BATCH) * 2 + 17;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n < {old_rows} - 1)
             INSERT INTO usage_hourly (key_id, start, outcome, account_id, n)
             SELECT printf('key_%08d', n), {old} - (n % 24) * 3600000, 'VALID', 'acc_x', 1 FROM i;
             INSERT INTO usage_hourly (key_id, start, outcome, account_id, n)
             VALUES ('key_recent', {recent}, 'VALID', 'acc_x', 5);"
        )))
        .execute(&pool)
        .await
        .expect("seed");
        assert_eq!(prune(store.as_ref(), now, &CancellationToken::new()).await, old_rows as u64);
        let left = sqlx::query("SELECT key_id FROM usage_hourly").fetch_all(&pool).await.expect("left");
        let left: Vec<String> = left.iter().map(|r| r.get("key_id")).collect();
        assert_eq!(left, ["key_recent"]);
    }
}
