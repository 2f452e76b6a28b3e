//! A media's processing state in the database, and every transition of it.
//!
//! States: `awaiting_upload` → `queued` → `processing` → `ready` | `failed`.
//! [`mark_queued`] changes the state and enqueues the job in one transaction.
//! A worker takes a media with [`claim`], which hands out a lease (token +
//! expiry) that the worker's heartbeat renews; every later write is
//! conditional on still holding that lease, so two workers racing on one
//! media produce one result, and a crashed worker's lease simply runs out.
//!
//! Reaching a final state (`ready` or `failed`) writes a `media.ready` /
//! `media.failed` row into `notifications` for the owner in the same
//! transaction, and the functions that do so return a [`MediaEvent`] for the
//! caller to [`MediaEvents::publish`] once committed. Because every such
//! write is conditional on the previous state, a duplicate delivery or a lost
//! race writes no second row and returns no event.

use crate::clock::{millis, now_ms};
use crate::job::JobMessage;
use crate::queue::{sql_error, QueueError, Staging};
use sori_db::Db;
use sqlx::{AnyConnection, Row};
use std::time::Duration;
use tokio::sync::broadcast;

/// Where a media is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaState {
    AwaitingUpload,
    Queued,
    Processing,
    Ready,
    Failed,
    /// Its owner deleted their account: its objects are being deleted and
    /// the row goes next; no worker may take it.
    Erasing,
}

impl MediaState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingUpload => "awaiting_upload",
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Ready => "ready",
            Self::Failed => "failed",
            Self::Erasing => "erasing",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "awaiting_upload" => Self::AwaitingUpload,
            "queued" => Self::Queued,
            "processing" => Self::Processing,
            "ready" => Self::Ready,
            "failed" => Self::Failed,
            "erasing" => Self::Erasing,
            _ => return None,
        })
    }

    /// `ready`, `failed` or `erasing`: nothing more will happen without a
    /// new request.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Ready | Self::Failed | Self::Erasing)
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

/// How long the longest-waiting queued media has waited since it was queued
/// (or re-queued), at `now`; zero when none waits. What users see as
/// "processing" before any worker starts, whatever the queue's backend.
pub async fn oldest_queued_wait(db: &Db, now: i64) -> Result<Duration, MediaError> {
    let since: Option<i64> =
        sqlx::query_scalar("SELECT MIN(updated_at) FROM media WHERE state = 'queued'")
            .fetch_one(db.pool())
            .await?;
    let waited = since.map_or(0, |t| now.saturating_sub(t).max(0));
    Ok(Duration::from_millis(u64::try_from(waited).unwrap_or(0)))
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

/// Marks the media `ready` with its results if the lease still holds, and
/// writes the owner's `media.ready` notification in the same transaction.
/// `None` when another worker took over (its result wins).
pub async fn complete(
    db: &Db,
    lease: &Lease,
    done: &Finished<'_>,
) -> Result<Option<MediaEvent>, MediaError> {
    let mut tx = db.pool().begin().await?;
    let owner: Option<String> = sqlx::query_scalar(
        "UPDATE media SET state = 'ready', report = $1, bars = $2, duration_ms = $3, output_prefix = $4, \
                failure = NULL, lease_token = NULL, lease_until = NULL, updated_at = $5 \
         WHERE id = $6 AND state = 'processing' AND lease_token = $7 RETURNING owner_id",
    )
    .bind(done.report)
    .bind(done.bars)
    .bind(done.duration_ms)
    .bind(done.output_prefix)
    .bind(now_ms())
    .bind(&lease.media_id)
    .bind(&lease.token)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(owner_id) = owner else {
        tx.rollback().await?;
        return Ok(None);
    };
    let body = serde_json::json!({ "duration_ms": done.duration_ms });
    let event = MediaEvent {
        media_id: lease.media_id.clone(),
        owner_id,
        state: MediaState::Ready,
    };
    notify(&mut tx, &event, &body).await?;
    tx.commit().await?;
    Ok(Some(event))
}

/// Ends the lease: `failed` with `reason` (final, with the owner's
/// `media.failed` notification in the same transaction), or back to `queued`
/// with the reason kept as the last failure (a retry follows). `Ok(None)`
/// when the lease was lost, or when nothing final happened.
pub async fn release_lease(
    db: &Db,
    lease: &Lease,
    to: MediaState,
    reason: &str,
) -> Result<Option<MediaEvent>, MediaError> {
    let mut tx = db.pool().begin().await?;
    let owner: Option<String> = sqlx::query_scalar(
        "UPDATE media SET state = $1, failure = $2, lease_token = NULL, lease_until = NULL, updated_at = $3 \
         WHERE id = $4 AND state = 'processing' AND lease_token = $5 RETURNING owner_id",
    )
    .bind(to.as_str())
    .bind(reason)
    .bind(now_ms())
    .bind(&lease.media_id)
    .bind(&lease.token)
    .fetch_optional(&mut *tx)
    .await?;
    let event = match owner {
        Some(owner_id) if to.is_final() => Some(MediaEvent {
            media_id: lease.media_id.clone(),
            owner_id,
            state: to,
        }),
        _ => None,
    };
    if let Some(event) = &event {
        notify(&mut tx, event, &failure_body(event.state, reason)).await?;
    }
    tx.commit().await?;
    Ok(event)
}

/// Marks a media `failed` whatever its lease (the job's message is about to
/// be dead-lettered), with the owner's `media.failed` notification in the
/// same transaction. A media already `ready` or `failed` stays as it is, so
/// a repeated call notifies nobody twice; `None` then.
pub async fn fail_unless_ready(
    db: &Db,
    media_id: &str,
    reason: &str,
) -> Result<Option<MediaEvent>, MediaError> {
    let mut tx = db.pool().begin().await?;
    let owner: Option<String> = sqlx::query_scalar(
        "UPDATE media SET state = 'failed', failure = $1, lease_token = NULL, lease_until = NULL, updated_at = $2 \
         WHERE id = $3 AND state NOT IN ('ready', 'failed') RETURNING owner_id",
    )
    .bind(reason)
    .bind(now_ms())
    .bind(media_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(owner_id) = owner else {
        tx.rollback().await?;
        return Ok(None);
    };
    let event = MediaEvent {
        media_id: media_id.to_owned(),
        owner_id,
        state: MediaState::Failed,
    };
    notify(&mut tx, &event, &failure_body(MediaState::Failed, reason)).await?;
    tx.commit().await?;
    Ok(Some(event))
}

/// A media reached a final state. Published on [`MediaEvents`] after the
/// state change (and its notification row) committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaEvent {
    pub media_id: String,
    /// The user to tell (the notification's recipient).
    pub owner_id: String,
    /// [`MediaState::Ready`] or [`MediaState::Failed`].
    pub state: MediaState,
}

impl MediaEvent {
    /// The notification kind and WebSocket event name: `media.ready` or `media.failed`.
    pub fn kind(&self) -> &'static str {
        match self.state {
            MediaState::Ready => "media.ready",
            _ => "media.failed",
        }
    }
}

/// The in-process channel of [`MediaEvent`]s: the worker pool publishes, and
/// the API's WebSocket (the chat issue) subscribes to forward `media.ready`
/// to the owner's live connections. Cheap to clone; clones share one channel.
///
/// Best effort by design: an event published while nobody listens is
/// dropped, and a subscriber that falls more than the capacity behind gets
/// `RecvError::Lagged`. The durable record is the notification row, written
/// in the same transaction as the state change; clients catch up from it.
/// Only workers in the same process publish here (`sori serve`); with
/// separate `sori api` and `sori worker` processes the API sees no events.
#[derive(Debug, Clone)]
pub struct MediaEvents {
    tx: broadcast::Sender<MediaEvent>,
}

impl MediaEvents {
    /// Events a slow subscriber may fall behind by before it lags.
    pub const DEFAULT_CAPACITY: usize = 1024;

    pub fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity.max(1)).0,
        }
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<MediaEvent> {
        self.tx.subscribe()
    }

    /// Sends to the current subscribers; none is not an error.
    pub fn publish(&self, event: MediaEvent) {
        let _ = self.tx.send(event);
    }
}

impl Default for MediaEvents {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

fn failure_body(state: MediaState, reason: &str) -> serde_json::Value {
    match state {
        MediaState::Failed => serde_json::json!({ "reason": reason }),
        _ => serde_json::json!({}),
    }
}

/// Writes the owner's notification of `event`, inside the caller's
/// transaction; the post the media belongs to, if any, is linked. An owner
/// with no live connection (the app closed while the clip was processed)
/// also gets a push, unless they turned media pushes off: the API's push
/// outbox entry (`sori_api::effects::push`), written here by hand because
/// this crate sits below the API.
pub(crate) async fn notify(
    conn: &mut AnyConnection,
    event: &MediaEvent,
    body: &serde_json::Value,
) -> Result<(), MediaError> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO notifications (id, user_id, kind, post_id, media_id, body, created_at) \
         VALUES ($1, $2, $3, (SELECT id FROM posts WHERE media_id = $4), $4, $5, $6)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&event.owner_id)
    .bind(event.kind())
    .bind(&event.media_id)
    .bind(body.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let mut payload = serde_json::json!({ "media_id": event.media_id });
    if let Some(reason) = body.get("reason") {
        payload["reason"] = reason.clone();
    }
    sqlx::query(
        "INSERT INTO push_outbox (id, user_id, kind, payload, next_attempt_at, created_at) \
         SELECT $1, $2, $3, $4, $5, $5 \
         WHERE NOT EXISTS (SELECT 1 FROM notification_settings \
             WHERE user_id = $2 AND kind = 'media' AND push = 0) \
         AND NOT EXISTS (SELECT 1 FROM ws_connections WHERE user_id = $2 AND expires_at > $5)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&event.owner_id)
    .bind(event.kind())
    .bind(payload.to_string())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}
