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
    /// A user key on a route that lists only other classes (org keys): not a verify code,
    /// since verify has no route.
    CredentialNotAccepted,
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
            Refusal::CredentialNotAccepted => "CREDENTIAL_NOT_ACCEPTED",
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
            Refusal::CredentialNotAccepted => ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "credential_not_accepted",
                "This route does not accept this class of credential.",
            ),
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

/// Nothing asked: any credential class, no permission (the management API's extractor, whose
/// handlers check their own).
pub static NO_REQUIREMENTS: Requirements =
    Requirements { permissions: Vec::new(), user_scoped: false, kinds: Vec::new() };

impl Requirements {
    pub fn check_kind(&self, kind: CredentialKind) -> Result<(), Refusal> {
        let org = kind == CredentialKind::OrgKey;
        let listed = self.kinds.is_empty() || self.kinds.contains(&kind);
        match (org, self.user_scoped || !listed) {
            (true, true) => Err(Refusal::UserCredentialRequired),
            (false, _) if !listed => Err(Refusal::CredentialNotAccepted),
            _ => Ok(()),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_classes_are_refused_with_the_right_reason() {
        let user_scoped =
            Requirements { kinds: vec![CredentialKind::UserKey, CredentialKind::Session], ..Default::default() };
        assert_eq!(user_scoped.check_kind(CredentialKind::OrgKey), Err(Refusal::UserCredentialRequired));
        assert_eq!(user_scoped.check_kind(CredentialKind::UserKey), Ok(()));
        let org_only = Requirements { kinds: vec![CredentialKind::OrgKey], ..Default::default() };
        assert_eq!(org_only.check_kind(CredentialKind::UserKey), Err(Refusal::CredentialNotAccepted));
        assert_eq!(org_only.check_kind(CredentialKind::OrgKey), Ok(()));
        let verify = Requirements { user_scoped: true, ..Default::default() };
        assert_eq!(verify.check_kind(CredentialKind::OrgKey), Err(Refusal::UserCredentialRequired));
        assert_eq!(Requirements::default().check_kind(CredentialKind::OrgKey), Ok(()));
    }
}
