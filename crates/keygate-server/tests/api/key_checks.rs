//! API keys in use, over HTTP: the authenticator's checks (rate and usage limits, IP allowlists,
//! the plan, data roles, bad input to verify) and usage counting.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after_and_headers() {
    let app = spawn_app().await;
    let u = app.register().await;
    let k = app.mint(&u.token, &u.account_id, json!({ "rate_limit": { "limit": 3, "window_seconds": 60 } })).await;
    let key = k["key"].as_str().expect("k");
    for i in 0..3 {
        let r = app.get("/v1/user", Cred::ApiKey(key)).await;
        assert_eq!(r.status, StatusCode::OK, "request {i}");
        assert_eq!(r.header("ratelimit-limit"), Some("3"));
        assert_eq!(r.header("ratelimit-remaining"), Some((2 - i).to_string().as_str()));
    }
    let r = app.get("/v1/user", Cred::ApiKey(key)).await;
    assert_eq!((r.status, r.code()), (StatusCode::TOO_MANY_REQUESTS, "rate_limited"));
    let retry: u64 = r.header("retry-after").expect("Retry-After").parse().expect("seconds");
    assert!(retry >= 1);
    let v = app.verify(key, json!({})).await;
    assert_eq!(v["code"], "RATE_LIMITED");
    assert_eq!(v["ratelimit"]["remaining"], 0);
}

#[tokio::test]
async fn usage_limit_is_exact_under_concurrency() {
    let app = spawn_app().await;
    let u = app.register().await;
    let k = app.mint(&u.token, &u.account_id, json!({ "usage_limit": 10 })).await;
    let key = k["key"].as_str().expect("k").to_owned();
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let (client, base, key) = (app.client.clone(), app.base.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let r =
                client.post(format!("{base}/v1/keys/verify")).json(&json!({ "key": key })).send().await.expect("send");
            r.json::<serde_json::Value>().await.expect("json")["code"].as_str().unwrap_or_default().to_owned()
        }));
    }
    let mut valid = 0;
    let mut exceeded = 0;
    for t in tasks {
        match t.await.expect("task").as_str() {
            "VALID" => valid += 1,
            "USAGE_EXCEEDED" => exceeded += 1,
            other => panic!("unexpected code {other}"),
        }
    }
    assert_eq!((valid, exceeded), (10, 30));
}

#[tokio::test]
async fn usage_is_counted_and_survives_a_clean_shutdown() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("k.db");
    let mut settings = sqlite_settings(&db);
    settings.usage.flush_interval_ms = 60_000; // only the shutdown flush can save these counts
    let app = spawn_with_settings(settings.clone(), tempfile::tempdir().expect("tmp"), db.clone()).await;
    let u = app.register().await;
    let k = app.mint(&u.token, &u.account_id, json!({})).await;
    for _ in 0..7 {
        app.verify(k["key"].as_str().expect("k"), json!({})).await;
    }
    app.stop().await;
    let app = spawn_with_settings(settings, tempfile::tempdir().expect("tmp"), db).await;
    let got = app
        .get(&format!("/v1/keys/{}?account_id={}", k["id"].as_str().expect("id"), u.account_id), Cred::Bearer(&u.token))
        .await;
    assert_eq!(got.body["request_count"], 7, "{}", got.text);
    assert!(got.body["last_used_at"].is_string());
    let usage = app
        .get(
            &format!("/v1/keys/{}/usage?account_id={}", k["id"].as_str().expect("id"), u.account_id),
            Cred::Bearer(&u.token),
        )
        .await;
    let total: i64 =
        usage.body["daily"].as_array().expect("daily").iter().map(|d| d["requests"].as_i64().unwrap_or(0)).sum();
    assert_eq!(total, 7);
}

#[tokio::test]
async fn last_used_is_visible_within_two_seconds() {
    let app = spawn_app().await;
    let u = app.register().await;
    let k = app.mint(&u.token, &u.account_id, json!({})).await;
    app.get("/v1/user", Cred::ApiKey(k["key"].as_str().expect("k"))).await;
    let path = format!("/v1/keys/{}?account_id={}", k["id"].as_str().expect("id"), u.account_id);
    let seen = eventually(2.0, async || app.get(&path, Cred::Bearer(&u.token)).await.body["request_count"] == 1).await;
    assert!(seen);
    let got = app.get(&path, Cred::Bearer(&u.token)).await;
    assert_eq!(got.body["last_used_ip"], "127.0.0.1");
}

#[tokio::test]
async fn ip_allowlist_accepts_inside_and_refuses_outside() {
    let app = spawn_app().await;
    let u = app.register().await;
    let inside = app.mint(&u.token, &u.account_id, json!({ "ip_allowlist": ["127.0.0.0/8", "::1"] })).await;
    let outside = app.mint(&u.token, &u.account_id, json!({ "ip_allowlist": ["10.0.0.0/8", "2001:db8::/32"] })).await;
    assert_eq!(app.verify(inside["key"].as_str().expect("k"), json!({})).await["code"], "VALID");
    assert_eq!(app.verify(outside["key"].as_str().expect("k"), json!({})).await["code"], "IP_NOT_ALLOWED");
    let r = app.get("/v1/user", Cred::ApiKey(outside["key"].as_str().expect("k"))).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "ip_not_allowed"));
    let bad = app
        .post(
            "/v1/keys",
            Cred::Bearer(&u.token),
            json!({ "account_id": u.account_id, "name": "x", "ip_allowlist": ["10.0.0.0/99"] }),
        )
        .await;
    assert_eq!(bad.code(), "invalid_request");
}

#[tokio::test]
async fn verify_reports_not_found_for_garbage_without_touching_storage() {
    let app = spawn_app().await;
    let misses = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("keygate_key_cache_misses_total"))
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or("0")
            .to_owned()
    };
    let before = misses(&app.get("/metrics", Cred::None).await.text);
    for key in ["kg_", "nonsense", &format!("kg_{}", "0".repeat(38)), &format!("kg_org_{}", "A".repeat(38))] {
        let v = app.verify(key, json!({})).await;
        assert_eq!((v["valid"].as_bool(), v["code"].as_str()), (Some(false), Some("NOT_FOUND")), "{key}");
    }
    assert_eq!(misses(&app.get("/metrics", Cred::None).await.text), before, "bad keys reached storage");
    let r = app.post("/v1/keys/verify", Cred::None, json!({ "permissions": ["x:read"] })).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "invalid_request"));
    let r = app.post("/v1/keys/verify", Cred::None, json!({ "key": "kg_x", "permissions": ["NOT A SCOPE"] })).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

/// Verify is served past the router (`routes::HotPaths`): its bad input, other methods and
/// near-miss paths must still get the answers every route gives.
#[tokio::test]
async fn verify_answers_bad_input_methods_and_paths_like_any_route() {
    let app = spawn_app().await;
    let raw = |method: reqwest::Method, path: &'static str, content_type: &'static str, body: String| {
        let request =
            app.client.request(method, format!("{}{path}", app.base)).header("content-type", content_type).body(body);
        async move {
            let r = request.send().await.expect("send");
            let status = r.status();
            let id = r.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let v: serde_json::Value = r.json().await.unwrap_or_default();
            (status, v["error"]["code"].as_str().map(str::to_owned), id)
        }
    };
    let valid = r#"{"key":"kg_nothing"}"#.to_owned();
    let cases = [
        (
            reqwest::Method::POST,
            "/v1/keys/verify",
            "text/plain",
            valid.clone(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            reqwest::Method::POST,
            "/v1/keys/verify",
            "application/json",
            r#"{"key": "#.to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            reqwest::Method::POST,
            "/v1/keys/verify",
            "application/json",
            r#"{"key":"k","kye":1}"#.to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            reqwest::Method::POST,
            "/v1/keys/verify",
            "application/json",
            format!(r#"{{"key":"{}"}}"#, "k".repeat(70 * 1024)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            reqwest::Method::GET,
            "/v1/keys/verify",
            "application/json",
            String::new(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            reqwest::Method::PUT,
            "/v1/keys/verify",
            "application/json",
            valid.clone(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            reqwest::Method::POST,
            "/v1/keys/verify/",
            "application/json",
            valid.clone(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            reqwest::Method::POST,
            "/v1/key/verify",
            "application/json",
            valid.clone(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (method, path, content_type, body, status, code) in cases {
        let what = format!("{method} {path} ({content_type}, {} bytes)", body.len());
        let (got, got_code, id) = raw(method, path, content_type, body).await;
        assert_eq!((got, got_code.as_deref()), (status, Some(code)), "{what}");
        assert!(id.is_some_and(|id| id.starts_with("req_")), "{what}: no X-Request-Id");
    }
    // Media types are matched like everywhere else, not only the exact common spelling.
    let (s, code, _) = raw(reqwest::Method::POST, "/v1/keys/verify", "Application/JSON; charset=utf-8", valid).await;
    assert_eq!((s, code), (StatusCode::OK, None));
}

#[tokio::test]
async fn verify_checks_data_roles() {
    let app = spawn_app().await;
    let u = app.register().await;
    let role = app
        .post(
            &format!("/v1/accounts/{}/roles", u.account_id),
            Cred::Bearer(&u.token),
            json!({ "name": "lead-intake", "permissions": ["leads:create"] }),
        )
        .await;
    assert_eq!(role.status, StatusCode::CREATED, "{}", role.text);
    let k = app.mint(&u.token, &u.account_id, json!({ "role_id": role.body["id"] })).await;
    let key = k["key"].as_str().expect("k");
    assert_eq!(app.verify(key, json!({ "permissions": ["leads:create"] })).await["code"], "VALID");
    assert_eq!(app.verify(key, json!({ "permissions": ["leads:read"] })).await["code"], "INSUFFICIENT_SCOPE");
}

#[tokio::test]
async fn plan_without_api_access_refuses_keys() {
    let app = spawn_app_with(|s| s.admin_token = secrecy::SecretString::from("op-token-for-tests".to_owned())).await;
    let u = app.register().await;
    let k = app.mint(&u.token, &u.account_id, json!({})).await;
    let key = k["key"].as_str().expect("k");
    assert_eq!(app.verify(key, json!({})).await["code"], "VALID");
    let r = app
        .patch(
            &format!("/v1/admin/accounts/{}", u.account_id),
            Cred::Bearer("op-token-for-tests"),
            json!({ "plan": "free" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.verify(key, json!({})).await["code"], "PLAN_REQUIRED");
    let m = app.post("/v1/keys", Cred::Bearer(&u.token), json!({ "account_id": u.account_id, "name": "x" })).await;
    assert_eq!(m.code(), "plan_required");
}
