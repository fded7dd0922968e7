//! The audit log, newest first, paged, filtered by action (administrator+, as in the API).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use keygate_store::{ActorType, AuditEntry, PageRequest};

use super::keys::caller;
use super::pages::{Layout, PageResult, datetime, render};
use super::session::{QueryFields, Viewer};
use crate::extract::page_request;
use crate::service::{audit as service, members};
use crate::state::AppState;

/// The filter's choices: every family, then the single actions people look for most.
const ACTIONS: &[&str] = &[
    "key.*",
    "member.*",
    "user.*",
    "account.*",
    "role.*",
    "key.created",
    "key.revoked",
    "key.rolled",
    "key.updated",
    "member.added",
    "member.updated",
    "member.removed",
    "user.login",
    "user.login_failed",
    "user.password_changed",
];

#[derive(Debug)]
struct EntryRow {
    seq: i64,
    at: String,
    actor: String,
    action: String,
    target: String,
    ip: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    rows: Vec<EntryRow>,
    actions: &'static [&'static str],
    action: String,
    /// `action` ready for a query string.
    action_q: String,
    next_cursor: Option<String>,
    first_page: bool,
}

/// Who acted, in words: a member's email where the account knows it, else the id.
fn actor(e: &AuditEntry, emails: &HashMap<String, String>) -> String {
    let user = e.actor.user_id.as_ref().map(|u| emails.get(u).cloned().unwrap_or_else(|| u.clone()));
    match (e.actor.kind, user, &e.actor.key_id) {
        (ActorType::ApiKey, Some(u), Some(k)) => format!("{u} (key {k})"),
        (ActorType::ApiKey, None, Some(k)) => format!("key {k}"),
        (ActorType::Operator, _, _) => "operator".into(),
        (ActorType::System, _, _) => "system".into(),
        (_, Some(u), _) => u,
        _ => "unknown".into(),
    }
}

pub(crate) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(account): Path<String>,
    QueryFields(q): QueryFields,
) -> PageResult {
    let caller = caller(&state, &viewer, &account).await?;
    let action = q.text("action");
    let cursor = q.text("cursor");
    let page = page_request(Some(50), cursor.as_deref())?;
    let found = service::list(&state.services, &caller, action.clone(), None, &page).await?;
    // Members' emails make the log readable; a former member shows as their id.
    let emails: HashMap<String, String> =
        match members::list(&state.services, &caller, &PageRequest { limit: 100, cursor: None }).await {
            Ok(p) => p.items.into_iter().map(|m| (m.user_id, m.email)).collect(),
            Err(_) => HashMap::new(),
        };
    let rows = found
        .items
        .iter()
        .map(|e| EntryRow {
            seq: e.seq,
            at: datetime(e.at),
            actor: actor(e, &emails),
            action: e.action.clone(),
            target: match emails.get(&e.target_id) {
                Some(email) if e.target_type == "user" => format!("user {email}"),
                _ => format!("{} {}", e.target_type, e.target_id),
            },
            ip: e.ip.clone().unwrap_or_default(),
        })
        .collect();
    let page = AuditPage {
        layout: Layout::in_account("Audit log", "audit", &viewer, &caller, &state),
        rows,
        actions: ACTIONS,
        action_q: form_urlencoded::byte_serialize(action.as_deref().unwrap_or_default().as_bytes()).collect(),
        action: action.unwrap_or_default(),
        next_cursor: found.next_cursor,
        first_page: cursor.is_none(),
    };
    Ok(render(StatusCode::OK, &page))
}
