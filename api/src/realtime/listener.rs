//! Forwarding to this process's sockets, started with the first socket
//! ([`crate::core::realtime::Realtime::ensure_started`]): events published through the fanout by
//! any process, media events of a worker pool in this process, and the
//! heartbeat writer of [`presence`].

use super::presence;
use crate::core::error::ApiError;
use crate::core::realtime::{fanout, media_event, Envelope, Event, Fanout};
use crate::core::sessions;
use crate::core::state::AppState;
use crate::effects::events;
use crate::model::messages;
use std::time::Duration;

/// Spawns the forwarding tasks; fails when the PostgreSQL listener cannot connect.
pub async fn start(state: AppState) -> Result<(), ApiError> {
    let rt = &state.realtime;
    tokio::spawn(presence::flush_heartbeats(
        rt.heartbeats.clone(),
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
                Ok(e) => {
                    hub.deliver(std::slice::from_ref(&e.owner_id), &media_event(&e));
                }
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
            // sqlx retries a refused connection until its pool's 30 s acquire
            // timeout: a socket request should not hang that long.
            let connect = sqlx::postgres::PgListener::connect(&url);
            let mut listener = tokio::time::timeout(LISTEN_TIMEOUT, connect)
                .await
                .map_err(|_| cannot_listen(sqlx::Error::PoolTimedOut))?
                .map_err(cannot_listen)?;
            listener
                .listen(fanout::CHANNEL)
                .await
                .map_err(cannot_listen)?;
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

/// Hands an envelope to this process's sockets, reading back a message that
/// was too large to travel in the notification.
async fn forward(state: &AppState, envelope: Envelope) {
    let event = match (envelope.event, envelope.message_id) {
        (Some(event), _) => event,
        (None, Some(id)) => match messages::find(state, &id).await {
            Ok(Some(item)) => events::message_new(&item),
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, message_id = %id, "cannot read a message to deliver");
                return;
            }
        },
        (None, None) => return,
    };
    if event.kind == sessions::SESSIONS_ENDED {
        end_sessions(state, &envelope.user_ids, &event);
        return;
    }
    if event.kind.starts_with("media.") {
        // A worker process's media event: the owner's feed shows the post's new state.
        for user_id in &envelope.user_ids {
            state.feed_pages.forget(user_id);
        }
    }
    let queued = state.realtime.hub.deliver(&envelope.user_ids, &event);
    if let (true, Some(published)) = (queued > 0, envelope.published_ms) {
        let ms = (sori_pipeline::clock::now_ms() - published).max(0);
        state.metrics.ws_delivery.observe(ms as f64 / 1000.0);
    }
}

/// Ends revoked sessions in this process: forgets them from the session
/// cache and closes their sockets. Not delivered to any client.
fn end_sessions(state: &AppState, user_ids: &[String], event: &Event) {
    let hashes: Vec<String> = event.data["sessions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h.as_str().map(str::to_owned))
        .collect();
    for hash in &hashes {
        state.sessions.forget(hash);
    }
    for user_id in user_ids {
        let closed = state.realtime.hub.end_sessions(user_id, &hashes);
        if closed > 0 {
            tracing::info!(%user_id, closed, "closed the sockets of ended sessions");
        }
    }
}

/// How long opening the event listener may take before a socket request is
/// answered 503.
const LISTEN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The database's error goes to the log; the client learns only that events
/// cannot be received now (a 503 never carries internal error text).
fn cannot_listen(e: sqlx::Error) -> ApiError {
    tracing::warn!(error = %e, "cannot listen for events");
    ApiError::Unavailable("real-time events are unavailable now; retry")
}
