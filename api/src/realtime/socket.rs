//! `GET /v1/ws`: one socket per device. The token comes in the
//! `Authorization` header or, for browsers (which cannot set headers on a
//! WebSocket), as `?token=` — request logs record the path only, never the
//! query. A bad token is a 401 before the upgrade.
//!
//! The server pings every [`WsConfig::ping_interval`]; a socket that does not
//! answer within [`WsConfig::pong_timeout`], or whose client does not read
//! (a send blocked that long, or its queue full), is dropped, and with its
//! last connection the user goes offline.

use super::{listener, presence};
use crate::core::error::{ApiError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::realtime::{Event, WsConfig};
use crate::core::sessions::Sessions;
use crate::core::state::AppState;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};

/// Bytes buffered per socket for reading and for writing.
const SOCKET_BUFFER: usize = 4 * 1024;
/// Largest frame a client may send: sending is over REST, so a socket
/// receives only pongs and close frames.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use sori_db::Db;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(ws))
}

/// The caller of a socket: [`AuthUser`], with the token also accepted as `?token=`.
pub struct WsUser(pub AuthUser);

impl<S> FromRequestParts<S> for WsUser
where
    Db: FromRef<S>,
    Sessions: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            let query = parts.uri.query().unwrap_or_default();
            let token = form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "token")
                .map(|(_, v)| v.into_owned());
            if let Some(token) = token {
                let value = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| ApiError::Unauthorized("malformed token"))?;
                parts.headers.insert(header::AUTHORIZATION, value);
            }
        }
        AuthUser::from_request_parts(parts, state).await.map(Self)
    }
}

/// Opens the event socket (WebSocket upgrade). Events are JSON `{"type", "data"}`:
/// `message.new`, `message.read`, `presence`, `media.ready`, `media.failed`.
#[utoipa::path(get, path = "/v1/ws", tag = "chat",
    security(("bearer" = [])),
    params(("token" = Option<String>, Query, description = "The bearer token, for clients that cannot send an Authorization header")),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade request"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Cannot receive events now", body = Problem, content_type = "application/problem+json"),
    ))]
async fn ws(
    State(state): State<AppState>,
    WsUser(user): WsUser,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let start = || listener::start(state.clone());
    state.realtime.ensure_started(start).await?;
    // Clients only answer pings and close: small buffers instead of the
    // 128 KiB read buffer tungstenite gives each connection by default.
    let upgrade = upgrade
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER)
        .max_message_size(MAX_CLIENT_MESSAGE);
    Ok(upgrade.on_upgrade(move |socket| connection(state, user.id, socket)))
}

/// One socket's life: registered in the hub and the presence table, pumped
/// until it closes or is dropped, then removed from both.
async fn connection(state: AppState, user_id: String, socket: WebSocket) {
    let rt = &state.realtime;
    let config = rt.config;
    let conn_id = uuid::Uuid::now_v7().to_string();
    let (tx, rx) = mpsc::channel(config.queue.max(1));
    let cancel = CancellationToken::new();
    rt.hub.register(&user_id, &conn_id, tx, cancel.clone());
    let ttl = config.presence_ttl();
    match presence::connect(&state.db, &conn_id, &user_id, ttl).await {
        Ok(true) => announce(&state, &user_id).await,
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "cannot record a connection"),
    }
    let (sink, stream) = socket.split();
    let heartbeat = || rt.heartbeats.mark(&conn_id, &user_id);
    let end = pump(sink, stream, rx, &cancel, config, heartbeat).await;
    tracing::debug!(%user_id, %conn_id, end, "socket closed");
    rt.hub.unregister(&user_id, &conn_id);
    rt.heartbeats.forget(&conn_id);
    match presence::disconnect(&state.db, &conn_id, &user_id).await {
        Ok(true) => announce(&state, &user_id).await,
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "cannot record a disconnection"),
    }
}

/// Tells the user's chat partners their presence changed.
async fn announce(state: &AppState, user_id: &str) {
    let result = async {
        let partners = presence::partners(&state.db, user_id).await?;
        let now = presence::status(&state.db, user_id).await?;
        Ok::<_, sqlx::Error>((partners, now))
    }
    .await;
    match result {
        Ok((partners, now)) if !partners.is_empty() => {
            let data = serde_json::to_value(now).unwrap_or_default();
            state
                .realtime
                .publish(partners, Event::new("presence", data))
                .await;
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot announce presence"),
    }
}

/// Moves queued events to the socket, pings, and watches for pongs and the
/// close. Returns why it stopped. Written over `Sink`/`Stream`, so it does
/// not depend on a real socket.
pub async fn pump<Si, St, E, H>(
    mut sink: Si,
    mut stream: St,
    mut events: mpsc::Receiver<Arc<str>>,
    cancel: &CancellationToken,
    config: WsConfig,
    heartbeat: H,
) -> &'static str
where
    Si: Sink<Message> + Unpin,
    St: Stream<Item = Result<Message, E>> + Unpin,
    H: Fn(),
{
    let mut ping =
        tokio::time::interval_at(Instant::now() + config.ping_interval, config.ping_interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut awaiting_pong: Option<Instant> = None;
    loop {
        let pong_deadline = async {
            match awaiting_pong {
                Some(sent) => sleep_until(sent + config.pong_timeout).await,
                None => std::future::pending().await,
            }
        };
        let outgoing = tokio::select! {
            _ = cancel.cancelled() => return "slow consumer",
            _ = pong_deadline => return "missed pong",
            event = events.recv() => match event {
                Some(text) => Message::Text(text.as_ref().into()),
                None => return "dropped",
            },
            _ = ping.tick() => {
                if awaiting_pong.is_none() {
                    awaiting_pong = Some(Instant::now());
                }
                Message::Ping(Default::default())
            }
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Pong(_))) => {
                    awaiting_pong = None;
                    heartbeat();
                    continue;
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return "closed",
                // Sending is over REST; anything else from the client is ignored.
                Some(Ok(_)) => continue,
            },
        };
        // A client that does not read blocks the send: bounded by the pong timeout.
        tokio::select! {
            sent = sink.send(outgoing) => if sent.is_err() { return "closed" },
            _ = cancel.cancelled() => return "slow consumer",
            _ = tokio::time::sleep(config.pong_timeout) => return "send timed out",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio_util::sync::PollSender;

    fn config() -> WsConfig {
        WsConfig {
            ping_interval: Duration::from_millis(200),
            pong_timeout: Duration::from_millis(100),
            queue: 4,
        }
    }

    /// A client that never sends anything (not even pongs).
    fn silent() -> futures_util::stream::Pending<Result<Message, ()>> {
        futures_util::stream::pending()
    }

    #[tokio::test]
    async fn queued_events_are_sent_as_text() {
        let (out_tx, mut out_rx) = mpsc::channel(8);
        let (events_tx, events) = mpsc::channel(4);
        events_tx.send(Arc::from("{\"type\":\"x\"}")).await.unwrap();
        drop(events_tx);
        let cancel = CancellationToken::new();
        let sink = PollSender::new(out_tx);
        let end = pump(sink, silent(), events, &cancel, config(), || {}).await;
        assert_eq!(end, "dropped");
        match out_rx.recv().await {
            Some(Message::Text(t)) => assert_eq!(t.as_str(), "{\"type\":\"x\"}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn an_unanswered_ping_ends_the_connection_after_the_timeout() {
        let (out_tx, mut out_rx) = mpsc::channel(8);
        let (_events_tx, events) = mpsc::channel(4);
        let cancel = CancellationToken::new();
        let started = Instant::now();
        let end = pump(
            PollSender::new(out_tx),
            silent(),
            events,
            &cancel,
            config(),
            || {},
        )
        .await;
        assert_eq!(end, "missed pong");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(2),
            "{took:?}"
        );
        assert!(matches!(out_rx.recv().await, Some(Message::Ping(_))));
    }

    #[tokio::test]
    async fn answered_pings_keep_it_open_and_beat_the_heart() {
        let (out_tx, _out_rx) = mpsc::channel(64);
        let (_events_tx, events) = mpsc::channel(4);
        // The client sends a pong every 50 ms for 400 ms (past the 200 ms
        // ping and its 100 ms deadline), then closes.
        let client = futures_util::stream::unfold(0u32, |n| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let msg = if n < 8 {
                Message::Pong(Default::default())
            } else {
                Message::Close(None)
            };
            Some((Ok::<_, ()>(msg), n + 1))
        });
        let beats = std::sync::atomic::AtomicU32::new(0);
        let cancel = CancellationToken::new();
        let heartbeat = || {
            beats.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        };
        let end = pump(
            PollSender::new(out_tx),
            Box::pin(client),
            events,
            &cancel,
            config(),
            heartbeat,
        )
        .await;
        assert_eq!(end, "closed");
        assert_eq!(beats.load(std::sync::atomic::Ordering::Relaxed), 8);
    }
}
