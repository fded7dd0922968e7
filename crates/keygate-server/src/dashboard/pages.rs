//! What every page shares: the layout (account switcher, navigation, plan), flash messages,
//! rendering, and error pages made from the API's errors.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use keygate_core::Authority;

use super::session::{CookieNames, Viewer};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlashKind {
    Notice,
    Error,
}

/// A one-time message for the page after a redirect, carried in a short-lived cookie. Never
/// a secret: those are rendered in the answer to the POST itself.
#[derive(Debug, Clone)]
pub(crate) struct Flash {
    pub(crate) kind: FlashKind,
    pub(crate) message: String,
}

impl Flash {
    pub(crate) fn notice(m: impl Into<String>) -> Self {
        Flash { kind: FlashKind::Notice, message: m.into() }
    }

    pub(crate) fn error(m: impl Into<String>) -> Self {
        Flash { kind: FlashKind::Error, message: m.into() }
    }

    pub(crate) fn is_error(&self) -> bool {
        self.kind == FlashKind::Error
    }

    /// `n:` or `e:` then the URL-encoded message: only cookie-safe characters.
    pub(crate) fn cookie(&self, names: CookieNames) -> HeaderValue {
        let tag = if self.is_error() { "e" } else { "n" };
        let message: String = form_urlencoded::byte_serialize(self.message.as_bytes()).collect();
        super::session::set_cookie(names.flash, &format!("{tag}:{message}"), names.secure, Some(60))
    }

    pub(crate) fn decode(value: &str) -> Option<Self> {
        let (tag, encoded) = value.split_once(':')?;
        let message: String =
            form_urlencoded::parse(format!("m={encoded}").as_bytes()).map(|(_, v)| v.into_owned()).next()?;
        let message: String = message.chars().take(300).collect();
        match tag {
            "n" => Some(Flash::notice(message)),
            "e" => Some(Flash::error(message)),
            _ => None,
        }
    }
}

/// 303 to `location` with a flash message for the next page.
pub(crate) fn redirect_with(location: &str, flash: Flash, names: CookieNames) -> Response {
    let mut resp = Redirect::to(location).into_response();
    resp.headers_mut().append(header::SET_COOKIE, flash.cookie(names));
    resp
}

/// An account in the switcher.
#[derive(Debug, Clone)]
pub(crate) struct AccountLink {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) authority: &'static str,
    pub(crate) current: bool,
}

/// The current account as the header shows it.
#[derive(Debug, Clone)]
pub(crate) struct AccountInfo {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) plan: String,
    pub(crate) api_access: bool,
    pub(crate) trial_ends: Option<String>,
    pub(crate) authority: &'static str,
    pub(crate) is_admin: bool,
}

/// Everything `base.html` needs: present on every page struct as `layout`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    pub(crate) title: String,
    /// Which navigation entry is the current page (`aria-current`).
    pub(crate) section: &'static str,
    pub(crate) user_email: Option<String>,
    pub(crate) csrf: String,
    pub(crate) account: Option<AccountInfo>,
    pub(crate) accounts: Vec<AccountLink>,
    pub(crate) flash: Option<Flash>,
}

impl Layout {
    /// A page without a signed-in user (sign-in, sign-up, errors).
    pub(crate) fn public(title: &str) -> Self {
        Layout { title: title.to_owned(), ..Layout::default() }
    }

    /// A signed-in page outside any account.
    pub(crate) fn signed_in(title: &str, viewer: &Viewer) -> Self {
        Layout {
            title: title.to_owned(),
            user_email: Some(viewer.auth.user.email.clone()),
            csrf: viewer.csrf.clone(),
            accounts: viewer
                .memberships
                .iter()
                .map(|m| AccountLink {
                    id: m.account_id.clone(),
                    name: m.account_name.clone(),
                    authority: m.authority.as_str(),
                    current: false,
                })
                .collect(),
            flash: viewer.flash.clone(),
            ..Layout::default()
        }
    }

    /// A page of one account: its plan and the viewer's authority in the header.
    pub(crate) fn in_account(
        title: &str,
        section: &'static str,
        viewer: &Viewer,
        caller: &Caller,
        state: &AppState,
    ) -> Self {
        let mut l = Layout::signed_in(title, viewer);
        for a in &mut l.accounts {
            a.current = a.id == caller.account.id;
        }
        let access = state.services.plans.access(&caller.account, Utc::now());
        l.section = section;
        l.account = Some(AccountInfo {
            id: caller.account.id.clone(),
            name: caller.account.name.clone(),
            plan: caller.account.plan.clone(),
            api_access: access.api_access,
            trial_ends: caller.account.trial_ends_at.map(date),
            authority: caller.authority.as_str(),
            is_admin: caller.authority >= Authority::Administrator,
        });
        l
    }
}

/// `2026-11-23 09:15 UTC`
pub(crate) fn datetime(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub(crate) fn date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// Renders a template; a template that fails to render is an internal error (logged).
pub(crate) fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "dashboard template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><title>Error</title><p>Something went wrong on our side.</p>"),
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    layout: Layout,
    heading: &'a str,
    message: &'a str,
}

pub(crate) fn error_page(status: StatusCode, heading: &str, message: &str) -> Response {
    render(status, &ErrorPage { layout: Layout::public(heading), heading, message })
}

/// An API error as a page: its status, and the message meant for people. 5xx messages are
/// already opaque (the cause was logged where it happened).
pub(crate) fn api_error(e: &ApiError) -> Response {
    let heading = match e.status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::UNAUTHORIZED => "Sign in again",
        StatusCode::CONFLICT => "Not possible",
        StatusCode::TOO_MANY_REQUESTS => "Too many requests",
        s if s.is_server_error() => "Something went wrong",
        _ => "Not accepted",
    };
    let mut resp = error_page(e.status, heading, &message_of(e));
    if let Some(d) = e.rate {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(d.retry_after_seconds.max(1)));
    }
    resp
}

/// Why a page could not be made, already as the answer to give: an API error as an error
/// page, or a response made earlier (a refused account as a 404 page). Handlers answer
/// `PageResult` and pass refusals up with `?`.
#[derive(Debug)]
pub(crate) struct PageError(Response);

pub(crate) type PageResult = Result<Response, PageError>;

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(api_error(&e))
    }
}

impl From<Response> for PageError {
    fn from(r: Response) -> Self {
        PageError(r)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        self.0
    }
}

/// The most helpful text of an error for a person: its `user_message`, else its message.
pub(crate) fn message_of(e: &ApiError) -> String {
    match e.code {
        "not_found" if e.message.starts_with("No such") => {
            "There is no such page, or it belongs to an account you are not a member of.".to_owned()
        }
        _ => e.user_message.as_deref().unwrap_or(&e.message).to_owned(),
    }
}

/// "Are you sure?" as a page: where a dialog cannot open (no JavaScript), the buttons that
/// would open one lead here.
#[derive(Template)]
#[template(path = "confirm.html")]
pub(crate) struct ConfirmPage {
    pub(crate) layout: Layout,
    pub(crate) heading: String,
    pub(crate) message: String,
    pub(crate) action: String,
    pub(crate) button: &'static str,
    pub(crate) cancel: String,
    /// Roll: ask how long the old key keeps working.
    pub(crate) roll: bool,
}

#[derive(Template)]
#[template(path = "no_account.html")]
struct NoAccount {
    layout: Layout,
}

pub(crate) fn no_account(viewer: &Viewer) -> Response {
    render(StatusCode::OK, &NoAccount { layout: Layout::signed_in("No account", viewer) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flash_survives_its_cookie() {
        let names = super::super::session::cookie_names(&crate::config::DashboardSettings {
            enabled: true,
            secure_cookies: true,
        });
        let f = Flash::error("Key “ci; build” revoked = 100%");
        let cookie = f.cookie(names);
        let s = cookie.to_str().expect("ascii");
        let value = s.trim_start_matches("__Host-keygate_flash=").split(';').next().expect("value");
        assert!(!value.contains(' ') && !value.contains(';'));
        let back = Flash::decode(value).expect("decodes");
        assert!(back.is_error());
        assert_eq!(back.message, f.message);
        assert!(Flash::decode("x:oops").is_none());
    }
}
