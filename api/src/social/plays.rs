//! Plays: a listener's play of a post counts at most once per post and UTC
//! day (a row in `plays`, keyed by the day number), and `posts.play_count`
//! moves in the same transaction, only when that row was new — as likes do.

use super::post_for_action;
use crate::core::error::{ApiError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::state::AppState;
use crate::core::time;
use crate::effects::trending::{self, Engagement};
use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use sori_db::Db;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The plays route, merged by [`super::router`].
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(play))
}

const DAY_MS: i64 = 86_400_000;

/// The answer to a play.
#[derive(Debug, Serialize, ToSchema)]
pub struct Played {
    /// False when this listener's play was already counted today (UTC).
    pub counted: bool,
    pub play_count: i64,
}

/// Records that the caller played a post (the author's own plays count too).
#[utoipa::path(post, path = "/v1/posts/{id}/plays", tag = "social",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Post id")),
    responses(
        (status = 200, body = Played),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn play(
    State(db): State<Db>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Played>, ApiError> {
    // A post the caller cannot see cannot be played.
    if post_for_action(&db, &user.id, &id).await?.blocked {
        return Err(ApiError::NotFound);
    }
    let now = time::now_ms();
    let mut tx = db.pool().begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO plays (post_id, user_id, day, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (post_id, user_id, day) DO NOTHING",
    )
    .bind(&id)
    .bind(&user.id)
    .bind(now.div_euclid(DAY_MS))
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        sqlx::query("UPDATE posts SET play_count = play_count + 1 WHERE id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        trending::bump(&mut tx, &id, Engagement::Play, time::now_ms()).await?;
    }
    let play_count: i64 = sqlx::query_scalar("SELECT play_count FROM posts WHERE id = $1")
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Json(Played {
        counted: inserted == 1,
        play_count,
    }))
}
