//! API-key management as domain operations: mint, list, find, patch, revoke, roll.
//!
//! The JSON API (`routes/keys.rs`), the dashboard and `keygate admin keys mint` all call
//! these, so the authority rules, validation, audit entries and cache invalidation are the
//! same whichever way a key is managed. Errors are `ApiError`s: each front end renders them
//! its way.

use std::net::IpAddr;

use chrono::Utc;
use keygate_core::id::{IdKind, new_id};
use keygate_core::{Authority, CredentialKind, NamedRateLimit, RateLimit, Refill, ScopeSet, Secret};
use keygate_store::{ActorType, ApiKey, KeyClass, KeyFilter, KeyPatch, KeyStatus, NewKey, Page, PageRequest};
use serde_json::{Value, json};

use super::key_limits::{self, limits_of, parse_named, parse_refill, refuse_loosening, within_plan};

use crate::auth::{Caller, Invalidation};
use crate::error::{ApiError, ApiResult};
use crate::service::input::*;
use crate::service::{Services, audit};

/// Everything a new key is made of, as the person gave it (validated here).
#[derive(Debug, Clone, Default)]
pub struct MintInput {
    /// `user` (default) or `org`.
    pub class: Option<String>,
    pub name: String,
    /// `user` (default), `administrator` or `owner`.
    pub authority: Option<String>,
    /// Already defaulted by the caller (a session's `*:*`, a key's own scopes).
    pub scopes: Vec<String>,
    pub role_id: Option<String>,
    pub expires_at: Option<String>,
    pub end_date: Option<String>,
    pub starts_at: Option<String>,
    pub rate_limit: Option<RateLimit>,
    /// Named limits on top of `rate_limit`. `None`: none (a key minting a key: its own).
    pub rate_limits: Option<Vec<NamedRateLimit>>,
    pub usage_limit: Option<i64>,
    pub refill: Option<Refill>,
    pub ip_allowlist: Vec<String>,
    pub metadata: Option<Value>,
}

/// A PATCH as the person gave it: `None` leaves a field, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub(crate) struct PatchInput {
    pub(crate) name: Option<String>,
    pub(crate) expires_at: Option<Option<String>>,
    pub(crate) end_date: Option<Option<String>>,
    pub(crate) starts_at: Option<Option<String>>,
    pub(crate) scopes: Option<Vec<String>>,
    pub(crate) role_id: Option<Option<String>>,
    pub(crate) rate_limit: Option<Option<RateLimit>>,
    /// The whole list; `Some(vec![])` removes every named limit.
    pub(crate) rate_limits: Option<Vec<NamedRateLimit>>,
    pub(crate) usage_limit: Option<Option<i64>>,
    pub(crate) refill: Option<Option<Refill>>,
    pub(crate) ip_allowlist: Option<Vec<String>>,
    pub(crate) metadata: Option<Value>,
}

/// A new key with its secret: the one moment the secret exists outside a digest.
#[derive(Debug)]
pub struct Minted {
    pub secret: Secret,
    pub key: ApiKey,
}

/// A successor with its secret, and the old key as it ends.
#[derive(Debug)]
pub(crate) struct Rolled {
    pub(crate) secret: Secret,
    pub(crate) new: ApiKey,
    pub(crate) old: ApiKey,
}

/// Which keys to list. `own_only` narrows an administrator to their own user keys
/// (the dashboard's "Personal API keys"); members below administrator only ever see those.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListInput {
    pub(crate) class: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) own_only: bool,
}

/// The longest overlap a rolled key may keep working (7 days).
pub(crate) const MAX_ROLL_OVERLAP_SECONDS: i64 = 604_800;

/// Mints a key (docs/api.md §7 Keys). `ip` is the client's address; the operator's shell
/// (`keygate admin keys mint`, a caller from `service::operator::in_account`) has none.
pub async fn mint(svc: &Services, caller: &Caller, ip: Option<IpAddr>, input: MintInput) -> ApiResult<Minted> {
    caller.require_scope("keys", "write")?;
    let now = Utc::now();
    let plan = svc.plans.access(&caller.account, now);
    if !plan.api_access {
        return Err(ApiError::plan_required());
    }
    let class = match input.class.as_deref() {
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
    let authority = match input.authority.as_deref() {
        None => Authority::User,
        Some(a) => Authority::parse(a)
            .ok_or_else(|| ApiError::invalid_field("authority", "must be user, administrator or owner"))?,
    };
    caller.require_authority(authority)?;
    let name = parse_name(&input.name)?;
    let scopes = parse_scopes(&input.scopes)?;
    let role_permissions = match &input.role_id {
        Some(r) => Some(role_permissions(svc, &caller.account.id, r).await?),
        None => None,
    };
    ensure_within(caller, &scopes, role_permissions.as_ref())?;
    let expires_at = expiry(input.expires_at.as_deref(), input.end_date.as_deref())?;
    let starts_at = input.starts_at.as_deref().map(|s| parse_time("starts_at", s)).transpose()?;
    let rate_limit = input.rate_limit.as_ref().map(parse_rate_limit).transpose()?;
    let usage_limit = input.usage_limit.map(parse_usage_limit).transpose()?;
    let refill = parse_refill(input.refill, usage_limit)?;
    let minter = minter_key(svc, caller).await?;
    let rate_limits = match (&input.rate_limits, &minter) {
        (Some(list), _) => parse_named(list)?,
        // A key minting a key passes on its named limits, as it passes on its scopes.
        (None, Some(k)) => k.rate_limits.clone(),
        (None, None) => Vec::new(),
    };
    within_plan(rate_limit, &rate_limits, plan.key_rate_limit_max)?;
    // A key below administrator mints no key looser than itself (docs/api.md §7 Keys).
    if !caller.authority.is_admin()
        && let Some(minter) = &minter
    {
        let new = keygate_core::loosening::Restrictions {
            rate_limit: rate_limit.or(plan.rate_limit),
            rate_limits: rate_limits.clone(),
            usage_limit,
            refill,
            ..limits_of(minter, plan.rate_limit)
        };
        refuse_loosening(caller, &limits_of(minter, plan.rate_limit), &new, now)?;
    }
    let generated = svc.format.generate(credential_kind(class));
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
        role_id: input.role_id,
        created_at: now,
        created_by: creator(caller),
        // An expiry already past creates the key inactive: pre-staged until PATCHed.
        staged: expires_at.is_some_and(|e| e <= now),
        expires_at,
        starts_at,
        usage_limit,
        // The first credits are `usage_limit`; the first refill comes at the next boundary.
        refilled_at: refill.map(|r| r.interval.start(now)),
        refill,
        rate_limit,
        rate_limits,
        ip_allowlist: parse_allowlist(&input.ip_allowlist)?,
        metadata: parse_metadata(input.metadata.as_ref().unwrap_or(&json!({})))?,
    };
    let entry = audit(
        &caller.account.id,
        &caller.actor,
        "key.created",
        ("key", &new.id),
        ip,
        json!({ "name": new.name, "class": class.as_str(), "authority": authority.as_str(), "scopes": new.scopes, "role_id": new.role_id, "key_part": new.key_part }),
    );
    let key = svc.store.create_key(new, plan.max_keys, vec![entry]).await?;
    Ok(Minted { secret: generated.secret, key })
}

/// Keys newest first, never secrets. Members below administrator see only their own user keys.
pub(crate) async fn list(
    svc: &Services,
    caller: &Caller,
    input: &ListInput,
    page: &PageRequest,
) -> ApiResult<Page<ApiKey>> {
    caller.require_scope("keys", "read")?;
    let mut filter = KeyFilter {
        class: input
            .class
            .as_deref()
            .map(|c| KeyClass::parse(c).ok_or_else(|| ApiError::invalid_field("class", "must be user or org")))
            .transpose()?,
        status: input
            .status
            .as_deref()
            .map(|s| {
                KeyStatus::parse(s)
                    .ok_or_else(|| ApiError::invalid_field("status", "must be active, inactive, expired or revoked"))
            })
            .transpose()?,
        user_id: None,
    };
    if input.own_only || !caller.authority.is_admin() {
        // Their own user keys only; an org key without administrator authority owns none.
        filter.class = Some(KeyClass::User);
        filter.user_id = Some(caller.user_id.clone().unwrap_or_else(|| "-".into()));
    }
    Ok(svc.store.list_keys(&caller.account.id, &filter, Utc::now(), page).await?)
}

/// The key behind `handle` (`id` or `key_part`) if the caller may see it: administrators see
/// every key of the account, others only their own user keys (and a key itself). Anything
/// else is 404, like a key that never was. Checks no scope: each operation checks its own.
pub(crate) async fn visible_key(svc: &Services, caller: &Caller, handle: &str) -> ApiResult<ApiKey> {
    if !keygate_core::id::looks_like(IdKind::Key, handle) && !svc.format.is_key_part(handle) {
        return Err(ApiError::not_found());
    }
    let key = svc.store.key_by_handle(&caller.account.id, handle).await?.ok_or_else(ApiError::not_found)?;
    let own = key.class == KeyClass::User && key.user_id.is_some() && key.user_id == caller.user_id;
    if caller.authority.is_admin() || own || caller.key_id.as_deref() == Some(key.id.as_str()) {
        Ok(key)
    } else {
        Err(ApiError::not_found())
    }
}

/// One key, to look at.
pub(crate) async fn get(svc: &Services, caller: &Caller, handle: &str) -> ApiResult<ApiKey> {
    caller.require_scope("keys", "read")?;
    visible_key(svc, caller, handle).await
}

/// Change a key's settings (docs/api.md §7 Keys). Anyone who may edit the key may tighten it;
/// loosening it (`loosening::loosenings`) needs administrator+ (403 `insufficient_authority`),
/// and no key's own rate limit may be looser than the plan's ceiling (400 `limit_exceeds_plan`).
/// 409 `key_revoked` on a revoked key.
pub(crate) async fn patch(
    svc: &Services,
    caller: &Caller,
    ip: IpAddr,
    handle: &str,
    input: PatchInput,
) -> ApiResult<ApiKey> {
    caller.require_scope("keys", "write")?;
    let key = visible_key(svc, caller, handle).await?;
    if key.revoked_at.is_some() {
        return Err(ApiError::key_revoked());
    }
    let now = Utc::now();
    let mut patch = KeyPatch::default();
    let mut changed: Vec<&str> = Vec::new();
    if let Some(n) = &input.name {
        patch.name = Some(parse_name(n)?);
        changed.push("name");
    }
    let new_expiry = match (&input.expires_at, &input.end_date) {
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
    if let Some(s) = &input.starts_at {
        patch.starts_at = Some(s.as_deref().map(|s| parse_time("starts_at", s)).transpose()?);
        changed.push("starts_at");
    }
    // Permissions before and after, read only when they change.
    let mut permissions = None;
    if input.scopes.is_some() || input.role_id.is_some() {
        let old_scopes = parse_scopes(&key.scopes)?;
        let scopes = match &input.scopes {
            Some(s) => parse_scopes(s)?,
            None => old_scopes.clone(),
        };
        let old_role = match &key.role_id {
            // A deleted role leaves the key with no permissions (fail closed): compare with that.
            Some(r) => Some(role_permissions(svc, &caller.account.id, r).await.unwrap_or_default()),
            None => None,
        };
        let role = match &input.role_id {
            Some(Some(r)) => Some(role_permissions(svc, &caller.account.id, r).await?),
            Some(None) => None,
            None => old_role.clone(),
        };
        ensure_within(caller, &scopes, role.as_ref())?;
        if input.scopes.is_some() {
            patch.scopes = Some(scopes.iter().map(ToString::to_string).collect());
            changed.push("scopes");
        }
        if let Some(r) = &input.role_id {
            patch.role_id = Some(r.clone());
            changed.push("role_id");
        }
        permissions = Some(((old_scopes, old_role), (scopes, role)));
    }
    let plan = svc.plans.access(&caller.account, now);
    if let Some(r) = &input.rate_limit {
        let limit = r.as_ref().map(parse_rate_limit).transpose()?;
        within_plan(limit, &[], plan.key_rate_limit_max)?;
        patch.rate_limit = Some(limit);
        changed.push("rate_limit");
    }
    if let Some(list) = &input.rate_limits {
        let named = parse_named(list)?;
        within_plan(None, &named, plan.key_rate_limit_max)?;
        patch.rate_limits = Some(named);
        changed.push("rate_limits");
    }
    if let Some(u) = input.usage_limit {
        patch.usage_limit = Some(u.map(parse_usage_limit).transpose()?);
        changed.push("usage_limit");
    }
    let usage_limit_after = patch.usage_limit.unwrap_or(key.usage_limit);
    match input.refill {
        Some(r) => {
            let refill = parse_refill(r, usage_limit_after)?;
            // The same interval keeps counting from its last refill (one due still happens);
            // a new one starts at the current period: its first refill is at the next boundary.
            let refilled_at = match (refill, key.refill) {
                (Some(new), Some(old)) if new.interval == old.interval => key.refilled_at,
                (Some(new), _) => Some(new.interval.start(now)),
                (None, _) => None,
            };
            patch.refill = Some((refill, refilled_at));
            changed.push("refill");
        }
        // No credits, nothing to refill.
        None if usage_limit_after.is_none() && key.refill.is_some() => patch.refill = Some((None, None)),
        None => {}
    }
    if let Some(list) = &input.ip_allowlist {
        patch.ip_allowlist = Some(parse_allowlist(list)?);
        changed.push("ip_allowlist");
    }
    if let Some(m) = &input.metadata {
        patch.metadata = Some(parse_metadata(m)?);
        changed.push("metadata");
    }
    let (before, after) = key_limits::restrictions(&key, &patch, permissions, plan.rate_limit);
    refuse_loosening(caller, &before, &after, now)?;
    let entry =
        audit(&caller.account.id, &caller.actor, "key.updated", ("key", &key.id), ip, json!({ "fields": changed }));
    let updated = svc.store.update_key(&caller.account.id, &key.id, &patch, vec![entry]).await?;
    svc.invalidate(Invalidation::Account(caller.account.id.clone())).await;
    Ok(updated)
}

/// The key a caller acts with, as stored, when it is a key (to compare what it mints with).
async fn minter_key(svc: &Services, caller: &Caller) -> ApiResult<Option<ApiKey>> {
    match &caller.key_id {
        Some(id) => Ok(svc.store.key_by_handle(&caller.account.id, id).await?),
        None => Ok(None),
    }
}

/// Revoke now, for good. The key stays listed with status `revoked`. `ip` as for `mint`.
pub async fn revoke(svc: &Services, caller: &Caller, ip: Option<IpAddr>, handle: &str) -> ApiResult<ApiKey> {
    caller.require_scope("keys", "write")?;
    let key = visible_key(svc, caller, handle).await?;
    let now = Utc::now();
    let entry = audit(
        &caller.account.id,
        &caller.actor,
        "key.revoked",
        ("key", &key.id),
        ip,
        json!({ "key_part": key.key_part }),
    );
    let revoked = svc.store.revoke_key(&caller.account.id, &key.id, now, vec![entry]).await?;
    svc.invalidate(Invalidation::Account(caller.account.id.clone())).await;
    Ok(revoked)
}

/// A successor with the same settings; the old key ends now (`overlap_seconds` 0) or after
/// the overlap (at most 7 days). A key is rolled once: 409 `key_rolled` when it already has a
/// successor (also when it is still live through its overlap; the store decides races), 409
/// `key_revoked` on a revoked key.
pub(crate) async fn roll(
    svc: &Services,
    caller: &Caller,
    ip: IpAddr,
    handle: &str,
    overlap_seconds: i64,
) -> ApiResult<Rolled> {
    caller.require_scope("keys", "write")?;
    let old = visible_key(svc, caller, handle).await?;
    if old.rolled_to.is_some() {
        return Err(ApiError::key_rolled());
    }
    if old.revoked_at.is_some() {
        return Err(ApiError::key_revoked());
    }
    if !(0..=MAX_ROLL_OVERLAP_SECONDS).contains(&overlap_seconds) {
        return Err(ApiError::invalid_field("old_expires_in_seconds", "must be 0 to 604800"));
    }
    let now = Utc::now();
    let old_expires_at = (overlap_seconds > 0).then(|| now + chrono::Duration::seconds(overlap_seconds));
    let generated = svc.format.generate(credential_kind(old.class));
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
        created_by: creator(caller),
        expires_at: old.expires_at,
        starts_at: old.starts_at,
        staged: old.staged,
        usage_limit: old.usage_limit,
        // The same credits, counted from the same period: a roll is no refill.
        refill: old.refill,
        refilled_at: old.refilled_at,
        rate_limit: old.rate_limit,
        rate_limits: old.rate_limits.clone(),
        ip_allowlist: old.ip_allowlist.clone(),
        metadata: old.metadata.clone(),
    };
    let entry = audit(
        &caller.account.id,
        &caller.actor,
        "key.rolled",
        ("key", &old.id),
        ip,
        json!({ "successor_id": successor.id, "old_expires_in_seconds": overlap_seconds }),
    );
    let (new, old) =
        svc.store.roll_key(&caller.account.id, &old.id, successor, old_expires_at, now, vec![entry]).await?;
    svc.invalidate(Invalidation::Account(caller.account.id.clone())).await;
    Ok(Rolled { secret: generated.secret, new, old })
}

/// A data role's permissions; an unknown or foreign role is a field error, not a 404, since
/// the key itself exists.
pub(crate) async fn role_permissions(svc: &Services, account_id: &str, role_id: &str) -> ApiResult<ScopeSet> {
    if !keygate_core::id::looks_like(IdKind::Role, role_id) {
        return Err(ApiError::invalid_field("role_id", "no such role in this account"));
    }
    let role = svc
        .store
        .role(account_id, role_id)
        .await?
        .ok_or_else(|| ApiError::invalid_field("role_id", "no such role in this account"))?;
    ScopeSet::parse_all(role.permissions.iter().map(String::as_str)).map_err(ApiError::internal)
}

/// A key's effective permissions (scopes ∩ role) must stay within the caller's: it is enough
/// that either its scopes or its role fit, since the key gets their intersection.
pub(crate) fn ensure_within(caller: &Caller, scopes: &ScopeSet, role: Option<&ScopeSet>) -> ApiResult<()> {
    if caller.permissions.covers_all(scopes) || role.is_some_and(|r| caller.permissions.covers_all(r)) {
        return Ok(());
    }
    let first = scopes.iter().find(|s| !caller.permissions.allows(s)).map(ToString::to_string).unwrap_or_default();
    Err(ApiError::insufficient_scope(&first))
}

/// Who made a key: the key that minted it, else the user, else the operator (also when the
/// operator acts for a user).
fn creator(caller: &Caller) -> String {
    if caller.actor.kind == ActorType::Operator {
        return "operator".into();
    }
    caller.key_id.clone().or_else(|| caller.user_id.clone()).unwrap_or_else(|| "operator".into())
}

fn credential_kind(class: KeyClass) -> CredentialKind {
    match class {
        KeyClass::User => CredentialKind::UserKey,
        KeyClass::Org => CredentialKind::OrgKey,
    }
}
