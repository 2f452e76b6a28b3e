//! Likes: idempotent `PUT`/`DELETE`, with `posts.like_count` kept equal to
//! the post's rows in `likes`.
//!
//! The counter moves in the transaction that inserts or deletes the row, and
//! only when a row was actually inserted or deleted (`rows_affected`), so
//! concurrent or repeated requests can neither skip nor double-count: each
//! transaction's insert either wins the primary key or changes nothing, and
//! the `UPDATE … SET like_count = like_count ± 1` serializes on the post row.
//! The transaction starts with its write, so SQLite takes the write lock
//! first and waits its busy timeout rather than failing a stale snapshot.

use super::post_for_action;
use crate::core::error::{ApiError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::realtime::Realtime;
use crate::core::state::AppState;
use crate::core::time;
use crate::effects::notifications::{notify, tell, Notice};
use crate::effects::trending::{self, Engagement};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use sori_db::Db;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Like routes, merged by [`super::router`].
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(like, unlike))
}

/// Likes a post (its author is told, once). Refused while a block stands
/// between the caller and the author.
#[utoipa::path(put, path = "/v1/posts/{id}/like", tag = "social",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Post id")),
    responses(
        (status = 204, description = "Liked (also when already liked)"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A block stands between you and the author", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn like(
    State(db): State<Db>,
    State(realtime): State<Realtime>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let post = post_for_action(&db, &user.id, &id).await?;
    if post.blocked {
        return Err(ApiError::Forbidden);
    }
    let mut tx = db.pool().begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO likes (post_id, user_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (post_id, user_id) DO NOTHING",
    )
    .bind(&id)
    .bind(&user.id)
    .bind(time::now_ms())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let mut written = Vec::new();
    if inserted == 1 {
        sqlx::query("UPDATE posts SET like_count = like_count + 1 WHERE id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        trending::bump(&mut tx, &id, Engagement::Like, time::now_ms()).await?;
        if post.author_id != user.id {
            let notice = Notice::new(&post.author_id, "like", &user.id).post(&id);
            written.extend(notify(&mut tx, notice).await?);
        }
    }
    tx.commit().await?;
    tell(&realtime, written).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Takes a like back. Allowed whatever stands between the users now, so a
/// like given before a block can still be withdrawn.
#[utoipa::path(delete, path = "/v1/posts/{id}/like", tag = "social",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Post id")),
    responses(
        (status = 204, description = "Not liked (also when it was not)"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn unlike(
    State(db): State<Db>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    post_for_action(&db, &user.id, &id).await?;
    let mut tx = db.pool().begin().await?;
    let deleted = sqlx::query("DELETE FROM likes WHERE post_id = $1 AND user_id = $2")
        .bind(&id)
        .bind(&user.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if deleted == 1 {
        sqlx::query("UPDATE posts SET like_count = like_count - 1 WHERE id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
