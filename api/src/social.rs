//! Social graph: following and unfollowing people, which decides whose posts
//! reach the caller's feed.
//!
//! Both routes are idempotent: following someone already followed, or
//! unfollowing someone not followed, succeeds and changes nothing.

use crate::accounts::find_user;
use crate::auth::{self, AuthUser};
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use sori_pipeline::Db;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Follow routes, merged by [`crate::app`].
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(follow, unfollow))
}

/// The user to follow or unfollow must exist and not be the caller.
async fn check_target(db: &Db, caller: &str, id: &str) -> Result<(), ApiError> {
    find_user(db, id).await?;
    if id == caller {
        return Err(ApiError::invalid("id", "you cannot follow yourself"));
    }
    Ok(())
}

/// Follows a user: their ready posts appear in the caller's feed.
#[utoipa::path(put, path = "/v1/users/{id}/follow", tag = "social",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 204, description = "Followed (also when already followed)"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Following yourself", body = Problem, content_type = "application/problem+json"),
    ))]
async fn follow(
    State(db): State<Db>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_target(&db, &user.id, &id).await?;
    sqlx::query(
        "INSERT INTO follows (follower_id, followee_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (follower_id, followee_id) DO NOTHING",
    )
    .bind(&user.id)
    .bind(&id)
    .bind(auth::now_ms())
    .execute(db.pool())
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stops following a user.
#[utoipa::path(delete, path = "/v1/users/{id}/follow", tag = "social",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 204, description = "Not followed (also when it was not)"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unfollowing yourself", body = Problem, content_type = "application/problem+json"),
    ))]
async fn unfollow(
    State(db): State<Db>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_target(&db, &user.id, &id).await?;
    sqlx::query("DELETE FROM follows WHERE follower_id = $1 AND followee_id = $2")
        .bind(&user.id)
        .bind(&id)
        .execute(db.pool())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether either user blocks the other: every interaction between them
/// (follow, like, comment, message, seeing posts) is refused when true.
pub async fn blocked_either_way(db: &Db, a: &str, b: &str) -> Result<bool, sqlx::Error> {
    let found: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM blocks WHERE (blocker_id = $1 AND blocked_id = $2) \
         OR (blocker_id = $2 AND blocked_id = $1)",
    )
    .bind(a)
    .bind(b)
    .fetch_one(db.pool())
    .await?;
    Ok(found > 0)
}
