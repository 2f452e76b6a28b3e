//! The chat's real-time events as sockets receive them: `message.new` when
//! a message is sent (and when a listener reads back one too large for the
//! fanout, [`crate::realtime::listener`]), `message.read` when a member
//! reads up to one, and `presence` when a user shows or hides theirs. They are published after the write that caused them has
//! committed, never inside it ([`crate::core::realtime::fanout`] says why).

use crate::core::realtime::Event;
use crate::core::state::AppState;
use crate::model::messages::MessageItem;
use crate::model::presence::{self, Presence};

/// `message.new`: the message as history shows it.
pub fn message_new(item: &MessageItem) -> Event {
    Event::new(
        "message.new",
        serde_json::to_value(item).unwrap_or_default(),
    )
}

/// `message.edited`: the message as it now reads (`edited_at` set).
pub fn message_edited(item: &MessageItem) -> Event {
    Event::new(
        "message.edited",
        serde_json::to_value(item).unwrap_or_default(),
    )
}

/// `message.deleted`: the sender unsent message `id` of `room_id`.
pub fn message_deleted(room_id: &str, id: &str) -> Event {
    let data = serde_json::json!({ "room_id": room_id, "id": id });
    Event::new("message.deleted", data)
}

/// `message.read`: `user_id` has read the room up to `message_id`, at `read_at` (Unix ms).
pub fn message_read(room_id: &str, user_id: &str, message_id: &str, read_at: i64) -> Event {
    let data = serde_json::json!({
        "room_id": room_id, "user_id": user_id,
        "message_id": message_id, "read_at": read_at,
    });
    Event::new("message.read", data)
}

/// Tells `user_id`'s chat partners what they now see of their presence once
/// the user turned `show_presence` on (their status) or off (offline, never
/// seen): without it a partner told "online" would go on showing it.
pub async fn presence_setting_changed(
    state: &AppState,
    user_id: &str,
    shown: bool,
) -> Result<(), sqlx::Error> {
    let partners = presence::partners_even_if_hidden(&state.db, user_id).await?;
    if partners.is_empty() {
        return Ok(());
    }
    let now = match shown {
        true => presence::status(&state.db, user_id).await?,
        false => Presence::hidden(user_id),
    };
    let data = serde_json::to_value(now).unwrap_or_default();
    state
        .realtime
        .publish(partners, Event::new("presence", data))
        .await;
    Ok(())
}
