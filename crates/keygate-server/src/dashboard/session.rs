//! Who is looking at the dashboard: the session cookie, the signed-in `Viewer`, and the
//! forms they post (same-origin and CSRF-checked before any handler runs).

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use keygate_store::{SessionAuth, UserMembership};
use secrecy::SecretString;

use super::{csrf, pages};
use crate::auth::Principal;
use crate::config::DashboardSettings;
use crate::extract::client_ip;
use crate::state::AppState;

/// The dashboard's cookie names. With `secure_cookies` they carry the `__Host-` prefix, which
/// browsers accept only with `Secure`, `Path=/` and no `Domain`: no subdomain or plain-HTTP
/// page can plant or overwrite them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CookieNames {
    pub(crate) session: &'static str,
    pub(crate) flash: &'static str,
    pub(crate) csrf: &'static str,
    pub(crate) secure: bool,
}

pub(crate) fn cookie_names(settings: &DashboardSettings) -> CookieNames {
    if settings.secure_cookies {
        CookieNames {
            session: "__Host-keygate_session",
            flash: "__Host-keygate_flash",
            csrf: "__Host-keygate_csrf",
            secure: true,
        }
    } else {
        CookieNames { session: "keygate_session", flash: "keygate_flash", csrf: "keygate_csrf", secure: false }
    }
}

/// The first cookie called `name` in the request's `Cookie` headers.
pub(crate) fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A session cookie (no `Max-Age`: it ends with the browser; the server's own idle and
/// absolute timeouts bound it anyway). `value` must be cookie-safe (tokens are base62).
pub(crate) fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u32>) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(s) = max_age {
        c.push_str(&format!("; Max-Age={s}"));
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("keygate_invalid=; Max-Age=0"))
}

pub(crate) fn clear_cookie(name: &str, secure: bool) -> HeaderValue {
    set_cookie(name, "", secure, Some(0))
}

/// A signed-in person: their session (an ordinary keygate session), the CSRF token of their
/// forms, their accounts, and the flash message left for this page, if any.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    pub(crate) auth: Arc<SessionAuth>,
    pub(crate) csrf: String,
    pub(crate) ip: IpAddr,
    pub(crate) memberships: Vec<UserMembership>,
    pub(crate) flash: Option<pages::Flash>,
    pub(crate) names: CookieNames,
}

impl Viewer {
    pub(crate) fn principal(&self) -> Principal {
        Principal::Session(Arc::clone(&self.auth))
    }
}

/// The viewer behind the request's cookie, `Ok(None)` when nobody is signed in (or the session
/// ended), `Err` when storage cannot answer.
pub(crate) async fn current(state: &AppState, parts: &Parts) -> Result<Option<Viewer>, Response> {
    let names = cookie_names(&state.settings.dashboard);
    let Some(token) = read_cookie(&parts.headers, names.session).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let auth = match state.auth.authenticate_session(token, crate::extract::client_ip(parts, state)).await {
        Ok(a) => a,
        Err(e) if e.status == StatusCode::UNAUTHORIZED => return Ok(None),
        Err(e) => return Err(pages::api_error(&e)),
    };
    let memberships =
        crate::service::user::memberships(&state.services, &auth.user.id).await.map_err(|e| pages::api_error(&e))?;
    Ok(Some(Viewer {
        csrf: csrf::session_token(token),
        ip: client_ip(parts, state),
        flash: read_cookie(&parts.headers, names.flash).and_then(pages::Flash::decode),
        memberships,
        auth,
        names,
    }))
}

/// Not signed in: to the sign-in page, dropping a cookie that no longer works.
fn to_login(state: &AppState, parts: &Parts) -> Response {
    let names = cookie_names(&state.settings.dashboard);
    let mut resp = Redirect::to("/app/login").into_response();
    if read_cookie(&parts.headers, names.session).is_some() {
        resp.headers_mut().append(header::SET_COOKIE, clear_cookie(names.session, names.secure));
        let flash = pages::Flash::notice("Your session has ended. Sign in again.");
        resp.headers_mut().append(header::SET_COOKIE, flash.cookie(names));
    }
    resp
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match current(state, parts).await? {
            Some(v) => Ok(v),
            None => Err(to_login(state, parts)),
        }
    }
}

/// Fields of a posted `application/x-www-form-urlencoded` body. Its `Debug` shows names
/// only: forms carry passwords.
pub(crate) struct Fields(Vec<(String, String)>);

impl std::fmt::Debug for Fields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(k, _)| k)).finish()
    }
}

impl Fields {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The trimmed value, `None` when absent or blank.
    pub(crate) fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
    }

    pub(crate) fn secret(&self, name: &str) -> SecretString {
        SecretString::from(self.get(name).unwrap_or_default().to_owned())
    }
}

/// A page's query string as fields; never refuses (an unknown parameter is ignored, a bad
/// value is the handler's to judge).
#[derive(Debug)]
pub(crate) struct QueryFields(pub Fields);

impl<S: Send + Sync> FromRequestParts<S> for QueryFields {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or_default();
        Ok(QueryFields(Fields(form_urlencoded::parse(q.as_bytes()).into_owned().collect())))
    }
}

/// Refuses a POST that a browser says came from another site. `Sec-Fetch-Site` and `Origin`
/// are set by browsers and cannot be forged by a page; clients that send neither still need
/// the CSRF token. `Origin: null` says nothing: browsers send it for every form post from a
/// page with `Referrer-Policy: no-referrer`, which the dashboard's pages have.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "same-origin" || site == "none";
    }
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None | Some("null") => true,
        Some(origin) => {
            let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
            let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or_default();
            !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
        }
    }
}

fn forbidden() -> Response {
    pages::error_page(
        StatusCode::FORBIDDEN,
        "This form has expired",
        "The form was not accepted: it is out of date or did not come from this site. Go back, reload the page and try again.",
    )
}

async fn read_fields(req: Request, state: &AppState) -> Result<Fields, Response> {
    let limit = state.settings.max_body_bytes;
    let bytes = axum::body::to_bytes(req.into_body(), limit).await.map_err(|_| {
        pages::error_page(StatusCode::PAYLOAD_TOO_LARGE, "Too much data", "The form sent more data than allowed.")
    })?;
    Ok(Fields(form_urlencoded::parse(&bytes).into_owned().collect()))
}

/// A form posted from a signed-in page: same origin, the viewer's CSRF token; 403 otherwise.
#[derive(Debug)]
pub(crate) struct SignedForm {
    pub(crate) viewer: Viewer,
    pub(crate) fields: Fields,
}

impl FromRequest<AppState> for SignedForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !same_origin(req.headers()) {
            tracing::debug!("dashboard form refused: posted from another site");
            return Err(forbidden());
        }
        let (mut parts, body) = req.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, state).await?;
        let fields = read_fields(Request::from_parts(parts, body), state).await?;
        if !csrf::equal(fields.get("csrf").unwrap_or_default(), &viewer.csrf) {
            tracing::debug!("dashboard form refused: CSRF token missing or wrong");
            return Err(forbidden());
        }
        Ok(SignedForm { viewer, fields })
    }
}

/// A form posted before sign-in (sign-in, sign-up): same origin, and the token of the
/// pre-session cookie repeated in the form; 403 otherwise.
#[derive(Debug)]
pub(crate) struct PublicForm {
    pub(crate) ip: IpAddr,
    pub(crate) fields: Fields,
    pub(crate) names: CookieNames,
}

impl FromRequest<AppState> for PublicForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !same_origin(req.headers()) {
            tracing::debug!("dashboard form refused: posted from another site");
            return Err(forbidden());
        }
        let names = cookie_names(&state.settings.dashboard);
        let (parts, body) = req.into_parts();
        let cookie = read_cookie(&parts.headers, names.csrf).unwrap_or_default().to_owned();
        let ip = client_ip(&parts, state);
        let fields = read_fields(Request::from_parts(parts, body), state).await?;
        if !csrf::equal(fields.get("csrf").unwrap_or_default(), &cookie) {
            tracing::debug!("dashboard sign-in form refused: CSRF token missing or wrong");
            return Err(forbidden());
        }
        Ok(PublicForm { ip, fields, names })
    }
}

/// The pre-session token for a sign-in or sign-up page: the browser's current one, or a new
/// one with the cookie that carries it.
pub(crate) fn presession_token(headers: &HeaderMap, names: CookieNames) -> (String, Option<HeaderValue>) {
    match read_cookie(headers, names.csrf).filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_alphanumeric())) {
        Some(t) => (t.to_owned(), None),
        None => {
            let t = csrf::new_presession_token();
            let cookie = set_cookie(names.csrf, &t, names.secure, None);
            (t, Some(cookie))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn cookies_are_found_among_others() {
        let h = headers(&[("cookie", "a=1; __Host-keygate_session=kgs_x ; b=2"), ("cookie", "c=3")]);
        assert_eq!(read_cookie(&h, "__Host-keygate_session"), Some("kgs_x"));
        assert_eq!(read_cookie(&h, "c"), Some("3"));
        assert_eq!(read_cookie(&h, "keygate_session"), None);
    }

    #[test]
    fn cookie_attributes_follow_the_setting() {
        let secure = cookie_names(&DashboardSettings { enabled: true, secure_cookies: true });
        let c = set_cookie(secure.session, "kgs_x", secure.secure, None);
        assert_eq!(c.to_str().ok(), Some("__Host-keygate_session=kgs_x; Path=/; HttpOnly; SameSite=Strict; Secure"));
        let plain = cookie_names(&DashboardSettings { enabled: true, secure_cookies: false });
        let c = set_cookie(plain.session, "kgs_x", plain.secure, None);
        assert_eq!(c.to_str().ok(), Some("keygate_session=kgs_x; Path=/; HttpOnly; SameSite=Strict"));
    }

    #[test]
    fn cross_site_posts_are_refused() {
        assert!(same_origin(&headers(&[])), "no browser headers: the token decides");
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin"), ("origin", "http://h:1"), ("host", "h:1")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(!same_origin(&headers(&[("origin", "https://evil.example"), ("host", "keygate.example")])));
        assert!(
            same_origin(&headers(&[("origin", "null"), ("host", "keygate.example")])),
            "no-referrer pages post `null`"
        );
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin"), ("origin", "null"), ("host", "h")])));
    }
}
