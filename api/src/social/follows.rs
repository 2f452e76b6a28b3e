//! Following: who reaches the caller's feed, and the follower and following
//! lists of a profile.
//!
//! Follow and unfollow are idempotent: following someone already followed,
//! or unfollowing someone not followed, succeeds and changes nothing. A new
//! follow notifies the followed user in the same transaction, once per
//! follower (re-following writes no second notification). Following a
//! private account asks it instead ([`super::follow_requests`]).

use crate::core::error::{ApiError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::pagination::{Page, PageQuery};
use crate::core::realtime::Realtime;
use crate::core::state::{AppState, TimelineConfig};
use crate::core::validation::QueryParams;
use crate::effects::follows;
use crate::effects::notifications::tell;
use crate::effects::timelines::{self, Hold};
use crate::model::rules::{blocked_either_way, user_visible};
use crate::model::users::{author_page, require_user, Author, AuthorRow};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use sori_db::Db;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Follow routes, merged by [`super::router`].
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(follow, unfollow))
        .routes(routes!(followers))
        .routes(routes!(following))
}

/// The user to follow or unfollow must exist and not be the caller.
async fn check_target(db: &Db, caller: &str, id: &str) -> Result<(), ApiError> {
    require_user(db, id).await?;
    if id == caller {
        return Err(ApiError::invalid("id", "you cannot follow yourself"));
    }
    Ok(())
}

/// Follows a user: their ready posts appear in the caller's feed. A
/// private account is asked instead (202), and the follow starts when it
/// approves. Refused while either blocks the other.
#[utoipa::path(put, path = "/v1/users/{id}/follow", tag = "social",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 202, description = "Requested: the account is private and approves its followers (also when already requested)"),
        (status = 204, description = "Followed (also when already followed)"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A block stands between you", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Following yourself", body = Problem, content_type = "application/problem+json"),
    ))]
async fn follow(
    State(db): State<Db>,
    State(realtime): State<Realtime>,
    State(timeline): State<TimelineConfig>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_target(&db, &user.id, &id).await?;
    if blocked_either_way(&db, &user.id, &id).await? {
        return Err(ApiError::Forbidden);
    }
    let ask = is_private(&db, &id).await? && !already_follows(&db, &user.id, &id).await?;
    let mut tx = db.pool().begin().await?;
    let written = if ask {
        follows::request(&mut tx, &user.id, &id).await?
    } else {
        follows::follow(&mut tx, &user.id, &id, timeline.length).await?
    };
    tx.commit().await?;
    tell(&realtime, written.into_iter().collect()).await;
    Ok(if ask {
        StatusCode::ACCEPTED
    } else {
        StatusCode::NO_CONTENT
    })
}

/// Whether `id` is a private account (approves its followers).
async fn is_private(db: &Db, id: &str) -> Result<bool, ApiError> {
    let private: i64 = sqlx::query_scalar("SELECT is_private FROM users WHERE id = $1")
        .bind(id)
        .fetch_one(db.pool())
        .await?;
    Ok(private != 0)
}

/// Whether `follower` follows `followee` already.
async fn already_follows(db: &Db, follower: &str, followee: &str) -> Result<bool, ApiError> {
    let found: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM follows WHERE follower_id = $1 AND followee_id = $2",
    )
    .bind(follower)
    .bind(followee)
    .fetch_one(db.pool())
    .await?;
    Ok(found > 0)
}

/// Stops following a user, or withdraws a request to follow them.
#[utoipa::path(delete, path = "/v1/users/{id}/follow", tag = "social",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 204, description = "Not followed nor requested (also when it was not)"),
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
    let mut tx = db.pool().begin().await?;
    timelines::lock_author(&mut tx, &id, Hold::Exclusive).await?;
    // The request first: an approval under way holds its row, so this waits
    // for it and then deletes the follow it made, instead of missing it.
    for sql in [
        "DELETE FROM follow_requests WHERE requester_id = $1 AND target_id = $2",
        "DELETE FROM follows WHERE follower_id = $1 AND followee_id = $2",
    ] {
        sqlx::query(sql)
            .bind(&user.id)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
    }
    timelines::withdraw(&mut tx, &user.id, &id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One side of a follow list.
#[derive(Clone, Copy)]
enum Side {
    /// Who follows the user.
    Followers,
    /// Whom the user follows.
    Following,
}

/// A page of `of`'s followers or followees as `viewer` sees them, newest
/// follow first: removed users and users with a block to the viewer are left
/// out; 403 for a private account's lists unless the viewer follows it. Walks `follows_followee` or `follows_follower_time` backwards.
async fn list(
    state: &AppState,
    viewer: &str,
    of: &str,
    side: Side,
    query: &PageQuery,
) -> Result<Page<Author>, ApiError> {
    let (limit, cursor) = query.resolve()?;
    require_user(&state.db, of).await?;
    // A private account's lists are for itself and its followers.
    if viewer != of
        && is_private(&state.db, of).await?
        && !already_follows(&state.db, viewer, of).await?
    {
        return Err(ApiError::Forbidden);
    }
    let (mine, other) = match side {
        Side::Followers => ("followee_id", "follower_id"),
        Side::Following => ("follower_id", "followee_id"),
    };
    let sql = format!(
        "SELECT u.id, u.handle, u.display_name, u.avatar_version, f.created_at FROM follows f \
         JOIN users u ON u.id = f.{other} \
         WHERE f.{mine} = $2 AND {visible} \
         AND (f.created_at < $3 OR (f.created_at = $3 AND f.{other} < $4)) \
         ORDER BY f.created_at DESC, f.{other} DESC LIMIT $5",
        visible = user_visible("u", "$1"),
    );
    let rows: Vec<AuthorRow> = sqlx::query_as(&sql)
        .bind(viewer)
        .bind(of)
        .bind(cursor.created_at)
        .bind(&cursor.id)
        .bind(i64::from(limit) + 1)
        .fetch_all(state.db.pool())
        .await?;
    let urls = state.media_urls.signer().await?;
    Ok(author_page(rows, limit, &urls))
}

/// Who follows a user, newest follow first.
#[utoipa::path(get, path = "/v1/users/{id}/followers", tag = "social",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "User id"), PageQuery),
    responses(
        (status = 200, body = Page<Author>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A private account you do not follow", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
    ))]
async fn followers(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<Page<Author>>, ApiError> {
    list(&state, &user.id, &id, Side::Followers, &query)
        .await
        .map(Json)
}

/// Whom a user follows, newest follow first.
#[utoipa::path(get, path = "/v1/users/{id}/following", tag = "social",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "User id"), PageQuery),
    responses(
        (status = 200, body = Page<Author>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A private account you do not follow", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
    ))]
async fn following(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<Page<Author>>, ApiError> {
    list(&state, &user.id, &id, Side::Following, &query)
        .await
        .map(Json)
}
