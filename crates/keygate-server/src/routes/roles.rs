//! Data roles (docs/api.md §4 Accounts, members, data roles): named permission sets over the
//! company's own API. Read: any credential of the account (a key needs `roles:read`); write:
//! administrator+ (a key needs `roles:write`). A change drops the account's cached decisions, so
//! keys referencing the role follow at once. The rules are `service::roles`'.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keygate_core::id::IdKind;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::identity::common::{ErrorBody, PathIds};
use crate::auth::{Caller, Principal};
use crate::error::ApiResult;
use crate::extract::{ClientIp, Json, Query};
use crate::service::input::check_id;
use crate::service::roles as service;
use crate::state::AppState;
use crate::views::{ListView, RoleView};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_roles, create_role)).routes(routes!(get_role, patch_role, delete_role))
}

/// The caller in the account of the path; each operation checks its own scope and authority.
async fn caller(state: &AppState, principal: &Principal, account_id: &str) -> ApiResult<Caller> {
    check_id(IdKind::Account, account_id)?;
    principal.in_account(state, Some(account_id)).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListRolesQuery {
    /// 1–100, default 50.
    pub(crate) limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub(crate) cursor: Option<String>,
}

/// The account's data roles.
#[utoipa::path(get, path = "/v1/accounts/{id}/roles", tag = "accounts", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "account id (`acc_…`)"), ListRolesQuery),
    responses(
        (status = 200, description = "`{items: [role…], next_cursor}`", body = inline(ListView<RoleView>)),
        (status = 403, description = "insufficient_scope", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
    ))]
async fn list_roles(
    State(state): State<AppState>,
    principal: Principal,
    PathIds(id): PathIds<String>,
    Query(q): Query<ListRolesQuery>,
) -> ApiResult<axum::Json<ListView<RoleView>>> {
    let caller = caller(&state, &principal, &id).await?;
    let found = service::list(&state.services, &caller, q.limit, q.cursor.as_deref()).await?;
    Ok(axum::Json(ListView::from_page(found, RoleView::from)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRoleBody {
    /// 1–100 characters, unique in the account.
    pub(crate) name: String,
    /// Scopes such as `leads:create`, `companies:read`, `*:read`.
    pub(crate) permissions: Vec<String>,
}

/// Creates a data role (administrator+).
#[utoipa::path(post, path = "/v1/accounts/{id}/roles", tag = "accounts", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "account id (`acc_…`)")),
    request_body = CreateRoleBody,
    responses(
        (status = 201, description = "the new role", body = RoleView),
        (status = 400, description = "invalid_request (name, or a permission that is not a scope)", body = ErrorBody),
        (status = 403, description = "insufficient_authority or insufficient_scope", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 409, description = "role_name_taken", body = ErrorBody),
    ))]
async fn create_role(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    principal: Principal,
    PathIds(id): PathIds<String>,
    Json(body): Json<CreateRoleBody>,
) -> ApiResult<Response> {
    let caller = caller(&state, &principal, &id).await?;
    let role = service::create(&state.services, &caller, ip, &body.name, &body.permissions).await?;
    Ok((StatusCode::CREATED, axum::Json(RoleView::from(role))).into_response())
}

/// One data role.
#[utoipa::path(get, path = "/v1/accounts/{id}/roles/{role_id}", tag = "accounts", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "account id (`acc_…`)"), ("role_id" = String, Path, description = "role id (`rol_…`)")),
    responses(
        (status = 200, description = "the role", body = RoleView),
        (status = 403, description = "insufficient_scope", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
    ))]
async fn get_role(
    State(state): State<AppState>,
    principal: Principal,
    PathIds((id, role_id)): PathIds<(String, String)>,
) -> ApiResult<axum::Json<RoleView>> {
    let caller = caller(&state, &principal, &id).await?;
    let role = service::get(&state.services, &caller, &role_id).await?;
    Ok(axum::Json(RoleView::from(role)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchRoleBody {
    pub(crate) name: Option<String>,
    /// Replaces the whole list.
    pub(crate) permissions: Option<Vec<String>>,
}

/// Renames a role or replaces its permissions (administrator+). Keys that use it follow at once.
#[utoipa::path(patch, path = "/v1/accounts/{id}/roles/{role_id}", tag = "accounts", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "account id (`acc_…`)"), ("role_id" = String, Path, description = "role id (`rol_…`)")),
    request_body = PatchRoleBody,
    responses(
        (status = 200, description = "the role", body = RoleView),
        (status = 400, description = "invalid_request", body = ErrorBody),
        (status = 403, description = "insufficient_authority or insufficient_scope", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 409, description = "role_name_taken", body = ErrorBody),
    ))]
async fn patch_role(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    principal: Principal,
    PathIds((id, role_id)): PathIds<(String, String)>,
    Json(body): Json<PatchRoleBody>,
) -> ApiResult<axum::Json<RoleView>> {
    let caller = caller(&state, &principal, &id).await?;
    let (name, permissions) = (body.name.as_deref(), body.permissions.as_deref());
    let role = service::update(&state.services, &caller, ip, &role_id, name, permissions).await?;
    Ok(axum::Json(RoleView::from(role)))
}

/// Deletes a role (administrator+). Keys that referenced it keep the reference and get no
/// permissions until changed (fail closed).
#[utoipa::path(delete, path = "/v1/accounts/{id}/roles/{role_id}", tag = "accounts", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "account id (`acc_…`)"), ("role_id" = String, Path, description = "role id (`rol_…`)")),
    responses(
        (status = 204, description = "deleted"),
        (status = 403, description = "insufficient_authority or insufficient_scope", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
    ))]
async fn delete_role(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    principal: Principal,
    PathIds((id, role_id)): PathIds<(String, String)>,
) -> ApiResult<StatusCode> {
    let caller = caller(&state, &principal, &id).await?;
    service::delete(&state.services, &caller, ip, &role_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
