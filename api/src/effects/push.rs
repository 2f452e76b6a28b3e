//! Push outbox entries, written inside the transaction (or the statement)
//! of what causes them, so a push is recorded exactly when its cause is: a
//! chat message, or a notification, to a user with no live connection. The
//! push resource's dispatcher ([`crate::push::dispatch`]) delivers them later.
//!
//! Every entry is skipped, in the same statement, when its user turned push
//! off for its kind (`notification_settings`); one caused by another user is
//! skipped when either blocks the other or the user mutes them; and one with
//! a collapse key merges into a waiting entry of the same key, so a burst of
//! likes on one post is one push ("A and 3 others liked your post").

use crate::core::sql::{AnyQuery, Params};
use crate::core::time::now_ms;
use crate::model::rules::{live_connection, not_blocked, not_muted, turned_off, Channel};
use sori_db::Backend;
use sqlx::AnyConnection;

/// One outbox entry of event `kind` (e.g. `message.new`) for a user, due at once.
#[derive(Debug, Clone)]
pub struct PushEntry<'a> {
    id: String,
    user_id: &'a str,
    kind: &'a str,
    payload: String,
    now: i64,
    unless_online: bool,
    /// Who caused it, and the backend (for the mute's clock).
    actor: Option<(&'a str, Backend)>,
    collapse_key: Option<String>,
}

impl<'a> PushEntry<'a> {
    /// An entry with `payload` for `user_id`, due now.
    pub fn new(user_id: &'a str, kind: &'a str, payload: &serde_json::Value) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            user_id,
            kind,
            payload: payload.to_string(),
            now: now_ms(),
            unless_online: false,
            actor: None,
            collapse_key: None,
        }
    }

    /// Written only when the user has no live connection at this moment,
    /// checked in the same statement: what a chat message to them does.
    pub fn unless_online(mut self) -> Self {
        self.unless_online = true;
        self
    }

    /// Caused by `actor`: not written across a block, nor when the user mutes them.
    pub fn from_actor(mut self, actor: &'a str, backend: Backend) -> Self {
        self.actor = Some((actor, backend));
        self
    }

    /// Merges into the user's waiting entry of the same `key`, if any,
    /// taking this payload and counting one more event (`collapsed`).
    pub fn collapse(mut self, key: String) -> Self {
        self.collapse_key = Some(key);
        self
    }

    /// Dated `now` (Unix ms) instead of the time of [`PushEntry::new`]: the
    /// time of its cause, when that is already a value of the statement.
    pub fn at(mut self, now: i64) -> Self {
        self.now = now;
        self
    }

    /// The `INSERT` of this entry, its values taking the next placeholders
    /// of `params`: for a statement that also writes the cause (a PostgreSQL
    /// `WITH`). Bind them with [`PushEntry::bind`] right after the values
    /// numbered before.
    pub fn insert_sql(&self, params: &mut Params) -> String {
        let [id, user, kind, payload, now, key] = [(); 6].map(|()| params.take());
        let mut conditions = vec![format!("NOT {}", turned_off(&user, &kind, Channel::Push))];
        if self.unless_online {
            conditions.push(format!("NOT {}", live_connection(&user, &now)));
        }
        if let Some((_, backend)) = self.actor {
            let actor = params.take();
            conditions.push(not_blocked(&user, &actor));
            conditions.push(not_muted(backend, &user, &actor));
        }
        let mut sql = format!(
            "INSERT INTO push_outbox (id, user_id, kind, payload, next_attempt_at, created_at, collapse_key) \
             SELECT {id}, {user}, {kind}, {payload}, {now}, {now}, {key} WHERE {}",
            conditions.join(" AND ")
        );
        if self.collapse_key.is_some() {
            // The partial unique index of 0020: an entry no dispatcher has tried yet.
            sql.push_str(
                " ON CONFLICT (user_id, collapse_key) WHERE collapse_key IS NOT NULL \
                 AND attempts = 0 AND delivered_at IS NULL AND dead_at IS NULL \
                 DO UPDATE SET payload = excluded.payload, collapsed = push_outbox.collapsed + 1",
            );
        }
        sql
    }

    /// Binds the values of [`PushEntry::insert_sql`], in its order.
    pub fn bind<'q>(&'q self, query: AnyQuery<'q>) -> AnyQuery<'q> {
        let query = query
            .bind(&self.id)
            .bind(self.user_id)
            .bind(self.kind)
            .bind(&self.payload)
            .bind(self.now)
            .bind(self.collapse_key.as_deref());
        match self.actor {
            Some((actor, _)) => query.bind(actor),
            None => query,
        }
    }

    /// Writes the entry on the connection of the transaction that writes its cause.
    pub async fn write(&self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        let sql = self.insert_sql(&mut Params::new());
        self.bind(sqlx::query(&sql)).execute(conn).await?;
        Ok(())
    }
}

/// SQL: the `push_outbox` entry was caused by `actor` (a column or
/// parameter): its payload names them as `actor_id`, as every entry a
/// notification writes does.
pub fn caused_by(actor: &str) -> String {
    format!("payload LIKE '%\"actor_id\":\"' || {actor} || '\"%'")
}

/// Withdraws the pushes not yet sent that either user caused for the other:
/// what a block does, so a like from before it does not arrive after it.
pub async fn withdraw_between(
    conn: &mut AnyConnection,
    a: &str,
    b: &str,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "DELETE FROM push_outbox WHERE delivered_at IS NULL AND dead_at IS NULL \
         AND ((user_id = $1 AND {}) OR (user_id = $2 AND {}))",
        caused_by("$2"),
        caused_by("$1")
    );
    sqlx::query(&sql).bind(a).bind(b).execute(conn).await?;
    Ok(())
}

/// Records a push of event `kind` with `payload` for `user_id`, due at
/// once. Call it on the connection of the transaction that writes the cause.
pub async fn enqueue(
    conn: &mut AnyConnection,
    user_id: &str,
    kind: &str,
    payload: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    PushEntry::new(user_id, kind, payload).write(conn).await
}
