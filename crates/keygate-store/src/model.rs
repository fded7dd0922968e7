//! The rows keygate keeps, as the rest of the program sees them. Times are UTC.

use std::fmt;

use chrono::{DateTime, Utc};
use keygate_core::{Authority, NamedRateLimit, Quota, RateLimit, Refill};
use serde::{Deserialize, Serialize};

pub type Time = DateTime<Utc>;

#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    /// argon2id PHC string. Not the password, but still nothing to print.
    pub password_hash: String,
    pub created_at: Time,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("name", &self.name)
            .field("password_hash", &"[redacted]")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub url: Option<String>,
    /// The company domain taken from the registering user's email or `url` (unique when set).
    pub domain: Option<String>,
    pub plan: String,
    pub trial_ends_at: Option<Time>,
    pub created_at: Time,
    /// The operator's overrides of the plan's limits (docs/api.md, "Plans and trials").
    pub overrides: LimitOverrides,
}

/// What the operator set for one account instead of its plan's limits; `None` = the plan's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<Vec<NamedRateLimit>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_keys: Option<u32>,
}

impl LimitOverrides {
    pub fn is_empty(&self) -> bool {
        *self == LimitOverrides::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub account_id: String,
    pub user_id: String,
    pub authority: Authority,
    pub created_at: Time,
}

/// A member as listed under an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub authority: Authority,
    pub created_at: Time,
}

/// One of a user's accounts, as listed under the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserMembership {
    pub account_id: String,
    pub account_name: String,
    pub authority: Authority,
    pub created_at: Time,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    /// SHA-256 of the token, hex.
    pub digest: String,
    pub created_at: Time,
    pub last_seen_at: Time,
    /// Absolute end of the session, fixed at creation.
    pub expires_at: Time,
    pub revoked_at: Option<Time>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub id: String,
    pub account_id: String,
    pub name: String,
    /// Scope strings, already validated by the caller.
    pub permissions: Vec<String>,
    pub created_at: Time,
    pub updated_at: Time,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyClass {
    User,
    Org,
}

impl KeyClass {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyClass::User => "user",
            KeyClass::Org => "org",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(KeyClass::User),
            "org" => Some(KeyClass::Org),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Inactive,
    Expired,
    Revoked,
}

impl KeyStatus {
    /// The rule of `ApiKey::status`, for holders of only these fields (the authenticator's
    /// cached keys).
    pub fn at(revoked: bool, staged: bool, starts_at: Option<Time>, expires_at: Option<Time>, now: Time) -> Self {
        if revoked {
            KeyStatus::Revoked
        } else if staged || starts_at.is_some_and(|s| s > now) {
            KeyStatus::Inactive
        } else if expires_at.is_some_and(|e| e <= now) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Inactive => "inactive",
            KeyStatus::Expired => "expired",
            KeyStatus::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(KeyStatus::Active),
            "inactive" => Some(KeyStatus::Inactive),
            "expired" => Some(KeyStatus::Expired),
            "revoked" => Some(KeyStatus::Revoked),
            _ => None,
        }
    }
}

/// An API key as stored: never the secret, only its digest.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: String,
    /// SHA-256 of the full key, hex.
    pub digest: String,
    pub key_part: String,
    pub class: KeyClass,
    pub name: String,
    pub account_id: String,
    /// The user a user key acts for; `None` for org keys.
    pub user_id: Option<String>,
    pub authority: Authority,
    pub scopes: Vec<String>,
    pub role_id: Option<String>,
    pub created_at: Time,
    /// Who minted it: a user id (`usr_…`), a key id (`key_…`) or `operator`.
    pub created_by: String,
    pub expires_at: Option<Time>,
    pub starts_at: Option<Time>,
    /// Created with an expiry in the past: held inactive until PATCHed (pre-staging).
    pub staged: bool,
    pub revoked_at: Option<Time>,
    pub last_used_at: Option<Time>,
    pub last_used_ip: Option<String>,
    /// Every request made with the key, refused ones too (docs/api.md, "Usage").
    pub request_count: i64,
    /// The granted ones (`VALID`).
    pub success_count: i64,
    pub usage_limit: Option<i64>,
    /// Units of `usage_limit` spent so far.
    pub usage_used: i64,
    /// How the credits come back, and the start of the period they last came back in.
    pub refill: Option<Refill>,
    pub refilled_at: Option<Time>,
    pub rate_limit: Option<RateLimit>,
    /// Named limits, each on top of `rate_limit`.
    pub rate_limits: Vec<NamedRateLimit>,
    pub ip_allowlist: Vec<String>,
    pub metadata: serde_json::Value,
    /// The successor's id once the key was rolled: a key is rolled at most once.
    pub rolled_to: Option<String>,
}

impl ApiKey {
    /// Status at `now`, by the rules of docs/api.md §4 API keys: revoked is final; a staged key or
    /// one whose `starts_at` lies ahead is inactive; past `expires_at` it is expired.
    pub fn status(&self, now: Time) -> KeyStatus {
        KeyStatus::at(self.revoked_at.is_some(), self.staged, self.starts_at, self.expires_at, now)
    }

    pub fn usage_remaining(&self) -> Option<i64> {
        self.usage_limit.map(|l| (l - self.usage_used).max(0))
    }

    /// The credits left at `now`, a refill due since the last spend included (the stored
    /// count is brought up to date by the next spend, `Store::consume_usage`).
    pub fn usage_remaining_at(&self, now: Time) -> Option<i64> {
        self.usage_limit.map(|l| Refill::remaining(self.refill, l, self.usage_used, self.refilled_at, now))
    }
}

/// What a new key is made of; the store assigns nothing but what is given.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub id: String,
    pub digest: String,
    pub key_part: String,
    pub class: KeyClass,
    pub name: String,
    pub account_id: String,
    pub user_id: Option<String>,
    pub authority: Authority,
    pub scopes: Vec<String>,
    pub role_id: Option<String>,
    pub created_at: Time,
    pub created_by: String,
    pub expires_at: Option<Time>,
    pub starts_at: Option<Time>,
    pub staged: bool,
    pub usage_limit: Option<i64>,
    pub refill: Option<Refill>,
    /// The start of the period the credits were last refilled in (for a new key, the current
    /// one: its first credits are `usage_limit`, the refill comes at the next boundary).
    pub refilled_at: Option<Time>,
    pub rate_limit: Option<RateLimit>,
    pub rate_limits: Vec<NamedRateLimit>,
    pub ip_allowlist: Vec<String>,
    pub metadata: serde_json::Value,
}

/// A partial update. `Some(None)` clears a nullable field; `None` leaves it alone.
#[derive(Debug, Clone, Default)]
pub struct KeyPatch {
    pub name: Option<String>,
    pub expires_at: Option<Option<Time>>,
    pub starts_at: Option<Option<Time>>,
    pub staged: Option<bool>,
    pub scopes: Option<Vec<String>>,
    pub role_id: Option<Option<String>>,
    pub rate_limit: Option<Option<RateLimit>>,
    pub rate_limits: Option<Vec<NamedRateLimit>>,
    pub ip_allowlist: Option<Vec<String>>,
    pub metadata: Option<serde_json::Value>,
    pub usage_limit: Option<Option<i64>>,
    /// A new refill (or none) starts counting periods from `refilled_at`.
    pub refill: Option<(Option<Refill>, Option<Time>)>,
}

/// Filters of `GET /v1/keys`.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    pub class: Option<KeyClass>,
    pub status: Option<KeyStatus>,
    /// Only this user's user keys (a member with authority `user`).
    pub user_id: Option<String>,
}

/// Everything the authenticator needs about a key, in one lookup.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyAuth {
    pub key: ApiKey,
    /// The key's data role permissions; `Some(vec![])` when the role was deleted (fails closed).
    pub role_permissions: Option<Vec<String>>,
    /// `None` when the account was deleted.
    pub account: Option<Account>,
    /// The user's current authority in the key's account; `None` when not a member (or org key).
    pub member_authority: Option<Authority>,
}

/// A session and its user, for the authenticator.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionAuth {
    pub session: Session,
    pub user: User,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorType {
    User,
    ApiKey,
    Operator,
    System,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "type")]
    pub kind: ActorType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// An audit entry to append. The store assigns id, seq, time and the chain hashes.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAudit {
    pub account_id: String,
    pub actor: Actor,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub ip: Option<String>,
    /// Never a secret: names, changed field names, authorities, ids.
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: String,
    pub seq: i64,
    pub at: Time,
    pub account_id: String,
    pub actor: Actor,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub ip: Option<String>,
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    /// Matches the actor's user id or key id.
    pub actor: Option<String>,
}

/// A page of a list, newest first. `next_cursor` is opaque to clients.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// 1..=100, checked by the caller.
    pub limit: u32,
    pub cursor: Option<String>,
}

impl AuditEntry {
    /// The hash this entry must carry if it follows `prev_hash` (docs/api.md §4 Audit log:
    /// `SHA-256(prev_hash || canonical(entry))`). The one place readers recompute it: verification
    /// and tests.
    pub fn expected_hash(&self, prev_hash: &str) -> Option<String> {
        let actor = serde_json::to_value(&self.actor).ok()?;
        let target = serde_json::json!({ "type": self.target_type, "id": self.target_id });
        Some(keygate_core::audit::entry_hash(
            prev_hash,
            &keygate_core::audit::ChainedFields {
                id: &self.id,
                seq: self.seq,
                at: self.at.timestamp_millis(),
                account_id: &self.account_id,
                actor: &actor,
                action: &self.action,
                target: &target,
                ip: self.ip.as_deref(),
                details: &self.details,
            },
        ))
    }
}

/// A run of failed sign-ins for one subject (an email's digest, or a client address), as the
/// login throttle counts them (docs/api.md §4 Identity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureRun {
    /// Consecutive failures.
    pub count: u32,
    /// The last of them.
    pub last_at: Time,
}

/// What the login throttle decides on, for one attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoginFailures {
    pub email: Option<FailureRun>,
    pub ip: Option<FailureRun>,
    /// This address has signed in to this email before.
    pub known_pair: bool,
}
