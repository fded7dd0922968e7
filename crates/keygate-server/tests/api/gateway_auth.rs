//! The gateway's checks before it forwards (docs/api.md §5 Gateway (reverse proxy)): every
//! credential header spelling, sessions naming their account, revoked keys, every authorization
//! rule, and per-route rate limits.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn every_credential_header_spelling_is_accepted() {
    let (app, _) = gateway_app(|_| {}).await;
    let u = app.register().await;
    let key = key_of(&app.mint(&u.token, &u.account_id, json!({})).await);
    for line in [
        format!("X-API-Key: {key}"),
        format!("X-Api-Key: {key}"),
        format!("x-api-key: {key}"),
        format!("Authorization: Bearer {key}"),
        format!("authorization: bearer {key}"),
    ] {
        let answer = raw_get(app.addr, "/v1/companies", &line).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{line}: {}", answer.lines().next().unwrap_or(""));
    }
    let none = app.get("/v1/companies", Cred::None).await;
    assert_eq!((none.status, none.code()), (StatusCode::UNAUTHORIZED, "missing_credentials"));
    let bad = app.get("/v1/companies", Cred::ApiKey("kg_notakey")).await;
    assert_eq!((bad.status, bad.code()), (StatusCode::UNAUTHORIZED, "invalid_credentials"));
    let query = app.get(&format!("/v1/companies?api_key={key}"), Cred::None).await;
    assert_eq!(query.code(), "missing_credentials", "credentials in the query string are never accepted");
}

#[tokio::test]
async fn org_key_on_a_user_scoped_route_is_refused() {
    let (app, _) = gateway_app(|_| {}).await;
    let u = app.register().await;
    let org = key_of(&app.mint(&u.token, &u.account_id, json!({ "class": "org" })).await);
    let user = key_of(&app.mint(&u.token, &u.account_id, json!({})).await);
    let r = app.get("/v1/lists", Cred::ApiKey(&org)).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "user_credential_required"), "{}", r.text);
    assert_eq!(app.get("/v1/lists", Cred::ApiKey(&user)).await.status, StatusCode::OK);
    assert_eq!(
        app.get("/v1/companies", Cred::ApiKey(&org)).await.status,
        StatusCode::OK,
        "any credential on companies"
    );
}

#[tokio::test]
async fn read_only_key_cannot_write() {
    let (app, _) = gateway_app(|_| {}).await;
    let u = app.register().await;
    let ro = key_of(&app.mint(&u.token, &u.account_id, json!({ "class": "org", "scopes": ["*:read"] })).await);
    assert_eq!(app.get("/v1/companies", Cred::ApiKey(&ro)).await.status, StatusCode::OK);
    for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        let r = app.call(m.clone(), "/v1/companies/1", Cred::ApiKey(&ro), Some(json!({}))).await;
        assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "insufficient_scope"), "{m}");
    }
    let head = app.call(Method::HEAD, "/v1/companies", Cred::ApiKey(&ro), None).await;
    assert_eq!(head.status, StatusCode::OK, "HEAD is a read");
}

#[tokio::test]
async fn a_create_only_role_may_post_leads_and_nothing_else() {
    let (app, _) = gateway_app(|_| {}).await;
    let u = app.register().await;
    let role_id = create_role(&app, &u, "lead-intake", &["leads:create"]).await;
    let intake = key_of(&app.mint(&u.token, &u.account_id, json!({ "role_id": role_id })).await);
    let r = app.post("/v1/leads", Cred::ApiKey(&intake), json!({ "email": "lead@prospect.example" })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["headers"]["x-keygate-scopes"], "leads:create");
    for (m, path) in [(Method::GET, "/v1/leads"), (Method::DELETE, "/v1/leads/1"), (Method::GET, "/v1/companies")] {
        let r = app.call(m.clone(), path, Cred::ApiKey(&intake), None).await;
        assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "insufficient_scope"), "{m} {path}");
    }
    // `write` is the umbrella of every non-read action: a lists:write-style key may create.
    let writer = key_of(&app.mint(&u.token, &u.account_id, json!({ "scopes": ["leads:write"] })).await);
    assert_eq!(app.post("/v1/leads", Cred::ApiKey(&writer), json!({})).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_route_rate_limit_answers_429_with_retry_after_and_ratelimit_headers() {
    let (app, _) = gateway_app(|routes| {
        routes[0].rate_limit = Some(keygate_core::RateLimit { limit: 3, window_seconds: 60, burst: None });
    })
    .await;
    let u = app.register().await;
    let key = key_of(&app.mint(&u.token, &u.account_id, json!({})).await);
    for left in ["2", "1", "0"] {
        let r = app.get("/v1/companies", Cred::ApiKey(&key)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("ratelimit-limit"), Some("3"));
        assert_eq!(r.header("ratelimit-remaining"), Some(left));
        assert!(r.header("ratelimit-reset").is_some());
    }
    let r = app.get("/v1/companies", Cred::ApiKey(&key)).await;
    assert_eq!((r.status, r.code()), (StatusCode::TOO_MANY_REQUESTS, "rate_limited"));
    assert!(r.header("retry-after").and_then(|v| v.parse::<u64>().ok()).is_some_and(|s| s >= 1));
    assert_eq!(r.header("ratelimit-limit"), Some("3"));
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    // The limit is per route and key: another route, or another key, is unaffected.
    let other_route = app.get("/v1/leads", Cred::ApiKey(&key)).await;
    assert_eq!(other_route.status, StatusCode::OK);
    assert_eq!(other_route.header("ratelimit-limit"), Some("600"), "the plan's limit applies there");
    let other_key = key_of(&app.mint(&u.token, &u.account_id, json!({})).await);
    assert_eq!(app.get("/v1/companies", Cred::ApiKey(&other_key)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_session_token_names_its_account_with_x_account_id() {
    let (app, _) = gateway_app(|_| {}).await;
    let u = app.register().await;
    let stranger = app.register().await;
    let r = app.get("/v1/lists", Cred::Bearer(&u.token)).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "account_id_required"));
    let r =
        app.call_with(Method::GET, "/v1/lists", Cred::Bearer(&u.token), None, &[("X-Account-Id", &u.account_id)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let h = &r.body["headers"];
    assert_eq!(h["x-keygate-credential"], "session");
    assert_eq!(h["x-keygate-user-id"], u.user_id.as_str());
    assert_eq!(h["x-keygate-account-id"], u.account_id.as_str());
    assert_eq!(h["x-keygate-scopes"], "*:*");
    assert!(h.get("x-keygate-key-id").is_none());
    assert!(r.header("ratelimit-limit").is_some(), "the plan's limit applies to sessions");
    for other in [stranger.account_id.as_str(), "acc_nope", "../v1/keys"] {
        let r = app.call_with(Method::GET, "/v1/lists", Cred::Bearer(&u.token), None, &[("X-Account-Id", other)]).await;
        assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"), "{other}");
    }
}

#[tokio::test]
async fn revoked_key_is_refused_at_the_gateway_at_once() {
    let (app, _) = gateway_app(|_| {}).await;
    let u = app.register().await;
    let minted = app.mint(&u.token, &u.account_id, json!({})).await;
    let key = key_of(&minted);
    assert_eq!(app.get("/v1/companies", Cred::ApiKey(&key)).await.status, StatusCode::OK);
    let id = minted["id"].as_str().expect("id");
    let d = app.delete(&format!("/v1/keys/{id}?account_id={}", u.account_id), Cred::Bearer(&u.token)).await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.text);
    let r = app.get("/v1/companies", Cred::ApiKey(&key)).await;
    assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, "api_key_revoked"));
}

/// A data role in the account. Created through the store (the roles API is tested elsewhere;
/// here only the gateway's enforcement of a role matters).
async fn create_role(app: &TestApp, u: &Registered, name: &str, permissions: &[&str]) -> String {
    let via_api = app
        .post(
            &format!("/v1/accounts/{}/roles", u.account_id),
            Cred::Bearer(&u.token),
            json!({ "name": name, "permissions": permissions }),
        )
        .await;
    if via_api.status == StatusCode::CREATED {
        return via_api.body["id"].as_str().expect("role id").to_owned();
    }
    let store = keygate_store::open(&format!("sqlite://{}", app.db_path.display())).await.expect("store");
    let now = chrono::Utc::now();
    let role = keygate_store::Role {
        id: keygate_core::id::new_id(keygate_core::id::IdKind::Role),
        account_id: u.account_id.clone(),
        name: name.to_owned(),
        permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
        created_at: now,
        updated_at: now,
    };
    store.create_role(role.clone(), Vec::new()).await.expect("create role");
    role.id
}
