//! What holds for the whole API rather than one area: every route documented in OpenAPI, and
//! no secret in the logs at any level.

use keygate_core::Authority;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn identity_routes_are_documented_in_openapi() {
    let app = spawn_app().await;
    let doc = app.get("/openapi.json", Cred::None).await;
    assert_eq!(doc.status, StatusCode::OK);
    let paths = &doc.body["paths"];
    for (path, method) in [
        ("/v1/register", "post"),
        ("/v1/login", "post"),
        ("/v1/logout", "post"),
        ("/v1/user", "get"),
        ("/v1/user", "patch"),
        ("/v1/accounts", "post"),
        ("/v1/accounts", "get"),
        ("/v1/accounts/{id}", "get"),
        ("/v1/accounts/{id}", "patch"),
        ("/v1/accounts/{id}", "delete"),
        ("/v1/accounts/{id}/members", "get"),
        ("/v1/accounts/{id}/members", "post"),
        ("/v1/accounts/{id}/members/{user_id}", "patch"),
        ("/v1/accounts/{id}/members/{user_id}", "delete"),
        ("/v1/accounts/{id}/roles", "get"),
        ("/v1/accounts/{id}/roles", "post"),
        ("/v1/accounts/{id}/roles/{role_id}", "get"),
        ("/v1/accounts/{id}/roles/{role_id}", "patch"),
        ("/v1/accounts/{id}/roles/{role_id}", "delete"),
        ("/v1/audit", "get"),
        ("/v1/audit/verify", "get"),
        ("/v1/admin/accounts", "get"),
        ("/v1/admin/accounts/{id}", "patch"),
    ] {
        let op = &paths[path][method];
        assert!(op.is_object(), "{method} {path} is documented");
        assert!(op["responses"].as_object().is_some_and(|r| r.len() >= 2), "{method} {path} lists its statuses");
    }
}

/// Captures every span and event, at every level, as text (a minimal `tracing` subscriber).
struct CaptureLogs(std::sync::Arc<std::sync::Mutex<String>>, std::sync::atomic::AtomicU64);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={value:?} ", field.name()));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push_str(&format!("{}={value} ", field.name()));
    }
}

impl CaptureLogs {
    fn write(&self, f: impl FnOnce(&mut Fields<'_>)) {
        if let Ok(mut buf) = self.0.lock() {
            f(&mut Fields(&mut buf));
            buf.push('\n');
        }
    }
}

impl tracing::Subscriber for CaptureLogs {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, attrs: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        self.write(|v| attrs.record(v));
        tracing::span::Id::from_u64(self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        self.write(|v| values.record(v));
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        self.write(|v| event.record(v));
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// A client generated from `/openapi.json` must know every status an operation can answer:
/// each credentialed call may answer 401, 429 and 503, and every error has the JSON shape.
#[tokio::test]
async fn every_operation_documents_the_shared_errors() {
    let app = spawn_app().await;
    let doc = app.get("/openapi.json", Cred::None).await.body;
    let open = ["/v1/register", "/v1/login", "/v1/keys/verify"];
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if !path.starts_with("/v1/") {
            continue;
        }
        for (method, op) in item.as_object().expect("path item") {
            let responses = op["responses"].as_object().expect("responses");
            let has = |status: &str| responses.contains_key(status);
            assert!(has("503"), "{method} {path}: 503");
            if !open.contains(&path.as_str()) {
                assert!(has("401") && has("429"), "{method} {path}: 401 and 429");
                assert!(op["security"].as_array().is_some_and(|s| !s.is_empty()), "{method} {path}: security");
            }
            for (status, response) in responses {
                assert!(response["description"].as_str().is_some_and(|d| !d.is_empty()), "{method} {path} {status}");
                if status.as_str() >= "400" {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} operations");
}

#[tokio::test]
async fn nothing_secret_reaches_the_logs_even_at_trace() {
    // `tracing` keeps process-wide state (callsite interest) that other tests running in
    // parallel without a subscriber would disturb: the check runs alone in a child process
    // (this same test binary, this one test).
    const CHILD: &str = "KEYGATE_TEST_LOG_CAPTURE_CHILD";
    if std::env::var_os(CHILD).is_none() {
        let exe = std::env::current_exe().expect("test binary");
        let out = tokio::process::Command::new(exe)
            .args([
                "hygiene::nothing_secret_reaches_the_logs_even_at_trace",
                "--exact",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .output()
            .await
            .expect("run the child test");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
        return;
    }
    let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let subscriber = CaptureLogs(std::sync::Arc::clone(&logs), std::sync::atomic::AtomicU64::new(0));
    // Process-wide (this child runs only this test): the server's requests run on its own
    // worker threads, not on the test's.
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber of this process");
    let admin_token = "operator-secret-token-for-log-test";
    let verifier = "kgv_verifier-secret-token-for-the-log-test";
    let hashed_verifier = "kgv_hashed-verifier-secret-for-the-log-test";
    let app = spawn_app_with(|s| {
        s.admin_token = admin_token.to_owned().into();
        s.verify.tokens = vec![verifier.to_owned().into(), sha256_form(hashed_verifier).into()];
    })
    .await;
    let u = app.register().await;
    let wrong = "a-wrong-password-in-the-logs?";
    let _ = app.post("/v1/login", Cred::None, json!({ "email": u.email, "password": wrong })).await;
    let second = login(&app, &u.email, PASSWORD).await;
    let new_password = "a-new-password-in-the-logs?";
    let changed = app
        .patch("/v1/user", Cred::Bearer(&second), json!({ "current_password": PASSWORD, "new_password": new_password }))
        .await;
    let fresh = changed.body["token"].as_str().expect("token").to_owned();
    let _ = app.get("/v1/user", Cred::Bearer(&u.token)).await;
    let key = insert_key(&app, &u.account_id, Some(&u.user_id), Authority::Owner, &["*:*"]).await;
    let _ = app.get("/v1/user", Cred::ApiKey(&key.secret)).await;
    let _ = app.get("/v1/admin/accounts", Cred::Bearer(admin_token)).await;
    let _ = app.get("/v1/admin/accounts", Cred::Bearer("a-wrong-operator-token")).await;
    let _ = app
        .post(
            "/v1/register",
            Cred::None,
            json!({ "email": company_email("weak"), "password": "weak-pass", "name": "W" }),
        )
        .await;
    let _ = app.post("/v1/logout", Cred::Bearer(&fresh), json!({})).await;
    for token in [verifier, hashed_verifier, "kgv_a-wrong-verifier-token-in-the-logs"] {
        let _ =
            app.post("/v1/keys/verify", Cred::Bearer(token), json!({ "key": key.secret, "ip": "203.0.113.4" })).await;
    }
    let captured = logs.lock().map(|l| l.clone()).unwrap_or_default();
    assert!(captured.contains("/v1/login"), "the capture works: {}", &captured[..captured.len().min(2000)]);
    for secret in [
        PASSWORD,
        wrong,
        new_password,
        "weak-pass",
        &u.token,
        &second,
        &fresh,
        &key.secret,
        admin_token,
        "a-wrong-operator-token",
        verifier,
        hashed_verifier,
        "kgv_a-wrong-verifier-token-in-the-logs",
        "$argon2id$",
    ] {
        assert!(!captured.contains(secret), "the logs contain a secret: {secret}");
    }
}

/// Someone who opens the bare address in a browser lands on the dashboard, or on the API
/// reference when the dashboard is off; never on a JSON 404.
#[tokio::test]
async fn the_bare_address_leads_to_the_dashboard_or_the_reference() {
    let app = spawn_app().await;
    let root = app.get("/", Cred::None).await;
    assert_eq!((root.status, root.header("location")), (StatusCode::SEE_OTHER, Some("/app")));
    let off = spawn_app_with(|s| s.dashboard.enabled = false).await;
    let root = off.get("/", Cred::None).await;
    assert_eq!((root.status, root.header("location")), (StatusCode::SEE_OTHER, Some("/docs")));
    assert_eq!(off.get("/docs", Cred::None).await.status, StatusCode::OK);
}
