//! How requests reach the router: one serving thread per worker, each with its own
//! single-threaded event loop and its own listening socket on the shared address
//! (`SO_REUSEPORT`: the kernel spreads new connections over the sockets).
//!
//! Why not one multi-threaded runtime: on the hot path a request then hops between threads
//! (the connection's task, the pooled upstream connection's task, timers), and each hop wakes
//! a parked thread with a system call. A worker that owns its connections, its timers and —
//! through the gateway's per-runtime client — its upstream connections serves a request
//! without leaving its thread; measured in BENCHMARKS.md (a bare proxy on this stack went from
//! 0.74× nginx to ≥ 1×).
//!
//! Each worker runs its own accept loop and serves each connection with hyper's HTTP/1.1,
//! under the connection limits of `crate::connections` (header and idle timeouts,
//! `max_connections`), which axum's `serve` has no way to set.
//!
//! Everything else (storage pools, the usage flusher, the cluster listener) stays on the
//! runtime that built the app. A storage connection a worker happened to open is registered
//! with that worker's event loop, so the workers' loops are kept running until the final usage
//! flush is done, and only then end.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::App;
use crate::connections::{self, Conn, Connections, GuardedBody, RequestGuard, Wake, WatchedIo};
use crate::routes::HttpService;

/// How long in-flight requests may take to finish once shutdown begins.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);
/// The accept queue of each listening socket (tokio's own default).
const BACKLOG: u32 = 1024;
/// How long a worker waits before accepting again when `accept` failed for want of file
/// descriptors or memory (after closing an idle connection): never a busy loop.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

/// The listening sockets of every worker, bound to one address.
pub struct Listeners {
    sockets: Vec<std::net::TcpListener>,
    addr: SocketAddr,
}

impl Listeners {
    /// Binds `workers` sockets (at least one) to `addr` with `SO_REUSEPORT`. With port 0 the
    /// first socket picks the port and the others join it. Must be called inside a tokio runtime.
    /// A port another socket already listens on is refused (`AddrInUse`), as without
    /// `SO_REUSEPORT`: a second server started by mistake must not share it.
    pub fn bind(addr: SocketAddr, workers: usize) -> io::Result<Self> {
        if addr.port() != 0 {
            refuse_if_taken(addr)?;
        }
        let first = listen(addr)?;
        let addr = first.local_addr()?;
        let mut sockets = vec![first];
        for _ in 1..workers.max(1) {
            sockets.push(listen(addr)?);
        }
        Ok(Listeners { sockets, addr })
    }

    /// The sockets for `settings.listen`, one per worker (`Settings::worker_count`).
    pub fn for_settings(settings: &crate::Settings) -> io::Result<Self> {
        let addr = settings.listen.parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{}` is not an address like 127.0.0.1:8080", settings.listen),
            )
        })?;
        Self::bind(addr, settings.worker_count())
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn workers(&self) -> usize {
        self.sockets.len()
    }
}

/// Binds (without listening) a socket that does not ask to share the port: the kernel refuses
/// it if anything, reuse-port group or not, is bound there. Closed at once.
fn refuse_if_taken(addr: SocketAddr) -> io::Result<()> {
    let probe = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    // Not refused by connections of an earlier run still in TIME_WAIT.
    probe.set_reuseaddr(true)?;
    probe.bind(addr)
}

fn listen(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    // Linux refuses a second socket on the port unless every one sets this before binding;
    // only sockets of the same user may join the group.
    socket.set_reuseport(true)?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    // Registered with the caller's runtime only until `into_std`: each worker registers its
    // socket with its own event loop.
    socket.listen(BACKLOG)?.into_std()
}

impl App {
    /// Serves on `listeners` until `shutdown` resolves, drains in-flight requests (at most
    /// 30 s), then flushes usage counters so none are lost.
    pub async fn serve(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let addr = listeners.local_addr();
        let workers = listeners.workers();
        let service = self.service;
        let connections = Connections::new(connections::Limits::for_settings(&self.state.settings));
        let drain = CancellationToken::new();
        let exit = CancellationToken::new();
        let (drained_tx, mut drained_rx) = mpsc::channel::<io::Result<()>>(workers);
        let mut threads = Vec::with_capacity(workers);
        for (i, socket) in listeners.sockets.into_iter().enumerate() {
            let worker = Worker {
                socket,
                service: service.clone(),
                connections: Arc::clone(&connections),
                drain: drain.clone(),
                exit: exit.clone(),
                drained: drained_tx.clone(),
            };
            let spawned = std::thread::Builder::new()
                .name(format!("keygate-worker-{i}"))
                .spawn(move || worker.run_reporting_panics());
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    // The workers already started end at once (nothing was accepted yet).
                    drain.cancel();
                    exit.cancel();
                    self.background.stop.cancel();
                    return Err(e);
                }
            }
        }
        drop(drained_tx);
        let limits = connections.limits();
        tracing::info!(%addr, workers, max_connections = limits.max_connections, "keygate listening");

        // A worker that fails (its runtime would not start, or its thread panicked) ends the
        // server: without it a share of new connections would land on a socket nobody accepts
        // from, so a supervisor had better restart the whole process.
        let mut result = Ok(());
        let mut remaining = workers;
        tokio::select! {
            _ = shutdown => {}
            Some(r) = drained_rx.recv() => {
                remaining -= 1;
                result = r;
                tracing::error!(error = ?result.as_ref().err(), "a serving worker stopped; shutting down");
            }
        }
        drain.cancel();
        let drained = async {
            while remaining > 0
                && let Some(r) = drained_rx.recv().await
            {
                remaining -= 1;
                if result.is_ok() {
                    result = r;
                }
            }
        };
        if tokio::time::timeout(DRAIN_LIMIT, drained).await.is_err() {
            tracing::warn!("in-flight requests did not finish within 30 s; stopping anyway");
        }
        self.background.stop.cancel();
        let _ = self.background.flusher.await;
        exit.cancel();
        let joined = tokio::task::spawn_blocking(move || threads.into_iter().all(|t| t.join().is_ok())).await;
        if !matches!(joined, Ok(true)) {
            tracing::error!("a serving worker panicked");
        }
        tracing::info!("keygate stopped");
        result
    }
}

/// One serving thread.
struct Worker {
    socket: std::net::TcpListener,
    service: HttpService,
    /// Every client connection of the process, under one cap.
    connections: Arc<Connections>,
    /// Stop accepting and finish the requests in flight.
    drain: CancellationToken,
    /// End the event loop: set once nothing else will use a connection registered with it.
    exit: CancellationToken,
    drained: mpsc::Sender<io::Result<()>>,
}

impl Worker {
    /// `run`, telling the server when the thread dies of a panic (a handler's panic only ends
    /// its connection's task; this is about the event loop itself).
    fn run_reporting_panics(self) {
        let drained = self.drained.clone();
        report_panic(&drained, || self.run());
    }

    fn run(self) {
        let Worker { socket, service, connections, drain, exit, drained } = self;
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                let _ = drained.try_send(Err(e));
                return;
            }
        };
        runtime.block_on(async move {
            let served = async {
                let listener = TcpListener::from_std(socket)?;
                accept_loop(listener, service, connections, drain).await;
                Ok::<(), io::Error>(())
            };
            let result = tokio::select! {
                r = served => r,
                // The drain limit passed: whatever is still in flight is dropped.
                _ = exit.cancelled() => Ok(()),
            };
            let _ = drained.send(result).await;
            exit.cancelled().await;
        });
    }
}

/// Accepts until `drain`, then waits for this worker's connections to finish.
async fn accept_loop(
    listener: TcpListener,
    service: HttpService,
    connections: Arc<Connections>,
    drain: CancellationToken,
) {
    // Each connection's task holds a receiver; all dropped = all finished.
    let (finished_tx, finished_rx) = watch::channel(());
    let mut warned: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = drain.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) if connections::is_connection_error(&e) => continue,
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS, ENOMEM: free an idle connection's descriptor and
                // pause, rather than fail again at once in a loop.
                if warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                    tracing::warn!(error = %e, "accepting a connection failed; closing an idle one and pausing");
                    warned = Some(Instant::now());
                }
                connections.evict_one_idle();
                tokio::select! {
                    _ = drain.cancelled() => break,
                    _ = tokio::time::sleep(ACCEPT_PAUSE) => continue,
                }
            }
        };
        let Some(conn) = connections.admit() else {
            // At the cap with every connection busy: shed this one (closed by the drop).
            tracing::debug!(%peer, "connection refused: max_connections reached, none idle");
            continue;
        };
        let task = serve_connection(stream, peer, conn, Arc::clone(&connections), service.clone(), drain.clone());
        let finished = finished_rx.clone();
        tokio::spawn(async move {
            task.await;
            drop(finished);
        });
    }
    drop(finished_rx);
    finished_tx.closed().await;
}

/// Serves one connection with HTTP/1.1 until it ends, times out (docs/api.md, "Serving"), is
/// evicted for a newcomer while idle, or the server drains.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    conn: Arc<Conn>,
    connections: Arc<Connections>,
    service: HttpService,
    drain: CancellationToken,
) {
    let io = TokioIo::new(WatchedIo::new(stream, &conn));
    let on_request = {
        let conn = Arc::clone(&conn);
        hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            let guard = RequestGuard::new(&conn);
            req.extensions_mut().insert(ConnectInfo(peer));
            let answer = service.clone().oneshot(req.map(Body::new));
            async move {
                let resp = answer.await?;
                Ok::<_, Infallible>(resp.map(|body| GuardedBody::new(body, guard)))
            }
        })
    };
    let mut http = pin!(hyper::server::conn::http1::Builder::new().serve_connection(io, on_request));
    let mut draining = false;
    loop {
        tokio::select! {
            _ = http.as_mut() => break,
            _ = drain.cancelled(), if !draining => {
                draining = true;
                http.as_mut().graceful_shutdown();
            }
            wake = connections::closing(&connections, &conn) => match wake {
                Wake::Evicted if connections::is_busy(&conn) => {
                    draining = true;
                    http.as_mut().graceful_shutdown();
                }
                // Idle past its timeout, or its slot given to a newcomer: dropped, so closed.
                Wake::TimedOut | Wake::Evicted => break,
            },
        }
    }
    connections.remove(&conn);
}

/// Runs `work`; if it panics, sends the error the server's supervision loop waits for.
fn report_panic(drained: &mpsc::Sender<io::Result<()>>, work: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).is_err() {
        let _ = drained.try_send(Err(io::Error::other("a serving worker panicked")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_that_panics_is_reported_at_once() {
        let (tx, mut rx) = mpsc::channel(1);
        report_panic(&tx, || panic!("the event loop broke"));
        let reported = rx.try_recv().expect("reported without waiting for shutdown");
        assert!(reported.is_err_and(|e| e.to_string().contains("panicked")));
        report_panic(&tx, || {});
        assert!(rx.try_recv().is_err(), "a worker that ends normally reports through `run`");
    }
}
