//! Fresh databases for each test, and the builders the suite uses.
//!
//! SQLite: a new file in a temporary directory. PostgreSQL (only when
//! `KEYGATE_TEST_POSTGRES_URL` is set): `CREATE DATABASE kg_conf_<random>` through the given URL,
//! the test against it, then `DROP DATABASE … WITH (FORCE)` whether the test passed or not.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use keygate_core::Authority;
use keygate_core::id::{IdKind, new_id};
use keygate_store::*;
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection, Executor};

pub const PG_ENV: &str = "KEYGATE_TEST_POSTGRES_URL";

/// One test's database: the store, and the URL to open a second "node" on the same data.
pub struct TestDb {
    pub store: Arc<dyn Store>,
    url: String,
}

impl TestDb {
    /// Another independent store (own pools) on the same database: a second keygate node.
    pub async fn another_node(&self) -> Arc<dyn Store> {
        open(&self.url).await.expect("open a second node")
    }
}

pub async fn run_sqlite<F, Fut>(test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("keygate.db").display());
    let store = open(&url).await.expect("open sqlite");
    test(TestDb { store, url }).await;
    drop(dir);
}

/// `postgres://host/db?x` → (`postgres://host`, `?x`): where to put another database name.
fn split_pg_url(url: &str) -> (&str, &str) {
    let (base, query) = match url.find('?') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    match base[authority_start..].find('/') {
        Some(i) => (&base[..authority_start + i], query),
        None => (base, query),
    }
}

pub async fn run_postgres<F, Fut>(test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Ok(admin_url) = std::env::var(PG_ENV) else {
        eprintln!("SKIPPED: {PG_ENV} is not set; PostgreSQL conformance tests did not run");
        return;
    };
    let name = format!("kg_conf_{}", keygate_core::base62::random(12).to_lowercase());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.expect("connect to KEYGATE_TEST_POSTGRES_URL");
    admin.execute(AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.expect("create test database");
    let (base, query) = split_pg_url(&admin_url);
    let url = format!("{base}/{name}{query}");
    let store = open(&url).await.expect("open postgres");
    // Run the test as its own task so a failed assertion comes back here as an error and the
    // database is dropped before the panic is passed on.
    let outcome = tokio::spawn(test(TestDb { store, url })).await;
    admin
        .execute(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
        .await
        .expect("drop test database");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

// ---- builders ----

/// Now, at the millisecond precision the store keeps.
pub fn now() -> Time {
    let t = Utc::now();
    DateTime::from_timestamp_millis(t.timestamp_millis()).expect("now")
}

pub fn ms(n: i64) -> Duration {
    Duration::milliseconds(n)
}

/// A unique lower-case hex string in the shape of a SHA-256 digest.
pub fn digest() -> String {
    let random = keygate_core::base62::random(32);
    random.bytes().map(|b| format!("{b:02x}")).collect()
}

pub fn user(email: &str) -> User {
    User {
        id: new_id(IdKind::User),
        email: email.to_owned(),
        name: format!("name of {email}"),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: now(),
    }
}

pub fn account(name: &str, domain: Option<&str>) -> Account {
    Account {
        id: new_id(IdKind::Account),
        name: name.to_owned(),
        url: domain.map(|d| format!("https://{d}")),
        domain: domain.map(str::to_owned),
        plan: "trial".into(),
        trial_ends_at: Some(now() + Duration::days(14)),
        created_at: now(),
        overrides: LimitOverrides::default(),
    }
}

pub fn audit(account_id: &str, action: &str, actor_user: &str) -> NewAudit {
    NewAudit {
        account_id: account_id.to_owned(),
        actor: Actor { kind: ActorType::User, user_id: Some(actor_user.to_owned()), key_id: None },
        action: action.to_owned(),
        target_type: "account".into(),
        target_id: account_id.to_owned(),
        ip: Some("203.0.113.7".into()),
        details: json!({"z": 1, "a": [1, 2, {"k": "v"}]}),
    }
}

/// A registered user with their own account (owner).
pub struct Owner {
    pub user: User,
    pub account: Account,
}

pub async fn register(store: &Arc<dyn Store>, email: &str, domain: Option<&str>) -> Owner {
    let user = user(email);
    let account = account(&format!("{email}'s account"), domain);
    let entries = vec![audit(&account.id, "user.registered", &user.id)];
    store.register(user.clone(), account.clone(), entries).await.expect("register");
    Owner { user, account }
}

/// A user key of `user_id` in `account_id`, active, unlimited.
pub fn key(account_id: &str, user_id: Option<&str>) -> NewKey {
    let id = new_id(IdKind::Key);
    NewKey {
        key_part: format!("kg_{}", &id[id.len() - 8..]),
        id,
        digest: digest(),
        class: if user_id.is_some() { KeyClass::User } else { KeyClass::Org },
        name: "a key".into(),
        account_id: account_id.to_owned(),
        user_id: user_id.map(str::to_owned),
        authority: Authority::User,
        scopes: vec!["*:*".into()],
        role_id: None,
        created_at: now(),
        created_by: user_id.unwrap_or("operator").to_owned(),
        expires_at: None,
        starts_at: None,
        staged: false,
        usage_limit: None,
        refill: None,
        refilled_at: None,
        rate_limit: None,
        rate_limits: vec![],
        ip_allowlist: vec![],
        metadata: json!({}),
    }
}

pub fn page(limit: u32, cursor: Option<String>) -> PageRequest {
    PageRequest { limit, cursor }
}

/// Verifies an account's whole chain the way the server will: contiguous seqs from 1, each
/// `prev_hash` the previous `hash`, each hash recomputed from the entry's own fields.
pub async fn verify_chain(store: &Arc<dyn Store>, account_id: &str) -> usize {
    use keygate_core::audit::GENESIS;
    let mut prev = GENESIS.to_owned();
    let mut seq = 0;
    loop {
        let batch = store.audit_chain(account_id, seq, 7).await.expect("audit_chain");
        if batch.is_empty() {
            return usize::try_from(seq).expect("seq");
        }
        for e in batch {
            seq += 1;
            assert_eq!(e.seq, seq, "seqs are contiguous");
            assert_eq!(e.account_id, account_id);
            assert_eq!(e.prev_hash, prev, "entry {seq} links to the previous hash");
            assert_eq!(e.expected_hash(&e.prev_hash).as_deref(), Some(e.hash.as_str()), "entry {seq} hashes correctly");
            prev = e.hash;
        }
    }
}

#[test]
fn pg_url_split() {
    assert_eq!(split_pg_url("postgres://postgres@127.0.0.1:5432/test"), ("postgres://postgres@127.0.0.1:5432", ""));
    assert_eq!(split_pg_url("postgres://u:p@h/db?sslmode=disable"), ("postgres://u:p@h", "?sslmode=disable"));
    assert_eq!(split_pg_url("postgres://h"), ("postgres://h", ""));
}
