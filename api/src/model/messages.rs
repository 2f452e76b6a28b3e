//! A chat message as clients see it, in history and in `message.new`
//! events ([`MessageItem`], loaded by [`SELECT_MESSAGES`]): the chat routes
//! answer with it and the real-time listener reads it back for a fanout that
//! could only carry its id.

use crate::core::error::ApiError;
use crate::core::media_urls::{ClipUrls, UrlSigner};
use crate::core::pagination::Cursor;
use crate::core::state::AppState;
use crate::model::media::parse_bars;
use serde::Serialize;
use utoipa::ToSchema;

/// A voice message's clip: playable at `audio_url` once `state` is `ready`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Voice {
    pub media_id: String,
    pub state: String,
    pub duration_ms: Option<i64>,
    /// Up to 100 values 0–31; empty until ready.
    pub bars: Vec<u8>,
    /// Signed URLs of the clip and its waveform; `null` until ready.
    #[serde(flatten)]
    pub urls: ClipUrls,
}

/// An image message's picture.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Image {
    pub media_id: String,
    pub content_type: String,
    pub width: Option<i64>,
    pub height: Option<i64>,
    /// A signed URL of the picture for an `<img>` element, no
    /// `Authorization` header: `GET` and `HEAD` of this image only, until it
    /// expires (`SORI_MEDIA_URL_TTL_SECS`, default 3600 s, to 1.25 times
    /// that after the answer was made). Only the room's members receive it.
    /// The picture as sent on: upright, at most 2048 px, no metadata.
    pub image_url: Option<String>,
    /// The same, at most 320 px, for the conversation view.
    pub thumbnail_url: Option<String>,
}

/// One message as clients see it (history, `message.new`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageItem {
    pub id: String,
    pub room_id: String,
    pub sender_id: String,
    /// `text`, `voice` or `image`.
    pub kind: String,
    /// The text, or a caption; empty when none.
    pub text: String,
    /// The sender's idempotency key, echoed so their other devices can match it.
    pub client_id: Option<String>,
    pub voice: Option<Voice>,
    pub image: Option<Image>,
    pub created_at: i64,
    /// When the sender last edited the text; `null` as sent.
    pub edited_at: Option<i64>,
}

impl MessageItem {
    pub fn cursor(&self) -> Cursor {
        Cursor {
            created_at: self.created_at,
            id: self.id.clone(),
        }
    }
}

/// Messages with their media; a query appends `WHERE …`.
pub const SELECT_MESSAGES: &str = "\
    SELECT m.id, m.room_id, m.sender_id, m.kind, m.body, m.client_id, m.media_id, m.created_at, m.edited_at, \
    md.state AS media_state, md.content_type AS media_type, md.duration_ms, md.bars, md.width, md.height, \
    md.output_prefix, md.original_key \
    FROM messages m LEFT JOIN media md ON md.id = m.media_id";

#[derive(Debug, sqlx::FromRow)]
pub struct MessageRow {
    pub id: String,
    pub room_id: String,
    pub sender_id: String,
    pub kind: String,
    pub body: String,
    pub client_id: Option<String>,
    pub media_id: Option<String>,
    pub created_at: i64,
    pub edited_at: Option<i64>,
    #[sqlx(flatten)]
    pub media: MediaColumns,
}

/// The attached media's columns of [`SELECT_MESSAGES`]; all `None` without one.
#[derive(Debug, Default, sqlx::FromRow)]
pub struct MediaColumns {
    pub media_state: Option<String>,
    pub media_type: Option<String>,
    pub duration_ms: Option<i64>,
    pub bars: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub output_prefix: Option<String>,
    pub original_key: Option<String>,
}

impl MessageRow {
    /// The answer shape, with media URLs signed by `urls`.
    pub fn into_item(self, urls: &UrlSigner) -> MessageItem {
        let (mut voice, mut image) = (None, None);
        let media = self.media;
        if let (Some(media_id), Some(state)) = (self.media_id, media.media_state) {
            let ready = state == "ready";
            match self.kind.as_str() {
                "voice" => {
                    voice = Some(Voice {
                        urls: urls.clip(ready, media.output_prefix.as_deref()),
                        bars: media.bars.as_deref().map(parse_bars).unwrap_or_default(),
                        media_id,
                        state,
                        duration_ms: media.duration_ms,
                    })
                }
                _ => {
                    let prefix = media.output_prefix.as_deref().filter(|_| ready);
                    let declared = media.media_type.unwrap_or_default();
                    image = Some(Image {
                        image_url: media
                            .original_key
                            .filter(|_| ready)
                            .and_then(|key| urls.picture(&key, &declared, prefix)),
                        thumbnail_url: urls.thumbnail(prefix),
                        media_id,
                        // What image_url serves.
                        content_type: match prefix {
                            Some(_) => "image/jpeg".to_owned(),
                            None => declared,
                        },
                        width: media.width,
                        height: media.height,
                    })
                }
            }
        }
        MessageItem {
            id: self.id,
            room_id: self.room_id,
            sender_id: self.sender_id,
            kind: self.kind,
            text: self.body,
            client_id: self.client_id,
            voice,
            image,
            created_at: self.created_at,
            edited_at: self.edited_at,
        }
    }
}

/// The stored message `id` as its room's members see it, `None` when there is none.
pub async fn find(state: &AppState, id: &str) -> Result<Option<MessageItem>, ApiError> {
    let sql = format!("{SELECT_MESSAGES} WHERE m.id = $1");
    let row: Option<MessageRow> = sqlx::query_as(&sql)
        .bind(id)
        .fetch_optional(state.db.pool())
        .await?;
    let urls = state.media_urls.signer().await?;
    Ok(row.map(|r| r.into_item(&urls)))
}
