//! Plan limits are account-wide ceilings (docs/api.md §7 "Plan limits"): a plan's named rate
//! limits and its quota are shared by every key of the account, so minting more keys buys
//! nothing; the tightest limit refuses; a quota resets at the UTC period start, with
//! `Retry-After` to it; a route's `cost` counts N. Quota tests drive the clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{TimeZone, Utc};
use keygate_core::RateLimit;
use keygate_core::quota::{Quota, QuotaPeriod};
use keygate_core::ratelimit::NamedRateLimit;
use keygate_server::Settings;
use keygate_server::config::{PlanSettings, RouteSettings};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

fn named(name: &str, limit: u32, window_seconds: u32) -> NamedRateLimit {
    NamedRateLimit { name: name.into(), limit, window_seconds, burst: None }
}

/// New accounts get `plan` (named `metered`).
fn metered(plan: PlanSettings) -> impl FnOnce(&mut Settings) {
    move |s: &mut Settings| {
        s.plans.insert("metered".into(), plan);
        s.signup.default_plan = "metered".into();
    }
}

/// A clock the test moves; starts at `start` (Unix seconds).
fn driven_clock(start: i64) -> (Arc<AtomicI64>, keygate_server::limits::Clock) {
    let at = Arc::new(AtomicI64::new(start));
    let read = Arc::clone(&at);
    let clock = Arc::new(move || Utc.timestamp_opt(read.load(Ordering::SeqCst), 0).single().unwrap_or_default());
    (at, clock)
}

fn unix(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).single().expect("a valid time").timestamp()
}

async fn keys(app: &TestApp, u: &Registered, n: usize, body: Value) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(key_of(&app.mint(&u.token, &u.account_id, body.clone()).await));
    }
    out
}

#[tokio::test]
async fn an_account_limit_is_shared_by_every_key_so_minting_more_keys_does_not_multiply_it() {
    let plan = PlanSettings { rate_limits: vec![named("hour", 6, 3600)], ..PlanSettings::default() };
    let app = spawn_app_with(metered(plan)).await;
    let u = app.register().await;
    let three = keys(&app, &u, 3, json!({})).await;
    for i in 0..6 {
        let answer = app.verify(&three[i % 3], json!({})).await;
        assert_eq!(answer["code"], "VALID", "use {i}: {answer}");
        assert_eq!(answer["plan"], "metered");
        assert_eq!(
            answer["ratelimits"],
            json!([{ "name": "hour", "scope": "account", "limit": 6, "remaining": 5 - i, "reset": answer["ratelimits"][0]["reset"] }])
        );
        assert_eq!(answer["quota"], Value::Null, "no quota on this plan");
    }
    for k in &three {
        assert_eq!(app.verify(k, json!({})).await["code"], "RATE_LIMITED", "the account's 6 are spent, for every key");
    }
    let fresh = key_of(&app.mint(&u.token, &u.account_id, json!({})).await);
    let refused = app.verify(&fresh, json!({})).await;
    assert_eq!(refused["code"], "RATE_LIMITED", "a new key brings no new allowance: {refused}");
    assert_eq!(refused["ratelimits"][0]["name"], "hour");
    let api = app.get("/v1/user", Cred::ApiKey(&fresh)).await;
    assert_eq!((api.status, api.code()), (StatusCode::TOO_MANY_REQUESTS, "rate_limited"));
    assert!(api.header("retry-after").is_some());
    // Another account has its own 6.
    let other = app.register().await;
    let theirs = key_of(&app.mint(&other.token, &other.account_id, json!({})).await);
    assert_eq!(app.verify(&theirs, json!({})).await["code"], "VALID");
}

#[tokio::test]
async fn the_plans_unnamed_rate_limit_is_an_account_limit_named_default() {
    let plan = PlanSettings {
        rate_limit: Some(RateLimit { limit: 4, window_seconds: 3600, burst: None }),
        ..PlanSettings::default()
    };
    let app = spawn_app_with(metered(plan)).await;
    let u = app.register().await;
    let two = keys(&app, &u, 2, json!({})).await;
    for i in 0..4 {
        let answer = app.verify(&two[i % 2], json!({})).await;
        assert_eq!(answer["code"], "VALID", "{answer}");
        assert_eq!(
            (answer["ratelimits"][0]["name"].clone(), answer["ratelimits"][0]["scope"].clone()),
            (json!("default"), json!("account"))
        );
    }
    assert_eq!(app.verify(&two[0], json!({})).await["code"], "RATE_LIMITED");
    assert_eq!(app.verify(&two[1], json!({})).await["code"], "RATE_LIMITED", "two keys share the plan's 4, not 4 each");
}

#[tokio::test]
async fn the_tightest_limit_refuses_whether_the_keys_or_the_accounts() {
    let plan = PlanSettings { rate_limits: vec![named("hour", 5, 3600)], ..PlanSettings::default() };
    let app = spawn_app_with(metered(plan)).await;
    let u = app.register().await;
    // The key's own 2 a minute is tighter than the account's 5.
    let tight = key_of(
        &app.mint(&u.token, &u.account_id, json!({ "rate_limit": { "limit": 2, "window_seconds": 3600 } })).await,
    );
    let first = app.verify(&tight, json!({})).await;
    assert_eq!(first["code"], "VALID");
    assert_eq!(first["ratelimit"]["limit"], 2, "the tightest is the key's: {first}");
    assert_eq!(first["ratelimits"].as_array().map(Vec::len), Some(2), "both listed: {first}");
    assert_eq!(app.verify(&tight, json!({})).await["code"], "VALID");
    let refused = app.verify(&tight, json!({})).await;
    assert_eq!(refused["code"], "RATE_LIMITED");
    assert_eq!(
        (refused["ratelimits"][0]["scope"].clone(), refused["ratelimit"]["limit"].clone()),
        (json!("key"), json!(2))
    );
    // The account's 5 is now tighter than a key's own 100: it had 2 spent; the refusal by the
    // key's limit spent none of it.
    let loose = key_of(
        &app.mint(&u.token, &u.account_id, json!({ "rate_limit": { "limit": 100, "window_seconds": 3600 } })).await,
    );
    for i in 0..3 {
        let answer = app.verify(&loose, json!({})).await;
        assert_eq!(answer["code"], "VALID", "use {i}: {answer}");
        assert_eq!(answer["ratelimit"]["limit"], 5, "the account's is the tightest now");
    }
    let refused = app.verify(&loose, json!({})).await;
    assert_eq!(refused["code"], "RATE_LIMITED");
    assert_eq!(
        (refused["ratelimits"][0]["scope"].clone(), refused["ratelimits"][0]["name"].clone()),
        (json!("account"), json!("hour"))
    );
    // …and that refusal gave back what it took of the key's own 100 (97 left, not 96).
    let raised = app.verify(&loose, json!({ "cost": 0 })).await;
    assert_eq!(raised["code"], "VALID");
    let own = raised["ratelimits"].as_array().and_then(|l| l.iter().find(|l| l["scope"] == "key").cloned());
    assert_eq!(own.map(|o| o["remaining"].clone()), Some(json!(97)), "{raised}");
}

#[tokio::test]
async fn a_daily_quota_resets_at_midnight_utc_and_retry_after_says_when() {
    let plan = PlanSettings { quota: Some(Quota { requests: 3, period: QuotaPeriod::Day }), ..PlanSettings::default() };
    let (at, clock) = driven_clock(unix(2026, 6, 9, 23, 59, 0));
    let app = spawn_app_with_clock(metered(plan), clock).await;
    let u = app.register().await;
    let two = keys(&app, &u, 2, json!({})).await;
    for i in 0..3 {
        let answer = app.verify(&two[i % 2], json!({})).await;
        assert_eq!(answer["code"], "VALID", "{answer}");
        assert_eq!(answer["quota"], json!({ "limit": 3, "remaining": 2 - i, "reset": 60 }));
    }
    let refused = app.verify(&two[1], json!({})).await;
    assert_eq!(refused["code"], "QUOTA_EXCEEDED", "{refused}");
    assert_eq!(refused["quota"], json!({ "limit": 3, "remaining": 0, "reset": 60 }));
    let api = app.get("/v1/user", Cred::ApiKey(&two[0])).await;
    assert_eq!((api.status, api.code()), (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded"), "{}", api.text);
    assert_eq!(api.header("retry-after"), Some("60"), "until 00:00 UTC");
    at.store(unix(2026, 6, 9, 23, 59, 59), Ordering::SeqCst);
    assert_eq!(app.verify(&two[0], json!({})).await["code"], "QUOTA_EXCEEDED", "a second before midnight");
    at.store(unix(2026, 6, 10, 0, 0, 0), Ordering::SeqCst);
    let next_day = app.verify(&two[0], json!({})).await;
    assert_eq!(next_day["code"], "VALID", "a new day, a new quota: {next_day}");
    assert_eq!(next_day["quota"], json!({ "limit": 3, "remaining": 2, "reset": 86400 }));
}

#[tokio::test]
async fn a_monthly_quota_runs_to_the_first_of_the_next_month_and_cost_counts() {
    let plan =
        PlanSettings { quota: Some(Quota { requests: 5, period: QuotaPeriod::Month }), ..PlanSettings::default() };
    let (at, clock) = driven_clock(unix(2026, 12, 31, 23, 0, 0));
    let app = spawn_app_with_clock(metered(plan), clock).await;
    let u = app.register().await;
    let key = key_of(&app.mint(&u.token, &u.account_id, json!({})).await);
    let answer = app.verify(&key, json!({ "cost": 4 })).await;
    assert_eq!((answer["code"].clone(), answer["quota"]["remaining"].clone()), (json!("VALID"), json!(1)));
    let refused = app.verify(&key, json!({ "cost": 2 })).await;
    assert_eq!(refused["code"], "QUOTA_EXCEEDED", "2 more do not fit in the 1 left: {refused}");
    assert_eq!(refused["quota"], json!({ "limit": 5, "remaining": 1, "reset": 3600 }), "a refusal spends nothing");
    assert_eq!(app.verify(&key, json!({})).await["code"], "VALID", "the last one fits");
    at.store(unix(2027, 1, 1, 0, 0, 0), Ordering::SeqCst);
    let january = app.verify(&key, json!({ "cost": 5 })).await;
    assert_eq!(january["code"], "VALID", "{january}");
    assert_eq!(january["quota"]["reset"], 31 * 86400, "to February the 1st");
}

#[tokio::test]
async fn a_route_cost_counts_n_against_the_quota_and_the_account_limits() {
    let plan = PlanSettings {
        rate_limits: vec![named("hour", 100, 3600)],
        quota: Some(Quota { requests: 10, period: QuotaPeriod::Day }),
        ..PlanSettings::default()
    };
    let (_at, clock) = driven_clock(unix(2026, 6, 9, 12, 0, 0));
    let (up, _signals) = upstream().await;
    let routes = vec![RouteSettings { cost: 4, ..route("/v1/reports", &up, "reports") }];
    let app = spawn_app_with_clock(
        |s| {
            metered(plan)(s);
            s.gateway.routes = routes;
        },
        clock,
    )
    .await;
    let u = app.register().await;
    let key = key_of(&app.mint(&u.token, &u.account_id, json!({})).await);
    for i in 0..2 {
        let ok = app.get("/v1/reports/q1", Cred::ApiKey(&key)).await;
        assert_eq!(ok.status, StatusCode::OK, "request {i}: {}", ok.text);
    }
    let third = app.get("/v1/reports/q1", Cred::ApiKey(&key)).await;
    assert_eq!(
        (third.status, third.code()),
        (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded"),
        "8 of 10 spent, 4 more do not fit"
    );
    assert_eq!(third.header("retry-after"), Some("43200"), "until midnight UTC");
    let answer = app.verify(&key, json!({ "cost": 2 })).await;
    assert_eq!(answer["code"], "VALID", "2 still fit: {answer}");
    assert_eq!(answer["quota"]["remaining"], 0);
    let hour = answer["ratelimits"].as_array().and_then(|l| l.iter().find(|l| l["name"] == "hour").cloned());
    assert_eq!(hour.map(|m| m["remaining"].clone()), Some(json!(90)), "4 + 4 + 2 of the 100, the refused 4 given back");
}

#[tokio::test]
async fn gateway_headers_describe_the_tightest_limit() {
    let plan =
        PlanSettings { rate_limits: vec![named("second", 50, 1), named("minute", 3, 60)], ..PlanSettings::default() };
    let (app, _signals) = gateway_app_with(|_| {}, metered(plan)).await;
    let u = app.register().await;
    let key = key_of(&app.mint(&u.token, &u.account_id, json!({})).await);
    let ok = app.get("/v1/companies/1", Cred::ApiKey(&key)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!((ok.header("ratelimit-limit"), ok.header("ratelimit-remaining")), (Some("3"), Some("2")));
}

/// A quota that cannot be counted is not granted: with Redis unreachable under `fail_closed`,
/// a key of an account whose plan has only a quota (no rate limit to fail first) gets 503.
#[tokio::test]
async fn a_quota_fails_closed_while_redis_is_down() {
    let plan =
        PlanSettings { quota: Some(Quota { requests: 100, period: QuotaPeriod::Day }), ..PlanSettings::default() };
    let app = spawn_app_with(|s| {
        metered(plan)(s);
        s.redis_url = "redis://127.0.0.1:1".into();
    })
    .await;
    let u = app.register().await;
    let key = key_of(&app.mint(&u.token, &u.account_id, json!({})).await);
    let v = app.post("/v1/keys/verify", Cred::None, json!({ "key": key })).await;
    assert_eq!((v.status, v.code()), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"), "{}", v.text);
    let g = app.get("/v1/user", Cred::ApiKey(&key)).await;
    assert_eq!(g.status, StatusCode::SERVICE_UNAVAILABLE, "{}", g.text);
}
