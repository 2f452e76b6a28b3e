//! Media columns as every answer carrying a clip shows them, and how long
//! the upload URLs of new media work.

use std::time::Duration;

/// How long a presigned upload URL works: until then an object may still
/// arrive under a media's key (account erasure waits this out).
/// What makes a media "attached": a post's clip, a voice comment's, or a chat
/// message's. Referenced as `media.id`; a new kind of attachment is one more
/// `AND NOT EXISTS (…)` here.
pub const UNATTACHED: &str = "NOT EXISTS (SELECT 1 FROM posts WHERE posts.media_id = media.id) \
     AND NOT EXISTS (SELECT 1 FROM comments WHERE comments.media_id = media.id) \
     AND NOT EXISTS (SELECT 1 FROM messages WHERE messages.media_id = media.id)";

pub const UPLOAD_URL_TTL: Duration = Duration::from_secs(15 * 60);

/// `media.bars` holds a JSON array of 0–31 values (or an object with a `bars`
/// array); anything else renders as no bars rather than failing the feed.
pub fn parse_bars(text: &str) -> Vec<u8> {
    let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let array = match &value {
        serde_json::Value::Object(o) => o.get("bars").and_then(|b| b.as_array()),
        other => other.as_array(),
    };
    array
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_u64())
                .map(|v| v.min(31) as u8)
                .collect()
        })
        .unwrap_or_default()
}
