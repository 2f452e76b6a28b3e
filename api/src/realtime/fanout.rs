//! Cross-process delivery of events: every API process receives every
//! [`Envelope`] and hands it to the sockets it holds ([`super::hub::Hub`]).
//!
//! PostgreSQL (several API processes): `NOTIFY` on one channel, one
//! `LISTEN` connection per process. A notification payload must stay under
//! 8000 bytes, so an envelope too large for it (a long text message) travels
//! as the message id only and each receiving process reads the message back.
//! SQLite (one embedded process): an in-process tokio broadcast.

use super::Event;
use serde::{Deserialize, Serialize};
use sori_pipeline::Db;
use tokio::sync::broadcast;

/// The NOTIFY channel every API process listens on.
pub const CHANNEL: &str = "sori_events";
/// Largest NOTIFY payload sent as is (PostgreSQL's limit is 8000 bytes).
const MAX_NOTIFY_BYTES: usize = 7_900;
/// Envelopes the in-process broadcast buffers for a slow forwarder.
const LOCAL_CAPACITY: usize = 4_096;

/// Who gets an event, and the event; or, when the event was too large for a
/// notification, the id of the message whose `message.new` it is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub user_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Event>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// How events reach the other processes.
#[derive(Clone)]
pub enum Fanout {
    /// One process: a tokio broadcast.
    Local(broadcast::Sender<Envelope>),
    /// Several processes sharing a PostgreSQL database: LISTEN/NOTIFY.
    /// `url` opens each process's listening connection.
    Postgres { db: Db, url: String },
}

impl Fanout {
    pub fn local() -> Self {
        Self::Local(broadcast::channel(LOCAL_CAPACITY).0)
    }

    pub fn postgres(db: Db, url: &str) -> Self {
        Self::Postgres {
            db,
            url: url.to_owned(),
        }
    }

    /// The `pg_notify(CHANNEL, payload)` arguments of `event` for `user_ids`
    /// when events travel through PostgreSQL: a write can notify in its own
    /// statement, delivered when it commits, instead of calling
    /// [`Fanout::publish`] after it (one round trip less). `None` otherwise.
    pub fn notification(
        &self,
        user_ids: Vec<String>,
        event: Event,
    ) -> Option<(&'static str, String)> {
        let Self::Postgres { .. } = self else {
            return None;
        };
        let envelope = Envelope {
            user_ids,
            event: Some(event),
            message_id: None,
        };
        notify_payload(envelope).map(|payload| (CHANNEL, payload))
    }

    /// Sends `event` for `user_ids` to every process (this one included).
    /// Best effort: a failure is logged, as the event is also in the database
    /// (history, unread counts) for the client to catch up on.
    pub async fn publish(&self, user_ids: Vec<String>, event: Event) {
        let envelope = Envelope {
            user_ids,
            event: Some(event),
            message_id: None,
        };
        match self {
            Self::Local(tx) => {
                // No receiver yet means no socket in this process: nothing to do.
                let _ = tx.send(envelope);
            }
            Self::Postgres { db, .. } => {
                if let Err(e) = notify(db, envelope).await {
                    tracing::warn!(error = %e, "cannot publish an event");
                }
            }
        }
    }
}

/// `NOTIFY` with the envelope (see [`notify_payload`]).
async fn notify(db: &Db, envelope: Envelope) -> Result<(), sqlx::Error> {
    let Some(payload) = notify_payload(envelope) else {
        return Ok(());
    };
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(payload)
        .execute(db.pool())
        .await?;
    Ok(())
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
