//! Accounts and their data roles. A deleted account (`deleted_at` set) is invisible here: every
//! read and every change filters on `deleted_at IS NULL`.

use super::rows::{self, millis};
use super::users::{insert_account, insert_membership};
use super::{SqlStore, audit, fetch_limit, lock_live_account, page_of};
use crate::error::{StoreError, StoreResult};
use crate::model::*;
use keygate_core::Authority;

pub(crate) async fn create_account(
    s: &SqlStore,
    account: Account,
    owner_user_id: &str,
    audit: Vec<NewAudit>,
) -> StoreResult<()> {
    let mut tx = s.begin().await?;
    insert_account(&mut tx, &account).await?;
    insert_membership(&mut tx, &account.id, owner_user_id, Authority::Owner, account.created_at).await?;
    audit::append(&mut tx, s.dialect, audit).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn account_by_id(s: &SqlStore, account_id: &str) -> StoreResult<Option<Account>> {
    sqlx::query("SELECT * FROM accounts WHERE id = $1 AND deleted_at IS NULL")
        .bind(account_id)
        .fetch_optional(s.reader())
        .await?
        .map(|r| rows::account(&r))
        .transpose()
}

pub(crate) async fn update_account(
    s: &SqlStore,
    account_id: &str,
    name: Option<&str>,
    url: Option<Option<&str>>,
    audit: Vec<NewAudit>,
) -> StoreResult<Account> {
    let mut tx = s.begin().await?;
    // `$3` says whether the url changes at all; `$4` is the new value (NULL clears it).
    let row = sqlx::query(
        "UPDATE accounts SET name = COALESCE($2, name), url = CASE WHEN $3 = 1 THEN $4 ELSE url END \
         WHERE id = $1 AND deleted_at IS NULL RETURNING *",
    )
    .bind(account_id)
    .bind(name)
    .bind(i64::from(url.is_some()))
    .bind(url.flatten())
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    let account = rows::account(&row)?;
    audit::append(&mut tx, s.dialect, audit).await?;
    tx.commit().await?;
    Ok(account)
}

/// Soft delete. The domain is released (the unique index only covers live accounts); keys,
/// members and roles stay in place but no lookup finds them any more.
pub(crate) async fn delete_account(s: &SqlStore, account_id: &str, at: Time, audit: Vec<NewAudit>) -> StoreResult<()> {
    let mut tx = s.begin().await?;
    let done = sqlx::query("UPDATE accounts SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL")
        .bind(account_id)
        .bind(millis(at))
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    audit::append(&mut tx, s.dialect, audit).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn set_plan(s: &SqlStore, account_id: &str, plan: &str, audit: Vec<NewAudit>) -> StoreResult<Account> {
    let mut tx = s.begin().await?;
    let row = sqlx::query("UPDATE accounts SET plan = $2 WHERE id = $1 AND deleted_at IS NULL RETURNING *")
        .bind(account_id)
        .bind(plan)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    let account = rows::account(&row)?;
    audit::append(&mut tx, s.dialect, audit).await?;
    tx.commit().await?;
    Ok(account)
}

/// The plan and the limit overrides in one write: each `None` leaves that column as it is;
/// empty overrides are stored as NULL.
pub(crate) async fn set_limits(
    s: &SqlStore,
    account_id: &str,
    plan: Option<&str>,
    overrides: Option<&LimitOverrides>,
    audit: Vec<NewAudit>,
) -> StoreResult<Account> {
    let overrides_json = match overrides {
        Some(o) if !o.is_empty() => Some(rows::to_json(o)?),
        _ => None,
    };
    let mut tx = s.begin().await?;
    let row = sqlx::query(
        "UPDATE accounts SET plan = COALESCE($2, plan), \
         limit_overrides = CASE WHEN $3 = 1 THEN $4 ELSE limit_overrides END \
         WHERE id = $1 AND deleted_at IS NULL RETURNING *",
    )
    .bind(account_id)
    .bind(plan)
    .bind(i64::from(overrides.is_some()))
    .bind(overrides_json)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    let account = rows::account(&row)?;
    audit::append(&mut tx, s.dialect, audit).await?;
    tx.commit().await?;
    Ok(account)
}

/// Newest first: ids sort by creation, so `id < cursor` pages without gaps or repeats.
pub(crate) async fn list_accounts(s: &SqlStore, page: &PageRequest) -> StoreResult<Page<Account>> {
    let found = sqlx::query(
        "SELECT * FROM accounts WHERE deleted_at IS NULL AND ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
    )
    .bind(page.cursor.as_deref())
    .bind(fetch_limit(page.limit))
    .fetch_all(s.reader())
    .await?;
    let items = found.iter().map(rows::account).collect::<StoreResult<Vec<_>>>()?;
    Ok(page_of(items, page.limit, |a| a.id.clone()))
}

// ---- data roles ----

pub(crate) async fn create_role(s: &SqlStore, role: Role, audit: Vec<NewAudit>) -> StoreResult<()> {
    let mut tx = s.begin().await?;
    lock_live_account(&mut tx, s.dialect, &role.account_id).await?;
    sqlx::query(
        "INSERT INTO roles (id, account_id, name, permissions, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&role.id)
    .bind(&role.account_id)
    .bind(&role.name)
    .bind(rows::to_json(&role.permissions)?)
    .bind(millis(role.created_at))
    .bind(millis(role.updated_at))
    .execute(&mut *tx)
    .await?;
    audit::append(&mut tx, s.dialect, audit).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn role(s: &SqlStore, account_id: &str, role_id: &str) -> StoreResult<Option<Role>> {
    sqlx::query(
        "SELECT * FROM roles WHERE account_id = $1 AND id = $2 AND EXISTS \
         (SELECT 1 FROM accounts a WHERE a.id = roles.account_id AND a.deleted_at IS NULL)",
    )
    .bind(account_id)
    .bind(role_id)
    .fetch_optional(s.reader())
    .await?
    .map(|r| rows::role(&r))
    .transpose()
}

pub(crate) async fn list_roles(s: &SqlStore, account_id: &str, page: &PageRequest) -> StoreResult<Page<Role>> {
    let found = sqlx::query(
        "SELECT * FROM roles WHERE account_id = $1 AND ($2 IS NULL OR id < $2) AND EXISTS \
         (SELECT 1 FROM accounts a WHERE a.id = roles.account_id AND a.deleted_at IS NULL) \
         ORDER BY id DESC LIMIT $3",
    )
    .bind(account_id)
    .bind(page.cursor.as_deref())
    .bind(fetch_limit(page.limit))
    .fetch_all(s.reader())
    .await?;
    let items = found.iter().map(rows::role).collect::<StoreResult<Vec<_>>>()?;
    Ok(page_of(items, page.limit, |r| r.id.clone()))
}

pub(crate) async fn update_role(
    s: &SqlStore,
    account_id: &str,
    role_id: &str,
    name: Option<&str>,
    permissions: Option<&[String]>,
    at: Time,
    audit: Vec<NewAudit>,
) -> StoreResult<Role> {
    let permissions = permissions.map(rows::to_json).transpose()?;
    let mut tx = s.begin().await?;
    let row = sqlx::query(
        "UPDATE roles SET name = COALESCE($3, name), permissions = COALESCE($4, permissions), updated_at = $5 \
         WHERE account_id = $1 AND id = $2 AND EXISTS \
         (SELECT 1 FROM accounts a WHERE a.id = roles.account_id AND a.deleted_at IS NULL) RETURNING *",
    )
    .bind(account_id)
    .bind(role_id)
    .bind(name)
    .bind(permissions)
    .bind(millis(at))
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    let role = rows::role(&row)?;
    audit::append(&mut tx, s.dialect, audit).await?;
    tx.commit().await?;
    Ok(role)
}

/// Deletes the role row. Keys keep their `role_id`; the authenticator's join then finds no
/// role and grants them nothing.
pub(crate) async fn delete_role(
    s: &SqlStore,
    account_id: &str,
    role_id: &str,
    audit: Vec<NewAudit>,
) -> StoreResult<()> {
    let mut tx = s.begin().await?;
    let done = sqlx::query(
        "DELETE FROM roles WHERE account_id = $1 AND id = $2 AND EXISTS \
         (SELECT 1 FROM accounts a WHERE a.id = roles.account_id AND a.deleted_at IS NULL)",
    )
    .bind(account_id)
    .bind(role_id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    audit::append(&mut tx, s.dialect, audit).await?;
    tx.commit().await?;
    Ok(())
}
