//! The reaper: finds media stuck in `processing` that no worker will finish.
//!
//! A worker that dies mid-job leaves its media in `processing` with a lease
//! that simply runs out; normally its message becomes visible again, another
//! worker claims the expired lease and the job finishes. That fails when the
//! message is gone: the worker was killed on the last allowed receive (the
//! message then dead-letters without anyone marking the media), or the message
//! was deleted or lost outside our control. Such a media would stay
//! `processing` forever.
//!
//! Each pass takes the media whose lease expired more than
//! [`ReaperConfig::stale_after`] ago and, if it still has attempts left,
//! re-queues it (a new job message, then `queued`); otherwise marks it
//! `failed` with a reason. Re-queueing a job whose old message is in fact still
//! alive (a long backlog) only causes a duplicate delivery, which the claim
//! turns into a no-op; so the reaper never needs to see the queue's contents
//! and works the same over the embedded queue and SQS. Every write is
//! conditional on the row still being stuck, so a worker that claims the
//! media meanwhile, or a second reaper in another process, wins cleanly.

use crate::clock::{millis, now_ms};
use crate::db::Db;
use crate::job::JobMessage;
use crate::media::{self, MediaError, MediaEvent, MediaState};
use crate::metrics::PipelineMetrics;
use crate::queue::{Queue, QueueError};
use std::time::Duration;

/// Rows looked at per query; a pass pages through all of them by id.
const BATCH: i64 = 100;
/// The shortest time a lease must have been expired before the reaper acts.
const MIN_STALE: Duration = Duration::from_secs(15 * 60);
/// How often the worker pool runs a pass.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// When and how the reaper acts.
#[derive(Debug, Clone)]
pub struct ReaperConfig {
    /// Time between passes.
    pub interval: Duration,
    /// How long a lease must have been expired before its media counts as
    /// stuck. Longer than a live message needs to come back (visibility plus
    /// the longest retry delay), so a job that will be redelivered anyway is
    /// left alone.
    pub stale_after: Duration,
    /// A stuck media that has been claimed this many times is failed rather
    /// than re-queued (the worker's `max_receives`).
    pub max_attempts: u32,
}

impl ReaperConfig {
    /// Values derived from the worker's own: `stale_after` is twice the time a
    /// live message needs to reappear, and at least 15 minutes.
    pub fn for_worker(cfg: &crate::worker::WorkerConfig) -> Self {
        let reappear = cfg.visibility.saturating_add(cfg.backoff_max);
        Self {
            interval: DEFAULT_INTERVAL,
            stale_after: reappear.saturating_mul(2).max(MIN_STALE),
            max_attempts: cfg.max_receives.max(1),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reaped {
    /// Media given a new job message and moved back to `queued`.
    pub requeued: usize,
    /// Media out of attempts, now `failed`.
    pub failed: usize,
}

/// Why a pass stopped early.
///
/// Recoverability: both variants are usually transient (the database or the
/// queue was unreachable); the next pass picks up where this one stopped,
/// since nothing is written before the stuck row is re-checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReapError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
}

/// One stuck media as the reaper sees it.
#[derive(Debug, sqlx::FromRow)]
struct Stuck {
    id: String,
    owner_id: String,
    attempts: i64,
    failure: Option<String>,
    lease_until: i64,
}

/// Runs one pass over every stuck media.
pub async fn reap_once(
    db: &Db,
    queue: &impl Queue,
    cfg: &ReaperConfig,
    metrics: &PipelineMetrics,
) -> Result<Reaped, ReapError> {
    let cutoff = now_ms() - millis(cfg.stale_after);
    let mut done = Reaped::default();
    let mut after = String::new();
    loop {
        let batch = stuck_batch(db, cutoff, &after).await?;
        for row in &batch {
            if row.attempts >= i64::from(cfg.max_attempts) {
                if fail(db, row).await? {
                    metrics.failed("abandoned", false);
                    done.failed += 1;
                }
            } else if requeue(db, queue, row).await? {
                metrics.failed("abandoned", true);
                done.requeued += 1;
            }
        }
        match batch.last() {
            Some(last) if batch.len() as i64 == BATCH => after.clone_from(&last.id),
            _ => return Ok(done),
        }
    }
}

/// Runs a pass every `cfg.interval`, forever (the worker pool aborts it).
pub async fn run(db: &Db, queue: &impl Queue, cfg: &ReaperConfig, metrics: &PipelineMetrics) {
    loop {
        tokio::time::sleep(cfg.interval).await;
        match reap_once(db, queue, cfg, metrics).await {
            Ok(r) if r == Reaped::default() => {}
            Ok(r) => tracing::warn!(
                requeued = r.requeued,
                failed = r.failed,
                "reaped media stuck in processing"
            ),
            Err(e) => tracing::warn!(error = %e, "reaper pass failed; retrying next interval"),
        }
    }
}

async fn stuck_batch(db: &Db, cutoff: i64, after: &str) -> Result<Vec<Stuck>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, owner_id, CAST(attempts AS BIGINT) AS attempts, failure, lease_until FROM media \
         WHERE state = 'processing' AND lease_until < $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(cutoff)
    .bind(after)
    .bind(BATCH)
    .fetch_all(db.pool())
    .await
}

/// Marks the media `failed` if it is still the same stuck claim.
async fn fail(db: &Db, row: &Stuck) -> Result<bool, ReapError> {
    let reason = abandoned_reason(row);
    // The state change and the owner's `media.failed` notification commit together.
    let mut tx = db.pool().begin().await?;
    let n = sqlx::query(
        "UPDATE media SET state = 'failed', failure = $1, lease_token = NULL, lease_until = NULL, \
                updated_at = $2 \
         WHERE id = $3 AND state = 'processing' AND lease_until = $4",
    )
    .bind(&reason)
    .bind(now_ms())
    .bind(&row.id)
    .bind(row.lease_until)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 1 {
        let event = MediaEvent {
            media_id: row.id.clone(),
            owner_id: row.owner_id.clone(),
            state: MediaState::Failed,
        };
        media::notify(&mut tx, &event, &serde_json::json!({ "reason": reason }))
            .await
            .map_err(|e| match e {
                MediaError::Db(e) => ReapError::Db(e),
                other => ReapError::Db(sqlx::Error::Protocol(other.to_string())),
            })?;
    }
    tx.commit().await?;
    if n == 1 {
        tracing::warn!(media_id = %row.id, %reason, "stuck media failed");
    }
    Ok(n == 1)
}

/// Sends a new job message, then moves the media back to `queued` if it is
/// still the same stuck claim. In that order, a crash in between leaves a
/// message for a media with an expired lease, which a worker claims as usual;
/// losing the race leaves a duplicate message, which the claim ignores.
async fn requeue(db: &Db, queue: &impl Queue, row: &Stuck) -> Result<bool, ReapError> {
    let body = JobMessage::for_media(&row.id).to_body();
    queue.send(&body, Duration::ZERO).await?;
    let n = sqlx::query(
        "UPDATE media SET state = 'queued', lease_token = NULL, lease_until = NULL, updated_at = $1 \
         WHERE id = $2 AND state = 'processing' AND lease_until = $3",
    )
    .bind(now_ms())
    .bind(&row.id)
    .bind(row.lease_until)
    .execute(db.pool())
    .await?
    .rows_affected();
    if n == 1 {
        tracing::warn!(media_id = %row.id, attempts = row.attempts, "stuck media re-queued");
    }
    Ok(n == 1)
}

fn abandoned_reason(row: &Stuck) -> String {
    let mut reason = format!(
        "abandoned: the worker stopped during attempt {} and no retry is left",
        row.attempts
    );
    if let Some(last) = row.failure.as_deref().filter(|f| !f.is_empty()) {
        reason.push_str(&format!(" (last error: {last})"));
    }
    reason
}
