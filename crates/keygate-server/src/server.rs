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
//! Everything else (storage pools, the usage flusher, the cluster listener) stays on the
//! runtime that built the app. A storage connection a worker happened to open is registered
//! with that worker's event loop, so the workers' loops are kept running until the final usage
//! flush is done, and only then end.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::Request;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::App;

/// How long in-flight requests may take to finish once shutdown begins.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);
/// The accept queue of each listening socket (tokio's own default).
const BACKLOG: u32 = 1024;

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

    pub fn workers(&self) -> usize {
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
        let service = axum::ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(self.service);
        let drain = CancellationToken::new();
        let exit = CancellationToken::new();
        let (drained_tx, mut drained_rx) = mpsc::channel::<io::Result<()>>(workers);
        let mut threads = Vec::with_capacity(workers);
        for (i, socket) in listeners.sockets.into_iter().enumerate() {
            let worker = Worker {
                socket,
                service: service.clone(),
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
        tracing::info!(%addr, workers, "keygate listening");

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

type Service = axum::extract::connect_info::IntoMakeServiceWithConnectInfo<crate::routes::HttpService, SocketAddr>;

/// One serving thread.
struct Worker {
    socket: std::net::TcpListener,
    service: Service,
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
        let Worker { socket, service, drain, exit, drained } = self;
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
                axum::serve(listener, service).with_graceful_shutdown(drain.cancelled_owned()).await
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
