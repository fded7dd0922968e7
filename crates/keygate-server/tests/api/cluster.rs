//! Several nodes as one service: two servers on one PostgreSQL database and one Redis, spoken
//! to over HTTP. Needs `KEYGATE_TEST_POSTGRES_URL` and `KEYGATE_TEST_REDIS_URL` (`.ci/run`
//! sets both); without them every test here says SKIPPED and passes.
//!
//! Each test creates its own database, so tests run in parallel and leave nothing shared.

use std::io::Write as _;
use std::time::{Duration, Instant};

use keygate_server::Settings;
use keygate_server::config::{FailurePolicy, RateLimitSettings, UsageSettings};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection as _;

use crate::helpers::*;

pub(crate) struct Env {
    pub(crate) postgres: String,
    pub(crate) redis: String,
}

pub(crate) fn env(test: &str) -> Option<Env> {
    let get = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (get("KEYGATE_TEST_POSTGRES_URL"), get("KEYGATE_TEST_REDIS_URL")) {
        (Some(postgres), Some(redis)) => Some(Env { postgres, redis }),
        _ => {
            // Straight to the stderr handle: the test harness captures `eprintln!`, and a skip
            // must be seen in a plain `cargo test`.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {test} needs KEYGATE_TEST_POSTGRES_URL and KEYGATE_TEST_REDIS_URL (see .ci/run)"
            );
            None
        }
    }
}

/// A database of its own on the test server, dropped (best effort) by `drop_db`.
#[derive(Clone)]
pub(crate) struct TestDb {
    pub(crate) admin_url: String,
    pub(crate) name: String,
    pub(crate) url: String,
}

pub(crate) async fn fresh_db(base_url: &str) -> TestDb {
    let name = format!("kg_it_{}", keygate_core::base62::random(10).to_lowercase());
    let mut conn = sqlx::PgConnection::connect(base_url).await.expect("connect to KEYGATE_TEST_POSTGRES_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create database");
    let _ = conn.close().await;
    TestDb { admin_url: base_url.to_owned(), url: with_database(base_url, &name), name }
}

/// `postgres://u@h:5432/test?x=y` with the database replaced.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    format!("{host_part}/{db}{query}")
}

pub(crate) async fn drop_db(db: TestDb) {
    if let Ok(mut conn) = sqlx::PgConnection::connect(&db.admin_url).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name)))
            .execute(&mut conn)
            .await;
    }
}

async fn node(db: &TestDb, redis_url: &str, policy: FailurePolicy) -> TestApp {
    node_with(db, redis_url, policy, |_| {}).await
}

pub(crate) async fn node_with(
    db: &TestDb,
    redis_url: &str,
    policy: FailurePolicy,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = Settings {
        database_url: db.url.clone(),
        redis_url: redis_url.to_owned(),
        rate_limits: RateLimitSettings { redis_failure_policy: policy, ..Default::default() },
        listen: "127.0.0.1:0".into(),
        usage: UsageSettings { flush_interval_ms: 100 },
        ..Settings::default()
    };
    // Like every test server (`helpers::sqlite_settings`): verify callers may use TEST_VERIFIER.
    settings.verify.tokens = vec![TEST_VERIFIER.to_owned().into()];
    configure(&mut settings);
    let dir = tempfile::tempdir().expect("tempdir");
    let unused = dir.path().join("unused.db");
    spawn_with_settings(settings, dir, unused).await
}

/// Two nodes on one fresh database and the shared Redis.
async fn two_nodes(env: &Env) -> (TestDb, TestApp, TestApp) {
    let db = fresh_db(&env.postgres).await;
    // One after the other: the first applies the migrations.
    let a = node(&db, &env.redis, FailurePolicy::FailClosed).await;
    let b = node(&db, &env.redis, FailurePolicy::FailClosed).await;
    (db, a, b)
}

/// How long a condition took to hold, and how many polls saw it false first (0: the very
/// first request after the change already saw it, so the lag is below one round trip).
#[derive(Debug)]
#[allow(dead_code)] // read through Debug in the printed measurements
pub(crate) struct Lag {
    after: Duration,
    polls_before: u32,
}

/// Polls `f` every 10 ms; answers how long it took to become true, or None after `limit`.
pub(crate) async fn lag_until(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> Option<Lag> {
    let started = Instant::now();
    let mut polls_before = 0;
    loop {
        if f().await {
            return Some(Lag { after: started.elapsed(), polls_before });
        }
        polls_before += 1;
        if started.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn secret(k: &Value) -> String {
    k["key"].as_str().expect("key").to_owned()
}

async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.get("/metrics", Cred::None).await.text;
    text.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

#[tokio::test]
async fn a_key_minted_on_one_node_works_on_the_other_and_its_revocation_reaches_it_within_a_second() {
    let Some(env) = env("cross-node revocation") else { return };
    let (db, a, b) = two_nodes(&env).await;
    let u = a.register().await;
    let k = a.mint(&u.token, &u.account_id, json!({})).await;
    let key = secret(&k);
    // Used on B twice: the second answer comes from B's cache, the one revocation must beat.
    for _ in 0..2 {
        assert_eq!(b.verify(&key, json!({})).await["code"], "VALID");
        assert_eq!(b.get("/v1/user", Cred::ApiKey(&key)).await.status, StatusCode::OK);
    }
    let revoke = a
        .delete(
            &format!("/v1/keys/{}?account_id={}", k["id"].as_str().expect("id"), u.account_id),
            Cred::Bearer(&u.token),
        )
        .await;
    assert_eq!(revoke.status, StatusCode::OK, "{}", revoke.text);
    let lag = lag_until(Duration::from_secs(1), async || b.verify(&key, json!({})).await["code"] == "REVOKED").await;
    println!("cross-node revocation lag: {lag:?}");
    assert!(lag.is_some(), "node B still accepts the key 1 s after its revocation on node A");
    let used = b.get("/v1/user", Cred::ApiKey(&key)).await;
    assert_eq!((used.status, used.code()), (StatusCode::UNAUTHORIZED, "api_key_revoked"));
    assert!(metric(&b, "keygate_invalidations_received").await >= 1.0);
    // A distribution for docs/operations.md: 20 more revocations, each key cached on B first.
    let mut lags = Vec::new();
    for _ in 0..20 {
        let k = a.mint(&u.token, &u.account_id, json!({})).await;
        let key = secret(&k);
        assert_eq!(b.verify(&key, json!({})).await["code"], "VALID");
        a.delete(
            &format!("/v1/keys/{}?account_id={}", k["id"].as_str().expect("id"), u.account_id),
            Cred::Bearer(&u.token),
        )
        .await;
        let lag =
            lag_until(Duration::from_secs(1), async || b.verify(&key, json!({})).await["code"] == "REVOKED").await;
        lags.push(lag.expect("every revocation reaches node B within 1 s"));
    }
    lags.sort_by_key(|l| l.after);
    let late = lags.iter().filter(|l| l.polls_before > 0).count();
    println!(
        "20 cross-node revocations: median {:?}, max {:?}; {late} of 20 needed more than the first request on B",
        lags[10].after, lags[19].after
    );
    a.stop().await;
    b.stop().await;
    drop_db(db).await;
}

#[tokio::test]
async fn a_member_removed_on_one_node_loses_their_key_on_the_other_within_a_second() {
    let Some(env) = env("cross-node member removal") else { return };
    let (db, a, b) = two_nodes(&env).await;
    let owner = a.register().await;
    let member = b.register().await;
    let add = a
        .post(
            &format!("/v1/accounts/{}/members", owner.account_id),
            Cred::Bearer(&owner.token),
            json!({ "email": member.email, "authority": "administrator" }),
        )
        .await;
    assert_eq!(add.status, StatusCode::CREATED, "{}", add.text);
    // Minted on B with the member's session, in the owner's account.
    let key = secret(&b.mint(&member.token, &owner.account_id, json!({})).await);
    for _ in 0..2 {
        assert_eq!(b.verify(&key, json!({})).await["code"], "VALID");
    }
    let removed = a
        .delete(&format!("/v1/accounts/{}/members/{}", owner.account_id, member.user_id), Cred::Bearer(&owner.token))
        .await;
    assert!(removed.status.is_success(), "{}", removed.text);
    let lag = lag_until(Duration::from_secs(1), async || b.verify(&key, json!({})).await["code"] != "VALID").await;
    println!("cross-node member-removal lag: {lag:?}");
    assert!(lag.is_some(), "node B still accepts the removed member's key 1 s later");
    assert_eq!(b.get("/v1/user", Cred::ApiKey(&key)).await.status, StatusCode::UNAUTHORIZED);
    a.stop().await;
    b.stop().await;
    drop_db(db).await;
}

#[tokio::test]
async fn a_shared_limit_of_ten_allows_exactly_ten_across_both_nodes() {
    let Some(env) = env("shared rate limit") else { return };
    let (db, a, b) = two_nodes(&env).await;
    let u = a.register().await;
    let key =
        secret(&a.mint(&u.token, &u.account_id, json!({ "rate_limit": { "limit": 10, "window_seconds": 60 } })).await);
    let mut answers = Vec::new();
    for i in 0..14 {
        let node = if i % 2 == 0 { &a } else { &b };
        let r = node.get("/v1/user", Cred::ApiKey(&key)).await;
        answers.push((r.status, r.header("ratelimit-remaining").map(str::to_owned)));
    }
    let ok = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let limited = answers.iter().filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!((ok, limited), (10, 4), "{answers:?}");
    // One allowance, spent in order, whichever node answered.
    for (i, (status, remaining)) in answers.iter().take(10).enumerate() {
        assert_eq!(
            (*status, remaining.as_deref()),
            (StatusCode::OK, Some((9 - i).to_string().as_str())),
            "request {i}"
        );
    }
    a.stop().await;
    b.stop().await;
    drop_db(db).await;
}

#[tokio::test]
async fn usage_counted_on_both_nodes_adds_up() {
    let Some(env) = env("summed usage") else { return };
    let (db, a, b) = two_nodes(&env).await;
    let u = a.register().await;
    let k = a.mint(&u.token, &u.account_id, json!({})).await;
    let key = secret(&k);
    for _ in 0..5 {
        assert_eq!(a.verify(&key, json!({})).await["code"], "VALID");
    }
    for _ in 0..7 {
        assert_eq!(b.verify(&key, json!({})).await["code"], "VALID");
    }
    let path = format!("/v1/keys/{}?account_id={}", k["id"].as_str().expect("id"), u.account_id);
    let summed = eventually(3.0, async || b.get(&path, Cred::Bearer(&u.token)).await.body["request_count"] == 12).await;
    assert!(summed, "{}", b.get(&path, Cred::Bearer(&u.token)).await.text);
    a.stop().await;
    b.stop().await;
    drop_db(db).await;
}

#[tokio::test]
async fn a_node_that_loses_its_subscription_clears_its_cache_and_resubscribes() {
    let Some(env) = env("resubscription") else { return };
    let (db, a, b) = two_nodes(&env).await;
    let u = a.register().await;
    let k = a.mint(&u.token, &u.account_id, json!({})).await;
    let key = secret(&k);
    assert_eq!(b.verify(&key, json!({})).await["code"], "VALID");
    let misses = metric(&b, "keygate_key_cache_misses").await;
    assert_eq!(b.verify(&key, json!({})).await["code"], "VALID");
    assert_eq!(metric(&b, "keygate_key_cache_misses").await, misses, "the second use is a cache hit");
    // Cut every subscription on this database (both nodes'), as a failover or a proxy would.
    let mut admin = sqlx::PgConnection::connect(&env.postgres).await.expect("admin connection");
    let pg = env.postgres.as_str();
    let listeners = |db: String| async move {
        let mut c = sqlx::PgConnection::connect(pg).await.expect("admin connection");
        let pids: Vec<(i32,)> = sqlx::query_as(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'keygate-listener'",
        )
        .bind(db)
        .fetch_all(&mut c)
        .await
        .expect("pg_stat_activity");
        pids.into_iter().map(|(p,)| p).collect::<Vec<i32>>()
    };
    let before = listeners(db.name.clone()).await;
    assert_eq!(before.len(), 2, "one LISTEN connection per node");
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND application_name = 'keygate-listener'",
    )
    .bind(&db.name)
    .execute(&mut admin)
    .await
    .expect("terminate");
    let back = lag_until(Duration::from_secs(5), async || {
        let now = listeners(db.name.clone()).await;
        now.len() == 2 && now.iter().all(|p| !before.contains(p))
    })
    .await;
    println!("resubscribed after: {back:?}");
    assert!(back.is_some(), "the nodes did not resubscribe");
    // The cache was cleared: the next use goes to storage again.
    assert_eq!(b.verify(&key, json!({})).await["code"], "VALID");
    assert!(metric(&b, "keygate_key_cache_misses").await > misses, "the cache was not cleared");
    let revoke = a
        .delete(
            &format!("/v1/keys/{}?account_id={}", k["id"].as_str().expect("id"), u.account_id),
            Cred::Bearer(&u.token),
        )
        .await;
    assert_eq!(revoke.status, StatusCode::OK);
    let lag = lag_until(Duration::from_secs(1), async || b.verify(&key, json!({})).await["code"] == "REVOKED").await;
    println!("revocation lag after resubscribing: {lag:?}");
    assert!(lag.is_some(), "invalidations do not flow after resubscribing");
    a.stop().await;
    b.stop().await;
    drop_db(db).await;
}

#[tokio::test]
async fn an_unreachable_redis_applies_the_configured_policy_and_is_counted() {
    let Some(env) = env("Redis failure policy") else { return };
    let db = fresh_db(&env.postgres).await;
    let healthy = node(&db, &env.redis, FailurePolicy::FailClosed).await;
    // Port 1: nothing listens, every connection is refused.
    let closed = node(&db, "redis://127.0.0.1:1", FailurePolicy::FailClosed).await;
    let open = node(&db, "redis://127.0.0.1:1", FailurePolicy::FailOpen).await;
    let u = healthy.register().await;
    let key = secret(
        &healthy.mint(&u.token, &u.account_id, json!({ "rate_limit": { "limit": 3, "window_seconds": 60 } })).await,
    );
    let started = Instant::now();
    let refused = closed.get("/v1/user", Cred::ApiKey(&key)).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"), "{}", refused.text);
    assert!(started.elapsed() < Duration::from_secs(2), "a dead Redis must not hang requests: {:?}", started.elapsed());
    // Fail open still limits per node.
    let statuses: Vec<StatusCode> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(open.get("/v1/user", Cred::ApiKey(&key)).await.status);
        }
        v
    };
    assert_eq!(statuses, [StatusCode::OK, StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS]);
    assert!(metric(&open, "keygate_shared_rate_limit_failures").await >= 4.0);
    assert!(metric(&closed, "keygate_shared_rate_limit_failures").await >= 1.0);
    assert_eq!(metric(&healthy, "keygate_shared_rate_limit_failures").await, 0.0);
    for app in [healthy, closed, open] {
        app.stop().await;
    }
    drop_db(db).await;
}

#[test]
fn database_urls_are_rewritten_for_the_fresh_database() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/test", "kg_it_x"),
        "postgres://postgres@127.0.0.1:5432/kg_it_x"
    );
    assert_eq!(with_database("postgres://u:p@h/test?sslmode=disable", "d"), "postgres://u:p@h/d?sslmode=disable");
    assert_eq!(with_database("postgres://h:5432", "d"), "postgres://h:5432/d");
}

#[tokio::test]
async fn sign_in_failures_on_one_node_count_on_the_other() {
    let Some(env) = env("shared login throttle") else { return };
    let db = fresh_db(&env.postgres).await;
    // A back-off long enough that a slow, busy test machine cannot outlast it.
    let slow_backoff = |s: &mut Settings| s.login.backoff_base_seconds = 60;
    let a = node_with(&db, &env.redis, FailurePolicy::FailClosed, slow_backoff).await;
    let b = node_with(&db, &env.redis, FailurePolicy::FailClosed, slow_backoff).await;
    let u = a.register().await;
    let wrong = json!({ "email": u.email, "password": "not the password at all" });
    // The email's threshold is 10 (docs/api.md §4 Identity): five wrong passwords on each node…
    for node in [&a, &b, &a, &b, &a, &b, &a, &b, &a, &b] {
        assert_eq!(node.post("/v1/login", Cred::None, wrong.clone()).await.status, StatusCode::UNAUTHORIZED);
    }
    // …and both refuse the eleventh, the right password too: one counter, not one per node.
    let right = json!({ "email": u.email, "password": PASSWORD });
    for node in [&a, &b] {
        let r = node.post("/v1/login", Cred::None, right.clone()).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
        assert!(r.headers.contains_key("retry-after"));
    }
    drop_db(db).await;
}
