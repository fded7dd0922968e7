//! `X-Request-Id` on every answer. The id lives in a task-local for the request's future so
//! that an error rendered anywhere below can put it in its body.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

tokio::task_local! {
    static REQUEST_ID: String;
}

pub const HEADER: &str = "x-request-id";

/// The current request's id, or `-` outside a request.
pub fn current() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_else(|_| "-".to_owned())
}

/// `req_` and 20 base62 characters from a fast thread-local generator (seeded from the OS):
/// a request id must be unique, not secret, so it costs no system call per request.
fn generate() -> String {
    let mut id = String::with_capacity(24);
    id.push_str("req_");
    id.extend(std::iter::repeat_with(fastrand::alphanumeric).take(20));
    id
}

/// Runs the request with its id: a well-formed incoming one (from a load balancer) or a new
/// one; the answer carries it in `X-Request-Id`.
pub async fn run(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .map(str::to_owned)
        .unwrap_or_else(generate);
    let mut resp = REQUEST_ID.scope(id.clone(), next.run(req)).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(HEADER, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_ids_are_prefixed_base62_and_distinct() {
        let a = super::generate();
        let b = super::generate();
        assert_eq!(a.len(), 24);
        assert!(a.starts_with("req_") && keygate_core::base62::is_base62(&a[4..]), "{a}");
        assert_ne!(a, b);
    }
}
