//! Notifications: what a user is told about — a new follower, a like, a
//! comment, a mention (`@handle` in a caption or comment), and their media
//! becoming ready or failing (written by the worker) — listed and marked
//! read here. They are written by the actions themselves, through
//! [`crate::effects::notifications`].

use crate::core::error::{ApiError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::media_urls::UrlSigner;
use crate::core::pagination::{Cursor, Page, PageQuery};
use crate::core::state::AppState;
use crate::core::time;
use crate::core::validation::{JsonBody, QueryParams};
use crate::model::rules::{audience, not_blocked, not_muted};
use crate::model::users::Author;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use sori_db::{Backend, Db};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Notification routes, merged by [`super::router`].
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(mark_read))
}

/// A notification as its recipient sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationItem {
    pub id: String,
    /// `follow`, `like`, `comment`, `mention`, `media.ready` or `media.failed`.
    pub kind: String,
    /// Who caused it; `null` for the pipeline's media notifications.
    pub actor: Option<Author>,
    pub post_id: Option<String>,
    pub comment_id: Option<String>,
    pub media_id: Option<String>,
    /// Kind-specific details (e.g. a failure's `reason`).
    #[schema(value_type = Option<Object>)]
    pub body: Option<serde_json::Value>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub read: bool,
}

/// A page of notifications and how many are unread in all.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationPage {
    pub items: Vec<NotificationItem>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
    pub unread_count: i64,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    kind: String,
    actor_id: Option<String>,
    handle: Option<String>,
    display_name: Option<String>,
    avatar_version: Option<i64>,
    post_id: Option<String>,
    comment_id: Option<String>,
    media_id: Option<String>,
    body: Option<String>,
    created_at: i64,
    read_at: Option<i64>,
}

impl Row {
    fn into_item(self, urls: &UrlSigner) -> NotificationItem {
        let actor = match (self.actor_id, self.handle, self.display_name) {
            (Some(id), Some(handle), Some(display_name)) => Some(Author {
                avatar_url: urls.avatar(&id, self.avatar_version),
                id,
                handle,
                display_name,
            }),
            _ => None,
        };
        NotificationItem {
            id: self.id,
            kind: self.kind,
            actor,
            post_id: self.post_id,
            comment_id: self.comment_id,
            media_id: self.media_id,
            body: self.body.and_then(|b| serde_json::from_str(&b).ok()),
            created_at: self.created_at,
            read: self.read_at.is_some(),
        }
    }
}

/// SQL: the notification `n` (with its actor `a`, left-joined) is shown to
/// `$1`: no actor, or one not removed, without a block since and not muted;
/// and no post, or one `$1` may still hear (a post turned private takes its
/// mentions and comments out of others' lists).
fn shown(backend: Backend) -> String {
    format!(
        "(n.actor_id IS NULL OR (a.hidden_at IS NULL AND {} AND {})) \
         AND (n.post_id IS NULL OR EXISTS (SELECT 1 FROM posts p WHERE p.id = n.post_id AND {}))",
        not_blocked("$1", "n.actor_id"),
        not_muted(backend, "$1", "n.actor_id"),
        audience("$1"),
    )
}

/// The caller's notifications, newest first, with the unread count.
#[utoipa::path(get, path = "/v1/notifications", tag = "social",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, body = NotificationPage),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<NotificationPage>, ApiError> {
    let db = &state.db;
    let (limit, cursor) = query.resolve()?;
    let sql = format!(
        "SELECT n.id, n.kind, n.actor_id, a.handle, a.display_name, a.avatar_version, n.post_id, n.comment_id, \
         n.media_id, n.body, n.created_at, n.read_at \
         FROM notifications n LEFT JOIN users a ON a.id = n.actor_id \
         WHERE n.user_id = $1 AND {shown} \
         AND (n.created_at < $2 OR (n.created_at = $2 AND n.id < $3)) \
         ORDER BY n.created_at DESC, n.id DESC LIMIT $4",
        shown = shown(db.backend()),
    );
    let rows: Vec<Row> = sqlx::query_as(&sql)
        .bind(&user.id)
        .bind(cursor.created_at)
        .bind(&cursor.id)
        .bind(i64::from(limit) + 1)
        .fetch_all(db.pool())
        .await?;
    let urls = state.media_urls.signer().await?;
    let items: Vec<NotificationItem> = rows.into_iter().map(|r| r.into_item(&urls)).collect();
    let page = Page::from_rows(items, limit, |n| Cursor {
        created_at: n.created_at,
        id: n.id.clone(),
    });
    Ok(Json(NotificationPage {
        items: page.items,
        next_cursor: page.next_cursor,
        unread_count: unread_count(db, &user.id).await?,
    }))
}

/// Unread notifications the list would show (uses `notifications_unread`).
async fn unread_count(db: &Db, user: &str) -> Result<i64, ApiError> {
    let sql = format!(
        "SELECT COUNT(*) FROM notifications n LEFT JOIN users a ON a.id = n.actor_id \
         WHERE n.user_id = $1 AND n.read_at IS NULL AND {}",
        shown(db.backend())
    );
    Ok(sqlx::query_scalar(&sql)
        .bind(user)
        .fetch_one(db.pool())
        .await?)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    /// Marks this notification and every older one read; absent: all of them.
    pub up_to_id: Option<String>,
}

/// What is left unread.
#[derive(Debug, Serialize, ToSchema)]
pub struct Unread {
    pub unread_count: i64,
}

/// Marks the caller's notifications read, up to one of them or all.
#[utoipa::path(post, path = "/v1/notifications/read", tag = "social",
    security(("bearer" = [])),
    request_body = MarkRead,
    responses(
        (status = 200, body = Unread),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No such notification of yours", body = Problem, content_type = "application/problem+json"),
    ))]
async fn mark_read(
    State(db): State<Db>,
    user: AuthUser,
    JsonBody(req): JsonBody<MarkRead>,
) -> Result<Json<Unread>, ApiError> {
    // Up to the end of time when absent: every notification.
    let (time, id) = match req.up_to_id {
        None => (i64::MAX, String::new()),
        Some(id) => {
            let time: Option<i64> = sqlx::query_scalar(
                "SELECT created_at FROM notifications WHERE id = $1 AND user_id = $2",
            )
            .bind(&id)
            .bind(&user.id)
            .fetch_optional(db.pool())
            .await?;
            let time = time.ok_or_else(|| {
                ApiError::invalid("up_to_id", "no notification of yours has this id")
            })?;
            (time, id)
        }
    };
    sqlx::query(
        "UPDATE notifications SET read_at = $1 WHERE user_id = $2 AND read_at IS NULL \
         AND (created_at < $3 OR (created_at = $3 AND id <= $4))",
    )
    .bind(time::now_ms())
    .bind(&user.id)
    .bind(time)
    .bind(&id)
    .execute(db.pool())
    .await?;
    let unread_count = unread_count(&db, &user.id).await?;
    Ok(Json(Unread { unread_count }))
}
