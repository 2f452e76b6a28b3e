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
use crate::effects::notifications::{mention_targets, notify, tell, Notice, Written};
use crate::effects::timelines;
use crate::model::posts::{Audience, PostItem, PostRow, Visibility, SELECT_ITEMS};
use crate::model::rules::{reported_to_admin, visible};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use sori_db::Db;
use sqlx::AnyConnection;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Post routes, merged by [`crate::app`].
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_post))
        .routes(routes!(get_post, update_post, delete_post))
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
    /// Who may hear it; absent: the account's `default_visibility`.
    pub visibility: Option<Visibility>,
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
    let visibility = match req.visibility {
        Some(v) => v.as_str().to_owned(),
        None => default_visibility(&state.db, &user.id).await?,
    };
    let audience = Audience {
        author_id: user.id.clone(),
        visibility,
    };
    let mentioned = mention_targets(&state.db, &user.id, &caption, &audience).await?;
    let new = NewPost {
        author: &user.id,
        media_id: &req.media_id,
        caption: &caption,
        tags: &tags,
        visibility: &audience.visibility,
        mentioned: &mentioned,
    };
    let id = insert_post(&state, &new).await?;
    let item = load_item(&state, &user.id, &id).await?;
    Ok((StatusCode::CREATED, Json(item)))
}

/// The visibility the caller's new posts get unless they name one.
async fn default_visibility(db: &Db, user_id: &str) -> Result<String, ApiError> {
    let v: Option<String> =
        sqlx::query_scalar("SELECT default_visibility FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(db.pool())
            .await?;
    Ok(v.unwrap_or_else(|| Visibility::Public.as_str().to_owned()))
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
    visibility: &'a str,
    /// Told in the post's transaction (see [`mention_targets`]).
    mentioned: &'a [String],
}

async fn insert_post(state: &AppState, new: &NewPost<'_>) -> Result<String, ApiError> {
    let NewPost {
        author,
        media_id,
        caption,
        tags,
        visibility,
        mentioned,
    } = *new;
    let id = uuid::Uuid::now_v7().to_string();
    let now = time::now_ms();
    let tags_json = serde_json::to_string(tags).map_err(|e| ApiError::Internal(Box::new(e)))?;
    let mut tx = state.db.pool().begin().await?;
    sqlx::query(
        "INSERT INTO posts (id, author_id, media_id, caption, tags, visibility, created_at, trend_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(&id)
    .bind(author)
    .bind(media_id)
    .bind(caption)
    .bind(&tags_json)
    .bind(visibility)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(|e| {
        on_unique(e, || {
            ApiError::Conflict("this media is already posted".to_owned())
        })
    })?;
    insert_tags(&mut tx, &id, tags, now).await?;
    let post = timelines::NewPost {
        id: &id,
        author,
        created_at: now,
        visibility,
    };
    timelines::fan_out(&mut tx, post, state.timelines).await?;
    let written = tell_mentions(&mut tx, &id, author, mentioned).await?;
    tx.commit().await?;
    tell(&state.realtime, written).await;
    Ok(id)
}

/// Indexes the post's tags; `created_at` is the post's, so a tag's walk
/// pages like explore.
async fn insert_tags(
    conn: &mut AnyConnection,
    post_id: &str,
    tags: &[String],
    created_at: i64,
) -> Result<(), sqlx::Error> {
    for tag in tags {
        sqlx::query("INSERT INTO post_tags (tag, post_id, created_at) VALUES ($1, $2, $3)")
            .bind(tag)
            .bind(post_id)
            .bind(created_at)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Writes the caption's mention notifications; one already written for
/// this post and user is skipped (`notifications_one_caption_mention`).
async fn tell_mentions(
    conn: &mut AnyConnection,
    post_id: &str,
    author: &str,
    mentioned: &[String],
) -> Result<Vec<Written>, sqlx::Error> {
    let mut written = Vec::new();
    for user in mentioned {
        let notice = Notice::new(user, "mention", author).post(post_id);
        written.extend(notify(&mut *conn, notice).await?);
    }
    Ok(written)
}

/// A post as `viewer` may see it: 404 when it does not exist, is not
/// [`visible`] to the viewer (unless reported and the viewer an admin:
/// [`reported_to_admin`]), or when its media is not ready and the viewer
/// is not its author.
pub async fn load_item(state: &AppState, viewer: &str, id: &str) -> Result<PostItem, ApiError> {
    let sql = format!(
        "{SELECT_ITEMS} WHERE p.id = $2 AND ({} OR {})",
        visible(),
        reported_to_admin("$1")
    );
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

/// Changes to one of the caller's posts; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePost {
    /// At most 500 characters; its `#tags` and `@mentions` are read again
    /// (a user already told of a mention in this post is not told twice).
    pub caption: Option<String>,
    /// Replaces the tags given beside the caption; absent: they stay.
    pub tags: Option<Vec<String>>,
    pub visibility: Option<Visibility>,
}

/// A post as its author edits it.
#[derive(Debug, sqlx::FromRow)]
struct OwnPost {
    author_id: String,
    caption: String,
    tags: String,
    visibility: String,
    created_at: i64,
}

/// The post after an edit, validated.
struct Edited {
    caption: String,
    tags: Vec<String>,
    visibility: String,
    /// Caption or tags changed: `edited_at` is set (visibility alone does not).
    text_changed: bool,
}

/// Edits one of the caller's posts: its caption (tags and mentions derived
/// again, in one transaction), its tags, or who may hear it.
#[utoipa::path(patch, path = "/v1/posts/{id}", tag = "posts",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Post id")),
    request_body = UpdatePost,
    responses(
        (status = 200, body = PostItem),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Someone else's post", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad caption, tags or visibility", body = Problem, content_type = "application/problem+json"),
    ))]
async fn update_post(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<UpdatePost>,
) -> Result<Json<PostItem>, ApiError> {
    let current = own_post(&state, &user.id, &id).await?;
    let edited = apply_edit(&current, req)?;
    let audience = Audience {
        author_id: user.id.clone(),
        visibility: edited.visibility.clone(),
    };
    let mentioned = mention_targets(&state.db, &user.id, &edited.caption, &audience).await?;
    let tags_json =
        serde_json::to_string(&edited.tags).map_err(|e| ApiError::Internal(Box::new(e)))?;
    let mut tx = state.db.pool().begin().await?;
    sqlx::query(
        "UPDATE posts SET caption = $1, tags = $2, visibility = $3, \
         edited_at = CASE WHEN $4 = 1 THEN $5 ELSE edited_at END WHERE id = $6",
    )
    .bind(&edited.caption)
    .bind(&tags_json)
    .bind(&edited.visibility)
    .bind(i64::from(edited.text_changed))
    .bind(time::now_ms())
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM post_tags WHERE post_id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    insert_tags(&mut tx, &id, &edited.tags, current.created_at).await?;
    let (before, after) = (&current.visibility, &edited.visibility);
    timelines::visibility_changed(&mut tx, &id, &user.id, before, after).await?;
    let written = tell_mentions(&mut tx, &id, &user.id, &mentioned).await?;
    tx.commit().await?;
    tell(&state.realtime, written).await;
    load_item(&state, &user.id, &id).await.map(Json)
}

/// The caller's post to edit: 404 when it does not exist or was removed,
/// 403 when it is someone else's the caller can see (404 if not, as in
/// [`get_post`]).
async fn own_post(state: &AppState, caller: &str, id: &str) -> Result<OwnPost, ApiError> {
    let row: Option<OwnPost> = sqlx::query_as(
        "SELECT author_id, caption, tags, visibility, created_at FROM posts \
         WHERE id = $1 AND hidden_at IS NULL",
    )
    .bind(id)
    .fetch_optional(state.db.pool())
    .await?;
    match row {
        None => Err(ApiError::NotFound),
        Some(post) if post.author_id == caller => Ok(post),
        Some(_) => {
            load_item(state, caller, id).await?;
            Err(ApiError::Forbidden)
        }
    }
}

/// Validates the edit and derives the tags: those given beside the old
/// caption (its tags minus the caption's own `#tags`) or the request's,
/// then the new caption's.
fn apply_edit(current: &OwnPost, req: UpdatePost) -> Result<Edited, ApiError> {
    let caption = req
        .caption
        .as_deref()
        .map_or_else(|| current.caption.clone(), |c| c.trim().to_owned());
    let mut fields = Vec::new();
    if let Err(message) = validation::text(&caption, 0, validation::MAX_CAPTION) {
        fields.push(FieldError::new("caption", message));
    }
    let old_tags: Vec<String> = serde_json::from_str(&current.tags).unwrap_or_default();
    let given = req.tags.unwrap_or_else(|| {
        let from_caption = validation::caption_tags(&current.caption);
        old_tags
            .iter()
            .filter(|t| !from_caption.contains(t))
            .cloned()
            .collect()
    });
    let tags = validation::post_tags(&given, &caption).unwrap_or_else(|errors| {
        fields.extend(errors);
        Vec::new()
    });
    if !fields.is_empty() {
        return Err(ApiError::Validation { fields });
    }
    Ok(Edited {
        text_changed: caption != current.caption || tags != old_tags,
        visibility: req
            .visibility
            .map_or_else(|| current.visibility.clone(), |v| v.as_str().to_owned()),
        caption,
        tags,
    })
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
