//! API keys over HTTP: lifecycle, authority, the authenticator's rules, usage, rate limits.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn mint_shows_the_secret_once_and_stores_only_its_digest() {
    let app = spawn_app().await;
    let u = app.register().await;
    let k = app.mint(&u.token, &u.account_id, json!({ "name": "ci" })).await;
    let secret = k["key"].as_str().expect("key").to_owned();
    assert!(secret.starts_with("kg_") && secret.len() == 3 + 38, "{secret}");
    assert_eq!(k["status"], "active");
    assert_eq!(k["class"], "user");
    assert_eq!(k["scopes"], json!(["*:*"]));
    let part = k["key_part"].as_str().expect("key_part");
    assert!(secret.starts_with(part) && part.len() == 3 + 8);
    for handle in [k["id"].as_str().expect("id"), part] {
        let got = app.get(&format!("/v1/keys/{handle}?account_id={}", u.account_id), Cred::Bearer(&u.token)).await;
        assert_eq!(got.status, StatusCode::OK, "{}", got.text);
        assert!(!got.text.contains(&secret));
        assert!(got.body.get("key").is_none());
    }
    let list = app.get(&format!("/v1/keys?account_id={}", u.account_id), Cred::Bearer(&u.token)).await;
    assert!(!list.text.contains(&secret));
    let db_path = app_db(&app);
    app.stop().await;
    let db = std::fs::read(&db_path).unwrap_or_default();
    assert!(!contains(&db, secret.as_bytes()), "the secret is in the database file");
}

fn app_db(app: &TestApp) -> std::path::PathBuf {
    app.db_path.clone()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn key_shapes_follow_the_configured_prefixes() {
    let app = spawn_app_with(|s| {
        s.keys.user_prefix = "trace_".into();
        s.keys.org_prefix = "trace_org_".into();
    })
    .await;
    let u = app.register().await;
    let user = app.mint(&u.token, &u.account_id, json!({})).await;
    let org = app.mint(&u.token, &u.account_id, json!({ "class": "org" })).await;
    assert!(user["key"].as_str().expect("k").starts_with("trace_"));
    assert!(!user["key"].as_str().expect("k").starts_with("trace_org_"));
    assert!(org["key"].as_str().expect("k").starts_with("trace_org_"));
    assert_eq!(app.verify(org["key"].as_str().expect("k"), json!({})).await["class"], "org");
    assert_eq!(app.verify(user["key"].as_str().expect("k"), json!({})).await["class"], "user");
}

#[tokio::test]
async fn revocation_is_honoured_at_once_and_final() {
    let app = spawn_app().await;
    let u = app.register().await;
    let k = app.mint(&u.token, &u.account_id, json!({})).await;
    let secret = k["key"].as_str().expect("key");
    assert_eq!(app.verify(secret, json!({})).await["code"], "VALID");
    let r = app
        .delete(
            &format!("/v1/keys/{}?account_id={}", k["id"].as_str().expect("id"), u.account_id),
            Cred::Bearer(&u.token),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["status"], "revoked");
    assert_eq!(app.verify(secret, json!({})).await["code"], "REVOKED");
    let used = app.get("/v1/user", Cred::ApiKey(secret)).await;
    assert_eq!((used.status, used.code()), (StatusCode::UNAUTHORIZED, "api_key_revoked"));
    let p = app
        .patch(
            &format!("/v1/keys/{}", k["id"].as_str().expect("id")),
            Cred::Bearer(&u.token),
            json!({ "account_id": u.account_id, "name": "again" }),
        )
        .await;
    assert_eq!((p.status, p.code()), (StatusCode::CONFLICT, "key_revoked"));
    let list = app.get(&format!("/v1/keys?account_id={}&status=revoked", u.account_id), Cred::Bearer(&u.token)).await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn prestaged_key_is_inactive_until_patched_into_the_future() {
    let app = spawn_app().await;
    let u = app.register().await;
    let k = app.mint(&u.token, &u.account_id, json!({ "end_date": "2020-01-01" })).await;
    assert_eq!(k["status"], "inactive");
    let secret = k["key"].as_str().expect("key");
    assert_eq!(app.verify(secret, json!({})).await["code"], "INACTIVE");
    let p = app
        .patch(
            &format!("/v1/keys/{}", k["key_part"].as_str().expect("part")),
            Cred::Bearer(&u.token),
            json!({ "account_id": u.account_id, "end_date": "2099-01-01" }),
        )
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text);
    assert_eq!(p.body["status"], "active");
    assert_eq!(app.verify(secret, json!({})).await["code"], "VALID");
    let later = app.mint(&u.token, &u.account_id, json!({ "starts_at": "2099-01-01T00:00:00Z" })).await;
    assert_eq!(app.verify(later["key"].as_str().expect("k"), json!({})).await["code"], "INACTIVE");
}

#[tokio::test]
async fn an_expired_key_is_refused() {
    let app = spawn_app().await;
    let u = app.register().await;
    let k = app.mint(&u.token, &u.account_id, json!({})).await;
    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(300)).to_rfc3339();
    let p = app
        .patch(
            &format!("/v1/keys/{}", k["id"].as_str().expect("id")),
            Cred::Bearer(&u.token),
            json!({ "account_id": u.account_id, "expires_at": soon }),
        )
        .await;
    assert_eq!(p.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let v = app.verify(k["key"].as_str().expect("k"), json!({})).await;
    assert_eq!(v["code"], "EXPIRED");
    let a = app.get("/v1/user", Cred::ApiKey(k["key"].as_str().expect("k"))).await;
    assert_eq!(a.code(), "api_key_expired");
}

#[tokio::test]
async fn roll_with_overlap_keeps_the_old_key_for_the_window_only() {
    let app = spawn_app().await;
    let u = app.register().await;
    let k =
        app.mint(&u.token, &u.account_id, json!({ "scopes": ["companies:read"], "metadata": { "team": "ops" } })).await;
    let old = k["key"].as_str().expect("k");
    let r = app
        .post(
            &format!("/v1/keys/{}/roll", k["id"].as_str().expect("id")),
            Cred::Bearer(&u.token),
            json!({ "account_id": u.account_id, "old_expires_in_seconds": 60 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let new = r.body["key"].as_str().expect("new key");
    assert_ne!(new, old);
    assert_eq!(r.body["scopes"], json!(["companies:read"]));
    assert_eq!(r.body["metadata"], json!({ "team": "ops" }));
    assert_eq!(app.verify(new, json!({})).await["code"], "VALID");
    assert_eq!(app.verify(old, json!({})).await["code"], "VALID");
    let r2 = app
        .post(
            &format!("/v1/keys/{}/roll", r.body["id"].as_str().expect("id")),
            Cred::Bearer(&u.token),
            json!({ "account_id": u.account_id }),
        )
        .await;
    assert_eq!(r2.status, StatusCode::CREATED);
    assert_eq!(app.verify(new, json!({})).await["code"], "REVOKED");
}

#[tokio::test]
async fn read_only_key_cannot_change_anything() {
    let app = spawn_app().await;
    let u = app.register().await;
    let ro = app.mint(&u.token, &u.account_id, json!({ "scopes": ["*:read"] })).await;
    let key = ro["key"].as_str().expect("k");
    assert_eq!(app.get("/v1/keys", Cred::ApiKey(key)).await.status, StatusCode::OK);
    let m = app.post("/v1/keys", Cred::ApiKey(key), json!({ "name": "escalate", "scopes": ["*:*"] })).await;
    assert_eq!((m.status, m.code()), (StatusCode::FORBIDDEN, "insufficient_scope"));
    let v = app.verify(key, json!({ "permissions": ["lists:write"] })).await;
    assert_eq!(v["code"], "INSUFFICIENT_SCOPE");
    assert_eq!(app.verify(key, json!({ "permissions": ["lists:read"] })).await["code"], "VALID");
}

#[tokio::test]
async fn authority_and_scopes_cannot_be_escalated() {
    let app = spawn_app().await;
    let u = app.register().await;
    let narrow =
        app.mint(&u.token, &u.account_id, json!({ "scopes": ["companies:read", "keys:write", "keys:read"] })).await;
    let key = narrow["key"].as_str().expect("k");
    let wider = app.post("/v1/keys", Cred::ApiKey(key), json!({ "name": "w", "scopes": ["lists:read"] })).await;
    assert_eq!(wider.code(), "insufficient_scope");
    let higher = app
        .post(
            "/v1/keys",
            Cred::ApiKey(key),
            json!({ "name": "h", "authority": "administrator", "scopes": ["companies:read"] }),
        )
        .await;
    assert_eq!(higher.code(), "insufficient_authority");
    let org = app
        .post("/v1/keys", Cred::ApiKey(key), json!({ "name": "o", "class": "org", "scopes": ["companies:read"] }))
        .await;
    assert_eq!(org.code(), "insufficient_authority");
    let ok = app.post("/v1/keys", Cred::ApiKey(key), json!({ "name": "ok", "scopes": ["companies:read"] })).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
    assert_eq!(ok.body["user_id"], json!(u.user_id));
}

#[tokio::test]
async fn api_key_cannot_reach_another_account() {
    let app = spawn_app().await;
    let a = app.register().await;
    let b = app.register().await;
    let ka = app.mint(&a.token, &a.account_id, json!({})).await;
    let kb = app.mint(&b.token, &b.account_id, json!({})).await;
    let key = ka["key"].as_str().expect("k");
    let r = app.get(&format!("/v1/keys?account_id={}", b.account_id), Cred::ApiKey(key)).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    let r = app.get(&format!("/v1/keys/{}", kb["id"].as_str().expect("id")), Cred::ApiKey(key)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .delete(
            &format!("/v1/keys/{}?account_id={}", kb["id"].as_str().expect("id"), a.account_id),
            Cred::Bearer(&a.token),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .delete(
            &format!("/v1/keys/{}?account_id={}", kb["id"].as_str().expect("id"), b.account_id),
            Cred::Bearer(&a.token),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(app.verify(kb["key"].as_str().expect("k"), json!({})).await["code"], "VALID");
}

#[tokio::test]
async fn org_keys_cannot_act_for_a_user() {
    let app = spawn_app().await;
    let u = app.register().await;
    let org = app.mint(&u.token, &u.account_id, json!({ "class": "org" })).await;
    let key = org["key"].as_str().expect("k");
    assert_eq!(org["user_id"], json!(null));
    let v = app.verify(key, json!({ "user_scoped": true })).await;
    assert_eq!(v["code"], "USER_CREDENTIAL_REQUIRED");
    let r = app.post("/v1/keys", Cred::ApiKey(key), json!({ "name": "u" })).await;
    assert_eq!(r.code(), "user_credential_required");
    let r = app.get("/v1/user", Cred::ApiKey(key)).await;
    assert_eq!(r.code(), "user_credential_required");
}

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

#[tokio::test]
async fn list_is_paginated_newest_first() {
    let app = spawn_app().await;
    let u = app.register().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            app.mint(&u.token, &u.account_id, json!({ "name": format!("k{i}") })).await["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!(
            "/v1/keys?account_id={}&limit=2{}",
            u.account_id,
            if cursor.is_empty() { String::new() } else { format!("&cursor={cursor}") }
        );
        let page = app.get(&path, Cred::Bearer(&u.token)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        for item in page.body["items"].as_array().expect("items") {
            seen.push(item["id"].as_str().expect("id").to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let bad = app.get(&format!("/v1/keys?account_id={}&limit=500", u.account_id), Cred::Bearer(&u.token)).await;
    assert_eq!(bad.code(), "invalid_request");
    let bad = app.get(&format!("/v1/keys?account_id={}&status=sleepy", u.account_id), Cred::Bearer(&u.token)).await;
    assert_eq!(bad.code(), "invalid_request");
}

#[tokio::test]
async fn mint_rejects_bad_input_with_details() {
    let app = spawn_app().await;
    let u = app.register().await;
    for body in [
        json!({ "account_id": u.account_id }),
        json!({ "account_id": u.account_id, "name": "" }),
        json!({ "account_id": u.account_id, "name": "x", "class": "robot" }),
        json!({ "account_id": u.account_id, "name": "x", "scopes": ["nope"] }),
        json!({ "account_id": u.account_id, "name": "x", "expires_at": "tomorrow" }),
        json!({ "account_id": u.account_id, "name": "x", "rate_limit": { "limit": 0, "window_seconds": 1 } }),
        json!({ "account_id": u.account_id, "name": "x", "usage_limit": -1 }),
        json!({ "account_id": u.account_id, "name": "x", "metadata": [1, 2] }),
        json!({ "account_id": u.account_id, "name": "x", "surprise": true }),
    ] {
        let r = app.post("/v1/keys", Cred::Bearer(&u.token), body.clone()).await;
        assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "invalid_request"), "{body}: {}", r.text);
        assert!(r.body["request_id"].is_string());
    }
    let r = app.post("/v1/keys", Cred::Bearer(&u.token), json!({ "name": "x" })).await;
    assert_eq!(r.code(), "account_id_required");
}

#[tokio::test]
async fn a_user_key_is_capped_by_its_users_membership() {
    let app = spawn_app().await;
    let owner = app.register().await;
    let domain = owner.email.split('@').nth(1).expect("domain").to_owned();
    // A second user of another company, invited into the owner's account.
    let member = app.register().await;
    let add = app
        .post(
            &format!("/v1/accounts/{}/members", owner.account_id),
            Cred::Bearer(&owner.token),
            json!({ "email": member.email, "authority": "administrator" }),
        )
        .await;
    assert_eq!(add.status, StatusCode::CREATED, "{} ({domain})", add.text);
    let k = app.mint(&member.token, &owner.account_id, json!({ "authority": "administrator" })).await;
    let key = k["key"].as_str().expect("k");
    assert_eq!(app.verify(key, json!({})).await["authority"], "administrator");
    let demote = app
        .patch(
            &format!("/v1/accounts/{}/members/{}", owner.account_id, member.user_id),
            Cred::Bearer(&owner.token),
            json!({ "authority": "user" }),
        )
        .await;
    assert_eq!(demote.status, StatusCode::OK, "{}", demote.text);
    assert_eq!(app.verify(key, json!({})).await["authority"], "user");
    let org = app.post("/v1/keys", Cred::ApiKey(key), json!({ "name": "o", "class": "org" })).await;
    assert_eq!(org.code(), "insufficient_authority");
    // A plain user sees only their own keys.
    app.mint(&owner.token, &owner.account_id, json!({ "name": "owner's" })).await;
    let list = app.get("/v1/keys", Cred::ApiKey(key)).await;
    let items = list.body["items"].as_array().expect("items");
    assert!(items.iter().all(|i| i["user_id"] == json!(member.user_id)), "{}", list.text);
    let removed = app
        .delete(&format!("/v1/accounts/{}/members/{}", owner.account_id, member.user_id), Cred::Bearer(&owner.token))
        .await;
    assert!(removed.status.is_success(), "{}", removed.text);
    assert_eq!(app.verify(key, json!({})).await["code"], "NOT_FOUND");
}

#[tokio::test]
async fn a_session_may_name_a_key_without_its_account_but_never_reach_anothers() {
    let app = spawn_app().await;
    let a = app.register().await;
    let b = app.register().await;
    let ka = app.mint(&a.token, &a.account_id, json!({})).await;
    let kb = app.mint(&b.token, &b.account_id, json!({})).await;
    let got = app.get(&format!("/v1/keys/{}", ka["key_part"].as_str().expect("part")), Cred::Bearer(&a.token)).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    let other = app.get(&format!("/v1/keys/{}", kb["key_part"].as_str().expect("part")), Cred::Bearer(&a.token)).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let other = app.delete(&format!("/v1/keys/{}", kb["id"].as_str().expect("id")), Cred::Bearer(&a.token)).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let r = app.delete(&format!("/v1/keys/{}", ka["id"].as_str().expect("id")), Cred::Bearer(&a.token)).await;
    assert_eq!((r.status, r.body["status"].as_str()), (StatusCode::OK, Some("revoked")));
    assert_eq!(app.verify(ka["key"].as_str().expect("k"), json!({})).await["code"], "REVOKED");
    assert_eq!(app.verify(kb["key"].as_str().expect("k"), json!({})).await["code"], "VALID");
}
