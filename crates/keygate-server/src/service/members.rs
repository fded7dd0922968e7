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
use keygate_store::{Member, Membership, Page, PageRequest};
use serde_json::json;

use crate::auth::{Caller, Invalidation};
use crate::error::{ApiError, ApiResult};
use crate::service::input::check_id;
use crate::service::{Services, audit};

/// An authority named in a form or body.
pub(crate) fn parse_authority(field: &str, s: &str) -> ApiResult<Authority> {
    Authority::parse(s).ok_or_else(|| ApiError::invalid_field(field, "must be user, administrator or owner"))
}

pub(crate) async fn list(svc: &Services, caller: &Caller, page: &PageRequest) -> ApiResult<Page<Member>> {
    caller.require_scope("members", "read")?;
    Ok(svc.store.list_members(&caller.account.id, page).await?)
}

/// One member's standing in the caller's account; a malformed id or a non-member is 404.
pub(crate) async fn find(svc: &Services, caller: &Caller, user_id: &str) -> ApiResult<Membership> {
    check_id(IdKind::User, user_id)?;
    svc.store.membership(&caller.account.id, user_id).await?.ok_or_else(ApiError::not_found)
}

/// Adds an existing user (by email) with an authority no higher than the caller's.
pub(crate) async fn add(
    svc: &Services,
    caller: &Caller,
    ip: IpAddr,
    email: &str,
    authority: Authority,
) -> ApiResult<Member> {
    caller.require_scope("members", "write")?;
    caller.require_authority(Authority::Administrator)?;
    let email = Email::parse(email).map_err(|e| ApiError::invalid_field("email", e.to_string()))?;
    may_grant(caller.authority, authority).map_err(|_| ApiError::insufficient_authority())?;
    let user = svc.store.user_by_email(email.as_str()).await?.ok_or_else(|| {
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
    let member = svc.store.add_member(id, &user.id, authority, Utc::now(), vec![entry]).await?;
    svc.invalidate(Invalidation::Account(id.clone())).await;
    svc.invalidate(Invalidation::User(user.id.clone())).await;
    Ok(member)
}

/// Changes a member's authority (administrator+).
pub(crate) async fn change(
    svc: &Services,
    caller: &Caller,
    ip: IpAddr,
    user_id: &str,
    authority: Authority,
) -> ApiResult<Member> {
    check_id(IdKind::User, user_id)?;
    caller.require_scope("members", "write")?;
    caller.require_authority(Authority::Administrator)?;
    let id = &caller.account.id;
    let current = svc.store.membership(id, user_id).await?.ok_or_else(ApiError::not_found)?;
    let entry = audit(
        id,
        &caller.actor,
        "member.updated",
        ("user", user_id),
        ip,
        json!({ "user_id": user_id, "from": current.authority, "to": authority }),
    );
    let member = svc.store.change_member_authority(id, user_id, caller.authority, authority, vec![entry]).await?;
    svc.invalidate(Invalidation::Account(id.clone())).await;
    svc.invalidate(Invalidation::User(user_id.to_owned())).await;
    Ok(member)
}

/// Removes a member (administrator+, or the member themself). That user's keys in the
/// account stop working at once.
pub(crate) async fn remove(svc: &Services, caller: &Caller, ip: IpAddr, user_id: &str) -> ApiResult<()> {
    check_id(IdKind::User, user_id)?;
    caller.require_scope("members", "write")?;
    let is_self = caller.user_id.as_deref() == Some(user_id);
    if !is_self {
        caller.require_authority(Authority::Administrator)?;
    }
    let id = &caller.account.id;
    let target = svc.store.membership(id, user_id).await?.ok_or_else(ApiError::not_found)?;
    let how = if is_self { "left" } else { "removed" };
    let entry = audit(
        id,
        &caller.actor,
        "member.removed",
        ("user", user_id),
        ip,
        json!({ "user_id": user_id, "authority": target.authority, "how": how }),
    );
    svc.store.remove_member(id, user_id, caller.authority, is_self, vec![entry]).await?;
    svc.invalidate(Invalidation::Account(id.clone())).await;
    svc.invalidate(Invalidation::User(user_id.to_owned())).await;
    Ok(())
}
