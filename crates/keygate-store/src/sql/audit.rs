//! The audit log: appended inside the transaction of the change it records, hash-chained per
//! account, read newest first.
//!
//! The chain must have no gaps and no forks, so appends for one account are serialized:
//! SQLite's single writer does it by construction; on PostgreSQL each transaction takes
//! `pg_advisory_xact_lock(hashtext(account_id))` before reading the account's last entry. The
//! lock is held to commit, and with `READ COMMITTED` the next holder's read sees the entry
//! just committed. Locks for several accounts are taken in sorted order so two transactions
//! can never wait on each other. Appends come last in every transaction, after all row locks,
//! so no other lock is ever requested while an audit lock is held. (The unique index on
//! `(account_id, seq)` would turn any slip into an error rather than a fork.)
//!
//! Portability note: the advisory lock is the one PostgreSQL-specific statement in the store
//! (YugabyteDB has advisory locks too). A CockroachDB dialect would skip it: its serializable
//! isolation plus the unique index keep the chain intact, concurrent appends then surfacing
//! as retryable errors instead of waiting.

use std::collections::BTreeSet;

use keygate_core::audit::{ChainedFields, GENESIS, entry_hash};
use keygate_core::id::{IdKind, new_id};
use serde_json::json;
use sqlx::Row;

use super::rows;
use super::{Dialect, SqlStore, Tx, fetch_limit, page_of};
use crate::error::StoreResult;
use crate::model::*;

/// Appends `entries` in order within `tx` (see the module docs for how appends serialize).
pub(crate) async fn append(tx: &mut Tx, dialect: Dialect, entries: Vec<NewAudit>) -> StoreResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    if dialect == Dialect::Postgres {
        let accounts: BTreeSet<&str> = entries.iter().map(|e| e.account_id.as_str()).collect();
        for account_id in accounts {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))").bind(account_id).execute(&mut **tx).await?;
        }
    }
    for entry in entries {
        append_one(tx, entry).await?;
    }
    Ok(())
}

async fn append_one(tx: &mut Tx, e: NewAudit) -> StoreResult<()> {
    let last = sqlx::query("SELECT seq, hash FROM audit_log WHERE account_id = $1 ORDER BY seq DESC LIMIT 1")
        .bind(&e.account_id)
        .fetch_optional(&mut **tx)
        .await?;
    let (prev_seq, prev_hash) = match last {
        Some(row) => (row.try_get::<i64, _>("seq")?, row.try_get::<String, _>("hash")?),
        None => (0, GENESIS.to_owned()),
    };
    let id = new_id(IdKind::Audit);
    let seq = prev_seq + 1;
    let at = rows::millis(chrono::Utc::now());
    let actor = serde_json::to_value(&e.actor)?;
    let target = json!({"type": e.target_type, "id": e.target_id});
    let hash = entry_hash(
        &prev_hash,
        &ChainedFields {
            id: &id,
            seq,
            at,
            account_id: &e.account_id,
            actor: &actor,
            action: &e.action,
            target: &target,
            ip: e.ip.as_deref(),
            details: &e.details,
        },
    );
    sqlx::query(
        "INSERT INTO audit_log (id, account_id, seq, at, actor, actor_user_id, actor_key_id, action, \
         target_type, target_id, ip, details, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&id)
    .bind(&e.account_id)
    .bind(seq)
    .bind(at)
    .bind(actor.to_string())
    .bind(e.actor.user_id.as_deref())
    .bind(e.actor.key_id.as_deref())
    .bind(&e.action)
    .bind(&e.target_type)
    .bind(&e.target_id)
    .bind(e.ip.as_deref())
    .bind(e.details.to_string())
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn append_audit(s: &SqlStore, entries: Vec<NewAudit>) -> StoreResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut tx = s.begin().await?;
    append(&mut tx, s.dialect, entries).await?;
    tx.commit().await?;
    Ok(())
}

/// `?action=` matches exactly, or, ending in `.*` or `.`, as a prefix (`key.*` → `key.…`).
/// Answers (exact, prefix).
fn action_filter(action: Option<&str>) -> (Option<&str>, Option<&str>) {
    match action {
        None => (None, None),
        Some(a) => match a.strip_suffix('*') {
            Some(prefix) if prefix.ends_with('.') => (None, Some(prefix)),
            _ if a.ends_with('.') => (None, Some(a)),
            _ => (Some(a), None),
        },
    }
}

pub(crate) async fn list_audit(
    s: &SqlStore,
    account_id: &str,
    filter: &AuditFilter,
    page: &PageRequest,
) -> StoreResult<Page<AuditEntry>> {
    // The cursor is the last seq of the previous page. One that is not a number cannot come
    // from us: answer an empty page rather than an error.
    let before = match page.cursor.as_deref() {
        None => i64::MAX,
        Some(c) => match c.parse::<i64>() {
            Ok(seq) => seq,
            Err(_) => {
                return Ok(Page { items: vec![], next_cursor: None });
            }
        },
    };
    let (exact, prefix) = action_filter(filter.action.as_deref());
    let found = sqlx::query(
        "SELECT * FROM audit_log WHERE account_id = $1 AND seq < $2 \
         AND ($3 IS NULL OR action = $3) \
         AND ($4 IS NULL OR substr(action, 1, length($4)) = $4) \
         AND ($5 IS NULL OR actor_user_id = $5 OR actor_key_id = $5) \
         ORDER BY seq DESC LIMIT $6",
    )
    .bind(account_id)
    .bind(before)
    .bind(exact)
    .bind(prefix)
    .bind(filter.actor.as_deref())
    .bind(fetch_limit(page.limit))
    .fetch_all(s.reader())
    .await?;
    let items = found.iter().map(rows::audit_entry).collect::<StoreResult<Vec<_>>>()?;
    Ok(page_of(items, page.limit, |e| e.seq.to_string()))
}

pub(crate) async fn audit_chain(
    s: &SqlStore,
    account_id: &str,
    after_seq: i64,
    limit: u32,
) -> StoreResult<Vec<AuditEntry>> {
    let found = sqlx::query("SELECT * FROM audit_log WHERE account_id = $1 AND seq > $2 ORDER BY seq ASC LIMIT $3")
        .bind(account_id)
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(s.reader())
        .await?;
    found.iter().map(rows::audit_entry).collect()
}

#[cfg(test)]
mod tests {
    use super::action_filter;

    #[test]
    fn action_filters() {
        assert_eq!(action_filter(Some("key.created")), (Some("key.created"), None));
        assert_eq!(action_filter(Some("key.*")), (None, Some("key.")));
        assert_eq!(action_filter(Some("key.")), (None, Some("key.")));
        assert_eq!(action_filter(Some("*")), (Some("*"), None));
        assert_eq!(action_filter(None), (None, None));
    }
}
