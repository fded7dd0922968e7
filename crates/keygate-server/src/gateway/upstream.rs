//! The gateway's connections to its upstreams: HTTP/1.1 over TCP, kept open and reused, one
//! pool per serving worker and upstream.
//!
//! A worker owns its connections (one event loop per core, see `server`): a pooled connection
//! is driven by a task of the worker that opened it, so each worker keeps its own, and only its
//! thread ever touches its pool — a list per upstream, no lock, no hashing. hyper-util's pooled
//! client, used before, hashed its pool key with SipHash three times per request, formatted
//! `Host` every time and spawned a task to put each connection back: ≈ 7k instructions per
//! proxied request (callgrind, BENCHMARKS.md).
//!
//! What keeps one client's request from ever meeting another's answer:
//! - a connection goes back to the pool only once its answer's body has been read to the end
//!   (`PooledBody`); an answer dropped halfway, or a request given up (timeout), drops the
//!   connection with it, and hyper then closes it;
//! - a pooled connection takes a request only after hyper says it is ready for one;
//! - a request a reused connection refused before writing any of it (the upstream closed the
//!   connection while it sat idle) is sent once more, on another connection: it was never
//!   written, so this cannot duplicate it. A request that failed after that is not retried.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::uri::Authority;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A connection that waited longer than this is closed rather than reused (upstreams close
/// idle connections too, and a request must not race that).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per worker and upstream; more are closed when they come back.
const MAX_IDLE: usize = 256;
/// A black-holed upstream fails within this rather than the route's whole timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP keep-alive probes on idle connections, so a vanished upstream host is noticed.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Why no answer came from the upstream.
#[derive(Debug)]
pub enum UpstreamError {
    /// No connection could be opened.
    Connect(std::io::Error),
    /// The connection failed while the request was sent or the answer read.
    Http(hyper::Error),
}

impl UpstreamError {
    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, UpstreamError::Connect(_))
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::Connect(e) => write!(f, "connect: {e}"),
            UpstreamError::Http(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for UpstreamError {}

/// Sends `req` (origin-form URI, `Host` set) to the upstream at `authority` and waits for its
/// answer's head; the body streams after. Dropping the returned future gives the request up
/// and closes the connection it was on.
pub async fn send(
    authority: &Authority,
    mut req: http::Request<Body>,
) -> Result<http::Response<PooledBody>, UpstreamError> {
    while let Some(mut sender) = take_idle(authority) {
        if sender.ready().await.is_err() {
            continue; // closed while idle
        }
        match sender.try_send_request(req).await {
            Ok(resp) => return Ok(PooledBody::wrap(resp, authority, sender)),
            Err(mut e) => match e.take_message() {
                // Refused before any of it was written: safe to send elsewhere.
                Some(unsent) => {
                    #[cfg(test)]
                    tests::RESENT.with(|n| n.set(n.get() + 1));
                    req = unsent;
                }
                None => return Err(UpstreamError::Http(e.into_error())),
            },
        }
    }
    // Boxed: the connect path is rare once the pool is warm, and its state inline would make
    // every request's future larger (and every move of it a longer copy).
    let mut sender = Box::pin(connect(authority)).await?;
    sender.ready().await.map_err(UpstreamError::Http)?;
    let resp = sender.send_request(req).await.map_err(UpstreamError::Http)?;
    Ok(PooledBody::wrap(resp, authority, sender))
}

/// A new connection, its driver spawned on the caller's worker.
async fn connect(authority: &Authority) -> Result<SendRequest<Body>, UpstreamError> {
    let addr = (authority.host().trim_start_matches('[').trim_end_matches(']'), authority.port_u16().unwrap_or(80));
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(connected) => connected.map_err(UpstreamError::Connect)?,
        Err(_) => return Err(UpstreamError::Connect(std::io::ErrorKind::TimedOut.into())),
    };
    stream.set_nodelay(true).map_err(UpstreamError::Connect)?;
    let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
    socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive).map_err(UpstreamError::Connect)?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(UpstreamError::Http)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

/// This thread's idle connections, by upstream. Nothing ties them to a runtime: a connection
/// whose runtime ended (tests start many on one thread) had its driver dropped with it, which
/// closes it, and closed connections are never handed out.
#[derive(Default)]
struct Pools {
    upstreams: Vec<(Authority, VecDeque<Idle>)>,
}

impl Pools {
    fn of(&mut self, authority: &Authority) -> &mut VecDeque<Idle> {
        // A linear scan: a gateway has a handful of upstreams, and comparing one short string
        // costs less than hashing it. Byte-wise: every request of a route names its upstream
        // in the same spelling.
        let i = match self.upstreams.iter().position(|(a, _)| a.as_str() == authority.as_str()) {
            Some(i) => i,
            None => {
                self.upstreams.push((authority.clone(), VecDeque::new()));
                self.upstreams.len() - 1
            }
        };
        &mut self.upstreams[i].1
    }
}

thread_local! {
    static POOLS: RefCell<Pools> = RefCell::new(Pools::default());
}

/// The most recently returned idle connection that is still open and fresh.
fn take_idle(authority: &Authority) -> Option<SendRequest<Body>> {
    POOLS.with_borrow_mut(|pools| {
        let idle = pools.of(authority);
        let now = Instant::now();
        while let Some(c) = idle.pop_back() {
            if !c.sender.is_closed() && now.saturating_duration_since(c.since) < IDLE_TIMEOUT {
                return Some(c.sender);
            }
        }
        None
    })
}

/// Puts a connection whose exchange is complete back; closes the stale and the surplus.
fn put_back(authority: &Authority, sender: SendRequest<Body>) {
    if sender.is_closed() {
        return;
    }
    POOLS.with_borrow_mut(|pools| {
        let idle = pools.of(authority);
        let now = Instant::now();
        while idle
            .front()
            .is_some_and(|c| c.sender.is_closed() || now.saturating_duration_since(c.since) >= IDLE_TIMEOUT)
        {
            idle.pop_front();
        }
        if idle.len() < MAX_IDLE {
            idle.push_back(Idle { sender, since: now });
        }
    });
}

/// An upstream answer's body that returns its connection to the pool when read to the end.
pub struct PooledBody {
    inner: Incoming,
    /// Until the end of the body: the connection and where it goes back.
    give_back: Option<(Authority, SendRequest<Body>)>,
}

impl PooledBody {
    fn wrap(
        resp: http::Response<Incoming>,
        authority: &Authority,
        sender: SendRequest<Body>,
    ) -> http::Response<PooledBody> {
        resp.map(|inner| {
            let mut body = PooledBody { inner, give_back: Some((authority.clone(), sender)) };
            if http_body::Body::is_end_stream(&body.inner) {
                body.release();
            }
            body
        })
    }

    fn release(&mut self) {
        if let Some((authority, sender)) = self.give_back.take() {
            put_back(&authority, sender);
        }
    }
}

impl http_body::Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            None => self.release(),
            Some(Ok(_)) if self.inner.is_end_stream() => self.release(),
            // A broken body: the connection is not reused (dropped with the body).
            Some(Err(_)) => self.give_back = None,
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;

    thread_local! {
        /// Requests `send` sent once more after a pooled connection refused them unwritten.
        pub(super) static RESENT: Cell<u32> = const { Cell::new(0) };
    }

    /// An upstream on TCP answering `fresh` to every request, counting its connections.
    async fn tcp_upstream(listener: TcpListener) -> (Authority, Arc<AtomicUsize>) {
        let authority = listener.local_addr().expect("addr").to_string().parse().expect("authority");
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut seen = Vec::new();
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        // Bodiless requests: each ends with its blank line.
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfresh";
                            if stream.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (authority, connections)
    }

    fn get(authority: &Authority) -> http::Request<Body> {
        let mut req = http::Request::new(Body::empty());
        *req.uri_mut() = http::Uri::from_static("/x");
        req.headers_mut().insert(http::header::HOST, http::HeaderValue::from_str(authority.as_str()).expect("host"));
        req
    }

    #[tokio::test]
    async fn a_request_a_pooled_connection_refused_unwritten_is_sent_once_more_on_a_new_one() {
        let (authority, connections) = tcp_upstream(TcpListener::bind("127.0.0.1:0").await.expect("bind")).await;
        // A pooled connection whose far end is gone, which its driver has not noticed yet: the
        // pool hands it out (it looks open and ready), and hyper refuses the request before
        // writing any of it once the driver reads the end of the stream.
        let (near, far) = tokio::io::duplex(4096);
        let (mut stale, driver) = hyper::client::conn::http1::handshake(TokioIo::new(near)).await.expect("handshake");
        tokio::spawn(async move {
            let _ = driver.await;
        });
        stale.ready().await.expect("ready");
        put_back(&authority, stale);
        drop(far);

        let before = RESENT.with(Cell::get);
        let resp = send(&authority, get(&authority)).await.expect("answered on a new connection");
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&body[..], b"fresh");
        assert_eq!(RESENT.with(Cell::get) - before, 1, "the refused request was sent once more");
        assert_eq!(connections.load(Ordering::SeqCst), 1, "on one new connection");

        // That new connection went back to the pool and serves the next request.
        let resp = send(&authority, get(&authority)).await.expect("answered");
        assert_eq!(resp.into_body().collect().await.expect("body").to_bytes(), "fresh");
        assert_eq!(connections.load(Ordering::SeqCst), 1, "reused");
        assert_eq!(RESENT.with(Cell::get) - before, 1);
    }

    #[tokio::test]
    async fn an_ipv6_literal_upstream_is_reached_and_its_connection_reused() {
        let Ok(listener) = TcpListener::bind("[::1]:0").await else {
            eprintln!(
                "SKIPPED an_ipv6_literal_upstream_is_reached_and_its_connection_reused: this machine has no IPv6 loopback"
            );
            return;
        };
        let (authority, connections) = tcp_upstream(listener).await;
        assert!(authority.as_str().starts_with("[::1]:"), "{authority}");
        for _ in 0..3 {
            let resp = send(&authority, get(&authority)).await.expect("answered");
            assert_eq!(resp.into_body().collect().await.expect("body").to_bytes(), "fresh");
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }
}
