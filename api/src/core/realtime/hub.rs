//! This process's live WebSocket connections, by user: where events are
//! handed to sockets. Each connection has a bounded queue; a connection whose
//! queue is full is not read by its client fast enough and is cancelled, so
//! server memory stays bounded by connections × queue length.

use super::Event;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One connection's handles: its outgoing queue and the token that ends it.
struct Conn {
    tx: mpsc::Sender<Arc<str>>,
    cancel: CancellationToken,
}

/// Connections by user id, then connection id.
#[derive(Default)]
pub struct Hub {
    users: Mutex<HashMap<String, HashMap<String, Conn>>>,
}

impl Hub {
    /// Registers a connection's queue; events for `user_id` reach it from now on.
    pub fn register(
        &self,
        user_id: &str,
        conn_id: &str,
        tx: mpsc::Sender<Arc<str>>,
        cancel: CancellationToken,
    ) {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users
            .entry(user_id.to_owned())
            .or_default()
            .insert(conn_id.to_owned(), Conn { tx, cancel });
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

    /// Queues `event` on every connection of each user. Never waits: a full
    /// queue cancels its connection (a slow consumer), which then closes.
    pub fn deliver(&self, user_ids: &[String], event: &Event) {
        let text: Arc<str> = match serde_json::to_string(event) {
            Ok(text) => text.into(),
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize an event");
                return;
            }
        };
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        for user_id in user_ids {
            let Some(conns) = users.get_mut(user_id) else {
                continue;
            };
            conns.retain(|conn_id, conn| match conn.tx.try_send(text.clone()) {
                Ok(()) => true,
                Err(_) => {
                    tracing::info!(%user_id, %conn_id, "dropping a connection whose queue is full");
                    conn.cancel.cancel();
                    false
                }
            });
        }
    }

    /// Live connections of `user_id` in this process.
    pub fn connections(&self, user_id: &str) -> usize {
        let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users.get(user_id).map_or(0, HashMap::len)
    }
}
