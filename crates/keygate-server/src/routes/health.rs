//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::state::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
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
    crate::service::operator::ready(&state.services, state.auth.limiter()).await?;
    Ok(axum::Json(json!({ "status": "ready" })))
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus metrics")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
}
