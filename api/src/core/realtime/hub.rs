//! This process's live WebSocket connections, by user: where events are
//! handed to sockets. Each connection has a bounded queue; a connection whose
//! queue is full is not read by its client fast enough and is cancelled, so
//! server memory stays bounded by connections × queue length.

use super::Event;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One connection's handles: its outgoing queue, the token that ends it,
/// and the session (token hash) it was opened with.
struct Conn {
    tx: mpsc::Sender<Arc<str>>,
    cancel: CancellationToken,
    session: String,
}

/// Connections by user id, then connection id.
#[derive(Default)]
pub struct Hub {
    users: Mutex<HashMap<String, HashMap<String, Conn>>>,
}

impl Hub {
    /// Registers a connection's queue; events for `user_id` reach it from
    /// now on, until it or its `session` ends.
    pub fn register(
        &self,
        user_id: &str,
        conn_id: &str,
        session: &str,
        tx: mpsc::Sender<Arc<str>>,
        cancel: CancellationToken,
    ) {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let conn = Conn {
            tx,
            cancel,
            session: session.to_owned(),
        };
        users
            .entry(user_id.to_owned())
            .or_default()
            .insert(conn_id.to_owned(), conn);
    }

    /// Closes `user_id`'s connections opened with one of `sessions` (token
    /// hashes): they were revoked. Returns how many were closed.
    pub fn end_sessions(&self, user_id: &str, sessions: &[String]) -> usize {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let Some(conns) = users.get_mut(user_id) else {
            return 0;
        };
        let before = conns.len();
        conns.retain(|_, conn| {
            let ended = sessions.contains(&conn.session);
            if ended {
                conn.cancel.cancel();
            }
            !ended
        });
        before - conns.len()
    }

    pub fn unregister(&self, user_id: &str, conn_id: &str) {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(conns) = users.get_mut(user_id) {
            conns.remove(conn_id);
            if conns.is_empty() {
                users.remove(user_id);
            }
        }
    }

    /// Queues `event` on every connection of each user; returns on how
    /// many. Never waits: a full queue cancels its connection (a slow
    /// consumer), which then closes.
    pub fn deliver(&self, user_ids: &[String], event: &Event) -> usize {
        let text: Arc<str> = match serde_json::to_string(event) {
            Ok(text) => text.into(),
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize an event");
                return 0;
            }
        };
        let mut queued = 0;
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        for user_id in user_ids {
            let Some(conns) = users.get_mut(user_id) else {
                continue;
            };
            conns.retain(|conn_id, conn| match conn.tx.try_send(text.clone()) {
                Ok(()) => {
                    queued += 1;
                    true
                }
                Err(_) => {
                    tracing::info!(%user_id, %conn_id, "dropping a connection whose queue is full");
                    conn.cancel.cancel();
                    false
                }
            });
        }
        queued
    }

    /// Live connections of `user_id` in this process.
    pub fn connections(&self, user_id: &str) -> usize {
        let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users.get(user_id).map_or(0, HashMap::len)
    }
}
