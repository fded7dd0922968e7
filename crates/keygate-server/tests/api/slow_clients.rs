//! Slow and idle clients cannot exhaust the server (docs/api.md, "Serving"): a request head
//! must arrive within `header_read_timeout_seconds` of accept, keep-alive connections idle
//! between requests close after `idle_timeout_seconds`, and at `max_connections` a newcomer
//! takes an idle connection's place, so `/healthz` keeps answering. Timeouts here are 1–3 s;
//! the assertions only say that a connection is closed eventually (within a generous bound).

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::*;

/// Far more than any timeout under test: only a connection never closed takes this long.
const CLOSED_WITHIN: Duration = Duration::from_secs(15);

/// Whether the server closed `s` within `within` (end of stream or a reset), reading and
/// discarding whatever it sends meanwhile.
async fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("connect")
}

/// Reads one response (head and a `Content-Length` body) from a keep-alive connection.
async fn read_response(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(CLOSED_WITHIN, s.read(&mut buf)).await.expect("answered").expect("read");
        assert!(n > 0, "closed before answering: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn connections_that_never_finish_a_request_head_are_closed_after_the_header_timeout() {
    let app = spawn_app_with(|s| {
        s.header_read_timeout_seconds = 1;
        s.idle_timeout_seconds = 60;
    })
    .await;
    // Idle: connected, never a byte.
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(connect(app.addr).await);
    }
    // Slow: a head begun, then one byte of a header line every 200 ms, never finished.
    let slow: Vec<_> = (0..5)
        .map(|_| {
            let addr = app.addr;
            tokio::spawn(async move {
                let mut s = connect(addr).await;
                let start = tokio::time::Instant::now();
                if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.is_err() {
                    return true;
                }
                while start.elapsed() < CLOSED_WITHIN {
                    if s.write_all(b"a").await.is_err() {
                        return true; // the server closed it
                    }
                    let mut buf = [0u8; 256];
                    let read = tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await;
                    if let Ok(Ok(0) | Err(_)) = read {
                        return true;
                    }
                }
                false
            })
        })
        .collect();
    for (i, s) in idle.iter_mut().enumerate() {
        assert!(closed_by_server(s, CLOSED_WITHIN).await, "idle connection {i} was never closed");
    }
    for (i, s) in slow.into_iter().enumerate() {
        assert!(s.await.expect("task"), "slow-header connection {i} was never closed");
    }
    // The server itself is fine.
    assert_eq!(app.get("/healthz", Cred::None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_keep_alive_connection_idle_between_requests_closes_after_the_idle_timeout() {
    let app = spawn_app_with(|s| {
        s.header_read_timeout_seconds = 1;
        s.idle_timeout_seconds = 3;
    })
    .await;
    let mut s = connect(app.addr).await;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", app.addr);
    s.write_all(request.as_bytes()).await.expect("write");
    assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"));
    // Idle longer than the header timeout but within the idle one: still served.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.write_all(request.as_bytes()).await.expect("write");
    assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"), "idle is not a slow head");
    assert!(closed_by_server(&mut s, CLOSED_WITHIN).await, "an idle keep-alive connection was never closed");
}

#[tokio::test]
async fn healthz_answers_while_idle_connections_fill_max_connections() {
    const CAP: usize = 8;
    const HELD: usize = 40;
    let app = spawn_app_with(|s| {
        s.max_connections = CAP;
        // Long timeouts: only the cap can make room here.
        s.header_read_timeout_seconds = 600;
        s.idle_timeout_seconds = 600;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..HELD {
        held.push(connect(app.addr).await);
    }
    // Let the server take the whole flood off its accept queues first (each worker has its
    // own): a loaded machine could otherwise still be admitting flood connections after the
    // health check's, and each admission past the cap closes the longest-idle connection,
    // which in time is the health check's own before its request is read. The cap stays full
    // of idle connections either way.
    let mut open = held.len();
    for _ in 0..50 {
        let mut closed = 0;
        for s in held.iter_mut() {
            if closed_by_server(s, Duration::from_millis(5)).await {
                closed += 1;
            }
        }
        open = held.len() - closed;
        if open <= CAP {
            break;
        }
    }
    assert!(open <= CAP, "{open} flood connections still open, more than max_connections = {CAP}");
    let fresh = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
    for _ in 0..3 {
        let answer = fresh.get(format!("{}/healthz", app.base)).send().await.expect("answered despite the flood");
        assert_eq!(answer.status(), StatusCode::OK);
    }
    // Each connection past the cap closed an idle one: at most CAP are still open.
    let closed = futures::future::join_all(held.iter_mut().map(|s| closed_by_server(s, Duration::from_secs(5)))).await;
    let still_open = closed.iter().filter(|c| !**c).count();
    assert!(still_open <= CAP, "{still_open} idle connections held open, more than max_connections = {CAP}");
}
