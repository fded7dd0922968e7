//! The HTTP surface: every management route, verify, health, docs, and the gateway fallback.
//! Each module registers its handlers with their OpenAPI description (utoipa-axum), so the
//! document at `/openapi.json` is generated from the code that serves it.

pub(crate) mod accounts;
pub(crate) mod admin;
pub(crate) mod audit;
pub(crate) mod docs;
pub(crate) mod edge;
pub(crate) mod health;
pub(crate) mod identity;
pub(crate) mod keys;
pub(crate) mod members;
pub(crate) mod openapi_common;
pub(crate) mod roles;
pub(crate) mod usage;
pub(crate) mod usage_csv;
pub(crate) mod verify;

use axum::extract::{Request, State};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt as _};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;

/// The whole HTTP application as one cloneable service (each worker serves a clone).
pub(crate) type HttpService = BoxCloneSyncService<Request, Response, std::convert::Infallible>;
use crate::state::AppState;

/// Every route behind the layers every request passes, as one service.
pub(crate) fn service(state: AppState) -> HttpService {
    let (api, mut openapi) = documented_routes().split_for_parts();
    openapi_common::complete(&mut openapi);
    let openapi = std::sync::Arc::new(openapi);
    let routes = api
        .merge(docs::routes(openapi, state.settings.dashboard.enabled))
        .merge(crate::dashboard::routes(&state))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone());
    let routes = HotPaths { state: state.clone(), routes };
    // The layers every request passes wrap the router once, as one service. `Router::layer`
    // would wrap each route instead, and each of those boxed services is cloned per request
    // (≈ 20 allocations per request before this). No outer `Router` either: it would match
    // every request's path a second time only to reach its fallback.
    let catch_panic = CatchPanicLayer::custom(|_| ApiError::internal("a handler panicked").into_response());
    // The request span and its response line are DEBUG: when that level is off for them (the
    // default), the layer is left out, not merely silent — it cost ≈ 2.4k instructions per
    // request while logging nothing. The level is read once, at start.
    if tracing::enabled!(target: "tower_http::trace", tracing::Level::DEBUG) || tracing::enabled!(tracing::Level::DEBUG)
    {
        let trace = TraceLayer::new_for_http().make_span_with(|req: &Request| {
            // The path only: query strings could carry anything a client put there. Lines
            // logged inside a request name its `request_id` themselves.
            tracing::debug_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %crate::request_id::current())
        });
        outermost(state, ServiceBuilder::new().layer(trace).layer(catch_panic).service(routes))
    } else {
        outermost(state, ServiceBuilder::new().layer(catch_panic).service(routes))
    }
}

/// `inner` (whose answer type depends on the layers chosen) behind the edge layer, as one
/// type-erased service.
fn outermost<S>(state: AppState, inner: S) -> HttpService
where
    S: tower::Service<Request, Error = std::convert::Infallible> + Clone + Send + Sync + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    BoxCloneSyncService::new(edge::Edge::new(state, inner.map_response(IntoResponse::into_response)))
}

/// The API routes with their OpenAPI description: management, verify, health.
fn documented_routes() -> OpenApiRouter<AppState> {
    // `RateLimit-*` from the `Principal` extractor: management routes only. Verify and the
    // gateway set their own and should not pay for the slot.
    let management = OpenApiRouter::new()
        .merge(identity::routes())
        .merge(accounts::routes())
        .merge(members::routes())
        .merge(roles::routes())
        .merge(keys::routes())
        .merge(audit::routes())
        .merge(usage::routes())
        .merge(admin::routes())
        .layer(middleware::from_fn(crate::extract::rate_headers));
    OpenApiRouter::with_openapi(docs::base()).merge(health::routes()).merge(verify::routes()).merge(management)
}

/// The hot paths, sent past the router: a request on a gateway route straight to the gateway,
/// and `POST /v1/keys/verify` straight to verify. Gateway prefixes never overlap a management
/// path (`config::routes::validate_routes`), so the router would only have matched the path
/// to find nothing and reach its fallback; verify's path is fixed. Each saves the router's
/// path matching, its request extensions and its handler plumbing (≈ 3k instructions per
/// request). Everything else, other methods on verify's path included, goes to the router.
#[derive(Clone)]
struct HotPaths {
    state: AppState,
    routes: axum::Router,
}

impl tower::Service<Request> for HotPaths {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures::future::Either<
        futures::future::BoxFuture<'static, Result<Response, Self::Error>>,
        <axum::Router as tower::Service<Request>>::Future,
    >;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        // The router is always ready (axum's `Router::poll_ready` is too).
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if req.method() == axum::http::Method::POST && req.uri().path() == verify::PATH {
            let state = self.state.clone();
            return futures::future::Either::Left(Box::pin(async move { Ok(verify::serve(&state, req).await) }));
        }
        let route = self.state.gateway.as_ref().and_then(|gw| gw.routes.position(req.uri().path()));
        let Some(route) = route else {
            return futures::future::Either::Right(self.routes.call(req));
        };
        let state = self.state.clone();
        futures::future::Either::Left(Box::pin(async move {
            Ok(match &state.gateway {
                Some(gw) => gw.handle(&state, route, req).await,
                None => ApiError::not_found().into_response(),
            })
        }))
    }
}

/// A path no management route and no gateway route took (`HotPaths` sent those to the
/// gateway before the router).
async fn fallback(State(state): State<AppState>, req: Request) -> ApiError {
    match &state.gateway {
        Some(_) => crate::gateway::unrouted(req.uri().path()),
        None => ApiError::not_found(),
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

#[cfg(test)]
mod tests {
    use crate::config::routes::RESERVED_PREFIXES;

    #[test]
    fn every_api_path_is_reserved_so_gateway_routes_can_go_first() {
        // `HotPaths` sends a request on a gateway prefix past the router: that is only
        // right while no router path can fall under a gateway prefix, which validation
        // guarantees by refusing prefixes that overlap `RESERVED_PREFIXES`.
        let (_, openapi) = super::documented_routes().split_for_parts();
        let paths: Vec<String> = openapi.paths.paths.keys().cloned().collect();
        assert!(paths.len() > 20, "{paths:?}");
        assert!(paths.iter().any(|p| p == super::verify::PATH), "verify::PATH is where the router serves verify");
        for path in paths {
            let reserved = RESERVED_PREFIXES.iter().any(|p| path == *p || path.starts_with(&format!("{p}/")));
            assert!(reserved, "{path} is served by the router but not in config::routes::RESERVED_PREFIXES");
        }
    }
}
