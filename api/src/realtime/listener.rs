//! Forwarding to this process's sockets, started with the first socket
//! ([`crate::core::realtime::Realtime::ensure_started`]): events published through the fanout by
//! any process, media events of a worker pool in this process, and the
//! heartbeat writer of [`presence`].

use super::presence;
use crate::core::error::ApiError;
use crate::core::realtime::{fanout, media_event, Envelope, Fanout};
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
    if event.kind.starts_with("media.") {
        // A worker process's media event: the owner's feed shows the post's new state.
        for user_id in &envelope.user_ids {
            state.feed_pages.forget(user_id);
        }
    }
    state.realtime.hub.deliver(&envelope.user_ids, &event);
}
