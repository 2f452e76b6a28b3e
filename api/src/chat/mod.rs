//! 1:1 chat: one room per pair of users, text, voice and image
//! messages, read markers and unread counts. Sending is over REST; the
//! recipient's sockets get the events through [`crate::realtime`], and a
//! recipient with no live connection gets a push through the outbox.

pub mod changes;
pub mod messages;
pub mod rooms;

use crate::core::error::ApiError;
use crate::core::state::AppState;
use crate::model::rules::not_blocked;
use sori_db::Db;
use utoipa_axum::router::OpenApiRouter;

/// Room and message routes, merged by [`crate::app`].
pub fn router() -> OpenApiRouter<AppState> {
    rooms::router()
        .merge(messages::router())
        .merge(changes::router())
}

/// The other member of `room_id` when the caller is a member; 404 otherwise,
/// so a room's existence is not revealed to others.
pub async fn other_member(db: &Db, room_id: &str, user_id: &str) -> Result<String, ApiError> {
    let other: Option<String> = sqlx::query_scalar(
        "SELECT o.user_id FROM chat_members me JOIN chat_members o \
         ON o.room_id = me.room_id AND o.user_id <> me.user_id \
         WHERE me.room_id = $1 AND me.user_id = $2",
    )
    .bind(room_id)
    .bind(user_id)
    .fetch_optional(db.pool())
    .await?;
    other.ok_or(ApiError::NotFound)
}

/// The room's other member, for `sender` about to write to them: 404 unless
/// `sender` is a member, 403 across a block between them. One query: it is
/// on the path of every message sent.
pub async fn writable_peer(db: &Db, room_id: &str, sender: &str) -> Result<String, ApiError> {
    let sql = format!(
        "SELECT o.user_id, CAST(CASE WHEN {} THEN 0 ELSE 1 END AS BIGINT) \
         FROM chat_members me JOIN chat_members o \
         ON o.room_id = me.room_id AND o.user_id <> me.user_id \
         WHERE me.room_id = $1 AND me.user_id = $2",
        not_blocked("me.user_id", "o.user_id")
    );
    let peer: Option<(String, i64)> = sqlx::query_as(&sql)
        .bind(room_id)
        .bind(sender)
        .fetch_optional(db.pool())
        .await?;
    match peer {
        None => Err(ApiError::NotFound),
        Some((_, 1)) => Err(ApiError::Forbidden),
        Some((other, _)) => Ok(other),
    }
}
