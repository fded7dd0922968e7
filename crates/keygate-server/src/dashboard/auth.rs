//! Sign in, sign up, sign out. The work is `service::identity`'s, shared with `/v1/login`,
//! `/v1/register` and `/v1/logout`: the same throttle (a password guessed here counts
//! against the same limits as one guessed through the API), the same timing-safe check, and
//! an ordinary session token in the cookie.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::pages::{self, Flash, Layout, PageResult, render};
use super::session::{PublicForm, SignedForm, clear_cookie, cookie_names, presession_token, read_cookie, set_cookie};
use crate::error::ApiError;
use crate::service::identity as service;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    csrf: String,
    email: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "signup.html")]
struct SignupPage {
    layout: Layout,
    csrf: String,
    email: String,
    name: String,
    url: String,
    min_password_chars: usize,
    errors: Vec<String>,
}

/// The page's own flash, and a pre-session CSRF token (set as a cookie when new).
fn public_layout(title: &str, headers: &HeaderMap, state: &AppState) -> (Layout, String, Option<HeaderValue>) {
    let names = cookie_names(&state.settings.dashboard);
    let mut layout = Layout::public(title);
    layout.flash = read_cookie(headers, names.flash).and_then(Flash::decode);
    let (token, cookie) = presession_token(headers, names);
    (layout, token, cookie)
}

fn with_cookie(mut resp: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(c) = cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

pub(crate) async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (layout, csrf, cookie) = public_layout("Sign in", &headers, &state);
    with_cookie(render(StatusCode::OK, &LoginPage { layout, csrf, email: String::new(), error: None }), cookie)
}

pub(crate) async fn login(State(state): State<AppState>, form: PublicForm) -> Response {
    let email = form.fields.get("email").unwrap_or_default().trim().to_owned();
    let password = form.fields.secret("password");
    match service::login(&state.services, form.ip, &email, &password).await {
        Ok(signed_in) => {
            let mut resp = Redirect::to("/app").into_response();
            let h = resp.headers_mut();
            h.append(
                header::SET_COOKIE,
                set_cookie(form.names.session, signed_in.token.expose(), form.names.secure, None),
            );
            h.append(header::SET_COOKIE, clear_cookie(form.names.csrf, form.names.secure));
            resp
        }
        Err(e) => {
            let csrf = form.fields.get("csrf").unwrap_or_default().to_owned();
            let error = Some(pages::message_of(&e));
            let mut resp = render(e.status, &LoginPage { layout: Layout::public("Sign in"), csrf, email, error });
            if let Some(d) = e.rate {
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(d.retry_after_seconds.max(1)));
            }
            resp
        }
    }
}

pub(crate) async fn signup_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (layout, csrf, cookie) = public_layout("Sign up", &headers, &state);
    let page = SignupPage {
        layout,
        csrf,
        email: String::new(),
        name: String::new(),
        url: String::new(),
        min_password_chars: state.settings.signup.min_password_chars,
        errors: Vec::new(),
    };
    with_cookie(render(StatusCode::OK, &page), cookie)
}

pub(crate) async fn signup(State(state): State<AppState>, form: PublicForm) -> Response {
    let f = &form.fields;
    let input = service::RegisterInput {
        email: f.get("email").unwrap_or_default().trim().to_owned(),
        password: f.secret("password"),
        name: f.get("name").unwrap_or_default().to_owned(),
        url: f.text("url"),
    };
    let (email, name, url) = (input.email.clone(), input.name.clone(), input.url.clone().unwrap_or_default());
    match service::register(&state.services, form.ip, input).await {
        Ok(r) => {
            let welcome = Flash::notice(format!("Welcome to keygate. Your account “{}” is ready.", r.account.name));
            let mut resp = pages::redirect_with(&format!("/app/a/{}/keys", r.account.id), welcome, form.names);
            let h = resp.headers_mut();
            h.append(header::SET_COOKIE, set_cookie(form.names.session, r.token.expose(), form.names.secure, None));
            h.append(header::SET_COOKIE, clear_cookie(form.names.csrf, form.names.secure));
            resp
        }
        Err(e) => {
            let page = SignupPage {
                layout: Layout::public("Sign up"),
                csrf: f.get("csrf").unwrap_or_default().to_owned(),
                email,
                name,
                url,
                min_password_chars: state.settings.signup.min_password_chars,
                errors: field_messages(&e),
            };
            render(e.status, &page)
        }
    }
}

/// Each field problem as a sentence (`details`), or the error's own message.
pub(crate) fn field_messages(e: &ApiError) -> Vec<String> {
    let listed: Vec<String> =
        e.field_problems().map(|(field, message)| format!("{}: {message}", label(field))).collect();
    if listed.is_empty() { vec![pages::message_of(e)] } else { listed }
}

fn label(field: &str) -> String {
    let mut name = field.replace('_', " ");
    if let Some(first) = name.get(..1) {
        name.replace_range(..1, &first.to_uppercase());
    }
    name
}

pub(crate) async fn logout(State(state): State<AppState>, form: SignedForm) -> PageResult {
    service::logout(&state.services, &form.viewer.auth).await?;
    let names = form.viewer.names;
    let mut resp = pages::redirect_with("/app/login", Flash::notice("You are signed out."), names);
    resp.headers_mut().append(header::SET_COOKIE, clear_cookie(names.session, names.secure));
    Ok(resp)
}
