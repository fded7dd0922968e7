//! Limits as they change under a key in use: a raised rate limit takes effect at once (its
//! bucket does not keep the old limit's debt), in memory and through Redis; and verify's
//! `usage_remaining` is the exact count in every answer, refusals included, on SQLite and
//! PostgreSQL.

use std::io::Write as _;

use keygate_core::RateLimit;
use keygate_server::Settings;
use keygate_server::config::PlanSettings;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

fn env(name: &str, test: &str) -> Option<String> {
    let value = std::env::var(name).ok().filter(|v| !v.is_empty());
    if value.is_none() {
        // Past the harness's capture of `eprintln!`, so a plain `cargo test` shows the skip.
        let _ = writeln!(std::io::stderr(), "SKIPPED: {test} needs {name}");
    }
    value
}

fn with_redis(url: String) -> impl FnOnce(&mut Settings) {
    move |s: &mut Settings| {
        roomy_ceiling(s);
        s.redis_url = url
    }
}

/// The default plan's keys may go up to 1000 a second, so raising one that far is allowed
/// (without it the plan's own 600 a minute is the ceiling: 400 `limit_exceeds_plan`).
fn roomy_ceiling(s: &mut Settings) {
    let trial = s.plans.get_mut("trial").expect("the default plan");
    trial.key_rate_limit_max = Some(RateLimit { limit: 1000, window_seconds: 1, burst: None });
}

/// Spends a 10-a-minute key, raises it to 1000 a second, and expects the very next use to pass.
async fn raise_a_spent_limit(app: &TestApp) {
    let u = app.register().await;
    let k = app.mint(&u.token, &u.account_id, json!({ "rate_limit": { "limit": 10, "window_seconds": 60 } })).await;
    let (key, id) = (k["key"].as_str().expect("key"), k["id"].as_str().expect("id"));
    for i in 0..10 {
        assert_eq!(app.verify(key, json!({})).await["code"], "VALID", "use {i}");
    }
    assert_eq!(app.verify(key, json!({})).await["code"], "RATE_LIMITED", "the 11th in a minute");
    let raised = app
        .patch(
            &format!("/v1/keys/{id}"),
            Cred::Bearer(&u.token),
            json!({ "rate_limit": { "limit": 1000, "window_seconds": 1 } }),
        )
        .await;
    assert_eq!(raised.status, StatusCode::OK, "{}", raised.text);
    let next = app.verify(key, json!({})).await;
    assert_eq!(next["code"], "VALID", "the raised limit applies at once, not after 59 s: {next}");
    // The key's own limit, among `ratelimits` (the tightest, `ratelimit`, is now the plan's
    // account-wide 600 a minute: docs/api.md §7 "Plan limits").
    let own = next["ratelimits"].as_array().and_then(|l| l.iter().find(|l| l["scope"] == "key").cloned());
    let own = own.expect("the key's own limit applied");
    assert_eq!(own["limit"], 1000);
    // The uses already made count against the new limit (carried over as units, not time).
    let remaining = own["remaining"].as_u64().expect("remaining");
    assert!((985..=990).contains(&remaining), "{next}");
    let gateway_side = app.get("/v1/user", Cred::ApiKey(key)).await;
    assert_eq!(gateway_side.status, StatusCode::OK, "{}", gateway_side.text);
}

#[tokio::test]
async fn a_raised_key_limit_takes_effect_at_once() {
    raise_a_spent_limit(&spawn_app_with(roomy_ceiling).await).await;
}

#[tokio::test]
async fn a_raised_key_limit_takes_effect_at_once_with_redis() {
    let Some(url) = env("KEYGATE_TEST_REDIS_URL", "a_raised_key_limit_takes_effect_at_once_with_redis") else {
        return;
    };
    raise_a_spent_limit(&spawn_app_with(with_redis(url)).await).await;
}

/// A key without a limit of its own follows its account's plan: the operator moving the
/// account to a bigger plan frees it at once too.
async fn a_bigger_plan_frees_a_spent_key(configure: impl FnOnce(&mut Settings)) {
    let app = spawn_app_with(|s| {
        s.admin_token = "operator-token-for-limit-tests".to_owned().into();
        let plan = |limit, window_seconds| PlanSettings {
            rate_limit: Some(RateLimit { limit, window_seconds, burst: None }),
            ..PlanSettings::default()
        };
        s.plans.insert("small".into(), plan(3, 60));
        s.plans.insert("big".into(), plan(1000, 1));
        s.signup.default_plan = "small".into();
        configure(s);
    })
    .await;
    let u = app.register().await;
    let key = app.mint(&u.token, &u.account_id, json!({})).await;
    let key = key["key"].as_str().expect("key");
    for _ in 0..3 {
        assert_eq!(app.verify(key, json!({})).await["code"], "VALID");
    }
    assert_eq!(app.verify(key, json!({})).await["code"], "RATE_LIMITED");
    let moved = app
        .patch(
            &format!("/v1/admin/accounts/{}", u.account_id),
            Cred::Bearer("operator-token-for-limit-tests"),
            json!({ "plan": "big" }),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text);
    assert_eq!(app.verify(key, json!({})).await["code"], "VALID", "the plan's new limit applies at once");
}

#[tokio::test]
async fn a_bigger_plan_takes_effect_at_once() {
    a_bigger_plan_frees_a_spent_key(|_| {}).await;
}

#[tokio::test]
async fn a_bigger_plan_takes_effect_at_once_with_redis() {
    let Some(url) = env("KEYGATE_TEST_REDIS_URL", "a_bigger_plan_takes_effect_at_once_with_redis") else { return };
    a_bigger_plan_frees_a_spent_key(with_redis(url)).await;
}

/// The key's true count, from the management API.
async fn true_remaining(app: &TestApp, token: &str, id: &str) -> Value {
    let k = app.get(&format!("/v1/keys/{id}"), Cred::Bearer(token)).await;
    assert_eq!(k.status, StatusCode::OK, "{}", k.text);
    k.body["usage_remaining"].clone()
}

/// 50 credits and a rate limit of 100 a minute: uses of 5 pass, asks for 200 are refused by
/// the rate limit, one of 41 by the credits. Every answer reports what is really left, not
/// the 50 the key had when it was cached.
async fn usage_remaining_is_exact_in_every_answer(app: &TestApp) {
    let u = app.register().await;
    let k = app
        .mint(
            &u.token,
            &u.account_id,
            json!({ "usage_limit": 50, "rate_limit": { "limit": 100, "window_seconds": 60 } }),
        )
        .await;
    let (key, id) = (k["key"].as_str().expect("key"), k["id"].as_str().expect("id"));
    let expect = [
        (5, "VALID", 45),
        (200, "RATE_LIMITED", 45),
        (5, "VALID", 40),
        (200, "RATE_LIMITED", 40),
        (41, "USAGE_EXCEEDED", 40),
        (40, "VALID", 0),
        (200, "RATE_LIMITED", 0),
    ];
    for (cost, code, left) in expect {
        let v = app.verify(key, json!({ "cost": cost })).await;
        assert_eq!((v["code"].as_str(), v["usage_remaining"].as_i64()), (Some(code), Some(left)), "cost {cost}: {v}");
        assert_eq!(true_remaining(app, &u.token, id).await, json!(left));
    }
    let revoked = app.delete(&format!("/v1/keys/{id}"), Cred::Bearer(&u.token)).await;
    assert!(revoked.status.is_success(), "{}", revoked.text);
    let v = app.verify(key, json!({})).await;
    assert_eq!((v["code"].as_str(), v["usage_remaining"].as_i64()), (Some("REVOKED"), Some(0)), "{v}");
    let plain = app.mint(&u.token, &u.account_id, json!({})).await;
    let v = app.verify(plain["key"].as_str().expect("key"), json!({})).await;
    assert_eq!((v["code"].as_str(), &v["usage_remaining"]), (Some("VALID"), &Value::Null), "no credits, no count");
}

#[tokio::test]
async fn verify_reports_the_exact_usage_remaining_in_valid_answers_and_refusals() {
    usage_remaining_is_exact_in_every_answer(&spawn_app().await).await;
}

#[tokio::test]
async fn verify_reports_the_exact_usage_remaining_on_postgres() {
    let test = "verify_reports_the_exact_usage_remaining_on_postgres";
    let Some(base) = env("KEYGATE_TEST_POSTGRES_URL", test) else { return };
    let db = crate::cluster::fresh_db(&base).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let unused = dir.path().join("unused.db");
    let mut settings = Settings { database_url: db.url.clone(), listen: "127.0.0.1:0".into(), ..Settings::default() };
    settings.usage.flush_interval_ms = 100;
    let app = spawn_with_settings(settings, dir, unused).await;
    usage_remaining_is_exact_in_every_answer(&app).await;
    app.stop().await;
    crate::cluster::drop_db(db).await;
}
