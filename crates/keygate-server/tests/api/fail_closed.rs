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
