//! Cross-process delivery of events: every API process receives every
//! [`Envelope`] and hands it to the sockets it holds ([`super::hub::Hub`]).
//!
//! PostgreSQL (several API processes): `NOTIFY` on one channel, one
//! `LISTEN` connection per process. A notification payload must stay under
//! 8000 bytes, so an envelope too large for it (a long text message) travels
//! as the message id only and each receiving process reads the message back.
//! SQLite (one embedded process): an in-process tokio broadcast.
//!
//! Why notifications are sent after the write that caused them, from a
//! task of their own, never inside the write's transaction: PostgreSQL
//! serializes the commits of all notifying transactions (a global lock held
//! through the commit's WAL flush, so notifications queue in commit order).
//! A durable write that also notifies therefore waits for every other one's
//! disk flush in turn, and group commit is lost: on this project's test
//! machine a message write with `pg_notify` in its statement committed at
//! ~530/s against ~12 000/s without it. A notify-only transaction writes no
//! WAL, so it holds that lock only for microseconds. The task sends whatever
//! accumulated while its previous statement ran as one statement, so under
//! load one lock acquisition carries many events and when idle an event
//! waits for nothing.

use super::Event;
use serde::{Deserialize, Serialize};
use sori_db::Db;
use tokio::sync::{broadcast, mpsc};

/// The NOTIFY channel every API process listens on.
pub const CHANNEL: &str = "sori_events";
/// Largest NOTIFY payload sent as is (PostgreSQL's limit is 8000 bytes).
const MAX_NOTIFY_BYTES: usize = 7_900;
/// Envelopes the in-process broadcast buffers for a slow forwarder.
const LOCAL_CAPACITY: usize = 4_096;
/// Payloads waiting for the notifier task; past this (the database is down
/// or far behind) events are dropped, as [`Fanout::publish`] explains.
const NOTIFY_BACKLOG: usize = 16_384;
/// Most notifications sent in one statement.
const NOTIFY_BATCH: usize = 256;

/// Who gets an event, and the event; or, when the event was too large for a
/// notification, the id of the message whose `message.new` it is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub user_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Event>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Unix milliseconds of the publication, for the delivery latency
    /// (`sori_ws_delivery_seconds`; across hosts it includes clock skew).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_ms: Option<i64>,
}

/// How events reach the other processes.
#[derive(Clone)]
pub enum Fanout {
    /// One process: a tokio broadcast.
    Local(broadcast::Sender<Envelope>),
    /// Several processes sharing a PostgreSQL database: LISTEN/NOTIFY.
    /// `notifier` feeds this process's notifying task; `url` opens its
    /// listening connection.
    Postgres {
        notifier: mpsc::Sender<String>,
        url: String,
    },
}

impl Fanout {
    pub fn local() -> Self {
        Self::Local(broadcast::channel(LOCAL_CAPACITY).0)
    }

    /// Starts the task that sends this process's notifications on `db`
    /// (so it must be called inside the runtime).
    pub fn postgres(db: Db, url: &str) -> Self {
        let (notifier, pending) = mpsc::channel(NOTIFY_BACKLOG);
        tokio::spawn(send_notifications(db, pending));
        Self::Postgres {
            notifier,
            url: url.to_owned(),
        }
    }

    /// Sends `event` for `user_ids` to every process (this one included),
    /// after what the caller has committed. Best effort: an event that cannot
    /// go out is logged and dropped, as it is also in the database (history,
    /// unread counts) for the client to catch up on.
    pub async fn publish(&self, user_ids: Vec<String>, event: Event) {
        let envelope = Envelope {
            user_ids,
            event: Some(event),
            message_id: None,
            published_ms: Some(sori_pipeline::clock::now_ms()),
        };
        match self {
            Self::Local(tx) => {
                // No receiver yet means no socket in this process: nothing to do.
                let _ = tx.send(envelope);
            }
            Self::Postgres { notifier, .. } => {
                let Some(payload) = notify_payload(envelope) else {
                    return;
                };
                if let Err(e) = notifier.try_send(payload) {
                    tracing::warn!(error = %e, "cannot publish an event: notifier backlog full");
                }
            }
        }
    }
}

/// The notifier task: sends each batch of waiting payloads as one statement,
/// in the order they were published. PostgreSQL delivers identical
/// notifications of one transaction once, so an event published twice within
/// one batch (the same presence change, say) arrives once.
async fn send_notifications(db: Db, mut pending: mpsc::Receiver<String>) {
    let mut batch = Vec::with_capacity(NOTIFY_BATCH);
    while pending.recv_many(&mut batch, NOTIFY_BATCH).await > 0 {
        let payloads = serde_json::to_string(&batch).unwrap_or_default();
        let sent =
            sqlx::query("SELECT pg_notify($1, p) FROM json_array_elements_text($2::json) AS p")
                .bind(CHANNEL)
                .bind(payloads)
                .execute(db.pool())
                .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, events = batch.len(), "cannot publish events");
        }
        batch.clear();
    }
}

/// The notification payload of an envelope: the envelope itself, or its
/// message id when it is too large; `None` (logged) when it is too large and
/// names no message.
fn notify_payload(mut envelope: Envelope) -> Option<String> {
    let payload = serde_json::to_string(&envelope).unwrap_or_default();
    if payload.len() <= MAX_NOTIFY_BYTES {
        return Some(payload);
    }
    let message_id = envelope
        .event
        .as_ref()
        .and_then(|e| e.data.get("id"))
        .and_then(|id| id.as_str())
        .map(str::to_owned);
    if message_id.is_none() {
        tracing::error!(bytes = payload.len(), "event too large to notify");
        return None;
    }
    envelope.event = None;
    envelope.message_id = message_id;
    Some(serde_json::to_string(&envelope).unwrap_or_default())
}
