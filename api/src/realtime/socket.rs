//! `GET /v1/ws`: one socket per device. The caller is known by the
//! `Authorization` header or, for browsers (which cannot set headers on a
//! WebSocket), by `?ticket=`: a single-use ticket from `POST /v1/ws/ticket`
//! that works for [`TICKET_TTL`], so a long-lived bearer token never sits in
//! a URL a proxy may log. A bad token or ticket is a 401 before the upgrade.
//!
//! A socket belongs to its session: it closes when the session expires or
//! is revoked (logout, moderator removal), on whichever process holds it.
//!
//! The server pings every [`WsConfig::ping_interval`]; a socket that does not
//! answer within [`WsConfig::pong_timeout`], or whose client does not read
//! (a send blocked that long, or its queue full), is dropped, and with its
//! last connection the user goes offline.

use super::{listener, presence};
use crate::core::error::{ApiError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::limits::{CreationLimits, MAX_SOCKETS_PER_USER};
use crate::core::realtime::{Event, WsConfig};
use crate::core::sessions::{self, Sessions};
use crate::core::state::AppState;
use crate::core::time::now_ms;
use crate::model::presence as model_presence;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::Json;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::Serialize;
use sori_db::Db;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Bytes buffered per socket for reading and for writing.
const SOCKET_BUFFER: usize = 4 * 1024;
/// Largest frame a client may send: sending is over REST, so a socket
/// receives only pongs and close frames.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ws))
        .routes(routes!(ticket))
}

/// How long a socket ticket works: enough to open the socket right after
/// asking, too short to be worth stealing from a log.
pub const TICKET_TTL: Duration = Duration::from_secs(30);

/// A ticket to open the event socket once (`GET /v1/ws?ticket=`).
#[derive(Debug, Serialize, ToSchema)]
pub struct WsTicket {
    pub ticket: String,
    /// Unix milliseconds after which the ticket is refused.
    pub expires_at: i64,
}

/// Issues a single-use ticket for `GET /v1/ws?ticket=`, valid for 30 s, for
/// clients that cannot send an `Authorization` header on a WebSocket
/// (browsers). The socket belongs to the caller's session.
#[utoipa::path(post, path = "/v1/ws/ticket", tag = "chat",
    security(("bearer" = [])),
    responses(
        (status = 201, body = WsTicket),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many tickets this hour; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
async fn ticket(
    State(db): State<Db>,
    State(limits): State<Arc<CreationLimits>>,
    user: AuthUser,
) -> Result<(StatusCode, Json<WsTicket>), ApiError> {
    limits.socket_tickets.take(&user.id)?;
    let issued = sessions::random_token();
    let now = now_ms();
    let expires_at = (now + TICKET_TTL.as_millis() as i64).min(user.expires_at);
    // Tickets nobody used are swept by whoever asks next.
    sqlx::query("DELETE FROM ws_tickets WHERE expires_at < $1")
        .bind(now)
        .execute(db.pool())
        .await?;
    sqlx::query(
        "INSERT INTO ws_tickets (ticket_hash, session_hash, user_id, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(sessions::token_hash(&issued))
    .bind(user.session_hash())
    .bind(&user.id)
    .bind(expires_at)
    .execute(db.pool())
    .await?;
    let ticket = WsTicket {
        ticket: issued,
        expires_at,
    };
    Ok((StatusCode::CREATED, Json(ticket)))
}

/// The caller of a socket: [`AuthUser`] from the `Authorization` header, or
/// from a `?ticket=`, redeemed (deleted) on first use.
pub struct WsUser(pub AuthUser);

impl<S> FromRequestParts<S> for WsUser
where
    Db: FromRef<S>,
    Sessions: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            return AuthUser::from_request_parts(parts, state).await.map(Self);
        }
        let query = parts.uri.query().unwrap_or_default();
        let ticket = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "ticket")
            .map(|(_, v)| v.into_owned())
            .ok_or(ApiError::Unauthorized(
                "missing Authorization header or ?ticket= (POST /v1/ws/ticket)",
            ))?;
        redeem(&Db::from_ref(state), &Sessions::from_ref(state), &ticket)
            .await
            .map(Self)
    }
}

/// The session a ticket was issued to, if the ticket is unused and
/// unexpired and the session still live. The ticket is gone either way.
async fn redeem(db: &Db, cache: &Sessions, ticket: &str) -> Result<AuthUser, ApiError> {
    let refused = ApiError::Unauthorized("unknown, used or expired ticket");
    let row: Option<(String, String, i64)> = sqlx::query_as(
        "DELETE FROM ws_tickets WHERE ticket_hash = $1 \
         RETURNING user_id, session_hash, expires_at",
    )
    .bind(sessions::token_hash(ticket))
    .fetch_optional(db.pool())
    .await?;
    let (user_id, session_hash, expires_at) = row.ok_or(refused)?;
    let now = now_ms();
    if expires_at <= now {
        return Err(ApiError::Unauthorized("unknown, used or expired ticket"));
    }
    match sessions::lookup(db, cache, &session_hash).await? {
        Some(s) if s.expires_at > now && s.user_id == user_id => {
            Ok(AuthUser::of_session(user_id, session_hash, s.expires_at))
        }
        _ => Err(ApiError::Unauthorized("the ticket's session has ended")),
    }
}

/// Opens the event socket (WebSocket upgrade). Events are JSON `{"type", "data"}`:
/// `message.new`, `message.read`, `presence`, `media.ready`, `media.failed`.
#[utoipa::path(get, path = "/v1/ws", tag = "chat",
    security(("bearer" = [])),
    params(("ticket" = Option<String>, Query, description = "A ticket from `POST /v1/ws/ticket`, for clients that cannot send an Authorization header")),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade request"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Cannot receive events now", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many live sockets for this user; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
async fn ws(
    State(state): State<AppState>,
    WsUser(user): WsUser,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let start = || listener::start(state.clone());
    state.realtime.ensure_started(start).await?;
    refuse_past_socket_cap(&state.db, &user.id).await?;
    // Clients only answer pings and close: small buffers instead of the
    // 128 KiB read buffer tungstenite gives each connection by default.
    let upgrade = upgrade
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER)
        .max_message_size(MAX_CLIENT_MESSAGE)
        // Else a single frame may be 16 MiB, buffered before the message cap applies.
        .max_frame_size(MAX_CLIENT_MESSAGE);
    Ok(upgrade.on_upgrade(move |socket| connection(state, user, socket)))
}

/// 429 when the user already holds [`MAX_SOCKETS_PER_USER`] live sockets,
/// counted on every process through the presence table.
async fn refuse_past_socket_cap(db: &Db, user_id: &str) -> Result<(), ApiError> {
    let live: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM ws_connections WHERE user_id = $1 AND expires_at > $2",
    )
    .bind(user_id)
    .bind(now_ms())
    .fetch_one(db.pool())
    .await?;
    if live >= MAX_SOCKETS_PER_USER {
        // A dropped socket's row lasts until its next missed heartbeat.
        return Err(ApiError::TooManyRequests { retry_after: 30 });
    }
    Ok(())
}

/// One socket's life: registered in the hub and the presence table, pumped
/// until it closes, is dropped, or its session ends (expiry here, revocation
/// through [`crate::core::sessions::ended`]), then removed from both.
async fn connection(state: AppState, user: AuthUser, socket: WebSocket) {
    let rt = &state.realtime;
    let config = rt.config;
    let user_id = user.id.clone();
    let conn_id = uuid::Uuid::now_v7().to_string();
    let (tx, rx) = mpsc::channel(config.queue.max(1));
    let cancel = CancellationToken::new();
    rt.hub
        .register(&user_id, &conn_id, user.session_hash(), tx, cancel.clone());
    state.metrics.ws_connections.inc();
    let expiry = end_at_expiry(user.expires_at, cancel.clone());
    let ttl = config.presence_ttl();
    match presence::connect(&state.db, &conn_id, &user_id, ttl).await {
        Ok(true) => announce(&state, &user_id).await,
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "cannot record a connection"),
    }
    let (sink, stream) = socket.split();
    let heartbeat = || rt.heartbeats.mark(&conn_id, &user_id);
    let end = pump(sink, stream, rx, &cancel, config, heartbeat).await;
    expiry.abort();
    tracing::debug!(%user_id, %conn_id, end, "socket closed");
    rt.hub.unregister(&user_id, &conn_id);
    state.metrics.ws_connections.dec();
    rt.heartbeats.forget(&conn_id);
    match presence::disconnect(&state.db, &conn_id, &user_id).await {
        Ok(true) => announce(&state, &user_id).await,
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "cannot record a disconnection"),
    }
}

/// Cancels the connection when its session expires (Unix ms `expires_at`).
fn end_at_expiry(expires_at: i64, cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
    let left = u64::try_from(expires_at - now_ms()).unwrap_or(0);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(left)).await;
        cancel.cancel();
    })
}

/// Tells the user's chat partners their presence changed.
async fn announce(state: &AppState, user_id: &str) {
    let result = async {
        let partners = model_presence::partners(&state.db, user_id).await?;
        let now = model_presence::status(&state.db, user_id).await?;
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
            _ = cancel.cancelled() => return ended(&mut sink, config).await,
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
            _ = cancel.cancelled() => return ended(&mut sink, config).await,
            _ = tokio::time::sleep(config.pong_timeout) => return "send timed out",
        }
    }
}

/// Closes a cancelled connection (a slow consumer, an ended session) with
/// a close frame, if the client takes it within a second (or the pong
/// timeout, when shorter).
async fn ended<Si: Sink<Message> + Unpin>(sink: &mut Si, config: WsConfig) -> &'static str {
    let frame = CloseFrame {
        code: close_code::POLICY,
        reason: "closed by the server".into(),
    };
    let patience = config.pong_timeout.min(Duration::from_secs(1));
    let _ = tokio::time::timeout(patience, sink.send(Message::Close(Some(frame)))).await;
    "ended by the server"
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
