//! The audit log (docs/api.md §4 Audit log): read newest first, and verify the hash chain.
//!
//! Who may read: a session or a user key of an administrator+ (a user key also needs the scope
//! `audit:read`), or an org key whose scopes include `audit:read` (a `*:read` key does).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::identity::common::{AccountQuery, ErrorBody, check_account_param};
use crate::auth::{Caller, Principal};
use crate::error::ApiResult;
use crate::extract::{Query, page_request};
use crate::service::audit as service;
use crate::state::AppState;
use crate::views::{AuditEntryView, ListView};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit)).routes(routes!(verify_audit))
}

async fn audit_reader(state: &AppState, principal: &Principal, account_id: Option<&str>) -> ApiResult<Caller> {
    check_account_param(account_id)?;
    let caller = principal.in_account(state, account_id).await?;
    service::require_reader(&caller)?;
    Ok(caller)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    /// The account (sessions only; an API key reads its own).
    pub(crate) account_id: Option<String>,
    /// An action (`key.created`), or a family ending in `.*` (`member.*`).
    pub(crate) action: Option<String>,
    /// A user id or key id that acted.
    pub(crate) actor: Option<String>,
    /// 1–100, default 50.
    pub(crate) limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub(crate) cursor: Option<String>,
}

/// The account's audit log, newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", security(("bearer" = []), ("api_key" = [])), params(AuditQuery), responses(
    (status = 200, description = "`{items: [entry…], next_cursor}`", body = inline(ListView<AuditEntryView>)),
    (status = 400, description = "account_id_required or invalid_request", body = ErrorBody),
    (status = 403, description = "insufficient_authority or insufficient_scope", body = ErrorBody),
    (status = 404, description = "not_found", body = ErrorBody),
))]
async fn list_audit(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<AuditQuery>,
) -> ApiResult<axum::Json<ListView<AuditEntryView>>> {
    let caller = audit_reader(&state, &principal, q.account_id.as_deref()).await?;
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let found = service::list(&state.services, &caller, q.action, q.actor, &page).await?;
    Ok(axum::Json(ListView::from_page(found, AuditEntryView::from)))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditVerification {
    /// Whether every entry's hash, its link to the previous entry and the sequence hold.
    pub(crate) valid: bool,
    /// Entries checked (up to and including the first broken one).
    pub(crate) entries_checked: u64,
    /// The seq of the first entry that does not hold, when `valid` is false.
    pub(crate) first_invalid_seq: Option<i64>,
}

/// Recomputes the account's whole hash chain.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", security(("bearer" = []), ("api_key" = [])), params(AccountQuery), responses(
    (status = 200, description = "`{valid, entries_checked, first_invalid_seq}`", body = AuditVerification),
    (status = 400, description = "account_id_required", body = ErrorBody),
    (status = 403, description = "insufficient_authority or insufficient_scope", body = ErrorBody),
    (status = 404, description = "not_found", body = ErrorBody),
))]
async fn verify_audit(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<AccountQuery>,
) -> ApiResult<axum::Json<AuditVerification>> {
    let caller = audit_reader(&state, &principal, q.account_id.as_deref()).await?;
    let check = service::verify_chain(&state.services, &caller).await?;
    Ok(axum::Json(AuditVerification {
        valid: check.valid,
        entries_checked: check.entries_checked,
        first_invalid_seq: check.first_invalid_seq,
    }))
}
