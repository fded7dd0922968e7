//! Data roles: named permission sets over the company's own API. Read: any credential of the
//! account (a key needs `roles:read`); write: administrator+ (a key needs `roles:write`). A
//! change drops the account's cached decisions, so keys referencing the role follow at once.
//! Shared by `/v1/accounts/{id}/roles…` and the dashboard's new-key form.

use std::net::IpAddr;

use chrono::Utc;
use keygate_core::id::{IdKind, new_id};
use keygate_core::validate::check_name;
use keygate_core::{Authority, Scope};
use keygate_store::{Page, Role};
use serde_json::json;

use crate::auth::{Caller, Invalidation};
use crate::error::{ApiError, ApiResult};
use crate::extract::page_request;
use crate::service::input::{FieldErrors, check_id};
use crate::service::{Services, audit};

/// More than this many permissions in one role is a mistake, not a role.
const MAX_PERMISSIONS: usize = 100;

/// Validates and normalises permissions: each a scope (`resource:action`, `*` on either side),
/// duplicates dropped, order kept.
fn parse_permissions(raw: &[String], errors: &mut FieldErrors) -> Vec<String> {
    if raw.len() > MAX_PERMISSIONS {
        errors.add("permissions", format!("at most {MAX_PERMISSIONS} permissions"));
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for (i, p) in raw.iter().enumerate() {
        match Scope::parse(p.trim()) {
            Ok(s) => {
                let s = s.to_string();
                if !out.contains(&s) {
                    out.push(s);
                }
            }
            Err(e) => errors.add(&format!("permissions[{i}]"), e.to_string()),
        }
    }
    out
}

fn require_writer(caller: &Caller) -> ApiResult<()> {
    caller.require_scope("roles", "write")?;
    caller.require_authority(Authority::Administrator)
}

/// A page of the account's roles: `limit` 1–100 (default 50), `cursor` from the previous page.
pub(crate) async fn list(
    svc: &Services,
    caller: &Caller,
    limit: Option<u32>,
    cursor: Option<&str>,
) -> ApiResult<Page<Role>> {
    caller.require_scope("roles", "read")?;
    let page = page_request(limit, cursor)?;
    Ok(svc.store.list_roles(&caller.account.id, &page).await?)
}

pub(crate) async fn get(svc: &Services, caller: &Caller, role_id: &str) -> ApiResult<Role> {
    caller.require_scope("roles", "read")?;
    check_id(IdKind::Role, role_id)?;
    svc.store.role(&caller.account.id, role_id).await?.ok_or_else(ApiError::not_found)
}

/// Creates a data role (administrator+); 409 `role_name_taken` for a name in use.
pub(crate) async fn create(
    svc: &Services,
    caller: &Caller,
    ip: IpAddr,
    name: &str,
    permissions: &[String],
) -> ApiResult<Role> {
    require_writer(caller)?;
    let mut errors = FieldErrors::default();
    let name = check_name(name).map_err(|e| errors.add("name", e.to_string())).ok();
    let permissions = parse_permissions(permissions, &mut errors);
    errors.into_result()?;
    let Some(name) = name else { return Err(ApiError::invalid_request("Invalid request.")) };
    let now = Utc::now();
    let id = &caller.account.id;
    let role =
        Role { id: new_id(IdKind::Role), account_id: id.clone(), name, permissions, created_at: now, updated_at: now };
    let entry = audit(
        id,
        &caller.actor,
        "role.created",
        ("role", &role.id),
        ip,
        json!({ "name": role.name, "permissions": role.permissions }),
    );
    svc.store.create_role(role.clone(), vec![entry]).await?;
    svc.invalidate(Invalidation::Account(id.clone())).await;
    Ok(role)
}

/// Renames a role or replaces its permissions (administrator+). Keys that use it follow at once.
pub(crate) async fn update(
    svc: &Services,
    caller: &Caller,
    ip: IpAddr,
    role_id: &str,
    name: Option<&str>,
    permissions: Option<&[String]>,
) -> ApiResult<Role> {
    require_writer(caller)?;
    check_id(IdKind::Role, role_id)?;
    let mut errors = FieldErrors::default();
    let new_name = match name {
        None => None,
        Some(n) => check_name(n).map_err(|e| errors.add("name", e.to_string())).ok(),
    };
    let new_permissions = permissions.map(|p| parse_permissions(p, &mut errors));
    if name.is_none() && permissions.is_none() {
        errors.add("body", "nothing to change: send name or permissions");
    }
    errors.into_result()?;
    let id = &caller.account.id;
    let entry = audit(
        id,
        &caller.actor,
        "role.updated",
        ("role", role_id),
        ip,
        json!({ "name": new_name, "permissions": new_permissions }),
    );
    let role = svc
        .store
        .update_role(id, role_id, new_name.as_deref(), new_permissions.as_deref(), Utc::now(), vec![entry])
        .await?;
    svc.invalidate(Invalidation::Account(id.clone())).await;
    Ok(role)
}

/// Deletes a role (administrator+). Keys that referenced it keep the reference and get no
/// permissions until changed (fail closed).
pub(crate) async fn delete(svc: &Services, caller: &Caller, ip: IpAddr, role_id: &str) -> ApiResult<()> {
    require_writer(caller)?;
    check_id(IdKind::Role, role_id)?;
    let id = &caller.account.id;
    let role = svc.store.role(id, role_id).await?.ok_or_else(ApiError::not_found)?;
    let entry = audit(id, &caller.actor, "role.deleted", ("role", role_id), ip, json!({ "name": role.name }));
    svc.store.delete_role(id, role_id, vec![entry]).await?;
    svc.invalidate(Invalidation::Account(id.clone())).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_are_scopes_normalised_and_deduplicated() {
        let mut errors = FieldErrors::default();
        let p = parse_permissions(&["leads:create".into(), " leads:create ".into(), "*:read".into()], &mut errors);
        assert!(errors.into_result().is_ok());
        assert_eq!(p, vec!["leads:create".to_owned(), "*:read".to_owned()]);
        let mut errors = FieldErrors::default();
        parse_permissions(&["Leads:Create".into(), "nocolon".into()], &mut errors);
        let e = errors.into_result().expect_err("invalid");
        assert_eq!(e.code, "invalid_request");
        assert_eq!(e.details.as_ref().and_then(|d| d.as_array()).map(Vec::len), Some(2));
    }
}
