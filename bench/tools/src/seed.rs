//! Bulk-inserts API keys straight into a keygate SQLite file, in one transaction, so that
//! benchmarks can stand on 10 k … 1 M stored keys without minting them one by one over HTTP
//! (which would also write an audit entry per key and take minutes).
//!
//! Also compiled into `crates/keygate-server/benches/authenticator.rs` with `#[path]`, so the
//! in-process benchmark and the load script seed keys the same way without a dependency
//! between the two crates. Uses only keygate-core, sqlx and chrono.

use std::str::FromStr;

use keygate_core::id::{IdKind, new_id};
use keygate_core::{CredentialKind, KeyFormat};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Executor};

/// What each seeded key looks like.
#[derive(Debug, Clone)]
pub struct KeySpec {
    pub account_id: String,
    /// Set `revoked_at` (a revoked key for the refusal benchmark).
    pub revoked: bool,
    /// JSON rate limit, e.g. `{"limit":1000,"window_seconds":86400}`; `None`: unlimited.
    pub rate_limit: Option<String>,
}

/// Opens the SQLite file (it must already carry keygate's schema: `keygate_store::open` or a
/// keygate server creates it) with settings for a one-off bulk load.
pub async fn connect(path: &str) -> anyhow::Result<SqliteConnection> {
    let options =
        SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?.busy_timeout(std::time::Duration::from_secs(30));
    let mut conn = SqliteConnection::connect_with(&options).await?;
    // A benchmark fixture: losing it in a power cut costs a rerun, not data.
    conn.execute("PRAGMA synchronous = OFF").await?;
    Ok(conn)
}

/// An account (plan `plan`, no trial end) for keys to belong to; nothing when it exists.
pub async fn ensure_account(conn: &mut SqliteConnection, account_id: &str, plan: &str) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT OR IGNORE INTO accounts (id, name, url, domain, plan, trial_ends_at, created_at, deleted_at) \
         VALUES ($1, 'bench', NULL, NULL, $2, NULL, $3, NULL)",
    )
    .bind(account_id)
    .bind(plan)
    .bind(chrono::Utc::now().timestamp_millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Inserts `count` org keys with scopes `*:*` in one transaction and hands each secret to
/// `on_secret` (in insertion order). A `key_part` collision (two keys sharing their first 8
/// random characters, about 1 in 400 runs at 1 M keys) skips that key rather than failing.
/// Answers how many keys were inserted.
pub async fn insert_keys(
    conn: &mut SqliteConnection,
    format: &KeyFormat,
    spec: &KeySpec,
    count: u64,
    mut on_secret: impl FnMut(&str) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let now = chrono::Utc::now().timestamp_millis();
    let revoked_at = spec.revoked.then_some(now);
    let mut tx = conn.begin().await?;
    let mut inserted = 0;
    for _ in 0..count {
        let generated = format.generate(CredentialKind::OrgKey);
        let done = sqlx::query(
            "INSERT OR IGNORE INTO api_keys (id, digest, key_part, class, name, account_id, user_id, authority, \
             scopes, role_id, created_at, created_by, expires_at, starts_at, staged, revoked_at, last_used_at, \
             last_used_ip, request_count, usage_limit, usage_used, rate_limit, ip_allowlist, metadata) \
             VALUES ($1, $2, $3, 'org', 'seeded', $4, NULL, 'owner', '[\"*:*\"]', NULL, $5, 'operator', NULL, NULL, \
             0, $6, NULL, NULL, 0, NULL, 0, $7, '[]', '{}')",
        )
        .bind(new_id(IdKind::Key))
        .bind(generated.digest.to_hex())
        .bind(&generated.key_part)
        .bind(&spec.account_id)
        .bind(now)
        .bind(revoked_at)
        .bind(spec.rate_limit.as_deref())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            on_secret(generated.secret.expose())?;
            inserted += 1;
        }
    }
    tx.commit().await?;
    Ok(inserted)
}
