//! Usage analytics at scale (BENCHMARKS.md, "Usage analytics"): `cargo bench -p
//! keygate-server --bench usage_analytics`.
//!
//! Seeds a SQLite file with one account of 10,000 keys × 366 days of daily usage rows (every
//! key `VALID` every day, and `RATE_LIMITED` one day in seven: ≈ 1.14 rows per key and day),
//! the account's own daily rollup as the flush writes it, then measures the service call
//! behind `GET /v1/usage` over the whole range, grouped by day and by key, plus one key's
//! year (`GET /v1/keys/{key}/usage`'s read). Prints the rows and bytes per key and day.
//! `KEYGATE_BENCH_USAGE_KEYS=N` seeds N keys instead (a quick run).
//!
//! Seeding goes around the store (plain SQL over the migrated schema, in primary-key order):
//! flushing 4 million rows through `record_usage` would take far longer and measure nothing
//! this bench is about.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use criterion::{Criterion, criterion_group, criterion_main};
use keygate_core::id::{IdKind, new_id};
use keygate_server::service::{self, Services};
use keygate_store::Granularity;
use sqlx::Row;
use sqlx::any::AnyPoolOptions;

const DAYS: i64 = 366;
/// The range's last day: the seeded year ends here.
const LAST_DAY: (i32, u32, u32) = (2026, 3, 1);

struct Seeded {
    _dir: tempfile::TempDir,
    services: Services,
    store: Arc<dyn keygate_store::Store>,
    account_id: String,
    key_id: String,
}

fn keys() -> i64 {
    std::env::var("KEYGATE_BENCH_USAGE_KEYS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
}

fn last_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(LAST_DAY.0, LAST_DAY.1, LAST_DAY.2).expect("date")
}

async fn seed() -> Seeded {
    let dir = tempfile::tempdir().expect("tmp");
    let url = format!("sqlite://{}", dir.path().join("usage.db").display());
    let store = keygate_store::open(&url).await.expect("open");
    let pool = AnyPoolOptions::new().max_connections(1).connect(&url).await.expect("pool");
    let account_id = new_id(IdKind::Account);
    let n = keys();
    let first = last_day() - chrono::Duration::days(DAYS - 1);
    let first_ms = first.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_millis();
    let bytes = async |pool: &sqlx::AnyPool| -> i64 {
        let pages: i64 = sqlx::query("PRAGMA page_count").fetch_one(pool).await.expect("pages").get(0);
        let size: i64 = sqlx::query("PRAGMA page_size").fetch_one(pool).await.expect("size").get(0);
        pages * size
    };
    let started = Instant::now();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO accounts (id, name, plan, created_at) VALUES ('{account_id}', 'Bench Co', 'pro', 0);
         WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < {n} - 1)
         INSERT INTO api_keys (id, digest, key_part, class, name, account_id, authority, scopes, created_at,
             created_by, ip_allowlist, metadata)
         SELECT printf('key_bench%011d', i), printf('%064d', i), printf('kg_bench%08d', i), 'org',
             'bench key ' || i, '{account_id}', 'user', '[\"*:*\"]', 0, 'operator', '[]', '{{}}' FROM k;
         VACUUM;"
    )))
    .execute(&pool)
    .await
    .expect("keys");
    let before = bytes(&pool).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "BEGIN;
         WITH RECURSIVE d(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM d WHERE j < {DAYS} - 1)
         INSERT INTO usage_daily (account_id, key_id, outcome, start, n)
         SELECT k.account_id, k.id, o.outcome, {first_ms} + d.j * 86400000, 100 + abs(random()) % 900
         FROM api_keys k, (SELECT 'RATE_LIMITED' AS outcome UNION ALL SELECT 'VALID') o, d
         WHERE k.account_id = '{account_id}' AND (o.outcome = 'VALID' OR d.j % 7 = 0)
         ORDER BY k.id, o.outcome, d.j;
         COMMIT;"
    )))
    .execute(&pool)
    .await
    .expect("daily rows");
    let after_daily = bytes(&pool).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO usage_account_daily (account_id, start, outcome, n)
         SELECT account_id, start, outcome, SUM(n) FROM usage_daily WHERE account_id = '{account_id}'
         GROUP BY account_id, start, outcome;"
    )))
    .execute(&pool)
    .await
    .expect("account rollup");
    let after_rollup = bytes(&pool).await;
    let rows: i64 = sqlx::query("SELECT COUNT(*) FROM usage_daily").fetch_one(&pool).await.expect("count").get(0);
    let key_days = (n * DAYS) as f64;
    println!(
        "seeded {n} keys × {DAYS} days in {:.1} s: {rows} daily rows ({:.2} per key and day), \
         {:.1} bytes per key and day in usage_daily (pages, SQLite), account rollup {} KiB",
        started.elapsed().as_secs_f64(),
        rows as f64 / key_days,
        (after_daily - before) as f64 / key_days,
        (after_rollup - after_daily) / 1024,
    );
    pool.close().await;
    let settings = keygate_server::Settings::default();
    let services = Services::standalone(&settings, Arc::clone(&store)).expect("services");
    Seeded { _dir: dir, services, store, account_id, key_id: "key_bench00000000042".to_owned() }
}

fn usage_analytics(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let seeded = rt.block_on(seed());
    let caller =
        rt.block_on(service::operator::in_account(&seeded.services, &seeded.account_id, None)).expect("caller");
    let to = last_day().format("%Y-%m-%d").to_string();
    let from = (last_day() - chrono::Duration::days(DAYS - 1)).format("%Y-%m-%d").to_string();
    let account = async |group_by: &str| {
        let u = service::usage::account_usage(&seeded.services, &caller, Some(group_by), Some(&from), Some(&to))
            .await
            .expect("usage");
        assert!(u.totals.total() > 0);
        u
    };
    // One timed run of each first, printed, so a reader sees the single-call figure too.
    for group_by in ["day", "key"] {
        let started = Instant::now();
        let u = rt.block_on(account(group_by));
        let rows = match &u.rows {
            service::usage::AccountRows::Days(d) => d.len(),
            service::usage::AccountRows::Keys(k) => k.len(),
        };
        println!("GET /v1/usage group_by={group_by}, {DAYS} days: {rows} rows in {:?} (first call)", started.elapsed());
    }
    let mut group = c.benchmark_group("usage_analytics");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function("account_by_day_366_days", |b| b.iter(|| rt.block_on(account("day"))));
    group.bench_function("account_by_key_366_days", |b| b.iter(|| rt.block_on(account("key"))));
    let store = Arc::clone(&seeded.store);
    let (key_from, key_to) = (
        (last_day() - chrono::Duration::days(DAYS - 1)).and_hms_opt(0, 0, 0).expect("t").and_utc(),
        last_day().and_hms_opt(0, 0, 0).expect("t").and_utc(),
    );
    group.bench_function("one_key_366_days", |b| {
        b.iter(|| {
            rt.block_on(store.key_usage(&seeded.account_id, &seeded.key_id, Granularity::Day, key_from, key_to))
                .expect("key usage")
        })
    });
    group.finish();
}

criterion_group!(benches, usage_analytics);
criterion_main!(benches);
