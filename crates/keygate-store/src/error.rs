use keygate_core::authority::MemberRuleViolation;
use thiserror::Error;

/// Storage failures, given meaning at the boundary (named constraints become domain errors).
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness or state conflict, named: `email`, `domain`, `member`, `role_name`,
    /// `key_revoked`, `key_rolled`, `key_part`.
    #[error("conflict: {0}")]
    Conflict(&'static str),
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

pub type StoreResult<T> = Result<T, StoreError>;
