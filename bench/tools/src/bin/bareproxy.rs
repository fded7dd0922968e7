//! The load script's fifth scenario: the smallest reverse proxy on keygate's own HTTP stack
//! — one thread per core, each with a single-threaded tokio runtime and its own `SO_REUSEPORT`
//! listening socket, forwarding over the gateway's own upstream pool
//! (`keygate_server::gateway::upstream`), as `keygate serve` runs — with no authentication, no
//! header rewriting and no middleware. It separates what keygate's gateway costs on top of
//! that stack from what the stack itself costs next to nginx.
//!
//! Usage: `bareproxy LISTEN_ADDR UPSTREAM_ADDR`. `WORKERS` (default: the cores) sets the
//! threads; `MULTI_THREAD=1` serves from one work-stealing runtime instead (keygate's stack
//! before per-core workers), for comparison.
#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::Context as _;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use keygate_server::gateway::upstream;
use tokio::net::{TcpListener, TcpSocket};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args.next().context("usage: bareproxy LISTEN_ADDR UPSTREAM_ADDR")?.parse()?;
    let upstream: SocketAddr = args.next().context("usage: bareproxy LISTEN_ADDR UPSTREAM_ADDR")?.parse()?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let workers = std::env::var("WORKERS").ok().and_then(|v| v.parse().ok()).unwrap_or(cores);
    eprintln!("bareproxy listening on {listen}, forwarding to {upstream}");
    if std::env::var_os("MULTI_THREAD").is_some_and(|v| v == "1") {
        return tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve(listen, upstream));
    }
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(serve(listen, upstream))
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| anyhow::anyhow!("a worker panicked"))??;
    }
    Ok(())
}

/// One accept loop with its own socket on the shared port (the upstream pool is per thread).
async fn serve(listen: SocketAddr, upstream: SocketAddr) -> anyhow::Result<()> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseport(true)?;
    socket.set_reuseaddr(true)?;
    socket.bind(listen)?;
    let listener: TcpListener = socket.listen(1024)?;
    let authority: http::uri::Authority = upstream.to_string().parse()?;
    let host = http::HeaderValue::from_str(authority.as_str())?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let (authority, host) = (authority.clone(), host.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| forward(authority.clone(), host.clone(), req));
            // Errors are clients going away mid-request (wrk stopping): nothing to report.
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn forward(
    authority: http::uri::Authority,
    host: http::HeaderValue,
    req: Request<Incoming>,
) -> Result<Response<BoxBody<bytes::Bytes, hyper::Error>>, Infallible> {
    let (mut parts, body) = req.into_parts();
    // Origin form and the upstream's own `Host`, as the gateway sends them.
    parts.uri = match parts.uri.path_and_query().map_or(Ok(http::Uri::from_static("/")), |p| p.as_str().parse()) {
        Ok(uri) => uri,
        Err(_) => return Ok(status(StatusCode::BAD_REQUEST)),
    };
    parts.headers.insert(http::header::HOST, host);
    match upstream::send(&authority, Request::from_parts(parts, axum::body::Body::new(body))).await {
        Ok(resp) => Ok(resp.map(BodyExt::boxed)),
        Err(_) => Ok(status(StatusCode::BAD_GATEWAY)),
    }
}

fn status(code: StatusCode) -> Response<BoxBody<bytes::Bytes, hyper::Error>> {
    let mut resp = Response::new(http_body_util::Empty::new().map_err(|never| match never {}).boxed());
    *resp.status_mut() = code;
    resp
}
