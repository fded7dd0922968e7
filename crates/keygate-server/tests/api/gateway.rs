//! The gateway (docs/api.md §5 Gateway (reverse proxy)) against a real upstream on loopback:
//! routing, forwarding, header hygiene, streaming, and upstream failures.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::helpers::*;

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
