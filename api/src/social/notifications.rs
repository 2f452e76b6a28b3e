//! Notifications: what a user is told about — a new follower, a like, a
//! comment, a mention (`@handle` in a caption or comment), and their media
//! becoming ready or failing (written by the worker) — listed and marked
//! read here. They are written by the actions themselves, through
//! [`crate::effects::notifications`]. Kinds the user turned off for their
//! inbox ([`super::notification_settings`]) are left out.
//!
//! `?grouped=true` lists one item per group instead: the likes (comments,
//! mentions) of one post, or new followers, on one UTC day, with how many it holds and its latest actors ("Mina and 3 others
//! liked your post"), the way a collapsed push says it.

use crate::core::error::{ApiError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::media_urls::UrlSigner;
use crate::core::pagination::{Cursor, Page, PageQuery};
use crate::core::state::AppState;
use crate::core::time;
use crate::core::validation::{JsonBody, QueryParams};
use crate::model::rules::{audience, not_blocked, not_muted, turned_off, Channel};
use crate::model::users::Author;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sori_db::{Backend, Db};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Notification routes, merged by [`super::router`].
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(mark_read))
        .routes(routes!(dismiss))
}

/// A notification as its recipient sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationItem {
    pub id: String,
    /// `follow`, `like`, `comment`, `mention`, `media.ready` or `media.failed`.
    pub kind: String,
    /// Who caused it (of a group: the latest); `null` for the pipeline's
    /// media notifications.
    pub actor: Option<Author>,
    /// The group's latest distinct actors, newest first, at most three; the
    /// actor alone when not grouped.
    pub actors: Vec<Author>,
    /// How many notifications the item stands for: 1 unless grouped.
    pub count: i64,
    /// How many different people caused them (two comments of one person
    /// count once): "Mina and {actor_count - 1} others".
    pub actor_count: i64,
    pub post_id: Option<String>,
    pub comment_id: Option<String>,
    pub media_id: Option<String>,
    /// Kind-specific details (e.g. a failure's `reason`).
    #[schema(value_type = Option<Object>)]
    pub body: Option<serde_json::Value>,
    /// Unix milliseconds (of a group: its latest).
    pub created_at: i64,
    /// Of a group: every notification in it is read.
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
    /// Its actor, when it has one still shown.
    fn actor(&self, urls: &UrlSigner) -> Option<Author> {
        Author::joined(
            self.actor_id.clone(),
            self.handle.clone(),
            self.display_name.clone(),
            self.avatar_version,
            urls,
        )
    }

    fn into_item(self, urls: &UrlSigner) -> NotificationItem {
        let actor = self.actor(urls);
        NotificationItem {
            id: self.id,
            kind: self.kind,
            actors: actor.iter().cloned().collect(),
            count: 1,
            actor_count: i64::from(actor.is_some()),
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
/// `$1`: a kind `$1` keeps in their inbox; a follow request only while it
/// waits for an answer (told once, it shows again if asked again); no actor, or one not removed,
/// without a block since and not muted; and no post, or one `$1` may still
/// hear (a post turned private takes its mentions and comments out of
/// others' lists).
fn shown(backend: Backend) -> String {
    format!(
        "NOT {} \
         AND (n.kind <> 'follow_request' OR EXISTS (SELECT 1 FROM follow_requests fr \
              WHERE fr.requester_id = n.actor_id AND fr.target_id = $1)) \
         AND (n.actor_id IS NULL OR (a.hidden_at IS NULL AND {} AND {})) \
         AND (n.post_id IS NULL OR EXISTS (SELECT 1 FROM posts p WHERE p.id = n.post_id AND {}))",
        turned_off("$1", "n.kind", Channel::Inbox),
        not_blocked("$1", "n.actor_id"),
        not_muted(backend, "$1", "n.actor_id"),
        audience("$1"),
    )
}

/// SQL: the group of notification `n` in a grouped list: the kind with the
/// post (likes, comments, mentions) or alone (follows), and the UTC day; any
/// other notification is a group of its own (a follow request too, as each
/// is answered on its own).
const GROUP: &str = "CASE \
     WHEN n.kind IN ('like', 'comment', 'mention') AND n.post_id IS NOT NULL \
       THEN n.kind || ':' || n.post_id || ':' || CAST(n.created_at / 86400000 AS TEXT) \
     WHEN n.kind = 'follow' \
       THEN n.kind || ':' || CAST(n.created_at / 86400000 AS TEXT) \
     ELSE n.id END";

/// Members of a group read for its actors: enough to find three distinct
/// ones when someone commented twice.
const GROUP_ROWS_READ: i64 = 8;

/// Most actors an item names.
const MAX_ACTORS: usize = 3;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GroupQuery {
    /// `true`: one item per group (the likes, comments or mentions of one
    /// post, or new followers, on one UTC day), with `count` and its latest
    /// `actors`.
    pub grouped: Option<bool>,
}

/// The caller's notifications, newest first, with the unread count.
#[utoipa::path(get, path = "/v1/notifications", tag = "social",
    security(("bearer" = [])),
    params(PageQuery, GroupQuery),
    responses(
        (status = 200, body = NotificationPage),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    QueryParams(query): QueryParams<PageQuery>,
    QueryParams(group): QueryParams<GroupQuery>,
) -> Result<Json<NotificationPage>, ApiError> {
    let db = &state.db;
    let (limit, cursor) = query.resolve()?;
    let urls = state.media_urls.signer().await?;
    let items = if group.grouped.unwrap_or(false) {
        grouped_items(db, &user.id, limit, &cursor, &urls).await?
    } else {
        items(db, &user.id, limit, &cursor, &urls).await?
    };
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

/// One page of `user`'s notifications after `cursor`, plus one to tell
/// whether another page follows.
async fn items(
    db: &Db,
    user: &str,
    limit: u32,
    cursor: &Cursor,
    urls: &UrlSigner,
) -> Result<Vec<NotificationItem>, ApiError> {
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
        .bind(user)
        .bind(cursor.created_at)
        .bind(&cursor.id)
        .bind(i64::from(limit) + 1)
        .fetch_all(db.pool())
        .await?;
    Ok(rows.into_iter().map(|r| r.into_item(urls)).collect())
}

/// A member of a group on the page: `rank` 1 is the group's latest.
#[derive(sqlx::FromRow)]
struct GroupRow {
    #[sqlx(flatten)]
    row: Row,
    rank: i64,
    group_count: i64,
    group_actors: i64,
    group_read: i64,
}

/// One page of `user`'s notification groups after `cursor` (by each
/// group's latest), plus one: each group's latest as the item, counted,
/// with the actors of its latest members.
async fn grouped_items(
    db: &Db,
    user: &str,
    limit: u32,
    cursor: &Cursor,
    urls: &UrlSigner,
) -> Result<Vec<NotificationItem>, ApiError> {
    let sql = format!(
        "WITH shown AS (SELECT n.id, n.kind, n.actor_id, n.post_id, n.comment_id, n.media_id, \
           n.body, n.created_at, n.read_at, {GROUP} AS g \
           FROM notifications n LEFT JOIN users a ON a.id = n.actor_id \
           WHERE n.user_id = $1 AND {shown}), \
         ranked AS (SELECT s.*, \
           CAST(ROW_NUMBER() OVER (PARTITION BY g ORDER BY created_at DESC, id DESC) AS BIGINT) AS rank \
           FROM shown s), \
         groups AS (SELECT g, CAST(COUNT(*) AS BIGINT) AS group_count, \
           CAST(COUNT(DISTINCT actor_id) AS BIGINT) AS group_actors, \
           CAST(COUNT(read_at) AS BIGINT) AS group_read FROM shown GROUP BY g), \
         heads AS (SELECT g, created_at, id FROM ranked WHERE rank = 1 \
           AND (created_at < $2 OR (created_at = $2 AND id < $3)) \
           ORDER BY created_at DESC, id DESC LIMIT $4) \
         SELECT r.id, r.kind, r.actor_id, a.handle, a.display_name, a.avatar_version, r.post_id, \
           r.comment_id, r.media_id, r.body, r.created_at, r.read_at, r.rank, \
           gr.group_count, gr.group_actors, gr.group_read \
         FROM heads h JOIN groups gr ON gr.g = h.g JOIN ranked r ON r.g = h.g AND r.rank <= $5 \
         LEFT JOIN users a ON a.id = r.actor_id \
         ORDER BY h.created_at DESC, h.id DESC, r.rank",
        shown = shown(db.backend()),
    );
    let rows: Vec<GroupRow> = sqlx::query_as(&sql)
        .bind(user)
        .bind(cursor.created_at)
        .bind(&cursor.id)
        .bind(i64::from(limit) + 1)
        .bind(GROUP_ROWS_READ)
        .fetch_all(db.pool())
        .await?;
    let mut items: Vec<NotificationItem> = Vec::new();
    for r in rows {
        match items.last_mut() {
            Some(item) if r.rank > 1 => {
                let actor = r.row.actor(urls);
                if let Some(actor) = actor {
                    let known = item.actors.iter().any(|a| a.id == actor.id);
                    if !known && item.actors.len() < MAX_ACTORS {
                        item.actors.push(actor);
                    }
                }
            }
            _ => {
                let mut item = r.row.into_item(urls);
                item.count = r.group_count;
                item.actor_count = r.group_actors;
                item.read = r.group_read == r.group_count;
                items.push(item);
            }
        }
    }
    Ok(items)
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

/// Removes one of the caller's notifications from their list for good (an
/// announcement read, a follow request answered elsewhere).
#[utoipa::path(delete, path = "/v1/notifications/{id}", tag = "social",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Notification id")),
    responses(
        (status = 204, description = "Dismissed"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No notification of yours has this id", body = Problem, content_type = "application/problem+json"),
    ))]
async fn dismiss(
    State(db): State<Db>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let gone = sqlx::query("DELETE FROM notifications WHERE id = $1 AND user_id = $2")
        .bind(&id)
        .bind(&user.id)
        .execute(db.pool())
        .await?
        .rows_affected();
    if gone == 0 {
        return Err(ApiError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}
