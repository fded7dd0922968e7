//! Members of an account (docs/api.md §4 Accounts, members, data roles) under the authority rules
//! of `keygate_core::authority`: nobody grants more than they have, administrators cannot touch
//! owners, the last owner can neither leave nor be demoted. The store re-checks the rules inside
//! its transaction, so two concurrent changes cannot together break them.
//!
//! After every change the account's and the user's cached decisions are dropped, so a removed
//! member's keys stop at once and a demoted member's keys are capped at once. The rules live
//! in `service::members`, which the dashboard's Members page calls too.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keygate_core::Authority;
use keygate_core::id::IdKind;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::identity::common::{ErrorBody, PathIds};
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::extract::{ClientIp, Json, Query, page_request};
use crate::service::input::check_id;
use crate::service::members as service;
use crate::state::AppState;
use crate::views::{ListView, MemberView};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_members, add_member)).routes(routes!(change_member, remove_member))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListMembersQuery {
    /// 1–100, default 50.
    pub(crate) limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub(crate) cursor: Option<String>,
}

/// The account's members with their authority (any credential of the account; a key needs `members:read`).
#[utoipa::path(get, path = "/v1/accounts/{id}/members", tag = "accounts", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "account id (`acc_…`)"), ListMembersQuery),
    responses(
        (status = 200, description = "`{items: [member…], next_cursor}`", body = inline(ListView<MemberView>)),
        (status = 403, description = "insufficient_scope", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
    ))]
async fn list_members(
    State(state): State<AppState>,
    principal: Principal,
    PathIds(id): PathIds<String>,
    Query(q): Query<ListMembersQuery>,
) -> ApiResult<axum::Json<ListView<MemberView>>> {
    check_id(IdKind::Account, &id)?;
    let caller = principal.in_account(&state, Some(&id)).await?;
    caller.require_scope("members", "read")?;
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let found = service::list(&state.services, &caller, &page).await?;
    Ok(axum::Json(ListView::from_page(found, MemberView::from)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddMemberBody {
    /// The email of an existing user.
    pub(crate) email: String,
    #[schema(value_type = String, example = "user")]
    pub(crate) authority: Authority,
}

/// Adds an existing user (by email) with an authority no higher than the caller's
/// (administrator+; a key needs `members:write`).
#[utoipa::path(post, path = "/v1/accounts/{id}/members", tag = "accounts", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "account id (`acc_…`)")),
    request_body = AddMemberBody,
    responses(
        (status = 201, description = "the new member", body = MemberView),
        (status = 400, description = "invalid_request", body = ErrorBody),
        (status = 403, description = "insufficient_authority (too low, or granting more than the caller has) or insufficient_scope", body = ErrorBody),
        (status = 404, description = "not_found: no such account, or no user with this email", body = ErrorBody),
        (status = 409, description = "member_exists", body = ErrorBody),
    ))]
async fn add_member(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    principal: Principal,
    PathIds(id): PathIds<String>,
    Json(body): Json<AddMemberBody>,
) -> ApiResult<Response> {
    check_id(IdKind::Account, &id)?;
    let caller = principal.in_account(&state, Some(&id)).await?;
    let member = service::add(&state.services, &caller, ip, &body.email, body.authority).await?;
    Ok((StatusCode::CREATED, axum::Json(MemberView::from(member))).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangeMemberBody {
    #[schema(value_type = String, example = "administrator")]
    pub(crate) authority: Authority,
}

/// Changes a member's authority (administrator+; administrators cannot touch owners; the last
/// owner cannot be demoted).
#[utoipa::path(patch, path = "/v1/accounts/{id}/members/{user_id}", tag = "accounts", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "account id (`acc_…`)"), ("user_id" = String, Path, description = "user id (`usr_…`)")),
    request_body = ChangeMemberBody,
    responses(
        (status = 200, description = "the member", body = MemberView),
        (status = 400, description = "invalid_request", body = ErrorBody),
        (status = 403, description = "insufficient_authority or insufficient_scope", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 409, description = "last_owner", body = ErrorBody),
    ))]
async fn change_member(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    principal: Principal,
    PathIds((id, user_id)): PathIds<(String, String)>,
    Json(body): Json<ChangeMemberBody>,
) -> ApiResult<axum::Json<MemberView>> {
    check_id(IdKind::Account, &id)?;
    let caller = principal.in_account(&state, Some(&id)).await?;
    let member = service::change(&state.services, &caller, ip, &user_id, body.authority).await?;
    Ok(axum::Json(MemberView::from(member)))
}

/// Removes a member (administrator+, or the member themself; the last owner cannot leave).
/// That user's keys in the account stop working at once.
#[utoipa::path(delete, path = "/v1/accounts/{id}/members/{user_id}", tag = "accounts", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "account id (`acc_…`)"), ("user_id" = String, Path, description = "user id (`usr_…`)")),
    responses(
        (status = 204, description = "removed"),
        (status = 403, description = "insufficient_authority or insufficient_scope", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 409, description = "last_owner", body = ErrorBody),
    ))]
async fn remove_member(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    principal: Principal,
    PathIds((id, user_id)): PathIds<(String, String)>,
) -> ApiResult<StatusCode> {
    check_id(IdKind::Account, &id)?;
    let caller = principal.in_account(&state, Some(&id)).await?;
    service::remove(&state.services, &caller, ip, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use keygate_core::Authority;

    #[test]
    fn authority_is_read_from_lowercase_names() {
        let a: Authority = serde_json::from_str("\"administrator\"").expect("parse");
        assert_eq!(a, Authority::Administrator);
        assert!(serde_json::from_str::<Authority>("\"admin\"").is_err());
    }
}
