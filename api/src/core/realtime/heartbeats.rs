//! Pongs waiting to be written as presence heartbeats: a socket's pong only
//! marks its connection here, and one task of the process writes all marked
//! connections at a time ([`crate::realtime::presence`]), so heartbeats cost
//! one transaction per flush instead of one write per pong.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The connections of this process that answered a ping since the last
/// flush (connection id → user id); bounded by the sockets it holds.
#[derive(Clone, Default)]
pub struct Heartbeats(Arc<Mutex<HashMap<String, String>>>);

impl Heartbeats {
    /// Marks a connection alive; written at the next flush.
    pub fn mark(&self, conn_id: &str, user_id: &str) {
        self.lock().insert(conn_id.to_owned(), user_id.to_owned());
    }

    /// Drops a closed connection's pending heartbeat.
    pub fn forget(&self, conn_id: &str) {
        self.lock().remove(conn_id);
    }

    /// Every marked connection, unmarking them: what a flush writes.
    pub fn take(&self) -> HashMap<String, String> {
        std::mem::take(&mut *self.lock())
    }

    /// Marks again the connections of a flush that failed, for the next try
    /// (a connection marked since keeps its newer mark).
    pub fn restore(&self, beats: HashMap<String, String>) {
        let mut pending = self.lock();
        for (conn, user) in beats {
            pending.entry(conn).or_insert(user);
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, String>> {
        // The map holds no invariant a panicking holder could break.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
