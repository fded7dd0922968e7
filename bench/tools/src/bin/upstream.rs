//! The fast upstream of the load script: answers every request with a small fixed body over
//! HTTP/1.1 keep-alive, as cheaply as hyper allows, so that the gateway and nginx are measured
//! in front of the same near-zero-cost API.
//!
//! `GET /__count` answers how many requests carried `X-Keygate-Key-Id` (i.e. came through
//! keygate's gateway authenticated by a key): the load script compares it with the key's
//! `request_count`.
//!
//! Usage: `upstream ADDR [WORKER_THREADS]` (default 127.0.0.1:9100, 1 thread).
#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

const BODY: &[u8] = b"{\"ok\":true}\n";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:9100").parse()?;
    let threads: usize = args.next().as_deref().unwrap_or("1").parse()?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?
        .block_on(serve(addr))
}

async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let authenticated = Arc::new(AtomicU64::new(0));
    eprintln!("upstream listening on {addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let counter = Arc::clone(&authenticated);
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let counter = Arc::clone(&counter);
                async move { Ok::<_, Infallible>(answer(&req, &counter)) }
            });
            // Errors are clients going away mid-request (wrk stopping): nothing to report.
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn answer(req: &Request<hyper::body::Incoming>, authenticated: &AtomicU64) -> Response<Full<Bytes>> {
    if req.uri().path() == "/__count" {
        let n = authenticated.load(Ordering::SeqCst);
        return Response::new(Full::new(Bytes::from(format!("{n}\n"))));
    }
    if req.headers().contains_key("x-keygate-key-id") {
        authenticated.fetch_add(1, Ordering::Relaxed);
    }
    let mut resp = Response::new(Full::new(Bytes::from_static(BODY)));
    resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    resp
}
