//! The embedded queue: messages are rows of `queue_messages`, so enqueueing
//! joins the caller's database transaction and survives any crash.
//!
//! A receive claims visible rows in one statement, pushing their `visible_at`
//! forward by the visibility timeout, adding one to `receive_count` and
//! stamping a fresh `receipt`. On PostgreSQL the candidate rows are chosen
//! `FOR UPDATE SKIP LOCKED`, so concurrent receivers in any number of
//! processes never get the same message; SQLite serializes writers, so the
//! same single `UPDATE … RETURNING` is atomic there. A message received
//! `max_receives` times and visible again is dead-lettered (`dead_at` set) by
//! the next receive instead of being delivered; the claim itself also skips
//! such rows, so a message released between the two statements of a receive
//! is never delivered a surplus time (it dead-letters on the receive after).
//!
//! Long polling: a receive that finds nothing sleeps in short steps up to
//! `wait`, waking at once when this process sends a message.

use super::{sql_error, Delivery, QueueDepth, QueueError};
use crate::clock::{millis, now_ms};
use sori_db::{Backend, Db};
use sqlx::Row;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// SQS's default maximum receives before dead-lettering.
pub const DEFAULT_MAX_RECEIVES: u32 = 5;
/// Sleep between polls of an empty queue during a long poll.
const POLL_STEP: Duration = Duration::from_millis(200);

/// A named queue in the database.
#[derive(Clone)]
pub struct EmbeddedQueue {
    db: Db,
    name: Arc<str>,
    max_receives: u32,
    poll_step: Duration,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for EmbeddedQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedQueue")
            .field("name", &self.name)
            .field("max_receives", &self.max_receives)
            .finish_non_exhaustive()
    }
}

impl EmbeddedQueue {
    /// The queue `name` in `db`; a message received `max_receives` times
    /// without being deleted goes to the dead letters.
    pub fn new(db: Db, name: &str, max_receives: u32) -> Self {
        Self {
            db,
            name: name.into(),
            max_receives: max_receives.max(1),
            poll_step: POLL_STEP,
            wake: Arc::new(Notify::new()),
        }
    }

    /// How often an empty long poll looks again (other processes' sends are
    /// seen this late at most).
    pub fn with_poll_step(mut self, step: Duration) -> Self {
        self.poll_step = step;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn max_receives(&self) -> u32 {
        self.max_receives
    }

    /// Wakes this process's long polls: a message was committed.
    pub fn notify_sent(&self) {
        self.wake.notify_waiters();
    }

    /// Inserts a message through `conn`, which may be inside a transaction:
    /// the message exists exactly when that transaction commits.
    pub async fn send_with(
        &self,
        conn: &mut sqlx::AnyConnection,
        body: &str,
        delay: Duration,
    ) -> Result<(), sqlx::Error> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO queue_messages (id, queue, body, visible_at, receive_count, created_at) \
             VALUES ($1, $2, $3, $4, 0, $5)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(&*self.name)
        .bind(body)
        .bind(now + millis(delay))
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    pub async fn send(&self, body: &str, delay: Duration) -> Result<(), QueueError> {
        let mut conn = self.db.pool().acquire().await.map_err(sql_error)?;
        self.send_with(&mut conn, body, delay)
            .await
            .map_err(sql_error)?;
        self.notify_sent();
        Ok(())
    }

    pub async fn receive(
        &self,
        max: u32,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before looking, so a send in between is not missed.
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let got = self.receive_now(max, visibility).await?;
            let now = tokio::time::Instant::now();
            if !got.is_empty() || now >= deadline {
                return Ok(got);
            }
            let step = self.poll_step.min(deadline - now);
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(step) => {}
            }
        }
    }

    /// One attempt: dead-letter what is due, then claim up to `max` messages.
    async fn receive_now(
        &self,
        max: u32,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = now_ms();
        sqlx::query(
            "UPDATE queue_messages SET dead_at = $1 \
             WHERE queue = $2 AND dead_at IS NULL AND visible_at <= $1 AND receive_count >= $3",
        )
        .bind(now)
        .bind(&*self.name)
        .bind(i64::from(self.max_receives))
        .execute(self.db.pool())
        .await
        .map_err(sql_error)?;
        let lock = match self.db.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE queue_messages \
             SET visible_at = $1, receive_count = receive_count + 1, receipt = $2 || id \
             WHERE id IN (SELECT id FROM queue_messages \
                          WHERE queue = $3 AND dead_at IS NULL AND visible_at <= $4 \
                            AND receive_count < $6 \
                          ORDER BY visible_at LIMIT $5{lock}) \
             RETURNING body, CAST(receive_count AS BIGINT) AS receive_count, receipt"
        );
        // One random token per call; `token || id` makes each row's receipt unique.
        let token = format!("{}.", uuid::Uuid::new_v4().simple());
        let rows = sqlx::query(&sql)
            .bind(now + millis(visibility))
            .bind(&token)
            .bind(&*self.name)
            .bind(now)
            .bind(i64::from(max))
            .bind(i64::from(self.max_receives))
            .fetch_all(self.db.pool())
            .await
            .map_err(sql_error)?;
        rows.iter().map(delivery_of).collect()
    }

    pub async fn extend(&self, d: &Delivery, visibility: Duration) -> Result<(), QueueError> {
        let n = sqlx::query(
            "UPDATE queue_messages SET visible_at = $1 WHERE receipt = $2 AND dead_at IS NULL",
        )
        .bind(now_ms() + millis(visibility))
        .bind(&d.receipt)
        .execute(self.db.pool())
        .await
        .map_err(sql_error)?
        .rows_affected();
        owned(n)
    }

    pub async fn delete(&self, d: &Delivery) -> Result<(), QueueError> {
        let n = sqlx::query("DELETE FROM queue_messages WHERE receipt = $1")
            .bind(&d.receipt)
            .execute(self.db.pool())
            .await
            .map_err(sql_error)?
            .rows_affected();
        owned(n)
    }

    /// Makes the message visible after `delay` and voids the receipt.
    pub async fn release(&self, d: &Delivery, delay: Duration) -> Result<(), QueueError> {
        let n = sqlx::query(
            "UPDATE queue_messages SET visible_at = $1, receipt = NULL WHERE receipt = $2 AND dead_at IS NULL",
        )
        .bind(now_ms() + millis(delay))
        .bind(&d.receipt)
        .execute(self.db.pool())
        .await
        .map_err(sql_error)?
        .rows_affected();
        if n > 0 {
            self.notify_sent();
        }
        owned(n)
    }

    /// Counts by state; delayed messages count as in flight.
    pub async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let row = sqlx::query(
            "SELECT COUNT(CASE WHEN dead_at IS NULL AND visible_at <= $1 THEN 1 END) AS visible, \
                    COUNT(CASE WHEN dead_at IS NULL AND visible_at > $1 THEN 1 END) AS in_flight, \
                    COUNT(dead_at) AS dead \
             FROM queue_messages WHERE queue = $2",
        )
        .bind(now_ms())
        .bind(&*self.name)
        .fetch_one(self.db.pool())
        .await
        .map_err(sql_error)?;
        let count = |name: &str| -> Result<u64, QueueError> {
            let n: i64 = row.try_get(name).map_err(sql_error)?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        Ok(QueueDepth {
            visible: count("visible")?,
            in_flight: count("in_flight")?,
            dead: count("dead")?,
        })
    }

    /// Dead-lettered message bodies, oldest first, keyset-paginated by id:
    /// pass the last id of a page as `after` for the next.
    pub async fn dead_letters(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, String)>, QueueError> {
        sqlx::query_as(
            "SELECT id, body FROM queue_messages \
             WHERE queue = $1 AND dead_at IS NOT NULL AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(&*self.name)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit.min(1000)))
        .fetch_all(self.db.pool())
        .await
        .map_err(sql_error)
    }
}

impl super::Queue for EmbeddedQueue {
    async fn send(&self, body: &str, delay: Duration) -> Result<(), QueueError> {
        EmbeddedQueue::send(self, body, delay).await
    }
    async fn receive(
        &self,
        max: u32,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        EmbeddedQueue::receive(self, max, wait, visibility).await
    }
    async fn extend(&self, d: &Delivery, visibility: Duration) -> Result<(), QueueError> {
        EmbeddedQueue::extend(self, d, visibility).await
    }
    async fn delete(&self, d: &Delivery) -> Result<(), QueueError> {
        EmbeddedQueue::delete(self, d).await
    }
    async fn release(&self, d: &Delivery, delay: Duration) -> Result<(), QueueError> {
        EmbeddedQueue::release(self, d, delay).await
    }
    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        EmbeddedQueue::depth(self).await
    }
}

fn delivery_of(row: &sqlx::any::AnyRow) -> Result<Delivery, QueueError> {
    let count: i64 = row.try_get("receive_count").map_err(sql_error)?;
    Ok(Delivery {
        receipt: row.try_get("receipt").map_err(sql_error)?,
        body: row.try_get("body").map_err(sql_error)?,
        receive_count: u32::try_from(count).unwrap_or(u32::MAX),
    })
}

fn owned(rows_affected: u64) -> Result<(), QueueError> {
    if rows_affected == 0 {
        Err(QueueError::StaleReceipt)
    } else {
        Ok(())
    }
}
