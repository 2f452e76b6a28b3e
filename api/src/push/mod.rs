//! Push to offline users. What causes a push (a chat message, a like,
//! comment, mention, follow or follow request, a clip processed, an
//! announcement, to a user with no live connection) records it inside its own transaction
//! ([`crate::effects::push`]), so the push is recorded exactly when the
//! message is; a [`dispatch`]er delivers the outbox later through a
//! pluggable [`PushSender`] and keeps an entry until a sender accepts it (or
//! refuses it for good: the entry is then marked dead, still kept).
//!
//! - [`devices`]: `PUT|DELETE|GET /v1/me/devices…`, where apps register their push tokens.
//! - [`dispatch`]: the lease-based loop the API role runs, with retries, backoff and purge.
//! - [`webhook`]: the HTTP sender (a POST of a [`PushRequest`], signed the Standard Webhooks way).
//! - [`fcm`]: the FCM HTTP v1 message built for each device.
//!
//! # The payload of a `message.new` entry
//! A JSON object; the notification is built from these keys, all optional,
//! and every key is passed on to the device as data:
//! `chat_id`, `message_id`, `sender_id`, `sender_name` (the title; looked up
//! from `sender_id` when absent), `message_kind` (`text` | `voice` | `image`)
//! and `text` (the preview of a text message).
//!
//! # Other entries
//! A notification's push (`like`, `comment`, `mention`, `follow`,
//! `follow_request`, `follow_accepted`) carries `notification_id`,
//! `actor_id` (whose name is the title), `post_id` and `comment_id`; a
//! collapsed one gains `count`, the people it stands for ("Mina and 3
//! others"). `media.ready` and `media.failed` carry `media_id` (and the
//! failure's `reason`); `announcement` carries `announcement_id` and `text`.

pub mod devices;
pub mod dispatch;
pub mod fcm;
pub mod webhook;

pub use devices::router;
pub use dispatch::{DispatchConfig, Dispatcher};
pub use webhook::WebhookSender;

use serde::Serialize;
use std::future::Future;
use std::time::Duration;

/// One outbox entry as handed to a sender: the event and every device of
/// its user. This is also the webhook's JSON body.
#[derive(Debug, Clone, Serialize)]
pub struct PushRequest {
    /// The entry id: stable across retries, so receivers can deduplicate.
    pub id: String,
    pub user_id: String,
    /// The event, e.g. `message.new`.
    pub kind: String,
    /// The event's data as enqueued.
    pub data: serde_json::Value,
    pub devices: Vec<DeviceTarget>,
}

/// One device of the user, with the FCM v1 message built for it.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceTarget {
    pub device_id: String,
    /// `fcm` or `webhook`.
    pub platform: String,
    pub push_token: String,
    /// The FCM HTTP v1 request body for this device (`{"message": …}`).
    pub fcm: serde_json::Value,
}

/// Why a send failed, decided by the sender at the point of failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// Worth retrying later (network error, timeout, 5xx, 408, 429), and
    /// not before `retry_after` when the receiver said so.
    #[error("transient: {why}")]
    Transient {
        why: String,
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help (the receiver refused the request): the entry is marked dead.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl SendError {
    /// A transient failure with no word on when to retry.
    pub fn transient(why: impl Into<String>) -> Self {
        Self::Transient {
            why: why.into(),
            retry_after: None,
        }
    }
}

/// Where the dispatcher hands entries. `Ok` means the receiver accepted the
/// entry; delivery is at least once, so a receiver deduplicates by [`PushRequest::id`].
pub trait PushSender: Send + Sync + 'static {
    fn send(&self, request: &PushRequest) -> impl Future<Output = Result<(), SendError>> + Send;
}
