//! `spawn_app()` and typed request helpers shared by every integration test.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use keygate_server::Settings;
use keygate_server::config::RouteSettings;
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{Notify, oneshot};

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

/// A verifier token every test server accepts (`[verify] tokens`), for verify calls that name
/// the end client's `ip`.
pub const TEST_VERIFIER: &str = "kgv_the-verifier-token-of-every-test-server";

/// The default settings, on the SQLite file `db`, with `TEST_VERIFIER`.
pub fn sqlite_settings(db: &std::path::Path) -> Settings {
    let mut settings = Settings { database_url: format!("sqlite://{}", db.display()), ..Settings::default() };
    settings.verify.tokens = vec![TEST_VERIFIER.to_owned().into()];
    settings
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

/// `spawn_app_with`, with the wall clock quota periods are counted by (`limits::Clock`).
pub async fn spawn_app_with_clock(
    configure: impl FnOnce(&mut Settings),
    clock: keygate_server::limits::Clock,
) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let db_path = dir.path().join("keygate.db");
    let mut settings = sqlite_settings(&db_path);
    settings.listen = "127.0.0.1:0".into();
    settings.usage.flush_interval_ms = 100;
    configure(&mut settings);
    let store = keygate_store::open(&settings.database_url).await.expect("open store");
    let app = keygate_server::build_with_clock(settings, store, clock).await.expect("build app");
    serve(app, dir, db_path).await
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
        refill: None,
        refilled_at: None,
        rate_limit: None,
        rate_limits: vec![],
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

// ---- gateway tests' helpers (shared by gateway.rs and gateway_auth.rs) ----

/// Signals between a test and its upstream, for the streaming tests.
#[derive(Default)]
pub struct Signals {
    /// The upstream saw the first chunk of an upload.
    pub upload_started: Notify,
    /// The test received the first chunk of a download: the upstream may send the rest.
    pub send_rest: Notify,
}

/// An upstream that echoes what it receives as JSON, with a few special paths:
/// `…/upload` hashes the body, `…/download` streams 8 MiB, `…/trickle` sends one chunk and waits,
/// `…/hang` never answers, `…/status/NNN` answers NNN.
pub async fn upstream() -> (String, Arc<Signals>) {
    let signals = Arc::new(Signals::default());
    let app = axum::Router::new().fallback(echo).with_state(Arc::clone(&signals));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), signals)
}

pub const MIB: usize = 1024 * 1024;

pub fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

async fn echo(State(signals): State<Arc<Signals>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let path_and_query = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
    if path.ends_with("/hang") {
        tokio::time::sleep(Duration::from_secs(600)).await;
    }
    if let Some(code) = path.split("/status/").nth(1) {
        let status = code.parse::<u16>().ok().and_then(|c| StatusCode::from_u16(c).ok()).unwrap_or(StatusCode::OK);
        return (status, [("content-type", "text/plain")], format!("upstream says {code}")).into_response();
    }
    if path.ends_with("/download") {
        let chunks = (0..8).map(|c| {
            let start = c * MIB;
            Ok::<_, std::io::Error>(bytes::Bytes::from((start..start + MIB).map(pattern).collect::<Vec<u8>>()))
        });
        return Body::from_stream(futures::stream::iter(chunks)).into_response();
    }
    if path.ends_with("/trickle") {
        let first = futures::stream::once(async { Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"first;")) });
        let rest = futures::stream::once(async move {
            signals.send_rest.notified().await;
            Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"rest"))
        });
        return Body::from_stream(first.chain(rest)).into_response();
    }
    let method = req.method().to_string();
    let headers: BTreeMap<String, String> =
        req.headers().iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("?").to_owned())).collect();
    let mut stream = req.into_body().into_data_stream();
    let mut hasher = Sha256::new();
    let mut len = 0usize;
    let mut first = true;
    let mut text = Vec::new();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { break };
        if first && !chunk.is_empty() {
            first = false;
            signals.upload_started.notify_one();
        }
        len += chunk.len();
        hasher.update(&chunk);
        if text.len() < 4096 {
            text.extend_from_slice(&chunk[..chunk.len().min(4096)]);
        }
    }
    axum::Json(json!({
        "method": method,
        "path": path_and_query,
        "headers": headers,
        "body_len": len,
        "body_sha256": hex::encode(hasher.finalize()),
        "body": if len <= 4096 { String::from_utf8_lossy(&text).into_owned() } else { String::new() },
    }))
    .into_response()
}

pub fn route(prefix: &str, upstream: &str, resource: &str) -> RouteSettings {
    RouteSettings::new(prefix, upstream, resource)
}

/// The routes of docs/api.md §5 Gateway (reverse proxy) and the demo: companies (any credential),
/// lists (user-scoped), leads (create-only), plus a few for the edge cases.
pub async fn gateway_app(edit: impl FnOnce(&mut Vec<RouteSettings>)) -> (TestApp, Arc<Signals>) {
    gateway_app_with(edit, |_| {}).await
}

/// `gateway_app` with other settings changed by `configure` too.
pub async fn gateway_app_with(
    edit: impl FnOnce(&mut Vec<RouteSettings>),
    configure: impl FnOnce(&mut Settings),
) -> (TestApp, Arc<Signals>) {
    let (up, signals) = upstream().await;
    let mut routes = vec![
        route("/v1/companies", &up, "companies"),
        RouteSettings { credentials: vec!["user_key".into(), "session".into()], ..route("/v1/lists", &up, "lists") },
        RouteSettings {
            actions: [("POST".to_owned(), "create".to_owned())].into_iter().collect(),
            ..route("/v1/leads", &up, "leads")
        },
        RouteSettings { strip_prefix: true, ..route("/api/stripped", &format!("{up}/base"), "stripped") },
        RouteSettings { timeout_seconds: 1, ..route("/v1/slow", &up, "slow") },
    ];
    edit(&mut routes);
    let app = spawn_app_with(|s| {
        s.gateway.routes = routes;
        configure(s);
    })
    .await;
    (app, signals)
}

pub fn key_of(minted: &Value) -> String {
    minted["key"].as_str().expect("key").to_owned()
}

/// Sends `header_line` verbatim over a raw connection: header names keep their spelling.
pub async fn raw_get(addr: SocketAddr, path: &str, header_line: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{header_line}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

/// `sha256:<hex>` of a verifier token, the form `[verify] tokens` also takes.
pub fn sha256_form(token: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(token.as_bytes())))
}
