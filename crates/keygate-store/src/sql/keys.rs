//! API keys: mint, look up, list, patch, revoke, roll. Every lookup is scoped to the account
//! and to a live (not deleted) account; a key of another account is `NotFound`.

use sqlx::Row;

use super::rows::{self, millis, opt_millis};
use super::{SqlStore, Tx, audit, fetch_limit, lock_live_account, page_of};
use crate::error::{Conflict, StoreError, StoreResult};
use crate::model::*;

/// Inserts a key and answers it as stored (times at millisecond precision).
async fn insert_key(tx: &mut Tx, k: &NewKey) -> StoreResult<ApiKey> {
    let row = sqlx::query(
        "INSERT INTO api_keys (id, digest, key_part, class, name, account_id, user_id, authority, scopes, \
         role_id, created_at, created_by, expires_at, starts_at, staged, revoked_at, last_used_at, last_used_ip, \
         request_count, usage_limit, usage_used, rate_limit, ip_allowlist, metadata, rate_limits, \
         refill_amount, refill_interval, refilled_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, NULL, NULL, NULL, \
         0, $16, 0, $17, $18, $19, $20, $21, $22, $23) RETURNING *",
    )
    .bind(&k.id)
    .bind(&k.digest)
    .bind(&k.key_part)
    .bind(k.class.as_str())
    .bind(&k.name)
    .bind(&k.account_id)
    .bind(k.user_id.as_deref())
    .bind(k.authority.as_str())
    .bind(rows::to_json(&k.scopes)?)
    .bind(k.role_id.as_deref())
    .bind(millis(k.created_at))
    .bind(&k.created_by)
    .bind(opt_millis(k.expires_at))
    .bind(opt_millis(k.starts_at))
    .bind(i64::from(k.staged))
    .bind(k.usage_limit)
    .bind(k.rate_limit.as_ref().map(rows::to_json).transpose()?)
    .bind(rows::to_json(&k.ip_allowlist)?)
    .bind(rows::to_json(&k.metadata)?)
    .bind(rows::named_limits(&k.rate_limits)?)
    .bind(k.refill.map(|r| r.amount))
    .bind(k.refill.map(|r| r.interval.as_str()))
    .bind(opt_millis(k.refilled_at))
    .fetch_one(&mut **tx)
    .await?;
    rows::api_key(&row)
}

/// Counts the account's live keys (not revoked, not expired at `now`) inside `tx`.
async fn live_keys(tx: &mut Tx, account_id: &str, now: Time) -> StoreResult<i64> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM api_keys WHERE account_id = $1 AND revoked_at IS NULL \
         AND (expires_at IS NULL OR expires_at > $2)",
    )
    .bind(account_id)
    .bind(millis(now))
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.try_get("n")?)
}

/// The key row of a live account, locked for the rest of `tx` on PostgreSQL.
async fn lock_key(tx: &mut Tx, s: &SqlStore, account_id: &str, key_id: &str) -> StoreResult<ApiKey> {
    let row = sqlx::query(s.dialect.lock_key_sql())
        .bind(account_id)
        .bind(key_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    rows::api_key(&row)
}

/// Mints a key. The live-key count is taken under the account row lock (PostgreSQL) or the
/// single writer (SQLite), so concurrent mints cannot overshoot the plan's limit. "Now" for
/// expiry is the key's own `created_at`.
pub(crate) async fn create_key(
    s: &SqlStore,
    key: NewKey,
    max_live_keys: Option<u32>,
    audit: Vec<NewAudit>,
) -> StoreResult<ApiKey> {
    let mut tx = s.begin().await?;
    lock_live_account(&mut tx, s.dialect, &key.account_id).await?;
    if let Some(max) = max_live_keys
        && live_keys(&mut tx, &key.account_id, key.created_at).await? >= i64::from(max)
    {
        return Err(StoreError::KeyLimitReached);
    }
    let created = insert_key(&mut tx, &key).await?;
    audit::append(&mut tx, s.dialect, audit).await?;
    tx.commit().await?;
    Ok(created)
}

pub(crate) async fn key_by_handle(s: &SqlStore, account_id: &str, handle: &str) -> StoreResult<Option<ApiKey>> {
    sqlx::query(
        "SELECT k.* FROM api_keys k JOIN accounts a ON a.id = k.account_id AND a.deleted_at IS NULL \
         WHERE k.account_id = $1 AND (k.id = $2 OR k.key_part = $2)",
    )
    .bind(account_id)
    .bind(handle)
    .fetch_optional(s.reader())
    .await?
    .map(|r| rows::api_key(&r))
    .transpose()
}

/// Newest first (ids sort by creation). The status filter is `ApiKey::status` written in SQL:
/// revoked is final; then staged or not yet started is inactive; then past `expires_at` is
/// expired; the rest is active.
pub(crate) async fn list_keys(
    s: &SqlStore,
    account_id: &str,
    filter: &KeyFilter,
    now: Time,
    page: &PageRequest,
) -> StoreResult<Page<ApiKey>> {
    let found = sqlx::query(
        "SELECT k.* FROM api_keys k JOIN accounts a ON a.id = k.account_id AND a.deleted_at IS NULL \
         WHERE k.account_id = $1 \
         AND ($2 IS NULL OR k.id < $2) \
         AND ($3 IS NULL OR k.class = $3) \
         AND ($4 IS NULL OR (k.class = 'user' AND k.user_id = $4)) \
         AND ($5 IS NULL OR $5 = CASE \
             WHEN k.revoked_at IS NOT NULL THEN 'revoked' \
             WHEN k.staged = 1 OR (k.starts_at IS NOT NULL AND k.starts_at > $6) THEN 'inactive' \
             WHEN k.expires_at IS NOT NULL AND k.expires_at <= $6 THEN 'expired' \
             ELSE 'active' END) \
         ORDER BY k.id DESC LIMIT $7",
    )
    .bind(account_id)
    .bind(page.cursor.as_deref())
    .bind(filter.class.map(KeyClass::as_str))
    .bind(filter.user_id.as_deref())
    .bind(filter.status.map(KeyStatus::as_str))
    .bind(millis(now))
    .bind(fetch_limit(page.limit))
    .fetch_all(s.reader())
    .await?;
    let items = found.iter().map(rows::api_key).collect::<StoreResult<Vec<_>>>()?;
    Ok(page_of(items, page.limit, |k| k.id.clone()))
}

/// Applies a patch to the locked row in memory, then writes back only the patchable columns:
/// counters and `last_used_*`, which other nodes increment concurrently, are never written here.
pub(crate) async fn update_key(
    s: &SqlStore,
    account_id: &str,
    key_id: &str,
    patch: &KeyPatch,
    audit: Vec<NewAudit>,
) -> StoreResult<ApiKey> {
    let mut tx = s.begin().await?;
    let mut k = lock_key(&mut tx, s, account_id, key_id).await?;
    if k.revoked_at.is_some() {
        return Err(StoreError::Conflict(Conflict::KeyRevoked));
    }
    let p = patch.clone();
    if let Some(v) = p.name {
        k.name = v;
    }
    if let Some(v) = p.expires_at {
        k.expires_at = v;
    }
    if let Some(v) = p.starts_at {
        k.starts_at = v;
    }
    if let Some(v) = p.staged {
        k.staged = v;
    }
    if let Some(v) = p.scopes {
        k.scopes = v;
    }
    if let Some(v) = p.role_id {
        k.role_id = v;
    }
    if let Some(v) = p.rate_limit {
        k.rate_limit = v;
    }
    if let Some(v) = p.ip_allowlist {
        k.ip_allowlist = v;
    }
    if let Some(v) = p.metadata {
        k.metadata = v;
    }
    if let Some(v) = p.usage_limit {
        k.usage_limit = v;
    }
    if let Some(v) = p.rate_limits {
        k.rate_limits = v;
    }
    if let Some((refill, at)) = p.refill {
        k.refill = refill;
        k.refilled_at = at;
    }
    let row = sqlx::query(
        "UPDATE api_keys SET name = $2, expires_at = $3, starts_at = $4, staged = $5, scopes = $6, role_id = $7, \
         rate_limit = $8, ip_allowlist = $9, metadata = $10, usage_limit = $11, rate_limits = $12, \
         refill_amount = $13, refill_interval = $14, refilled_at = $15 WHERE id = $1 RETURNING *",
    )
    .bind(&k.id)
    .bind(&k.name)
    .bind(opt_millis(k.expires_at))
    .bind(opt_millis(k.starts_at))
    .bind(i64::from(k.staged))
    .bind(rows::to_json(&k.scopes)?)
    .bind(k.role_id.as_deref())
    .bind(k.rate_limit.as_ref().map(rows::to_json).transpose()?)
    .bind(rows::to_json(&k.ip_allowlist)?)
    .bind(rows::to_json(&k.metadata)?)
    .bind(k.usage_limit)
    .bind(rows::named_limits(&k.rate_limits)?)
    .bind(k.refill.map(|r| r.amount))
    .bind(k.refill.map(|r| r.interval.as_str()))
    .bind(opt_millis(k.refilled_at))
    .fetch_one(&mut *tx)
    .await?;
    let updated = rows::api_key(&row)?;
    audit::append(&mut tx, s.dialect, audit).await?;
    tx.commit().await?;
    Ok(updated)
}

/// Revocation is final and keeps its first time: revoking twice answers the key unchanged.
pub(crate) async fn revoke_key(
    s: &SqlStore,
    account_id: &str,
    key_id: &str,
    at: Time,
    audit: Vec<NewAudit>,
) -> StoreResult<ApiKey> {
    let mut tx = s.begin().await?;
    let row = sqlx::query(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3) WHERE account_id = $1 AND id = $2 AND EXISTS \
         (SELECT 1 FROM accounts a WHERE a.id = api_keys.account_id AND a.deleted_at IS NULL) RETURNING *",
    )
    .bind(account_id)
    .bind(key_id)
    .bind(millis(at))
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    let key = rows::api_key(&row)?;
    audit::append(&mut tx, s.dialect, audit).await?;
    tx.commit().await?;
    Ok(key)
}

/// Mints `successor` and ends the old key in one transaction: revoked at `at` without
/// `old_expires_at`, otherwise expiring at the earlier of its current expiry and
/// `old_expires_at` (a roll never extends a key's life).
///
/// A roll hands over credits, never mints them: the successor starts with the old key's
/// `usage_used`, and an old key kept through an overlap has none left (its `usage_used` becomes
/// its `usage_limit`), so rolling cannot refill or double a usage limit. The old key also
/// loses its `refill` (a key kept through an overlap must not get credits back at the next
/// period), and the successor carries the old key's `refilled_at` (given in `successor`).
///
/// A key is rolled once: the old key is claimed with a conditional UPDATE (`rolled_to IS
/// NULL`) before the successor exists, so of two concurrent rolls exactly one wins, on every
/// backend and whatever the isolation level; the other gets `Conflict::KeyRolled`.
pub(crate) async fn roll_key(
    s: &SqlStore,
    account_id: &str,
    key_id: &str,
    successor: NewKey,
    old_expires_at: Option<Time>,
    at: Time,
    audit: Vec<NewAudit>,
) -> StoreResult<(ApiKey, ApiKey)> {
    if successor.account_id != account_id {
        return Err(StoreError::Other("roll_key: successor belongs to another account".into()));
    }
    let mut tx = s.begin().await?;
    let old = lock_key(&mut tx, s, account_id, key_id).await?;
    if old.rolled_to.is_some() {
        return Err(StoreError::Conflict(Conflict::KeyRolled));
    }
    if old.revoked_at.is_some() {
        return Err(StoreError::Conflict(Conflict::KeyRevoked));
    }
    let (revoked_at, expires_at) = match old_expires_at {
        None => (Some(at), old.expires_at),
        Some(end) => (None, Some(old.expires_at.map_or(end, |e| e.min(end)))),
    };
    // Read under the row lock (PostgreSQL) or the single writer (SQLite): no use of the old
    // key's credits can fall between this and the hand-over.
    let spent = old.usage_used;
    let old_spent = match (old.usage_limit, revoked_at) {
        (Some(limit), None) => limit.max(spent),
        _ => spent,
    };
    let row = sqlx::query(
        "UPDATE api_keys SET revoked_at = $2, expires_at = $3, rolled_to = $4, usage_used = $5, \
         refill_amount = NULL, refill_interval = NULL \
         WHERE id = $1 AND rolled_to IS NULL AND revoked_at IS NULL RETURNING *",
    )
    .bind(&old.id)
    .bind(opt_millis(revoked_at))
    .bind(opt_millis(expires_at))
    .bind(&successor.id)
    .bind(old_spent)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::Conflict(Conflict::KeyRolled))?;
    let old = rows::api_key(&row)?;
    let mut new = insert_key(&mut tx, &successor).await?;
    if successor.usage_limit.is_some() && spent > 0 {
        let row = sqlx::query("UPDATE api_keys SET usage_used = $2 WHERE id = $1 RETURNING *")
            .bind(&new.id)
            .bind(spent)
            .fetch_one(&mut *tx)
            .await?;
        new = rows::api_key(&row)?;
    }
    audit::append(&mut tx, s.dialect, audit).await?;
    tx.commit().await?;
    Ok((new, old))
}
