//! Members of an account, shared by `/v1/accounts/{id}/members` and the dashboard's Members
//! page. The authority rules are `keygate_core::authority`'s: nobody grants more than they
//! have, administrators cannot touch owners, the last owner can neither leave nor be demoted.
//! The store re-checks them inside its transaction, so two concurrent changes cannot together
//! break them. After every change the account's and the user's cached decisions are dropped:
//! a removed member's keys stop at once, a demoted member's keys are capped at once.

use std::net::IpAddr;

use axum::http::StatusCode;
use chrono::Utc;
use keygate_core::Authority;
use keygate_core::authority::may_grant;
use keygate_core::id::IdKind;
use keygate_core::validate::Email;
use keygate_store::{Member, Page, PageRequest};
use serde_json::json;

use crate::auth::{Caller, Invalidation};
use crate::error::{ApiError, ApiResult};
use crate::routes::identity::common::check_id;
use crate::state::{AppState, audit};

/// An authority named in a form or body.
pub fn parse_authority(field: &str, s: &str) -> ApiResult<Authority> {
    Authority::parse(s).ok_or_else(|| ApiError::invalid_field(field, "must be user, administrator or owner"))
}

pub async fn list(state: &AppState, caller: &Caller, page: &PageRequest) -> ApiResult<Page<Member>> {
    caller.require_scope("members", "read")?;
    Ok(state.store.list_members(&caller.account.id, page).await?)
}

/// Adds an existing user (by email) with an authority no higher than the caller's.
pub async fn add(
    state: &AppState,
    caller: &Caller,
    ip: IpAddr,
    email: &str,
    authority: Authority,
) -> ApiResult<Member> {
    caller.require_scope("members", "write")?;
    caller.require_authority(Authority::Administrator)?;
    let email = Email::parse(email).map_err(|e| ApiError::invalid_field("email", e.to_string()))?;
    may_grant(caller.authority, authority).map_err(|_| ApiError::insufficient_authority())?;
    let user = state.store.user_by_email(email.as_str()).await?.ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "No user with this email: they must sign up first.")
    })?;
    let id = &caller.account.id;
    let entry = audit(
        id,
        &caller.actor,
        "member.added",
        ("user", &user.id),
        ip,
        json!({ "user_id": user.id, "email": user.email, "authority": authority }),
    );
    let member = state.store.add_member(id, &user.id, authority, Utc::now(), vec![entry]).await?;
    state.invalidate(Invalidation::Account(id.clone())).await;
    state.invalidate(Invalidation::User(user.id.clone())).await;
    Ok(member)
}

/// Changes a member's authority (administrator+).
pub async fn change(
    state: &AppState,
    caller: &Caller,
    ip: IpAddr,
    user_id: &str,
    authority: Authority,
) -> ApiResult<Member> {
    check_id(IdKind::User, user_id)?;
    caller.require_scope("members", "write")?;
    caller.require_authority(Authority::Administrator)?;
    let id = &caller.account.id;
    let current = state.store.membership(id, user_id).await?.ok_or_else(ApiError::not_found)?;
    let entry = audit(
        id,
        &caller.actor,
        "member.updated",
        ("user", user_id),
        ip,
        json!({ "user_id": user_id, "from": current.authority, "to": authority }),
    );
    let member = state.store.change_member_authority(id, user_id, caller.authority, authority, vec![entry]).await?;
    state.invalidate(Invalidation::Account(id.clone())).await;
    state.invalidate(Invalidation::User(user_id.to_owned())).await;
    Ok(member)
}

/// Removes a member (administrator+, or the member themself). That user's keys in the
/// account stop working at once.
pub async fn remove(state: &AppState, caller: &Caller, ip: IpAddr, user_id: &str) -> ApiResult<()> {
    check_id(IdKind::User, user_id)?;
    caller.require_scope("members", "write")?;
    let is_self = caller.user_id.as_deref() == Some(user_id);
    if !is_self {
        caller.require_authority(Authority::Administrator)?;
    }
    let id = &caller.account.id;
    let target = state.store.membership(id, user_id).await?.ok_or_else(ApiError::not_found)?;
    let how = if is_self { "left" } else { "removed" };
    let entry = audit(
        id,
        &caller.actor,
        "member.removed",
        ("user", user_id),
        ip,
        json!({ "user_id": user_id, "authority": target.authority, "how": how }),
    );
    state.store.remove_member(id, user_id, caller.authority, is_self, vec![entry]).await?;
    state.invalidate(Invalidation::Account(id.clone())).await;
    state.invalidate(Invalidation::User(user_id.to_owned())).await;
    Ok(())
}
