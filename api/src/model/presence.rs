//! Presence as others see it: whether a user is online on any device and
//! when last seen, and who is told when it changes (their chat partners).
//! The connection rows behind it are kept by [`crate::realtime::presence`].

use crate::model::rules::{live_connection, not_blocked};
use serde::Serialize;
use sori_db::Db;
use sori_pipeline::clock::now_ms;
use utoipa::ToSchema;

/// Chat partners told about a user's presence change, most recent rooms first.
const MAX_PARTNERS: i64 = 1_000;

/// Whether `user_id` has a live connection at `now` ([`live_connection`]).
pub async fn is_live(db: &Db, user_id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "SELECT CAST(CASE WHEN {} THEN 1 ELSE 0 END AS BIGINT)",
        live_connection("$1", "$2")
    );
    let live: i64 = sqlx::query_scalar(&sql)
        .bind(user_id)
        .bind(now)
        .fetch_one(db.pool())
        .await?;
    Ok(live == 1)
}

/// The users who share a room with `user_id` and no block with them: those
/// told of their presence (a block hides presence as it hides the room);
/// nobody when the user hides it (`show_presence` off).
pub async fn partners(db: &Db, user_id: &str) -> Result<Vec<String>, sqlx::Error> {
    room_partners(
        db,
        user_id,
        "AND EXISTS (SELECT 1 FROM users s WHERE s.id = $1 AND s.show_presence = 1)",
    )
    .await
}

/// The same users whatever the user's setting: those to tell when it changes.
pub async fn partners_even_if_hidden(db: &Db, user_id: &str) -> Result<Vec<String>, sqlx::Error> {
    room_partners(db, user_id, "").await
}

/// The chat partners of `user_id` with no block between them, with `extra`
/// conditions on `$1`.
async fn room_partners(db: &Db, user_id: &str, extra: &str) -> Result<Vec<String>, sqlx::Error> {
    let sql = format!(
        "SELECT o.user_id FROM chat_members me JOIN chat_members o \
         ON o.room_id = me.room_id AND o.user_id <> me.user_id \
         WHERE me.user_id = $1 AND {} {extra} \
         ORDER BY me.last_activity DESC LIMIT $2",
        not_blocked("me.user_id", "o.user_id")
    );
    sqlx::query_scalar(&sql)
        .bind(user_id)
        .bind(MAX_PARTNERS)
        .fetch_all(db.pool())
        .await
}

/// A user's presence.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Presence {
    pub user_id: String,
    /// True while any of the user's devices has a live connection.
    pub online: bool,
    /// Unix ms of the last heartbeat or disconnect; null if never connected.
    pub last_seen: Option<i64>,
}

impl Presence {
    /// What others see of a user who hides their presence: offline, never seen.
    pub fn hidden(user_id: &str) -> Self {
        Self {
            user_id: user_id.to_owned(),
            online: false,
            last_seen: None,
        }
    }
}

pub async fn status(db: &Db, user_id: &str) -> Result<Presence, sqlx::Error> {
    let online = is_live(db, user_id, now_ms()).await?;
    let last_seen = sqlx::query_scalar("SELECT last_seen FROM presence WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(db.pool())
        .await?;
    Ok(Presence {
        user_id: user_id.to_owned(),
        online,
        last_seen,
    })
}
