//! Operations endpoints: liveness, readiness and Prometheus metrics.

use crate::error::{ApiError, Problem};
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
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

/// Readiness: the database answers and its migrations are current.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, body = Status),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    if state.db.is_ready().await {
        Ok(Json(Status { status: "ok" }))
    } else {
        Err(ApiError::Unavailable(
            "database unreachable or migrations pending".to_owned(),
        ))
    }
}

/// Prometheus text exposition of the process's metrics.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
