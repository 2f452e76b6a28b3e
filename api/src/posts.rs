//! Posts: a voice clip (a media id the author owns) with a caption and tags.
//!
//! A post is visible to others once its media is `ready`; its author sees it
//! from the start, with the media's state. [`PostItem`] is the one shape a
//! post takes in every answer, feeds included, loaded by [`SELECT_ITEMS`].

use crate::core::error::{on_unique, ApiError, FieldError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::state::AppState;
use crate::core::time;
use crate::core::validation::{self, JsonBody};
use crate::effects::notifications::{mention_targets, notify, tell, Notice};
use crate::model::posts::{PostItem, PostRow, SELECT_ITEMS};
use crate::model::rules::visible;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use sori_db::Db;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Post routes, merged by [`crate::app`].
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_post))
        .routes(routes!(get_post, delete_post))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePost {
    /// A media id the caller uploaded and has not posted yet.
    pub media_id: String,
    /// At most 500 characters; its `#tags` are added to `tags`.
    #[serde(default)]
    pub caption: String,
    /// Up to 10 tags in all, each 1–30 letters, digits or underscores, with or without `#`.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Posts a voice clip. Visible to others once its media is ready.
#[utoipa::path(post, path = "/v1/posts", tag = "posts",
    security(("bearer" = [])),
    request_body = CreatePost,
    responses(
        (status = 201, body = PostItem),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "This media is already posted", body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad caption or tags, or media not the caller's", body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_post(
    State(state): State<AppState>,
    user: AuthUser,
    JsonBody(req): JsonBody<CreatePost>,
) -> Result<(StatusCode, Json<PostItem>), ApiError> {
    let caption = req.caption.trim().to_owned();
    let mut fields = Vec::new();
    if let Err(message) = validation::text(&caption, 0, validation::MAX_CAPTION) {
        fields.push(FieldError::new("caption", message));
    }
    let tags = validation::post_tags(&req.tags, &caption).unwrap_or_else(|errors| {
        fields.extend(errors);
        Vec::new()
    });
    if !fields.is_empty() {
        return Err(ApiError::Validation { fields });
    }
    check_media(&state.db, &user.id, &req.media_id).await?;
    let mentioned = mention_targets(&state.db, &user.id, &caption).await?;
    let new = NewPost {
        author: &user.id,
        media_id: &req.media_id,
        caption: &caption,
        tags: &tags,
        mentioned: &mentioned,
    };
    let id = insert_post(&state, &new).await?;
    let item = load_item(&state, &user.id, &id).await?;
    Ok((StatusCode::CREATED, Json(item)))
}

/// The media must exist, be audio (images are for chat), belong to the caller and not have failed.
async fn check_media(db: &Db, user_id: &str, media_id: &str) -> Result<(), ApiError> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT owner_id, state FROM media WHERE id = $1 AND kind = 'audio'")
            .bind(media_id)
            .fetch_optional(db.pool())
            .await?;
    match row {
        Some((owner, _)) if owner != user_id => Err(no_such_media()),
        None => Err(no_such_media()),
        Some((_, state)) if state == "failed" => Err(ApiError::invalid(
            "media_id",
            "this media failed processing",
        )),
        Some(_) => Ok(()),
    }
}

fn no_such_media() -> ApiError {
    ApiError::invalid("media_id", "no media with this id among yours")
}

/// A validated post to insert, and the users its caption mentions.
struct NewPost<'a> {
    author: &'a str,
    media_id: &'a str,
    caption: &'a str,
    tags: &'a [String],
    /// Told in the post's transaction (see [`mention_targets`]).
    mentioned: &'a [String],
}

async fn insert_post(state: &AppState, new: &NewPost<'_>) -> Result<String, ApiError> {
    let NewPost {
        author,
        media_id,
        caption,
        tags,
        mentioned,
    } = *new;
    let id = uuid::Uuid::now_v7().to_string();
    let now = time::now_ms();
    let tags_json = serde_json::to_string(tags).map_err(|e| ApiError::Internal(Box::new(e)))?;
    let mut tx = state.db.pool().begin().await?;
    sqlx::query(
        "INSERT INTO posts (id, author_id, media_id, caption, tags, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(author)
    .bind(media_id)
    .bind(caption)
    .bind(&tags_json)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(|e| {
        on_unique(e, || {
            ApiError::Conflict("this media is already posted".to_owned())
        })
    })?;
    for tag in tags {
        sqlx::query("INSERT INTO post_tags (tag, post_id, created_at) VALUES ($1, $2, $3)")
            .bind(tag)
            .bind(&id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    let mut written = Vec::new();
    for user in mentioned {
        let notice = Notice::new(user, "mention", author).post(&id);
        written.extend(notify(&mut tx, notice).await?);
    }
    tx.commit().await?;
    tell(&state.realtime, written).await;
    Ok(id)
}

/// A post as `viewer` may see it: 404 when it does not exist, is not
/// [`visible`] to the viewer, or when its media is not ready and the viewer
/// is not its author.
pub async fn load_item(state: &AppState, viewer: &str, id: &str) -> Result<PostItem, ApiError> {
    let sql = format!("{SELECT_ITEMS} WHERE p.id = $2 AND {}", visible());
    let row: Option<PostRow> = sqlx::query_as(&sql)
        .bind(viewer)
        .bind(id)
        .fetch_optional(state.db.pool())
        .await?;
    let urls = state.media_urls.signer().await?;
    let item = row.ok_or(ApiError::NotFound)?.into_item(&urls);
    if item.state != "ready" && item.author.id != viewer {
        return Err(ApiError::NotFound);
    }
    Ok(item)
}

/// One post.
#[utoipa::path(get, path = "/v1/posts/{id}", tag = "posts",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Post id")),
    responses(
        (status = 200, body = PostItem),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_post(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<PostItem>, ApiError> {
    load_item(&state, &user.id, &id).await.map(Json)
}

/// Deletes one of the caller's posts (its tags and likes go with it; the media stays).
#[utoipa::path(delete, path = "/v1/posts/{id}", tag = "posts",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Post id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Someone else's post", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_post(
    State(db): State<Db>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT p.author_id, m.state FROM posts p JOIN media m ON m.id = p.media_id WHERE p.id = $1",
    )
    .bind(&id)
    .fetch_optional(db.pool())
    .await?;
    match row {
        None => Err(ApiError::NotFound),
        // Others' pending posts do not exist for the caller, as in `get_post`.
        Some((author, state)) if author != user.id && state != "ready" => Err(ApiError::NotFound),
        Some((author, _)) if author != user.id => Err(ApiError::Forbidden),
        Some(_) => {
            sqlx::query("DELETE FROM posts WHERE id = $1 AND author_id = $2")
                .bind(&id)
                .bind(&user.id)
                .execute(db.pool())
                .await?;
            Ok(StatusCode::NO_CONTENT)
        }
    }
}
