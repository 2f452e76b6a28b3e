//! A media's processing state in the database, and every transition of it.
//!
//! States: `awaiting_upload` → `queued` → `processing` → `ready` | `failed`.
//! [`mark_queued`] changes the state and enqueues the job in one transaction.
//! A worker takes a media with [`claim`], which hands out a lease (token +
//! expiry) that the worker's heartbeat renews; every later write is
//! conditional on still holding that lease, so two workers racing on one
//! media produce one result, and a crashed worker's lease simply runs out.

use crate::db::Db;
use crate::job::JobMessage;
use crate::queue::{sql_error, QueueError, Staging};
use crate::store::local::now_ms;
use sqlx::Row;
use std::time::Duration;

/// Where a media is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaState {
    AwaitingUpload,
    Queued,
    Processing,
    Ready,
    Failed,
}

impl MediaState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingUpload => "awaiting_upload",
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "awaiting_upload" => Self::AwaitingUpload,
            "queued" => Self::Queued,
            "processing" => Self::Processing,
            "ready" => Self::Ready,
            "failed" => Self::Failed,
            _ => return None,
        })
    }

    /// `ready` or `failed`: nothing more will happen without a new request.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Ready | Self::Failed)
    }
}

/// Why a media state change failed.
///
/// Recoverability: [`MediaError::Db`] may be transient (retry);
/// [`MediaError::NotFound`] and [`MediaError::Corrupt`] are final.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    #[error("media not found")]
    NotFound,
    #[error("media row holds an unknown state {0:?}")]
    Corrupt(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

impl From<MediaError> for QueueError {
    fn from(e: MediaError) -> Self {
        match e {
            MediaError::Db(e) => sql_error(e),
            other => QueueError::Permanent(other.to_string()),
        }
    }
}

/// What [`mark_queued`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// The media moved to `queued` and its job message was enqueued.
    Now,
    /// The media was already past `awaiting_upload` (a repeated "complete"):
    /// nothing changed.
    Already(MediaState),
}

/// Moves a media from `awaiting_upload` to `queued` and enqueues its job in
/// the same transaction: into the embedded queue's table, or into the outbox
/// that [`crate::queue::relay_outbox`] forwards to an external queue. A crash
/// at any point leaves either both or neither. Idempotent.
pub async fn mark_queued(
    db: &Db,
    staging: &Staging,
    media_id: &str,
) -> Result<Enqueued, MediaError> {
    let body = JobMessage::for_media(media_id).to_body();
    let mut tx = db.pool().begin().await?;
    let moved = sqlx::query("UPDATE media SET state = 'queued', updated_at = $1 WHERE id = $2 AND state = 'awaiting_upload'")
        .bind(now_ms())
        .bind(media_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if moved == 0 {
        tx.rollback().await?;
        return Ok(Enqueued::Already(
            state_of(db, media_id).await?.ok_or(MediaError::NotFound)?,
        ));
    }
    match staging {
        Staging::Table(queue) => queue.send_with(&mut tx, &body, Duration::ZERO).await?,
        Staging::Outbox => {
            sqlx::query("INSERT INTO outbox (id, body, created_at) VALUES ($1, $2, $3)")
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(&body)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    if let Staging::Table(queue) = staging {
        queue.notify_sent();
    }
    Ok(Enqueued::Now)
}

/// The media's state, or `None` when there is no such media.
pub async fn state_of(db: &Db, media_id: &str) -> Result<Option<MediaState>, MediaError> {
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM media WHERE id = $1")
        .bind(media_id)
        .fetch_optional(db.pool())
        .await?;
    state
        .map(|s| MediaState::parse(&s).ok_or(MediaError::Corrupt(s)))
        .transpose()
}

/// A worker's hold on one media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub media_id: String,
    pub token: String,
    /// This claim's attempt number (1, 2, …): the output version it writes.
    pub attempt: i64,
}

/// What [`claim`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    Won(Lease),
    /// Already `ready` or `failed`: a duplicate delivery, nothing to do.
    Finished(MediaState),
    /// Another worker holds a live lease for this long (ms).
    Busy {
        remaining_ms: i64,
    },
    Missing,
}

/// Takes a media for processing for `lease` (renewed by [`renew`]): from
/// `awaiting_upload` (an S3 event may arrive before "complete"), `queued`, or
/// `processing` whose lease ran out (its worker died).
pub async fn claim(db: &Db, media_id: &str, lease: Duration) -> Result<Claim, MediaError> {
    let now = now_ms();
    let token = uuid::Uuid::new_v4().simple().to_string();
    let row = sqlx::query(
        "UPDATE media SET state = 'processing', attempts = attempts + 1, lease_token = $1, \
                lease_until = $2, updated_at = $3 \
         WHERE id = $4 AND (state IN ('awaiting_upload', 'queued') \
               OR (state = 'processing' AND (lease_until IS NULL OR lease_until < $3))) \
         RETURNING CAST(attempts AS BIGINT) AS attempts",
    )
    .bind(&token)
    .bind(now + millis(lease))
    .bind(now)
    .bind(media_id)
    .fetch_optional(db.pool())
    .await?;
    if let Some(row) = row {
        let attempt: i64 = row.try_get("attempts")?;
        return Ok(Claim::Won(Lease {
            media_id: media_id.to_owned(),
            token,
            attempt,
        }));
    }
    let row: Option<(String, Option<i64>)> =
        sqlx::query_as("SELECT state, lease_until FROM media WHERE id = $1")
            .bind(media_id)
            .fetch_optional(db.pool())
            .await?;
    let Some((state, until)) = row else {
        return Ok(Claim::Missing);
    };
    match MediaState::parse(&state) {
        Some(s) if s.is_final() => Ok(Claim::Finished(s)),
        Some(_) => Ok(Claim::Busy {
            remaining_ms: until.map_or(0, |u| (u - now).max(0)),
        }),
        None => Err(MediaError::Corrupt(state)),
    }
}

/// Extends a lease; `false` when it was lost to another worker.
pub async fn renew(db: &Db, lease: &Lease, duration: Duration) -> Result<bool, MediaError> {
    let n = sqlx::query("UPDATE media SET lease_until = $1 WHERE id = $2 AND lease_token = $3 AND state = 'processing'")
        .bind(now_ms() + millis(duration))
        .bind(&lease.media_id)
        .bind(&lease.token)
        .execute(db.pool())
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// What a successful job records.
#[derive(Debug, Clone)]
pub struct Finished<'a> {
    /// The processing report, JSON text.
    pub report: &'a str,
    /// The 100-bar summary, JSON text.
    pub bars: &'a str,
    pub duration_ms: i64,
    pub output_prefix: &'a str,
}

/// Marks the media `ready` with its results, in one statement, if the lease
/// still holds; `false` when another worker took over (its result wins).
pub async fn complete(db: &Db, lease: &Lease, done: &Finished<'_>) -> Result<bool, MediaError> {
    let n = sqlx::query(
        "UPDATE media SET state = 'ready', report = $1, bars = $2, duration_ms = $3, output_prefix = $4, \
                failure = NULL, lease_token = NULL, lease_until = NULL, updated_at = $5 \
         WHERE id = $6 AND state = 'processing' AND lease_token = $7",
    )
    .bind(done.report)
    .bind(done.bars)
    .bind(done.duration_ms)
    .bind(done.output_prefix)
    .bind(now_ms())
    .bind(&lease.media_id)
    .bind(&lease.token)
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Ends the lease: `failed` with `reason` (final), or back to `queued` with
/// the reason kept as the last failure (a retry follows).
pub async fn release_lease(
    db: &Db,
    lease: &Lease,
    to: MediaState,
    reason: &str,
) -> Result<bool, MediaError> {
    let n = sqlx::query(
        "UPDATE media SET state = $1, failure = $2, lease_token = NULL, lease_until = NULL, updated_at = $3 \
         WHERE id = $4 AND state = 'processing' AND lease_token = $5",
    )
    .bind(to.as_str())
    .bind(reason)
    .bind(now_ms())
    .bind(&lease.media_id)
    .bind(&lease.token)
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Marks a media `failed` whatever its lease (the job's message is about to
/// be dead-lettered); a media already `ready` stays so.
pub async fn fail_unless_ready(db: &Db, media_id: &str, reason: &str) -> Result<(), MediaError> {
    sqlx::query(
        "UPDATE media SET state = 'failed', failure = $1, lease_token = NULL, lease_until = NULL, updated_at = $2 \
         WHERE id = $3 AND state <> 'ready'",
    )
    .bind(reason)
    .bind(now_ms())
    .bind(media_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}
