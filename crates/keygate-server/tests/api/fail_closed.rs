//! Storage down: every check that can fail closed does (503 `unavailable`, never "allow").

use std::sync::atomic::Ordering;

use reqwest::StatusCode;
use serde_json::json;

use crate::faulty::spawn_app_with_faulty_store;
use crate::helpers::*;

#[tokio::test]
async fn storage_down_answers_503_and_never_allows() {
    let (app, store) = spawn_app_with_faulty_store().await;
    let u = app.register().await;
    let fresh = app.mint(&u.token, &u.account_id, json!({})).await;
    let limited = app.mint(&u.token, &u.account_id, json!({ "usage_limit": 100 })).await;
    app.verify(limited["key"].as_str().expect("k"), json!({})).await;

    store.down.store(true, Ordering::SeqCst);
    let v = app.post("/v1/keys/verify", Cred::None, json!({ "key": fresh["key"] })).await;
    assert_eq!((v.status, v.code()), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"), "{}", v.text);
    let v = app.post("/v1/keys/verify", Cred::None, json!({ "key": limited["key"] })).await;
    assert_eq!(v.code(), "unavailable", "a usage limit cannot be checked without storage");
    let g = app.get("/v1/user", Cred::ApiKey(fresh["key"].as_str().expect("k"))).await;
    assert_eq!(g.status, StatusCode::SERVICE_UNAVAILABLE);
    let login = app.post("/v1/login", Cred::None, json!({ "email": u.email, "password": u.password })).await;
    assert_eq!(login.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(app.get("/readyz", Cred::None).await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(app.get("/healthz", Cred::None).await.status, StatusCode::OK);
    assert!(!v.text.contains("test: database is down"), "internal causes stay out of answers");

    store.down.store(false, Ordering::SeqCst);
    let v = app.verify(fresh["key"].as_str().expect("k"), json!({})).await;
    assert_eq!(v["code"], "VALID");
}

#[tokio::test]
async fn readiness_fails_while_redis_is_down_under_fail_closed_and_names_it() {
    use keygate_server::config::FailurePolicy;
    // Port 1: nothing listens, every connection is refused.
    let dead = "redis://127.0.0.1:1";
    let closed = spawn_app_with(|s| {
        s.redis_url = dead.into();
        s.rate_limits.redis_failure_policy = FailurePolicy::FailClosed;
    })
    .await;
    let r = closed.get("/readyz", Cred::None).await;
    assert_eq!((r.status, r.code()), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"), "{}", r.text);
    assert_eq!(r.body["error"]["details"], json!([{ "dependency": "redis" }]), "{}", r.text);
    assert!(!r.text.contains("127.0.0.1:1"), "no addresses or causes in the answer: {}", r.text);
    // What the balancer would otherwise keep sending there: a limited key gets 503.
    let u = closed.register().await;
    let k = closed.mint(&u.token, &u.account_id, json!({ "rate_limit": { "limit": 5, "window_seconds": 60 } })).await;
    let g = closed.get("/v1/user", Cred::ApiKey(k["key"].as_str().expect("k"))).await;
    assert_eq!(g.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(closed.get("/healthz", Cred::None).await.status, StatusCode::OK, "alive, only not ready");
    // fail_open serves without Redis (per-node limits): ready.
    let open = spawn_app_with(|s| {
        s.redis_url = dead.into();
        s.rate_limits.redis_failure_policy = FailurePolicy::FailOpen;
    })
    .await;
    assert_eq!(open.get("/readyz", Cred::None).await.status, StatusCode::OK);
    // A Redis that answers: ready (when the test Redis is configured).
    match std::env::var("KEYGATE_TEST_REDIS_URL").ok().filter(|v| !v.is_empty()) {
        Some(url) => {
            let healthy = spawn_app_with(|s| s.redis_url = url).await;
            let r = healthy.get("/readyz", Cred::None).await;
            assert_eq!((r.status, &r.body), (StatusCode::OK, &json!({ "status": "ready" })), "{}", r.text);
        }
        None => {
            use std::io::Write as _;
            let _ =
                writeln!(std::io::stderr(), "SKIPPED (part): readiness with a live Redis needs KEYGATE_TEST_REDIS_URL");
        }
    }
}
