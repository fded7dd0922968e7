//! Accounts: create (the caller becomes owner), list the caller's, read, rename, delete.
//! Shared by `/v1/accounts…`; another account's id answers 404 exactly like an unknown one,
//! which `Principal::in_account` already ensures before these run.

use std::net::IpAddr;

use chrono::Utc;
use keygate_core::Authority;
use keygate_core::validate::check_name;
use keygate_store::{Account, Page, PageRequest};
use serde_json::json;

use crate::auth::{Caller, Invalidation, Principal};
use crate::error::{ApiError, ApiResult};
use crate::service::input::{FieldErrors, parse_url};
use crate::service::{Services, audit};

/// Creates an account (a session only); the caller becomes its owner. It gets the default
/// plan and no company domain: only sign-up claims one, further accounts are workspaces.
pub(crate) async fn create(
    svc: &Services,
    principal: &Principal,
    ip: IpAddr,
    name: &str,
    url: Option<&str>,
) -> ApiResult<Account> {
    let session = principal.session()?;
    let mut errors = FieldErrors::default();
    let name = check_name(name).map_err(|e| errors.add("name", e.to_string())).ok();
    let url = match url {
        None => None,
        Some(raw) => parse_url(raw).map_err(|m| errors.add("url", m)).ok(),
    };
    errors.into_result()?;
    let Some(name) = name else { return Err(ApiError::invalid_request("Invalid request.")) };
    let now = Utc::now();
    let account = svc.new_account(name, url, None, now);
    let entry = audit(
        &account.id,
        &principal.actor(),
        "account.created",
        ("account", &account.id),
        ip,
        json!({ "name": account.name, "url": account.url, "plan": account.plan }),
    );
    svc.store.create_account(account.clone(), &session.user.id, vec![entry]).await?;
    svc.invalidate(Invalidation::User(session.user.id.clone())).await;
    Ok(account)
}

/// The caller's accounts (a session only) with their authority in each, oldest membership
/// first (the default account comes first). Cursor: `<membership created_at millis>_<account
/// id>` of the last item of the page.
pub(crate) async fn list_mine(
    svc: &Services,
    principal: &Principal,
    page: &PageRequest,
) -> ApiResult<Page<(Account, Authority)>> {
    let session = principal.session()?;
    let memberships = svc.store.user_memberships(&session.user.id).await?;
    let after = page.cursor.as_deref().and_then(|c| {
        let (millis, account_id) = c.split_once('_')?;
        Some((millis.parse::<i64>().ok()?, account_id.to_owned()))
    });
    if page.cursor.is_some() && after.is_none() {
        return Err(ApiError::invalid_field("cursor", "is not a cursor from a previous page"));
    }
    let mut rest = memberships
        .into_iter()
        .filter(|m| match &after {
            None => true,
            Some((millis, id)) => (m.created_at.timestamp_millis(), &m.account_id) > (*millis, id),
        })
        .peekable();
    let mut items = Vec::new();
    let mut last = None;
    while items.len() < page.limit as usize {
        let Some(m) = rest.next() else { break };
        last = Some(format!("{}_{}", m.created_at.timestamp_millis(), m.account_id));
        if let Some(a) = svc.store.account_by_id(&m.account_id).await? {
            items.push((a, m.authority));
        }
    }
    let next_cursor = if rest.peek().is_some() { last } else { None };
    Ok(Page { items, next_cursor })
}

/// The caller's account, to look at (a key needs `accounts:read`).
pub(crate) fn get(caller: &Caller) -> ApiResult<&Account> {
    caller.require_scope("accounts", "read")?;
    Ok(&caller.account)
}

/// A rename or a new url (`Some(None)` clears the url).
#[derive(Debug, Default)]
pub(crate) struct AccountPatch {
    pub(crate) name: Option<String>,
    pub(crate) url: Option<Option<String>>,
}

/// Renames the account or changes its url (administrator+; a key needs `accounts:write`).
pub(crate) async fn update(svc: &Services, caller: &Caller, ip: IpAddr, patch: AccountPatch) -> ApiResult<Account> {
    caller.require_scope("accounts", "write")?;
    caller.require_authority(Authority::Administrator)?;
    let mut errors = FieldErrors::default();
    let empty_patch = patch.name.is_none() && patch.url.is_none();
    let name = match patch.name.as_deref() {
        None => None,
        Some(n) => check_name(n).map_err(|e| errors.add("name", e.to_string())).ok(),
    };
    let url: Option<Option<String>> = match patch.url {
        None => None,
        Some(None) => Some(None),
        Some(Some(raw)) => match parse_url(&raw) {
            Ok(u) => Some(Some(u)),
            Err(m) => {
                errors.add("url", m);
                None
            }
        },
    };
    if empty_patch {
        errors.add("body", "nothing to change: send name or url");
    }
    errors.into_result()?;
    let mut fields = Vec::new();
    if name.is_some() {
        fields.push("name");
    }
    if url.is_some() {
        fields.push("url");
    }
    let id = &caller.account.id;
    let entry = audit(
        id,
        &caller.actor,
        "account.updated",
        ("account", id),
        ip,
        json!({ "fields": fields, "name": name, "url": url.clone().flatten() }),
    );
    let account =
        svc.store.update_account(id, name.as_deref(), url.as_ref().map(|u| u.as_deref()), vec![entry]).await?;
    svc.invalidate(Invalidation::Account(id.clone())).await;
    Ok(account)
}

/// Deletes the account (owner only; a key needs `accounts:write`). Every key of the account
/// stops working at once; the audit log is kept.
pub(crate) async fn delete(svc: &Services, caller: &Caller, ip: IpAddr) -> ApiResult<()> {
    caller.require_scope("accounts", "write")?;
    caller.require_authority(Authority::Owner)?;
    let id = &caller.account.id;
    let entry =
        audit(id, &caller.actor, "account.deleted", ("account", id), ip, json!({ "name": caller.account.name }));
    svc.store.delete_account(id, Utc::now(), vec![entry]).await?;
    svc.invalidate(Invalidation::Account(id.clone())).await;
    Ok(())
}
