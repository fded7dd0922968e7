//! The status checks of the hot path, as one pure function: given a resolved key, the time,
//! the client address and what the request needs, either the key may proceed or the refusal
//! says exactly why. Rate limits and usage come after, in the authenticator.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use keygate_core::{CredentialKind, Scope};
use keygate_store::{KeyClass, KeyStatus};

use super::resolved::ResolvedKey;
use crate::plans::{PlanAccess, Plans};

/// Why a credential was refused. Each maps to one verify `code` and one HTTP error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotFound,
    Revoked,
    Expired,
    Inactive,
    PlanRequired,
    IpNotAllowed,
    UserCredentialRequired,
    InsufficientScope(String),
    RateLimited(keygate_core::ratelimit::Decision),
    UsageExceeded,
}

impl Refusal {
    pub fn verify_code(&self) -> &'static str {
        match self {
            Refusal::NotFound => "NOT_FOUND",
            Refusal::Revoked => "REVOKED",
            Refusal::Expired => "EXPIRED",
            Refusal::Inactive => "INACTIVE",
            Refusal::PlanRequired => "PLAN_REQUIRED",
            Refusal::IpNotAllowed => "IP_NOT_ALLOWED",
            Refusal::UserCredentialRequired => "USER_CREDENTIAL_REQUIRED",
            Refusal::InsufficientScope(_) => "INSUFFICIENT_SCOPE",
            Refusal::RateLimited(_) => "RATE_LIMITED",
            Refusal::UsageExceeded => "USAGE_EXCEEDED",
        }
    }

    pub fn to_api_error(&self) -> crate::error::ApiError {
        use crate::error::ApiError;
        match self {
            Refusal::NotFound => ApiError::invalid_credentials(),
            Refusal::Revoked => ApiError::api_key_revoked(),
            Refusal::Expired => ApiError::api_key_expired(),
            Refusal::Inactive => ApiError::api_key_inactive(),
            Refusal::PlanRequired => ApiError::plan_required(),
            Refusal::IpNotAllowed => ApiError::ip_not_allowed(),
            Refusal::UserCredentialRequired => ApiError::user_credential_required(),
            Refusal::InsufficientScope(s) => ApiError::insufficient_scope(s),
            Refusal::RateLimited(d) => ApiError::rate_limited(*d),
            Refusal::UsageExceeded => ApiError::usage_exceeded(),
        }
    }
}

/// What a request asks of a credential.
#[derive(Debug, Clone, Default)]
pub struct Requirements {
    /// Every one of these permissions (verify's `permissions`, the gateway's `resource:action`).
    pub permissions: Vec<Scope>,
    /// Only user keys and sessions (SPEC: user-scoped endpoints and routes).
    pub user_scoped: bool,
    /// Credential classes the route accepts; empty = all.
    pub kinds: Vec<CredentialKind>,
}

impl Requirements {
    pub fn check_kind(&self, kind: CredentialKind) -> Result<(), Refusal> {
        let org = kind == CredentialKind::OrgKey;
        if (self.user_scoped && org) || (!self.kinds.is_empty() && !self.kinds.contains(&kind)) {
            return Err(Refusal::UserCredentialRequired);
        }
        Ok(())
    }
}

/// Status, account, plan, address, class and permissions, in the order a caller would want
/// to learn about them. Answers the plan in force for the rate limit that follows.
pub fn check_key(
    key: &ResolvedKey,
    plans: &Plans,
    now: DateTime<Utc>,
    ip: IpAddr,
    req: &Requirements,
) -> Result<PlanAccess, Refusal> {
    match key.key.status(now) {
        KeyStatus::Revoked => return Err(Refusal::Revoked),
        KeyStatus::Expired => return Err(Refusal::Expired),
        KeyStatus::Inactive => return Err(Refusal::Inactive),
        KeyStatus::Active => {}
    }
    // A deleted account, or a user key whose user left the account: the key stops working.
    let Some(account) = &key.account else { return Err(Refusal::NotFound) };
    if key.key.class == KeyClass::User && key.member_authority.is_none() {
        return Err(Refusal::NotFound);
    }
    let plan = plans.access(account, now);
    if !plan.api_access {
        return Err(Refusal::PlanRequired);
    }
    if !key.allowlist.is_empty() && !keygate_core::net::allowed(&key.allowlist, ip) {
        return Err(Refusal::IpNotAllowed);
    }
    let kind = match key.key.class {
        KeyClass::User => CredentialKind::UserKey,
        KeyClass::Org => CredentialKind::OrgKey,
    };
    req.check_kind(kind)?;
    if let Some(missing) = req.permissions.iter().find(|p| !key.permissions.allows(p)) {
        return Err(Refusal::InsufficientScope(missing.to_string()));
    }
    Ok(plan)
}
