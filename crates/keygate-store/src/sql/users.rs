//! Users and sessions.

use keygate_core::Authority;

use super::rows::{self, millis};
use super::{SqlStore, Tx, audit};
use crate::error::{StoreError, StoreResult};
use crate::model::*;

const INSERT_USER: &str = "INSERT INTO users (id, email, name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)";

const INSERT_SESSION: &str = "INSERT INTO sessions (id, user_id, digest, created_at, last_seen_at, expires_at, revoked_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Inserts an account row; shared with `create_account`.
pub(crate) async fn insert_account(tx: &mut Tx, a: &Account) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO accounts (id, name, url, domain, plan, trial_ends_at, created_at, deleted_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
    )
    .bind(&a.id)
    .bind(&a.name)
    .bind(a.url.as_deref())
    .bind(a.domain.as_deref())
    .bind(&a.plan)
    .bind(rows::opt_millis(a.trial_ends_at))
    .bind(millis(a.created_at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inserts a membership row; shared with `create_account` and `add_member`.
pub(crate) async fn insert_membership(
    tx: &mut Tx,
    account_id: &str,
    user_id: &str,
    authority: Authority,
    at: Time,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO memberships (account_id, user_id, authority, created_at) VALUES ($1, $2, $3, $4)")
        .bind(account_id)
        .bind(user_id)
        .bind(authority.as_str())
        .bind(millis(at))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn insert_session(tx: &mut Tx, s: &Session) -> StoreResult<()> {
    sqlx::query(INSERT_SESSION)
        .bind(&s.id)
        .bind(&s.user_id)
        .bind(&s.digest)
        .bind(millis(s.created_at))
        .bind(millis(s.last_seen_at))
        .bind(millis(s.expires_at))
        .bind(rows::opt_millis(s.revoked_at))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(crate) async fn register(s: &SqlStore, user: User, account: Account, audit: Vec<NewAudit>) -> StoreResult<()> {
    let mut tx = s.begin().await?;
    sqlx::query(INSERT_USER)
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.name)
        .bind(&user.password_hash)
        .bind(millis(user.created_at))
        .execute(&mut *tx)
        .await?;
    insert_account(&mut tx, &account).await?;
    insert_membership(&mut tx, &account.id, &user.id, Authority::Owner, account.created_at).await?;
    audit::append(&mut tx, s.dialect, audit).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn user_by_email(s: &SqlStore, email: &str) -> StoreResult<Option<User>> {
    sqlx::query("SELECT * FROM users WHERE lower(email) = lower($1)")
        .bind(email)
        .fetch_optional(s.reader())
        .await?
        .map(|r| rows::user(&r))
        .transpose()
}

pub(crate) async fn user_by_id(s: &SqlStore, user_id: &str) -> StoreResult<Option<User>> {
    sqlx::query("SELECT * FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(s.reader())
        .await?
        .map(|r| rows::user(&r))
        .transpose()
}

pub(crate) async fn update_user_name(
    s: &SqlStore,
    user_id: &str,
    name: &str,
    audit: Vec<NewAudit>,
) -> StoreResult<User> {
    let mut tx = s.begin().await?;
    let row = sqlx::query("UPDATE users SET name = $2 WHERE id = $1 RETURNING *")
        .bind(user_id)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    let user = rows::user(&row)?;
    audit::append(&mut tx, s.dialect, audit).await?;
    tx.commit().await?;
    Ok(user)
}

pub(crate) async fn change_password(
    s: &SqlStore,
    user_id: &str,
    password_hash: &str,
    new_session: Session,
    audit: Vec<NewAudit>,
) -> StoreResult<()> {
    let mut tx = s.begin().await?;
    let changed = sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(user_id)
        .bind(password_hash)
        .execute(&mut *tx)
        .await?;
    if changed.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    // Every session that was live before the change ends now; the new one is inserted after,
    // so it is not among them.
    sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
        .bind(user_id)
        .bind(millis(new_session.created_at))
        .execute(&mut *tx)
        .await?;
    insert_session(&mut tx, &new_session).await?;
    audit::append(&mut tx, s.dialect, audit).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn user_memberships(s: &SqlStore, user_id: &str) -> StoreResult<Vec<UserMembership>> {
    let found = sqlx::query(
        "SELECT m.account_id, a.name AS account_name, m.authority, m.created_at \
         FROM memberships m JOIN accounts a ON a.id = m.account_id AND a.deleted_at IS NULL \
         WHERE m.user_id = $1 ORDER BY m.created_at ASC, m.account_id ASC",
    )
    .bind(user_id)
    .fetch_all(s.reader())
    .await?;
    found.iter().map(rows::user_membership).collect()
}

pub(crate) async fn create_session(s: &SqlStore, session: Session, audit: Vec<NewAudit>) -> StoreResult<()> {
    let mut tx = s.begin().await?;
    insert_session(&mut tx, &session).await?;
    audit::append(&mut tx, s.dialect, audit).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn session_by_digest(s: &SqlStore, digest: &str) -> StoreResult<Option<SessionAuth>> {
    let row = sqlx::query(
        "SELECT s.*, u.id AS u_id, u.email AS u_email, u.name AS u_name, \
         u.password_hash AS u_password_hash, u.created_at AS u_created_at \
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.digest = $1",
    )
    .bind(digest)
    .fetch_optional(s.reader())
    .await?;
    row.map(|r| Ok(SessionAuth { session: rows::session(&r)?, user: rows::user_prefixed(&r)? })).transpose()
}

/// Moves `last_seen_at` forward only: touches from several nodes may arrive out of order.
pub(crate) async fn touch_session(s: &SqlStore, session_id: &str, at: Time) -> StoreResult<()> {
    sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2")
        .bind(session_id)
        .bind(millis(at))
        .execute(s.writer())
        .await?;
    Ok(())
}

/// Keeps the first revocation time when revoked twice.
pub(crate) async fn revoke_session(s: &SqlStore, session_id: &str, at: Time) -> StoreResult<()> {
    sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(session_id)
        .bind(millis(at))
        .execute(s.writer())
        .await?;
    Ok(())
}
