//! Real-time plumbing every process holds: the sockets of this process by
//! user ([`hub::Hub`]), the [`Fanout`] that carries events between API
//! processes, the pending presence heartbeats, and the socket settings.
//!
//! A socket only receives events as JSON `{"type", "data"}`: `message.new`,
//! `message.edited`, `message.deleted`, `message.read`, `presence`, `media.ready` / `media.failed`,
//! `notification`. An event is published once through the [`Fanout`]; every
//! process forwards what it receives to the sockets of the named users it
//! holds, on every device. The routes (`GET /v1/ws`, presence) and the
//! forwarding task live in [`crate::realtime`].

pub mod fanout;
pub mod heartbeats;
pub mod hub;

use crate::core::error::ApiError;
pub use fanout::{Envelope, Fanout};
pub use heartbeats::Heartbeats;
use hub::Hub;
use serde::{Deserialize, Serialize};
use std::future::Future;
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
    /// the others, see [`Heartbeats`]): a quarter of the ping interval, at most
    /// a second, so well inside the expiry's slack of one ping interval.
    pub fn heartbeat_flush(&self) -> Duration {
        (self.ping_interval / 4).min(Duration::from_secs(1))
    }
}

/// The real-time side of the application state: cheap to clone.
#[derive(Clone)]
pub struct Realtime {
    pub hub: Arc<Hub>,
    pub fanout: Fanout,
    pub config: WsConfig,
    /// Pongs waiting to be written as heartbeats.
    pub heartbeats: Heartbeats,
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
            heartbeats: Heartbeats::default(),
            started: Arc::default(),
        }
    }

    /// Sends `event` to every live connection of `user_ids`, on any process.
    pub async fn publish(&self, user_ids: Vec<String>, event: Event) {
        self.fanout.publish(user_ids, event).await;
    }

    /// Starts forwarding events to this process's sockets, once, when the
    /// first socket connects (until then no event has anywhere to go here):
    /// runs `start` unless it already succeeded.
    pub async fn ensure_started<F, Fut>(&self, start: F) -> Result<(), ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), ApiError>>,
    {
        self.started.get_or_try_init(start).await.map(|_| ())
    }
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

/// The `media.ready` / `media.failed` event of a processed media, for its owner.
pub fn media_event(e: &sori_pipeline::media::MediaEvent) -> Event {
    let data = serde_json::json!({"media_id": e.media_id, "state": e.state.as_str()});
    Event::new(e.kind(), data)
}
