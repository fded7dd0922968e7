//! Forwarding: header hygiene in both directions (RFC 9110
//! hop-by-hop fields, credentials, spoofed identity), and a body wrapper that never lets a
//! stalled upstream hold a client forever. Bodies stream through untouched.

use std::cell::RefCell;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http_body::{Frame, SizeHint};
use keygate_core::{CredentialKind, KeyFormat};

use crate::auth::headers::X_API_KEY;
use crate::extract::{FORWARDED, X_FORWARDED_FOR};
use tokio::time::{Instant, Sleep};

pub(crate) const X_KEYGATE_ACCOUNT_ID: HeaderName = HeaderName::from_static("x-keygate-account-id");
pub(crate) const X_KEYGATE_USER_ID: HeaderName = HeaderName::from_static("x-keygate-user-id");
pub(crate) const X_KEYGATE_KEY_ID: HeaderName = HeaderName::from_static("x-keygate-key-id");
pub(crate) const X_KEYGATE_CREDENTIAL: HeaderName = HeaderName::from_static("x-keygate-credential");
pub(crate) const X_KEYGATE_SCOPES: HeaderName = HeaderName::from_static("x-keygate-scopes");
pub(crate) const X_KEYGATE_PLAN: HeaderName = HeaderName::from_static("x-keygate-plan");
pub(crate) const X_KEYGATE_METADATA: HeaderName = HeaderName::from_static("x-keygate-metadata");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Hop-by-hop fields of RFC 9110 §7.6.1 (and the old `Keep-Alive`/`Proxy-Connection`): they
/// describe one connection and must not be forwarded.
/// A `static`, not a `const`: a `const` array of names is built and dropped at every use.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

const VIA_VALUE: &str = "1.1 keygate";
/// Names of the dashboard's cookies contain this (`__Host-keygate_session`, `keygate_csrf`).
const DASHBOARD_COOKIE: &str = "keygate_";

/// Removes `Connection` and every field it names, then the fixed hop-by-hop list.
pub(crate) fn strip_hop_by_hop(h: &mut HeaderMap) {
    remove_where(h, |k| HOP_BY_HOP.contains(k));
}

/// Removes every field whose name matches, and the fields a `Connection` header names. One
/// pass over the names present rather than a lookup per name that might be: most requests
/// carry none of them, and a lookup hashes the name.
fn remove_where(h: &mut HeaderMap, drop: impl Fn(&HeaderName) -> bool) {
    let mut connection = false;
    let mut doomed: Vec<HeaderName> = h
        .keys()
        .filter(|k| {
            connection |= *k == header::CONNECTION;
            drop(k)
        })
        .cloned()
        .collect();
    if connection {
        doomed.extend(
            h.get_all(header::CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok()),
        );
    }
    for n in doomed {
        h.remove(n);
    }
}

/// What never reaches an upstream from a client: connection-level fields, credentials,
/// `Expect` (hyper already answered `100-continue` to the client when the body was first
/// read), anything claiming to be keygate's identity (the upstream trusts the `X-Keygate-*`
/// family, whatever the suffix), and an untrusted peer's forwarding claims (made up: replaced
/// rather than extended).
fn never_forwarded(k: &HeaderName, trusted: bool) -> bool {
    HOP_BY_HOP.contains(k)
        || *k == X_API_KEY
        || *k == header::AUTHORIZATION
        || *k == header::EXPECT
        || k.as_str().starts_with("x-keygate-")
        || (!trusted && [&X_FORWARDED_FOR, &X_FORWARDED_PROTO, &X_FORWARDED_HOST, &FORWARDED].contains(&k))
}

/// Who the request was authenticated as, for the upstream (the authenticator's type: a cached
/// key keeps its values).
pub use crate::auth::headers::Identity;

/// Where the request came from, for the forwarding headers.
pub(crate) struct Origin {
    pub(crate) peer: IpAddr,
    /// The peer is one of `trusted_proxies`: its `X-Forwarded-*` headers are kept and extended.
    pub(crate) trusted: bool,
    pub(crate) version: http::Version,
}

/// Rewrites the client's headers into the upstream request's: connection-level fields,
/// credentials and anything claiming to be keygate's identity go; identity and forwarding
/// headers come, and `Host` becomes `upstream_host`. One hash lookup per field touched: the
/// entry API where a field is read and then written.
pub(crate) fn upstream_headers(
    h: &mut HeaderMap,
    id: Identity,
    origin: &Origin,
    upstream_host: HeaderValue,
    request_id: Option<HeaderValue>,
    format: &KeyFormat,
) {
    remove_where(h, |k| never_forwarded(k, origin.trusted));
    strip_credential_cookies(h, format);
    let client_host = h.insert(header::HOST, upstream_host);
    append_list(h, X_FORWARDED_FOR, address_value(origin.peer));
    // A trusted peer's `Forwarded` (an untrusted one's was removed) gets the peer too, so an
    // upstream reading either header sees every hop. Not added when absent.
    if origin.trusted && h.contains_key(FORWARDED) {
        append_list(h, FORWARDED, forwarded_element(origin.peer));
    }
    h.entry(X_FORWARDED_PROTO).or_insert_with(|| HeaderValue::from_static("http"));
    if let Some(host) = client_host {
        h.entry(X_FORWARDED_HOST).or_insert(host);
    }
    let via = match origin.version {
        http::Version::HTTP_2 => "2 keygate",
        http::Version::HTTP_10 => "1.0 keygate",
        _ => VIA_VALUE,
    };
    append_list(h, header::VIA, HeaderValue::from_static(via));
    if let Some(v) = request_id {
        h.insert(crate::request_id::HEADER, v);
    }

    h.insert(X_KEYGATE_ACCOUNT_ID, id.account_id);
    if let Some(u) = id.user_id {
        h.insert(X_KEYGATE_USER_ID, u);
    }
    if let Some(k) = id.key_id {
        h.insert(X_KEYGATE_KEY_ID, k);
    }
    h.insert(X_KEYGATE_CREDENTIAL, HeaderValue::from_static(id.credential));
    h.insert(X_KEYGATE_SCOPES, id.scopes);
    if let Some(p) = id.plan {
        h.insert(X_KEYGATE_PLAN, p);
    }
    if let Some(m) = id.metadata {
        h.insert(X_KEYGATE_METADATA, m);
    }
}

/// Cookies whose value is one of our credentials: the dashboard keeps its session token in a
/// cookie, and a browser sends it to every path of the origin, gateway routes included. The
/// upstream must never see it (it could act as the user on keygate's own API).
fn strip_credential_cookies(h: &mut HeaderMap, format: &KeyFormat) {
    // The dashboard's own cookies (`keygate_session`, `keygate_csrf`, …) go too, whatever they hold.
    let prefixes = [CredentialKind::Session, CredentialKind::UserKey, CredentialKind::OrgKey].map(|k| format.prefix(k));
    let suspicious = h.get_all(header::COOKIE).iter().any(|v| {
        let v = v.as_bytes();
        let has = |p: &[u8]| !p.is_empty() && v.windows(p.len()).any(|w| w == p);
        has(DASHBOARD_COOKIE.as_bytes()) || prefixes.iter().any(|p| has(p.as_bytes()))
    });
    if !suspicious {
        return;
    }
    let is_credential = |pair: &str| {
        pair.split_once('=').is_some_and(|(name, v)| {
            name.contains(DASHBOARD_COOKIE) || format.check(v.trim().trim_matches('"')).is_ok()
        })
    };
    let values: Vec<String> =
        h.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect();
    let kept: Vec<&str> = values
        .iter()
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|p| !p.is_empty() && !is_credential(p))
        .collect();
    h.remove(header::COOKIE);
    if !kept.is_empty()
        && let Ok(v) = HeaderValue::try_from(kept.join("; "))
    {
        h.insert(header::COOKIE, v);
    }
}

/// Appends `value` to a comma-separated list field, or sets it.
fn append_list(h: &mut HeaderMap, name: HeaderName, value: HeaderValue) {
    match h.entry(name) {
        header::Entry::Vacant(e) => {
            e.insert(value);
        }
        header::Entry::Occupied(mut e) => {
            // Every field line, in order: a proxy may have appended a line of its own rather
            // than extended the last one (HAProxy does), and each is a hop (docs/api.md).
            let mut joined = Vec::with_capacity(64);
            for line in e.iter() {
                let line = line.as_bytes().trim_ascii();
                if !line.is_empty() {
                    joined.extend_from_slice(line);
                    joined.extend_from_slice(b", ");
                }
            }
            joined.extend_from_slice(value.as_bytes());
            // The bytes of valid values joined by ", " are a valid value.
            if let Ok(v) = HeaderValue::from_bytes(&joined) {
                e.insert(v);
            }
        }
    }
}

/// `peer` as an RFC 7239 `Forwarded` element (IPv6 quoted, in brackets).
fn forwarded_element(peer: IpAddr) -> HeaderValue {
    let element = match peer {
        IpAddr::V4(v4) => format!("for={v4}"),
        IpAddr::V6(v6) => format!("for=\"[{v6}]\""),
    };
    HeaderValue::try_from(element).unwrap_or_else(|_| HeaderValue::from_static("for=unknown"))
}

thread_local! {
    /// The last peer address this thread formatted, with its header value.
    static LAST_PEER: RefCell<Option<(IpAddr, HeaderValue)>> = const { RefCell::new(None) };
}

/// `peer` as a header value. Requests of one connection (or from one load balancer) share
/// their peer, so the last one is kept per thread instead of formatting it every time.
fn address_value(peer: IpAddr) -> HeaderValue {
    LAST_PEER.with_borrow_mut(|last| match last {
        Some((ip, value)) if *ip == peer => value.clone(),
        _ => {
            // An address formats to ASCII digits, dots, colons and hex: always a valid value.
            let value = HeaderValue::try_from(peer.to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown"));
            *last = Some((peer, value.clone()));
            value
        }
    })
}

/// The upstream's answer headers, cleaned of its connection-level fields; `Via` added.
pub(crate) fn downstream_headers(h: &mut HeaderMap) {
    strip_hop_by_hop(h);
    append_list(h, header::VIA, HeaderValue::from_static(VIA_VALUE));
}

/// A response body that fails (ending the client's response) when the upstream sends nothing
/// for `idle`: headers arrived in time, but a stalled body must not hang the client either.
/// The timer is armed only when the body has to wait: most answers are already here when
/// first polled, and then cost no timer at all.
pub(crate) struct IdleTimeout<B> {
    inner: B,
    idle: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
    /// The deadline counts from the current wait (not an earlier one).
    armed: bool,
}

impl<B> IdleTimeout<B> {
    pub(crate) fn new(inner: B, idle: Duration) -> Self {
        IdleTimeout { inner, idle, deadline: None, armed: false }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the upstream sent no data for {0:?}")]
pub(crate) struct BodyStalled(Duration);

impl<B> http_body::Body for IdleTimeout<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                // Data came: the next wait gets a whole `idle` again.
                this.armed = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let (idle, until) = (this.idle, Instant::now() + this.idle);
                let deadline = match &mut this.deadline {
                    Some(d) => d,
                    None => this.deadline.insert(Box::pin(tokio::time::sleep_until(until))),
                };
                if !std::mem::replace(&mut this.armed, true) {
                    deadline.as_mut().reset(until);
                }
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyStalled(idle))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// When the client last sent a piece of its request body, for the upstream timeout: a large
/// upload that keeps flowing is not "no answer within timeout_seconds", a stalled one is.
#[derive(Clone)]
pub(crate) struct Activity {
    started: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    pub(crate) fn new() -> Self {
        Activity { started: Instant::now(), last_ms: Arc::new(AtomicU64::new(0)) }
    }

    /// When the request set off for the upstream.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// The moment the wait for the upstream's answer ends: `timeout` after the last activity.
    pub(crate) fn deadline(&self, timeout: Duration) -> Instant {
        self.started + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + timeout
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

/// The client's request body on its way to the upstream, noting each piece in `Activity`.
pub(crate) struct Tracked<B> {
    inner: B,
    activity: Activity,
}

impl<B> Tracked<B> {
    pub(crate) fn new(inner: B, activity: Activity) -> Self {
        Tracked { inner, activity }
    }
}

impl<B> http_body::Body for Tracked<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if polled.is_ready() {
            this.activity.touch();
        }
        polled
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
    use super::*;

    fn id() -> Identity {
        Identity {
            account_id: HeaderValue::from_static("acc_1"),
            user_id: None,
            key_id: Some(HeaderValue::from_static("key_1")),
            credential: "org_key",
            scopes: HeaderValue::from_static("*:read"),
            plan: Some(HeaderValue::from_static("pro")),
            metadata: None,
        }
    }

    fn format() -> KeyFormat {
        KeyFormat::new("kg_", "kg_org_", "kgs_").expect("format")
    }

    #[test]
    fn cookies_carrying_our_credentials_are_dropped() {
        let f = format();
        let token = f.generate(CredentialKind::Session).secret.expose().to_owned();
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::try_from(format!(
                "theme=dark; __Host-kg={token}; kgs_fake=kgs_notatoken; __Host-keygate_csrf=abc"
            ))
            .expect("v"),
        );
        strip_credential_cookies(&mut h, &f);
        assert_eq!(h[header::COOKIE], "theme=dark; kgs_fake=kgs_notatoken");
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::try_from(format!("s={token}")).expect("v"));
        strip_credential_cookies(&mut h, &f);
        assert!(!h.contains_key(header::COOKIE));
    }

    #[test]
    fn connection_level_credential_and_spoofed_fields_are_removed() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("x-api-key", "kg_secret"),
            ("authorization", "Bearer kg_secret"),
            ("x-keygate-user-id", "usr_forged"),
            ("x-keygate-anything", "forged"),
            ("x-keygate-plan", "enterprise"),
            ("x-keygate-metadata", "eyJ0aWVyIjoiZ29sZCJ9"),
            ("x-forwarded-for", "6.6.6.6"),
            ("host", "api.example.com"),
            ("accept", "application/json"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let origin = Origin { peer: IpAddr::from([10, 0, 0, 9]), trusted: false, version: http::Version::HTTP_11 };
        upstream_headers(
            &mut h,
            id(),
            &origin,
            HeaderValue::from_static("upstream:8080"),
            Some(HeaderValue::from_static("req_1")),
            &format(),
        );
        for gone in [
            "connection",
            "x-secret-hop",
            "keep-alive",
            "te",
            "upgrade",
            "proxy-authorization",
            "x-api-key",
            "authorization",
            "x-keygate-user-id",
            "x-keygate-anything",
        ] {
            assert!(!h.contains_key(gone), "{gone} must be removed");
        }
        assert_eq!(h["x-forwarded-for"], "10.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h.get_all("host").iter().collect::<Vec<_>>(), ["upstream:8080"], "the upstream's own name, once");
        assert_eq!(h["x-forwarded-host"], "api.example.com");
        assert_eq!(h["x-keygate-key-id"], "key_1");
        assert_eq!(h["x-keygate-credential"], "org_key");
        assert_eq!(h.get_all("x-keygate-plan").iter().collect::<Vec<_>>(), ["pro"], "the forged plan is dropped");
        assert!(
            !h.contains_key("x-keygate-metadata"),
            "a key without metadata sends none, and a forged one is dropped"
        );
        assert_eq!(h["via"], "1.1 keygate");
        assert_eq!(h["accept"], "application/json");
    }

    #[test]
    fn a_trusted_proxy_chain_is_extended() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.5"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert("x-forwarded-host", HeaderValue::from_static("api.example.com"));
        h.insert("host", HeaderValue::from_static("internal-lb"));
        let origin = Origin { peer: IpAddr::from([10, 0, 0, 2]), trusted: true, version: http::Version::HTTP_11 };
        upstream_headers(
            &mut h,
            id(),
            &origin,
            HeaderValue::from_static("upstream"),
            Some(HeaderValue::from_static("req_1")),
            &format(),
        );
        assert_eq!(h["x-forwarded-for"], "203.0.113.5, 10.0.0.2");
        assert!(!h.contains_key("forwarded"), "not added when the peer sent none");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "api.example.com", "the first proxy's host stands");
        assert_eq!(h["host"], "upstream");
    }

    #[test]
    fn every_forwarding_line_of_a_trusted_peer_is_kept_and_extended() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.9, 10.0.0.3"),
            ("forwarded", "for=6.6.6.6"),
            ("forwarded", "for=198.51.100.9"),
            ("via", "1.1 first"),
            ("via", "1.1 second"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let origin =
            Origin { peer: "2001:db8::2".parse().expect("ip"), trusted: true, version: http::Version::HTTP_11 };
        upstream_headers(&mut h, id(), &origin, HeaderValue::from_static("up"), None, &format());
        let all = |n: &str| h.get_all(n).iter().map(|v| v.to_str().expect("ascii")).collect::<Vec<_>>();
        assert_eq!(all("x-forwarded-for"), ["6.6.6.6, 198.51.100.9, 10.0.0.3, 2001:db8::2"], "one combined line");
        assert_eq!(all("forwarded"), [r#"for=6.6.6.6, for=198.51.100.9, for="[2001:db8::2]""#]);
        assert_eq!(all("via"), ["1.1 first, 1.1 second, 1.1 keygate"]);
    }
}
