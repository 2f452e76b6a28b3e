//! Real-time delivery: the WebSocket (`GET /v1/ws`), presence, and the
//! fanout that carries events between API processes.
//!
//! Sending is over REST; a socket only receives events as JSON
//! `{"type", "data"}`: `message.new`, `message.read`, `presence`,
//! `media.ready` / `media.failed`, `notification`. An event is published once through the
//! [`Fanout`]; every process forwards what it receives to the sockets of the
//! named users it holds ([`hub::Hub`]), on every device.

pub mod fanout;
pub mod hub;
pub mod presence;
pub mod socket;

use crate::core::error::ApiError;
use crate::core::state::AppState;
pub use fanout::{Envelope, Fanout};
use hub::Hub;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// One event as a socket receives it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: String,
    pub data: serde_json::Value,
}

impl Event {
    pub fn new(kind: &str, data: serde_json::Value) -> Self {
        Self {
            kind: kind.to_owned(),
            data,
        }
    }
}

/// Socket timing and buffering.
#[derive(Debug, Clone, Copy)]
pub struct WsConfig {
    /// How often the server pings each socket (`SORI_WS_PING_SECS`).
    pub ping_interval: Duration,
    /// How long a ping may go unanswered, and a send may block, before the
    /// connection is dropped (`SORI_WS_PONG_TIMEOUT_SECS`).
    pub pong_timeout: Duration,
    /// Events queued per connection before it counts as a slow consumer.
    pub queue: usize,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(20),
            pong_timeout: Duration::from_secs(10),
            queue: 256,
        }
    }
}

impl WsConfig {
    /// How long a connection's presence row lives without a heartbeat: a
    /// missed pong is noticed within `ping_interval + pong_timeout`, and the
    /// row of a process that died outlives that by one more interval at most.
    pub fn presence_ttl(&self) -> Duration {
        self.ping_interval * 2 + self.pong_timeout
    }

    /// How long a pong waits before its heartbeat is written (batched with
    /// the others, see [`presence`]): a quarter of the ping interval, at most
    /// a second, so well inside the expiry's slack of one ping interval.
    pub fn heartbeat_flush(&self) -> Duration {
        (self.ping_interval / 4).min(Duration::from_secs(1))
    }
}

/// The real-time side of [`AppState`]: cheap to clone.
#[derive(Clone)]
pub struct Realtime {
    pub hub: Arc<Hub>,
    pub fanout: Fanout,
    pub config: WsConfig,
    /// Pongs waiting to be written as heartbeats.
    pub heartbeats: presence::Heartbeats,
    /// Set once this process forwards fanout and media events to its sockets
    /// and writes their heartbeats.
    started: Arc<OnceCell<()>>,
}

impl Default for Realtime {
    fn default() -> Self {
        Self::new(Fanout::local(), WsConfig::default())
    }
}

impl Realtime {
    pub fn new(fanout: Fanout, config: WsConfig) -> Self {
        Self {
            hub: Arc::default(),
            fanout,
            config,
            heartbeats: presence::Heartbeats::default(),
            started: Arc::default(),
        }
    }

    /// Sends `event` to every live connection of `user_ids`, on any process.
    pub async fn publish(&self, user_ids: Vec<String>, event: Event) {
        self.fanout.publish(user_ids, event).await;
    }

    /// Starts forwarding events to this process's sockets, once, when the
    /// first socket connects (until then no event has anywhere to go here).
    pub async fn ensure_started(&self, state: &AppState) -> Result<(), ApiError> {
        self.started
            .get_or_try_init(|| start(state.clone()))
            .await
            .map(|_| ())
    }
}

async fn start(state: AppState) -> Result<(), ApiError> {
    let rt = &state.realtime;
    tokio::spawn(rt.heartbeats.clone().flush_forever(
        state.db.clone(),
        rt.config.heartbeat_flush(),
        rt.config.presence_ttl(),
    ));
    let hub = state.realtime.hub.clone();
    let mut media = state.media_events.subscribe();
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match media.recv().await {
                Ok(e) => hub.deliver(std::slice::from_ref(&e.owner_id), &media_event(&e)),
                Err(RecvError::Lagged(n)) => tracing::warn!(missed = n, "media events lagged"),
                Err(RecvError::Closed) => break,
            }
        }
    });
    match state.realtime.fanout.clone() {
        Fanout::Local(tx) => {
            let mut rx = tx.subscribe();
            tokio::spawn(async move {
                use tokio::sync::broadcast::error::RecvError;
                loop {
                    match rx.recv().await {
                        Ok(envelope) => forward(&state, envelope).await,
                        Err(RecvError::Lagged(n)) => tracing::warn!(missed = n, "events lagged"),
                        Err(RecvError::Closed) => break,
                    }
                }
            });
        }
        Fanout::Postgres { url, .. } => {
            let mut listener = sqlx::postgres::PgListener::connect(&url)
                .await
                .map_err(|e| ApiError::Unavailable(format!("cannot listen for events: {e}")))?;
            listener
                .listen(fanout::CHANNEL)
                .await
                .map_err(|e| ApiError::Unavailable(format!("cannot listen for events: {e}")))?;
            tokio::spawn(async move {
                loop {
                    // `recv` reconnects by itself after a lost connection.
                    match listener.recv().await {
                        Ok(n) => match serde_json::from_str::<Envelope>(n.payload()) {
                            Ok(envelope) => forward(&state, envelope).await,
                            Err(e) => tracing::warn!(error = %e, "unreadable event notification"),
                        },
                        Err(e) => {
                            tracing::warn!(error = %e, "event listener failed; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            });
        }
    }
    Ok(())
}

/// Publishes a worker process's media events through the fanout, so the
/// owner's sockets on the API processes get `media.ready` / `media.failed`.
pub async fn relay_media_events(
    mut events: tokio::sync::broadcast::Receiver<sori_pipeline::media::MediaEvent>,
    fanout: Fanout,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match events.recv().await {
            Ok(e) => {
                fanout
                    .publish(vec![e.owner_id.clone()], media_event(&e))
                    .await
            }
            Err(RecvError::Lagged(n)) => tracing::warn!(missed = n, "media events lagged"),
            Err(RecvError::Closed) => break,
        }
    }
}

fn media_event(e: &sori_pipeline::media::MediaEvent) -> Event {
    let data = serde_json::json!({"media_id": e.media_id, "state": e.state.as_str()});
    Event::new(e.kind(), data)
}

/// Hands an envelope to this process's sockets, reading back a message that
/// was too large to travel in the notification.
async fn forward(state: &AppState, envelope: Envelope) {
    let event = match (envelope.event, envelope.message_id) {
        (Some(event), _) => event,
        (None, Some(id)) => match crate::chat::messages::new_message_event(state, &id).await {
            Ok(Some(event)) => event,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, message_id = %id, "cannot read a message to deliver");
                return;
            }
        },
        (None, None) => return,
    };
    if event.kind.starts_with("media.") {
        // A worker process's media event: the owner's feed shows the post's new state.
        for user_id in &envelope.user_ids {
            state.feed_pages.forget(user_id);
        }
    }
    state.realtime.hub.deliver(&envelope.user_ids, &event);
}
