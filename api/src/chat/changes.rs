//! A sender changing a message after sending it: editing its text within
//! [`EDIT_WINDOW`], or unsending it at any time.
//!
//! Both tell every device of both members (`message.edited` with the
//! message as it now reads, `message.deleted` with its id). Unsending
//! deletes the row, so history, the room list's last message and unread
//! counts (computed from the rows) all drop it at once; a push still queued
//! for it is withdrawn, and its voice clip or picture is deleted from the
//! store right after (the media sweep catches one a worker still holds). A
//! message with an open report is hidden rather than deleted, for the
//! moderators. A message a moderator removed can be neither edited nor
//! unsent.

use super::other_member;
use crate::core::error::{ApiError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::state::AppState;
use crate::core::validation::{self, JsonBody};
use crate::effects::{erasure, events};
use crate::model::messages::{find, MessageItem};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use sori_pipeline::clock::now_ms;
use std::time::Duration;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// How long after sending a message's text may be edited.
pub const EDIT_WINDOW: Duration = Duration::from_secs(15 * 60);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(edit_message, unsend_message))
}

/// The new text of a message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditMessage {
    /// The text (at most 4000 characters; required for a text message, a
    /// caption that may be empty for a voice or image message).
    pub text: String,
}

/// The caller's own message `id` in `room_id`: its kind and when it was
/// sent. 404 when the caller is not a member or there is no such visible
/// message; 403 when it is the other member's.
async fn own_message(
    state: &AppState,
    room_id: &str,
    id: &str,
    caller: &str,
) -> Result<(String, i64), ApiError> {
    other_member(&state.db, room_id, caller).await?;
    let row: Option<(String, String, i64)> = sqlx::query_as(
        "SELECT sender_id, kind, created_at FROM messages \
         WHERE id = $1 AND room_id = $2 AND kind <> 'read' AND hidden_at IS NULL",
    )
    .bind(id)
    .bind(room_id)
    .fetch_optional(state.db.pool())
    .await?;
    match row {
        None => Err(ApiError::NotFound),
        Some((sender, _, _)) if sender != caller => Err(ApiError::Forbidden),
        Some((_, kind, created_at)) => Ok((kind, created_at)),
    }
}

/// Edits the text of the caller's message within 15 minutes of sending it;
/// both members' devices get `message.edited`.
#[utoipa::path(patch, path = "/v1/chats/{id}/messages/{message_id}", tag = "chat",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Room id"),
        ("message_id" = String, Path, description = "Message id"),
    ),
    request_body = EditMessage,
    responses(
        (status = 200, description = "The message as it now reads", body = MessageItem),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not the caller's message", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such room or message, or not a member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Sent more than 15 minutes ago", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad text", body = Problem, content_type = "application/problem+json"),
    ))]
async fn edit_message(
    State(state): State<AppState>,
    user: AuthUser,
    Path((room_id, id)): Path<(String, String)>,
    JsonBody(req): JsonBody<EditMessage>,
) -> Result<Json<MessageItem>, ApiError> {
    let (kind, created_at) = own_message(&state, &room_id, &id, &user.id).await?;
    let min = usize::from(kind == "text");
    let mut checks = validation::Checks::default();
    checks.check(
        "text",
        validation::text(&req.text, min, super::messages::MAX_TEXT),
    );
    checks.finish()?;
    let now = now_ms();
    let window = i64::try_from(EDIT_WINDOW.as_millis()).unwrap_or(i64::MAX);
    if now - created_at > window {
        return Err(ApiError::Conflict(
            "messages can be edited for 15 minutes after sending".to_owned(),
        ));
    }
    sqlx::query("UPDATE messages SET body = $1, edited_at = $2 WHERE id = $3")
        .bind(&req.text)
        .bind(now)
        .bind(&id)
        .execute(state.db.pool())
        .await?;
    let item = find(&state, &id).await?.ok_or(ApiError::NotFound)?;
    let other = other_member(&state.db, &room_id, &user.id).await?;
    state
        .realtime
        .publish(vec![other, user.id], events::message_edited(&item))
        .await;
    Ok(Json(item))
}

/// Unsends the caller's message: gone from both members' history, room
/// list and unread counts, its queued push withdrawn, its clip or picture
/// deleted; both members' devices get `message.deleted`.
#[utoipa::path(delete, path = "/v1/chats/{id}/messages/{message_id}", tag = "chat",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Room id"),
        ("message_id" = String, Path, description = "Message id"),
    ),
    responses(
        (status = 204, description = "Unsent"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not the caller's message", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such room or message, or not a member", body = Problem, content_type = "application/problem+json"),
    ))]
async fn unsend_message(
    State(state): State<AppState>,
    user: AuthUser,
    Path((room_id, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    own_message(&state, &room_id, &id, &user.id).await?;
    let Some(media_id) = delete_message(&state, &room_id, &id).await? else {
        // Unsent meanwhile by another request of the sender's.
        return Ok(StatusCode::NO_CONTENT);
    };
    if let (Some(media_id), Some(store)) = (media_id, &state.store) {
        erasure::delete_detached_media(&state.db, store, &media_id, now_ms()).await?;
    }
    let other = other_member(&state.db, &room_id, &user.id).await?;
    state
        .realtime
        .publish(vec![other, user.id], events::message_deleted(&room_id, &id))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes the message and the pushes queued for it, and points the room at
/// its newest remaining message, in one transaction. A message with an open
/// report is hidden instead (gone for both members as well), so unsending
/// does not take the evidence from the moderators; its media stays with it.
/// `None` when the message was already gone; else its media to delete, if any.
async fn delete_message(
    state: &AppState,
    room_id: &str,
    id: &str,
) -> Result<Option<Option<String>>, sqlx::Error> {
    // Writes first: on SQLite a transaction that reads before it writes
    // can be refused the write lock outright when another writer got there.
    let mut tx = state.db.pool().begin().await?;
    let hidden = sqlx::query(
        "UPDATE messages SET hidden_at = $2 WHERE id = $1 AND hidden_at IS NULL \
         AND EXISTS (SELECT 1 FROM reports WHERE target_kind = 'message' \
         AND target_id = $1 AND state = 'open')",
    )
    .bind(id)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let deleted: Option<Option<String>> = if hidden > 0 {
        Some(None)
    } else {
        sqlx::query_scalar(
            "DELETE FROM messages WHERE id = $1 AND hidden_at IS NULL RETURNING media_id",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
    };
    if deleted.is_none() {
        return Ok(None);
    }
    sqlx::query(
        "DELETE FROM push_outbox WHERE kind = 'message.new' AND delivered_at IS NULL \
         AND payload LIKE '%\"message_id\":\"' || $1 || '\"%'",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE chat_rooms SET last_message_id = (SELECT m.id FROM messages m \
         WHERE m.room_id = chat_rooms.id AND m.kind <> 'read' AND m.hidden_at IS NULL \
         ORDER BY m.created_at DESC, m.id DESC LIMIT 1) WHERE id = $1",
    )
    .bind(room_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(deleted)
}
