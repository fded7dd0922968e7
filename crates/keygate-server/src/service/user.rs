//! The signed-in user: who they are, their memberships, and changes to their own name and
//! password. Shared by `GET`/`PATCH /v1/user` and the dashboard (which lists the viewer's
//! accounts on every page).
//!
//! A password change is checked before anything changes (a wrong current password changes
//! nothing at all), throttled like sign-in, and revokes every session of the user.

use std::net::IpAddr;

use chrono::Utc;
use keygate_core::Secret;
use keygate_core::validate::{check_name, check_password};
use keygate_store::{User, UserMembership};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::identity::{MAX_PASSWORD_BYTES, audit_in_each, new_session, user_actor};
use crate::auth::{Caller, Invalidation};
use crate::error::{ApiError, ApiResult};
use crate::service::Services;
use crate::service::input::FieldErrors;

/// The user's accounts with their authority in each, oldest membership first.
pub(crate) async fn memberships(svc: &Services, user_id: &str) -> ApiResult<Vec<UserMembership>> {
    Ok(svc.store.user_memberships(user_id).await?)
}

/// The user behind a session, with every membership. A user gone since the session was
/// checked answers `session_expired`.
pub(crate) async fn of_session(svc: &Services, user_id: &str) -> ApiResult<(User, Vec<UserMembership>)> {
    let user = svc.store.user_by_id(user_id).await?.ok_or_else(ApiError::session_expired)?;
    let memberships = svc.store.user_memberships(&user.id).await?;
    Ok((user, memberships))
}

/// The user a user key acts for (the key needs `user:read`), with only the key's own account
/// listed: a key is bound to one account and does not reveal the user's others.
pub(crate) async fn of_key(svc: &Services, caller: &Caller) -> ApiResult<(User, Vec<UserMembership>)> {
    caller.require_scope("user", "read")?;
    let user_id = caller.require_user()?;
    let user = svc.store.user_by_id(user_id).await?.ok_or_else(ApiError::invalid_credentials)?;
    let memberships =
        svc.store.user_memberships(&user.id).await?.into_iter().filter(|m| m.account_id == caller.account.id).collect();
    Ok((user, memberships))
}

/// A change of the user's own name and/or password, as sent.
#[derive(Debug, Default)]
pub(crate) struct UserPatch {
    pub(crate) name: Option<String>,
    pub(crate) current_password: Option<SecretString>,
    pub(crate) new_password: Option<SecretString>,
}

/// The user after the change; `token` is a new session (shown once) after a password change.
#[derive(Debug)]
pub(crate) struct UserChanged {
    pub(crate) user: User,
    pub(crate) memberships: Vec<UserMembership>,
    pub(crate) token: Option<Secret>,
}

/// Changes the name, or the password (`current_password` + `new_password`). A password change
/// revokes every session of the user and mints a new one; API keys are unaffected.
pub(crate) async fn update(svc: &Services, user_id: &str, ip: IpAddr, patch: UserPatch) -> ApiResult<UserChanged> {
    let mut errors = FieldErrors::default();
    let name = match patch.name.as_deref() {
        None => None,
        Some(n) => check_name(n).map_err(|e| errors.add("name", e.to_string())).ok(),
    };
    let password = match (&patch.current_password, &patch.new_password) {
        (None, None) => None,
        (Some(current), Some(new)) => {
            if let Err(e) = check_password(new.expose_secret(), svc.signup.min_password_chars) {
                errors.add("new_password", e.to_string());
            }
            Some((current, new))
        }
        (None, Some(_)) => {
            errors.add("current_password", "is required to change the password");
            None
        }
        (Some(_), None) => {
            errors.add("new_password", "is required with current_password");
            None
        }
    };
    if patch.name.is_none() && patch.current_password.is_none() && patch.new_password.is_none() {
        errors.add("body", "nothing to change: send name, or current_password and new_password");
    }
    errors.into_result()?;
    let (user, memberships) = of_session(svc, user_id).await?;
    let actor = user_actor(user_id);

    // The password is checked before anything changes: a wrong one changes nothing at all.
    let new_hash = match password {
        None => None,
        Some((current, new)) => {
            // Guessing the current password through a stolen session is throttled like sign-in,
            // on a counter of its own: the sign-in counter exempts the user's usual address,
            // which is exactly where a stolen session would be used from. A right answer does
            // not clear it (idle counters are pruned), so alternating cannot reset it.
            let throttle_key = format!("password-change:{user_id}");
            svc.throttle.check(&throttle_key, ip).await?;
            let ok = current.expose_secret().len() <= MAX_PASSWORD_BYTES
                && svc.passwords.verify(current, Some(&user.password_hash)).await?;
            if !ok {
                svc.throttle.failure(&throttle_key, ip).await?;
                return Err(ApiError::login_error().with_user_message("The current password is not correct."));
            }
            Some(svc.passwords.hash(new).await?)
        }
    };

    let mut user = user;
    if let Some(name) = name {
        let entries = audit_in_each(&memberships, &actor, "user.updated", user_id, ip, json!({ "fields": ["name"] }));
        user = svc.store.update_user_name(user_id, &name, entries).await?;
        svc.invalidate(Invalidation::User(user_id.to_owned())).await;
    }
    let Some(hash) = new_hash else {
        return Ok(UserChanged { user, memberships, token: None });
    };
    let (token, session) = new_session(svc, user_id, Utc::now());
    let entries =
        audit_in_each(&memberships, &actor, "user.password_changed", user_id, ip, json!({ "sessions_revoked": true }));
    svc.store.change_password(user_id, &hash, session, entries).await?;
    svc.invalidate(Invalidation::User(user_id.to_owned())).await;
    tracing::info!(user_id = %user_id, "password changed; every other session revoked");
    Ok(UserChanged { user, memberships, token: Some(token) })
}
