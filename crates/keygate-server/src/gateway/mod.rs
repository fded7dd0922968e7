//! The gateway: routes from the configuration, authenticated and authorized by the same
//! authenticator as verify, then proxied to the route's upstream (SPEC §5).
//!
//! Per request: match the route (longest prefix), decide the credential (key: the full hot
//! path with the route's permission, classes and limit; session: `X-Account-Id`, membership,
//! the session limit), rewrite the headers, and stream the request to the upstream over the
//! serving worker's own pooled connections (`upstream`) and its answer back. Nothing here
//! touches storage except through the authenticator.

pub mod proxy;
pub mod routes;
pub mod upstream;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use http::header::HeaderValue;
use http::request::Parts;
use http_body::Body as _;
use keygate_core::ratelimit::Decision;
use keygate_core::{CredentialKind, Permissions};
use keygate_store::KeyClass;

use self::proxy::{Identity, IdleTimeout, Origin};
use self::routes::{Route, RouteTable};
use crate::auth::headers::insert_rate_headers;
use crate::auth::{Accept, AuthContext, Authenticated, Granted};
use crate::error::ApiError;
use crate::extract::client_ip;
use crate::state::AppState;

const X_ACCOUNT_ID: http::HeaderName = http::HeaderName::from_static("x-account-id");

/// Built from `[[gateway.routes]]` at start.
pub struct Gateway {
    pub routes: RouteTable,
}

impl Gateway {
    /// `None` when no routes are configured.
    pub fn from_settings(routes: &[crate::config::RouteSettings]) -> anyhow::Result<Option<Self>> {
        let table = RouteTable::compile(routes).map_err(|e| anyhow::anyhow!(e))?;
        if table.is_empty() {
            return Ok(None);
        }
        Ok(Some(Gateway { routes: table }))
    }
}

/// A path on no route: `400` when it has dot segments or encoded separators (it may have been
/// meant to reach a route by them), else `404`.
pub fn unrouted(path: &str) -> ApiError {
    if routes::is_ambiguous(path) { ambiguous_path() } else { ApiError::not_found() }
}

fn ambiguous_path() -> ApiError {
    ApiError::invalid_request("The path has dot segments or encoded separators; send it normalised.")
}

/// What the credential check decided, and the limit to report.
struct Allowed {
    identity: Identity,
    rate: Option<Decision>,
}

impl Gateway {
    /// Authenticates, authorizes and proxies one request on the route at `route` (the index
    /// `RouteTable::position` gave for its path).
    pub async fn handle(&self, state: &AppState, route: usize, req: Request) -> Response {
        if routes::is_ambiguous(req.uri().path()) {
            return ambiguous_path().into_response();
        }
        let Some(route) = self.routes.get(route) else {
            return ApiError::not_found().into_response();
        };
        let (parts, body) = req.into_parts();
        let allowed = match authorize(state, route, &parts).await {
            Ok(a) => a,
            Err(e) => return e.into_response(),
        };
        let mut resp = self.forward(state, route, parts, body, allowed.identity).await;
        if let Some(d) = &allowed.rate {
            insert_rate_headers(resp.headers_mut(), d);
        }
        resp
    }

    async fn forward(&self, state: &AppState, route: &Route, parts: Parts, body: Body, identity: Identity) -> Response {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let origin = Origin {
            peer: peer.map(keygate_core::net::canonical).unwrap_or(std::net::IpAddr::from([127, 0, 0, 1])),
            trusted: peer.is_some_and(|p| keygate_core::net::allowed(&state.trusted_proxies, p)),
            version: parts.version,
        };
        // Origin form (`/path?query`): the connection already goes to the upstream.
        let uri = match http::Uri::try_from(route.upstream_path_and_query(parts.uri.path(), parts.uri.query())) {
            Ok(u) => u,
            Err(_) => return ApiError::invalid_request("The request path cannot be forwarded.").into_response(),
        };
        let mut headers = parts.headers;
        proxy::upstream_headers(
            &mut headers,
            identity,
            &origin,
            route.host.clone(),
            crate::request_id::current_header(),
            state.format(),
        );
        let activity = proxy::Activity::new();
        let body = if body.is_end_stream() { body } else { Body::new(proxy::Tracked::new(body, activity.clone())) };
        let mut upstream_req = http::Request::new(body);
        *upstream_req.method_mut() = parts.method;
        *upstream_req.uri_mut() = uri;
        // Upstream connections speak HTTP/1.1, whatever the client spoke to us.
        *upstream_req.version_mut() = http::Version::HTTP_11;
        *upstream_req.headers_mut() = headers;

        let answer = self.wait_for_answer(upstream_req, route.timeout, &activity, &route.authority).await;
        state.metrics.upstream_seconds.observe(activity.started().elapsed().as_secs_f64());
        match answer {
            Ok(Ok(resp)) => {
                let (mut head, incoming) = resp.into_parts();
                proxy::downstream_headers(&mut head.headers);
                head.extensions.clear();
                Response::from_parts(head, Body::new(IdleTimeout::new(incoming, route.timeout)))
            }
            Ok(Err(e)) => {
                tracing::warn!(request_id = %crate::request_id::current(), route = %route.prefix, upstream = %route.authority, error = %e, connect = e.is_connect(), "upstream unavailable");
                ApiError::upstream_unavailable().into_response()
            }
            Err(_) => {
                tracing::warn!(request_id = %crate::request_id::current(), route = %route.prefix, upstream = %route.authority, timeout = ?route.timeout, "upstream timed out");
                ApiError::upstream_timeout().into_response()
            }
        }
    }
}

impl Gateway {
    /// The upstream's response head, or `Err(())` when none came within `timeout` of the
    /// request's last activity (its start, or the last piece of body the client sent).
    async fn wait_for_answer(
        &self,
        req: http::Request<Body>,
        timeout: std::time::Duration,
        activity: &proxy::Activity,
        authority: &http::uri::Authority,
    ) -> Result<Result<http::Response<upstream::PooledBody>, upstream::UpstreamError>, ()> {
        let answer = upstream::send(authority, req);
        tokio::pin!(answer);
        loop {
            let deadline = activity.deadline(timeout);
            match tokio::time::timeout_at(deadline, &mut answer).await {
                Ok(r) => return Ok(r),
                // The upload moved on since the deadline was set: keep waiting.
                Err(_) if activity.deadline(timeout) > deadline => continue,
                Err(_) => return Err(()),
            }
        }
    }
}

/// The credential decision for one request on `route`.
async fn authorize(state: &AppState, route: &Route, parts: &Parts) -> Result<Allowed, ApiError> {
    let credential = crate::auth::headers::credential(&parts.headers)?;
    let ctx = AuthContext {
        ip: client_ip(parts, state),
        requirements: route.requirements(&parts.method),
        cost: route.cost,
        extra_limit: route.extra_limit.as_ref(),
        report_limits: false,
    };
    match state.auth.authenticate(credential, Accept::KeysAndSessions, &ctx).await? {
        Authenticated::Key(verdict) => verdict.admit().map(|granted| key_identity(&granted)),
        Authenticated::Session(session) => authorize_session(state, route, parts, &session).await,
        Authenticated::Unreadable => Err(ApiError::invalid_credentials()),
    }
}

/// A session acts for its user in the account named by `X-Account-Id`, with `*:*`, limited
/// per user by the account's plan and the route.
async fn authorize_session(
    state: &AppState,
    route: &Route,
    parts: &Parts,
    session: &keygate_store::SessionAuth,
) -> Result<Allowed, ApiError> {
    if !route.accepts_session {
        return Err(ApiError::new(
            http::StatusCode::FORBIDDEN,
            "credential_not_accepted",
            "This route does not accept session tokens: use an API key.",
        ));
    }
    let account_id = parts
        .headers
        .get(X_ACCOUNT_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(ApiError::account_id_required)?;
    if !keygate_core::id::looks_like(keygate_core::id::IdKind::Account, account_id) {
        return Err(ApiError::not_found());
    }
    let user_id = &session.user.id;
    let found = state.auth.membership(account_id, user_id).await?.ok_or_else(ApiError::not_found)?;
    let account = &found.0;
    let rate = state.auth.limit_session(user_id, account, route.extra_limit.as_ref(), route.cost).await?;
    Ok(Allowed {
        identity: Identity {
            account_id: header_value(&account.id),
            user_id: Some(header_value(user_id)),
            key_id: None,
            credential: CredentialKind::Session.as_str(),
            scopes: HeaderValue::from_static("*:*"),
            plan: HeaderValue::from_str(&account.plan).ok(),
            metadata: None,
        },
        rate,
    })
}

fn key_identity(g: &Granted) -> Allowed {
    let identity = g.key.gateway_identity.get_or_init(|| {
        let k = &g.key.key;
        let credential = match k.class {
            KeyClass::User => CredentialKind::UserKey.as_str(),
            KeyClass::Org => CredentialKind::OrgKey.as_str(),
        };
        Box::new(Identity {
            account_id: header_value(&k.account_id),
            user_id: k.user_id.as_deref().map(header_value),
            key_id: Some(header_value(&k.id)),
            credential,
            scopes: header_value(&effective_scopes(&g.key.permissions)),
            // A plan name that is no header value (configuration allows any string) is left out.
            plan: g.key.account.as_deref().and_then(|a| HeaderValue::from_str(&a.plan).ok()),
            metadata: k.metadata.as_ref().and_then(|m| {
                let json = serde_json::to_vec(m).ok()?;
                HeaderValue::try_from(keygate_core::base64url::encode(&json)).ok()
            }),
        })
    });
    Allowed { identity: (**identity).clone(), rate: g.rate }
}

/// Ids are ASCII by construction; anything else becomes an empty value rather than a panic.
fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The key's effective permissions (scopes ∩ role) as `X-Keygate-Scopes` lists them: each
/// pair of scope and role permission contributes the narrower of the two when one covers
/// the other, so the upstream sees what the key may actually do.
pub fn effective_scopes(p: &Permissions) -> String {
    let Some(role) = &p.role else { return p.scopes.to_header_value() };
    let mut out: Vec<String> = Vec::new();
    for s in p.scopes.iter() {
        for r in role.iter() {
            let narrower = if s.covers(r) {
                r
            } else if r.covers(s) {
                s
            } else {
                continue;
            };
            let text = narrower.to_string();
            if !out.contains(&text) {
                out.push(text);
            }
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_core::{Scope, ScopeSet};

    fn set(items: &[&str]) -> ScopeSet {
        ScopeSet::new(items.iter().map(|s| Scope::parse(s).expect("scope")).collect())
    }

    #[test]
    fn scopes_header_shows_the_intersection_with_the_role() {
        let p = Permissions { scopes: set(&["*:*"]), role: Some(set(&["leads:create"])) };
        assert_eq!(effective_scopes(&p), "leads:create");
        let p = Permissions { scopes: set(&["leads:create", "companies:read"]), role: Some(set(&["leads:*"])) };
        assert_eq!(effective_scopes(&p), "leads:create");
        let p = Permissions { scopes: set(&["*:read"]), role: None };
        assert_eq!(effective_scopes(&p), "*:read");
        let p = Permissions { scopes: set(&["*:read"]), role: Some(set(&["leads:create"])) };
        assert_eq!(effective_scopes(&p), "");
    }
}
