//! Data roles (SPEC §4): named permission sets over the company's own API. Read: any credential
//! of the account (a key needs `roles:read`); write: administrator+ (a key needs `roles:write`).
//! A change drops the account's cached decisions, so keys referencing the role follow at once.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use keygate_core::id::{IdKind, new_id};
use keygate_core::validate::check_name;
use keygate_core::{Authority, Scope};
use keygate_store::Role;
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::identity::common::{ErrorBody, FieldErrors, PathIds, check_id};
use crate::auth::{Caller, Invalidation, Principal};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientIp, Json, Query, page_request};
use crate::state::{AppState, audit};
use crate::views::{ListView, RoleView};

/// More than this many permissions in one role is a mistake, not a role.
const MAX_PERMISSIONS: usize = 100;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_roles, create_role)).routes(routes!(get_role, patch_role, delete_role))
}

/// Validates and normalises permissions: each a scope (`resource:action`, `*` on either side),
/// duplicates dropped, order kept.
fn parse_permissions(raw: &[String], errors: &mut FieldErrors) -> Vec<String> {
    if raw.len() > MAX_PERMISSIONS {
        errors.add("permissions", format!("at most {MAX_PERMISSIONS} permissions"));
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for (i, p) in raw.iter().enumerate() {
        match Scope::parse(p.trim()) {
            Ok(s) => {
                let s = s.to_string();
                if !out.contains(&s) {
                    out.push(s);
                }
            }
            Err(e) => errors.add(&format!("permissions[{i}]"), e.to_string()),
        }
    }
    out
}

async fn writer(state: &AppState, principal: &Principal, account_id: &str) -> ApiResult<Caller> {
    check_id(IdKind::Account, account_id)?;
    let caller = principal.in_account(state, Some(account_id)).await?;
    caller.require_scope("roles", "write")?;
    caller.require_authority(Authority::Administrator)?;
    Ok(caller)
}

async fn reader(state: &AppState, principal: &Principal, account_id: &str) -> ApiResult<Caller> {
    check_id(IdKind::Account, account_id)?;
    let caller = principal.in_account(state, Some(account_id)).await?;
    caller.require_scope("roles", "read")?;
    Ok(caller)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListRolesQuery {
    /// 1–100, default 50.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
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
    reader(&state, &principal, &id).await?;
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let found = state.store.list_roles(&id, &page).await?;
    Ok(axum::Json(ListView::from_page(found, RoleView::from)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoleBody {
    /// 1–100 characters, unique in the account.
    pub name: String,
    /// Scopes such as `leads:create`, `companies:read`, `*:read`.
    pub permissions: Vec<String>,
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
    let caller = writer(&state, &principal, &id).await?;
    let mut errors = FieldErrors::default();
    let name = check_name(&body.name).map_err(|e| errors.add("name", e.to_string())).ok();
    let permissions = parse_permissions(&body.permissions, &mut errors);
    errors.into_result()?;
    let Some(name) = name else { return Err(ApiError::invalid_request("Invalid request.")) };
    let now = Utc::now();
    let role =
        Role { id: new_id(IdKind::Role), account_id: id.clone(), name, permissions, created_at: now, updated_at: now };
    let entry = audit(
        &id,
        &caller.actor,
        "role.created",
        ("role", &role.id),
        ip,
        json!({ "name": role.name, "permissions": role.permissions }),
    );
    state.store.create_role(role.clone(), vec![entry]).await?;
    state.invalidate(Invalidation::Account(id.clone())).await;
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
    reader(&state, &principal, &id).await?;
    check_id(IdKind::Role, &role_id)?;
    let role = state.store.role(&id, &role_id).await?.ok_or_else(ApiError::not_found)?;
    Ok(axum::Json(RoleView::from(role)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchRoleBody {
    pub name: Option<String>,
    /// Replaces the whole list.
    pub permissions: Option<Vec<String>>,
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
    let caller = writer(&state, &principal, &id).await?;
    check_id(IdKind::Role, &role_id)?;
    let mut errors = FieldErrors::default();
    let name = match body.name.as_deref() {
        None => None,
        Some(n) => check_name(n).map_err(|e| errors.add("name", e.to_string())).ok(),
    };
    let permissions = body.permissions.as_deref().map(|p| parse_permissions(p, &mut errors));
    if body.name.is_none() && body.permissions.is_none() {
        errors.add("body", "nothing to change: send name or permissions");
    }
    errors.into_result()?;
    let entry = audit(
        &id,
        &caller.actor,
        "role.updated",
        ("role", &role_id),
        ip,
        json!({ "name": name, "permissions": permissions }),
    );
    let role = state
        .store
        .update_role(&id, &role_id, name.as_deref(), permissions.as_deref(), Utc::now(), vec![entry])
        .await?;
    state.invalidate(Invalidation::Account(id.clone())).await;
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
    let caller = writer(&state, &principal, &id).await?;
    check_id(IdKind::Role, &role_id)?;
    let role = state.store.role(&id, &role_id).await?.ok_or_else(ApiError::not_found)?;
    let entry = audit(&id, &caller.actor, "role.deleted", ("role", &role_id), ip, json!({ "name": role.name }));
    state.store.delete_role(&id, &role_id, vec![entry]).await?;
    state.invalidate(Invalidation::Account(id.clone())).await;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_are_scopes_normalised_and_deduplicated() {
        let mut errors = FieldErrors::default();
        let p = parse_permissions(&["leads:create".into(), " leads:create ".into(), "*:read".into()], &mut errors);
        assert!(errors.into_result().is_ok());
        assert_eq!(p, vec!["leads:create".to_owned(), "*:read".to_owned()]);
        let mut errors = FieldErrors::default();
        parse_permissions(&["Leads:Create".into(), "nocolon".into()], &mut errors);
        let e = errors.into_result().expect_err("invalid");
        assert_eq!(e.code, "invalid_request");
        assert_eq!(e.details.as_ref().and_then(|d| d.as_array()).map(Vec::len), Some(2));
    }
}
