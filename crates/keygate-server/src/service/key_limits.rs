//! A key's limits (docs/api.md §7 Keys): its unnamed `rate_limit`, its named `rate_limits`,
//! its `usage_limit` credits and their `refill`. How they are parsed, held to the plan's
//! ceiling, and compared for loosening; `service::keys` applies these on mint, PATCH and roll.

use chrono::{DateTime, Utc};
use keygate_core::loosening::{self, Restrictions};
use keygate_core::{NamedRateLimit, RateLimit, Refill, ScopeSet};
use keygate_store::{ApiKey, KeyPatch};
use serde_json::json;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// Named limits as given: at most 5, names unique, each valid.
pub fn parse_named(list: &[NamedRateLimit]) -> ApiResult<Vec<NamedRateLimit>> {
    NamedRateLimit::validate_all(list).map_err(|m| ApiError::invalid_field("rate_limits", m))?;
    Ok(list.to_vec())
}

/// A refill needs credits to refill (`usage_limit` after the change).
pub fn parse_refill(refill: Option<Refill>, usage_limit: Option<i64>) -> ApiResult<Option<Refill>> {
    let Some(r) = refill else { return Ok(None) };
    r.validate().map_err(|m| ApiError::invalid_field("refill", m))?;
    if usage_limit.is_none() {
        return Err(ApiError::invalid_field("refill", "needs usage_limit: a refill replaces the credits left"));
    }
    Ok(Some(r))
}

/// No limit of a key — its `rate_limit` or any of its `rate_limits` — may be looser than the
/// plan's ceiling (400 `limit_exceeds_plan`, for administrators too).
pub fn within_plan(limit: Option<RateLimit>, named: &[NamedRateLimit], ceiling: Option<RateLimit>) -> ApiResult<()> {
    let Some(c) = ceiling else { return Ok(()) };
    if limit.is_some_and(|l| !loosening::rate_within(Some(l), Some(c))) {
        return Err(ApiError::limit_exceeds_plan(&c));
    }
    if let Some(n) = named.iter().find(|n| !loosening::rate_within(Some(n.rate()), Some(c))) {
        let mut e = ApiError::limit_exceeds_plan(&c);
        e.message = format!("rate_limits `{}`: {}", n.name, e.message).into();
        e.details = Some(json!([{ "field": "rate_limits", "message": "looser than the plan's key_rate_limit_max" }]));
        return Err(e);
    }
    Ok(())
}

/// 403 `insufficient_authority` when `after` lets through more than `before` and the caller is
/// below administrator; `details` name the loosened fields.
pub fn refuse_loosening(
    caller: &Caller,
    before: &Restrictions,
    after: &Restrictions,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    if caller.authority.is_admin() {
        return Ok(());
    }
    let loose = loosening::loosenings(before, after, now);
    if loose.is_empty() {
        return Ok(());
    }
    let fields: Vec<&str> = loose.iter().map(|l| l.field()).collect();
    let mut e = ApiError::insufficient_authority();
    e.message =
        format!("Only an administrator may loosen a key; you may tighten it. Loosened here: {}.", fields.join(", "))
            .into();
    e.details = Some(json!(fields.iter().map(|f| json!({ "field": f })).collect::<Vec<_>>()));
    Err(e)
}

/// The limits part of a key's restrictions (permissions, allowlist and life left open), for
/// comparing what a key minted by a key may carry with what the minting key carries.
pub fn limits_of(key: &ApiKey, plan_default: Option<RateLimit>) -> Restrictions {
    Restrictions {
        scopes: ScopeSet::default(),
        role: None,
        rate_limit: key.rate_limit.or(plan_default),
        rate_limits: key.rate_limits.clone(),
        usage_limit: key.usage_limit,
        refill: key.refill,
        ip_allowlist: Vec::new(),
        starts_at: None,
        expires_at: None,
    }
}

pub type ScopesAndRole = (ScopeSet, Option<ScopeSet>);

/// What the key lets through before and after `patch`. Permissions unchanged compare equal
/// (`None`); a rate limit of its own falls back to the plan's default, as requests see it.
pub fn restrictions(
    key: &ApiKey,
    patch: &KeyPatch,
    permissions: Option<(ScopesAndRole, ScopesAndRole)>,
    plan_default: Option<RateLimit>,
) -> (Restrictions, Restrictions) {
    let ((scopes_before, role_before), (scopes_after, role_after)) = permissions.unwrap_or_else(|| {
        let same = (ScopeSet::default(), None);
        (same.clone(), same)
    });
    let nets = |list: &[String]| list.iter().filter_map(|c| keygate_core::net::parse_cidr(c)).collect::<Vec<_>>();
    let pick = |new: Option<Option<DateTime<Utc>>>, old: Option<DateTime<Utc>>| new.unwrap_or(old);
    let before = Restrictions {
        scopes: scopes_before,
        role: role_before,
        rate_limit: key.rate_limit.or(plan_default),
        rate_limits: key.rate_limits.clone(),
        usage_limit: key.usage_limit,
        refill: key.refill,
        ip_allowlist: nets(&key.ip_allowlist),
        starts_at: key.starts_at,
        expires_at: key.expires_at,
    };
    let after = Restrictions {
        scopes: scopes_after,
        role: role_after,
        rate_limit: patch.rate_limit.unwrap_or(key.rate_limit).or(plan_default),
        rate_limits: patch.rate_limits.clone().unwrap_or_else(|| key.rate_limits.clone()),
        usage_limit: patch.usage_limit.unwrap_or(key.usage_limit),
        refill: patch.refill.map_or(key.refill, |(r, _)| r),
        ip_allowlist: patch.ip_allowlist.as_deref().map_or_else(|| before.ip_allowlist.clone(), nets),
        starts_at: pick(patch.starts_at, key.starts_at),
        expires_at: pick(patch.expires_at, key.expires_at),
    };
    (before, after)
}
