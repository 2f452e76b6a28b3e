//! Operations endpoints: liveness, readiness and Prometheus metrics.

use crate::core::error::{ApiError, Problem};
use crate::core::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

#[derive(Serialize, ToSchema)]
pub struct Status {
    /// `ok` when the check passed.
    pub status: &'static str,
}

/// Liveness: the process is up and serving.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Status)))]
async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Readiness: the database answers and its migrations are current, and the
/// process is not shutting down.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, body = Status),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    let answer = readiness(&state).await;
    state.metrics.readiness(answer.is_ok());
    answer
}

async fn readiness(state: &AppState) -> Result<Json<Status>, ApiError> {
    if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(ApiError::Unavailable("shutting down"));
    }
    if state.db.is_ready().await {
        Ok(Json(Status { status: "ok" }))
    } else {
        Err(ApiError::Unavailable(
            "database unreachable or migrations pending",
        ))
    }
}

/// The process's metrics in the OpenMetrics text format (Prometheus scrapes
/// it as such), with the standard `process_*` metrics. When the server has
/// a metrics token (`SORI_METRICS_TOKEN`), only requests with
/// `Authorization: Bearer <that token>` get them; it is not a user's token.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses(
    (status = 200, content_type = "application/openmetrics-text", body = String),
    (status = 401, description = "The server requires its metrics token", body = Problem, content_type = "application/problem+json"),
))]
async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(token) = &state.metrics_token {
        if !crate::core::sessions::bearer_is(&headers, token) {
            return Err(ApiError::Unauthorized(
                "this server requires its metrics token",
            ));
        }
    }
    Ok((
        [(header::CONTENT_TYPE, crate::core::metrics::CONTENT_TYPE)],
        state.metrics.render(),
    ))
}
