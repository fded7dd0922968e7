//! An exact load driver for the checks wrk cannot make: wrk stops on a clock and leaves up to
//! one request per connection in flight (answered by keygate, never counted by wrk), so counts
//! that must match to the unit are driven here with a fixed number of requests instead.
//!
//! - `drive verify BASE KEY N CONC`: N verifies → `valid=… rate_limited=… other=…`
//! - `drive gateway URL KEY N CONC`: N gateway GETs → `ok=… limited=… other=…`
//! - `drive warm BASE KEYS_FILE CONC`: one verify per key of the file (fills the cache)
//! - `drive revoke BASE KEY TOKEN KEY_ID CONC`: verifies KEY for 2 s, revokes it after 1 s,
//!   and counts answers VALID to requests sent after the revocation returned (must be 0).
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    limited: AtomicU64,
    other: AtomicU64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(1024).build(connector);
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["verify", base, key, n, conc] => {
            let t = run_fixed(&client, n.parse()?, conc.parse()?, |_| verify_req(base, key)).await?;
            println!(
                "valid={} rate_limited={} other={}",
                t.ok.load(Ordering::SeqCst),
                t.limited.load(Ordering::SeqCst),
                t.other.load(Ordering::SeqCst)
            );
        }
        ["gateway", url, key, n, conc] => {
            let t = run_fixed(&client, n.parse()?, conc.parse()?, |_| gateway_req(url, key)).await?;
            println!(
                "ok={} limited={} other={}",
                t.ok.load(Ordering::SeqCst),
                t.limited.load(Ordering::SeqCst),
                t.other.load(Ordering::SeqCst)
            );
        }
        ["warm", base, file, conc] => {
            let text = std::fs::read_to_string(file).with_context(|| format!("read {file}"))?;
            let keys: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
            let started = Instant::now();
            let t =
                run_fixed(&client, keys.len() as u64, conc.parse()?, |i| verify_req(base, keys[i as usize])).await?;
            println!(
                "warmed={} valid={} other={} seconds={:.1}",
                keys.len(),
                t.ok.load(Ordering::SeqCst),
                t.other.load(Ordering::SeqCst) + t.limited.load(Ordering::SeqCst),
                started.elapsed().as_secs_f64()
            );
        }
        ["revoke", base, key, token, key_id, conc] => {
            revoke_under_load(&client, base, key, token, key_id, conc.parse()?).await?
        }
        _ => anyhow::bail!("usage: see the module documentation of bench/tools/src/bin/drive.rs"),
    }
    Ok(())
}

fn verify_req(base: &str, key: &str) -> anyhow::Result<http::Request<Full<Bytes>>> {
    let body = serde_json::to_vec(&serde_json::json!({ "key": key }))?;
    Ok(http::Request::post(format!("{base}/v1/keys/verify"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))?)
}

fn gateway_req(url: &str, key: &str) -> anyhow::Result<http::Request<Full<Bytes>>> {
    Ok(http::Request::get(url).header("x-api-key", key).body(Full::new(Bytes::new()))?)
}

/// What one answer was: `Ok` (200 and, for verify, code VALID), limited, or anything else.
async fn classify(client: &HttpClient, req: http::Request<Full<Bytes>>) -> anyhow::Result<Outcome> {
    let resp = client.request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    let text = String::from_utf8_lossy(&body);
    Ok(if status == 429 || text.contains("\"code\":\"RATE_LIMITED\"") {
        Outcome::Limited
    } else if status == 200 && (!text.contains("\"code\"") || text.contains("\"code\":\"VALID\"")) {
        Outcome::Ok
    } else {
        Outcome::Other
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Limited,
    Other,
}

/// Sends exactly `n` requests (request `i` built by `make(i)`) over `conc` workers.
async fn run_fixed<F>(client: &HttpClient, n: u64, conc: usize, make: F) -> anyhow::Result<Arc<Tally>>
where
    F: Fn(u64) -> anyhow::Result<http::Request<Full<Bytes>>> + Sync,
{
    let tally = Arc::new(Tally::default());
    let next = AtomicU64::new(0);
    let workers = (0..conc.max(1)).map(|_| async {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                return Ok::<_, anyhow::Error>(());
            }
            let counter = match classify(client, make(i)?).await? {
                Outcome::Ok => &tally.ok,
                Outcome::Limited => &tally.limited,
                Outcome::Other => &tally.other,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    for r in futures::future::join_all(workers).await {
        r?;
    }
    Ok(tally)
}

/// Revocation under load: requests sent after `DELETE /v1/keys/{id}` returned must all be
/// refused, on this node, at once (the epoch bump precedes the 200).
async fn revoke_under_load(
    client: &HttpClient,
    base: &str,
    key: &str,
    token: &str,
    key_id: &str,
    conc: usize,
) -> anyhow::Result<()> {
    let start = Instant::now();
    // Nanoseconds since `start` at which the revocation had returned; 0 = not yet.
    let revoked_at = AtomicU64::new(0);
    let valid_before = AtomicU64::new(0);
    let valid_after = AtomicU64::new(0);
    let refused_after = AtomicU64::new(0);
    let sent = AtomicUsize::new(0);
    let deadline = Duration::from_secs(2);
    let load = (0..conc.max(1)).map(|_| async {
        while start.elapsed() < deadline {
            let sent_at_revoked = revoked_at.load(Ordering::SeqCst);
            sent.fetch_add(1, Ordering::Relaxed);
            let outcome = classify(client, verify_req(base, key)?).await?;
            match (sent_at_revoked > 0, outcome) {
                (false, Outcome::Ok) => valid_before.fetch_add(1, Ordering::Relaxed),
                (true, Outcome::Ok) => valid_after.fetch_add(1, Ordering::Relaxed),
                (true, _) => refused_after.fetch_add(1, Ordering::Relaxed),
                (false, _) => 0,
            };
        }
        Ok::<_, anyhow::Error>(())
    });
    let revoke = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let req = http::Request::delete(format!("{base}/v1/keys/{key_id}"))
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))?;
        let resp = client.request(req).await?;
        let status = resp.status();
        revoked_at.store(start.elapsed().as_nanos().max(1) as u64, Ordering::SeqCst);
        anyhow::ensure!(status == 200, "revocation answered {status}");
        Ok::<_, anyhow::Error>(())
    };
    let (load_results, revoke_result) = tokio::join!(futures::future::join_all(load), revoke);
    revoke_result?;
    for r in load_results {
        r?;
    }
    println!(
        "sent={} valid_before_revoke={} valid_after_revoke={} refused_after_revoke={}",
        sent.load(Ordering::SeqCst),
        valid_before.load(Ordering::SeqCst),
        valid_after.load(Ordering::SeqCst),
        refused_after.load(Ordering::SeqCst)
    );
    Ok(())
}
