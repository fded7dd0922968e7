//! Reading about keys beyond one key's settings: its requests per day or hour by outcome, and
//! which of a user's accounts holds a key (so a session may name a key without naming its
//! account).

use chrono::Utc;
use keygate_core::id::IdKind;
use keygate_store::UsageBucket;

use super::keys::visible_key;
use super::usage_range::UsageRange;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::service::Services;

/// A key's requests per bucket and outcome, every bucket of the range listed (zeros included).
#[derive(Debug, Clone)]
pub(crate) struct KeySeries {
    pub key_id: String,
    pub range: UsageRange,
    pub series: Vec<UsageBucket>,
}

/// The range as [`UsageRange::parse`] reads it. Needs `keys:read` and a key the caller may see.
pub(crate) async fn series(
    svc: &Services,
    caller: &Caller,
    handle: &str,
    granularity: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
) -> ApiResult<KeySeries> {
    caller.require_scope("keys", "read")?;
    let key = visible_key(svc, caller, handle).await?;
    let range = UsageRange::parse(granularity, from, to, Utc::now())?;
    let found = svc.store.key_usage(&key.account_id, &key.id, range.granularity, range.from, range.to).await?;
    Ok(KeySeries { key_id: key.id, series: range.fill(found), range })
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
