//! Extractors that answer bad input in the contract's shape instead of axum's plain text.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body: `Content-Type: application/json`, within `max_body_bytes`, well-formed, and of
/// the right shape; otherwise 400/413 with the failing field in `details`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        // The exact common value first: parsing the media type costs more than the comparison.
        let is_json = req.headers().get(CONTENT_TYPE).is_some_and(|v| {
            v.as_bytes() == b"application/json"
                || v.to_str().ok().and_then(|v| v.split(';').next()).is_some_and(is_json_media_type)
        });
        if !is_json {
            return Err(ApiError::invalid_request("Content-Type must be application/json."));
        }
        let bytes = read_body(req.into_body(), state.settings.max_body_bytes).await?;
        parse_json(&bytes).map(Json)
    }
}

/// The whole body, at most `limit` bytes (413 beyond). A body that arrives in one piece — as
/// small requests do — is taken as it is, without the general collector's buffers and copy.
pub async fn read_body(body: axum::body::Body, limit: usize) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt as _;
    let mut body = http_body_util::Limited::new(body, limit);
    let first = match body.frame().await {
        None => return Ok(Bytes::new()),
        Some(frame) => frame.map_err(|_| ApiError::payload_too_large())?.into_data().unwrap_or_default(),
    };
    if http_body::Body::is_end_stream(&body) {
        return Ok(first);
    }
    let rest = body.collect().await.map_err(|_| ApiError::payload_too_large())?.to_bytes();
    if first.is_empty() {
        return Ok(rest);
    }
    let mut whole = bytes::BytesMut::with_capacity(first.len() + rest.len());
    whole.extend_from_slice(&first);
    whole.extend_from_slice(&rest);
    Ok(whole.freeze())
}

/// `application/json` or `application/…+json`, in any letter case.
fn is_json_media_type(m: &str) -> bool {
    let m = m.trim();
    let starts = m.get(..12).is_some_and(|p| p.eq_ignore_ascii_case("application/"));
    let ends = m.len() >= 5 && m.get(m.len() - 5..).is_some_and(|p| p.eq_ignore_ascii_case("+json"));
    m.eq_ignore_ascii_case("application/json") || (starts && ends)
}

/// The body as `T`. Well-formed bodies take serde_json's plain path (verify is on the hot
/// path); only a failure is parsed again with `serde_path_to_error` to name the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    if has_nul_escape(bytes) {
        return Err(invalid_body("body", "Strings may not contain the NUL character (\\u0000)."));
    }
    if let Ok(v) = serde_json::from_slice(bytes) {
        return Ok(v);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let e = match serde_path_to_error::deserialize::<_, T>(de) {
        Err(e) => e,
        // The value itself parsed: what failed is what followed it (`{…} junk`).
        Ok(_) => return Err(invalid_body("body", "The body is not valid JSON.")),
    };
    let path = e.path().to_string();
    let inner = e.into_inner();
    let message =
        if inner.is_syntax() || inner.is_eof() { "The body is not valid JSON.".to_owned() } else { inner.to_string() };
    let field = if path == "." { "body" } else { &path };
    Err(invalid_body(field, &message))
}

/// Whether a JSON text holds the escape `\u0000` (an even number of backslashes before it is
/// a literal backslash, not an escape). JSON cannot carry a raw NUL, so this is the only way
/// one reaches a string, and PostgreSQL text cannot store it. One pass over the body; bodies
/// without a backslash (verify's, most) cost a comparison per byte. Other control characters
/// in body strings are each field's business: free-text metadata values may hold `\n` and
/// `\t`; names and ids have validation of their own (docs/api.md, Input).
fn has_nul_escape(bytes: &[u8]) -> bool {
    let mut i = 0;
    while let Some(at) = bytes[i..].iter().position(|&b| b == b'\\') {
        let start = i + at;
        let run = bytes[start..].iter().take_while(|&&b| b == b'\\').count();
        let end = start + run;
        if run % 2 == 1 && bytes[end..].starts_with(b"u0000") {
            return true;
        }
        i = end;
    }
    false
}

/// A control character (C0, DEL or C1), which no query or path parameter of this API can
/// legitimately hold: ids, handles, emails, names, filters, cursors.
pub fn is_control(c: char) -> bool {
    c.is_control()
}

fn invalid_body(field: &str, message: &str) -> ApiError {
    let mut err = ApiError::invalid_request(format!("Invalid request body: {message}"));
    err.details = Some(json!([{ "field": field, "message": message }]));
    err
}

/// Query parameters with the same error shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or_default();
        // Decoded values with a control character (`%00` above all: PostgreSQL text cannot
        // hold it) are refused here, for every query of every route.
        if let Some((field, _)) = form_urlencoded::parse(q.as_bytes()).find(|(_, v)| v.chars().any(is_control)) {
            let message = "may not contain control characters";
            let mut err = ApiError::invalid_request(format!("Invalid query parameter {field}: {message}"));
            err.details = Some(json!([{ "field": field, "message": message }]));
            return Err(err);
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize(de).map(Query).map_err(|e| {
            let field = e.path().to_string();
            let message = e.into_inner().to_string();
            let mut err = ApiError::invalid_request(format!("Invalid query parameter {field}: {message}"));
            err.details = Some(json!([{ "field": field, "message": message }]));
            err
        })
    }
}

/// The client's address: the socket peer, or — when the peer is one of `trusted_proxies` — the
/// rightmost untrusted hop of its `X-Forwarded-For` and `Forwarded` field lines (docs/api.md,
/// "Client address"). Every reader of the client address goes through `client_ip_of`.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts, state)))
    }
}

pub const X_FORWARDED_FOR: axum::http::HeaderName = axum::http::HeaderName::from_static("x-forwarded-for");
pub const FORWARDED: axum::http::HeaderName = axum::http::HeaderName::from_static("forwarded");

pub fn client_ip(parts: &Parts, state: &AppState) -> IpAddr {
    client_ip_of(&parts.extensions, &parts.headers, state)
}

/// `client_ip` of a request not split into its parts.
pub fn request_client_ip(req: &Request, state: &AppState) -> IpAddr {
    client_ip_of(req.extensions(), req.headers(), state)
}

fn client_ip_of(extensions: &axum::http::Extensions, headers: &axum::http::HeaderMap, state: &AppState) -> IpAddr {
    let peer = extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()).unwrap_or(IpAddr::from([127, 0, 0, 1]));
    // Lazy: a header is looked up (hashed) at the iterator's first `next`, which `client_ip`
    // calls only when the peer is trusted. No cost without `trusted_proxies`, no allocation.
    let values = |name: axum::http::HeaderName| {
        std::iter::once(name).flat_map(|n| headers.get_all(n)).map(axum::http::HeaderValue::as_bytes)
    };
    keygate_core::net::client_ip(peer, &state.trusted_proxies, values(X_FORWARDED_FOR), values(FORWARDED))
}

/// `?limit=` (1–100, default 50) and `?cursor=`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paging {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl Paging {
    pub fn to_request(&self) -> Result<keygate_store::PageRequest, ApiError> {
        page_request(self.limit, self.cursor.as_deref())
    }
}

pub(crate) use crate::service::input::page_request;

/// A JSON body that may be absent: an empty body is `None`, anything else must be valid JSON.
#[derive(Debug, Clone, Copy, Default)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req.into_body(), state.settings.max_body_bytes).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        parse_json(&bytes).map(|v| OptionalJson(Some(v)))
    }
}

/// Authenticates any credential for the management API. Keys go through the full hot path
/// (status, plan, address, rate limit, usage); sessions through theirs.
impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let ip = client_ip(parts, state);
        let principal = crate::auth::principal::authenticate(&parts.headers, ip, state).await?;
        if let (Principal::Key(g), Some(slot)) = (&principal, parts.extensions.get::<RateSlot>())
            && let Some(d) = g.rate
            && let Ok(mut s) = slot.0.lock()
        {
            *s = Some(d);
        }
        Ok(principal)
    }
}

/// Carries a key's rate-limit decision from the extractor to the response, so every
/// authenticated answer has `RateLimit-*` headers (see `rate_headers`).
#[derive(Clone, Default)]
pub struct RateSlot(std::sync::Arc<std::sync::Mutex<Option<keygate_core::ratelimit::Decision>>>);

pub async fn rate_headers(mut req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let slot = RateSlot::default();
    req.extensions_mut().insert(slot.clone());
    let mut resp = next.run(req).await;
    if !resp.headers().contains_key("ratelimit-limit")
        && let Ok(s) = slot.0.lock()
        && let Some(d) = *s
    {
        crate::error::insert_rate_headers(resp.headers_mut(), &d);
    }
    resp
}

#[cfg(test)]
mod nul_tests {
    use super::has_nul_escape;

    #[test]
    fn only_a_real_nul_escape_counts() {
        assert!(has_nul_escape(br#"{"a":"x\u0000"}"#));
        assert!(has_nul_escape(br#"{"a":"\\\u0000"}"#)); // \\ then \u0000
        assert!(!has_nul_escape(br#"{"a":"\\u0000"}"#)); // a backslash, then the text u0000
        assert!(!has_nul_escape(br#"{"a":"\u0001 \n"}"#));
        assert!(!has_nul_escape(b"{}"));
        assert!(!has_nul_escape(b"\\"));
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    fn chunked(parts: &[&'static str]) -> Body {
        let parts: Vec<&'static str> = parts.to_vec();
        Body::from_stream(futures::stream::iter(
            parts.into_iter().map(|p| Ok::<_, std::io::Error>(Bytes::from_static(p.as_bytes()))),
        ))
    }

    #[tokio::test]
    async fn a_body_is_read_whole_in_one_piece_or_many() {
        assert_eq!(read_body(Body::from("{\"key\":1}"), 64).await.ok(), Some(Bytes::from_static(b"{\"key\":1}")));
        assert_eq!(
            read_body(chunked(&["{\"ke", "y\":", "1}"]), 64).await.ok(),
            Some(Bytes::from_static(b"{\"key\":1}"))
        );
        assert_eq!(read_body(chunked(&["", "{}"]), 64).await.ok(), Some(Bytes::from_static(b"{}")));
        assert_eq!(read_body(Body::empty(), 64).await.ok(), Some(Bytes::new()));
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_413_in_one_piece_or_many() {
        for body in [
            Body::from("x".repeat(65)),
            chunked(&["0123456789012345678901234567890123", "456789012345678901234567890123456"]),
        ] {
            let err = read_body(body, 64).await.expect_err("too large");
            assert_eq!(err.status, http::StatusCode::PAYLOAD_TOO_LARGE);
        }
    }
}
