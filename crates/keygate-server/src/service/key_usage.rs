//! Reading about keys beyond one key's settings: its requests per day, and which of a user's
//! accounts holds a key (so a session may name a key without naming its account).

use chrono::{NaiveDate, Utc};
use keygate_core::id::IdKind;

use super::keys::visible_key;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::service::Services;

/// The longest range of days one usage read covers.
const MAX_DAYS: i64 = 366;

/// A key's requests per UTC day, every day of the range listed (zeros included).
#[derive(Debug, Clone)]
pub(crate) struct DailyUsage {
    pub(crate) key_id: String,
    pub(crate) daily: Vec<(NaiveDate, i64)>,
}

/// `from`/`to` as `YYYY-MM-DD`: `to` defaults to today (UTC), `from` to 29 days before `to`;
/// at most 366 days apart. Needs `keys:read` and a key the caller may see.
pub(crate) async fn daily(
    svc: &Services,
    caller: &Caller,
    handle: &str,
    from: Option<&str>,
    to: Option<&str>,
) -> ApiResult<DailyUsage> {
    caller.require_scope("keys", "read")?;
    let key = visible_key(svc, caller, handle).await?;
    let date = |field: &str, s: &str| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map_err(|_| ApiError::invalid_field(field, "must be a date like 2026-12-31"))
    };
    let to = to.map(|s| date("to", s)).transpose()?.unwrap_or_else(|| Utc::now().date_naive());
    let from = from.map(|s| date("from", s)).transpose()?.unwrap_or(to - chrono::Duration::days(29));
    if from > to || (to - from).num_days() > MAX_DAYS {
        return Err(ApiError::invalid_field("from", "must be on or before `to`, at most 366 days apart"));
    }
    let rows = svc.store.key_usage(&key.id, from, to).await?;
    let daily = from
        .iter_days()
        .take_while(|d| *d <= to)
        .map(|d| (d, rows.iter().find(|r| r.date == d).map(|r| r.requests).unwrap_or(0)))
        .collect();
    Ok(DailyUsage { key_id: key.id, daily })
}

/// Which of the user's accounts holds the key behind `handle` (`id` or `key_part`): looked up
/// in their own accounts only, never beyond. A malformed handle or a key in none of them is
/// 404 like any other.
pub(crate) async fn account_of(svc: &Services, user_id: &str, handle: &str) -> ApiResult<String> {
    if !keygate_core::id::looks_like(IdKind::Key, handle) && !svc.format.is_key_part(handle) {
        return Err(ApiError::not_found());
    }
    for m in svc.store.user_memberships(user_id).await? {
        if svc.store.key_by_handle(&m.account_id, handle).await?.is_some() {
            return Ok(m.account_id);
        }
    }
    Err(ApiError::not_found())
}
