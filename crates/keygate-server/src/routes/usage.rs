//! Usage by outcome (docs/api.md, "Usage"): an account's totals per day or per key
//! (`GET /v1/usage`, JSON or CSV), and the views a key's series (`/v1/keys/{key}/usage`)
//! shares with them.
//!
//! Who may read an account's usage, as for the audit log: a session or a user key of an
//! administrator+ (a user key also needs `usage:read`), or an org key whose scopes include
//! `usage:read` (a `*:read` key does).

use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use keygate_store::{KeyUsageTotal, Outcome, OutcomeCounts, UsageBucket};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::identity::common::{ErrorBody, check_account_param};
use super::usage_csv;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use crate::service::usage::{self as service, AccountRows, AccountUsage};
use crate::state::AppState;
use crate::views::time;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(account_usage))
}

/// Requests by outcome: every verify code a request with a known key can get (and the
/// gateway's `CREDENTIAL_NOT_ACCEPTED`).
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct OutcomesView {
    pub valid: i64,
    pub rate_limited: i64,
    pub quota_exceeded: i64,
    pub usage_exceeded: i64,
    pub insufficient_scope: i64,
    pub ip_not_allowed: i64,
    pub expired: i64,
    pub revoked: i64,
    pub inactive: i64,
    pub plan_required: i64,
    pub user_credential_required: i64,
    /// The gateway only: a key of a class the route does not take
    pub credential_not_accepted: i64,
}

impl From<&OutcomeCounts> for OutcomesView {
    fn from(c: &OutcomeCounts) -> Self {
        OutcomesView {
            valid: c.get(Outcome::Valid),
            rate_limited: c.get(Outcome::RateLimited),
            quota_exceeded: c.get(Outcome::QuotaExceeded),
            usage_exceeded: c.get(Outcome::UsageExceeded),
            insufficient_scope: c.get(Outcome::InsufficientScope),
            ip_not_allowed: c.get(Outcome::IpNotAllowed),
            expired: c.get(Outcome::Expired),
            revoked: c.get(Outcome::Revoked),
            inactive: c.get(Outcome::Inactive),
            plan_required: c.get(Outcome::PlanRequired),
            user_credential_required: c.get(Outcome::UserCredentialRequired),
            credential_not_accepted: c.get(Outcome::CredentialNotAccepted),
        }
    }
}

/// One bucket (an hour or a UTC day) of a series.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsagePointView {
    /// The bucket's first instant (RFC 3339, UTC)
    pub start: String,
    /// Every request counted, whatever its outcome
    pub requests: i64,
    pub outcomes: OutcomesView,
}

impl From<&UsageBucket> for UsagePointView {
    fn from(b: &UsageBucket) -> Self {
        UsagePointView { start: time(b.start), requests: b.outcomes.total(), outcomes: (&b.outcomes).into() }
    }
}

/// One key's totals over the range.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyTotalView {
    pub key_id: String,
    /// The key's current name
    pub name: String,
    pub requests: i64,
    pub outcomes: OutcomesView,
}

impl From<&KeyUsageTotal> for KeyTotalView {
    fn from(k: &KeyUsageTotal) -> Self {
        KeyTotalView {
            key_id: k.key_id.clone(),
            name: k.name.clone(),
            requests: k.outcomes.total(),
            outcomes: (&k.outcomes).into(),
        }
    }
}

/// A row of an account's usage: a day (`group_by=day`) or a key (`group_by=key`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum AccountRowView {
    Day(UsagePointView),
    Key(KeyTotalView),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotalsView {
    pub requests: i64,
    pub outcomes: OutcomesView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountUsageView {
    pub account_id: String,
    /// `day` or `key`
    pub group_by: String,
    /// The range's first day (RFC 3339, its midnight UTC)
    pub from: String,
    /// The range's last day (RFC 3339, its midnight UTC; the day is included)
    pub to: String,
    /// The whole range, every key
    pub totals: TotalsView,
    /// `group_by=day`: every day of the range, zeros included, oldest first. `group_by=key`:
    /// every key with any request in the range, by key id.
    pub series: Vec<AccountRowView>,
}

impl From<&AccountUsage> for AccountUsageView {
    fn from(u: &AccountUsage) -> Self {
        let series = match &u.rows {
            AccountRows::Days(days) => days.iter().map(|b| AccountRowView::Day(b.into())).collect(),
            AccountRows::Keys(keys) => keys.iter().map(|k| AccountRowView::Key(k.into())).collect(),
        };
        AccountUsageView {
            account_id: u.account_id.clone(),
            group_by: u.group_by.as_str().to_owned(),
            from: time(u.range.from),
            to: time(u.range.to),
            totals: TotalsView { requests: u.totals.total(), outcomes: (&u.totals).into() },
            series,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AccountUsageQuery {
    /// The account (sessions only; an API key reads its own).
    pub account_id: Option<String>,
    /// YYYY-MM-DD, default 29 days before `to`
    pub from: Option<String>,
    /// YYYY-MM-DD, default today (UTC); at most 366 days after `from`
    pub to: Option<String>,
    /// `day` (default) or `key`
    pub group_by: Option<String>,
    /// `json` (default) or `csv`
    pub format: Option<String>,
}

/// The account's requests by outcome, per UTC day or per key.
#[utoipa::path(get, path = "/v1/usage", tag = "usage", security(("bearer" = []), ("api_key" = [])), params(AccountUsageQuery), responses(
    (status = 200, description = "JSON, or with `format=csv` a CSV file: header `start,key_id,requests,VALID,…,CREDENTIAL_NOT_ACCEPTED,name`, one line per row of `series`",
        content((AccountUsageView = "application/json"), (String = "text/csv"))),
    (status = 400, description = "account_id_required or invalid_request (a range longer than 366 days, `from` after `to`, an unknown `group_by` or `format`)", body = ErrorBody),
    (status = 403, description = "insufficient_authority or insufficient_scope", body = ErrorBody),
    (status = 404, description = "not_found", body = ErrorBody),
))]
async fn account_usage(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<AccountUsageQuery>,
) -> ApiResult<Response> {
    check_account_param(q.account_id.as_deref())?;
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::invalid_field("format", "must be `json` or `csv`")),
    };
    let caller = principal.in_account(&state, q.account_id.as_deref()).await?;
    let usage =
        service::account_usage(&state.services, &caller, q.group_by.as_deref(), q.from.as_deref(), q.to.as_deref())
            .await?;
    if !csv {
        return Ok(axum::Json(AccountUsageView::from(&usage)).into_response());
    }
    let filename = format!(
        "attachment; filename=\"usage-{}-{}-{}.csv\"",
        usage.account_id,
        usage.range.from.format("%Y-%m-%d"),
        usage.range.to.format("%Y-%m-%d")
    );
    let headers = [(CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (CONTENT_DISPOSITION, filename)];
    Ok((headers, usage_csv::render(&usage)).into_response())
}
