//! Personal API keys, organization keys, the new-key form, the show-once secret, revoke and
//! roll. Every read and change is `service::keys`' (the API's own rules and audit entries).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use keygate_core::{Authority, RateLimit};
use keygate_store::{ApiKey, KeyClass, KeyStatus};

use super::auth::field_messages;
use super::pages::{self, Flash, Layout, PageError, PageResult, datetime, render};
use super::session::{QueryFields, SignedForm, Viewer};
use crate::auth::Caller;
use crate::extract::page_request;
use crate::service::keys as service;
use crate::service::roles;
use crate::state::AppState;
use crate::state::submissions::Submissions;

/// A key as a row of the list.
#[derive(Debug)]
pub(crate) struct KeyRow {
    pub(crate) id: String,
    pub(crate) key_part: String,
    pub(crate) name: String,
    pub(crate) status: &'static str,
    pub(crate) authority: &'static str,
    pub(crate) created: String,
    pub(crate) last_used: String,
    pub(crate) request_count: i64,
    pub(crate) expires: String,
    pub(crate) live: bool,
    /// Already rolled: it has a successor and cannot be rolled again.
    pub(crate) rolled: bool,
}

impl KeyRow {
    fn new(k: &ApiKey) -> Self {
        let status = k.status(Utc::now());
        KeyRow {
            id: k.id.clone(),
            key_part: k.key_part.clone(),
            name: k.name.clone(),
            status: status.as_str(),
            authority: k.authority.as_str(),
            created: datetime(k.created_at),
            last_used: k.last_used_at.map(datetime).unwrap_or_else(|| "never".into()),
            request_count: k.request_count,
            expires: match (k.revoked_at, k.expires_at) {
                (Some(r), _) => format!("revoked {}", datetime(r)),
                (None, Some(e)) => datetime(e),
                (None, None) => "never".into(),
            },
            live: status != KeyStatus::Revoked,
            rolled: k.rolled_to.is_some(),
        }
    }
}

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    layout: Layout,
    account_id: String,
    org: bool,
    rows: Vec<KeyRow>,
    next_cursor: Option<String>,
}

/// The caller inside the account of the path: 404 for an account the viewer is not in,
/// exactly as the API answers.
pub(crate) async fn caller(state: &AppState, viewer: &Viewer, account_id: &str) -> Result<Caller, PageError> {
    crate::service::input::check_id(keygate_core::id::IdKind::Account, account_id)?;
    Ok(viewer.principal().in_account(state, Some(account_id)).await?)
}

pub(crate) fn list_path(account_id: &str, class: KeyClass) -> String {
    match class {
        KeyClass::User => format!("/app/a/{account_id}/keys"),
        KeyClass::Org => format!("/app/a/{account_id}/org-keys"),
    }
}

async fn list_page(state: AppState, viewer: Viewer, account: String, cursor: Option<String>, org: bool) -> PageResult {
    let caller = caller(&state, &viewer, &account).await?;
    if org {
        caller.require_authority(Authority::Administrator)?;
    }
    let page = page_request(Some(50), cursor.as_deref())?;
    let input = if org {
        service::ListInput { class: Some("org".into()), ..Default::default() }
    } else {
        service::ListInput { own_only: true, ..Default::default() }
    };
    let found = service::list(&state.services, &caller, &input, &page).await?;
    let (title, section) = if org { ("Organization keys", "org-keys") } else { ("Personal API keys", "keys") };
    let layout = Layout::in_account(title, section, &viewer, &caller, &state);
    let rows = found.items.iter().map(KeyRow::new).collect();
    Ok(render(
        StatusCode::OK,
        &KeysPage { layout, account_id: caller.account.id.clone(), org, rows, next_cursor: found.next_cursor },
    ))
}

pub(crate) async fn personal(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(account): Path<String>,
    QueryFields(q): QueryFields,
) -> PageResult {
    list_page(state, viewer, account, q.text("cursor"), false).await
}

pub(crate) async fn organization(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(account): Path<String>,
    QueryFields(q): QueryFields,
) -> PageResult {
    list_page(state, viewer, account, q.text("cursor"), true).await
}

/// What the new-key form shows and, after a refusal, what the person had entered.
#[derive(Debug, Default)]
struct KeyForm {
    name: String,
    class: String,
    authority: String,
    scopes: String,
    role_id: String,
    end_date: String,
    rate_limit: String,
    rate_window: String,
}

#[derive(Template)]
#[template(path = "key_new.html")]
struct NewKeyPage {
    layout: Layout,
    account_id: String,
    form: KeyForm,
    authorities: Vec<&'static str>,
    roles: Vec<(String, String)>,
    may_mint_org: bool,
    errors: Vec<String>,
    today: String,
    /// One-time: sending this form twice mints once (`submissions`).
    submission: String,
}

async fn new_key_page(
    state: &AppState,
    viewer: &Viewer,
    caller: &Caller,
    form: KeyForm,
    errors: Vec<String>,
    status: StatusCode,
) -> PageResult {
    let roles = roles::list(&state.services, caller, Some(100), None).await?;
    let roles = roles.items.into_iter().map(|r| (r.id, r.name)).collect();
    let authorities = [Authority::User, Authority::Administrator, Authority::Owner]
        .into_iter()
        .filter(|a| *a <= caller.authority)
        .map(Authority::as_str)
        .collect();
    let section = if form.class == "org" { "org-keys" } else { "keys" };
    let page = NewKeyPage {
        layout: Layout::in_account("New API key", section, viewer, caller, state),
        account_id: caller.account.id.clone(),
        may_mint_org: caller.authority.is_admin(),
        form,
        authorities,
        roles,
        errors,
        today: Utc::now().format("%Y-%m-%d").to_string(),
        submission: Submissions::issue(),
    };
    Ok(render(status, &page))
}

pub(crate) async fn new_key(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(account): Path<String>,
    QueryFields(q): QueryFields,
) -> PageResult {
    let caller = caller(&state, &viewer, &account).await?;
    let class = if q.get("class") == Some("org") && caller.authority.is_admin() { "org" } else { "user" };
    let form = KeyForm {
        class: class.into(),
        authority: "user".into(),
        scopes: "*:*".into(),
        rate_window: "60".into(),
        ..KeyForm::default()
    };
    new_key_page(&state, &viewer, &caller, form, Vec::new(), StatusCode::OK).await
}

#[derive(Template)]
#[template(path = "key_secret.html")]
struct SecretPage {
    layout: Layout,
    heading: &'static str,
    secret: String,
    key: KeyRow,
    list_path: String,
    /// After a roll: what became of the old key.
    previous: Option<(String, String)>,
}

/// Mints the key and answers the secret in this very response: never in a URL, a cookie or a
/// redirect, so it is shown once and then exists only as a digest.
pub(crate) async fn create(State(state): State<AppState>, Path(account): Path<String>, form: SignedForm) -> PageResult {
    let SignedForm { viewer, fields: f } = form;
    let caller = caller(&state, &viewer, &account).await?;
    let entered = KeyForm {
        name: f.get("name").unwrap_or_default().to_owned(),
        class: f.get("class").unwrap_or("user").to_owned(),
        authority: f.get("authority").unwrap_or("user").to_owned(),
        scopes: f.get("scopes").unwrap_or_default().to_owned(),
        role_id: f.get("role_id").unwrap_or_default().to_owned(),
        end_date: f.get("end_date").unwrap_or_default().to_owned(),
        rate_limit: f.get("rate_limit").unwrap_or_default().trim().to_owned(),
        rate_window: f.get("rate_window").unwrap_or("60").to_owned(),
    };
    let rate_limit = match parse_rate(&entered.rate_limit, &entered.rate_window) {
        Ok(r) => r,
        Err(m) => return new_key_page(&state, &viewer, &caller, entered, vec![m], StatusCode::BAD_REQUEST).await,
    };
    let scopes: Vec<String> = entered
        .scopes
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let input = service::MintInput {
        class: Some(entered.class.clone()),
        name: entered.name.clone(),
        authority: Some(entered.authority.clone()),
        scopes: if scopes.is_empty() { vec!["*:*".to_owned()] } else { scopes },
        role_id: f.text("role_id"),
        end_date: f.text("end_date"),
        rate_limit,
        ..service::MintInput::default()
    };
    // A form sent before (reloaded, resent, clicked twice): its key exists and its secret was
    // shown then. Forms without a token (scripts) are not deduplicated.
    let submission = f.text("submission");
    if let Some(token) = &submission
        && !state.submissions.claim(token)
    {
        let class = if f.get("class") == Some("org") { KeyClass::Org } else { KeyClass::User };
        let flash = Flash::notice(
            "This form was already sent, and its key was created then; nothing new was created. If its secret did not reach your screen, revoke that key and create another.",
        );
        return Ok(pages::redirect_with(&list_path(&caller.account.id, class), flash, viewer.names));
    }
    match service::mint(&state.services, &caller, Some(viewer.ip), input).await {
        Ok(minted) => {
            let page = SecretPage {
                layout: Layout::in_account("Your new API key", "keys", &viewer, &caller, &state),
                heading: "Your new API key",
                secret: minted.secret.expose().to_owned(),
                list_path: list_path(&caller.account.id, minted.key.class),
                key: KeyRow::new(&minted.key),
                previous: None,
            };
            Ok(render(StatusCode::OK, &page))
        }
        Err(e) => {
            if let Some(token) = &submission {
                state.submissions.release(token);
            }
            let status = e.status;
            new_key_page(&state, &viewer, &caller, entered, field_messages(&e), status).await
        }
    }
}

/// `limit` requests per `window` seconds; blank means the plan's default.
fn parse_rate(limit: &str, window: &str) -> Result<Option<RateLimit>, String> {
    if limit.is_empty() {
        return Ok(None);
    }
    let limit: u32 = limit.parse().map_err(|_| "Rate limit: must be a whole number of requests".to_owned())?;
    let window_seconds: u32 = window.parse().map_err(|_| "Rate limit: choose a time window".to_owned())?;
    let r = RateLimit { limit, window_seconds, burst: None };
    r.validate().map_err(|m| format!("Rate limit: {m}"))?;
    Ok(Some(r))
}

/// Without JavaScript the Revoke and Roll buttons lead here instead of opening a dialog.
async fn confirm(state: AppState, viewer: Viewer, account: String, handle: String, roll: bool) -> PageResult {
    let caller = caller(&state, &viewer, &account).await?;
    let key = service::get(&state.services, &caller, &handle).await?;
    let (verb, button, message) = if roll {
        ("roll", "Roll key", "A new key with the same settings replaces it; its secret is shown once.")
    } else {
        ("revoke", "Revoke key", "Requests with it are refused at once. A revoked key cannot be re-enabled.")
    };
    let page = pages::ConfirmPage {
        layout: Layout::in_account(button, "keys", &viewer, &caller, &state),
        heading: format!("{button} “{}” ({})?", key.name, key.key_part),
        message: message.into(),
        action: format!("/app/a/{}/keys/{}/{verb}", caller.account.id, key.id),
        button,
        cancel: list_path(&caller.account.id, key.class),
        roll,
    };
    Ok(render(StatusCode::OK, &page))
}

pub(crate) async fn confirm_revoke(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((account, key)): Path<(String, String)>,
) -> PageResult {
    confirm(state, viewer, account, key, false).await
}

pub(crate) async fn confirm_roll(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((account, key)): Path<(String, String)>,
) -> PageResult {
    confirm(state, viewer, account, key, true).await
}

/// Refusals other than 404 go back to the list as an error message; a 404 stays a 404 page
/// (another account's key looks like no key at all).
fn refused(e: &crate::error::ApiError, account_id: &str, viewer: &Viewer) -> Response {
    if e.status == StatusCode::NOT_FOUND || e.status.is_server_error() {
        return pages::api_error(e);
    }
    pages::redirect_with(&list_path(account_id, KeyClass::User), Flash::error(pages::message_of(e)), viewer.names)
}

pub(crate) async fn revoke(
    State(state): State<AppState>,
    Path((account, handle)): Path<(String, String)>,
    form: SignedForm,
) -> PageResult {
    let viewer = form.viewer;
    let caller = caller(&state, &viewer, &account).await?;
    Ok(match service::revoke(&state.services, &caller, Some(viewer.ip), &handle).await {
        Ok(k) => {
            let flash = Flash::notice(format!(
                "Key “{}” ({}) is revoked. Requests with it are refused from now on.",
                k.name, k.key_part
            ));
            pages::redirect_with(&list_path(&caller.account.id, k.class), flash, viewer.names)
        }
        Err(e) => refused(&e, &caller.account.id, &viewer),
    })
}

pub(crate) async fn roll(
    State(state): State<AppState>,
    Path((account, handle)): Path<(String, String)>,
    form: SignedForm,
) -> PageResult {
    let SignedForm { viewer, fields } = form;
    let caller = caller(&state, &viewer, &account).await?;
    let overlap = fields.get("old_expires_in_seconds").and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
    Ok(match service::roll(&state.services, &caller, viewer.ip, &handle, overlap).await {
        Ok(rolled) => {
            let old_end = match (rolled.old.revoked_at, rolled.old.expires_at) {
                (Some(_), _) => "was revoked now".to_owned(),
                (None, Some(e)) => format!("keeps working until {}", datetime(e)),
                (None, None) => "keeps working".to_owned(),
            };
            let page = SecretPage {
                layout: Layout::in_account("Rolled API key", "keys", &viewer, &caller, &state),
                heading: "Your rolled API key",
                secret: rolled.secret.expose().to_owned(),
                list_path: list_path(&caller.account.id, rolled.new.class),
                key: KeyRow::new(&rolled.new),
                previous: Some((rolled.old.key_part.clone(), old_end)),
            };
            render(StatusCode::OK, &page)
        }
        // The form sent again (a reload of the rolled page, a second click): the key was rolled
        // then, and its successor's secret was shown then. Nothing new is minted.
        Err(e) if e.code == "key_rolled" => {
            let flash = Flash::notice(
                "This key was already rolled, and its successor was created then; nothing new was created. If the new secret did not reach your screen, roll or revoke the successor.",
            );
            pages::redirect_with(&list_path(&caller.account.id, KeyClass::User), flash, viewer.names)
        }
        Err(e) => refused(&e, &caller.account.id, &viewer),
    })
}
