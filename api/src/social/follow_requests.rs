//! Requests to follow a private account: the account lists them, newest
//! first, and approves (the follow starts, the requester is told) or
//! declines (the request goes, the requester is not told). A requester
//! withdraws theirs with `DELETE /v1/users/{id}/follow`; a block removes
//! them both ways; turning the account public accepts them all.

use super::{relation_page, Relation};
use crate::core::error::{ApiError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::pagination::{Page, PageQuery};
use crate::core::realtime::Realtime;
use crate::core::state::{AppState, TimelineConfig};
use crate::core::validation::QueryParams;
use crate::effects::follows;
use crate::effects::notifications::tell;
use crate::model::users::Author;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use sori_db::Db;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Follow-request routes, merged by [`super::router`].
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(approve))
        .routes(routes!(decline))
}

/// Who asks to follow the caller, newest first.
#[utoipa::path(get, path = "/v1/me/follow-requests", tag = "social",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, body = Page<Author>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<Page<Author>>, ApiError> {
    relation_page(&state, &user.id, Relation::FollowRequests, &query)
        .await
        .map(Json)
}

/// Approves a request: the requester follows the caller from now on.
#[utoipa::path(post, path = "/v1/me/follow-requests/{user_id}/approve", tag = "social",
    security(("bearer" = [])),
    params(("user_id" = String, Path, description = "The requester's id")),
    responses(
        (status = 204, description = "Approved: they follow you"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No request from this user", body = Problem, content_type = "application/problem+json"),
    ))]
async fn approve(
    State(db): State<Db>,
    State(realtime): State<Realtime>,
    State(timeline): State<TimelineConfig>,
    user: AuthUser,
    Path(requester): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut tx = db.pool().begin().await?;
    let written = follows::accept(&mut tx, &user.id, &requester, timeline.length)
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    tell(&realtime, written).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Declines a request; the requester is not told.
#[utoipa::path(post, path = "/v1/me/follow-requests/{user_id}/decline", tag = "social",
    security(("bearer" = [])),
    params(("user_id" = String, Path, description = "The requester's id")),
    responses(
        (status = 204, description = "Declined"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No request from this user", body = Problem, content_type = "application/problem+json"),
    ))]
async fn decline(
    State(db): State<Db>,
    user: AuthUser,
    Path(requester): Path<String>,
) -> Result<StatusCode, ApiError> {
    let removed =
        sqlx::query("DELETE FROM follow_requests WHERE requester_id = $1 AND target_id = $2")
            .bind(&requester)
            .bind(&user.id)
            .execute(db.pool())
            .await?
            .rows_affected();
    if removed == 0 {
        return Err(ApiError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}
