//! Members: list, invite an existing user by email, change authority, remove or leave. The
//! rules and errors are `service::members`' (the API's): nobody grants more than they have,
//! administrators cannot touch owners, the last owner stays.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use keygate_core::Authority;
use keygate_store::Member;

use super::keys::caller;
use super::pages::{self, Flash, Layout, PageResult, date, render};
use super::session::{QueryFields, SignedForm, Viewer};
use crate::error::ApiError;
use crate::extract::page_request;
use crate::service::members as service;
use crate::state::AppState;

#[derive(Debug)]
struct MemberRow {
    user_id: String,
    name: String,
    email: String,
    authority: &'static str,
    since: String,
    is_self: bool,
    /// Whether the viewer may change or remove this member at all (the store re-checks).
    manageable: bool,
}

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage {
    layout: Layout,
    account_id: String,
    rows: Vec<MemberRow>,
    next_cursor: Option<String>,
    is_admin: bool,
    grantable: Vec<&'static str>,
}

fn grantable(by: Authority) -> Vec<&'static str> {
    [Authority::User, Authority::Administrator, Authority::Owner]
        .into_iter()
        .filter(|a| *a <= by)
        .map(Authority::as_str)
        .collect()
}

pub(crate) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(account): Path<String>,
    QueryFields(q): QueryFields,
) -> PageResult {
    let caller = caller(&state, &viewer, &account).await?;
    let page = page_request(Some(50), q.text("cursor").as_deref())?;
    let found = service::list(&state.services, &caller, &page).await?;
    let me = caller.user_id.clone().unwrap_or_default();
    let row = |m: Member| MemberRow {
        is_self: m.user_id == me,
        manageable: caller.authority.is_admin()
            && (caller.authority == Authority::Owner || m.authority != Authority::Owner),
        user_id: m.user_id,
        name: m.name,
        email: m.email,
        authority: m.authority.as_str(),
        since: date(m.created_at),
    };
    let rows = found.items.into_iter().map(row).collect();
    let page = MembersPage {
        layout: Layout::in_account("Members", "members", &viewer, &caller, &state),
        account_id: caller.account.id.clone(),
        rows,
        next_cursor: found.next_cursor,
        is_admin: caller.authority.is_admin(),
        grantable: grantable(caller.authority),
    };
    Ok(render(StatusCode::OK, &page))
}

fn back(account_id: &str, result: Result<String, ApiError>, viewer: &Viewer) -> Response {
    let to = format!("/app/a/{account_id}/members");
    match result {
        Ok(notice) => pages::redirect_with(&to, Flash::notice(notice), viewer.names),
        // Another account's member answers a 404 page, as the API does.
        Err(e) if e.status == StatusCode::NOT_FOUND && e.message.starts_with("No such") => pages::api_error(&e),
        Err(e) if e.status.is_server_error() => pages::api_error(&e),
        Err(e) => pages::redirect_with(&to, Flash::error(pages::message_of(&e)), viewer.names),
    }
}

pub(crate) async fn add(State(state): State<AppState>, Path(account): Path<String>, form: SignedForm) -> PageResult {
    let SignedForm { viewer, fields } = form;
    let caller = caller(&state, &viewer, &account).await?;
    let email = fields.get("email").unwrap_or_default().trim().to_owned();
    let result = async {
        let authority = service::parse_authority("authority", fields.get("authority").unwrap_or_default())?;
        let m = service::add(&state.services, &caller, viewer.ip, &email, authority).await?;
        Ok(format!("{} ({}) is now a member with authority {}.", m.name, m.email, m.authority.as_str()))
    }
    .await;
    Ok(back(&caller.account.id, result, &viewer))
}

pub(crate) async fn change(
    State(state): State<AppState>,
    Path((account, user)): Path<(String, String)>,
    form: SignedForm,
) -> PageResult {
    let SignedForm { viewer, fields } = form;
    let caller = caller(&state, &viewer, &account).await?;
    let result = async {
        let authority = service::parse_authority("authority", fields.get("authority").unwrap_or_default())?;
        let m = service::change(&state.services, &caller, viewer.ip, &user, authority).await?;
        Ok(format!("{} now has authority {}.", m.email, m.authority.as_str()))
    }
    .await;
    Ok(back(&caller.account.id, result, &viewer))
}

/// Without JavaScript the Remove button leads here instead of opening a dialog.
pub(crate) async fn confirm_remove(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((account, user)): Path<(String, String)>,
) -> PageResult {
    let caller = caller(&state, &viewer, &account).await?;
    service::find(&state.services, &caller, &user).await?;
    let member = user;
    let leaving = caller.user_id.as_deref() == Some(member.as_str());
    let page = pages::ConfirmPage {
        layout: Layout::in_account("Remove member", "members", &viewer, &caller, &state),
        heading: if leaving { "Leave this account?".into() } else { "Remove this member?".into() },
        message: "Their API keys in this account stop working at once.".into(),
        action: format!("/app/a/{}/members/{member}/remove", caller.account.id),
        button: if leaving { "Leave account" } else { "Remove member" },
        cancel: format!("/app/a/{}/members", caller.account.id),
        roll: false,
    };
    Ok(render(StatusCode::OK, &page))
}

pub(crate) async fn remove(
    State(state): State<AppState>,
    Path((account, user)): Path<(String, String)>,
    form: SignedForm,
) -> PageResult {
    let viewer = form.viewer;
    let caller = caller(&state, &viewer, &account).await?;
    let leaving = caller.user_id.as_deref() == Some(user.as_str());
    Ok(match service::remove(&state.services, &caller, viewer.ip, &user).await {
        Ok(()) if leaving => {
            pages::redirect_with("/app", Flash::notice(format!("You left “{}”.", caller.account.name)), viewer.names)
        }
        result => back(
            &caller.account.id,
            result.map(|()| "The member was removed; their keys in this account no longer work.".to_owned()),
            &viewer,
        ),
    })
}
