//! Identity (docs/api.md §4 Identity): register, login, logout, and the user. Register, login and
//! logout are `service::identity`'s operations (the dashboard's sign-up, sign-in and sign-out call
//! them too); reading and changing the user are `service::user`'s.
//!
//! Security notes, as the services keep them:
//! - passwords live in `SecretString` from the moment the body is parsed, are hashed and
//!   verified on the blocking pool (argon2id), and appear in no log, error or audit entry;
//! - login answers `login_error` alike for an unknown email and a wrong password, including
//!   in time: an unknown email verifies against a dummy hash, and the audit write of a failed
//!   attempt happens after the answer;
//! - throttling is checked before anything else, so a throttled answer (429) is the same for
//!   every email, known or not, and whatever the password.

#[path = "identity_common.rs"]
pub(crate) mod common;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keygate_core::{Authority, CredentialKind};
use keygate_store::UserMembership;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::common::ErrorBody;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientIp, Json};
use crate::service::identity as service;
use crate::service::user;
use crate::state::AppState;
use crate::views::{AccountView, UserView};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(get_user, patch_user))
}

// ---------------------------------------------------------------------------------------------
// POST /v1/register

#[derive(Deserialize, ToSchema)]
pub(crate) struct RegisterBody {
    /// Work email; free-webmail and disposable domains are refused. Compared after Unicode NFKC
    /// and lower-casing; invisible characters and mixed-script look-alikes are refused (400).
    #[schema(example = "ada@acme.com")]
    pub(crate) email: String,
    /// At least `signup.min_password_chars` (default 12), at most 256 characters.
    #[schema(value_type = String, format = Password)]
    pub(crate) password: SecretString,
    /// The user's name; also the name of the default account.
    pub(crate) name: String,
    /// The company's website (optional).
    pub(crate) url: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RegisterResponse {
    pub(crate) user: UserView,
    /// A session token, shown this once.
    pub(crate) token: String,
    pub(crate) default_account_id: String,
    pub(crate) account: AccountView,
}

/// Sign up: creates the user, a default account (default plan, a trial) and a session.
#[utoipa::path(post, path = "/v1/register", tag = "identity", request_body = RegisterBody, responses(
    (status = 201, description = "registered; `token` is a session token shown once", body = RegisterResponse),
    (status = 400, description = "invalid_request (weak password, bad email, name or url; `details` lists fields). An email with an invisible character or a mixed-script look-alike is a bad email", body = ErrorBody),
    (status = 403, description = "email_format_register (free-webmail or disposable domain) or signup_disabled", body = ErrorBody),
    (status = 409, description = "email_taken, or domain_taken (ask an administrator for an invitation)", body = ErrorBody),
    (status = 429, description = "rate_limited: this client address's sign-ups for the hour are spent (`signup.max_per_address_per_hour`); `Retry-After` says when to retry", body = ErrorBody),
    (status = 413, description = "payload_too_large", body = ErrorBody),
))]
async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<RegisterBody>,
) -> ApiResult<Response> {
    let input = service::RegisterInput { email: body.email, password: body.password, name: body.name, url: body.url };
    let r = service::register(&state.services, ip, input).await?;
    let now = r.user.created_at;
    let memberships = vec![UserMembership {
        account_id: r.account.id.clone(),
        account_name: r.account.name.clone(),
        authority: Authority::Owner,
        created_at: now,
    }];
    let mut account_view = AccountView::new(&r.account, &state.services.plans);
    account_view.authority = Some(Authority::Owner);
    let out = RegisterResponse {
        user: UserView::new(&r.user, memberships),
        token: r.token.expose().to_owned(),
        default_account_id: r.account.id.clone(),
        account: account_view,
    };
    Ok((StatusCode::CREATED, axum::Json(out)).into_response())
}

// ---------------------------------------------------------------------------------------------
// POST /v1/login

#[derive(Deserialize, ToSchema)]
pub(crate) struct LoginBody {
    pub(crate) email: String,
    #[schema(value_type = String, format = Password)]
    pub(crate) password: SecretString,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct LoginResponse {
    /// A session token, shown this once.
    pub(crate) token: String,
    pub(crate) user: UserView,
    /// The user's oldest membership; `null` when the user belongs to no account any more.
    pub(crate) default_account_id: Option<String>,
}

/// Sign in with email and password; answers a session token.
#[utoipa::path(post, path = "/v1/login", tag = "identity", request_body = LoginBody, responses(
    (status = 200, description = "signed in", body = LoginResponse),
    (status = 400, description = "invalid_request (malformed body)", body = ErrorBody),
    (status = 401, description = "login_error: wrong email or password (the same answer for both)", body = ErrorBody),
    (status = 429, description = "rate_limited: too many failed attempts; `Retry-After` says when to retry", body = ErrorBody),
))]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<LoginBody>,
) -> ApiResult<Response> {
    let signed_in = service::login(&state.services, ip, &body.email, &body.password).await?;
    let default_account_id = signed_in.memberships.first().map(|m| m.account_id.clone());
    let out = LoginResponse {
        token: signed_in.token.expose().to_owned(),
        user: UserView::new(&signed_in.user, signed_in.memberships),
        default_account_id,
    };
    Ok(axum::Json(out).into_response())
}

// ---------------------------------------------------------------------------------------------
// POST /v1/logout

/// Ends the session that makes this call; it is refused at once afterwards.
#[utoipa::path(post, path = "/v1/logout", tag = "identity", security(("bearer" = [])), responses(
    (status = 204, description = "the session is revoked"),
    (status = 401, description = "missing_credentials, invalid_credentials or session_expired", body = ErrorBody),
    (status = 403, description = "session_required: an API key cannot log out", body = ErrorBody),
))]
async fn logout(State(state): State<AppState>, principal: Principal) -> ApiResult<StatusCode> {
    service::logout(&state.services, principal.session()?).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// GET /v1/user

/// The calling user with their memberships. With a user key, only the key's account is listed
/// (a key is bound to one account and does not reveal the user's others).
#[utoipa::path(get, path = "/v1/user", tag = "identity", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, description = "the user", body = UserView),
    (status = 401, description = "missing or invalid credentials", body = ErrorBody),
    (status = 403, description = "user_credential_required (org key) or insufficient_scope (a key without `user:read`)", body = ErrorBody),
))]
async fn get_user(State(state): State<AppState>, principal: Principal) -> ApiResult<axum::Json<UserView>> {
    let (user, memberships) = match &principal {
        Principal::Session(s) => user::of_session(&state.services, &s.user.id).await?,
        Principal::Key(_) => {
            if principal.kind() == CredentialKind::OrgKey {
                return Err(ApiError::user_credential_required());
            }
            let caller = principal.in_account(&state, None).await?;
            user::of_key(&state.services, &caller).await?
        }
    };
    Ok(axum::Json(UserView::new(&user, memberships)))
}

// ---------------------------------------------------------------------------------------------
// PATCH /v1/user

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchUserBody {
    pub(crate) name: Option<String>,
    /// Required with `new_password`.
    #[schema(value_type = Option<String>, format = Password)]
    pub(crate) current_password: Option<SecretString>,
    #[schema(value_type = Option<String>, format = Password)]
    pub(crate) new_password: Option<SecretString>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct PasswordChanged {
    /// A new session token (every other session of the user was revoked), shown this once.
    pub(crate) token: String,
    pub(crate) user: UserView,
}

/// Changes the name, or the password (`current_password` + `new_password`). A password change
/// revokes every session of the user and answers a new token; API keys are unaffected.
#[utoipa::path(patch, path = "/v1/user", tag = "identity", security(("bearer" = [])), request_body = PatchUserBody, responses(
    (status = 200, description = "name changed: the user; password changed: `{token, user}`", body = PasswordChanged),
    (status = 400, description = "invalid_request (nothing to change, weak new password, missing current_password)", body = ErrorBody),
    (status = 401, description = "login_error: current_password is wrong (the session stays valid)", body = ErrorBody),
    (status = 403, description = "session_required: only a session token may change the user", body = ErrorBody),
    (status = 429, description = "rate_limited: too many wrong current passwords", body = ErrorBody),
))]
async fn patch_user(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    principal: Principal,
    Json(body): Json<PatchUserBody>,
) -> ApiResult<Response> {
    let session = principal.session()?;
    let patch =
        user::UserPatch { name: body.name, current_password: body.current_password, new_password: body.new_password };
    let changed = user::update(&state.services, &session.user.id, ip, patch).await?;
    let view = UserView::new(&changed.user, changed.memberships);
    match changed.token {
        None => Ok(axum::Json(view).into_response()),
        Some(token) => Ok(axum::Json(PasswordChanged { token: token.expose().to_owned(), user: view }).into_response()),
    }
}
