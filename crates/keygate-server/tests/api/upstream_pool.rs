//! The gateway's upstream connections (`gateway::upstream`): reused while healthy, never
//! shared by two exchanges at once, replaced when an upstream closes them, and a request is
//! never lost or answered with another's answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use keygate_server::config::RouteSettings;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;

use crate::helpers::*;

/// How the raw upstream treats its connections.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Keeps every connection open (HTTP/1.1 keep-alive).
    KeepAlive,
    /// Closes the socket right after each answer without saying so (no `Connection: close`):
    /// what an upstream's idle timeout looks like to a pool.
    CloseSilently,
}

/// A minimal HTTP/1.1 upstream on raw TCP, so the test controls its connections. Each answer
/// is `{"conn":N,"path":"…","host":[…]}` (N counts connections from 1; every `Host` received); `/stall` sends its head and a
/// piece of a 1 MB body, then nothing.
async fn raw_upstream(mode: Mode) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&connections);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let conn = counter.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(request_line)) = lines.next_line().await {
                    let path = request_line.split(' ').nth(1).unwrap_or("?").to_owned();
                    let mut hosts = Vec::new();
                    while let Ok(Some(header)) = lines.next_line().await {
                        if header.is_empty() {
                            break;
                        }
                        if let Some((name, value)) = header.split_once(':')
                            && name.eq_ignore_ascii_case("host")
                        {
                            hosts.push(value.trim().to_owned());
                        }
                    }
                    if path.ends_with("/stall") {
                        let head = "HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n";
                        let _ = write.write_all(format!("{head}{}", "x".repeat(1000)).as_bytes()).await;
                        tokio::time::sleep(Duration::from_secs(600)).await;
                    }
                    let body = json!({ "conn": conn, "path": path, "host": hosts }).to_string();
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if write.write_all(answer.as_bytes()).await.is_err() || mode == Mode::CloseSilently {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), connections)
}

async fn app_before(mode: Mode) -> (TestApp, String, Arc<AtomicUsize>) {
    let (app, key, connections, _) = app_and_upstream(mode).await;
    (app, key, connections)
}

async fn app_and_upstream(mode: Mode) -> (TestApp, String, Arc<AtomicUsize>, String) {
    let (up, connections) = raw_upstream(mode).await;
    // One worker: every request of the test meets the same pool.
    let app = spawn_app_with(|s| {
        s.workers = 1;
        s.gateway.routes = vec![RouteSettings::new("/v1/raw", &up, "raw")];
    })
    .await;
    let u = app.register().await;
    let key = app.mint(&u.token, &u.account_id, json!({})).await["key"].as_str().expect("key").to_owned();
    (app, key, connections, up)
}

#[tokio::test]
async fn a_healthy_connection_is_reused_for_the_next_request() {
    let (app, key, connections, up) = app_and_upstream(Mode::KeepAlive).await;
    for i in 0..20 {
        let r = app.get(&format!("/v1/raw/{i}"), Cred::ApiKey(&key)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["path"], format!("/v1/raw/{i}"), "each request gets its own answer");
        assert_eq!(r.body["host"], json!([up.trim_start_matches("http://")]), "one Host: the upstream's own name");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1, "20 requests in a row share one upstream connection");
}

#[tokio::test]
async fn connections_the_upstream_closed_are_replaced_without_failing_a_request() {
    let (app, key, connections) = app_before(Mode::CloseSilently).await;
    for i in 0..20 {
        // Back to back, and with a pause in which the close is certainly seen.
        if i % 2 == 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let r = app.get(&format!("/v1/raw/{i}"), Cred::ApiKey(&key)).await;
        assert_eq!(r.status, StatusCode::OK, "request {i}: {}", r.text);
        assert_eq!(r.body["path"], format!("/v1/raw/{i}"));
    }
    assert_eq!(connections.load(Ordering::SeqCst), 20, "one connection per answer: none reused after its close");
}

#[tokio::test]
async fn an_answer_abandoned_halfway_takes_its_connection_with_it() {
    let (app, key, connections) = app_before(Mode::KeepAlive).await;
    let first = app.get("/v1/raw/a", Cred::ApiKey(&key)).await;
    assert_eq!(first.body["conn"], 1);
    // The client reads the head of a long answer and goes away: the rest of that body is still
    // on the connection, which must never carry another request.
    let stalled =
        app.client.get(format!("{}/v1/raw/stall", app.base)).header("x-api-key", &key).send().await.expect("send");
    assert_eq!(stalled.status(), StatusCode::OK);
    assert_eq!(connections.load(Ordering::SeqCst), 1, "the stalled answer came on the reused first connection");
    drop(stalled);
    for i in 0..5 {
        let r = app.get(&format!("/v1/raw/after{i}"), Cred::ApiKey(&key)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["path"], format!("/v1/raw/after{i}"));
        assert_eq!(r.body["conn"], 2, "a fresh connection replaced the stalled one, and is reused in turn");
    }
}
