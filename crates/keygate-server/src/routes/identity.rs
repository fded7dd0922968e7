//! Identity (SPEC §4): register, login, logout, and the user.
//!
//! Security notes, as the handlers keep them:
//! - passwords live in `SecretString` from the moment the body is parsed, are hashed and
//!   verified on the blocking pool (argon2id), and appear in no log, error or audit entry;
//! - login answers `login_error` alike for an unknown email and a wrong password, including
//!   in time: an unknown email verifies against a dummy hash, and the audit write of a failed
//!   attempt happens after the answer;
//! - throttling is checked before anything else, so a throttled answer (429) is the same for
//!   every email, known or not, and whatever the password.

#[path = "identity_common.rs"]
pub mod common;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use keygate_core::id::{IdKind, new_id};
use keygate_core::validate::{Email, InputError, check_name, check_password, is_blocked_domain};
use keygate_core::{Authority, CredentialKind};
use keygate_store::{Account, Actor, ActorType, NewAudit, User, UserMembership};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::common::{ErrorBody, FieldErrors, new_session, parse_url};
use crate::auth::{Invalidation, Principal};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientIp, Json};
use crate::state::{AppState, audit};
use crate::views::{AccountView, UserView};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(get_user, patch_user))
}

/// Passwords longer than this are never hashed: the policy caps them at 256 characters
/// (at most 1024 bytes of UTF-8), so anything longer is wrong anyway.
const MAX_PASSWORD_BYTES: usize = 1024;

fn input_message(e: &InputError) -> String {
    e.to_string()
}

fn user_actor(user_id: &str) -> Actor {
    Actor { kind: ActorType::User, user_id: Some(user_id.to_owned()), key_id: None }
}

/// One audit entry per account the user belongs to (user-level events are recorded in each).
fn audit_in_each(
    memberships: &[UserMembership],
    actor: &Actor,
    action: &str,
    user_id: &str,
    ip: std::net::IpAddr,
    details: serde_json::Value,
) -> Vec<NewAudit> {
    memberships
        .iter()
        .map(|m| audit(&m.account_id, actor, action, ("user", user_id), ip, details.clone()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// POST /v1/register

#[derive(Deserialize, ToSchema)]
pub struct RegisterBody {
    /// Work email; free-webmail and disposable domains are refused.
    #[schema(example = "ada@acme.com")]
    pub email: String,
    /// At least `signup.min_password_chars` (default 12), at most 256 characters.
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
    /// The user's name; also the name of the default account.
    pub name: String,
    /// The company's website (optional).
    pub url: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RegisterResponse {
    pub user: UserView,
    /// A session token, shown this once.
    pub token: String,
    pub default_account_id: String,
    pub account: AccountView,
}

/// Sign up: creates the user, a default account (default plan, a trial) and a session.
#[utoipa::path(post, path = "/v1/register", tag = "identity", request_body = RegisterBody, responses(
    (status = 201, description = "registered; `token` is a session token shown once", body = RegisterResponse),
    (status = 400, description = "invalid_request (weak password, bad email, name or url; `details` lists fields)", body = ErrorBody),
    (status = 403, description = "email_format_register (free-webmail or disposable domain) or signup_disabled", body = ErrorBody),
    (status = 409, description = "email_taken, or domain_taken (ask an administrator for an invitation)", body = ErrorBody),
    (status = 413, description = "payload_too_large", body = ErrorBody),
))]
async fn register(State(state): State<AppState>, ClientIp(ip): ClientIp, Json(body): Json<RegisterBody>) -> ApiResult<Response> {
    let signup = &state.settings.signup;
    if !signup.enabled {
        return Err(ApiError::signup_disabled());
    }
    let mut errors = FieldErrors::default();
    let email = Email::parse(&body.email).map_err(|e| errors.add("email", input_message(&e))).ok();
    let name = check_name(&body.name).map_err(|e| errors.add("name", input_message(&e))).ok();
    if let Err(e) = check_password(body.password.expose_secret(), signup.min_password_chars) {
        errors.add("password", input_message(&e));
    }
    let url = match body.url.as_deref() {
        None => None,
        Some(raw) => parse_url(raw).map_err(|m| errors.add("url", m)).ok(),
    };
    errors.into_result()?;
    let (Some(email), Some(name)) = (email, name) else {
        return Err(ApiError::invalid_request("Invalid request."));
    };
    let domain = email.domain().to_owned();
    if signup.block_free_email && is_blocked_domain(&domain, &signup.extra_blocked_domains)
        || !signup.block_free_email && is_extra_blocked(&domain, &signup.extra_blocked_domains)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "email_format_register",
            "Sign-up needs a work email address; free-webmail and disposable domains are not accepted.",
        )
        .with_user_message(
            "Please sign up with your work email address (for example you@yourcompany.com). \
             Addresses from free-webmail or disposable-email providers cannot be used.",
        ));
    }
    // Answer a taken email before spending a password hash on it (the store re-checks).
    if state.store.user_by_email(email.as_str()).await?.is_some() {
        return Err(keygate_store::StoreError::Conflict("email").into());
    }
    let password_hash = state.passwords.hash(&body.password).await?;
    let now = Utc::now();
    let user = User {
        id: new_id(IdKind::User),
        email: email.as_str().to_owned(),
        name: name.clone(),
        password_hash,
        created_at: now,
    };
    let plan = signup.default_plan.clone();
    let account = Account {
        id: new_id(IdKind::Account),
        name: name.clone(),
        url,
        domain: Some(domain),
        trial_ends_at: state.plans.trial_end(&plan, now),
        plan,
        created_at: now,
    };
    let entry = audit(
        &account.id,
        &user_actor(&user.id),
        "user.registered",
        ("user", &user.id),
        ip,
        json!({ "email": user.email, "name": user.name, "account_name": account.name }),
    );
    state.store.register(user.clone(), account.clone(), vec![entry]).await?;
    let (token, session) = new_session(&state, &user.id, now);
    state.store.create_session(session, vec![]).await?;
    let memberships = vec![UserMembership {
        account_id: account.id.clone(),
        account_name: account.name.clone(),
        authority: Authority::Owner,
        created_at: now,
    }];
    let mut account_view = AccountView::new(&account, &state.plans);
    account_view.authority = Some(Authority::Owner);
    let out = RegisterResponse {
        user: UserView::new(&user, memberships),
        token: token.expose().to_owned(),
        default_account_id: account.id.clone(),
        account: account_view,
    };
    tracing::info!(user_id = %user.id, account_id = %account.id, "user registered");
    Ok((StatusCode::CREATED, axum::Json(out)).into_response())
}

/// With `block_free_email = false` the built-in lists are off but the operator's own still apply.
fn is_extra_blocked(domain: &str, extra: &[String]) -> bool {
    let d = domain.to_lowercase();
    extra.iter().map(|b| b.to_lowercase()).any(|b| d == b || d.ends_with(&format!(".{b}")))
}

// ---------------------------------------------------------------------------------------------
// POST /v1/login

#[derive(Deserialize, ToSchema)]
pub struct LoginBody {
    pub email: String,
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// A session token, shown this once.
    pub token: String,
    pub user: UserView,
    /// The user's oldest membership; `null` when the user belongs to no account any more.
    pub default_account_id: Option<String>,
}

/// Sign in with email and password; answers a session token.
#[utoipa::path(post, path = "/v1/login", tag = "identity", request_body = LoginBody, responses(
    (status = 200, description = "signed in", body = LoginResponse),
    (status = 400, description = "invalid_request (malformed body)", body = ErrorBody),
    (status = 401, description = "login_error: wrong email or password (the same answer for both)", body = ErrorBody),
    (status = 429, description = "rate_limited: too many failed attempts; `Retry-After` says when to retry", body = ErrorBody),
))]
async fn login(State(state): State<AppState>, ClientIp(ip): ClientIp, Json(body): Json<LoginBody>) -> ApiResult<Response> {
    // The throttle's key: the normalised email when it parses, the raw lower-cased text otherwise
    // (so made-up strings are counted too, and never touch storage).
    let parsed = Email::parse(&body.email).ok();
    let email_key = parsed
        .as_ref()
        .map(|e| e.as_str().to_owned())
        .unwrap_or_else(|| body.email.trim().chars().take(320).collect::<String>().to_lowercase());
    if let Err(wait) = state.throttle.check(&email_key, ip) {
        tracing::debug!("sign-in attempt throttled");
        return Err(ApiError::login_throttled(wait));
    }
    let user = match &parsed {
        Some(e) => state.store.user_by_email(e.as_str()).await?,
        None => None,
    };
    let phc = user.as_ref().map(|u| u.password_hash.as_str()).filter(|_| body.password.expose_secret().len() <= MAX_PASSWORD_BYTES);
    let ok = state.passwords.verify(&body.password, phc).await? && phc.is_some();
    let user = match user {
        Some(user) if ok => user,
        unknown_or_wrong => {
            state.throttle.failure(&email_key, ip);
            if let Some(user) = unknown_or_wrong {
                // After the answer: the extra writes must not make a known email slower to refuse.
                let store = std::sync::Arc::clone(&state.store);
                tokio::spawn(async move {
                    let result = async {
                        let memberships = store.user_memberships(&user.id).await?;
                        let actor = user_actor(&user.id);
                        let entries = audit_in_each(&memberships, &actor, "user.login_failed", &user.id, ip, json!({}));
                        store.append_audit(entries).await
                    }
                    .await;
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "could not record a failed sign-in in the audit log");
                    }
                });
            }
            tracing::debug!("sign-in refused");
            return Err(ApiError::login_error());
        }
    };
    state.throttle.success(&email_key, ip);
    let memberships = state.store.user_memberships(&user.id).await?;
    let now = Utc::now();
    let (token, session) = new_session(&state, &user.id, now);
    let entries = audit_in_each(&memberships, &user_actor(&user.id), "user.login", &user.id, ip, json!({ "session_id": session.id }));
    state.store.create_session(session, entries).await?;
    let default_account_id = memberships.first().map(|m| m.account_id.clone());
    let out = LoginResponse { token: token.expose().to_owned(), user: UserView::new(&user, memberships), default_account_id };
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
    let session = principal.session()?;
    state.store.revoke_session(&session.session.id, Utc::now()).await?;
    state.invalidate(Invalidation::User(session.user.id.clone())).await;
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
    match &principal {
        Principal::Session(s) => {
            let user = state.store.user_by_id(&s.user.id).await?.ok_or_else(ApiError::session_expired)?;
            let memberships = state.store.user_memberships(&user.id).await?;
            Ok(axum::Json(UserView::new(&user, memberships)))
        }
        Principal::Key(g) => {
            if principal.kind() == CredentialKind::OrgKey {
                return Err(ApiError::user_credential_required());
            }
            let caller = principal.in_account(&state, None).await?;
            caller.require_scope("user", "read")?;
            let user_id = caller.require_user()?;
            let user = state.store.user_by_id(user_id).await?.ok_or_else(ApiError::invalid_credentials)?;
            let memberships = state
                .store
                .user_memberships(&user.id)
                .await?
                .into_iter()
                .filter(|m| m.account_id == g.key.key.account_id)
                .collect();
            Ok(axum::Json(UserView::new(&user, memberships)))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PATCH /v1/user

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUserBody {
    pub name: Option<String>,
    /// Required with `new_password`.
    #[schema(value_type = Option<String>, format = Password)]
    pub current_password: Option<SecretString>,
    #[schema(value_type = Option<String>, format = Password)]
    pub new_password: Option<SecretString>,
}

#[derive(Serialize, ToSchema)]
pub struct PasswordChanged {
    /// A new session token (every other session of the user was revoked), shown this once.
    pub token: String,
    pub user: UserView,
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
    let user_id = session.user.id.clone();
    let mut errors = FieldErrors::default();
    let name = match body.name.as_deref() {
        None => None,
        Some(n) => check_name(n).map_err(|e| errors.add("name", input_message(&e))).ok(),
    };
    let password = match (&body.current_password, &body.new_password) {
        (None, None) => None,
        (Some(current), Some(new)) => {
            if let Err(e) = check_password(new.expose_secret(), state.settings.signup.min_password_chars) {
                errors.add("new_password", input_message(&e));
            }
            Some((current, new))
        }
        (None, Some(_)) => {
            errors.add("current_password", "is required to change the password");
            None
        }
        (Some(_), None) => {
            errors.add("new_password", "is required with current_password");
            None
        }
    };
    if body.name.is_none() && body.current_password.is_none() && body.new_password.is_none() {
        errors.add("body", "nothing to change: send name, or current_password and new_password");
    }
    errors.into_result()?;
    let user = state.store.user_by_id(&user_id).await?.ok_or_else(ApiError::session_expired)?;
    let memberships = state.store.user_memberships(&user_id).await?;
    let actor = user_actor(&user_id);

    // The password is checked before anything changes: a wrong one changes nothing at all.
    let new_hash = match password {
        None => None,
        Some((current, new)) => {
            // Guessing the current password through a stolen session is throttled like sign-in,
            // on a counter of its own: the sign-in counter exempts the user's usual address,
            // which is exactly where a stolen session would be used from. A right answer does
            // not clear it (idle counters are pruned), so alternating cannot reset it.
            let throttle_key = format!("password-change:{user_id}");
            if let Err(wait) = state.throttle.check(&throttle_key, ip) {
                return Err(ApiError::login_throttled(wait));
            }
            let ok = current.expose_secret().len() <= MAX_PASSWORD_BYTES
                && state.passwords.verify(current, Some(&user.password_hash)).await?;
            if !ok {
                state.throttle.failure(&throttle_key, ip);
                return Err(ApiError::login_error().with_user_message("The current password is not correct."));
            }
            Some(state.passwords.hash(new).await?)
        }
    };

    let mut user = user;
    if let Some(name) = name {
        let entries = audit_in_each(&memberships, &actor, "user.updated", &user_id, ip, json!({ "fields": ["name"] }));
        user = state.store.update_user_name(&user_id, &name, entries).await?;
        state.invalidate(Invalidation::User(user_id.clone())).await;
    }
    match new_hash {
        None => Ok(axum::Json(UserView::new(&user, memberships)).into_response()),
        Some(hash) => {
            let now = Utc::now();
            let (token, session) = new_session(&state, &user_id, now);
            let entries = audit_in_each(&memberships, &actor, "user.password_changed", &user_id, ip, json!({ "sessions_revoked": true }));
            state.store.change_password(&user_id, &hash, session, entries).await?;
            state.invalidate(Invalidation::User(user_id.clone())).await;
            tracing::info!(user_id = %user_id, "password changed; every other session revoked");
            let out = PasswordChanged { token: token.expose().to_owned(), user: UserView::new(&user, memberships) };
            Ok(axum::Json(out).into_response())
        }
    }
}
