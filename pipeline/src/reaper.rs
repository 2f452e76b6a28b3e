//! The reaper: finds media stuck in `processing` or `queued` that no worker
//! will finish.
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
//!
//! A media can also be stranded in `queued`: its job message was lost before
//! any worker claimed it (SQS retention ran out, the queue was purged, a
//! message dead-lettered by receives that never reached a claim). Nothing in
//! the database tells such a media from one waiting in a long backlog, and
//! re-sending for a backlog would inflate the queue depth the autoscaler
//! reads. So these are looked at only when the queue holds no message at all
//! (none visible, in flight or delayed): then a media `queued` and untouched
//! for `stale_after` has no message anywhere, and gets a new one (or fails,
//! with no attempts left). A busy queue postpones this until it drains.

use crate::clock::{millis, now_ms};
use crate::job::JobMessage;
use crate::media::{self, MediaError, MediaEvent, MediaState};
use crate::metrics::PipelineMetrics;
use crate::queue::{Queue, QueueError};
use sori_db::Db;
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
    /// Media given a new job message: back from `processing`, or `queued`
    /// with its message lost.
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
    state: String,
    /// What shows the row is still the one found stuck: the expired
    /// `lease_until` of a `processing` media, the old `updated_at` of a
    /// `queued` one.
    mark: i64,
}

impl Stuck {
    /// SQL: the row is still in the state it was found stuck in, unchanged
    /// since (compared with the bound `mark`, the parameter `param`).
    fn unchanged(&self, param: &str) -> String {
        let column = if self.state == "processing" {
            "lease_until"
        } else {
            "updated_at"
        };
        format!("state = '{}' AND {column} = {param}", self.state)
    }
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
    reap_state(db, queue, cfg, metrics, STUCK_PROCESSING, cutoff, &mut done).await?;
    let depth = queue.depth().await?;
    if depth.visible == 0 && depth.in_flight == 0 {
        reap_state(db, queue, cfg, metrics, STRANDED_QUEUED, cutoff, &mut done).await?;
    }
    Ok(done)
}

/// Media in `processing` whose lease expired before `$1`.
const STUCK_PROCESSING: &str =
    "SELECT id, owner_id, CAST(attempts AS BIGINT) AS attempts, failure, state, lease_until AS mark \
     FROM media WHERE state = 'processing' AND lease_until < $1 AND id > $2 ORDER BY id LIMIT $3";
/// Media in `queued` untouched since before `$1` (asked only of an empty queue).
const STRANDED_QUEUED: &str =
    "SELECT id, owner_id, CAST(attempts AS BIGINT) AS attempts, failure, state, updated_at AS mark \
     FROM media WHERE state = 'queued' AND updated_at < $1 AND id > $2 ORDER BY id LIMIT $3";

/// Re-queues or fails every media `select` finds, page by page.
async fn reap_state(
    db: &Db,
    queue: &impl Queue,
    cfg: &ReaperConfig,
    metrics: &PipelineMetrics,
    select: &str,
    cutoff: i64,
    done: &mut Reaped,
) -> Result<(), ReapError> {
    let mut after = String::new();
    loop {
        let batch: Vec<Stuck> = sqlx::query_as(select)
            .bind(cutoff)
            .bind(&after)
            .bind(BATCH)
            .fetch_all(db.pool())
            .await?;
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
            _ => return Ok(()),
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
                "reaped stuck media"
            ),
            Err(e) => tracing::warn!(error = %e, "reaper pass failed; retrying next interval"),
        }
    }
}

/// Marks the media `failed` if it is still the same stuck row.
async fn fail(db: &Db, row: &Stuck) -> Result<bool, ReapError> {
    let reason = abandoned_reason(row);
    // The state change and the owner's `media.failed` notification commit together.
    let mut tx = db.pool().begin().await?;
    let n = sqlx::query(&format!(
        "UPDATE media SET state = 'failed', failure = $1, lease_token = NULL, lease_until = NULL, \
                updated_at = $2 \
         WHERE id = $3 AND {}",
        row.unchanged("$4")
    ))
    .bind(&reason)
    .bind(now_ms())
    .bind(&row.id)
    .bind(row.mark)
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

/// Sends a new job message, then moves the media (back) to `queued`, freshly
/// touched, if it is still the same stuck row. In that order, a crash in
/// between leaves a message for a media with an expired lease (or a stranded
/// `queued` one), which a worker claims as usual; losing the race leaves a
/// duplicate message, which the claim ignores.
async fn requeue(db: &Db, queue: &impl Queue, row: &Stuck) -> Result<bool, ReapError> {
    let body = JobMessage::for_media(&row.id).to_body();
    queue.send(&body, Duration::ZERO).await?;
    let n = sqlx::query(&format!(
        "UPDATE media SET state = 'queued', lease_token = NULL, lease_until = NULL, updated_at = $1 \
         WHERE id = $2 AND {}",
        row.unchanged("$3")
    ))
    .bind(now_ms())
    .bind(&row.id)
    .bind(row.mark)
    .execute(db.pool())
    .await?
    .rows_affected();
    if n == 1 {
        tracing::warn!(media_id = %row.id, attempts = row.attempts, state = %row.state, "stuck media re-queued");
    }
    Ok(n == 1)
}

fn abandoned_reason(row: &Stuck) -> String {
    let what = if row.state == "processing" {
        "the worker stopped during"
    } else {
        "the job's message was lost after"
    };
    let mut reason = format!(
        "abandoned: {what} attempt {} and no retry is left",
        row.attempts
    );
    if let Some(last) = row.failure.as_deref().filter(|f| !f.is_empty()) {
        reason.push_str(&format!(" (last error: {last})"));
    }
    reason
}
