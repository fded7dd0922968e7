//! Memberships. Authority changes and removals read the target and count the owners inside the
//! transaction, under the account row lock on PostgreSQL (SQLite's single writer serializes
//! anyway), so two owners demoting each other at once cannot leave an account without one.

use keygate_core::Authority;
use keygate_core::authority::{may_change, may_remove};
use sqlx::Row;

use super::rows::{self, millis};
use super::users::insert_membership;
use super::{SqlStore, Tx, audit, fetch_limit, lock_live_account, page_of};
use crate::error::{StoreError, StoreResult};
use crate::model::*;

const MEMBER_COLUMNS_BY_KEY: &str = "SELECT m.user_id, u.email, u.name, m.authority, m.created_at \
     FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.account_id = $1 AND m.user_id = $2";

pub(crate) async fn membership(s: &SqlStore, account_id: &str, user_id: &str) -> StoreResult<Option<Membership>> {
    sqlx::query(
        "SELECT m.* FROM memberships m JOIN accounts a ON a.id = m.account_id AND a.deleted_at IS NULL \
         WHERE m.account_id = $1 AND m.user_id = $2",
    )
    .bind(account_id)
    .bind(user_id)
    .fetch_optional(s.reader())
    .await?
    .map(|r| rows::membership(&r))
    .transpose()
}

/// Cursor of a member page: `<created_at millis>:<user id>` of the last member shown.
fn member_cursor(m: &Member) -> String {
    format!("{}:{}", millis(m.created_at), m.user_id)
}

fn parse_member_cursor(c: &str) -> Option<(i64, &str)> {
    let (at, user_id) = c.split_once(':')?;
    Some((at.parse().ok()?, user_id))
}

/// Newest membership first, ties broken by user id, so the cursor `(created_at, user_id)` is
/// stable however many members join at the same millisecond.
pub(crate) async fn list_members(s: &SqlStore, account_id: &str, page: &PageRequest) -> StoreResult<Page<Member>> {
    let cursor = match page.cursor.as_deref() {
        None => None,
        Some(c) => match parse_member_cursor(c) {
            Some(parsed) => Some(parsed),
            // Not a cursor this store made: nothing lies beyond it.
            None => {
                return Ok(Page { items: vec![], next_cursor: None });
            }
        },
    };
    let found = sqlx::query(
        "SELECT m.user_id, u.email, u.name, m.authority, m.created_at \
         FROM memberships m JOIN users u ON u.id = m.user_id \
         JOIN accounts a ON a.id = m.account_id AND a.deleted_at IS NULL \
         WHERE m.account_id = $1 \
         AND ($2 IS NULL OR m.created_at < $2 OR (m.created_at = $2 AND m.user_id < $3)) \
         ORDER BY m.created_at DESC, m.user_id DESC LIMIT $4",
    )
    .bind(account_id)
    .bind(cursor.map(|(at, _)| at))
    .bind(cursor.map(|(_, user)| user))
    .bind(fetch_limit(page.limit))
    .fetch_all(s.reader())
    .await?;
    let items = found.iter().map(rows::member).collect::<StoreResult<Vec<_>>>()?;
    Ok(page_of(items, page.limit, member_cursor))
}

async fn member_in_tx(tx: &mut Tx, account_id: &str, user_id: &str) -> StoreResult<Member> {
    let row = sqlx::query(MEMBER_COLUMNS_BY_KEY)
        .bind(account_id)
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    rows::member(&row)
}

pub(crate) async fn add_member(
    s: &SqlStore,
    account_id: &str,
    user_id: &str,
    authority: Authority,
    at: Time,
    audit: Vec<NewAudit>,
) -> StoreResult<Member> {
    let mut tx = s.begin().await?;
    lock_live_account(&mut tx, s.dialect, account_id).await?;
    let user_exists =
        sqlx::query("SELECT id FROM users WHERE id = $1").bind(user_id).fetch_optional(&mut *tx).await?.is_some();
    if !user_exists {
        return Err(StoreError::NotFound);
    }
    insert_membership(&mut tx, account_id, user_id, authority, at).await?;
    let member = member_in_tx(&mut tx, account_id, user_id).await?;
    audit::append(&mut tx, s.dialect, audit).await?;
    tx.commit().await?;
    Ok(member)
}

/// The target's current authority and the account's owner count, read under the account lock.
async fn target_and_owners(
    tx: &mut Tx,
    s: &SqlStore,
    account_id: &str,
    user_id: &str,
) -> StoreResult<(Authority, usize)> {
    lock_live_account(tx, s.dialect, account_id).await?;
    let target = sqlx::query("SELECT authority FROM memberships WHERE account_id = $1 AND user_id = $2")
        .bind(account_id)
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    let current = rows::authority(&target, "authority")?;
    let owners: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM memberships WHERE account_id = $1 AND authority = 'owner'")
            .bind(account_id)
            .fetch_one(&mut **tx)
            .await?
            .try_get("n")?;
    Ok((current, usize::try_from(owners).unwrap_or(0)))
}

pub(crate) async fn change_member_authority(
    s: &SqlStore,
    account_id: &str,
    user_id: &str,
    actor_authority: Authority,
    new: Authority,
    audit: Vec<NewAudit>,
) -> StoreResult<Member> {
    let mut tx = s.begin().await?;
    let (current, owners) = target_and_owners(&mut tx, s, account_id, user_id).await?;
    may_change(actor_authority, current, new, owners).map_err(StoreError::Rule)?;
    sqlx::query("UPDATE memberships SET authority = $3 WHERE account_id = $1 AND user_id = $2")
        .bind(account_id)
        .bind(user_id)
        .bind(new.as_str())
        .execute(&mut *tx)
        .await?;
    let member = member_in_tx(&mut tx, account_id, user_id).await?;
    audit::append(&mut tx, s.dialect, audit).await?;
    tx.commit().await?;
    Ok(member)
}

/// Removes the membership. The user's keys in the account stay but stop working: the
/// authenticator's join finds no membership for them.
pub(crate) async fn remove_member(
    s: &SqlStore,
    account_id: &str,
    user_id: &str,
    actor_authority: Authority,
    is_self: bool,
    audit: Vec<NewAudit>,
) -> StoreResult<()> {
    let mut tx = s.begin().await?;
    let (current, owners) = target_and_owners(&mut tx, s, account_id, user_id).await?;
    may_remove(actor_authority, current, is_self, owners).map_err(StoreError::Rule)?;
    sqlx::query("DELETE FROM memberships WHERE account_id = $1 AND user_id = $2")
        .bind(account_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    audit::append(&mut tx, s.dialect, audit).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_member_cursor;

    #[test]
    fn member_cursor_round_trip() {
        assert_eq!(parse_member_cursor("1700000000000:usr_abc"), Some((1_700_000_000_000, "usr_abc")));
        assert_eq!(parse_member_cursor("garbage"), None);
        assert_eq!(parse_member_cursor("x:usr_abc"), None);
    }
}
