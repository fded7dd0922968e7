//! Rows → models, and models → stored values. Everything about the stored representation
//! (millisecond times, 0/1 booleans, JSON in TEXT, enums as their lower-case names) is decided
//! here, so the query modules only move values around.
//!
//! Columns are read by name: queries select `k.*` and the like, and a later migration that adds
//! a column breaks nothing here.

use chrono::DateTime;
use keygate_core::Authority;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::any::AnyRow;
use sqlx::{Any, Decode, Row, Type};

use crate::error::{StoreError, StoreResult};
use crate::model::*;

/// One column, with the column's name in the error (never its value).
pub(crate) fn get<'r, T>(row: &'r AnyRow, col: &str) -> StoreResult<T>
where
    T: Decode<'r, Any> + Type<Any>,
{
    Ok(row.try_get::<T, _>(col)?)
}

pub(crate) fn millis(t: Time) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn opt_millis(t: Option<Time>) -> Option<i64> {
    t.map(millis)
}

pub(crate) fn from_millis(ms: i64) -> StoreResult<Time> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::Other(format!("time out of range: {ms}")))
}

pub(crate) fn time(row: &AnyRow, col: &str) -> StoreResult<Time> {
    from_millis(get(row, col)?)
}

pub(crate) fn opt_time(row: &AnyRow, col: &str) -> StoreResult<Option<Time>> {
    get::<Option<i64>>(row, col)?.map(from_millis).transpose()
}

pub(crate) fn to_json<T: Serialize + ?Sized>(v: &T) -> StoreResult<String> {
    Ok(serde_json::to_string(v)?)
}

pub(crate) fn json<T: DeserializeOwned>(row: &AnyRow, col: &str) -> StoreResult<T> {
    let text: String = get(row, col)?;
    Ok(serde_json::from_str(&text)?)
}

pub(crate) fn opt_json<T: DeserializeOwned>(row: &AnyRow, col: &str) -> StoreResult<Option<T>> {
    get::<Option<String>>(row, col)?.map(|text| serde_json::from_str(&text)).transpose().map_err(StoreError::from)
}

pub(crate) fn authority(row: &AnyRow, col: &str) -> StoreResult<Authority> {
    let s: String = get(row, col)?;
    Authority::parse(&s).ok_or_else(|| StoreError::Other(format!("unknown authority in {col}")))
}

pub(crate) fn user(row: &AnyRow) -> StoreResult<User> {
    Ok(User {
        id: get(row, "id")?,
        email: get(row, "email")?,
        name: get(row, "name")?,
        password_hash: get(row, "password_hash")?,
        created_at: time(row, "created_at")?,
    })
}

/// A user selected beside other tables, its columns aliased `u_…`.
pub(crate) fn user_prefixed(row: &AnyRow) -> StoreResult<User> {
    Ok(User {
        id: get(row, "u_id")?,
        email: get(row, "u_email")?,
        name: get(row, "u_name")?,
        password_hash: get(row, "u_password_hash")?,
        created_at: time(row, "u_created_at")?,
    })
}

pub(crate) fn account(row: &AnyRow) -> StoreResult<Account> {
    Ok(Account {
        id: get(row, "id")?,
        name: get(row, "name")?,
        url: get(row, "url")?,
        domain: get(row, "domain")?,
        plan: get(row, "plan")?,
        trial_ends_at: opt_time(row, "trial_ends_at")?,
        created_at: time(row, "created_at")?,
        overrides: opt_json(row, "limit_overrides")?.unwrap_or_default(),
    })
}

/// An account selected beside a key, its columns aliased `a_…`; `None` when the join found
/// no live account.
pub(crate) fn account_prefixed(row: &AnyRow) -> StoreResult<Option<Account>> {
    let Some(id) = get::<Option<String>>(row, "a_id")? else {
        return Ok(None);
    };
    Ok(Some(Account {
        id,
        name: get(row, "a_name")?,
        url: get(row, "a_url")?,
        domain: get(row, "a_domain")?,
        plan: get(row, "a_plan")?,
        trial_ends_at: opt_time(row, "a_trial_ends_at")?,
        created_at: time(row, "a_created_at")?,
        overrides: opt_json(row, "a_limit_overrides")?.unwrap_or_default(),
    }))
}

pub(crate) fn session(row: &AnyRow) -> StoreResult<Session> {
    Ok(Session {
        id: get(row, "id")?,
        user_id: get(row, "user_id")?,
        digest: get(row, "digest")?,
        created_at: time(row, "created_at")?,
        last_seen_at: time(row, "last_seen_at")?,
        expires_at: time(row, "expires_at")?,
        revoked_at: opt_time(row, "revoked_at")?,
    })
}

pub(crate) fn membership(row: &AnyRow) -> StoreResult<Membership> {
    Ok(Membership {
        account_id: get(row, "account_id")?,
        user_id: get(row, "user_id")?,
        authority: authority(row, "authority")?,
        created_at: time(row, "created_at")?,
    })
}

/// From `memberships m JOIN users u` selecting `m.user_id, u.email, u.name, m.authority,
/// m.created_at`.
pub(crate) fn member(row: &AnyRow) -> StoreResult<Member> {
    Ok(Member {
        user_id: get(row, "user_id")?,
        email: get(row, "email")?,
        name: get(row, "name")?,
        authority: authority(row, "authority")?,
        created_at: time(row, "created_at")?,
    })
}

pub(crate) fn user_membership(row: &AnyRow) -> StoreResult<UserMembership> {
    Ok(UserMembership {
        account_id: get(row, "account_id")?,
        account_name: get(row, "account_name")?,
        authority: authority(row, "authority")?,
        created_at: time(row, "created_at")?,
    })
}

pub(crate) fn role(row: &AnyRow) -> StoreResult<Role> {
    Ok(Role {
        id: get(row, "id")?,
        account_id: get(row, "account_id")?,
        name: get(row, "name")?,
        permissions: json(row, "permissions")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

pub(crate) fn api_key(row: &AnyRow) -> StoreResult<ApiKey> {
    let class: String = get(row, "class")?;
    Ok(ApiKey {
        id: get(row, "id")?,
        digest: get(row, "digest")?,
        key_part: get(row, "key_part")?,
        class: KeyClass::parse(&class).ok_or_else(|| StoreError::Other("unknown key class".into()))?,
        name: get(row, "name")?,
        account_id: get(row, "account_id")?,
        user_id: get(row, "user_id")?,
        authority: authority(row, "authority")?,
        scopes: json(row, "scopes")?,
        role_id: get(row, "role_id")?,
        created_at: time(row, "created_at")?,
        created_by: get(row, "created_by")?,
        expires_at: opt_time(row, "expires_at")?,
        starts_at: opt_time(row, "starts_at")?,
        staged: get::<i64>(row, "staged")? != 0,
        revoked_at: opt_time(row, "revoked_at")?,
        last_used_at: opt_time(row, "last_used_at")?,
        last_used_ip: get(row, "last_used_ip")?,
        request_count: get(row, "request_count")?,
        success_count: get(row, "success_count")?,
        usage_limit: get(row, "usage_limit")?,
        usage_used: get(row, "usage_used")?,
        refill: refill(row)?,
        refilled_at: opt_time(row, "refilled_at")?,
        rate_limit: opt_json(row, "rate_limit")?,
        rate_limits: opt_json(row, "rate_limits")?.unwrap_or_default(),
        ip_allowlist: json(row, "ip_allowlist")?,
        metadata: json(row, "metadata")?,
        rolled_to: get(row, "rolled_to")?,
    })
}

/// `refill_amount` and `refill_interval`, both or neither.
fn refill(row: &AnyRow) -> StoreResult<Option<keygate_core::Refill>> {
    let amount: Option<i64> = get(row, "refill_amount")?;
    let interval: Option<String> = get(row, "refill_interval")?;
    Ok(match (amount, interval) {
        (Some(amount), Some(i)) => Some(keygate_core::Refill {
            amount,
            interval: keygate_core::QuotaPeriod::parse(&i)
                .ok_or_else(|| StoreError::Other("unknown refill interval".into()))?,
        }),
        _ => None,
    })
}

/// The named limits as stored: NULL when there are none.
pub(crate) fn named_limits(list: &[keygate_core::NamedRateLimit]) -> StoreResult<Option<String>> {
    if list.is_empty() { Ok(None) } else { to_json(list).map(Some) }
}

pub(crate) fn audit_entry(row: &AnyRow) -> StoreResult<AuditEntry> {
    Ok(AuditEntry {
        id: get(row, "id")?,
        seq: get(row, "seq")?,
        at: time(row, "at")?,
        account_id: get(row, "account_id")?,
        actor: json(row, "actor")?,
        action: get(row, "action")?,
        target_type: get(row, "target_type")?,
        target_id: get(row, "target_id")?,
        ip: get(row, "ip")?,
        details: json(row, "details")?,
        prev_hash: get(row, "prev_hash")?,
        hash: get(row, "hash")?,
    })
}
