//! The chat's real-time events as sockets receive them: `message.new` when
//! a message is sent (and when a listener reads back one too large for the
//! fanout, [`crate::realtime::listener`]) and `message.read` when a member
//! reads up to one. They are published after the write that caused them has
//! committed, never inside it ([`crate::core::realtime::fanout`] says why).

use crate::core::realtime::Event;
use crate::model::messages::MessageItem;

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
