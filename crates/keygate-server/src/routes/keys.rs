//! API keys: mint (shown once), list, get, patch, revoke, roll, daily usage (SPEC §4).
//! Every change is audited in the same transaction and invalidates cached decisions at once.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{NaiveDate, Utc};
use keygate_core::id::{IdKind, new_id};
use keygate_core::{Authority, CredentialKind, RateLimit};
use keygate_store::{ApiKey, KeyClass, KeyFilter, KeyPatch, KeyStatus, NewKey};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::key_input::*;
use crate::auth::{Caller, Invalidation, Principal};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientIp, Json, OptionalJson, Query, page_request};
use crate::state::{AppState, audit};
use crate::views::{CreatedKeyView, KeyView, ListView};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(mint, list))
        .routes(routes!(get_key, patch_key, revoke_key))
        .routes(routes!(roll_key))
        .routes(routes!(key_usage))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MintBody {
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
    usage_limit: Option<i64>,
    ip_allowlist: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
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
    #[serde(default, deserialize_with = "double_option")]
    usage_limit: Option<Option<i64>>,
    ip_allowlist: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RollBody {
    account_id: Option<String>,
    /// 0–604800: how long the old key keeps working (default 0: revoked now)
    old_expires_in_seconds: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    account_id: Option<String>,
    class: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AccountQuery {
    account_id: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    account_id: Option<String>,
    /// YYYY-MM-DD, default 29 days before `to`
    from: Option<String>,
    /// YYYY-MM-DD, default today (UTC)
    to: Option<String>,
}

/// Mint a key. 201 with the full `key`: the only time it is ever shown.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = MintBody,
    responses((status = 201, body = CreatedKeyView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn mint(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    Json(body): Json<MintBody>,
) -> ApiResult<(StatusCode, axum::Json<CreatedKeyView>)> {
    let caller = principal.in_account(&state, body.account_id.as_deref()).await?;
    caller.require_scope("keys", "write")?;
    let now = Utc::now();
    let plan = state.plans.access(&caller.account, now);
    if !plan.api_access {
        return Err(ApiError::plan_required());
    }
    let class = match body.class.as_deref() {
        None | Some("user") => KeyClass::User,
        Some("org") => KeyClass::Org,
        Some(_) => return Err(ApiError::invalid_field("class", "must be `user` or `org`")),
    };
    let user_id = match class {
        KeyClass::User => Some(caller.require_user()?.to_owned()),
        KeyClass::Org => {
            caller.require_authority(Authority::Administrator)?;
            None
        }
    };
    let authority = match body.authority.as_deref() {
        None => Authority::User,
        Some(a) => Authority::parse(a).ok_or_else(|| ApiError::invalid_field("authority", "must be user, administrator or owner"))?,
    };
    caller.require_authority(authority)?;
    let name = parse_name(&body.name)?;
    // A key minting a key passes on its own scopes and role by default; a session has `*:*`.
    let (default_scopes, default_role) = match &principal {
        Principal::Key(g) => (g.key.key.scopes.clone(), g.key.key.role_id.clone()),
        Principal::Session(_) => (vec!["*:*".to_owned()], None),
    };
    let scopes = parse_scopes(body.scopes.as_deref().unwrap_or(&default_scopes))?;
    let role_id = body.role_id.clone().or(if body.scopes.is_none() { default_role } else { None });
    let role_permissions = match &role_id {
        Some(r) => Some(role_permissions(&state, &caller.account.id, r).await?),
        None => None,
    };
    ensure_within(&caller, &scopes, role_permissions.as_ref())?;
    let expires_at = expiry(body.expires_at.as_deref(), body.end_date.as_deref())?;
    let starts_at = body.starts_at.as_deref().map(|s| parse_time("starts_at", s)).transpose()?;
    let generated = state.format().generate(match class {
        KeyClass::User => CredentialKind::UserKey,
        KeyClass::Org => CredentialKind::OrgKey,
    });
    let new = NewKey {
        id: new_id(IdKind::Key),
        digest: generated.digest.to_hex(),
        key_part: generated.key_part.clone(),
        class,
        name,
        account_id: caller.account.id.clone(),
        user_id,
        authority,
        scopes: scopes.iter().map(ToString::to_string).collect(),
        role_id,
        created_at: now,
        created_by: creator(&caller),
        // An expiry already past creates the key inactive: pre-staged until PATCHed.
        staged: expires_at.is_some_and(|e| e <= now),
        expires_at,
        starts_at,
        usage_limit: body.usage_limit.map(parse_usage_limit).transpose()?,
        rate_limit: body.rate_limit.as_ref().map(parse_rate_limit).transpose()?,
        ip_allowlist: parse_allowlist(body.ip_allowlist.as_deref().unwrap_or_default())?,
        metadata: parse_metadata(body.metadata.as_ref().unwrap_or(&json!({})))?,
    };
    let entry = audit(
        &caller.account.id,
        &caller.actor,
        "key.created",
        ("key", &new.id),
        ip,
        json!({ "name": new.name, "class": class.as_str(), "authority": authority.as_str(), "scopes": new.scopes, "role_id": new.role_id, "key_part": new.key_part }),
    );
    let key = state.store.create_key(new, plan.max_keys, vec![entry]).await?;
    Ok((StatusCode::CREATED, axum::Json(CreatedKeyView { key: generated.secret.expose().to_owned(), view: KeyView::new(key, now) })))
}

/// List keys, newest first, never secrets. A member with authority `user` sees only their own.
#[utoipa::path(get, path = "/v1/keys", tag = "keys", params(ListQuery),
    responses((status = 200, body = ListView<KeyView>), (status = 400), (status = 401), (status = 404)))]
async fn list(State(state): State<AppState>, principal: Principal, Query(q): Query<ListQuery>) -> ApiResult<axum::Json<ListView<KeyView>>> {
    let caller = principal.in_account(&state, q.account_id.as_deref()).await?;
    caller.require_scope("keys", "read")?;
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let mut filter = KeyFilter {
        class: q.class.as_deref().map(|c| KeyClass::parse(c).ok_or_else(|| ApiError::invalid_field("class", "must be user or org"))).transpose()?,
        status: q
            .status
            .as_deref()
            .map(|s| KeyStatus::parse(s).ok_or_else(|| ApiError::invalid_field("status", "must be active, inactive, expired or revoked")))
            .transpose()?,
        user_id: None,
    };
    if !caller.authority.is_admin() {
        // Their own user keys only; an org key without administrator authority owns none.
        filter.class = Some(KeyClass::User);
        filter.user_id = Some(caller.user_id.clone().unwrap_or_else(|| "-".into()));
    }
    let now = Utc::now();
    let found = state.store.list_keys(&caller.account.id, &filter, now, &page).await?;
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
    let caller = principal.in_account(&state, q.account_id.as_deref()).await?;
    caller.require_scope("keys", "read")?;
    let key = visible_key(&state, &caller, &handle).await?;
    Ok(axum::Json(KeyView::new(key, Utc::now())))
}

/// Change a key's settings. 409 `key_revoked` on a revoked key.
#[utoipa::path(patch, path = "/v1/keys/{key}", tag = "keys", params(("key" = String, Path, description = "id or key_part")), request_body = PatchBody,
    responses((status = 200, body = KeyView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn patch_key(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    Path(handle): Path<String>,
    Json(body): Json<PatchBody>,
) -> ApiResult<axum::Json<KeyView>> {
    let caller = principal.in_account(&state, body.account_id.as_deref()).await?;
    caller.require_scope("keys", "write")?;
    let key = visible_key(&state, &caller, &handle).await?;
    if key.revoked_at.is_some() {
        return Err(ApiError::key_revoked());
    }
    let now = Utc::now();
    let mut patch = KeyPatch::default();
    let mut changed: Vec<&str> = Vec::new();
    if let Some(n) = &body.name {
        patch.name = Some(parse_name(n)?);
        changed.push("name");
    }
    let new_expiry = match (&body.expires_at, &body.end_date) {
        (Some(_), Some(_)) => return Err(ApiError::invalid_field("end_date", "give expires_at or end_date, not both")),
        (Some(e), None) => Some(e.as_deref().map(|s| parse_time("expires_at", s)).transpose()?),
        (None, Some(d)) => Some(d.as_deref().map(parse_end_date).transpose()?),
        (None, None) => None,
    };
    if let Some(e) = new_expiry {
        patch.expires_at = Some(e);
        // Moving the expiry into the future (or removing it) switches a pre-staged key on.
        if key.staged && e.is_none_or(|t| t > now) {
            patch.staged = Some(false);
        }
        changed.push("expires_at");
    }
    if let Some(s) = &body.starts_at {
        patch.starts_at = Some(s.as_deref().map(|s| parse_time("starts_at", s)).transpose()?);
        changed.push("starts_at");
    }
    if body.scopes.is_some() || body.role_id.is_some() {
        let scopes = match &body.scopes {
            Some(s) => parse_scopes(s)?,
            None => parse_scopes(&key.scopes)?,
        };
        let role_id = match &body.role_id {
            Some(r) => r.clone(),
            None => key.role_id.clone(),
        };
        let role_permissions = match &role_id {
            Some(r) => Some(role_permissions(&state, &caller.account.id, r).await?),
            None => None,
        };
        ensure_within(&caller, &scopes, role_permissions.as_ref())?;
        if body.scopes.is_some() {
            patch.scopes = Some(scopes.iter().map(ToString::to_string).collect());
            changed.push("scopes");
        }
        if body.role_id.is_some() {
            patch.role_id = Some(role_id);
            changed.push("role_id");
        }
    }
    if let Some(r) = &body.rate_limit {
        patch.rate_limit = Some(r.as_ref().map(parse_rate_limit).transpose()?);
        changed.push("rate_limit");
    }
    if let Some(u) = body.usage_limit {
        patch.usage_limit = Some(u.map(parse_usage_limit).transpose()?);
        changed.push("usage_limit");
    }
    if let Some(list) = &body.ip_allowlist {
        patch.ip_allowlist = Some(parse_allowlist(list)?);
        changed.push("ip_allowlist");
    }
    if let Some(m) = &body.metadata {
        patch.metadata = Some(parse_metadata(m)?);
        changed.push("metadata");
    }
    let entry = audit(&caller.account.id, &caller.actor, "key.updated", ("key", &key.id), ip, json!({ "fields": changed }));
    let updated = state.store.update_key(&caller.account.id, &key.id, &patch, vec![entry]).await?;
    state.invalidate(Invalidation::Account(caller.account.id.clone())).await;
    Ok(axum::Json(KeyView::new(updated, now)))
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
    let caller = principal.in_account(&state, q.account_id.as_deref()).await?;
    caller.require_scope("keys", "write")?;
    let key = visible_key(&state, &caller, &handle).await?;
    let now = Utc::now();
    let entry = audit(&caller.account.id, &caller.actor, "key.revoked", ("key", &key.id), ip, json!({ "key_part": key.key_part }));
    let revoked = state.store.revoke_key(&caller.account.id, &key.id, now, vec![entry]).await?;
    state.invalidate(Invalidation::Account(caller.account.id.clone())).await;
    Ok(axum::Json(KeyView::new(revoked, now)))
}

/// Mint a successor with the same settings; the old key ends now or after the overlap.
#[utoipa::path(post, path = "/v1/keys/{key}/roll", tag = "keys", params(("key" = String, Path, description = "id or key_part")), request_body = RollBody,
    responses((status = 201, body = CreatedKeyView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn roll_key(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    Path(handle): Path<String>,
    OptionalJson(body): OptionalJson<RollBody>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let body = body.unwrap_or_default();
    let caller = principal.in_account(&state, body.account_id.as_deref()).await?;
    caller.require_scope("keys", "write")?;
    let old = visible_key(&state, &caller, &handle).await?;
    if old.revoked_at.is_some() {
        return Err(ApiError::key_revoked());
    }
    let overlap = body.old_expires_in_seconds.unwrap_or(0);
    if !(0..=604_800).contains(&overlap) {
        return Err(ApiError::invalid_field("old_expires_in_seconds", "must be 0 to 604800"));
    }
    let now = Utc::now();
    let old_expires_at = (overlap > 0).then(|| now + chrono::Duration::seconds(overlap));
    let generated = state.format().generate(match old.class {
        KeyClass::User => CredentialKind::UserKey,
        KeyClass::Org => CredentialKind::OrgKey,
    });
    let successor = NewKey {
        id: new_id(IdKind::Key),
        digest: generated.digest.to_hex(),
        key_part: generated.key_part.clone(),
        class: old.class,
        name: old.name.clone(),
        account_id: old.account_id.clone(),
        user_id: old.user_id.clone(),
        authority: old.authority,
        scopes: old.scopes.clone(),
        role_id: old.role_id.clone(),
        created_at: now,
        created_by: creator(&caller),
        expires_at: old.expires_at,
        starts_at: old.starts_at,
        staged: old.staged,
        usage_limit: old.usage_limit,
        rate_limit: old.rate_limit,
        ip_allowlist: old.ip_allowlist.clone(),
        metadata: old.metadata.clone(),
    };
    let entry = audit(
        &caller.account.id,
        &caller.actor,
        "key.rolled",
        ("key", &old.id),
        ip,
        json!({ "successor_id": successor.id, "old_expires_in_seconds": overlap }),
    );
    let (new, old) = state.store.roll_key(&caller.account.id, &old.id, successor, old_expires_at, now, vec![entry]).await?;
    state.invalidate(Invalidation::Account(caller.account.id.clone())).await;
    let mut out = serde_json::to_value(CreatedKeyView { key: generated.secret.expose().to_owned(), view: KeyView::new(new, now) })
        .map_err(ApiError::internal)?;
    out["previous_key"] = serde_json::to_value(KeyView::new(old, now)).map_err(ApiError::internal)?;
    Ok((StatusCode::CREATED, axum::Json(out)))
}

/// Requests per UTC day, zeros included, for `?from=&to=` (at most 366 days).
#[utoipa::path(get, path = "/v1/keys/{key}/usage", tag = "keys", params(("key" = String, Path, description = "id or key_part"), UsageQuery),
    responses((status = 200, description = "{daily: [{date, requests}]}"), (status = 400), (status = 401), (status = 404)))]
async fn key_usage(
    State(state): State<AppState>,
    principal: Principal,
    Path(handle): Path<String>,
    Query(q): Query<UsageQuery>,
) -> ApiResult<axum::Json<Value>> {
    let caller = principal.in_account(&state, q.account_id.as_deref()).await?;
    caller.require_scope("keys", "read")?;
    let key = visible_key(&state, &caller, &handle).await?;
    let date = |field: &str, s: &str| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| ApiError::invalid_field(field, "must be a date like 2026-12-31"))
    };
    let to = q.to.as_deref().map(|s| date("to", s)).transpose()?.unwrap_or_else(|| Utc::now().date_naive());
    let from = q.from.as_deref().map(|s| date("from", s)).transpose()?.unwrap_or(to - chrono::Duration::days(29));
    if from > to || (to - from).num_days() > 366 {
        return Err(ApiError::invalid_field("from", "must be on or before `to`, at most 366 days apart"));
    }
    let rows = state.store.key_usage(&key.id, from, to).await?;
    let daily: Vec<Value> = from
        .iter_days()
        .take_while(|d| *d <= to)
        .map(|d| {
            let n = rows.iter().find(|r| r.date == d).map(|r| r.requests).unwrap_or(0);
            json!({ "date": d.format("%Y-%m-%d").to_string(), "requests": n })
        })
        .collect();
    Ok(axum::Json(json!({ "key_id": key.id, "daily": daily })))
}

/// The key behind `handle` if the caller may see it: administrators see every key of the
/// account, others only their own user keys. Anything else is 404, like a key that never was.
async fn visible_key(state: &AppState, caller: &Caller, handle: &str) -> ApiResult<ApiKey> {
    if !keygate_core::id::looks_like(IdKind::Key, handle) && !state.format().is_key_part(handle) {
        return Err(ApiError::not_found());
    }
    let key = state.store.key_by_handle(&caller.account.id, handle).await?.ok_or_else(ApiError::not_found)?;
    let own = key.class == KeyClass::User && key.user_id.is_some() && key.user_id == caller.user_id;
    if caller.authority.is_admin() || own || caller.key_id.as_deref() == Some(key.id.as_str()) {
        Ok(key)
    } else {
        Err(ApiError::not_found())
    }
}

async fn role_permissions(state: &AppState, account_id: &str, role_id: &str) -> ApiResult<keygate_core::ScopeSet> {
    if !keygate_core::id::looks_like(IdKind::Role, role_id) {
        return Err(ApiError::invalid_field("role_id", "no such role in this account"));
    }
    let role = state
        .store
        .role(account_id, role_id)
        .await?
        .ok_or_else(|| ApiError::invalid_field("role_id", "no such role in this account"))?;
    keygate_core::ScopeSet::parse_all(role.permissions.iter().map(String::as_str)).map_err(ApiError::internal)
}

/// A new key's effective permissions (scopes ∩ role) must stay within the caller's: it is
/// enough that either its scopes or its role fit, since the key gets their intersection.
fn ensure_within(caller: &Caller, scopes: &keygate_core::ScopeSet, role: Option<&keygate_core::ScopeSet>) -> ApiResult<()> {
    if caller.permissions.covers_all(scopes) || role.is_some_and(|r| caller.permissions.covers_all(r)) {
        return Ok(());
    }
    let first = scopes.iter().find(|s| !caller.permissions.allows(s)).map(ToString::to_string).unwrap_or_default();
    Err(ApiError::insufficient_scope(&first))
}

fn creator(caller: &Caller) -> String {
    caller.key_id.clone().or_else(|| caller.user_id.clone()).unwrap_or_else(|| "operator".into())
}
