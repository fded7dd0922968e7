//! How the server serves: several worker threads on one port, a graceful stop that lets
//! requests in flight on every worker finish and then saves their usage, and a busy port.

use std::time::Duration;

use keygate_server::config::RouteSettings;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// An upstream that answers every request after `delay`.
async fn slow_upstream(delay: Duration) -> String {
    let app = axum::Router::new().fallback(move || async move {
        tokio::time::sleep(delay).await;
        "slow but sure"
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// A client with its own connection pool: each one opens a new connection, which the kernel
/// hands to one of the workers' sockets.
fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client")
}

#[tokio::test]
async fn a_stop_lets_requests_in_flight_on_every_worker_finish_and_saves_their_usage() {
    let upstream = slow_upstream(Duration::from_millis(700)).await;
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("k.db");
    let mut settings = sqlite_settings(&db);
    settings.workers = 3;
    settings.usage.flush_interval_ms = 60_000; // only the shutdown flush can save these counts
    settings.gateway.routes = vec![RouteSettings::new("/v1/slow", &upstream, "slow")];
    let app = spawn_with_settings(settings.clone(), tempfile::tempdir().expect("tmp"), db.clone()).await;
    let u = app.register().await;
    let k = app.mint(&u.token, &u.account_id, json!({})).await;
    let key = k["key"].as_str().expect("key").to_owned();

    // 24 connections: with 3 sockets on the port, every worker gets some of them.
    let in_flight: Vec<_> = (0..24)
        .map(|_| {
            let (url, key) = (format!("{}/v1/slow/x", app.base), key.clone());
            tokio::spawn(async move { fresh_client().get(url).header("x-api-key", key).send().await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(250)).await; // all sent, none answered yet
    app.stop().await;
    for answer in in_flight {
        let answer = answer.await.expect("task").expect("an answer, not a reset connection");
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.text().await.expect("body"), "slow but sure");
    }

    let app = spawn_with_settings(settings, tempfile::tempdir().expect("tmp"), db).await;
    let got = app
        .get(&format!("/v1/keys/{}?account_id={}", k["id"].as_str().expect("id"), u.account_id), Cred::Bearer(&u.token))
        .await;
    assert_eq!(got.body["request_count"], 24, "{}", got.text);
    app.stop().await;
}

#[tokio::test]
async fn every_connection_is_answered_whichever_worker_takes_it() {
    let app = spawn_app_with(|s| s.workers = 4).await;
    let answers =
        futures::future::join_all((0..40).map(|_| fresh_client().get(format!("{}/healthz", app.base)).send())).await;
    for a in answers {
        assert_eq!(a.expect("answer").status(), StatusCode::OK);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_port_another_server_listens_on_is_refused_not_shared() {
    // Workers share their port with SO_REUSEPORT, which would let a second keygate started
    // by mistake on the same port silently take half of the first one's connections.
    let app = spawn_app().await;
    let taken = keygate_server::Listeners::bind(app.addr, 2);
    let err = taken.err().expect("the port is taken");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    assert_eq!(app.get("/healthz", Cred::None).await.status, StatusCode::OK, "the first server still serves");
    app.stop().await;
}
