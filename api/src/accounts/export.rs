//! The caller's data export: start one, then follow it to its signed
//! download URL. What the archive holds and how it is built:
//! [`crate::effects::export`].

use crate::core::error::{ApiError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::realtime::Event;
use crate::core::state::AppState;
use crate::core::time;
use crate::effects::export::{self, archive_key};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use sori_db::Db;
use sori_pipeline::store::ObjectStore;
use std::time::Duration;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(start_export, export_status))
}

/// How long a download URL works (the archive itself lasts longer).
const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(3600);

/// The caller's latest export.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct ExportStatus {
    pub id: String,
    /// `pending`, `ready`, `failed` or `expired`.
    pub state: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub ready_at: Option<i64>,
    /// When the archive is deleted (Unix milliseconds), once ready.
    pub expires_at: Option<i64>,
    pub size_bytes: Option<i64>,
    /// Why the last build failed.
    pub failure: Option<String>,
    /// A signed URL of the ZIP, working for an hour; `null` unless ready.
    #[sqlx(skip)]
    pub download_url: Option<String>,
}

async fn latest(db: &Db, user_id: &str) -> Result<Option<ExportStatus>, ApiError> {
    Ok(sqlx::query_as(
        "SELECT id, state, created_at, ready_at, expires_at, size_bytes, failure FROM exports \
         WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(user_id)
    .fetch_optional(db.pool())
    .await?)
}

/// Builds the export now, and tells the owner's sockets when it is ready;
/// the cleanup task retries it if this fails or the process stops.
async fn build_now(state: AppState, store: ObjectStore, export_id: String) {
    match export::build(&state.db, &store, &export_id, time::now_ms()).await {
        Ok(Some(user_id)) => {
            let data = serde_json::json!({ "kind": "export.ready", "export_id": export_id });
            let event = Event::new("notification", data);
            state.realtime.publish(vec![user_id], event).await;
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, %export_id, "export failed; the cleanup task retries"),
    }
}

/// Starts an export of everything the caller's account holds (at most 3
/// an hour); while one is pending, answers that one.
#[utoipa::path(post, path = "/v1/me/export", tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Started, or already pending; follow it with GET", body = ExportStatus),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many exports this hour; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No object store to write the archive to", body = Problem, content_type = "application/problem+json"),
    ))]
async fn start_export(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<(StatusCode, Json<ExportStatus>), ApiError> {
    let store = state
        .store
        .clone()
        .ok_or(ApiError::Unavailable("exports need the object store"))?;
    if let Some(pending) = latest(&state.db, &user.id)
        .await?
        .filter(|e| e.state == "pending")
    {
        return Ok((StatusCode::ACCEPTED, Json(pending)));
    }
    state.creation_limits.exports.take(&user.id)?;
    let id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO exports (id, user_id, state, created_at) VALUES ($1, $2, 'pending', $3)",
    )
    .bind(&id)
    .bind(&user.id)
    .bind(time::now_ms())
    .execute(state.db.pool())
    .await?;
    tokio::spawn(build_now(state.clone(), store, id));
    let started = latest(&state.db, &user.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok((StatusCode::ACCEPTED, Json(started)))
}

/// The caller's latest export, with its download URL once ready.
#[utoipa::path(get, path = "/v1/me/export", tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 200, body = ExportStatus),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No export was ever started", body = Problem, content_type = "application/problem+json"),
    ))]
async fn export_status(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<ExportStatus>, ApiError> {
    let mut status = latest(&state.db, &user.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if let (Some(store), "ready") = (&state.store, status.state.as_str()) {
        let key = archive_key(&user.id, &status.id);
        let signed = store
            .presign_get(&key, DOWNLOAD_URL_TTL)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "cannot sign an export URL");
                ApiError::Unavailable("the download URL cannot be signed now; retry")
            })?;
        status.download_url = Some(signed.url);
    }
    Ok(Json(status))
}
