//! The one place where database errors get their meaning.
//!
//! - A unique violation becomes `Conflict(name)` when it is one of the constraints the contract
//!   names (matched by index/constraint name on PostgreSQL, by the index name or `table.column`
//!   list in SQLite's message); any other unique violation is a bug → `Other`.
//! - Anything that says "the database is not there, refuses keygate or is not answering" (pool
//!   timeout, closed pool, I/O, TLS, a broken protocol stream, the SQLSTATEs of
//!   [`pg_unavailable`], SQLite busy/locked/I/O codes) becomes `Unavailable`, which callers
//!   answer with 503 and fail closed.
//! - Everything else is `Other`.
//!
//! Messages carried in `Other`/`Unavailable` are the driver's primary message only: they name
//! constraints and columns, never row values, so nothing secret reaches a log.

use sqlx::error::ErrorKind;
use sqlx::migrate::MigrateError;

use crate::error::{Conflict, StoreError};

/// Unique constraints that mean something to callers. Each entry: the name the store answers,
/// then the needles that identify it (PostgreSQL constraint/index name; SQLite reports an
/// expression index by name and a column index as `table.column, …`).
const NAMED_CONFLICTS: &[(Conflict, &[&str])] = &[
    (Conflict::Email, &["users_email_key"]),
    (Conflict::Domain, &["accounts_domain_key"]),
    (Conflict::Member, &["memberships_pkey", "memberships.account_id, memberships.user_id"]),
    (Conflict::RoleName, &["roles_name_key", "roles.account_id, roles.name"]),
    (Conflict::KeyPart, &["api_keys_key_part_key", "api_keys.key_part"]),
];

/// PostgreSQL SQLSTATEs that mean the server cannot serve keygate right now, whatever the
/// statement: it is unreachable or refuses the connection, is shutting down, out of
/// resources, read-only, or gave up on the statement. By class: 08 (connection exception),
/// 28 (the server refuses the login: pg_hba, a disabled role), 53 (insufficient resources:
/// too many connections, disk full, out of memory), 57 (operator intervention: shutdown,
/// cannot connect now, `statement_timeout`), 58 (system error: I/O). And singly: 3D000 (the
/// database is gone), 55000 (it does not accept connections now; keygate's own statements
/// raise it for nothing else), 55P03 (a lock not obtained in time), 25006 (a read-only
/// server: a standby after a failover).
fn pg_unavailable(code: &str) -> bool {
    ["08", "28", "53", "57", "58"].iter().any(|class| code.starts_with(class))
        || matches!(code, "3D000" | "55000" | "55P03" | "25006")
}

/// SQLite primary result codes (the low byte of the extended code) that mean the file cannot
/// be used right now: BUSY (5), LOCKED (6), IOERR (10), FULL (13), CANTOPEN (14).
fn sqlite_unavailable(code: &str) -> bool {
    code.parse::<i64>().is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 13 | 14))
}

fn conflict_name(constraint: Option<&str>, message: &str) -> Option<Conflict> {
    NAMED_CONFLICTS.iter().find_map(|(name, needles)| {
        let hit = needles.iter().any(|n| constraint.is_some_and(|c| c == *n) || message.contains(n));
        hit.then_some(*name)
    })
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Database(db) => {
                if db.kind() == ErrorKind::UniqueViolation
                    && let Some(name) = conflict_name(db.constraint(), db.message())
                {
                    return StoreError::Conflict(name);
                }
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                // SQLSTATEs are five characters; SQLite's (extended) result codes are shorter.
                let unavailable = if code.len() == 5 { pg_unavailable(&code) } else { sqlite_unavailable(&code) };
                if unavailable {
                    StoreError::Unavailable(db.message().to_owned())
                } else {
                    StoreError::Other(format!("database error {code}: {}", db.message()))
                }
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            // The connection says something the driver cannot read: a broken stream.
            | sqlx::Error::Protocol(_) => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Migrate(m) => StoreError::from(*m),
            other => StoreError::Other(other.to_string()),
        }
    }
}

impl From<MigrateError> for StoreError {
    fn from(e: MigrateError) -> Self {
        match e {
            MigrateError::Execute(inner) | MigrateError::ExecuteMigration(inner, _) => StoreError::from(inner),
            other => StoreError::Other(format!("migration: {other}")),
        }
    }
}

/// JSON that keygate wrote itself failed to parse or serialize: corrupt data or a bug.
impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Other(format!("json: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_conflicts_match_both_backends() {
        assert_eq!(conflict_name(Some("users_email_key"), "duplicate key"), Some(Conflict::Email));
        assert_eq!(conflict_name(None, "UNIQUE constraint failed: index 'users_email_key'"), Some(Conflict::Email));
        assert_eq!(
            conflict_name(None, "UNIQUE constraint failed: memberships.account_id, memberships.user_id"),
            Some(Conflict::Member)
        );
        assert_eq!(conflict_name(None, "UNIQUE constraint failed: api_keys.digest"), None);
    }

    #[test]
    fn unavailable_codes() {
        assert!(pg_unavailable("08006"));
        assert!(pg_unavailable("57P01"));
        assert!(pg_unavailable("55000")); // database "x" is not currently accepting connections
        assert!(pg_unavailable("28000")); // pg_hba.conf rejects the connection
        assert!(pg_unavailable("57014")); // statement_timeout
        assert!(pg_unavailable("25006")); // a standby after failover
        assert!(!pg_unavailable("23505"));
        assert!(!pg_unavailable("22021")); // invalid byte sequence: the request's fault
        assert!(!pg_unavailable("42P01"));
        assert!(sqlite_unavailable("5"));
        assert!(sqlite_unavailable("517")); // SQLITE_BUSY_SNAPSHOT
        assert!(!sqlite_unavailable("2067")); // SQLITE_CONSTRAINT_UNIQUE
    }
}
