//! API keys: mint (shown once), list, get, patch, revoke, roll, usage by outcome (docs/api.md §4
//! API keys, Usage). Every change is audited in the same transaction and invalidates cached
//! decisions at once.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use keygate_core::{NamedRateLimit, RateLimit, Refill};
use keygate_store::{Granularity, UsageBucket};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::identity::common::double_option;
use super::usage::UsagePointView;
use crate::auth::{Caller, Principal};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientIp, Json, OptionalJson, Query, page_request};
use crate::service::key_usage;
use crate::service::keys as service;
use crate::state::AppState;
use crate::views::{CreatedKeyView, KeyView, ListView, time};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(mint, list))
        .routes(routes!(get_key, patch_key, revoke_key))
        .routes(routes!(roll_key))
        .routes(routes!(key_usage))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MintBody {
    account_id: Option<String>,
    /// `user` (default) or `org`
    class: Option<String>,
    name: String,
    /// `user` (default), `administrator` or `owner`; never above the minter's
    authority: Option<String>,
    /// default `["*:*"]` for a session; a key minting a key passes on its own scopes
    scopes: Option<Vec<String>>,
    role_id: Option<String>,
    expires_at: Option<String>,
    end_date: Option<String>,
    starts_at: Option<String>,
    #[schema(value_type = Option<Object>)]
    rate_limit: Option<RateLimit>,
    /// `[{name, limit, window_seconds, burst?}]`: at most 5, names unique (1–32 of
    /// `[a-z0-9_-]`), each on top of `rate_limit`. A key minting a key passes on its own.
    #[schema(value_type = Option<Vec<Object>>)]
    rate_limits: Option<Vec<NamedRateLimit>>,
    usage_limit: Option<i64>,
    /// `{amount, interval: "day" | "month"}`: at each start of the interval (UTC) the credits
    /// left become `amount`. Needs `usage_limit`.
    #[schema(value_type = Option<Object>)]
    refill: Option<Refill>,
    ip_allowlist: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchBody {
    account_id: Option<String>,
    name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    expires_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    end_date: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    starts_at: Option<Option<String>>,
    scopes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    role_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    rate_limit: Option<Option<RateLimit>>,
    /// The whole list of named limits; `[]` or `null` removes them all.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<Object>>)]
    rate_limits: Option<Option<Vec<NamedRateLimit>>>,
    #[serde(default, deserialize_with = "double_option")]
    usage_limit: Option<Option<i64>>,
    /// `{amount, interval}`, or `null` to stop refilling.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    refill: Option<Option<Refill>>,
    ip_allowlist: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RollBody {
    account_id: Option<String>,
    /// 0–604800: how long the old key keeps working (default 0: revoked now)
    old_expires_in_seconds: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    account_id: Option<String>,
    /// `user` or `org`
    #[param(pattern = "^(user|org)$")]
    class: Option<String>,
    /// `active`, `inactive`, `expired` or `revoked`
    #[param(pattern = "^(active|inactive|expired|revoked)$")]
    status: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccountQuery {
    account_id: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsageQuery {
    account_id: Option<String>,
    /// `day`: YYYY-MM-DD, default 29 days before `to`. `hour`: an RFC 3339 time or a date,
    /// default 23 hours before `to`
    from: Option<String>,
    /// `day`: YYYY-MM-DD, default today (UTC), at most 366 days after `from`. `hour`: an
    /// RFC 3339 time or a date, default the current hour, at most 8 days after `from`
    to: Option<String>,
    /// `day` (default) or `hour`
    granularity: Option<String>,
}

/// A key's requests per bucket and outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyUsageView {
    pub key_id: String,
    /// `day` or `hour`
    pub granularity: String,
    /// The first bucket's start (RFC 3339, UTC)
    pub from: String,
    /// The last bucket's start (included)
    pub to: String,
    /// Every bucket of the range, zeros included, oldest first
    pub series: Vec<UsagePointView>,
    /// `granularity=day` only, kept for clients of the first edition: the same days as
    /// `series`, as `{date, requests}`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily: Option<Vec<DailyView>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DailyView {
    /// YYYY-MM-DD
    pub date: String,
    pub requests: i64,
}

/// Mint a key. 201 with the full `key`: the only time it is ever shown.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = MintBody,
    responses((status = 201, body = CreatedKeyView),
        (status = 400, description = "invalid_request; limit_exceeds_plan: the rate limit or one of the rate_limits is looser than the plan's key_rate_limit_max"),
        (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn mint(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    Json(body): Json<MintBody>,
) -> ApiResult<(StatusCode, axum::Json<CreatedKeyView>)> {
    let caller = principal.in_account(&state, body.account_id.as_deref()).await?;
    // A key minting a key passes on its own scopes and role by default; a session has `*:*`.
    let (default_scopes, default_role) = match &principal {
        Principal::Key(g) => (g.key.key.scopes.clone(), g.key.key.role_id.clone()),
        Principal::Session(_) => (vec!["*:*".to_owned()], None),
    };
    let role_id = body.role_id.or(if body.scopes.is_none() { default_role } else { None });
    let input = service::MintInput {
        class: body.class,
        name: body.name,
        authority: body.authority,
        scopes: body.scopes.unwrap_or(default_scopes),
        role_id,
        expires_at: body.expires_at,
        end_date: body.end_date,
        starts_at: body.starts_at,
        rate_limit: body.rate_limit,
        rate_limits: body.rate_limits,
        usage_limit: body.usage_limit,
        refill: body.refill,
        ip_allowlist: body.ip_allowlist.unwrap_or_default(),
        metadata: body.metadata,
    };
    let minted = service::mint(&state.services, &caller, Some(ip), input).await?;
    let view = KeyView::new(minted.key, Utc::now());
    Ok((StatusCode::CREATED, axum::Json(CreatedKeyView { key: minted.secret.expose().to_owned(), view })))
}

/// List keys, newest first, never secrets. A member with authority `user` sees only their own.
#[utoipa::path(get, path = "/v1/keys", tag = "keys", params(ListQuery),
    responses((status = 200, body = ListView<KeyView>), (status = 400), (status = 401), (status = 404)))]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<ListView<KeyView>>> {
    let caller = principal.in_account(&state, q.account_id.as_deref()).await?;
    caller.require_scope("keys", "read")?;
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let input = service::ListInput { class: q.class, status: q.status, own_only: false };
    let found = service::list(&state.services, &caller, &input, &page).await?;
    let now = Utc::now();
    Ok(axum::Json(ListView::from_page(found, |k| KeyView::new(k, now))))
}

/// One key, by `id` or `key_part`.
#[utoipa::path(get, path = "/v1/keys/{key}", tag = "keys", params(("key" = String, Path, description = "id or key_part"), AccountQuery),
    responses((status = 200, body = KeyView), (status = 401), (status = 404)))]
async fn get_key(
    State(state): State<AppState>,
    principal: Principal,
    Path(handle): Path<String>,
    Query(q): Query<AccountQuery>,
) -> ApiResult<axum::Json<KeyView>> {
    let caller = caller_for_key(&state, &principal, q.account_id.as_deref(), &handle).await?;
    let key = service::get(&state.services, &caller, &handle).await?;
    Ok(axum::Json(KeyView::new(key, Utc::now())))
}

/// Change a key's settings. Anyone who may edit the key may tighten it; loosening it needs
/// administrator+, and no key's rate limit may be looser than the plan's ceiling.
#[utoipa::path(patch, path = "/v1/keys/{key}", tag = "keys", params(("key" = String, Path, description = "id or key_part")), request_body = PatchBody,
    responses((status = 200, body = KeyView),
        (status = 400, description = "invalid_request; limit_exceeds_plan: the rate limit or one of the rate_limits is looser than the plan's key_rate_limit_max"),
        (status = 401),
        (status = 403, description = "insufficient_authority: loosening the key (raising or removing a rate limit, a named limit or usage limit, adding or raising a refill, widening scopes or the role, widening or removing the IP allowlist, extending or removing the expiry, an earlier start) needs administrator+; insufficient_scope"),
        (status = 404), (status = 409)))]
async fn patch_key(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    Path(handle): Path<String>,
    Json(body): Json<PatchBody>,
) -> ApiResult<axum::Json<KeyView>> {
    let caller = caller_for_key(&state, &principal, body.account_id.as_deref(), &handle).await?;
    let input = service::PatchInput {
        name: body.name,
        expires_at: body.expires_at,
        end_date: body.end_date,
        starts_at: body.starts_at,
        scopes: body.scopes,
        role_id: body.role_id,
        rate_limit: body.rate_limit,
        rate_limits: body.rate_limits.map(Option::unwrap_or_default),
        refill: body.refill,
        usage_limit: body.usage_limit,
        ip_allowlist: body.ip_allowlist,
        metadata: body.metadata,
    };
    let updated = service::patch(&state.services, &caller, ip, &handle, input).await?;
    Ok(axum::Json(KeyView::new(updated, Utc::now())))
}

/// Revoke now, for good. The key stays listed with status `revoked`.
#[utoipa::path(delete, path = "/v1/keys/{key}", tag = "keys", params(("key" = String, Path, description = "id or key_part"), AccountQuery),
    responses((status = 200, body = KeyView), (status = 401), (status = 403), (status = 404)))]
async fn revoke_key(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    Path(handle): Path<String>,
    Query(q): Query<AccountQuery>,
) -> ApiResult<axum::Json<KeyView>> {
    let caller = caller_for_key(&state, &principal, q.account_id.as_deref(), &handle).await?;
    let revoked = service::revoke(&state.services, &caller, Some(ip), &handle).await?;
    Ok(axum::Json(KeyView::new(revoked, Utc::now())))
}

/// Mint a successor with the same settings; the old key ends now or after the overlap. A key
/// is rolled once: 409 `key_rolled` when it already has a successor.
#[utoipa::path(post, path = "/v1/keys/{key}/roll", tag = "keys", params(("key" = String, Path, description = "id or key_part")), request_body = RollBody,
    responses((status = 201, body = CreatedKeyView), (status = 400), (status = 401), (status = 403), (status = 404),
        (status = 409, description = "key_rolled: the key already has a successor (`rolled_to`), a key is rolled once; key_revoked: the key is revoked")))]
async fn roll_key(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    Path(handle): Path<String>,
    OptionalJson(body): OptionalJson<RollBody>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let body = body.unwrap_or_default();
    let caller = caller_for_key(&state, &principal, body.account_id.as_deref(), &handle).await?;
    let rolled = service::roll(&state.services, &caller, ip, &handle, body.old_expires_in_seconds.unwrap_or(0)).await?;
    let now = Utc::now();
    let mut out = serde_json::to_value(CreatedKeyView {
        key: rolled.secret.expose().to_owned(),
        view: KeyView::new(rolled.new, now),
    })
    .map_err(ApiError::internal)?;
    out["previous_key"] = serde_json::to_value(KeyView::new(rolled.old, now)).map_err(ApiError::internal)?;
    Ok((StatusCode::CREATED, axum::Json(out)))
}

/// Requests per UTC day or hour by outcome, every bucket listed (zeros included).
#[utoipa::path(get, path = "/v1/keys/{key}/usage", tag = "keys", params(("key" = String, Path, description = "id or key_part"), UsageQuery),
    responses((status = 200, body = KeyUsageView),
        (status = 400, description = "invalid_request: `from` after `to`, a range longer than 366 days (`day`) or 8 days (`hour`), an unknown `granularity`"),
        (status = 401), (status = 404)))]
async fn key_usage(
    State(state): State<AppState>,
    principal: Principal,
    Path(handle): Path<String>,
    Query(q): Query<UsageQuery>,
) -> ApiResult<axum::Json<KeyUsageView>> {
    let caller = caller_for_key(&state, &principal, q.account_id.as_deref(), &handle).await?;
    let usage = key_usage::series(
        &state.services,
        &caller,
        &handle,
        q.granularity.as_deref(),
        q.from.as_deref(),
        q.to.as_deref(),
    )
    .await?;
    let daily = (usage.range.granularity == Granularity::Day).then(|| {
        let day =
            |b: &UsageBucket| DailyView { date: b.start.format("%Y-%m-%d").to_string(), requests: b.outcomes.total() };
        usage.series.iter().map(day).collect()
    });
    Ok(axum::Json(KeyUsageView {
        key_id: usage.key_id,
        granularity: usage.range.granularity.as_str().to_owned(),
        from: time(usage.range.from),
        to: time(usage.range.to),
        series: usage.series.iter().map(UsagePointView::from).collect(),
        daily,
    }))
}

/// The caller in the key's account. A key names a single account, so a session token may omit
/// `account_id` on `/v1/keys/{key}…`: the key is looked up in the user's own accounts (never
/// beyond them), and a key in none of them is 404 like any other.
async fn caller_for_key(
    state: &AppState,
    principal: &Principal,
    account_id: Option<&str>,
    handle: &str,
) -> ApiResult<Caller> {
    if account_id.is_some() || !matches!(principal, Principal::Session(_)) {
        return principal.in_account(state, account_id).await;
    }
    let user_id = principal.user_id().unwrap_or_default();
    let account_id = key_usage::account_of(&state.services, user_id, handle).await?;
    principal.in_account(state, Some(&account_id)).await
}
