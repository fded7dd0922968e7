//! Client connections: how many may be open, and how long one may hold its slot without
//! asking for anything (docs/api.md, "Serving"). Slow and idle clients must not exhaust the
//! process's file descriptors:
//!
//! - a connection must deliver a complete request head within `header_read_timeout_seconds`
//!   of being accepted, or of the first byte of a later request on it;
//! - a keep-alive connection idle between requests closes after `idle_timeout_seconds`;
//! - at most `max_connections` are open at once (default from `RLIMIT_NOFILE`). At the cap a
//!   new connection closes an idle one (the longest idle of those looked at) and takes its
//!   place; only when none is idle is the new one closed at once. So a flood of connections
//!   that never send a byte cannot lock anyone out: each newcomer, `/healthz` included, is
//!   served in the place of an idle one, and the timeouts reclaim the rest.
//!
//! The timeouts are kept by one timer per connection that wakes at the current deadline and
//! re-reads it: a request changes only a few atomics (no timer is touched on the hot path).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// File descriptors `max_connections` leaves to everything else by default: storage pools,
/// Redis, listening sockets, the SQLite files, logs.
const RESERVED_FDS: u64 = 128;
/// Connections looked at for an idle one to close when at the cap.
const EVICTION_SAMPLE: usize = 512;

/// The three settings, resolved.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) header_read: Duration,
    pub(crate) idle: Duration,
    pub(crate) max_connections: usize,
}

impl Limits {
    pub(crate) fn for_settings(s: &crate::Settings) -> Self {
        Limits {
            header_read: Duration::from_secs(s.header_read_timeout_seconds),
            idle: Duration::from_secs(s.idle_timeout_seconds),
            max_connections: match s.max_connections {
                0 => default_max_connections(),
                n => n,
            },
        }
    }
}

/// Half of the open-files limit (soft) less `RESERVED_FDS`: a gateway request holds a client
/// connection and an upstream one. At least 16; 1,048,576 when unlimited.
pub(crate) fn default_max_connections() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(2 << 20);
    usize::try_from((soft.saturating_sub(RESERVED_FDS) / 2).clamp(16, 1 << 20)).unwrap_or(1 << 20)
}

/// Every open client connection of the process (all workers share one cap: file descriptors
/// are the process's).
pub(crate) struct Connections {
    limits: Limits,
    epoch: Instant,
    open: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    conns: Vec<Arc<Conn>>,
    /// Where the next eviction sample starts, so samples rotate over the whole list.
    cursor: usize,
}

/// One connection's state, shared by its task, its requests and its socket.
pub(crate) struct Conn {
    /// `Connections::epoch`, copied: a request reads the clock without the registry.
    epoch: Instant,
    /// Its index in `Registry::conns`; `usize::MAX` once removed.
    slot: AtomicUsize,
    /// Requests being served: counted from the service call until the response body is done.
    busy: AtomicUsize,
    /// Milliseconds since `epoch` when it was accepted or a response finished.
    idle_since: AtomicU64,
    /// Milliseconds since `epoch` (+1, so never 0) when the request head now awaited began:
    /// acceptance, or the first byte after an idle spell. 0: no head is awaited.
    head_since: AtomicU64,
    evict: Notify,
}

impl Connections {
    pub(crate) fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Connections { limits, epoch: Instant::now(), open: Mutex::new(Registry::default()) })
    }

    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    fn now_ms(&self) -> u64 {
        ms_since(self.epoch)
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // The registry holds no invariant a panicking holder could break halfway.
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A slot for a connection just accepted, or `None`: the cap is reached and every open
    /// connection is busy (close the new one at once).
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Arc<Conn>> {
        let now = self.now_ms();
        let mut reg = self.registry();
        if reg.conns.len() >= self.limits.max_connections && !reg.evict_one_idle() {
            return None;
        }
        let conn = Arc::new(Conn {
            epoch: self.epoch,
            slot: AtomicUsize::new(reg.conns.len()),
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(now),
            head_since: AtomicU64::new(now),
            evict: Notify::new(),
        });
        reg.conns.push(Arc::clone(&conn));
        Some(conn)
    }

    /// Closes one idle connection, if any: for when `accept` failed for want of descriptors.
    pub(crate) fn evict_one_idle(&self) -> bool {
        self.registry().evict_one_idle()
    }

    /// Forgets a connection that ended.
    pub(crate) fn remove(&self, conn: &Conn) {
        self.registry().remove(conn);
    }

    /// When `conn` must be closed unless it gets busy first (ms since `epoch`); `None` while a
    /// request is being served.
    fn deadline(&self, conn: &Conn) -> Option<u64> {
        if conn.busy.load(Ordering::Acquire) > 0 {
            return None;
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2);
        match conn.head_since.load(Ordering::Acquire) {
            0 => Some(conn.idle_since.load(Ordering::Acquire).saturating_add(ms(self.limits.idle))),
            head => Some(head.saturating_add(ms(self.limits.header_read))),
        }
    }

    fn instant_of(&self, ms: u64) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.epoch + Duration::from_millis(ms.saturating_sub(1)))
    }
}

impl Registry {
    fn evict_one_idle(&mut self) -> bool {
        let len = self.conns.len();
        if len == 0 {
            return false;
        }
        let start = self.cursor % len;
        let victim = (0..len.min(EVICTION_SAMPLE))
            .map(|i| (start + i) % len)
            .filter(|&i| self.conns[i].busy.load(Ordering::Acquire) == 0)
            .min_by_key(|&i| self.conns[i].idle_since.load(Ordering::Acquire));
        self.cursor = start + len.min(EVICTION_SAMPLE);
        let Some(i) = victim else { return false };
        let conn = self.take(i);
        conn.evict.notify_one();
        true
    }

    fn remove(&mut self, conn: &Conn) {
        let i = conn.slot.load(Ordering::Acquire);
        if self.conns.get(i).is_some_and(|c| std::ptr::eq(Arc::as_ptr(c), conn)) {
            self.take(i);
        }
    }

    fn take(&mut self, i: usize) -> Arc<Conn> {
        let conn = self.conns.swap_remove(i);
        conn.slot.store(usize::MAX, Ordering::Release);
        if let Some(moved) = self.conns.get(i) {
            moved.slot.store(i, Ordering::Release);
        }
        conn
    }
}

impl Conn {
    /// A request head arrived: no timeout while it is served.
    pub(crate) fn request_started(&self) {
        self.busy.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(0, Ordering::Release);
    }

    /// Its response was sent (or abandoned).
    fn request_finished(&self) {
        self.idle_since.store(ms_since(self.epoch), Ordering::Release);
        self.busy.fetch_sub(1, Ordering::AcqRel);
    }

    /// Bytes arrived: on an idle connection they begin a request head.
    fn bytes_arrived(&self) {
        if self.busy.load(Ordering::Acquire) == 0 && self.head_since.load(Ordering::Acquire) == 0 {
            self.head_since.store(ms_since(self.epoch), Ordering::Release);
        }
    }
}

/// Ends the connection's request when dropped: held by the response body, so a response that
/// streams for minutes keeps its connection busy until its last byte.
pub(crate) struct RequestGuard {
    conn: Arc<Conn>,
}

impl RequestGuard {
    pub(crate) fn new(conn: &Arc<Conn>) -> Self {
        conn.request_started();
        RequestGuard { conn: Arc::clone(conn) }
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.conn.request_finished();
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its connection busy until it is done.
    pub(crate) struct GuardedBody<B> {
        #[pin]
        inner: B,
        guard: RequestGuard,
    }
}

impl<B> GuardedBody<B> {
    pub(crate) fn new(inner: B, guard: RequestGuard) -> Self {
        GuardedBody { inner, guard }
    }
}

impl<B: http_body::Body> http_body::Body for GuardedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, noting when bytes arrive (the start of a request head on an idle connection).
pub(crate) struct WatchedIo<S> {
    inner: S,
    conn: Arc<Conn>,
}

impl<S> WatchedIo<S> {
    pub(crate) fn new(inner: S, conn: &Arc<Conn>) -> Self {
        WatchedIo { inner, conn: Arc::clone(conn) }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WatchedIo<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.conn.bytes_arrived();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WatchedIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Milliseconds since `epoch`, plus one (so never 0).
fn ms_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
}

/// Why a connection's task should stop waiting on it.
pub(crate) enum Wake {
    /// A deadline passed while idle: close it.
    TimedOut,
    /// Another connection needed its slot: close it if still idle, else finish the request.
    Evicted,
}

/// Resolves when `conn` must close (its timeout) or was evicted. Cancel-safe: select on it
/// beside the connection itself.
pub(crate) async fn closing(connections: &Connections, conn: &Conn) -> Wake {
    let mut at = connections.deadline(conn).unwrap_or_else(|| connections.now_ms() + 1000);
    loop {
        tokio::select! {
            _ = conn.evict.notified() => return Wake::Evicted,
            _ = tokio::time::sleep_until(connections.instant_of(at)) => {}
        }
        // The deadline may have moved since it was set: requests came and went.
        let now = connections.now_ms();
        match connections.deadline(conn) {
            Some(d) if d <= now => return Wake::TimedOut,
            Some(d) => at = d,
            // Busy: look again later (a response may stream for long; it has its own limits).
            None => at = now + u64::try_from(connections.limits.header_read.as_millis()).unwrap_or(1000).max(1000),
        }
    }
}

/// Whether `busy` requests are still being served on `conn`.
pub(crate) fn is_busy(conn: &Conn) -> bool {
    conn.busy.load(Ordering::Acquire) > 0
}

/// `accept` failed because the client gave up first: just accept the next one.
pub(crate) fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize) -> Limits {
        Limits { header_read: Duration::from_secs(10), idle: Duration::from_secs(60), max_connections: max }
    }

    #[test]
    fn at_the_cap_an_idle_connection_makes_room_and_a_busy_one_does_not() {
        let c = Connections::new(limits(2));
        let a = c.admit().expect("a");
        let b = c.admit().expect("b");
        a.request_started();
        let third = c.admit().expect("b is idle: it makes room");
        assert_eq!(b.slot.load(Ordering::Acquire), usize::MAX, "b was evicted");
        third.request_started();
        assert!(c.admit().is_none(), "everything busy: shed");
        c.remove(&a);
        assert!(c.admit().is_some(), "a slot freed");
    }

    #[test]
    fn deadlines_follow_the_connection_state() {
        let c = Connections::new(limits(4));
        let conn = c.admit().expect("conn");
        let accepted = conn.head_since.load(Ordering::Acquire);
        assert_eq!(c.deadline(&conn), Some(accepted + 10_000), "a head within 10 s of acceptance");
        conn.request_started();
        assert_eq!(c.deadline(&conn), None, "no timeout while serving");
        conn.request_finished();
        let idle = conn.idle_since.load(Ordering::Acquire);
        assert_eq!(c.deadline(&conn), Some(idle + 60_000), "idle: 60 s");
        conn.bytes_arrived();
        let head = conn.head_since.load(Ordering::Acquire);
        assert_eq!(c.deadline(&conn), Some(head + 10_000), "a head begun: 10 s to finish it");
    }

    #[test]
    fn the_default_cap_leaves_room_under_the_open_files_limit() {
        let cap = default_max_connections() as u64;
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        assert!(cap >= 16);
        if let Some(soft) = soft.filter(|s| *s > 2 * RESERVED_FDS + 32) {
            assert!(cap * 2 + RESERVED_FDS <= soft, "{cap} of {soft}");
        }
    }
}
