//! Accounts (docs/api.md §4 Accounts, members, data roles): create, list the caller's, read,
//! rename, delete.
//!
//! Another account's id answers 404 exactly like an unknown one, for every credential. The rules
//! are `service::accounts`'.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keygate_core::Authority;
use keygate_core::id::IdKind;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::identity::common::{ErrorBody, PathIds, double_option};
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::extract::{ClientIp, Json, Query, page_request};
use crate::service::accounts as service;
use crate::service::input::check_id;
use crate::state::AppState;
use crate::views::{AccountView, ListView};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_account, list_accounts)).routes(routes!(
        get_account,
        patch_account,
        delete_account
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateAccountBody {
    /// 1–100 characters.
    pub(crate) name: String,
    pub(crate) url: Option<String>,
}

/// Creates an account; the caller (a session) becomes its owner. It gets the default plan.
#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", security(("bearer" = [])), request_body = CreateAccountBody, responses(
    (status = 201, description = "the new account, with the caller's authority (`owner`)", body = AccountView),
    (status = 400, description = "invalid_request", body = ErrorBody),
    (status = 401, description = "missing or invalid credentials", body = ErrorBody),
    (status = 403, description = "session_required: only a session token may create accounts", body = ErrorBody),
))]
async fn create_account(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    principal: Principal,
    Json(body): Json<CreateAccountBody>,
) -> ApiResult<Response> {
    let account = service::create(&state.services, &principal, ip, &body.name, body.url.as_deref()).await?;
    let mut view = AccountView::new(&account, &state.services.plans);
    view.authority = Some(Authority::Owner);
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListAccountsQuery {
    /// 1–100, default 50.
    pub(crate) limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub(crate) cursor: Option<String>,
}

/// The caller's accounts with the caller's authority in each, oldest membership first (the
/// default account comes first).
#[utoipa::path(get, path = "/v1/accounts", tag = "accounts", security(("bearer" = [])), params(ListAccountsQuery), responses(
    (status = 200, description = "`{items: [account…], next_cursor}`", body = inline(ListView<AccountView>)),
    (status = 401, description = "missing or invalid credentials", body = ErrorBody),
    (status = 403, description = "session_required: only a session token lists its accounts", body = ErrorBody),
))]
async fn list_accounts(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ListAccountsQuery>,
) -> ApiResult<axum::Json<ListView<AccountView>>> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let found = service::list_mine(&state.services, &principal, &page).await?;
    Ok(axum::Json(ListView::from_page(found, |(account, authority)| {
        let mut view = AccountView::new(&account, &state.services.plans);
        view.authority = Some(authority);
        view
    })))
}

/// One account. Any credential of the account (a key needs `accounts:read`); any other account
/// answers 404.
#[utoipa::path(get, path = "/v1/accounts/{id}", tag = "accounts", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "account id (`acc_…`)")),
    responses(
        (status = 200, description = "the account, with the caller's authority", body = AccountView),
        (status = 401, description = "missing or invalid credentials", body = ErrorBody),
        (status = 403, description = "insufficient_scope", body = ErrorBody),
        (status = 404, description = "not_found: unknown, or not the caller's", body = ErrorBody),
    ))]
async fn get_account(
    State(state): State<AppState>,
    principal: Principal,
    PathIds(id): PathIds<String>,
) -> ApiResult<axum::Json<AccountView>> {
    check_id(IdKind::Account, &id)?;
    let caller = principal.in_account(&state, Some(&id)).await?;
    let mut view = AccountView::new(service::get(&caller)?, &state.services.plans);
    view.authority = Some(caller.authority);
    Ok(axum::Json(view))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchAccountBody {
    pub(crate) name: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub(crate) url: Option<Option<String>>,
}

/// Renames the account or changes its url (administrator+; a key needs `accounts:write`).
#[utoipa::path(patch, path = "/v1/accounts/{id}", tag = "accounts", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "account id (`acc_…`)")),
    request_body = PatchAccountBody,
    responses(
        (status = 200, description = "the account", body = AccountView),
        (status = 400, description = "invalid_request", body = ErrorBody),
        (status = 403, description = "insufficient_authority or insufficient_scope", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
    ))]
async fn patch_account(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    principal: Principal,
    PathIds(id): PathIds<String>,
    Json(body): Json<PatchAccountBody>,
) -> ApiResult<axum::Json<AccountView>> {
    check_id(IdKind::Account, &id)?;
    let caller = principal.in_account(&state, Some(&id)).await?;
    let patch = service::AccountPatch { name: body.name, url: body.url };
    let account = service::update(&state.services, &caller, ip, patch).await?;
    let mut view = AccountView::new(&account, &state.services.plans);
    view.authority = Some(caller.authority);
    Ok(axum::Json(view))
}

/// Deletes the account (owner only; a key needs `accounts:write`). Every key of the account
/// stops working at once; the audit log is kept.
#[utoipa::path(delete, path = "/v1/accounts/{id}", tag = "accounts", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "account id (`acc_…`)")),
    responses(
        (status = 204, description = "deleted"),
        (status = 403, description = "insufficient_authority or insufficient_scope", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
    ))]
async fn delete_account(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    principal: Principal,
    PathIds(id): PathIds<String>,
) -> ApiResult<StatusCode> {
    check_id(IdKind::Account, &id)?;
    let caller = principal.in_account(&state, Some(&id)).await?;
    service::delete(&state.services, &caller, ip).await?;
    Ok(StatusCode::NO_CONTENT)
}
