//! The job queue, with SQS semantics on both backends: at-least-once delivery,
//! a visibility timeout that a running job extends, a receive count, delayed
//! retries, and dead letters after a maximum number of receives.
//!
//! [`EmbeddedQueue`] is a table in the database; SQS is the production
//! backend. [`JobQueue`] dispatches between them; the [`Queue`] trait lets the
//! worker run against a double. [`relay_outbox`] forwards messages written to
//! the `outbox` table (in the same transaction as a media state change) to a
//! queue that cannot join that transaction.

pub mod embedded;
/// The SQS backend (wired into [`JobQueue`] by the integration step).
pub mod sqs;

pub use embedded::EmbeddedQueue;

use sori_db::{Backend, Db};
use std::future::Future;
use std::time::Duration;

/// One received message. `receipt` identifies this receive only: after the
/// message was redelivered, an old receipt no longer works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub receipt: String,
    pub body: String,
    /// 1 on the first delivery.
    pub receive_count: u32,
}

/// How many messages wait, run, or died.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Ready to be received now.
    pub visible: u64,
    /// Received and not yet deleted, or delayed.
    pub in_flight: u64,
    /// In the dead-letter queue.
    pub dead: u64,
}

/// Why a queue call failed.
///
/// Recoverability: [`QueueError::Transient`] may succeed on retry (network,
/// throttling, a busy database); [`QueueError::Permanent`] will not
/// (misconfiguration, access denied); [`QueueError::StaleReceipt`] means the
/// message was redelivered to someone else or already deleted: the caller no
/// longer owns it and should let go.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    #[error("queue unavailable: {0}")]
    Transient(String),
    #[error("queue refused: {0}")]
    Permanent(String),
    #[error("receipt no longer valid (message redelivered or deleted)")]
    StaleReceipt,
}

/// The operations the worker needs; each has the meaning of the inherent
/// method of the same name on [`JobQueue`].
pub trait Queue: Send + Sync + 'static {
    fn send(
        &self,
        body: &str,
        delay: Duration,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
    fn receive(
        &self,
        max: u32,
        wait: Duration,
        visibility: Duration,
    ) -> impl Future<Output = Result<Vec<Delivery>, QueueError>> + Send;
    fn extend(
        &self,
        d: &Delivery,
        visibility: Duration,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
    fn delete(&self, d: &Delivery) -> impl Future<Output = Result<(), QueueError>> + Send;
    fn release(
        &self,
        d: &Delivery,
        delay: Duration,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
    fn depth(&self) -> impl Future<Output = Result<QueueDepth, QueueError>> + Send;
}

/// How a message joins the transaction of a media state change.
#[derive(Debug, Clone)]
pub enum Staging {
    /// Insert straight into this embedded queue's table.
    Table(EmbeddedQueue),
    /// Insert into `outbox`; [`relay_outbox`] sends it on afterwards.
    Outbox,
}

/// The configured job queue.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum JobQueue {
    Embedded(EmbeddedQueue),
    Sqs(sqs::SqsQueue),
}

impl JobQueue {
    /// Sends a message, visible after `delay`.
    pub async fn send(&self, body: &str, delay: Duration) -> Result<(), QueueError> {
        match self {
            Self::Embedded(q) => q.send(body, delay).await,
            Self::Sqs(q) => q.send(body, delay).await,
        }
    }

    /// Up to `max` messages, waiting up to `wait` for the first; each stays
    /// invisible to other receivers for `visibility`.
    pub async fn receive(
        &self,
        max: u32,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        match self {
            Self::Embedded(q) => q.receive(max, wait, visibility).await,
            Self::Sqs(q) => q.receive(max, wait, visibility).await,
        }
    }

    /// Keeps a running job's message invisible for `visibility` from now.
    pub async fn extend(&self, d: &Delivery, visibility: Duration) -> Result<(), QueueError> {
        match self {
            Self::Embedded(q) => q.extend(d, visibility).await,
            Self::Sqs(q) => q.extend(d, visibility).await,
        }
    }

    /// Removes a handled message.
    pub async fn delete(&self, d: &Delivery) -> Result<(), QueueError> {
        match self {
            Self::Embedded(q) => q.delete(d).await,
            Self::Sqs(q) => q.delete(d).await,
        }
    }

    /// Gives a message back, visible again after `delay` (a retry's backoff,
    /// or zero when shutting down).
    pub async fn release(&self, d: &Delivery, delay: Duration) -> Result<(), QueueError> {
        match self {
            Self::Embedded(q) => q.release(d, delay).await,
            Self::Sqs(q) => q.release(d, delay).await,
        }
    }

    pub async fn depth(&self) -> Result<QueueDepth, QueueError> {
        match self {
            Self::Embedded(q) => q.depth().await,
            Self::Sqs(q) => q.depth().await,
        }
    }

    /// How an enqueue joins a database transaction with this queue.
    pub fn staging(&self) -> Staging {
        match self {
            Self::Embedded(q) => Staging::Table(q.clone()),
            // SQS cannot join a database transaction: the message goes into
            // the outbox with the state change, and the relay sends it.
            Self::Sqs(_) => Staging::Outbox,
        }
    }

    /// True when messages go through the outbox, so a relay must run.
    pub fn needs_relay(&self) -> bool {
        matches!(self.staging(), Staging::Outbox)
    }
}

impl Queue for JobQueue {
    async fn send(&self, body: &str, delay: Duration) -> Result<(), QueueError> {
        JobQueue::send(self, body, delay).await
    }
    async fn receive(
        &self,
        max: u32,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        JobQueue::receive(self, max, wait, visibility).await
    }
    async fn extend(&self, d: &Delivery, visibility: Duration) -> Result<(), QueueError> {
        JobQueue::extend(self, d, visibility).await
    }
    async fn delete(&self, d: &Delivery) -> Result<(), QueueError> {
        JobQueue::delete(self, d).await
    }
    async fn release(&self, d: &Delivery, delay: Duration) -> Result<(), QueueError> {
        JobQueue::release(self, d, delay).await
    }
    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        JobQueue::depth(self).await
    }
}

/// Rows moved per [`relay_outbox_once`] call.
const RELAY_BATCH: i64 = 50;
/// Pause of the relay when the outbox is empty or the queue refuses.
const RELAY_IDLE: Duration = Duration::from_millis(500);

/// Sends up to one batch of outbox rows to `queue`, deleting the rows sent;
/// returns how many were sent. At least once: a crash between send and
/// delete sends that row again, which the idempotent job absorbs.
///
/// Every API and worker process runs a relay. On PostgreSQL the batch is
/// locked (`FOR UPDATE SKIP LOCKED`) until its rows are deleted, so each row
/// is sent by one relay: without the lock every relay sent every row, and
/// the queue held a copy per process, inflating the backlog that autoscaling
/// reads. SQLite has one process per database, so nothing competes there,
/// and a read transaction held across the sends would fail its delete as
/// soon as any other write landed meanwhile (`SQLITE_BUSY_SNAPSHOT`).
pub async fn relay_outbox_once(db: &Db, queue: &impl Queue) -> Result<usize, QueueError> {
    match db.backend() {
        Backend::Postgres => relay_locked(db, queue).await,
        Backend::Sqlite => relay_unlocked(db, queue).await,
    }
}

const SELECT_OUTBOX: &str = "SELECT id, body FROM outbox ORDER BY id LIMIT $1";
const DELETE_OUTBOX: &str = "DELETE FROM outbox WHERE id = $1";

async fn relay_locked(db: &Db, queue: &impl Queue) -> Result<usize, QueueError> {
    let mut tx = db.pool().begin().await.map_err(sql_error)?;
    let rows: Vec<(String, String)> =
        sqlx::query_as(&format!("{SELECT_OUTBOX} FOR UPDATE SKIP LOCKED"))
            .bind(RELAY_BATCH)
            .fetch_all(&mut *tx)
            .await
            .map_err(sql_error)?;
    let (sent, failure) = send_rows(queue, &rows).await;
    // The rows sent before a failure are deleted too, so they are not sent twice.
    for (id, _) in &rows[..sent] {
        sqlx::query(DELETE_OUTBOX)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(sql_error)?;
    }
    tx.commit().await.map_err(sql_error)?;
    failure.map_or(Ok(sent), Err)
}

async fn relay_unlocked(db: &Db, queue: &impl Queue) -> Result<usize, QueueError> {
    let rows: Vec<(String, String)> = sqlx::query_as(SELECT_OUTBOX)
        .bind(RELAY_BATCH)
        .fetch_all(db.pool())
        .await
        .map_err(sql_error)?;
    for (id, body) in &rows {
        queue.send(body, Duration::ZERO).await?;
        sqlx::query(DELETE_OUTBOX)
            .bind(id)
            .execute(db.pool())
            .await
            .map_err(sql_error)?;
    }
    Ok(rows.len())
}

/// Sends rows in order until the first failure: how many were sent, and the failure.
async fn send_rows(queue: &impl Queue, rows: &[(String, String)]) -> (usize, Option<QueueError>) {
    for (sent, (_, body)) in rows.iter().enumerate() {
        if let Err(e) = queue.send(body, Duration::ZERO).await {
            return (sent, Some(e));
        }
    }
    (rows.len(), None)
}

/// Runs [`relay_outbox_once`] until `stop` resolves, pausing when idle or on errors.
pub async fn relay_outbox(db: Db, queue: impl Queue, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        let pause = match relay_outbox_once(&db, &queue).await {
            Ok(n) if n as i64 == RELAY_BATCH => Duration::ZERO,
            Ok(_) => RELAY_IDLE,
            Err(e) => {
                tracing::warn!(error = %e, "outbox relay: will retry");
                RELAY_IDLE
            }
        };
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// Database errors as queue errors: configuration and decoding problems are
/// permanent, everything else (pool timeouts, lost connections, a locked
/// SQLite file) transient.
pub(crate) fn sql_error(e: sqlx::Error) -> QueueError {
    use sqlx::Error as E;
    match e {
        E::Configuration(_)
        | E::ColumnNotFound(_)
        | E::ColumnDecode { .. }
        | E::Decode(_)
        | E::TypeNotFound { .. } => QueueError::Permanent(e.to_string()),
        _ => QueueError::Transient(e.to_string()),
    }
}
