//! Push to offline users. What causes a push (a chat message to a member with
//! no live connection) records it inside its own transaction ([`enqueue`],
//! [`enqueue_unless_online`], [`insert_entry_sql`]), so the
//! push is recorded exactly when the message is; a [`dispatch`]er delivers the
//! outbox later through a pluggable [`PushSender`] and keeps an entry until a
//! sender accepts it (or refuses it for good: the entry is then marked dead,
//! still kept).
//!
//! - [`devices`]: `PUT|DELETE|GET /v1/me/devices…`, where apps register their push tokens.
//! - [`dispatch`]: the lease-based loop the API role runs, with retries, backoff and purge.
//! - [`webhook`]: the HTTP sender (signed POST of a [`PushRequest`]).
//! - [`fcm`]: the FCM HTTP v1 message built for each device.
//!
//! # The payload of a `message.new` entry
//! A JSON object; the notification is built from these keys, all optional,
//! and every key is passed on to the device as data:
//! `chat_id`, `message_id`, `sender_id`, `sender_name` (the title; looked up
//! from `sender_id` when absent), `message_kind` (`text` | `voice` | `image`)
//! and `text` (the preview of a text message).

pub mod devices;
pub mod dispatch;
pub mod fcm;
pub mod webhook;

pub use devices::router;
pub use dispatch::{DispatchConfig, Dispatcher};
pub use webhook::WebhookSender;

use serde::Serialize;
use sori_pipeline::clock::now_ms;
use sqlx::AnyConnection;
use std::future::Future;

/// Records a push of event `kind` (e.g. `message.new`) with `payload` for
/// `user_id`, due at once. Call it on the connection of the transaction that
/// writes the cause.
pub async fn enqueue(
    conn: &mut AnyConnection,
    user_id: &str,
    kind: &str,
    payload: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    record(conn, user_id, kind, payload, false).await
}

/// [`enqueue`], only when `user_id` has no live connection at this moment
/// (checked in the same statement): what a chat message to them does.
pub async fn enqueue_unless_online(
    conn: &mut AnyConnection,
    user_id: &str,
    kind: &str,
    payload: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    record(conn, user_id, kind, payload, true).await
}

async fn record(
    conn: &mut AnyConnection,
    user_id: &str,
    kind: &str,
    payload: &serde_json::Value,
    unless_online: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(&insert_entry_sql(
        ["$1", "$2", "$3", "$4", "$5"],
        unless_online,
    ))
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(user_id)
    .bind(kind)
    .bind(payload.to_string())
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// The `INSERT` of one outbox entry, due at once, from the SQL expressions
/// `[id, user, kind, payload, now]`; with `unless_online`, inserted only when
/// `user` has no live connection ([`crate::model::rules::live_connection`]).
/// For statements that record a push along with their cause.
pub fn insert_entry_sql([id, user, kind, payload, now]: [&str; 5], unless_online: bool) -> String {
    let mut sql = format!(
        "INSERT INTO push_outbox (id, user_id, kind, payload, next_attempt_at, created_at) \
         SELECT {id}, {user}, {kind}, {payload}, {now}, {now}"
    );
    if unless_online {
        let online = crate::model::rules::live_connection(user, now);
        sql.push_str(&format!(" WHERE NOT {online}"));
    }
    sql
}

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
    /// Worth retrying later (network error, timeout, 5xx, 408, 429).
    #[error("transient: {0}")]
    Transient(String),
    /// Retrying cannot help (the receiver refused the request): the entry is marked dead.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// Where the dispatcher hands entries. `Ok` means the receiver accepted the
/// entry; delivery is at least once, so a receiver deduplicates by [`PushRequest::id`].
pub trait PushSender: Send + Sync + 'static {
    fn send(&self, request: &PushRequest) -> impl Future<Output = Result<(), SendError>> + Send;
}
