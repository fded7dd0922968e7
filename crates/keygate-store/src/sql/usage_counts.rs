//! Usage counters by outcome (migration 0005): what nodes flush, what `/v1/keys/{key}/usage`
//! and `/v1/usage` read, and the pruning of old hours. Counters are always incremented in
//! place (`n = n + excluded.n`), never read-modify-written, so any number of nodes can flush
//! at once without losing counts.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;

use super::SqlStore;
use super::rows::{from_millis, get, millis};
use crate::error::StoreResult;
use crate::model::Time;
use crate::usage::*;

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// One transaction per batch. Deltas are applied in (key, hour) order and the account rows
/// last, in (account, day, outcome) order, so two nodes flushing overlapping batches lock
/// rows in the same order and cannot deadlock. Deltas of unknown keys are skipped rather
/// than failing the batch (and losing everyone else's counts).
pub(crate) async fn record_usage(s: &SqlStore, deltas: &[UsageDelta]) -> StoreResult<()> {
    let mut sorted: Vec<&UsageDelta> = deltas.iter().filter(|d| d.outcomes.total() != 0).collect();
    if sorted.is_empty() {
        return Ok(());
    }
    sorted.sort_by(|a, b| (&a.key_id, a.hour).cmp(&(&b.key_id, b.hour)));
    let mut account_days: BTreeMap<(String, i64, Outcome), i64> = BTreeMap::new();
    let mut tx = s.begin().await?;
    for d in sorted {
        // In SQL, every SET expression sees the row as it was, so both CASEs compare against
        // the old last_used_at: last-used time and address move forward together, only.
        let updated = sqlx::query(
            "UPDATE api_keys SET request_count = request_count + $2, success_count = success_count + $3, \
             last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < $4 THEN $4 ELSE last_used_at END, \
             last_used_ip = CASE WHEN last_used_at IS NULL OR last_used_at < $4 \
                 THEN COALESCE($5, last_used_ip) ELSE last_used_ip END \
             WHERE id = $1 RETURNING account_id",
        )
        .bind(&d.key_id)
        .bind(d.outcomes.total())
        .bind(d.outcomes.get(Outcome::Valid))
        .bind(millis(d.last_used_at))
        .bind(d.last_used_ip.as_deref())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = updated else { continue };
        let account_id: String = get(&row, "account_id")?;
        let hour = millis(d.hour).div_euclid(HOUR_MS) * HOUR_MS;
        let day = hour.div_euclid(DAY_MS) * DAY_MS;
        for (outcome, n) in d.outcomes.nonzero() {
            sqlx::query(
                "INSERT INTO usage_hourly (key_id, start, outcome, account_id, n) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (key_id, start, outcome) DO UPDATE SET n = usage_hourly.n + excluded.n",
            )
            .bind(&d.key_id)
            .bind(hour)
            .bind(outcome.as_str())
            .bind(&account_id)
            .bind(n)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO usage_daily (account_id, key_id, outcome, start, n) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (account_id, key_id, outcome, start) DO UPDATE SET n = usage_daily.n + excluded.n",
            )
            .bind(&account_id)
            .bind(&d.key_id)
            .bind(outcome.as_str())
            .bind(day)
            .bind(n)
            .execute(&mut *tx)
            .await?;
            *account_days.entry((account_id.clone(), day, outcome)).or_default() += n;
        }
    }
    for ((account_id, day, outcome), n) in account_days {
        sqlx::query(
            "INSERT INTO usage_account_daily (account_id, start, outcome, n) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (account_id, start, outcome) DO UPDATE SET n = usage_account_daily.n + excluded.n",
        )
        .bind(&account_id)
        .bind(day)
        .bind(outcome.as_str())
        .bind(n)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The key's buckets with any count in `[from, to]` (bucket starts), oldest first.
pub(crate) async fn key_usage(
    s: &SqlStore,
    account_id: &str,
    key_id: &str,
    granularity: Granularity,
    from: Time,
    to: Time,
) -> StoreResult<Vec<UsageBucket>> {
    let sql = match granularity {
        Granularity::Hour => {
            "SELECT start, outcome, n FROM usage_hourly \
             WHERE key_id = $2 AND account_id = $1 AND start >= $3 AND start <= $4"
        }
        Granularity::Day => {
            "SELECT start, outcome, n FROM usage_daily \
             WHERE account_id = $1 AND key_id = $2 AND start >= $3 AND start <= $4"
        }
    };
    let found = sqlx::query(sql)
        .bind(account_id)
        .bind(key_id)
        .bind(millis(from))
        .bind(millis(to))
        .fetch_all(s.reader())
        .await?;
    buckets(&found)
}

/// The account's days in `[from, to]` with any count, oldest first, summed over its keys.
pub(crate) async fn account_usage_by_day(
    s: &SqlStore,
    account_id: &str,
    from: Time,
    to: Time,
) -> StoreResult<Vec<UsageBucket>> {
    let found = sqlx::query(
        "SELECT start, outcome, n FROM usage_account_daily WHERE account_id = $1 AND start >= $2 AND start <= $3",
    )
    .bind(account_id)
    .bind(millis(from))
    .bind(millis(to))
    .fetch_all(s.reader())
    .await?;
    buckets(&found)
}

/// Each key of the account with any count on the days in `[from, to]`: its totals, by key id.
/// One ordered scan of the account's part of `usage_daily` (its primary key begins with
/// account, key, outcome), aggregated as it goes; the names join only the result.
pub(crate) async fn account_usage_by_key(
    s: &SqlStore,
    account_id: &str,
    from: Time,
    to: Time,
) -> StoreResult<Vec<KeyUsageTotal>> {
    let found = sqlx::query(
        "SELECT t.key_id, k.name, t.outcome, t.n FROM \
         (SELECT key_id, outcome, CAST(SUM(n) AS BIGINT) AS n FROM usage_daily \
          WHERE account_id = $1 AND start >= $2 AND start <= $3 GROUP BY key_id, outcome) t \
         JOIN api_keys k ON k.id = t.key_id ORDER BY t.key_id",
    )
    .bind(account_id)
    .bind(millis(from))
    .bind(millis(to))
    .fetch_all(s.reader())
    .await?;
    let mut totals: Vec<KeyUsageTotal> = Vec::new();
    for row in &found {
        let key_id: String = get(row, "key_id")?;
        let Some(outcome) = outcome(row)? else { continue };
        let n: i64 = get(row, "n")?;
        match totals.last_mut() {
            Some(t) if t.key_id == key_id => t.outcomes.add(outcome, n),
            _ => {
                totals.push(KeyUsageTotal { key_id, name: get(row, "name")?, outcomes: OutcomeCounts::of(outcome, n) })
            }
        }
    }
    Ok(totals)
}

/// Deletes at most `limit` hourly rows of hours that began before `before`, oldest first;
/// answers how many went. Bounded so that one statement never holds the writer for long.
pub(crate) async fn prune_usage_hours(s: &SqlStore, before: Time, limit: u32) -> StoreResult<u64> {
    let done = sqlx::query(
        "DELETE FROM usage_hourly WHERE (key_id, start, outcome) IN \
         (SELECT key_id, start, outcome FROM usage_hourly WHERE start < $1 ORDER BY start LIMIT $2)",
    )
    .bind(millis(before))
    .bind(i64::from(limit))
    .execute(s.writer())
    .await?;
    Ok(done.rows_affected())
}

/// Rows of `(start, outcome, n)` as buckets, oldest first.
fn buckets(rows: &[AnyRow]) -> StoreResult<Vec<UsageBucket>> {
    let mut by_start: BTreeMap<i64, OutcomeCounts> = BTreeMap::new();
    for row in rows {
        let Some(outcome) = outcome(row)? else { continue };
        by_start.entry(get(row, "start")?).or_default().add(outcome, get(row, "n")?);
    }
    by_start.into_iter().map(|(start, outcomes)| Ok(UsageBucket { start: from_millis(start)?, outcomes })).collect()
}

/// The row's outcome; `None` for a code this version does not know (written by a newer
/// node): left out rather than failing the read.
fn outcome(row: &AnyRow) -> StoreResult<Option<Outcome>> {
    let code: String = get(row, "outcome")?;
    Ok(Outcome::from_code(&code))
}
