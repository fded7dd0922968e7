use keygate_core::authority::MemberRuleViolation;
use thiserror::Error;

/// Storage failures, given meaning at the boundary (named constraints become domain errors).
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness or state conflict (which one: `Conflict`).
    #[error("conflict: {0}")]
    Conflict(Conflict),
    /// A membership rule refused the change (checked inside the transaction).
    #[error("membership rule: {0:?}")]
    Rule(MemberRuleViolation),
    /// The account's plan allows no more live keys.
    #[error("key limit reached")]
    KeyLimitReached,
    /// The database cannot be reached or answered with an I/O failure: callers fail closed (503).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else (a bug or corrupt data); logged, answered as an opaque 500.
    #[error("storage error: {0}")]
    Other(String),
}

/// The conflicts callers tell apart: each named unique constraint, and the key states that
/// refuse a change. Callers match on these (the server maps each to a contract code), so a new
/// one is a compile error wherever it needs a meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// A user with this email exists.
    Email,
    /// An account already claims this company domain.
    Domain,
    /// The user is already a member of the account.
    Member,
    /// The account has a role of this name.
    RoleName,
    /// A key with this `key_part` exists (a generated collision).
    KeyPart,
    /// The key is revoked: it cannot be changed or rolled.
    KeyRevoked,
    /// The key already has a successor: it is rolled once.
    KeyRolled,
}

impl Conflict {
    /// The conflict's name in logs and messages (the constraint's meaning, snake_case).
    pub fn as_str(self) -> &'static str {
        match self {
            Conflict::Email => "email",
            Conflict::Domain => "domain",
            Conflict::Member => "member",
            Conflict::RoleName => "role_name",
            Conflict::KeyPart => "key_part",
            Conflict::KeyRevoked => "key_revoked",
            Conflict::KeyRolled => "key_rolled",
        }
    }
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
