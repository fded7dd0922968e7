//! The gateway (SPEC §5) against a real upstream on loopback: routing, forwarding, header
//! hygiene, every authorization rule, rate limits, streaming, and upstream failures.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use keygate_server::config::RouteSettings;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Notify;

use crate::helpers::*;

/// Signals between a test and its upstream, for the streaming tests.
#[derive(Default)]
struct Signals {
    /// The upstream saw the first chunk of an upload.
    upload_started: Notify,
    /// The test received the first chunk of a download: the upstream may send the rest.
    send_rest: Notify,
}

/// An upstream that echoes what it receives as JSON, with a few special paths:
/// `…/upload` hashes the body, `…/download` streams 8 MiB, `…/trickle` sends one chunk and waits,
/// `…/hang` never answers, `…/status/NNN` answers NNN.
async fn upstream() -> (String, Arc<Signals>) {
    let signals = Arc::new(Signals::default());
    let app = axum::Router::new().fallback(echo).with_state(Arc::clone(&signals));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), signals)
}

const MIB: usize = 1024 * 1024;

fn pattern(i: usize) -> u8 {
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

fn route(prefix: &str, upstream: &str, resource: &str) -> RouteSettings {
    RouteSettings::new(prefix, upstream, resource)
}

/// The routes of SPEC §5 and the demo: companies (any credential), lists (user-scoped),
/// leads (create-only), plus a few for the edge cases.
async fn gateway_app(edit: impl FnOnce(&mut Vec<RouteSettings>)) -> (TestApp, Arc<Signals>) {
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
    let app = spawn_app_with(|s| s.gateway.routes = routes).await;
    (app, signals)
}

fn key_of(minted: &Value) -> String {
    minted["key"].as_str().expect("key").to_owned()
}

#[tokio::test]
async fn method_path_query_and_body_are_forwarded() {
    let (app, _) = gateway_app(|_| {}).await;
    let u = app.register().await;
    let key = key_of(&app.mint(&u.token, &u.account_id, json!({})).await);
    let r = app.get("/v1/companies/acme/people?q=a%20b&page=2", Cred::ApiKey(&key)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["path"], "/v1/companies/acme/people?q=a%20b&page=2");
    assert_eq!(r.body["method"], "GET");
    let r = app.call(Method::PUT, "/v1/companies/acme", Cred::ApiKey(&key), Some(json!({ "name": "Acme" }))).await;
    assert_eq!(r.body["method"], "PUT");
    assert_eq!(r.body["body"], r#"{"name":"Acme"}"#);
    assert_eq!(r.body["headers"]["content-type"], "application/json");
    let exact = app.get("/v1/companies", Cred::ApiKey(&key)).await;
    assert_eq!(exact.body["path"], "/v1/companies");
}

#[tokio::test]
async fn strip_prefix_forwards_the_rest_under_the_upstream_base_path() {
    let (app, _) = gateway_app(|_| {}).await;
    let u = app.register().await;
    let key = key_of(&app.mint(&u.token, &u.account_id, json!({})).await);
    let r = app.get("/api/stripped/items/7?x=1", Cred::ApiKey(&key)).await;
    assert_eq!(r.body["path"], "/base/items/7?x=1", "{}", r.text);
    let r = app.get("/api/stripped", Cred::ApiKey(&key)).await;
    assert_eq!(r.body["path"], "/base/");
}

#[tokio::test]
async fn prefixes_match_whole_segments_and_unknown_paths_are_404() {
    let (app, _) = gateway_app(|_| {}).await;
    let u = app.register().await;
    let key = key_of(&app.mint(&u.token, &u.account_id, json!({})).await);
    for path in ["/v1/companiesx", "/v1/nothing", "/v2/companies"] {
        let r = app.get(path, Cred::ApiKey(&key)).await;
        assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"), "{path}");
    }
}

#[tokio::test]
async fn dot_segments_cannot_walk_from_one_route_into_another() {
    let (app, _) = gateway_app(|_| {}).await;
    let u = app.register().await;
    let org = key_of(&app.mint(&u.token, &u.account_id, json!({ "class": "org" })).await);
    // Sent raw: HTTP clients normalise such paths before sending, attackers do not.
    for path in [
        "/v1/companies/../lists",
        "/v1/companies/./../lists",
        "/v1/companies/%2e%2e/lists",
        "/v1/companies%2F..%2Flists",
    ] {
        let answer = raw_get(app.addr, path, &format!("X-API-Key: {org}")).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
        assert!(answer.contains("invalid_request"), "{path}: {answer}");
    }
}

#[tokio::test]
async fn credentials_and_spoofed_identity_headers_never_reach_the_upstream() {
    let (app, _) = gateway_app(|_| {}).await;
    let u = app.register().await;
    let minted = app.mint(&u.token, &u.account_id, json!({ "scopes": ["companies:read", "lists:*"] })).await;
    let key = key_of(&minted);
    // A browser that is signed in to the dashboard sends its session cookie here too.
    let cookie = format!("theme=dark; __Host-keygate_session={}", u.token);
    let r = app
        .call_with(
            Method::GET,
            "/v1/companies",
            Cred::ApiKey(&key),
            None,
            &[
                ("X-Keygate-User-Id", "usr_forged"),
                ("X-Keygate-Account-Id", "acc_forged"),
                ("X-Keygate-Whatever", "forged"),
                ("Connection", "x-hop-secret"),
                ("X-Hop-Secret", "1"),
                ("X-Forwarded-For", "6.6.6.6"),
                ("X-Custom", "kept"),
                ("Cookie", &cookie),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let h = &r.body["headers"];
    assert!(!r.text.contains(&key), "the key reached the upstream");
    assert!(!r.text.contains(&u.token), "the dashboard session reached the upstream");
    assert_eq!(h["cookie"], "theme=dark");
    assert!(h.get("x-api-key").is_none() && h.get("authorization").is_none());
    assert!(h.get("x-keygate-whatever").is_none() && h.get("x-hop-secret").is_none());
    assert_eq!(h["x-keygate-account-id"], u.account_id.as_str());
    assert_eq!(h["x-keygate-user-id"], u.user_id.as_str());
    assert_eq!(h["x-keygate-key-id"], minted["id"]);
    assert_eq!(h["x-keygate-credential"], "user_key");
    assert_eq!(h["x-keygate-scopes"], "companies:read lists:*");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1", "an untrusted peer's X-Forwarded-For is replaced");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert!(h["via"].as_str().is_some_and(|v| v.contains("keygate")));
    assert_eq!(h["x-custom"], "kept");
    assert_eq!(h["x-request-id"].as_str(), r.header("x-request-id"), "the upstream sees our request id");

    let org = app.mint(&u.token, &u.account_id, json!({ "class": "org", "scopes": ["*:read"] })).await;
    let r = app.get("/v1/companies", Cred::Bearer(&key_of(&org))).await;
    let h = &r.body["headers"];
    assert_eq!(h["x-keygate-credential"], "org_key");
    assert!(h.get("x-keygate-user-id").is_none(), "an org key acts for no user");
    assert_eq!(h["x-keygate-scopes"], "*:read");
}

/// Sends `header_line` verbatim over a raw connection: header names keep their spelling.
async fn raw_get(addr: SocketAddr, path: &str, header_line: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{header_line}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

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

#[tokio::test]
async fn upstream_errors_pass_through_unchanged() {
    let (app, _) = gateway_app(|_| {}).await;
    let u = app.register().await;
    let key = key_of(&app.mint(&u.token, &u.account_id, json!({})).await);
    for code in [404u16, 422, 500, 503] {
        let r = app.get(&format!("/v1/companies/status/{code}"), Cred::ApiKey(&key)).await;
        assert_eq!(r.status.as_u16(), code);
        assert_eq!(r.text, format!("upstream says {code}"), "the upstream's body, not ours");
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert!(r.header("x-request-id").is_some());
    }
}

#[tokio::test]
async fn large_bodies_stream_both_ways() {
    let (app, signals) = gateway_app(|_| {}).await;
    let u = app.register().await;
    let key = key_of(&app.mint(&u.token, &u.account_id, json!({})).await);

    // Upload 8 MiB in chunks; the upstream must see the first chunk before the rest is sent.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    let url = format!("{}/v1/companies/upload", app.base);
    let send = tokio::spawn(app.client.post(url).header("X-API-Key", key.clone()).body(body).send());
    let mut expected = Sha256::new();
    let chunk = |c: usize| (c * MIB..(c + 1) * MIB).map(pattern).collect::<Vec<u8>>();
    let first = chunk(0);
    expected.update(&first);
    tx.send(Ok(first)).await.expect("send");
    tokio::time::timeout(Duration::from_secs(10), signals.upload_started.notified())
        .await
        .expect("the upstream saw the upload begin before it ended: the gateway streams requests");
    for c in 1..8 {
        let data = chunk(c);
        expected.update(&data);
        tx.send(Ok(data)).await.expect("send");
    }
    drop(tx);
    let resp = send.await.expect("join").expect("upload");
    assert_eq!(resp.status(), StatusCode::OK);
    let got: Value = resp.json().await.expect("json");
    assert_eq!(got["body_len"], 8 * MIB);
    assert_eq!(got["body_sha256"], hex::encode(expected.finalize()));

    // Download 8 MiB and check every byte.
    let resp = app
        .client
        .get(format!("{}/v1/companies/download", app.base))
        .header("X-API-Key", &key)
        .send()
        .await
        .expect("download");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("ratelimit-limit").is_some());
    let bytes = resp.bytes().await.expect("bytes");
    assert_eq!(bytes.len(), 8 * MIB);
    assert!(bytes.iter().enumerate().all(|(i, b)| *b == pattern(i)), "downloaded bytes differ");

    // The first chunk of a response reaches the client while the upstream still holds the rest.
    let mut resp = app
        .client
        .get(format!("{}/v1/companies/trickle", app.base))
        .header("X-API-Key", &key)
        .send()
        .await
        .expect("trickle");
    let first = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
        .await
        .expect("the first chunk arrived before the body ended: the gateway streams responses")
        .expect("chunk");
    assert_eq!(first.as_deref(), Some(&b"first;"[..]));
    signals.send_rest.notify_one();
    let rest = resp.bytes().await.expect("rest");
    assert_eq!(&rest[..], b"rest");
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn an_upstream_that_hangs_is_answered_504_within_its_timeout() {
    let (app, _) = gateway_app(|_| {}).await;
    let u = app.register().await;
    let key = key_of(&app.mint(&u.token, &u.account_id, json!({})).await);
    let started = Instant::now();
    let r = app.get("/v1/slow/hang", Cred::ApiKey(&key)).await;
    let took = started.elapsed();
    assert_eq!((r.status, r.code()), (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"), "{}", r.text);
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(3), "took {took:?}");
    assert!(r.header("ratelimit-limit").is_some(), "a limit applied, so it is reported");
}

#[tokio::test]
async fn an_upload_that_keeps_flowing_outlasts_the_timeout() {
    let (app, _) = gateway_app(|_| {}).await;
    let u = app.register().await;
    let key = key_of(&app.mint(&u.token, &u.account_id, json!({})).await);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    let send = tokio::spawn(
        app.client.post(format!("{}/v1/slow/upload", app.base)).header("X-API-Key", key).body(body).send(),
    );
    // 2.4 s in all on a route with timeout_seconds = 1, but never 1 s without a byte.
    for _ in 0..4 {
        tx.send(Ok(vec![b'x'; 1000])).await.expect("send");
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    drop(tx);
    let resp = send.await.expect("join").expect("upload");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.expect("json")["body_len"], 4000);
}

#[tokio::test]
async fn an_upstream_that_is_down_is_answered_502() {
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let (app, _) = gateway_app(|routes| routes.push(route("/v1/down", &format!("http://{down}"), "down"))).await;
    let u = app.register().await;
    let key = key_of(&app.mint(&u.token, &u.account_id, json!({})).await);
    let started = Instant::now();
    let r = app.get("/v1/down/x", Cred::ApiKey(&key)).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_GATEWAY, "upstream_unavailable"), "{}", r.text);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn management_paths_are_not_shadowed_and_overlapping_routes_refuse_to_start() {
    let (app, _) = gateway_app(|_| {}).await;
    assert_eq!(app.get("/healthz", Cred::None).await.status, StatusCode::OK);
    let mut s = keygate_server::Settings::default();
    s.gateway.routes = vec![route("/v1/keys/mine", "http://127.0.0.1:9", "keys")];
    let err = s.validate().expect_err("overlap must be refused").to_string();
    assert!(err.contains("gateway.routes[0]") && err.contains("/v1/keys"), "{err}");
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
