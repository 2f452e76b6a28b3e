//! Push outbox entries, written inside the transaction (or the statement)
//! of what causes them, so a push is recorded exactly when its cause is: a
//! chat message to a member with no live connection. The push resource's
//! dispatcher ([`crate::push::dispatch`]) delivers them later.

use crate::core::sql::{AnyQuery, Params};
use crate::core::time::now_ms;
use crate::model::rules::live_connection;
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
        }
    }

    /// Written only when the user has no live connection at this moment,
    /// checked in the same statement: what a chat message to them does.
    pub fn unless_online(mut self) -> Self {
        self.unless_online = true;
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
        let [id, user, kind, payload, now] = [(); 5].map(|()| params.take());
        let mut sql = format!(
            "INSERT INTO push_outbox (id, user_id, kind, payload, next_attempt_at, created_at) \
             SELECT {id}, {user}, {kind}, {payload}, {now}, {now}"
        );
        if self.unless_online {
            sql.push_str(&format!(" WHERE NOT {}", live_connection(&user, &now)));
        }
        sql
    }

    /// Binds the values of [`PushEntry::insert_sql`], in its order.
    pub fn bind<'q>(&'q self, query: AnyQuery<'q>) -> AnyQuery<'q> {
        query
            .bind(&self.id)
            .bind(self.user_id)
            .bind(self.kind)
            .bind(&self.payload)
            .bind(self.now)
    }

    /// Writes the entry on the connection of the transaction that writes its cause.
    pub async fn write(&self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        let sql = self.insert_sql(&mut Params::new());
        self.bind(sqlx::query(&sql)).execute(conn).await?;
        Ok(())
    }
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
