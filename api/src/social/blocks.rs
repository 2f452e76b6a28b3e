//! Blocks: once either of two users blocks the other, neither can follow,
//! like or comment on the other's posts (403), and neither sees the other's
//! posts or comments in any list (feeds, explore, profiles, comments, search).
//!
//! Blocking removes the follows between the two, both ways, in the same
//! transaction. That is what keeps the feed free of blocked authors without
//! a block check of its own: the feed only shows followed authors, and no
//! follow can exist (or be created) across a block.

use super::{relation_page, Relation};
use crate::core::error::{ApiError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::pagination::{Page, PageQuery};
use crate::core::state::AppState;
use crate::core::time;
use crate::core::validation::QueryParams;
use crate::effects::push;
use crate::effects::timelines::{self, Hold};
use crate::model::users::{require_user, Author};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use sori_db::Db;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Block routes, merged by [`super::router`].
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(block, unblock))
        .routes(routes!(list))
}

/// The user to block or unblock must exist and not be the caller.
async fn check_target(db: &Db, caller: &str, id: &str) -> Result<(), ApiError> {
    require_user(db, id).await?;
    if id == caller {
        return Err(ApiError::invalid("id", "you cannot block yourself"));
    }
    Ok(())
}

/// Blocks a user, and removes the follows, follow requests and waiting
/// pushes between you both ways.
#[utoipa::path(put, path = "/v1/users/{id}/block", tag = "social",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 204, description = "Blocked (also when already blocked)"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Blocking yourself", body = Problem, content_type = "application/problem+json"),
    ))]
async fn block(
    State(db): State<Db>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_target(&db, &user.id, &id).await?;
    let mut tx = db.pool().begin().await?;
    // Both ways, in one order for every block, so two blocks between the
    // same pair cannot each hold one lock and wait for the other.
    let (first, second) = if user.id < id {
        (&user.id, &id)
    } else {
        (&id, &user.id)
    };
    for author in [first, second] {
        timelines::lock_author(&mut tx, author, Hold::Exclusive).await?;
    }
    sqlx::query(
        "INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (blocker_id, blocked_id) DO NOTHING",
    )
    .bind(&user.id)
    .bind(&id)
    .bind(time::now_ms())
    .execute(&mut *tx)
    .await?;
    // Requests before follows: an approval under way holds its request, so
    // this waits for it and then deletes the follow it made.
    for sql in [
        "DELETE FROM follow_requests WHERE (requester_id = $1 AND target_id = $2) \
         OR (requester_id = $2 AND target_id = $1)",
        "DELETE FROM follows WHERE (follower_id = $1 AND followee_id = $2) \
         OR (follower_id = $2 AND followee_id = $1)",
    ] {
        sqlx::query(sql)
            .bind(&user.id)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
    }
    push::withdraw_between(&mut tx, &user.id, &id).await?;
    timelines::withdraw(&mut tx, &user.id, &id).await?;
    timelines::withdraw(&mut tx, &id, &user.id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lifts the caller's block (a block the other user set stays).
#[utoipa::path(delete, path = "/v1/users/{id}/block", tag = "social",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 204, description = "Not blocked (also when it was not)"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unblocking yourself", body = Problem, content_type = "application/problem+json"),
    ))]
async fn unblock(
    State(db): State<Db>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_target(&db, &user.id, &id).await?;
    sqlx::query("DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2")
        .bind(&user.id)
        .bind(&id)
        .execute(db.pool())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The people the caller blocks, newest first, to undo them.
#[utoipa::path(get, path = "/v1/me/blocks", tag = "social",
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
    relation_page(&state, &user.id, Relation::Blocks, &query)
        .await
        .map(Json)
}
