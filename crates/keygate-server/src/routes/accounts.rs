//! Accounts (SPEC §4): create, list the caller's, read, rename, delete.
//!
//! Another account's id answers 404 exactly like an unknown one, for every credential.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use keygate_core::Authority;
use keygate_core::id::{IdKind, new_id};
use keygate_core::validate::check_name;
use keygate_store::Account;
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::identity::common::{ErrorBody, FieldErrors, PathIds, check_id, double_option, parse_url};
use crate::auth::{Invalidation, Principal};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientIp, Json, Query, page_request};
use crate::state::{AppState, audit};
use crate::views::{AccountView, ListView};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_account, list_accounts)).routes(routes!(
        get_account,
        patch_account,
        delete_account
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccountBody {
    /// 1–100 characters.
    pub name: String,
    pub url: Option<String>,
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
    let session = principal.session()?;
    let mut errors = FieldErrors::default();
    let name = check_name(&body.name).map_err(|e| errors.add("name", e.to_string())).ok();
    let url = match body.url.as_deref() {
        None => None,
        Some(raw) => parse_url(raw).map_err(|m| errors.add("url", m)).ok(),
    };
    errors.into_result()?;
    let Some(name) = name else { return Err(ApiError::invalid_request("Invalid request.")) };
    let now = Utc::now();
    let plan = state.settings.signup.default_plan.clone();
    // Only sign-up claims a company domain; further accounts are workspaces of that user.
    let account = Account {
        id: new_id(IdKind::Account),
        name,
        url,
        domain: None,
        trial_ends_at: state.plans.trial_end(&plan, now),
        plan,
        created_at: now,
    };
    let entry = audit(
        &account.id,
        &principal.actor(),
        "account.created",
        ("account", &account.id),
        ip,
        json!({ "name": account.name, "url": account.url, "plan": account.plan }),
    );
    state.store.create_account(account.clone(), &session.user.id, vec![entry]).await?;
    state.invalidate(Invalidation::User(session.user.id.clone())).await;
    let mut view = AccountView::new(&account, &state.plans);
    view.authority = Some(Authority::Owner);
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListAccountsQuery {
    /// 1–100, default 50.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
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
    let session = principal.session()?;
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let memberships = state.store.user_memberships(&session.user.id).await?;
    // Cursor: `<membership created_at millis>_<account id>` of the last item of the page.
    let after = page.cursor.as_deref().and_then(|c| {
        let (millis, account_id) = c.split_once('_')?;
        Some((millis.parse::<i64>().ok()?, account_id.to_owned()))
    });
    if page.cursor.is_some() && after.is_none() {
        return Err(ApiError::invalid_field("cursor", "is not a cursor from a previous page"));
    }
    let mut rest = memberships
        .into_iter()
        .filter(|m| match &after {
            None => true,
            Some((millis, id)) => (m.created_at.timestamp_millis(), &m.account_id) > (*millis, id),
        })
        .peekable();
    let mut items = Vec::new();
    let mut last = None;
    while items.len() < page.limit as usize {
        let Some(m) = rest.next() else { break };
        last = Some(format!("{}_{}", m.created_at.timestamp_millis(), m.account_id));
        if let Some(a) = state.store.account_by_id(&m.account_id).await? {
            let mut view = AccountView::new(&a, &state.plans);
            view.authority = Some(m.authority);
            items.push(view);
        }
    }
    let next_cursor = if rest.peek().is_some() { last } else { None };
    Ok(axum::Json(ListView { items, next_cursor }))
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
    caller.require_scope("accounts", "read")?;
    let mut view = AccountView::new(&caller.account, &state.plans);
    view.authority = Some(caller.authority);
    Ok(axum::Json(view))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchAccountBody {
    pub name: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub url: Option<Option<String>>,
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
    caller.require_scope("accounts", "write")?;
    caller.require_authority(Authority::Administrator)?;
    let mut errors = FieldErrors::default();
    let empty_patch = body.name.is_none() && body.url.is_none();
    let name = match body.name.as_deref() {
        None => None,
        Some(n) => check_name(n).map_err(|e| errors.add("name", e.to_string())).ok(),
    };
    let url: Option<Option<String>> = match body.url {
        None => None,
        Some(None) => Some(None),
        Some(Some(raw)) => match parse_url(&raw) {
            Ok(u) => Some(Some(u)),
            Err(m) => {
                errors.add("url", m);
                None
            }
        },
    };
    if empty_patch {
        errors.add("body", "nothing to change: send name or url");
    }
    errors.into_result()?;
    let mut fields = Vec::new();
    if name.is_some() {
        fields.push("name");
    }
    if url.is_some() {
        fields.push("url");
    }
    let entry = audit(
        &id,
        &caller.actor,
        "account.updated",
        ("account", &id),
        ip,
        json!({ "fields": fields, "name": name, "url": url.clone().flatten() }),
    );
    let account =
        state.store.update_account(&id, name.as_deref(), url.as_ref().map(|u| u.as_deref()), vec![entry]).await?;
    state.invalidate(Invalidation::Account(id.clone())).await;
    let mut view = AccountView::new(&account, &state.plans);
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
    caller.require_scope("accounts", "write")?;
    caller.require_authority(Authority::Owner)?;
    let entry =
        audit(&id, &caller.actor, "account.deleted", ("account", &id), ip, json!({ "name": caller.account.name }));
    state.store.delete_account(&id, Utc::now(), vec![entry]).await?;
    state.invalidate(Invalidation::Account(id.clone())).await;
    Ok(StatusCode::NO_CONTENT)
}
