//! `spawn_app()` and typed request helpers shared by every integration test.
#![allow(dead_code)]

use std::net::SocketAddr;

use keygate_server::Settings;
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub struct TestApp {
    pub base: String,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub db_path: std::path::PathBuf,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// An answer: status, JSON body (Null when empty or not JSON), headers.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub headers: HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A registered user with their session and default account.
#[derive(Debug, Clone)]
pub struct Registered {
    pub email: String,
    pub password: String,
    pub token: String,
    pub account_id: String,
    pub user_id: String,
}

pub const PASSWORD: &str = "correct horse battery staple";

pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", keygate_core::base62::random(8).to_lowercase())
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The default settings, on the SQLite file `db`.
pub fn sqlite_settings(db: &std::path::Path) -> Settings {
    Settings { database_url: format!("sqlite://{}", db.display()), ..Settings::default() }
}

/// Starts a server with default settings changed by `configure`, on 127.0.0.1:0.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let db_path = dir.path().join("keygate.db");
    let mut settings = sqlite_settings(&db_path);
    settings.listen = "127.0.0.1:0".into();
    settings.usage.flush_interval_ms = 100;
    configure(&mut settings);
    spawn_with_settings(settings, dir, db_path).await
}

pub async fn spawn_with_settings(settings: Settings, dir: tempfile::TempDir, db_path: std::path::PathBuf) -> TestApp {
    let app = keygate_server::build(settings).await.expect("build app");
    serve(app, dir, db_path).await
}

/// Serves a built app on 127.0.0.1:0 until `TestApp::stop`.
async fn serve(app: keygate_server::App, dir: tempfile::TempDir, db_path: std::path::PathBuf) -> TestApp {
    // Port 0 whatever the settings say: tests run side by side.
    let workers = app.state().settings.worker_count();
    let listeners = keygate_server::Listeners::bind(([127, 0, 0, 1], 0).into(), workers).expect("bind");
    let addr = listeners.local_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.serve(listeners, async move {
        let _ = rx.await;
    }));
    TestApp {
        base: format!("http://{addr}"),
        addr,
        client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client"),
        db_path,
        dir,
        stop: Some(tx),
        handle: Some(handle),
    }
}

pub enum Cred<'a> {
    None,
    Bearer(&'a str),
    ApiKey(&'a str),
}

impl TestApp {
    /// Any request; `body` is sent as JSON when given.
    pub async fn call(&self, method: Method, path: &str, cred: Cred<'_>, body: Option<Value>) -> Answer {
        self.call_with(method, path, cred, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        cred: Cred<'_>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut rb = self.client.request(method, format!("{}{path}", self.base));
        rb = match cred {
            Cred::None => rb,
            Cred::Bearer(t) => rb.header("Authorization", format!("Bearer {t}")),
            Cred::ApiKey(k) => rb.header("X-API-Key", k),
        };
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, body, headers, text }
    }

    pub async fn get(&self, path: &str, cred: Cred<'_>) -> Answer {
        self.call(Method::GET, path, cred, None).await
    }

    pub async fn post(&self, path: &str, cred: Cred<'_>, body: Value) -> Answer {
        self.call(Method::POST, path, cred, Some(body)).await
    }

    pub async fn patch(&self, path: &str, cred: Cred<'_>, body: Value) -> Answer {
        self.call(Method::PATCH, path, cred, Some(body)).await
    }

    pub async fn delete(&self, path: &str, cred: Cred<'_>) -> Answer {
        self.call(Method::DELETE, path, cred, None).await
    }

    /// Registers a new user at a fresh company domain.
    pub async fn register(&self) -> Registered {
        let domain = format!("{}.example-corp.com", unique("co"));
        self.register_email(&format!("owner@{domain}")).await
    }

    pub async fn register_email(&self, email: &str) -> Registered {
        let a = self
            .post("/v1/register", Cred::None, json!({ "email": email, "password": PASSWORD, "name": "Test Co" }))
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "register {email}: {}", a.text);
        Registered {
            email: email.to_owned(),
            password: PASSWORD.to_owned(),
            token: a.body["token"].as_str().expect("token").to_owned(),
            account_id: a.body["default_account_id"].as_str().expect("account").to_owned(),
            user_id: a.body["user"]["id"].as_str().expect("user id").to_owned(),
        }
    }

    /// Mints a key with a session token in `account_id`; panics unless 201. Answers the body.
    pub async fn mint(&self, token: &str, account_id: &str, mut body: Value) -> Value {
        body["account_id"] = json!(account_id);
        if body.get("name").is_none() {
            body["name"] = json!(unique("key-"));
        }
        let a = self.post("/v1/keys", Cred::Bearer(token), body).await;
        assert_eq!(a.status, StatusCode::CREATED, "mint: {}", a.text);
        a.body
    }

    pub async fn verify(&self, key: &str, extra: Value) -> Value {
        let mut body = extra;
        if body.is_null() {
            body = json!({});
        }
        body["key"] = json!(key);
        let a = self.post("/v1/keys/verify", Cred::None, body).await;
        assert_eq!(a.status, StatusCode::OK, "verify: {}", a.text);
        let types: Vec<_> = a.headers.get_all("content-type").iter().collect();
        assert_eq!(types, ["application/json"], "verify answers JSON, once");
        a.body
    }

    /// Graceful shutdown: drains and flushes usage, like SIGTERM.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }
}

/// Polls `f` until it returns true or `seconds` pass.
pub async fn eventually(seconds: f64, mut f: impl AsyncFnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs_f64(seconds);
    loop {
        if f().await {
            return true;
        }
        if std::time::Instant::now() > end {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

// ---- identity tests' helpers (added by the identity/accounts/audit tests) ----

/// A key inserted straight into the app's database, without `POST /v1/keys`.
pub struct DirectKey {
    pub secret: String,
    pub id: String,
}

/// Inserts an API key into the app's database (a second connection to the same SQLite file),
/// so identity tests need nothing from the keys API. `user_id: None` makes an org key.
pub async fn insert_key(
    app: &TestApp,
    account_id: &str,
    user_id: Option<&str>,
    authority: keygate_core::Authority,
    scopes: &[&str],
) -> DirectKey {
    use keygate_core::id::{IdKind, new_id};
    use keygate_core::{CredentialKind, KeyFormat};
    let store = keygate_store::open(&format!("sqlite://{}", app.db_path.display())).await.expect("open store");
    let format = KeyFormat::new("kg_", "kg_org_", "kgs_").expect("format");
    let kind = if user_id.is_some() { CredentialKind::UserKey } else { CredentialKind::OrgKey };
    let generated = format.generate(kind);
    let id = new_id(IdKind::Key);
    let key = keygate_store::NewKey {
        id: id.clone(),
        digest: generated.digest.to_hex(),
        key_part: generated.key_part.clone(),
        class: if user_id.is_some() { keygate_store::KeyClass::User } else { keygate_store::KeyClass::Org },
        name: "direct".into(),
        account_id: account_id.to_owned(),
        user_id: user_id.map(str::to_owned),
        authority,
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        role_id: None,
        created_at: chrono::Utc::now(),
        created_by: user_id.unwrap_or("operator").to_owned(),
        expires_at: None,
        starts_at: None,
        staged: false,
        usage_limit: None,
        rate_limit: None,
        ip_allowlist: vec![],
        metadata: json!({}),
    };
    store.create_key(key, None, vec![]).await.expect("insert key");
    DirectKey { secret: generated.secret.expose().to_owned(), id }
}

/// Adds `email`'s user to `account_id` with `authority`, as `token`; panics unless 201.
pub async fn add_member(app: &TestApp, token: &str, account_id: &str, email: &str, authority: &str) {
    let a = app
        .post(
            &format!("/v1/accounts/{account_id}/members"),
            Cred::Bearer(token),
            json!({ "email": email, "authority": authority }),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "add member {email}: {}", a.text);
}

/// Signs in; panics unless 200. Answers the session token.
pub async fn login(app: &TestApp, email: &str, password: &str) -> String {
    let a = app.post("/v1/login", Cred::None, json!({ "email": email, "password": password })).await;
    assert_eq!(a.status, StatusCode::OK, "login {email}: {}", a.text);
    a.body["token"].as_str().expect("token").to_owned()
}

/// Whether `needle` occurs in the bytes of the app's database files (main file and WAL).
pub fn database_contains(app: &TestApp, needle: &str) -> bool {
    let mut paths = vec![app.db_path.clone()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut p = app.db_path.clone().into_os_string();
        p.push(suffix);
        paths.push(p.into());
    }
    paths
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .any(|bytes| !needle.is_empty() && bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
}

/// Like `spawn_app`, with a store the test wraps (e.g. one that can fail on demand).
pub async fn spawn_with_store(
    wrap: impl FnOnce(std::sync::Arc<dyn keygate_store::Store>) -> std::sync::Arc<dyn keygate_store::Store>,
) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let db_path = dir.path().join("keygate.db");
    let mut settings = sqlite_settings(&db_path);
    settings.usage.flush_interval_ms = 100;
    let store = keygate_store::open(&settings.database_url).await.expect("open store");
    let app = keygate_server::build_with_store(settings, wrap(store)).await.expect("build app");
    serve(app, dir, db_path).await
}

/// A work address on a domain of its own (sign-up refuses free webmail by default).
pub fn company_email(local: &str) -> String {
    format!("{local}@{}.example-corp.com", unique("co"))
}
