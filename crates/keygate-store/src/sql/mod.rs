//! `SqlStore`: the one implementation of [`Store`](crate::Store), for SQLite and PostgreSQL.
//!
//! # Why one implementation over `sqlx::AnyPool`
//!
//! The two backends must behave identically (the conformance suite runs on both), so the SQL is
//! written once, with `$1, $2` placeholders: PostgreSQL reads them natively and sqlx's SQLite
//! driver binds `$N` to the N-th argument. The representation is chosen so that sqlx's `Any`
//! driver needs nothing beyond integers and text:
//!
//! - times are `BIGINT` Unix **milliseconds** (UTC), so stored times have millisecond precision;
//! - booleans are `BIGINT` 0/1;
//! - JSON (scopes, metadata, ip allowlist, rate limit, permissions, audit actor and details) is
//!   `TEXT`, parsed here;
//! - digests are lower-case hex `TEXT`; ids are `TEXT` that sort by creation in byte order
//!   (PostgreSQL columns are declared `COLLATE "C"` for that).
//!
//! The few real differences live in [`Dialect`]: the migrations folder, how a write
//! transaction begins, and row locks (PostgreSQL `FOR UPDATE` / advisory locks; SQLite needs
//! none because it has a single writer).
//!
//! # Concurrency
//!
//! - **SQLite:** every write transaction runs on a dedicated pool of exactly one connection and
//!   starts with `BEGIN IMMEDIATE`, so writers queue in-process instead of failing with
//!   `SQLITE_BUSY`, and a writer in another process is waited for (`busy_timeout`) instead of
//!   deadlocking on a read-to-write upgrade. Reads use a separate multi-connection pool; WAL
//!   lets them run beside the writer.
//! - **PostgreSQL:** one pool, `READ COMMITTED`. Read-check-write sequences lock what they
//!   check (the account row for owner counts and key limits, the key row for patches and
//!   rolls) and audit appends take a per-account advisory lock, so every rule holds across
//!   any number of keygate nodes.
//!
//! Error meaning (unique constraints → `Conflict`, connectivity → `Unavailable`) is decided in
//! [`error`], nowhere else.

mod accounts;
mod audit;
mod error;
mod invalidations;
mod keys;
mod login;
mod members;
mod rows;
mod store_impl;
mod usage;
mod usage_counts;
mod users;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Any, AnyPool, Executor, SqlSafeStr, Transaction};

use crate::error::{StoreError, StoreResult};
use crate::store::Store;

/// A write transaction on either backend.
pub(crate) type Tx = Transaction<'static, Any>;

/// The SQL differences between the backends; everything else is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// keygate's storage on SQLite or PostgreSQL. Cheap to clone (pools are shared handles).
#[derive(Clone)]
pub struct SqlStore {
    dialect: Dialect,
    /// Reads. On SQLite several connections (WAL readers); on PostgreSQL the only pool.
    reader: AnyPool,
    /// Write transactions. On SQLite a pool of exactly one connection; on PostgreSQL the same
    /// pool as `reader`.
    writer: AnyPool,
}

impl std::fmt::Debug for SqlStore {
    // Deliberately no URL: it may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore").field("dialect", &self.dialect).finish_non_exhaustive()
    }
}

/// Connects (by URL scheme) with the default [`PoolConfig`], applies pending migrations and
/// answers the store as the trait object the server holds.
pub async fn open(database_url: &str) -> StoreResult<Arc<dyn Store>> {
    open_with(database_url, &PoolConfig::default()).await
}

/// [`open`] with the server's `[database]` settings.
pub async fn open_with(database_url: &str, config: &PoolConfig) -> StoreResult<Arc<dyn Store>> {
    Ok(Arc::new(SqlStore::connect_with(database_url, config).await?))
}

/// How the store uses its connections (the server's `[database]` settings, docs/operations.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Connections to PostgreSQL; on SQLite, reader connections (the writer is always one).
    pub max_connections: u32,
    /// Connections kept open even when idle (at most `max_connections`).
    pub min_connections: u32,
    /// How long a caller waits for a connection before the store answers `Unavailable`: a
    /// database that refuses or does not answer costs a request at most this long.
    pub acquire_timeout: Duration,
    /// PostgreSQL's `statement_timeout` for every statement keygate runs (migrations
    /// excepted), and its `idle_in_transaction_session_timeout`; a statement cancelled by it
    /// is `Unavailable`. Zero: none. SQLite has none.
    pub statement_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(5),
        }
    }
}

impl SqlStore {
    /// Opens `sqlite://path` (created when missing; WAL, foreign keys on, `busy_timeout` 5 s,
    /// `synchronous = NORMAL`), `sqlite::memory:` (one shared connection, for demos and tests)
    /// or `postgres://…` / `postgresql://…`, then runs [`SqlStore::migrate`].
    pub async fn connect(database_url: &str) -> StoreResult<SqlStore> {
        Self::connect_with(database_url, &PoolConfig::default()).await
    }

    /// [`SqlStore::connect`] with pool settings.
    pub async fn connect_with(database_url: &str, config: &PoolConfig) -> StoreResult<SqlStore> {
        sqlx::any::install_default_drivers();
        let store = if database_url.starts_with("sqlite:") {
            Self::connect_sqlite(database_url, config).await?
        } else if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
            Self::connect_postgres(database_url, config).await?
        } else {
            return Err(StoreError::Other("unsupported database URL scheme (expected sqlite: or postgres://)".into()));
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn connect_postgres(url: &str, config: &PoolConfig) -> StoreResult<SqlStore> {
        let options = AnyConnectOptions::from_str(url)?;
        let statement_timeout = config.statement_timeout.as_millis();
        let pool = AnyPoolOptions::new()
            .max_connections(config.max_connections.max(1))
            .min_connections(config.min_connections.min(config.max_connections))
            .acquire_timeout(config.acquire_timeout)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    // Once per connection, so every statement on it is bounded by the server,
                    // and a transaction whose node went silent does not hold its row locks
                    // (a key's, an account's) against every other node.
                    conn.execute(sqlx::AssertSqlSafe(format!(
                        "SET statement_timeout = {statement_timeout}; \
                         SET idle_in_transaction_session_timeout = {statement_timeout}"
                    )))
                    .await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(SqlStore { dialect: Dialect::Postgres, reader: pool.clone(), writer: pool })
    }

    async fn connect_sqlite(url: &str, config: &PoolConfig) -> StoreResult<SqlStore> {
        let (location, params) = match url.split_once('?') {
            Some((l, p)) => (l, Some(p)),
            None => (url, None),
        };
        let path = location.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
        let in_memory = path == ":memory:" || params.is_some_and(|p| p.contains("mode=memory"));
        // `mode=rwc` creates the file when it does not exist yet.
        let url = match params {
            Some(p) if p.contains("mode=") => url.to_owned(),
            Some(p) => format!("{location}?{p}&mode=rwc"),
            None => format!("{location}?mode=rwc"),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let pool_options = |max: u32| {
            AnyPoolOptions::new().max_connections(max).acquire_timeout(config.acquire_timeout).after_connect(
                |conn, _meta| {
                    Box::pin(async move {
                        // Per-connection settings (foreign keys and busy timeout are sqlx's
                        // defaults too; stated here so nothing depends on that).
                        conn.execute(
                            "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
                             PRAGMA synchronous = NORMAL;",
                        )
                        .await?;
                        Ok(())
                    })
                },
            )
        };
        if in_memory {
            // Every new connection to `:memory:` would be a new, empty database: keep exactly
            // one connection for reads and writes, forever.
            let pool =
                pool_options(1).min_connections(1).idle_timeout(None).max_lifetime(None).connect_with(options).await?;
            return Ok(SqlStore { dialect: Dialect::Sqlite, reader: pool.clone(), writer: pool });
        }
        let writer = pool_options(1).connect_with(options.clone()).await?;
        // WAL is a property of the database file: set once, before readers open it.
        writer.execute("PRAGMA journal_mode = WAL").await?;
        let readers = config.max_connections.max(1);
        let reader =
            pool_options(readers).min_connections(config.min_connections.min(readers)).connect_with(options).await?;
        Ok(SqlStore { dialect: Dialect::Sqlite, reader, writer })
    }

    /// Applies the embedded migrations of the backend that are not applied yet. Safe to run
    /// from several nodes at once (sqlx's migrator takes an advisory lock on PostgreSQL).
    pub async fn migrate(&self) -> StoreResult<()> {
        let sources: &[(i64, &str, &'static str)] = match self.dialect {
            Dialect::Sqlite => &[
                (1, "init", include_str!("../../migrations/sqlite/0001_init.sql")),
                (2, "login throttle", include_str!("../../migrations/sqlite/0002_login_throttle.sql")),
                (3, "invalidations", include_str!("../../migrations/sqlite/0003_invalidations.sql")),
                (4, "key successor", include_str!("../../migrations/sqlite/0004_key_successor.sql")),
                (5, "usage outcomes", include_str!("../../migrations/sqlite/0005_usage_outcomes.sql")),
                (6, "key limits", include_str!("../../migrations/sqlite/0006_key_limits.sql")),
            ],
            Dialect::Postgres => &[
                (1, "init", include_str!("../../migrations/postgres/0001_init.sql")),
                (2, "login throttle", include_str!("../../migrations/postgres/0002_login_throttle.sql")),
                (3, "invalidations", include_str!("../../migrations/postgres/0003_invalidations.sql")),
                (4, "key successor", include_str!("../../migrations/postgres/0004_key_successor.sql")),
                (5, "usage outcomes", include_str!("../../migrations/postgres/0005_usage_outcomes.sql")),
                (6, "key limits", include_str!("../../migrations/postgres/0006_key_limits.sql")),
            ],
        };
        let migrations = sources
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(*version, (*description).into(), MigrationType::Simple, sql.into_sql_str(), false)
            })
            .collect();
        let migrator = Migrator::with_migrations(migrations);
        let migrated = match self.dialect {
            Dialect::Sqlite => migrator.run(&self.writer).await,
            // On a connection of its own, without the statement timeout: a migration may
            // rewrite a large table, and a node waits for another node's migration on the
            // migrator's advisory lock.
            Dialect::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(1)
                    .connect_with((*self.writer.connect_options()).clone())
                    .await?;
                let migrated = migrator.run(&pool).await;
                pool.close().await;
                migrated
            }
        };
        migrated.map_err(|e| StoreError::from(sqlx::Error::from(e)))
    }

    /// Which backend this store talks to.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Closes both pools (waits for connections in use to be returned).
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    pub(crate) fn reader(&self) -> &AnyPool {
        &self.reader
    }

    /// Begins a write transaction: `BEGIN IMMEDIATE` on the SQLite writer (takes the write lock
    /// up front, see the module docs), a plain `BEGIN` (read committed) on PostgreSQL.
    pub(crate) async fn begin(&self) -> StoreResult<Tx> {
        let tx = match self.dialect {
            Dialect::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.writer.begin().await?,
        };
        Ok(tx)
    }

    /// Single-statement writes outside a transaction still go through the writer (SQLite).
    pub(crate) fn writer(&self) -> &AnyPool {
        &self.writer
    }
}

/// Row locks that only PostgreSQL needs (SQLite's single writer already serializes).
impl Dialect {
    /// Selects the live (not deleted) account row, locking it on PostgreSQL: owner counts and
    /// live-key counts taken under this lock cannot race with another node's change.
    pub(crate) fn lock_account_sql(self) -> &'static str {
        match self {
            Dialect::Sqlite => "SELECT id FROM accounts WHERE id = $1 AND deleted_at IS NULL",
            Dialect::Postgres => "SELECT id FROM accounts WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
        }
    }

    /// Selects one key of a live account by id, locking the key row on PostgreSQL.
    pub(crate) fn lock_key_sql(self) -> &'static str {
        match self {
            Dialect::Sqlite => concat!(
                "SELECT k.* FROM api_keys k WHERE k.account_id = $1 AND k.id = $2 AND EXISTS ",
                "(SELECT 1 FROM accounts a WHERE a.id = k.account_id AND a.deleted_at IS NULL)"
            ),
            Dialect::Postgres => concat!(
                "SELECT k.* FROM api_keys k WHERE k.account_id = $1 AND k.id = $2 AND EXISTS ",
                "(SELECT 1 FROM accounts a WHERE a.id = k.account_id AND a.deleted_at IS NULL) FOR UPDATE"
            ),
        }
    }
}

/// Locks and checks the live account inside `tx`: `NotFound` when absent or deleted.
pub(crate) async fn lock_live_account(tx: &mut Tx, dialect: Dialect, account_id: &str) -> StoreResult<()> {
    sqlx::query(dialect.lock_account_sql())
        .bind(account_id)
        .fetch_optional(&mut **tx)
        .await?
        .map(|_| ())
        .ok_or(StoreError::NotFound)
}

/// Builds a page from `limit + 1` fetched rows: the extra row only says that there is more.
pub(crate) fn page_of<T>(mut items: Vec<T>, limit: u32, cursor_of: impl Fn(&T) -> String) -> crate::Page<T> {
    let limit = limit.max(1) as usize;
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(cursor_of)
    } else {
        None
    };
    crate::Page { items, next_cursor }
}

/// The number of rows to fetch for a page of `limit` (one more, to see whether there is more).
pub(crate) fn fetch_limit(limit: u32) -> i64 {
    i64::from(limit.max(1)) + 1
}
