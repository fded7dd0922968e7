//! `X-Request-Id` on every answer. The id lives in a task-local for the request's future so
//! that an error rendered anywhere below can put it in its body.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};

tokio::task_local! {
    static REQUEST_ID: HeaderValue;
}

pub(crate) const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The current request's id, or `-` outside a request.
pub(crate) fn current() -> String {
    REQUEST_ID.try_with(|id| id.to_str().unwrap_or("-").to_owned()).unwrap_or_else(|_| "-".to_owned())
}

/// The current request's id as a header value (a shared buffer: no copy), outside a request `None`.
pub(crate) fn current_header() -> Option<HeaderValue> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// `req_` and 20 base62 characters from a fast thread-local generator (seeded from the OS):
/// a request id must be unique, not secret, so it costs no system call per request. Ten
/// digits from each of two 64-bit draws (62^10 < 2^64): ≈ 119 random bits, two generator
/// calls instead of twenty. The digits are not quite uniform, which an id need not be.
fn generate() -> HeaderValue {
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut id = [0u8; 24];
    id[..4].copy_from_slice(b"req_");
    for (digits, mut n) in id[4..].chunks_mut(10).zip([fastrand::u64(..), fastrand::u64(..)]) {
        for d in digits {
            *d = DIGITS[(n % 62) as usize];
            n /= 62;
        }
    }
    // Owned by one shared allocation: the id is cloned into the task-local, the answer and
    // the upstream request, and each clone is then a reference count, not a copy (a plain
    // copied buffer is promoted to a shared one, another allocation, at its first clone).
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(id))
        .unwrap_or_else(|_| HeaderValue::from_static("req_unavailable"))
}

/// An id a client or load balancer sent that is safe to adopt: 1–64 of `[A-Za-z0-9_-]`.
fn acceptable(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 64 && b.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The id a request is served under: a well-formed incoming one (from a load balancer) or a
/// new one. The answer carries it in `X-Request-Id` (`routes::edge`).
pub(crate) fn of(req: &Request) -> HeaderValue {
    req.headers().get(HEADER).filter(|v| acceptable(v)).cloned().unwrap_or_else(generate)
}

/// `f` with `id` as the current request's id.
pub(crate) fn sync_scope<R>(id: HeaderValue, f: impl FnOnce() -> R) -> R {
    REQUEST_ID.sync_scope(id, f)
}

/// `fut` with `id` as the current request's id whenever it runs.
pub(crate) fn scope<F: std::future::Future>(
    id: HeaderValue,
    fut: F,
) -> tokio::task::futures::TaskLocalFuture<HeaderValue, F> {
    REQUEST_ID.scope(id, fut)
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_ids_are_prefixed_base62_and_distinct() {
        let a = super::generate();
        let b = super::generate();
        let a = a.to_str().expect("ASCII");
        assert_eq!(a.len(), 24);
        assert!(a.starts_with("req_") && keygate_core::base62::is_base62(&a[4..]), "{a}");
        assert_ne!(a, b.to_str().expect("ASCII"));
    }
}
