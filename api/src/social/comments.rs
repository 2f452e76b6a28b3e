//! Comments on posts: text, or a voice clip (a media id the commenter owns
//! and has attached nowhere else), oldest first.
//!
//! A voice comment is shown to others once its media is `ready`, with the
//! same duration, bars and audio URL a feed item has; its author sees it
//! from the start. `posts.comment_count` counts the post's comments that are
//! not removed by a moderator (pending voice comments included): it moves in
//! the transaction that inserts, deletes or hides a comment, and only when a
//! row actually changed. A comment notifies the post's author, and each user
//! it `@mentions`, in that same transaction.

use super::{oldest_first, post_for_action};
use crate::core::error::{on_unique, ApiError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::media_urls::{ClipUrls, UrlSigner};
use crate::core::pagination::{Cursor, Page, PageQuery};
use crate::core::state::AppState;
use crate::core::time;
use crate::core::validation::{self, JsonBody, QueryParams};
use crate::effects::notifications::{mention_targets, notify, tell, Notice};
use crate::effects::trending::{self, Engagement};
use crate::model::media::parse_bars;
use crate::model::rules::user_visible;
use crate::model::users::Author;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sori_db::Db;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Comment routes, merged by [`super::router`].
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(delete))
}

/// Longest text comment, in characters.
pub const MAX_COMMENT: usize = 1000;

/// Exactly one of `text` and `media_id`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateComment {
    /// 1–1000 characters.
    pub text: Option<String>,
    /// A voice clip: a media id the caller uploaded and attached nowhere else.
    pub media_id: Option<String>,
}

/// A comment as clients render it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommentItem {
    pub id: String,
    pub post_id: String,
    pub author: Author,
    /// `text` or `voice`.
    pub kind: String,
    /// The text of a text comment; empty for voice.
    pub text: String,
    /// The clip of a voice comment.
    pub media_id: Option<String>,
    /// The clip's processing state: `ready` for everyone else's.
    pub state: Option<String>,
    pub duration_ms: Option<i64>,
    /// Loudness summary of the clip: up to 100 values 0–31; empty until ready.
    pub bars: Vec<u8>,
    /// Signed URLs of a voice comment's clip and waveform; `null` for text and until ready.
    #[serde(flatten)]
    pub urls: ClipUrls,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// The columns of a [`CommentItem`] over aliases `c`, `u` (author), `m` (media).
const SELECT_COMMENTS: &str = "\
    SELECT c.id, c.post_id, c.author_id, u.handle, u.display_name, u.avatar_version, c.body, c.media_id, \
           m.state, m.duration_ms, m.bars, m.output_prefix, c.created_at \
    FROM comments c JOIN users u ON u.id = c.author_id LEFT JOIN media m ON m.id = c.media_id ";

#[derive(sqlx::FromRow)]
struct CommentRow {
    id: String,
    post_id: String,
    author_id: String,
    handle: String,
    display_name: String,
    avatar_version: Option<i64>,
    body: String,
    media_id: Option<String>,
    state: Option<String>,
    duration_ms: Option<i64>,
    bars: Option<String>,
    output_prefix: Option<String>,
    created_at: i64,
}

impl CommentRow {
    fn into_item(self, urls: &UrlSigner) -> CommentItem {
        let ready = self.state.as_deref() == Some("ready");
        CommentItem {
            kind: if self.media_id.is_some() {
                "voice"
            } else {
                "text"
            }
            .to_owned(),
            bars: match (&self.bars, ready) {
                (Some(bars), true) => parse_bars(bars),
                _ => Vec::new(),
            },
            urls: urls.clip(ready, self.output_prefix.as_deref()),
            id: self.id,
            post_id: self.post_id,
            author: Author {
                avatar_url: urls.avatar(&self.author_id, self.avatar_version),
                id: self.author_id,
                handle: self.handle,
                display_name: self.display_name,
            },
            text: self.body,
            media_id: self.media_id,
            state: self.state,
            duration_ms: self.duration_ms,
            created_at: self.created_at,
        }
    }
}

/// A post's comments, oldest first: removed ones, those of removed users or
/// of users with a block to the caller, and others' voice clips still
/// processing are left out.
#[utoipa::path(get, path = "/v1/posts/{id}/comments", tag = "social",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Post id"), PageQuery),
    responses(
        (status = 200, body = Page<CommentItem>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<Page<CommentItem>>, ApiError> {
    let (limit, cursor) = oldest_first(&query)?;
    if post_for_action(&state.db, &user.id, &id).await?.blocked {
        return Err(ApiError::NotFound);
    }
    // Walks comments_post_time forwards from the cursor.
    let sql = format!(
        "{SELECT_COMMENTS} WHERE c.post_id = $2 AND c.hidden_at IS NULL AND {visible} \
         AND (c.media_id IS NULL OR m.state = 'ready' OR c.author_id = $1) \
         AND (c.created_at > $3 OR (c.created_at = $3 AND c.id > $4)) \
         ORDER BY c.created_at, c.id LIMIT $5",
        visible = user_visible("u", "$1"),
    );
    let rows: Vec<CommentRow> = sqlx::query_as(&sql)
        .bind(&user.id)
        .bind(&id)
        .bind(cursor.created_at)
        .bind(&cursor.id)
        .bind(i64::from(limit) + 1)
        .fetch_all(state.db.pool())
        .await?;
    let urls = state.media_urls.signer().await?;
    let items = rows.into_iter().map(|r| r.into_item(&urls)).collect();
    let page = Page::from_rows(items, limit, |c: &CommentItem| Cursor {
        created_at: c.created_at,
        id: c.id.clone(),
    });
    Ok(Json(page))
}

/// What a new comment holds, validated.
enum Content {
    Text(String),
    Voice(String),
}

/// Exactly one of text and media; text within its limits.
fn content(req: CreateComment) -> Result<Content, ApiError> {
    match (req.text, req.media_id) {
        (Some(text), None) => {
            let text = text.trim().to_owned();
            validation::text(&text, 1, MAX_COMMENT).map_err(|m| ApiError::invalid("text", m))?;
            Ok(Content::Text(text))
        }
        (None, Some(media)) => Ok(Content::Voice(media)),
        _ => Err(ApiError::invalid(
            "text",
            "give either text or media_id, not both or neither",
        )),
    }
}

/// A voice comment's media: the caller's audio, not failed, attached to no
/// post or chat message (another comment holding it is caught by
/// `comments.media_id`'s uniqueness).
async fn check_voice(db: &Db, caller: &str, media_id: &str) -> Result<(), ApiError> {
    let row: Option<(String, String, i64)> = sqlx::query_as(
        "SELECT owner_id, state, \
         CAST(CASE WHEN EXISTS (SELECT 1 FROM posts WHERE media_id = $1) \
         OR EXISTS (SELECT 1 FROM messages WHERE media_id = $1) THEN 1 ELSE 0 END AS BIGINT) \
         FROM media WHERE id = $1 AND kind = 'audio'",
    )
    .bind(media_id)
    .fetch_optional(db.pool())
    .await?;
    match row {
        Some((owner, _, _)) if owner != caller => Err(no_such_media()),
        None => Err(no_such_media()),
        Some((_, state, _)) if state == "failed" => Err(ApiError::invalid(
            "media_id",
            "this media failed processing",
        )),
        Some((_, _, posted)) if posted != 0 => Err(attached()),
        Some(_) => Ok(()),
    }
}

fn no_such_media() -> ApiError {
    ApiError::invalid("media_id", "no media with this id among yours")
}

fn attached() -> ApiError {
    ApiError::Conflict("this media is already attached to a post, comment or message".to_owned())
}

/// Comments on a post. Refused while a block stands between the caller and
/// the post's author.
#[utoipa::path(post, path = "/v1/posts/{id}/comments", tag = "social",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Post id")),
    request_body = CreateComment,
    responses(
        (status = 201, body = CommentItem),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A block stands between you and the author", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "This media is already attached", body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad text, or media not the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many comments this hour; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Path(post_id): Path<String>,
    JsonBody(req): JsonBody<CreateComment>,
) -> Result<(StatusCode, Json<CommentItem>), ApiError> {
    let content = content(req)?;
    state.creation_limits.comments.take(&user.id)?;
    let post = post_for_action(&state.db, &user.id, &post_id).await?;
    if post.blocked {
        return Err(ApiError::Forbidden);
    }
    let (text, media_id) = match content {
        Content::Text(text) => (text, None),
        Content::Voice(media) => {
            check_voice(&state.db, &user.id, &media).await?;
            (String::new(), Some(media))
        }
    };
    let mut mentioned = mention_targets(&state.db, &user.id, &text, &post.audience()).await?;
    // The post's author hears of the comment already.
    mentioned.retain(|id| *id != post.author_id);
    let id = uuid::Uuid::now_v7().to_string();
    let mut tx = state.db.pool().begin().await?;
    sqlx::query(
        "INSERT INTO comments (id, post_id, author_id, body, media_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(&post_id)
    .bind(&user.id)
    .bind(&text)
    .bind(&media_id)
    .bind(time::now_ms())
    .execute(&mut *tx)
    .await
    .map_err(|e| on_unique(e, attached))?;
    sqlx::query("UPDATE posts SET comment_count = comment_count + 1 WHERE id = $1")
        .bind(&post_id)
        .execute(&mut *tx)
        .await?;
    trending::bump(&mut tx, &post_id, Engagement::Comment, time::now_ms()).await?;
    let mut written = Vec::new();
    if post.author_id != user.id {
        let notice = Notice::new(&post.author_id, "comment", &user.id);
        written.extend(notify(&mut tx, notice.post(&post_id).comment(&id)).await?);
    }
    for target in &mentioned {
        let notice = Notice::new(target, "mention", &user.id);
        written.extend(notify(&mut tx, notice.post(&post_id).comment(&id)).await?);
    }
    tx.commit().await?;
    tell(&state.realtime, written).await;
    let sql = format!("{SELECT_COMMENTS} WHERE c.id = $1");
    let row: CommentRow = sqlx::query_as(&sql)
        .bind(&id)
        .fetch_one(state.db.pool())
        .await?;
    let urls = state.media_urls.signer().await?;
    Ok((StatusCode::CREATED, Json(row.into_item(&urls))))
}

/// Deletes a comment: the comment's author or the post's author may.
#[utoipa::path(delete, path = "/v1/comments/{id}", tag = "social",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Comment id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither your comment nor your post", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete(
    State(db): State<Db>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let row: Option<(String, String, String)> = sqlx::query_as(
        "SELECT c.author_id, p.author_id, c.post_id FROM comments c \
         JOIN posts p ON p.id = c.post_id WHERE c.id = $1 AND c.hidden_at IS NULL",
    )
    .bind(&id)
    .fetch_optional(db.pool())
    .await?;
    let Some((comment_author, post_author, post_id)) = row else {
        return Err(ApiError::NotFound);
    };
    if user.id != comment_author && user.id != post_author {
        return Err(ApiError::Forbidden);
    }
    let mut tx = db.pool().begin().await?;
    let deleted = sqlx::query("DELETE FROM comments WHERE id = $1 AND hidden_at IS NULL")
        .bind(&id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if deleted == 1 {
        uncount(&mut tx, &post_id).await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One comment fewer on `post_id`, inside the transaction that removed it.
pub async fn uncount(conn: &mut sqlx::AnyConnection, post_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE posts SET comment_count = comment_count - 1 WHERE id = $1")
        .bind(post_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// One more comment on the post of comment `comment_id`: a removed comment restored.
pub async fn recount(conn: &mut sqlx::AnyConnection, comment_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE posts SET comment_count = comment_count + 1 \
         WHERE id = (SELECT post_id FROM comments WHERE id = $1)",
    )
    .bind(comment_id)
    .execute(conn)
    .await?;
    Ok(())
}
