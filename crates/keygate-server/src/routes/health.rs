//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz)).routes(routes!(metrics))
}

/// Alive: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "alive")))]
async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// Ready: every dependency the node needs to allow traffic answers — storage (a round
/// trip), the invalidation feed (confirmed within 1 s, on PostgreSQL) and Redis (a PING, when
/// shared limits are configured `fail_closed`). Otherwise 503 `unavailable`, whose `details`
/// name what is down: `[{"dependency": "database" | "invalidation_feed" | "redis"}]`.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "every dependency answers: `{\"status\": \"ready\"}`"),
    (status = 503, description = "a dependency is down; `error.details` lists each as `{\"dependency\": \"database\" | \"invalidation_feed\" | \"redis\"}`")))]
async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let (database, redis) = tokio::join!(state.store.ping(), state.auth.limiter().ready());
    let feed_stale = state.invalidator.epochs().feed.is_stale();
    let mut down = Vec::new();
    if let Err(cause) = database {
        tracing::debug!(%cause, "not ready: database");
        down.push("database");
    }
    if feed_stale {
        down.push("invalidation_feed");
    }
    if let Err(cause) = redis {
        tracing::debug!(%cause, "not ready: redis");
        down.push("redis");
    }
    if down.is_empty() {
        return Ok(axum::Json(json!({ "status": "ready" })));
    }
    let mut e =
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", format!("Not ready: {} down.", down.join(", ")));
    e.details = Some(down.iter().map(|d| json!({ "dependency": d })).collect());
    Err(e)
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus metrics")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
}
