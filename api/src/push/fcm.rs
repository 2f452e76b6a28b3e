//! The FCM HTTP v1 message for one device (the body of
//! `POST https://fcm.googleapis.com/v1/projects/{project}/messages:send`),
//! built by pure functions so its shape is tested without Google.
//!
//! A notification message (title and body shown by the system when the app is
//! in the background) with a data part for the app. FCM requires every data
//! value to be a string and reserves some keys, so the entry's payload is
//! flattened to strings and reserved keys are left out. Chat is time-critical:
//! high priority on Android, `apns-priority: 10` on Apple devices.

use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Longest text preview in a notification body, in characters.
pub const PREVIEW_CHARS: usize = 100;

/// What a device shows and receives for one entry, independent of the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    pub title: String,
    pub body: String,
    /// Flat string data for the app: the payload plus `event` and `push_id`.
    pub data: BTreeMap<String, String>,
    /// Groups notifications of one conversation (the chat id).
    pub thread: Option<String>,
}

impl Content {
    /// The content of entry `id` of event `kind`. `name` is the sender's or
    /// actor's name, looked up, when the payload carries no `sender_name`;
    /// `count` in the payload is how many events a collapsed entry stands for.
    pub fn of_entry(id: &str, kind: &str, payload: &Value, name: Option<&str>) -> Self {
        let field = |key: &str| payload.get(key).and_then(Value::as_str);
        let who = field("sender_name").or(name);
        let count = payload.get("count").and_then(Value::as_i64).unwrap_or(1);
        let (title, body) = match (kind, social_action(kind)) {
            ("message.new", _) => (
                who.unwrap_or("Sori").to_owned(),
                message_body(field("message_kind"), field("text")),
            ),
            (_, Some(action)) => (people(who.unwrap_or("Someone"), count), action.to_owned()),
            ("announcement", _) => (
                "Sori".to_owned(),
                preview(field("text").unwrap_or_default()),
            ),
            ("media.ready", _) => ("Sori".to_owned(), "Your clip is ready".to_owned()),
            ("media.failed", _) => (
                "Sori".to_owned(),
                "Your clip could not be processed".to_owned(),
            ),
            _ => (
                who.unwrap_or("Sori").to_owned(),
                "You have a new notification".to_owned(),
            ),
        };
        let mut data = data_strings(payload);
        data.insert("event".to_owned(), kind.to_owned());
        data.insert("push_id".to_owned(), id.to_owned());
        // One conversation, or one post's likes (comments…), group together.
        let thread = field("chat_id")
            .map(str::to_owned)
            .or_else(|| field("post_id").map(|post| format!("{kind}:{post}")));
        Self {
            title,
            body,
            data,
            thread,
        }
    }
}

/// What the actor of a social notification did, as the push's body.
fn social_action(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "like" => "liked your post",
        "comment" => "commented on your post",
        "mention" => "mentioned you",
        "follow" => "started following you",
        "follow_request" => "asked to follow you",
        "follow_accepted" => "accepted your follow request",
        _ => return None,
    })
}

/// The title of a push standing for `count` events: "Mina", "Mina and 1
/// other", "Mina and 3 others".
fn people(name: &str, count: i64) -> String {
    match count {
        ..=1 => name.to_owned(),
        2 => format!("{name} and 1 other"),
        n => format!("{name} and {} others", n - 1),
    }
}

/// The body of a chat message notification: a text preview, or what kind of
/// message it is.
fn message_body(message_kind: Option<&str>, text: Option<&str>) -> String {
    match (message_kind, text) {
        (Some("voice"), _) => "Voice message".to_owned(),
        (Some("image"), _) => "Photo".to_owned(),
        (_, Some(text)) if !text.trim().is_empty() => preview(text),
        _ => "New message".to_owned(),
    }
}

/// The first [`PREVIEW_CHARS`] characters of `text` on one line, with `…` when cut.
fn preview(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= PREVIEW_CHARS {
        return line;
    }
    let mut cut: String = line.chars().take(PREVIEW_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// Keys FCM refuses in `data`.
fn reserved(key: &str) -> bool {
    matches!(key, "from" | "notification" | "message_type")
        || key.starts_with("google")
        || key.starts_with("gcm")
}

/// The payload's top-level fields as strings: strings as they are, other
/// values as JSON text, nulls and reserved keys left out.
fn data_strings(payload: &Value) -> BTreeMap<String, String> {
    let Some(fields) = payload.as_object() else {
        return BTreeMap::new();
    };
    fields
        .iter()
        .filter(|(key, value)| !reserved(key) && !value.is_null())
        .map(|(key, value)| {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (key.clone(), text)
        })
        .collect()
}

/// The FCM v1 request body sending `content` to the registration `token`.
pub fn message(token: &str, content: &Content) -> Value {
    let mut aps = json!({
        "alert": {"title": content.title, "body": content.body},
        "sound": "default",
    });
    if let Some(thread) = &content.thread {
        aps["thread-id"] = json!(thread);
    }
    json!({
        "message": {
            "token": token,
            "notification": {"title": content.title, "body": content.body},
            "data": content.data,
            "android": {
                "priority": "high",
                "notification": {"sound": "default"},
            },
            "apns": {
                "headers": {"apns-priority": "10", "apns-push-type": "alert"},
                "payload": {"aps": aps},
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat_payload(kind: &str) -> Value {
        json!({
            "chat_id": "c1", "message_id": "m1", "sender_id": "u1",
            "sender_name": "Mina", "message_kind": kind, "text": "see you at\n8?",
            "seq": 42, "muted": false, "gcm.x": "dropped", "from": "dropped", "none": null,
        })
    }

    #[test]
    fn the_message_has_the_fcm_v1_shape() {
        let content = Content::of_entry("p1", "message.new", &chat_payload("text"), None);
        let body = message("tok", &content);
        let m = &body["message"];
        assert_eq!(
            body.as_object().unwrap().len(),
            1,
            "only `message` at the top"
        );
        assert_eq!(m["token"], "tok");
        assert_eq!(
            m["notification"],
            json!({"title": "Mina", "body": "see you at 8?"})
        );
        assert_eq!(m["android"]["priority"], "high");
        assert_eq!(m["apns"]["headers"]["apns-priority"], "10");
        let aps = &m["apns"]["payload"]["aps"];
        assert_eq!(
            aps["alert"],
            json!({"title": "Mina", "body": "see you at 8?"})
        );
        assert_eq!(aps["thread-id"], "c1");
        // FCM refuses data values that are not strings.
        let data = m["data"].as_object().unwrap();
        assert!(data.values().all(Value::is_string), "{data:?}");
        assert_eq!(data["seq"], "42");
        assert_eq!(data["muted"], "false");
        assert_eq!(data["event"], "message.new");
        assert_eq!(data["push_id"], "p1");
        assert_eq!(data["chat_id"], "c1");
        for gone in ["gcm.x", "from", "none"] {
            assert!(!data.contains_key(gone), "{gone}");
        }
    }

    #[test]
    fn the_body_says_what_kind_of_message_it_is() {
        let body = |kind| Content::of_entry("p", "message.new", &chat_payload(kind), None).body;
        assert_eq!(body("voice"), "Voice message");
        assert_eq!(body("image"), "Photo");
        assert_eq!(body("text"), "see you at 8?");
        let empty = Content::of_entry("p", "message.new", &json!({}), None);
        assert_eq!(empty.body, "New message");
    }

    #[test]
    fn long_text_is_cut_to_a_preview() {
        let text = "가".repeat(300);
        let payload = json!({"message_kind": "text", "text": text});
        let body = Content::of_entry("p", "message.new", &payload, None).body;
        assert_eq!(body.chars().count(), PREVIEW_CHARS);
        assert!(body.ends_with('…'));
    }

    #[test]
    fn the_title_falls_back_to_the_looked_up_name() {
        let payload = json!({"sender_id": "u1", "message_kind": "voice"});
        let content = Content::of_entry("p", "message.new", &payload, Some("Joon"));
        assert_eq!(content.title, "Joon");
        assert_eq!(Content::of_entry("p", "x", &payload, None).title, "Sori");
        assert_eq!(content.thread, None);
    }

    #[test]
    fn a_collapsed_social_push_names_the_last_actor_and_counts_the_others() {
        let payload = json!({"actor_id": "u1", "post_id": "p9", "count": 4});
        let content = Content::of_entry("e", "like", &payload, Some("Mina"));
        assert_eq!(content.title, "Mina and 3 others");
        assert_eq!(content.body, "liked your post");
        assert_eq!(content.thread.as_deref(), Some("like:p9"));
        let one = Content::of_entry("e", "follow", &json!({"actor_id": "u1"}), Some("Joon"));
        assert_eq!(
            (one.title.as_str(), one.body.as_str()),
            ("Joon", "started following you")
        );
        let two = Content::of_entry("e", "comment", &json!({"count": 2}), Some("Joon"));
        assert_eq!(two.title, "Joon and 1 other");
        let ready = Content::of_entry("e", "media.ready", &json!({"media_id": "m"}), None);
        assert_eq!(
            (ready.title.as_str(), ready.body.as_str()),
            ("Sori", "Your clip is ready")
        );
        let news = Content::of_entry("e", "announcement", &json!({"text": "We are\nback"}), None);
        assert_eq!(
            (news.title.as_str(), news.body.as_str()),
            ("Sori", "We are back")
        );
    }
}
