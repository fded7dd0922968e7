//! The web dashboard at `/app`: sign up, sign in, personal and organization API keys,
//! members and the audit log, server-rendered (askama) from the same binary.
//!
//! It is a second front end over the same management logic as the JSON API: every change
//! goes through `crate::service`, so authority rules, validation, audit entries, cache
//! invalidation and the login throttle are the API's own. A signed-in browser holds an
//! ordinary session token (`kgs_…`) in an HttpOnly cookie, so signing out or changing the
//! password ends it exactly like the API's sessions.
//!
//! Browser-facing defences, all here: `__Host-` cookies (`Secure`, `HttpOnly`,
//! `SameSite=Strict`), a CSRF token on every form (`csrf`), same-origin checks on every POST,
//! a strict Content-Security-Policy with no inline script or style, `no-store` caching (pages
//! carry CSRF tokens and, once, secrets), and POST-then-redirect with a flash message except
//! where a secret must be shown once.

mod assets;
mod audit;
mod auth;
pub(crate) mod csrf;
mod keys;
mod members;
mod pages;
mod session;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::state::AppState;

pub(crate) use session::cookie_names;

/// The Content-Security-Policy of every dashboard answer: scripts, styles and images only
/// from keygate itself, forms only to keygate, never framed.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's routes, or none when `dashboard.enabled` is off.
pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    if !state.settings.dashboard.enabled {
        return Router::new();
    }
    Router::new()
        .route("/app", get(home))
        .route("/app/", get(home))
        .route("/app/login", get(auth::login_page).post(auth::login))
        .route("/app/signup", get(auth::signup_page).post(auth::signup))
        .route("/app/logout", post(auth::logout))
        .route("/app/static/{file}", get(assets::serve))
        .route("/app/a/{account}/keys", get(keys::personal).post(keys::create))
        .route("/app/a/{account}/org-keys", get(keys::organization))
        .route("/app/a/{account}/keys/new", get(keys::new_key))
        .route("/app/a/{account}/keys/{key}/revoke", get(keys::confirm_revoke).post(keys::revoke))
        .route("/app/a/{account}/keys/{key}/roll", get(keys::confirm_roll).post(keys::roll))
        .route("/app/a/{account}/members", get(members::page).post(members::add))
        .route("/app/a/{account}/members/{user}/authority", post(members::change))
        .route("/app/a/{account}/members/{user}/remove", get(members::confirm_remove).post(members::remove))
        .route("/app/a/{account}/audit", get(audit::page))
        .route("/app/{*rest}", get(not_found).post(not_found))
        .layer(middleware::from_fn_with_state(state.clone(), headers))
}

/// `/app`: the first account's personal keys when signed in, the sign-in page otherwise.
async fn home(axum::extract::State(state): axum::extract::State<AppState>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    match session::current(&state, &parts).await {
        Err(r) => r,
        Ok(None) => Redirect::to("/app/login").into_response(),
        Ok(Some(v)) => match v.memberships.first() {
            Some(m) => Redirect::to(&format!("/app/a/{}/keys", m.account_id)).into_response(),
            None => pages::no_account(&v),
        },
    }
}

async fn not_found() -> Response {
    pages::error_page(axum::http::StatusCode::NOT_FOUND, "Page not found", "There is no such page.")
}

/// Security headers on every dashboard answer, and the flash cookie's removal once a page
/// has shown it.
async fn headers(axum::extract::State(state): axum::extract::State<AppState>, req: Request, next: Next) -> Response {
    let names = cookie_names(&state.settings.dashboard);
    let had_flash = session::read_cookie(req.headers(), names.flash).is_some();
    let is_asset = req.uri().path().starts_with("/app/static/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin"));
    if !is_asset {
        // Pages carry CSRF tokens and, once, a new key's secret: never kept by any cache.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    let sets_flash = h
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| v.to_str().is_ok_and(|s| s.starts_with(&format!("{}=", names.flash))));
    if had_flash && !sets_flash && !resp.status().is_redirection() {
        resp.headers_mut().append(header::SET_COOKIE, session::clear_cookie(names.flash, names.secure));
    }
    resp
}
