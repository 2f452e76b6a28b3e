//! Messages of a room: sending (text, voice, image; idempotent by the
//! sender's `client_id`), history newest first, and read markers.
//!
//! A read marker is itself a message (kind `read`) naming the message read up
//! to; the member's row keeps a copy of their latest position so unread
//! counts ("the other member's messages after my position") are one index
//! range. Markers never appear in history.

use super::{other_member, writable_peer};
use crate::core::error::{on_unique, ApiError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::media_urls::UrlSigner;
use crate::core::pagination::PageQuery;
use crate::core::sql::{AnyQuery, Params};
use crate::core::state::AppState;
use crate::core::validation::{self, JsonBody, QueryParams};
use crate::effects::events;
use crate::effects::push::PushEntry;
use crate::model::messages::{MediaColumns, MessageItem, MessageRow, SELECT_MESSAGES};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sori_db::Backend;
use sori_pipeline::clock::now_ms;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Longest text message, in characters.
pub const MAX_TEXT: usize = 4_000;
/// Longest idempotency key.
const MAX_CLIENT_ID: usize = 64;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_messages, send_message))
        .routes(routes!(mark_read))
}

/// A message to send.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// `text`, `voice` or `image`.
    pub kind: String,
    /// The text (required for `text`, at most 4000 characters), or a caption.
    #[serde(default)]
    pub text: String,
    /// For `voice` and `image`: a media the sender uploaded (audio, or a
    /// `ready` image), not yet sent in any message.
    pub media_id: Option<String>,
    /// The sender's idempotency key (1–64 characters): resending with the
    /// same key returns the first message (200) instead of a second one.
    pub client_id: Option<String>,
}

/// A media attached to a message being sent: its id and the columns the
/// message's answer shows.
type Attached = (String, MediaColumns);

/// The attached media's row as [`check_message`] reads it.
#[derive(sqlx::FromRow)]
struct AttachedRow {
    owner_id: String,
    kind: String,
    #[sqlx(flatten)]
    columns: MediaColumns,
}

/// Checks the body's fields and the attached media; returns the media.
async fn check_message(
    state: &AppState,
    sender: &str,
    req: &SendMessage,
) -> Result<Option<Attached>, ApiError> {
    let mut checks = validation::Checks::default();
    if let Some(client_id) = &req.client_id {
        checks.check("client_id", validation::text(client_id, 1, MAX_CLIENT_ID));
    }
    let min = usize::from(req.kind == "text");
    checks.check("text", validation::text(&req.text, min, MAX_TEXT));
    let wanted = match req.kind.as_str() {
        "text" => None,
        "voice" => Some("audio"),
        "image" => Some("image"),
        _ => {
            checks.check("kind", Err("one of text, voice, image".to_owned()));
            None
        }
    };
    if req.kind == "text" && req.media_id.is_some() {
        checks.check("media_id", Err("a text message has no media".to_owned()));
    }
    checks.finish()?;
    let Some(kind) = wanted else { return Ok(None) };
    let media_id = req
        .media_id
        .clone()
        .ok_or_else(|| ApiError::invalid("media_id", "required for voice and image messages"))?;
    let media: Option<AttachedRow> = sqlx::query_as(
        "SELECT owner_id, kind, state AS media_state, content_type AS media_type, \
         duration_ms, bars, width, height, output_prefix, original_key FROM media WHERE id = $1",
    )
    .bind(&media_id)
    .fetch_optional(state.db.pool())
    .await?;
    let usable = |m: &AttachedRow| {
        let s = m.columns.media_state.as_deref().unwrap_or_default();
        m.owner_id == sender
            && m.kind == kind
            && match kind {
                "image" => s == "ready",
                _ => s != "awaiting_upload" && s != "failed",
            }
    };
    match media {
        Some(m) if usable(&m) => Ok(Some((media_id, m.columns))),
        _ => {
            let why = format!("not an uploaded {kind} of yours (images must be completed first)");
            Err(ApiError::invalid("media_id", why))
        }
    }
}

/// The sender's message with this idempotency key, if any.
async fn by_client_id(
    state: &AppState,
    sender: &str,
    client_id: &str,
) -> Result<Option<MessageItem>, ApiError> {
    let sql = format!("{SELECT_MESSAGES} WHERE m.sender_id = $1 AND m.client_id = $2");
    let row: Option<MessageRow> = sqlx::query_as(&sql)
        .bind(sender)
        .bind(client_id)
        .fetch_optional(state.db.pool())
        .await?;
    let urls = state.media_urls.signer().await?;
    Ok(row.map(|r| r.into_item(&urls)))
}

/// A resend's answer: the first message, if it went to the same room.
fn resend(
    existing: MessageItem,
    room_id: &str,
) -> Result<(StatusCode, Json<MessageItem>), ApiError> {
    if existing.room_id != room_id {
        return Err(ApiError::Conflict(
            "client_id already used in another room".to_owned(),
        ));
    }
    Ok((StatusCode::OK, Json(existing)))
}

/// Sends a message to the room's other member: delivered at once to their
/// live sockets (and the sender's other devices), else queued for a push.
/// Messages one user sends are limited per minute (`SORI_MESSAGES_PER_MINUTE`;
/// 429 with `Retry-After` past it).
#[utoipa::path(post, path = "/v1/chats/{id}/messages", tag = "chat",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Room id")),
    request_body = SendMessage,
    responses(
        (status = 201, description = "Sent", body = MessageItem),
        (status = 200, description = "Already sent with this client_id: the original", body = MessageItem),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A block between the members", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such room, or not a member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The media was already sent, or client_id was used in another room", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad kind, text, media or client_id", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many messages by this user this minute (`SORI_MESSAGES_PER_MINUTE`); see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
async fn send_message(
    State(state): State<AppState>,
    user: AuthUser,
    Path(room_id): Path<String>,
    JsonBody(req): JsonBody<SendMessage>,
) -> Result<(StatusCode, Json<MessageItem>), ApiError> {
    let other = writable_peer(&state.db, &room_id, &user.id).await?;
    if let Some(client_id) = &req.client_id {
        if let Some(existing) = by_client_id(&state, &user.id, client_id).await? {
            return resend(existing, &room_id);
        }
    }
    let media = check_message(&state, &user.id, &req).await?;
    // Counted once the message is valid and new: a resend (answered above)
    // or a refused message costs nothing.
    state.creation_limits.messages.take(&user.id)?;
    let urls = state.media_urls.signer().await?;
    let inserted = insert(&state, &urls, &room_id, &user.id, &other, &req, media).await;
    let item = match inserted {
        Ok(sent) => sent,
        Err(e) => {
            // A concurrent resend with the same key won the race: answer with its message.
            if let Some(client_id) = &req.client_id {
                if let Some(existing) = by_client_id(&state, &user.id, client_id).await? {
                    return resend(existing, &room_id);
                }
            }
            return Err(on_unique(e, || {
                ApiError::Conflict("this media was already sent".to_owned())
            }));
        }
    };
    state
        .realtime
        .publish(vec![other, user.id], events::message_new(&item))
        .await;
    Ok((StatusCode::CREATED, Json(item)))
}

/// Writes the message, the room's activity and, for a recipient with no live
/// connection, the push, atomically; returns the message as sent.
async fn insert(
    state: &AppState,
    urls: &UrlSigner,
    room_id: &str,
    sender: &str,
    recipient: &str,
    req: &SendMessage,
    media: Option<Attached>,
) -> Result<MessageItem, sqlx::Error> {
    let (media_id, columns) =
        media.map_or((None, MediaColumns::default()), |(id, c)| (Some(id), c));
    let row = MessageRow {
        id: uuid::Uuid::now_v7().to_string(),
        room_id: room_id.to_owned(),
        sender_id: sender.to_owned(),
        kind: req.kind.clone(),
        body: req.text.clone(),
        client_id: req.client_id.clone(),
        media_id: media_id.clone(),
        created_at: now_ms(),
        edited_at: None,
        media: columns,
    };
    let item = row.into_item(urls);
    let message = NewMessage {
        item: &item,
        media_id: media_id.as_deref(),
        recipient,
    };
    match state.db.backend() {
        Backend::Postgres => message.write_in_one_statement(state).await?,
        Backend::Sqlite => message.write_in_transaction(state).await?,
    }
    Ok(item)
}

/// A message about to be written.
struct NewMessage<'a> {
    item: &'a MessageItem,
    media_id: Option<&'a str>,
    recipient: &'a str,
}

/// The message row; its values are `$1`–`$8` ([`NewMessage::bind_message`]).
const INSERT_MESSAGE: &str =
    "INSERT INTO messages (id, room_id, sender_id, kind, body, media_id, client_id, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
/// The placeholders [`INSERT_MESSAGE`] numbers itself.
const MESSAGE_PARAMS: usize = 8;
/// The room's last message: `$1` the message, `$2` the room (as in [`INSERT_MESSAGE`]).
const UPDATE_ROOM: &str = "UPDATE chat_rooms SET last_message_id = $1 WHERE id = $2";

impl<'a> NewMessage<'a> {
    /// Binds the message's columns, `$1`–`$8` of [`INSERT_MESSAGE`].
    fn bind_message<'q>(&self, query: AnyQuery<'q>) -> AnyQuery<'q>
    where
        'a: 'q,
    {
        let item = self.item;
        query
            .bind(&item.id)
            .bind(&item.room_id)
            .bind(&item.sender_id)
            .bind(&item.kind)
            .bind(&item.text)
            .bind(self.media_id)
            .bind(item.client_id.as_deref())
            .bind(item.created_at)
    }

    /// The push a recipient with no live connection gets; its payload has
    /// the keys the push resource builds notifications from (see
    /// [`crate::push`]).
    fn push(&self) -> PushEntry<'a> {
        let payload = serde_json::json!({
            "chat_id": self.item.room_id,
            "message_id": self.item.id,
            "sender_id": self.item.sender_id,
            "message_kind": self.item.kind,
            "text": self.item.text,
        });
        PushEntry::new(self.recipient, "message.new", &payload).unless_online()
    }

    /// PostgreSQL: one round trip. Every part of the `WITH` runs, in one
    /// snapshot, and the statement commits as a whole; the push is inserted
    /// only when the recipient has no live connection ([`PushEntry`], dated
    /// as the message, its values numbered after the message's). The
    /// `message.new` notification is not part of it: see
    /// [`crate::core::realtime::fanout`] for why.
    async fn write_in_one_statement(&self, state: &AppState) -> Result<(), sqlx::Error> {
        let push = self.push().at(self.item.created_at);
        let sql = format!(
            "WITH message AS ({INSERT_MESSAGE}), \
             room AS ({UPDATE_ROOM}), \
             members AS (UPDATE chat_members SET last_activity = $8 WHERE room_id = $2), \
             push AS ({push}) \
             SELECT 1",
            push = push.insert_sql(&mut Params::after(MESSAGE_PARAMS)),
        );
        push.bind(self.bind_message(sqlx::query(&sql)))
            .execute(state.db.pool())
            .await?;
        Ok(())
    }

    /// SQLite (in process, nothing to save on round trips): the same writes
    /// as statements of one transaction.
    async fn write_in_transaction(&self, state: &AppState) -> Result<(), sqlx::Error> {
        let item = self.item;
        let mut tx = state.db.pool().begin().await?;
        self.bind_message(sqlx::query(INSERT_MESSAGE))
            .execute(&mut *tx)
            .await?;
        sqlx::query(UPDATE_ROOM)
            .bind(&item.id)
            .bind(&item.room_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE chat_members SET last_activity = $1 WHERE room_id = $2")
            .bind(item.created_at)
            .bind(&item.room_id)
            .execute(&mut *tx)
            .await?;
        self.push().write(&mut tx).await?;
        tx.commit().await
    }
}

/// One page of history, with how far the other member has read.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    pub items: Vec<MessageItem>,
    /// Pass as `cursor` to get older messages; `null` on the last page.
    pub next_cursor: Option<String>,
    /// The id of the newest message the other member has read; `null` if none.
    pub read_up_to: Option<String>,
}

/// The room's messages, newest first (members only).
#[utoipa::path(get, path = "/v1/chats/{id}/messages", tag = "chat",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Room id"), PageQuery),
    responses(
        (status = 200, body = MessagePage),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such room, or not a member", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_messages(
    State(state): State<AppState>,
    user: AuthUser,
    Path(room_id): Path<String>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<MessagePage>, ApiError> {
    let other = other_member(&state.db, &room_id, &user.id).await?;
    let (limit, cursor) = query.resolve()?;
    let sql = format!(
        "{SELECT_MESSAGES} WHERE m.room_id = $1 AND m.kind <> 'read' AND m.hidden_at IS NULL \
         AND (m.created_at < $2 OR (m.created_at = $2 AND m.id < $3)) \
         ORDER BY m.created_at DESC, m.id DESC LIMIT $4"
    );
    let rows: Vec<MessageRow> = sqlx::query_as(&sql)
        .bind(&room_id)
        .bind(cursor.created_at)
        .bind(&cursor.id)
        .bind(i64::from(limit) + 1)
        .fetch_all(state.db.pool())
        .await?;
    let urls = state.media_urls.signer().await?;
    let items = rows.into_iter().map(|r| r.into_item(&urls)).collect();
    let page = crate::core::pagination::Page::from_rows(items, limit, MessageItem::cursor);
    Ok(Json(MessagePage {
        items: page.items,
        next_cursor: page.next_cursor,
        read_up_to: read_position(&state, &room_id, &other).await?,
    }))
}

/// How far `user_id` has read in the room: a message id, or `None`.
pub async fn read_position(
    state: &AppState,
    room_id: &str,
    user_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    let id: Option<String> = sqlx::query_scalar(
        "SELECT read_message_id FROM chat_members WHERE room_id = $1 AND user_id = $2",
    )
    .bind(room_id)
    .bind(user_id)
    .fetch_optional(state.db.pool())
    .await?;
    Ok(id.filter(|id| !id.is_empty()))
}

/// Unread messages of `user_id` in the room: the other member's after their position.
pub async fn unread_count(
    state: &AppState,
    room_id: &str,
    user_id: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT {UNREAD} FROM chat_members me WHERE me.room_id = $1 AND me.user_id = $2"
    ))
    .bind(room_id)
    .bind(user_id)
    .fetch_one(state.db.pool())
    .await
}

/// The unread count of the member row `me` (a correlated subquery).
pub const UNREAD: &str = "(SELECT COUNT(*) FROM messages u WHERE u.room_id = me.room_id \
    AND u.sender_id <> me.user_id AND u.kind <> 'read' AND u.hidden_at IS NULL \
    AND (u.created_at > me.read_created_at \
         OR (u.created_at = me.read_created_at AND u.id > me.read_message_id)))";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    /// The newest message the caller has read.
    pub message_id: String,
}

/// The caller's read position after a marker.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadState {
    pub room_id: String,
    /// The newest message the caller has read.
    pub read_up_to: Option<String>,
    pub unread_count: i64,
}

/// Marks the room read up to a message: writes a marker message and tells
/// both members (`message.read`). Never moves backwards: marking an older
/// message changes nothing.
#[utoipa::path(post, path = "/v1/chats/{id}/read", tag = "chat",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Room id")),
    request_body = MarkRead,
    responses(
        (status = 200, body = ReadState),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such room, or not a member", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "message_id is not a message of this room", body = Problem, content_type = "application/problem+json"),
    ))]
async fn mark_read(
    State(state): State<AppState>,
    user: AuthUser,
    Path(room_id): Path<String>,
    JsonBody(req): JsonBody<MarkRead>,
) -> Result<Json<ReadState>, ApiError> {
    let other = other_member(&state.db, &room_id, &user.id).await?;
    let target: Option<i64> = sqlx::query_scalar(
        "SELECT created_at FROM messages WHERE id = $1 AND room_id = $2 AND kind <> 'read'",
    )
    .bind(&req.message_id)
    .bind(&room_id)
    .fetch_optional(state.db.pool())
    .await?;
    let created_at =
        target.ok_or_else(|| ApiError::invalid("message_id", "not a message of this room"))?;
    if advance(&state, &room_id, &user.id, &req.message_id, created_at).await? {
        let event = events::message_read(&room_id, &user.id, &req.message_id, now_ms());
        state
            .realtime
            .publish(vec![other, user.id.clone()], event)
            .await;
    }
    Ok(Json(ReadState {
        read_up_to: read_position(&state, &room_id, &user.id).await?,
        unread_count: unread_count(&state, &room_id, &user.id).await?,
        room_id,
    }))
}

/// Moves the reader's position forward and writes the marker message, in one
/// transaction; false when the position is already at or past the message.
async fn advance(
    state: &AppState,
    room_id: &str,
    reader: &str,
    message_id: &str,
    created_at: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = state.db.pool().begin().await?;
    let moved = sqlx::query(
        "UPDATE chat_members SET read_created_at = $1, read_message_id = $2 \
         WHERE room_id = $3 AND user_id = $4 \
         AND (read_created_at < $1 OR (read_created_at = $1 AND read_message_id < $2))",
    )
    .bind(created_at)
    .bind(message_id)
    .bind(room_id)
    .bind(reader)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if moved == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO messages (id, room_id, sender_id, kind, read_message_id, read_created_at, created_at) \
         VALUES ($1, $2, $3, 'read', $4, $5, $6)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(room_id)
    .bind(reader)
    .bind(message_id)
    .bind(created_at)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}
