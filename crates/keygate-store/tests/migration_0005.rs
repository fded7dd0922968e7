//! Migration 0005 moves the daily counts kept before usage by outcome into the new tables
//! (as `VALID`, which is all they counted) and starts `success_count` from the old
//! `request_count`. Run on SQLite from the migration files themselves, with a key that has
//! old counts; the PostgreSQL file's date arithmetic is the same rule (days since 1970).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use sqlx::Row;
use sqlx::any::AnyPoolOptions;

#[tokio::test]
async fn old_daily_counts_become_valid_outcomes_and_successes() {
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new().max_connections(1).connect("sqlite::memory:").await.unwrap();
    for sql in [
        include_str!("../migrations/sqlite/0001_init.sql"),
        include_str!("../migrations/sqlite/0002_login_throttle.sql"),
        include_str!("../migrations/sqlite/0003_invalidations.sql"),
        include_str!("../migrations/sqlite/0004_key_successor.sql"),
        "INSERT INTO accounts (id, name, plan, created_at) VALUES ('acc_1', 'a', 'free', 0); \
         INSERT INTO api_keys (id, digest, key_part, class, name, account_id, authority, scopes, created_at, \
             created_by, request_count, ip_allowlist, metadata) \
         VALUES ('key_1', 'd', 'kg_1', 'org', 'k', 'acc_1', 'user', '[]', 0, 'operator', 12, '[]', '{}'); \
         INSERT INTO key_usage_daily (key_id, day, requests) VALUES ('key_1', '2026-03-10', 5), ('key_1', '2026-03-11', 7);",
        include_str!("../migrations/sqlite/0005_usage_outcomes.sql"),
    ] {
        sqlx::raw_sql(sql).execute(&pool).await.unwrap();
    }
    let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 3, d).unwrap().and_hms_opt(0, 0, 0).unwrap();
    let rows = sqlx::query("SELECT account_id, key_id, outcome, start, n FROM usage_daily ORDER BY start")
        .fetch_all(&pool)
        .await
        .unwrap();
    let got: Vec<(String, String, String, i64, i64)> = rows
        .iter()
        .map(|r| (r.get("account_id"), r.get("key_id"), r.get("outcome"), r.get("start"), r.get("n")))
        .collect();
    let row = |d, n| ("acc_1".into(), "key_1".into(), "VALID".into(), day(d).and_utc().timestamp_millis(), n);
    assert_eq!(got, vec![row(10, 5), row(11, 7)]);
    let account: i64 = sqlx::query("SELECT SUM(n) AS n FROM usage_account_daily WHERE account_id = 'acc_1'")
        .fetch_one(&pool)
        .await
        .unwrap()
        .get("n");
    assert_eq!(account, 12);
    let key = sqlx::query("SELECT request_count, success_count FROM api_keys").fetch_one(&pool).await.unwrap();
    assert_eq!((key.get::<i64, _>("request_count"), key.get::<i64, _>("success_count")), (12, 12));
}
