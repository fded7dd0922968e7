//! Sign-up, sign-in and sign-out as domain operations, shared by `POST /v1/register`,
//! `/v1/login`, `/v1/logout`, the dashboard's forms and `keygate admin users create`: one login throttle, one timing-safe
//! password check, one session format (a dashboard cookie holds an ordinary `kgs_` token).
//!
//! Security notes:
//! - passwords stay in `SecretString`, are hashed and verified on the blocking pool
//!   (argon2id), and appear in no log, error or audit entry;
//! - sign-in answers `login_error` alike for an unknown email and a wrong password, including
//!   in time: an unknown email verifies against a dummy hash, and the audit write of a failed
//!   attempt happens after the answer;
//! - throttling is checked before anything else, so a throttled answer (429) is the same for
//!   every email, known or not, and whatever the password.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use keygate_core::id::{IdKind, new_id};
use keygate_core::validate::{Email, check_name, check_password, is_blocked_domain};
use keygate_core::{CredentialKind, Secret};
use keygate_store::{Account, Actor, ActorType, NewAudit, Session, SessionAuth, User, UserMembership};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::auth::Invalidation;
use crate::error::{ApiError, ApiResult};
use crate::service::input::{FieldErrors, parse_url};
use crate::service::{Services, audit};

/// Passwords longer than this are never hashed: the policy caps them at 256 characters
/// (at most 1024 bytes of UTF-8), so anything longer is wrong anyway.
pub(crate) const MAX_PASSWORD_BYTES: usize = 1024;

/// The longest text counted as an email by the throttle: an address is at most 320 octets,
/// and a megabyte of garbage must not become a megabyte-long map key.
const MAX_EMAIL_KEY_CHARS: usize = 320;

#[derive(Debug)]
pub struct RegisterInput {
    pub email: String,
    pub password: SecretString,
    pub name: String,
    pub url: Option<String>,
}

/// A new user, their default account (they own it) and a session token, shown once.
#[derive(Debug)]
pub(crate) struct Registered {
    pub(crate) user: User,
    pub(crate) account: Account,
    pub(crate) token: Secret,
}

/// A signed-in user with a new session token, shown once.
#[derive(Debug)]
pub(crate) struct SignedIn {
    pub(crate) token: Secret,
    pub(crate) user: User,
    /// Oldest membership first.
    pub(crate) memberships: Vec<UserMembership>,
}

pub(crate) fn user_actor(user_id: &str) -> Actor {
    Actor { kind: ActorType::User, user_id: Some(user_id.to_owned()), key_id: None }
}

/// One audit entry per account the user belongs to (user-level events are recorded in each).
pub(crate) fn audit_in_each(
    memberships: &[UserMembership],
    actor: &Actor,
    action: &str,
    user_id: &str,
    ip: IpAddr,
    details: serde_json::Value,
) -> Vec<NewAudit> {
    memberships.iter().map(|m| audit(&m.account_id, actor, action, ("user", user_id), ip, details.clone())).collect()
}

/// Creates the user, a default account (default plan, a trial) with them as owner, and a session.
pub(crate) async fn register(svc: &Services, ip: IpAddr, input: RegisterInput) -> ApiResult<Registered> {
    let signup = &svc.signup;
    if !signup.enabled {
        return Err(ApiError::signup_disabled());
    }
    let (email, name, url) = check_new_user(svc, &input)?;
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
    ensure_email_free(svc, &email).await?;
    // Each sign-up costs a hash and an account: bounded per address, counted when it is tried.
    if let Some(refused) = svc.signups.take(ip) {
        tracing::info!(%ip, "sign-up allowance of this address spent");
        return Err(ApiError::rate_limited(refused));
    }
    let fresh = NewUser { email, name, url, domain: Some(domain), password: &input.password };
    let (user, account) = create_user(svc, fresh, user_actor, Some(ip)).await?;
    let (token, session) = new_session(svc, &user.id, user.created_at);
    svc.store.create_session(session, vec![]).await?;
    tracing::info!(user_id = %user.id, account_id = %account.id, "user registered");
    Ok(Registered { user, account, token })
}

/// The operator's sign-up (`keygate admin users create`): the same validation, the same user
/// and owned default account and the same audit entry as `register` (actor `operator`), but
/// past the public door's gates: sign-up may be off, any email domain is the operator's call,
/// and a shell has no client address to count. No session; the account claims no company
/// domain, so the operator may create several users of one company.
pub async fn create_by_operator(svc: &Services, input: RegisterInput) -> ApiResult<(User, Account)> {
    let (email, name, url) = check_new_user(svc, &input)?;
    ensure_email_free(svc, &email).await?;
    let fresh = NewUser { email, name, url, domain: None, password: &input.password };
    let (user, account) = create_user(svc, fresh, |_| operator_actor(), None).await?;
    tracing::info!(user_id = %user.id, account_id = %account.id, "user created by the operator");
    Ok((user, account))
}

pub(crate) fn operator_actor() -> Actor {
    Actor { kind: ActorType::Operator, user_id: None, key_id: None }
}

/// Email, name, password policy and url, every problem listed at once (`details`).
fn check_new_user(svc: &Services, input: &RegisterInput) -> ApiResult<(Email, String, Option<String>)> {
    let mut errors = FieldErrors::default();
    let email = Email::parse(&input.email).map_err(|e| errors.add("email", e.to_string())).ok();
    let name = check_name(&input.name).map_err(|e| errors.add("name", e.to_string())).ok();
    if let Err(e) = check_password(input.password.expose_secret(), svc.signup.min_password_chars) {
        errors.add("password", e.to_string());
    }
    let url = match input.url.as_deref() {
        None => None,
        Some(raw) => parse_url(raw).map_err(|m| errors.add("url", m)).ok(),
    };
    errors.into_result()?;
    match (email, name) {
        (Some(email), Some(name)) => Ok((email, name, url)),
        _ => Err(ApiError::invalid_request("Invalid request.")),
    }
}

/// Answers a taken email before a password hash is spent on it (the store re-checks).
async fn ensure_email_free(svc: &Services, email: &Email) -> ApiResult<()> {
    if svc.store.user_by_email(email.as_str()).await?.is_some() {
        return Err(keygate_store::StoreError::Conflict(keygate_store::Conflict::Email).into());
    }
    Ok(())
}

/// A user about to be created, validated.
struct NewUser<'a> {
    email: Email,
    name: String,
    url: Option<String>,
    /// The company domain the default account claims (sign-up only).
    domain: Option<String>,
    password: &'a SecretString,
}

/// Hashes the password, then writes the user, their default account (owner: them) and the
/// `user.registered` entry in one transaction. `actor` names who did it, given the new id.
async fn create_user(
    svc: &Services,
    fresh: NewUser<'_>,
    actor: impl FnOnce(&str) -> Actor,
    ip: Option<IpAddr>,
) -> ApiResult<(User, Account)> {
    let password_hash = svc.passwords.hash(fresh.password).await?;
    let now = Utc::now();
    let user = User {
        id: new_id(IdKind::User),
        email: fresh.email.as_str().to_owned(),
        name: fresh.name.clone(),
        password_hash,
        created_at: now,
    };
    let account = svc.new_account(fresh.name, fresh.url, fresh.domain, now);
    let entry = audit(
        &account.id,
        &actor(&user.id),
        "user.registered",
        ("user", &user.id),
        ip,
        json!({ "email": user.email, "name": user.name, "account_name": account.name }),
    );
    svc.store.register(user.clone(), account.clone(), vec![entry]).await?;
    Ok((user, account))
}

/// A new session for `user_id`: the token to show once, and the row to store (digest only).
pub(crate) fn new_session(svc: &Services, user_id: &str, now: DateTime<Utc>) -> (Secret, Session) {
    let generated = svc.format.generate(CredentialKind::Session);
    let hours = i64::try_from(svc.sessions.absolute_timeout_hours).unwrap_or(i64::MAX / 3_600_000);
    let lifetime = chrono::Duration::try_hours(hours).unwrap_or(chrono::Duration::days(3650));
    let session = Session {
        id: new_id(IdKind::Session),
        user_id: user_id.to_owned(),
        digest: generated.digest.to_hex(),
        created_at: now,
        last_seen_at: now,
        expires_at: now.checked_add_signed(lifetime).unwrap_or(DateTime::<Utc>::MAX_UTC),
        revoked_at: None,
    };
    (generated.secret, session)
}

/// With `block_free_email = false` the built-in lists are off but the operator's own still apply.
fn is_extra_blocked(domain: &str, extra: &[String]) -> bool {
    let d = domain.to_lowercase();
    extra.iter().map(|b| b.to_lowercase()).any(|b| d == b || d.ends_with(&format!(".{b}")))
}

/// Email and password → a session. Throttled per email and per client address, shared by
/// every way in (API and dashboard), so a second door is not a second set of guesses.
pub(crate) async fn login(svc: &Services, ip: IpAddr, email: &str, password: &SecretString) -> ApiResult<SignedIn> {
    // The throttle's key: the normalised email when it parses, the raw lower-cased text otherwise
    // (so made-up strings are counted too, without a user lookup).
    let parsed = Email::parse(email).ok();
    let email_key = parsed
        .as_ref()
        .map(|e| e.as_str().to_owned())
        .unwrap_or_else(|| email.trim().chars().take(MAX_EMAIL_KEY_CHARS).collect::<String>().to_lowercase());
    if let Err(refused) = svc.throttle.check(&email_key, ip).await {
        tracing::debug!("sign-in attempt throttled");
        return Err(refused);
    }
    let user = match &parsed {
        Some(e) => svc.store.user_by_email(e.as_str()).await?,
        None => None,
    };
    let phc = user
        .as_ref()
        .map(|u| u.password_hash.as_str())
        .filter(|_| password.expose_secret().len() <= MAX_PASSWORD_BYTES);
    let ok = svc.passwords.verify(password, phc).await? && phc.is_some();
    let user = match user {
        Some(user) if ok => user,
        unknown_or_wrong => {
            svc.throttle.failure(&email_key, ip).await?;
            if let Some(user) = unknown_or_wrong {
                record_failed_login(svc, user, ip);
            }
            tracing::debug!("sign-in refused");
            return Err(ApiError::login_error());
        }
    };
    svc.throttle.success(&email_key, ip).await?;
    let memberships = svc.store.user_memberships(&user.id).await?;
    let now = Utc::now();
    let (token, session) = new_session(svc, &user.id, now);
    let entries = audit_in_each(
        &memberships,
        &user_actor(&user.id),
        "user.login",
        &user.id,
        ip,
        json!({ "session_id": session.id }),
    );
    svc.store.create_session(session, entries).await?;
    Ok(SignedIn { token, user, memberships })
}

/// After the answer: the extra writes must not make a known email slower to refuse.
fn record_failed_login(svc: &Services, user: User, ip: IpAddr) {
    let store = Arc::clone(&svc.store);
    tokio::spawn(async move {
        let result = async {
            let memberships = store.user_memberships(&user.id).await?;
            let actor = user_actor(&user.id);
            let entries = audit_in_each(&memberships, &actor, "user.login_failed", &user.id, ip, json!({}));
            store.append_audit(entries).await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(request_id = %crate::request_id::current(), error = %e, "could not record a failed sign-in in the audit log");
        }
    });
}

/// Ends one session; it is refused at once afterwards, on every node.
pub(crate) async fn logout(svc: &Services, session: &SessionAuth) -> ApiResult<()> {
    svc.store.revoke_session(&session.session.id, Utc::now()).await?;
    svc.invalidate(Invalidation::User(session.user.id.clone())).await;
    Ok(())
}
