//! The invalidation outbox: what another process changed, for a server that polls it (a lone
//! SQLite server beside the admin CLI; PostgreSQL nodes use LISTEN/NOTIFY instead).

use super::SqlStore;
use super::rows::{get, millis};
use crate::error::StoreResult;
use crate::model::Time;

pub(crate) async fn append(s: &SqlStore, payload: &str, at: Time) -> StoreResult<i64> {
    let row = sqlx::query("INSERT INTO invalidations (payload, created_at) VALUES ($1, $2) RETURNING seq")
        .bind(payload)
        .bind(millis(at))
        .fetch_one(s.writer())
        .await?;
    get(&row, "seq")
}

pub(crate) async fn last(s: &SqlStore) -> StoreResult<i64> {
    let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS seq FROM invalidations").fetch_one(s.reader()).await?;
    get(&row, "seq")
}

pub(crate) async fn after(s: &SqlStore, after_seq: i64, limit: u32) -> StoreResult<Vec<(i64, String)>> {
    let rows = sqlx::query("SELECT seq, payload FROM invalidations WHERE seq > $1 ORDER BY seq LIMIT $2")
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(s.reader())
        .await?;
    rows.iter().map(|row| Ok((get(row, "seq")?, get(row, "payload")?))).collect()
}

pub(crate) async fn prune(s: &SqlStore, before: Time) -> StoreResult<u64> {
    let done =
        sqlx::query("DELETE FROM invalidations WHERE created_at < $1").bind(millis(before)).execute(s.writer()).await?;
    Ok(done.rows_affected())
}
