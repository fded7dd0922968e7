//! Who is calling the management API, and as whom they act within an account.
//!
//! `Principal` is the authenticated credential (an extractor: 401 otherwise). `Caller` is the
//! principal resolved inside one account: session tokens name the account (`account_id`),
//! keys carry theirs, and an account the caller does not belong to answers 404.

use std::sync::Arc;

use axum::http::HeaderMap;
use keygate_core::{Authority, CredentialKind, Permissions, Scope};
use keygate_store::{Account, Actor, ActorType, SessionAuth};

use super::checks::NO_REQUIREMENTS;
use super::verdict::{Accept, AuthContext, Authenticated, Granted};
use crate::error::ApiError;

#[derive(Debug, Clone)]
pub enum Principal {
    Session(Arc<SessionAuth>),
    Key(Granted),
}

impl Principal {
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Principal::Session(s) => Some(&s.user.id),
            Principal::Key(g) => g.key.key.user_id.as_deref(),
        }
    }

    pub fn kind(&self) -> CredentialKind {
        match self {
            Principal::Session(_) => CredentialKind::Session,
            Principal::Key(g) if g.key.key.class == keygate_store::KeyClass::Org => CredentialKind::OrgKey,
            Principal::Key(_) => CredentialKind::UserKey,
        }
    }

    pub fn actor(&self) -> Actor {
        match self {
            Principal::Session(s) => Actor { kind: ActorType::User, user_id: Some(s.user.id.clone()), key_id: None },
            Principal::Key(g) => Actor {
                kind: ActorType::ApiKey,
                user_id: g.key.key.user_id.clone(),
                key_id: Some(g.key.key.id.clone()),
            },
        }
    }

    pub fn session(&self) -> Result<&Arc<SessionAuth>, ApiError> {
        match self {
            Principal::Session(s) => Ok(s),
            Principal::Key(_) => Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "session_required",
                "This call needs a session token (sign in), not an API key.",
            )),
        }
    }

    /// The caller acting in an account. For a session, `account_id` is required and the user
    /// must be a member; for a key, `account_id` may only repeat the key's own account.
    pub async fn in_account(
        &self,
        state: &impl HasAuthenticator,
        account_id: Option<&str>,
    ) -> Result<Caller, ApiError> {
        match self {
            Principal::Session(s) => {
                let account_id = account_id.ok_or_else(ApiError::account_id_required)?;
                let found =
                    state.authenticator().membership(account_id, &s.user.id).await?.ok_or_else(ApiError::not_found)?;
                let (account, membership) = &*found;
                Ok(Caller {
                    account: account.clone(),
                    user_id: Some(s.user.id.clone()),
                    authority: membership.authority,
                    permissions: Permissions::full_access(),
                    kind: CredentialKind::Session,
                    key_id: None,
                    actor: self.actor(),
                })
            }
            Principal::Key(g) => {
                let k = &g.key;
                if account_id.is_some_and(|a| a != k.key.account_id) {
                    return Err(ApiError::not_found());
                }
                let account = k.account.as_deref().cloned().ok_or_else(ApiError::not_found)?;
                Ok(Caller {
                    account,
                    user_id: k.key.user_id.clone(),
                    authority: k.effective_authority(),
                    permissions: k.permissions.clone(),
                    kind: self.kind(),
                    key_id: Some(k.key.id.clone()),
                    actor: self.actor(),
                })
            }
        }
    }
}

/// What the management extractor needs of the application: its authenticator. The HTTP
/// state implements it, so this module does not depend on the layers above it.
pub trait HasAuthenticator {
    fn authenticator(&self) -> &super::Authenticator;
}

pub async fn authenticate(
    headers: &HeaderMap,
    ip: std::net::IpAddr,
    state: &impl HasAuthenticator,
) -> Result<Principal, ApiError> {
    let credential = super::headers::credential(headers)?;
    let ctx = AuthContext { ip, requirements: &NO_REQUIREMENTS, cost: 1, extra_limit: None, report_limits: false };
    match state.authenticator().authenticate(credential, Accept::KeysAndSessions, &ctx).await? {
        Authenticated::Key(verdict) => verdict.admit().map(Principal::Key),
        Authenticated::Session(session) => Ok(Principal::Session(session)),
        Authenticated::Unreadable => Err(ApiError::invalid_credentials()),
    }
}

/// The principal inside one account, with the power it has there.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account: Account,
    pub user_id: Option<String>,
    /// Effective authority (SPEC §1): a key's, capped by its user's current one.
    pub authority: Authority,
    pub permissions: Permissions,
    pub kind: CredentialKind,
    pub key_id: Option<String>,
    pub actor: Actor,
}

impl Caller {
    /// Management resources are permissions too: a key needs `<resource>:read` to look and
    /// `<resource>:write` to change (a `*:read` key is read-only everywhere).
    pub fn require_scope(&self, resource: &str, action: &str) -> Result<(), ApiError> {
        let wanted = Scope::required(resource, action);
        if self.permissions.allows(&wanted) { Ok(()) } else { Err(ApiError::insufficient_scope(&wanted.to_string())) }
    }

    pub fn require_authority(&self, at_least: Authority) -> Result<(), ApiError> {
        if self.authority >= at_least { Ok(()) } else { Err(ApiError::insufficient_authority()) }
    }

    pub fn require_user(&self) -> Result<&str, ApiError> {
        self.user_id.as_deref().ok_or_else(ApiError::user_credential_required)
    }

    pub fn is_org_key(&self) -> bool {
        self.kind == CredentialKind::OrgKey
    }
}
