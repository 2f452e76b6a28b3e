//! Rooms: getting or creating the one room of a pair of users, and the
//! caller's rooms by last activity with the other member, the last message
//! and the unread count.
//!
//! Creation is race-safe: the pair is stored ordered (`user_lo < user_hi`)
//! under a unique key, inserted with `ON CONFLICT DO NOTHING`, then read
//! back, so two users creating their room at once get the same one.

use super::messages::UNREAD;
use crate::core::error::{ApiError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::pagination::{Cursor, Page, PageQuery};
use crate::core::state::AppState;
use crate::core::validation::{JsonBody, QueryParams};
use crate::model::messages::{MessageItem, MessageRow, SELECT_MESSAGES};
use crate::model::rules::blocked_either_way;
use crate::model::users::require_user;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sori_pipeline::clock::now_ms;
use std::collections::HashMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_rooms, open_room))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenRoom {
    /// The other user.
    pub user_id: String,
}

/// The other member of a room.
#[derive(Debug, Serialize, ToSchema)]
pub struct Member {
    pub id: String,
    pub handle: String,
    pub display_name: String,
    /// Their avatar, a signed URL; `null` without one.
    pub avatar_url: Option<String>,
}

/// A room from the caller's side.
#[derive(Debug, Serialize, ToSchema)]
pub struct Room {
    pub id: String,
    pub other: Member,
    /// The newest message; `null` in a room without messages.
    pub last_message: Option<MessageItem>,
    /// The other member's messages after the caller's read position.
    pub unread_count: i64,
    /// The newest message the other member has read; `null` if none.
    pub read_up_to: Option<String>,
    /// Unix ms of the last message (or of the room's creation).
    pub last_activity: i64,
    pub created_at: i64,
}

impl Room {
    fn cursor(&self) -> Cursor {
        Cursor {
            created_at: self.last_activity,
            id: self.id.clone(),
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
struct RoomRow {
    id: String,
    created_at: i64,
    last_activity: i64,
    last_message_id: Option<String>,
    other_id: String,
    other_read: String,
    handle: String,
    display_name: String,
    avatar_version: Option<i64>,
    unread: i64,
}

/// Rooms of the member `$1` (as `me`); a query appends conditions.
fn select_rooms() -> String {
    format!(
        "SELECT r.id, r.created_at, me.last_activity, r.last_message_id, \
         o.user_id AS other_id, o.read_message_id AS other_read, u.handle, u.display_name, u.avatar_version, \
         {UNREAD} AS unread \
         FROM chat_members me JOIN chat_rooms r ON r.id = me.room_id \
         JOIN chat_members o ON o.room_id = me.room_id AND o.user_id <> me.user_id \
         JOIN users u ON u.id = o.user_id WHERE me.user_id = $1"
    )
}

/// Turns rows into rooms, reading their last messages in one query.
async fn rooms(state: &AppState, rows: Vec<RoomRow>) -> Result<Vec<Room>, ApiError> {
    let ids: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.last_message_id.as_deref())
        .collect();
    let mut last: HashMap<String, MessageItem> = HashMap::new();
    let urls = state.media_urls.signer().await?;
    if !ids.is_empty() {
        let params: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "{SELECT_MESSAGES} WHERE m.id IN ({}) AND m.hidden_at IS NULL",
            params.join(", ")
        );
        let mut q = sqlx::query_as::<_, MessageRow>(&sql);
        for id in &ids {
            q = q.bind(*id);
        }
        for row in q.fetch_all(state.db.pool()).await? {
            let item = row.into_item(&urls);
            last.insert(item.id.clone(), item);
        }
    }
    Ok(rows
        .into_iter()
        .map(|r| Room {
            last_message: r.last_message_id.and_then(|id| last.remove(&id)),
            other: Member {
                avatar_url: urls.avatar(&r.other_id, r.avatar_version),
                id: r.other_id,
                handle: r.handle,
                display_name: r.display_name,
            },
            unread_count: r.unread,
            read_up_to: Some(r.other_read).filter(|id| !id.is_empty()),
            id: r.id,
            last_activity: r.last_activity,
            created_at: r.created_at,
        })
        .collect())
}

/// Gets the room of the caller and `user_id`, creating it the first time.
#[utoipa::path(post, path = "/v1/chats", tag = "chat",
    security(("bearer" = [])),
    request_body = OpenRoom,
    responses(
        (status = 201, description = "Created", body = Room),
        (status = 200, description = "The existing room", body = Room),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A block between the two users", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A room with yourself", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many rooms opened this hour; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
async fn open_room(
    State(state): State<AppState>,
    user: AuthUser,
    JsonBody(req): JsonBody<OpenRoom>,
) -> Result<(StatusCode, Json<Room>), ApiError> {
    if req.user_id == user.id {
        return Err(ApiError::invalid(
            "user_id",
            "you cannot chat with yourself",
        ));
    }
    state.creation_limits.rooms.take(&user.id)?;
    require_user(&state.db, &req.user_id).await?;
    if blocked_either_way(&state.db, &user.id, &req.user_id).await? {
        return Err(ApiError::Forbidden);
    }
    let (room_id, created) = get_or_create(&state, &user.id, &req.user_id).await?;
    let sql = format!("{} AND me.room_id = $2", select_rooms());
    let row: RoomRow = sqlx::query_as(&sql)
        .bind(&user.id)
        .bind(&room_id)
        .fetch_one(state.db.pool())
        .await?;
    let room = rooms(&state, vec![row])
        .await?
        .pop()
        .ok_or(ApiError::NotFound)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(room)))
}

/// The pair's room id, and whether this call created it.
async fn get_or_create(state: &AppState, a: &str, b: &str) -> Result<(String, bool), sqlx::Error> {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    let id = uuid::Uuid::now_v7().to_string();
    let now = now_ms();
    let mut tx = state.db.pool().begin().await?;
    let created = sqlx::query(
        "INSERT INTO chat_rooms (id, user_lo, user_hi, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_lo, user_hi) DO NOTHING",
    )
    .bind(&id)
    .bind(lo)
    .bind(hi)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if created {
        for member in [lo, hi] {
            sqlx::query(
                "INSERT INTO chat_members (room_id, user_id, last_activity) VALUES ($1, $2, $3)",
            )
            .bind(&id)
            .bind(member)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    let room_id =
        sqlx::query_scalar("SELECT id FROM chat_rooms WHERE user_lo = $1 AND user_hi = $2")
            .bind(lo)
            .bind(hi)
            .fetch_one(state.db.pool())
            .await?;
    Ok((room_id, created))
}

/// The caller's rooms, most recently active first.
#[utoipa::path(get, path = "/v1/chats", tag = "chat",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, body = Page<Room>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_rooms(
    State(state): State<AppState>,
    user: AuthUser,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<Page<Room>>, ApiError> {
    let (limit, cursor) = query.resolve()?;
    let sql = format!(
        "{} AND (me.last_activity < $2 OR (me.last_activity = $2 AND me.room_id < $3)) \
         ORDER BY me.last_activity DESC, me.room_id DESC LIMIT $4",
        select_rooms()
    );
    let rows: Vec<RoomRow> = sqlx::query_as(&sql)
        .bind(&user.id)
        .bind(cursor.created_at)
        .bind(&cursor.id)
        .bind(i64::from(limit) + 1)
        .fetch_all(state.db.pool())
        .await?;
    let rooms = rooms(&state, rows).await?;
    Ok(Json(Page::from_rows(rooms, limit, Room::cursor)))
}
