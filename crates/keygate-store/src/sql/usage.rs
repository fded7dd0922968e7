//! What the authenticator touches: the one lookup on a cache miss and the usage-limit spend.
//! The flushed usage counters and their reads are in `usage_counts`.

use sqlx::Row;

use super::SqlStore;
use super::rows::{self, get};
use crate::error::{StoreError, StoreResult};
use crate::model::*;

/// One query: the key, its role (if any), its live account and, for a user key, the user's
/// current membership in that account.
pub(crate) async fn key_auth_by_digest(s: &SqlStore, digest: &str) -> StoreResult<Option<KeyAuth>> {
    let Some(row) = sqlx::query(
        "SELECT k.*, r.id AS r_id, r.permissions AS r_permissions, \
         a.id AS a_id, a.name AS a_name, a.url AS a_url, a.domain AS a_domain, a.plan AS a_plan, \
         a.trial_ends_at AS a_trial_ends_at, a.created_at AS a_created_at, a.limit_overrides AS a_limit_overrides, \
         m.authority AS m_authority \
         FROM api_keys k \
         LEFT JOIN roles r ON r.id = k.role_id AND r.account_id = k.account_id \
         LEFT JOIN accounts a ON a.id = k.account_id AND a.deleted_at IS NULL \
         LEFT JOIN memberships m ON k.class = 'user' AND m.account_id = k.account_id AND m.user_id = k.user_id \
         WHERE k.digest = $1",
    )
    .bind(digest)
    .fetch_optional(s.reader())
    .await?
    else {
        return Ok(None);
    };
    let key = rows::api_key(&row)?;
    // A role reference whose role is gone grants nothing (fails closed), as opposed to no role
    // at all, which restricts nothing.
    let role_permissions = match (&key.role_id, get::<Option<String>>(&row, "r_id")?) {
        (None, _) => None,
        (Some(_), None) => Some(Vec::new()),
        (Some(_), Some(_)) => Some(rows::json(&row, "r_permissions")?),
    };
    let member_authority = match get::<Option<String>>(&row, "m_authority")? {
        None => None,
        Some(_) => Some(rows::authority(&row, "m_authority")?),
    };
    Ok(Some(KeyAuth { key, role_permissions, account: rows::account_prefixed(&row)?, member_authority }))
}

/// Spends `cost` units in one conditional statement, so the limit holds exactly under any
/// concurrency, across nodes too: the row is updated only while the spend still fits, and the
/// database serializes updates of one row. Keys without a limit are not written at all.
///
/// A key with a refill whose `refilled_at` is before the start of the current period (`now`'s
/// day or month, UTC, passed in as `$3`/`$4`) is refilled in the same statement: its spent
/// count becomes `usage_limit - refill_amount` (so `refill_amount` are left: replaced, not
/// added) before this spend, and `refilled_at` the period's start. The comparison happens
/// under the row's write lock, so of two nodes crossing the boundary at once one refills and
/// the other sees it done. A refused spend writes nothing (the refill then happens at the
/// next spend that fits; readers use `ApiKey::usage_remaining_at`).
pub(crate) async fn consume_usage(s: &SqlStore, key_id: &str, cost: i64, now: Time) -> StoreResult<Option<i64>> {
    use keygate_core::QuotaPeriod;
    // Whether a refill is due: the same test in SET and WHERE (a macro, so the SQL stays a
    // literal). Every SET expression sees the row as it was, so both read the old `refilled_at`.
    macro_rules! due {
        () => {
            "(refill_amount IS NOT NULL AND refill_interval IS NOT NULL AND (refilled_at IS NULL \
             OR refilled_at < CASE WHEN refill_interval = 'day' THEN $3 ELSE $4 END))"
        };
    }
    const SQL: &str = concat!(
        "UPDATE api_keys SET usage_used = CASE WHEN ",
        due!(),
        " THEN usage_limit - refill_amount ELSE usage_used END + $2, refilled_at = CASE WHEN ",
        due!(),
        " THEN CASE WHEN refill_interval = 'day' THEN $3 ELSE $4 END ELSE refilled_at END \
         WHERE id = $1 AND usage_limit IS NOT NULL AND CASE WHEN ",
        due!(),
        " THEN usage_limit - refill_amount ELSE usage_used END + $2 <= usage_limit \
         RETURNING usage_limit - usage_used AS remaining"
    );
    let spent = sqlx::query(SQL)
        .bind(key_id)
        .bind(cost)
        .bind(rows::millis(QuotaPeriod::Day.start(now)))
        .bind(rows::millis(QuotaPeriod::Month.start(now)))
        .fetch_optional(s.writer())
        .await?;
    if let Some(row) = spent {
        return Ok(Some(row.try_get("remaining")?));
    }
    // Nothing spent: either there is no limit, the limit would be exceeded, or no such key.
    let row = sqlx::query("SELECT usage_limit FROM api_keys WHERE id = $1")
        .bind(key_id)
        .fetch_optional(s.writer())
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok(match get::<Option<i64>>(&row, "usage_limit")? {
        None => Some(i64::MAX),
        Some(_) => None,
    })
}
