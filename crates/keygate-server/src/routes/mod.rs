//! The HTTP surface: every management route, verify, health, docs, and the gateway fallback.
//! Each module registers its handlers with their OpenAPI description (utoipa-axum), so the
//! document at `/openapi.json` is generated from the code that serves it.

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod docs;
pub mod health;
pub mod identity;
pub mod key_input;
pub mod keys;
pub mod members;
pub mod roles;
pub mod verify;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    // `RateLimit-*` from the `Principal` extractor: management routes only. Verify and the
    // gateway set their own and should not pay for the slot.
    let management = OpenApiRouter::new()
        .merge(identity::routes())
        .merge(accounts::routes())
        .merge(members::routes())
        .merge(roles::routes())
        .merge(keys::routes())
        .merge(audit::routes())
        .merge(admin::routes())
        .layer(middleware::from_fn(crate::auth::principal::rate_headers));
    let (api, openapi) = OpenApiRouter::with_openapi(docs::base())
        .merge(health::routes())
        .merge(verify::routes())
        .merge(management)
        .split_for_parts();
    let openapi = std::sync::Arc::new(openapi);
    let routes = api
        .merge(docs::routes(openapi))
        .merge(crate::dashboard::routes(&state))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone());
    // The layers every request passes wrap the router once, as one service. `Router::layer`
    // would wrap each route instead, and each of those boxed services is cloned per request
    // (≈ 20 allocations per request before this).
    let layered = ServiceBuilder::new()
        .layer(middleware::from_fn_with_state(state, edge))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            // DEBUG, not INFO: at the default level an enabled span per request (its fields
            // formatted, entered on every poll) cost a third of /healthz's throughput. Lines
            // logged inside a request name its `request_id` themselves. The path only: query
            // strings could carry anything a client put there.
            tracing::debug_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %crate::request_id::current())
        }))
        .layer(CatchPanicLayer::custom(|_| ApiError::internal("a handler panicked").into_response()))
        .service(routes);
    Router::new().fallback_service(layered)
}

/// Anything no management route matched: a gateway route, or 404.
async fn fallback(State(state): State<AppState>, req: Request) -> Response {
    match &state.gateway {
        Some(gw) => gw.handle(&state, req).await,
        None => ApiError::not_found().into_response(),
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

/// The outermost layer, one per request: the request id (see `request_id`) and the count of
/// answers by status. One layer rather than two: each `from_fn` layer costs allocations.
async fn edge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let resp = crate::request_id::run(req, next).await;
    state
        .metrics
        .http_responses
        .get_or_create(&crate::metrics::StatusLabel { status: resp.status().as_u16() })
        .inc();
    resp
}
