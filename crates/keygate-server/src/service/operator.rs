//! The operator's tasks: every account of the deployment, an account's plan and limit
//! overrides, acting in any account, and whether storage answers. Shared by the operator API (`/v1/admin/…`, behind
//! the `admin_token`), `/readyz` and `keygate admin` (a shell on the host): the same checks
//! and the same audit entries, actor `operator`, whichever way the operator came.

use std::net::IpAddr;

use keygate_core::id::IdKind;
use keygate_core::{Authority, CredentialKind, NamedRateLimit, Permissions, Quota};
use keygate_store::{Account, LimitOverrides, Page, PageRequest};
use serde_json::json;

use super::identity::operator_actor;
use crate::auth::{Caller, Invalidation};
use crate::error::{ApiError, ApiResult};
use crate::limits::RateLimiter;
use crate::service::input::check_id;
use crate::service::{Services, audit};

/// Ready (`/readyz`): every dependency the node needs to allow traffic answers — storage (a
/// round trip), the invalidation feed (confirmed within 1 s, on PostgreSQL) and Redis (a PING,
/// when shared limits are configured `fail_closed`). Otherwise 503 `unavailable`, whose
/// `details` name what is down: `[{"dependency": "database" | "invalidation_feed" | "redis"}]`.
pub(crate) async fn ready(svc: &Services, limiter: &RateLimiter) -> ApiResult<()> {
    let (database, redis) = tokio::join!(svc.store.ping(), limiter.ready());
    let mut down = Vec::new();
    if let Err(cause) = database {
        tracing::debug!(%cause, "not ready: database");
        down.push("database");
    }
    if svc.invalidator.epochs().feed.is_stale() {
        down.push("invalidation_feed");
    }
    if let Err(cause) = redis {
        tracing::debug!(%cause, "not ready: redis");
        down.push("redis");
    }
    if down.is_empty() {
        return Ok(());
    }
    let mut e = ApiError::new(
        http::StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!("Not ready: {} down.", down.join(", ")),
    );
    e.details = Some(down.iter().map(|d| serde_json::json!({ "dependency": d })).collect());
    Err(e)
}

/// Every account of the deployment, newest first.
pub async fn list_accounts(svc: &Services, page: &PageRequest) -> ApiResult<Page<Account>> {
    Ok(svc.store.list_accounts(page).await?)
}

/// Puts an account on one of the configured plans; its keys follow the new plan at once.
/// `ip` is the operator API client's address (the shell has none).
pub async fn set_plan(svc: &Services, ip: Option<IpAddr>, account_id: &str, plan: &str) -> ApiResult<Account> {
    let input = AccountLimitsInput { plan: Some(plan.to_owned()), overrides: None };
    set_limits(svc, ip, account_id, input).await
}

/// The operator's change of an account's limits (`PATCH /v1/admin/accounts/{id}`, `keygate
/// admin accounts set-plan | set-limits`): its plan, its overrides of the plan's limits, or both.
#[derive(Debug, Clone, Default)]
pub struct AccountLimitsInput {
    pub plan: Option<String>,
    pub overrides: Option<OverridesInput>,
}

/// Overrides to change: `None` leaves one as it is, `Some(None)` removes it (the plan's
/// applies again), `Some(Some(v))` sets it.
#[derive(Debug, Clone, Default)]
pub struct OverridesInput {
    pub rate_limits: Option<Option<Vec<NamedRateLimit>>>,
    pub quota: Option<Option<Quota>>,
    pub max_keys: Option<Option<u32>>,
    /// Remove every override before applying these (the CLI's `--clear`).
    pub clear: bool,
}

/// Applies `input` in one write with its audit entries (`account.plan_changed` `{from, to}`,
/// `account.limits_overridden` `{from, to}` with the overrides before and after), then
/// invalidates the account's cached decisions. An empty change is 400.
pub async fn set_limits(
    svc: &Services,
    ip: Option<IpAddr>,
    account_id: &str,
    input: AccountLimitsInput,
) -> ApiResult<Account> {
    check_id(IdKind::Account, account_id)?;
    let empty_overrides = input
        .overrides
        .as_ref()
        .is_none_or(|o| !o.clear && o.rate_limits.is_none() && o.quota.is_none() && o.max_keys.is_none());
    if input.plan.is_none() && empty_overrides {
        return Err(ApiError::invalid_field("plan", "give a plan, overrides, or both"));
    }
    if let Some(plan) = &input.plan
        && !svc.plans.exists(plan)
    {
        let known = svc.plans.names().collect::<Vec<_>>().join(", ");
        return Err(ApiError::invalid_field("plan", format!("is not a configured plan (known: {known})")));
    }
    let before = svc.store.account_by_id(account_id).await?.ok_or_else(ApiError::not_found)?;
    let mut entries = Vec::new();
    if let Some(plan) = &input.plan {
        let details = json!({ "from": before.plan, "to": plan });
        entries.push(audit(
            account_id,
            &operator_actor(),
            "account.plan_changed",
            ("account", account_id),
            ip,
            details,
        ));
    }
    let overrides = match &input.overrides {
        Some(o) if !empty_overrides => {
            let next = merged(&before.overrides, o)?;
            let details = json!({ "from": before.overrides, "to": next });
            let action = "account.limits_overridden";
            entries.push(audit(account_id, &operator_actor(), action, ("account", account_id), ip, details));
            Some(next)
        }
        _ => None,
    };
    let account = svc.store.set_account_limits(account_id, input.plan.as_deref(), overrides.as_ref(), entries).await?;
    svc.invalidate(Invalidation::Account(account_id.to_owned())).await;
    tracing::info!(account_id = %account_id, plan = %account.plan, overridden = overrides.is_some(), "operator set limits");
    Ok(account)
}

/// The limits `account` lives under now: its plan's with its overrides (for the admin CLI).
pub fn effective_limits(svc: &Services, account: &Account) -> crate::plans::EffectiveLimits {
    svc.plans.limits(account)
}

/// `current` with the changes of `o`, validated like a plan's limits.
fn merged(current: &LimitOverrides, o: &OverridesInput) -> ApiResult<LimitOverrides> {
    let mut next = if o.clear { LimitOverrides::default() } else { current.clone() };
    if let Some(r) = &o.rate_limits {
        if let Some(list) = r {
            NamedRateLimit::validate_all(list).map_err(|m| ApiError::invalid_field("overrides.rate_limits", m))?;
            // The plan's unnamed `rate_limit` is enforced as `default`, beside these.
            if list.iter().any(|l| l.name == crate::plans::DEFAULT_LIMIT_NAME) {
                return Err(ApiError::invalid_field(
                    "overrides.rate_limits",
                    "the name `default` is the plan's rate_limit; choose another",
                ));
            }
        }
        next.rate_limits = r.clone();
    }
    if let Some(q) = o.quota {
        if q.is_some_and(|q| q.requests == 0) {
            return Err(ApiError::invalid_field("overrides.quota", "requests must be at least 1"));
        }
        if let Some(Err(m)) = q.map(|q| q.validate()) {
            return Err(ApiError::invalid_field("overrides.quota", m));
        }
        next.quota = q;
    }
    if let Some(m) = o.max_keys {
        next.max_keys = m;
    }
    Ok(next)
}

/// The operator acting in an account, as a `Caller` the other services take. With `as_user`
/// (a member) the operator acts for that user, with their authority: a user key minted so is
/// theirs and may not exceed it. Without, the operator holds the owner's authority and no user.
pub async fn in_account(svc: &Services, account_id: &str, as_user: Option<&str>) -> ApiResult<Caller> {
    check_id(IdKind::Account, account_id)?;
    let account = svc.store.account_by_id(account_id).await?.ok_or_else(ApiError::not_found)?;
    let authority = match as_user {
        None => Authority::Owner,
        Some(user_id) => {
            let not_member = || ApiError::invalid_field("user", format!("{user_id} is not a member of {account_id}"));
            if !keygate_core::id::looks_like(IdKind::User, user_id) {
                return Err(not_member());
            }
            svc.store.membership(account_id, user_id).await?.ok_or_else(not_member)?.authority
        }
    };
    Ok(Caller {
        account,
        user_id: as_user.map(str::to_owned),
        authority,
        permissions: Permissions::full_access(),
        kind: CredentialKind::Session,
        key_id: None,
        actor: operator_actor(),
    })
}

/// The account's first owner (oldest membership), whom an operator's user key acts for when
/// no user is named.
pub async fn first_owner(svc: &Services, account_id: &str) -> ApiResult<Option<String>> {
    check_id(IdKind::Account, account_id)?;
    let members = svc.store.list_members(account_id, &PageRequest { limit: 100, cursor: None }).await?;
    let owner = members.items.iter().filter(|m| m.authority == Authority::Owner).min_by_key(|m| m.created_at);
    Ok(owner.map(|m| m.user_id.clone()))
}
