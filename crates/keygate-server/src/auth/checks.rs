//! The status checks of the hot path, as one pure function: given a resolved key, the time,
//! the client address and what the request needs, either the key may proceed or the refusal
//! says exactly why. Rate limits and usage come after, in the authenticator.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use keygate_core::{CredentialKind, Scope};
use keygate_store::{KeyClass, KeyStatus};

use super::cached_key::CachedKey;
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
    key: &CachedKey,
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

    /// The decision table of `check_key` (kanidm's access tests, as rows): each row changes the
    /// sample key (an active org key of account `acc_1` on plan `free`, scopes `*:read`,
    /// allowlist 10.0.0.0/8), presents it from an address on a route, and names the answer.
    mod table {
        use std::collections::BTreeMap;
        use std::sync::Arc;

        use chrono::{Duration, TimeZone};
        use keygate_store::KeyAuth;

        use super::*;
        use crate::auth::cached_key::{CachedKey, sample_auth};
        use crate::config::PlanSettings;

        fn now() -> DateTime<Utc> {
            Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).single().expect("a valid time")
        }

        fn plans() -> Plans {
            let plan = |api_access| PlanSettings {
                api_access,
                trial_days: 0,
                rate_limit: None,
                max_keys: None,
                key_rate_limit_max: None,
                ..PlanSettings::default()
            };
            Plans::new(BTreeMap::from([("free".to_owned(), plan(true)), ("closed".to_owned(), plan(false))]))
        }

        /// What a route asks.
        enum Route {
            Any,
            UserScoped,
            OrgKeysOnly,
            Needs(&'static str),
        }

        impl Route {
            fn requirements(&self) -> Requirements {
                match self {
                    Route::Any => Requirements::default(),
                    Route::UserScoped => Requirements { user_scoped: true, ..Default::default() },
                    Route::OrgKeysOnly => Requirements { kinds: vec![CredentialKind::OrgKey], ..Default::default() },
                    Route::Needs(p) => {
                        Requirements { permissions: vec![Scope::parse(p).expect("a permission")], ..Default::default() }
                    }
                }
            }
        }

        fn as_user_key(a: &mut KeyAuth) {
            a.key.class = KeyClass::User;
            a.key.user_id = Some("usr_1".to_owned());
            a.member_authority = Some(keygate_core::Authority::User);
        }

        type Change = fn(&mut KeyAuth);
        /// (what the row shows, the change to the sample key, the sender, the route, the answer)
        type Row = (&'static str, Change, &'static str, Route, Result<(), Refusal>);
        const INSIDE: &str = "10.1.2.3";
        const OUTSIDE: &str = "192.0.2.1";

        #[test]
        fn status_checks_decide_by_the_table() {
            use Route::*;
            let not_allowed = Err(Refusal::IpNotAllowed);
            #[rustfmt::skip]
            let rows: Vec<Row> = vec![
                ("active", |_| {}, INSIDE, Any, Ok(())),
                ("expired", |a| a.key.expires_at = Some(now() - Duration::seconds(1)), INSIDE, Any, Err(Refusal::Expired)),
                ("expires later", |a| a.key.expires_at = Some(now() + Duration::days(1)), INSIDE, Any, Ok(())),
                ("not yet started", |a| a.key.starts_at = Some(now() + Duration::hours(1)), INSIDE, Any, Err(Refusal::Inactive)),
                ("started", |a| a.key.starts_at = Some(now() - Duration::hours(1)), INSIDE, Any, Ok(())),
                ("staged", |a| a.key.staged = true, INSIDE, Any, Err(Refusal::Inactive)),
                ("revoked", |a| a.key.revoked_at = Some(now()), INSIDE, Any, Err(Refusal::Revoked)),
                ("revoked beats expired", |a| {
                    a.key.revoked_at = Some(now());
                    a.key.expires_at = Some(now() - Duration::days(1));
                }, INSIDE, Any, Err(Refusal::Revoked)),
                ("revoked beats the address", |a| a.key.revoked_at = Some(now()), OUTSIDE, Any, Err(Refusal::Revoked)),
                ("account deleted", |a| a.account = None, INSIDE, Any, Err(Refusal::NotFound)),
                ("user left the account", |a| {
                    as_user_key(a);
                    a.member_authority = None;
                }, INSIDE, Any, Err(Refusal::NotFound)),
                ("plan without api access", |a| {
                    if let Some(acc) = &mut a.account { acc.plan = "closed".to_owned() }
                }, INSIDE, Any, Err(Refusal::PlanRequired)),
                ("plan unknown", |a| {
                    if let Some(acc) = &mut a.account { acc.plan = "gone".to_owned() }
                }, INSIDE, Any, Err(Refusal::PlanRequired)),
                ("plan beats the address", |a| {
                    if let Some(acc) = &mut a.account { acc.plan = "closed".to_owned() }
                }, OUTSIDE, Any, Err(Refusal::PlanRequired)),
                ("address inside the allowlist", |_| {}, INSIDE, Any, Ok(())),
                ("address outside the allowlist", |_| {}, OUTSIDE, Any, not_allowed.clone()),
                ("ipv4-mapped address inside", |_| {}, "::ffff:10.9.9.9", Any, Ok(())),
                ("no allowlist: any address", |a| a.key.ip_allowlist.clear(), OUTSIDE, Any, Ok(())),
                ("address beats the class", |_| {}, OUTSIDE, UserScoped, not_allowed),
                ("org key on a user-scoped route", |_| {}, INSIDE, UserScoped, Err(Refusal::UserCredentialRequired)),
                ("user key on a user-scoped route", as_user_key, INSIDE, UserScoped, Ok(())),
                ("user key on an org-keys route", as_user_key, INSIDE, OrgKeysOnly, Err(Refusal::CredentialNotAccepted)),
                ("org key on an org-keys route", |_| {}, INSIDE, OrgKeysOnly, Ok(())),
                ("permission held", |_| {}, INSIDE, Needs("leads:read"), Ok(())),
                ("permission not held", |_| {}, INSIDE, Needs("leads:write"), Err(Refusal::InsufficientScope("leads:write".into()))),
                ("class beats permissions", |_| {}, INSIDE, UserScoped, Err(Refusal::UserCredentialRequired)),
                ("role narrows the scopes: outside the role", |a| {
                    a.key.scopes = vec!["*:*".into()];
                    a.role_permissions = Some(vec!["leads:read".into()]);
                }, INSIDE, Needs("leads:write"), Err(Refusal::InsufficientScope("leads:write".into()))),
                ("role narrows the scopes: inside the role", |a| {
                    a.key.scopes = vec!["*:*".into()];
                    a.role_permissions = Some(vec!["leads:read".into()]);
                }, INSIDE, Needs("leads:read"), Ok(())),
                ("role cannot widen the scopes", |a| a.role_permissions = Some(vec!["*:*".into()]), INSIDE, Needs("leads:write"), Err(Refusal::InsufficientScope("leads:write".into()))),
                ("deleted role grants nothing", |a| a.role_permissions = Some(Vec::new()), INSIDE, Needs("leads:read"), Err(Refusal::InsufficientScope("leads:read".into()))),
            ];
            let plans = plans();
            for (name, change, ip, route, want) in rows {
                let mut auth = sample_auth("key_1");
                change(&mut auth);
                let key = CachedKey::from_auth(auth, Arc::new);
                let ip: IpAddr = ip.parse().expect("an address");
                let got = check_key(&key, &plans, now(), ip, &route.requirements()).map(|_| ());
                assert_eq!(got, want, "{name}");
            }
        }
    }
}
