//! An account's usage by outcome (`GET /v1/usage`): totals per UTC day or per key over a range
//! of days.
//!
//! Who may read, as for the audit log: a session or a user key of an administrator+ (a user key
//! also needs the scope `usage:read`), or an org key whose scopes include `usage:read` (a
//! `*:read` key does).

use chrono::Utc;
use keygate_core::{Authority, CredentialKind};
use keygate_store::{KeyUsageTotal, OutcomeCounts, UsageBucket};

use super::usage_range::UsageRange;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::service::Services;

pub fn require_reader(caller: &Caller) -> ApiResult<()> {
    match caller.kind {
        CredentialKind::Session => caller.require_authority(Authority::Administrator),
        CredentialKind::OrgKey => caller.require_scope("usage", "read"),
        CredentialKind::UserKey => {
            caller.require_scope("usage", "read")?;
            caller.require_authority(Authority::Administrator)
        }
    }
}

/// How an account's totals are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Day,
    Key,
}

impl GroupBy {
    /// `day` (the default) or `key`.
    pub fn parse(s: Option<&str>) -> ApiResult<GroupBy> {
        match s {
            None | Some("day") => Ok(GroupBy::Day),
            Some("key") => Ok(GroupBy::Key),
            Some(_) => Err(ApiError::invalid_field("group_by", "must be `day` or `key`")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Day => "day",
            GroupBy::Key => "key",
        }
    }
}

/// The account's rows: every day of the range (zeros included), or every key with any count.
#[derive(Debug, Clone)]
pub enum AccountRows {
    Days(Vec<UsageBucket>),
    Keys(Vec<KeyUsageTotal>),
}

#[derive(Debug, Clone)]
pub struct AccountUsage {
    pub account_id: String,
    pub range: UsageRange,
    pub group_by: GroupBy,
    pub rows: AccountRows,
    /// The whole range, every key.
    pub totals: OutcomeCounts,
}

/// The caller's account's usage over `from`..`to` (days, as `UsageRange::parse` reads them:
/// at most 366 days apart), grouped by `group_by`.
pub async fn account_usage(
    svc: &Services,
    caller: &Caller,
    group_by: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
) -> ApiResult<AccountUsage> {
    require_reader(caller)?;
    let group_by = GroupBy::parse(group_by)?;
    let range = UsageRange::parse(None, from, to, Utc::now())?;
    let account_id = caller.account.id.clone();
    let mut totals = OutcomeCounts::default();
    let rows = match group_by {
        GroupBy::Day => {
            let found = svc.store.account_usage_by_day(&account_id, range.from, range.to).await?;
            found.iter().for_each(|b| totals.merge(&b.outcomes));
            AccountRows::Days(range.fill(found))
        }
        GroupBy::Key => {
            let found = svc.store.account_usage_by_key(&account_id, range.from, range.to).await?;
            found.iter().for_each(|k| totals.merge(&k.outcomes));
            AccountRows::Keys(found)
        }
    };
    Ok(AccountUsage { account_id, range, group_by, rows, totals })
}
