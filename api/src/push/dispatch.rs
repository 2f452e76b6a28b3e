//! The dispatcher: drains the push outbox through a [`PushSender`].
//!
//! Any number of API processes may run one on the same database. An entry is
//! claimed by a conditional `UPDATE` that moves its `next_attempt_at` to the
//! end of a lease only if it still holds the value just read, so exactly one
//! dispatcher wins it (SQLite serializes writers; PostgreSQL re-checks the
//! condition after the row lock). A dispatcher that dies mid-send leaves the
//! entry to be claimed again when the lease ends: delivery is at least once,
//! and receivers deduplicate by entry id.
//!
//! After a send the entry is marked delivered; on a transient failure its
//! error and a next attempt with exponential backoff and jitter (or later, if
//! the receiver asked with `Retry-After`, up to [`MAX_RETRY_AFTER`]) are recorded;
//! a permanent failure, or the last allowed attempt failing, marks it dead.
//! Entries are never deleted unsent: only delivered ones past the retention
//! are purged.

use super::fcm::{self, Content};
use super::{DeviceTarget, PushRequest, PushSender, SendError};
use crate::core::metrics::Metrics;
use futures_util::{FutureExt, StreamExt};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use rand::Rng;
use sori_db::Db;
use sori_pipeline::clock::{millis, now_ms};
use sqlx::Row;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

/// Devices of one user a push goes to, at most (registration keeps fewer).
const MAX_DEVICES: i64 = 50;
/// The longest wait a receiver's `Retry-After` imposes on one entry's next
/// attempt: an hour, so a bad header cannot park pushes for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Delivered entries deleted per purge statement.
const PURGE_BATCH: i64 = 500;

/// How the dispatcher paces itself.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// Entries claimed per pass.
    pub batch: i64,
    /// Sends in flight at once.
    pub concurrency: usize,
    /// How long a claimed entry is hidden from other dispatchers. Must exceed
    /// the sender's timeout, or a slow send may be repeated by another process.
    pub lease: Duration,
    /// Pause after a pass that found less than a full batch.
    pub poll: Duration,
    /// Delay before the second attempt; doubles per attempt up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Attempts before an entry is marked dead.
    pub max_attempts: u32,
    /// How long delivered entries are kept.
    pub retention: Duration,
    /// How often delivered entries past the retention are purged.
    pub purge_every: Duration,
    /// How often the entries waiting to be sent are counted for `/metrics`.
    pub count_every: Duration,
    /// Whether a chat message's text goes to the push gateway (FCM, the
    /// webhook) and onto the lock screen (`SORI_PUSH_MESSAGE_TEXT`). Off by
    /// default: the notification says who wrote, not what.
    pub message_text: bool,
    /// How long an entry with a collapse key (a like, a follow…) waits after
    /// its first event before it is sent, so a burst becomes one push
    /// (`SORI_PUSH_COLLAPSE_SECS`).
    pub collapse_window: Duration,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            batch: 100,
            concurrency: 16,
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(3600),
            max_attempts: 12,
            retention: Duration::from_secs(7 * 86_400),
            purge_every: Duration::from_secs(600),
            count_every: Duration::from_secs(15),
            message_text: false,
            collapse_window: Duration::from_secs(30),
        }
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Entries this dispatcher won.
    pub claimed: u64,
    pub delivered: u64,
    /// Failed and scheduled again.
    pub retried: u64,
    /// Failed for good.
    pub dead: u64,
}

/// Pushes delivered, retried and dead, and the outbox's waiting entries,
/// for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct PushMetrics {
    pub delivered: Counter,
    pub retried: Counter,
    pub dead: Counter,
    pub pending: Gauge,
}

impl PushMetrics {
    /// Adds these to `metrics` (done by [`Dispatcher::with_metrics`]).
    pub fn register(&self, metrics: &Metrics) {
        metrics.register(
            "push_delivered",
            "Push outbox entries a sender accepted",
            self.delivered.clone(),
        );
        metrics.register(
            "push_retried",
            "Push sends that failed and were scheduled again",
            self.retried.clone(),
        );
        metrics.register(
            "push_dead",
            "Push outbox entries given up (refused, or out of attempts)",
            self.dead.clone(),
        );
        metrics.register(
            "push_outbox_pending",
            "Push outbox entries neither delivered nor given up (due or backing off)",
            self.pending.clone(),
        );
    }
}

/// An entry this dispatcher holds until `lease_until`.
struct Claimed {
    id: String,
    user_id: String,
    kind: String,
    payload: String,
    attempts: i64,
    /// How many events a collapsed entry stands for (1 when not collapsed).
    collapsed: i64,
    /// When its first event happened.
    created_at: i64,
    lease_until: i64,
}

/// How a send ended, as recorded.
enum Outcome {
    Delivered,
    Retried,
    Dead,
}

/// Drains the outbox of one database through one sender.
pub struct Dispatcher<S> {
    db: Db,
    sender: Arc<S>,
    config: DispatchConfig,
    metrics: PushMetrics,
}

impl<S: PushSender> Dispatcher<S> {
    pub fn new(db: Db, sender: S, config: DispatchConfig) -> Self {
        Self {
            db,
            sender: Arc::new(sender),
            config,
            metrics: PushMetrics::default(),
        }
    }

    /// Counts this dispatcher's outcomes on the API's `/metrics`.
    pub fn with_metrics(self, metrics: &Metrics) -> Self {
        self.metrics.register(metrics);
        self
    }

    /// One pass: claims up to a batch of due entries and sends them.
    pub async fn run_once(&self) -> Result<Pass, sqlx::Error> {
        let claimed = self.claim(now_ms()).await?;
        let mut pass = Pass {
            claimed: claimed.len() as u64,
            ..Pass::default()
        };
        let outcomes: Vec<Result<Outcome, sqlx::Error>> = futures_util::stream::iter(claimed)
            .map(|entry| async move { self.deliver(entry).await })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        for outcome in outcomes {
            match outcome? {
                Outcome::Delivered => pass.delivered += 1,
                Outcome::Retried => pass.retried += 1,
                Outcome::Dead => pass.dead += 1,
            }
        }
        Ok(pass)
    }

    /// Runs passes until `stop` resolves, purging delivered entries past the
    /// retention every `purge_every` and counting the waiting ones every
    /// `count_every`. Failures are logged and retried.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut next_purge = tokio::time::Instant::now();
        let mut next_count = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_count {
                next_count += self.config.count_every;
                match self.pending().await {
                    Ok(n) => {
                        self.metrics.pending.set(n);
                    }
                    Err(e) => tracing::debug!(error = %e, "cannot count the push outbox"),
                }
            }
            let full = match self.run_once().await {
                Ok(pass) => pass.claimed as i64 >= self.config.batch,
                Err(e) => {
                    tracing::warn!(error = %e, "push dispatch pass failed; retrying");
                    false
                }
            };
            if tokio::time::Instant::now() >= next_purge {
                next_purge += self.config.purge_every;
                if let Err(e) = self.purge(now_ms()).await {
                    tracing::warn!(error = %e, "push outbox purge failed; retrying later");
                }
            }
            let pause = if full {
                Duration::ZERO
            } else {
                self.config.poll
            };
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Entries neither delivered nor dead (the partial index of the
    /// dispatcher's scan holds exactly these).
    pub async fn pending(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM push_outbox WHERE delivered_at IS NULL AND dead_at IS NULL",
        )
        .fetch_one(self.db.pool())
        .await
    }

    /// Deletes delivered entries older than the retention; returns how many.
    pub async fn purge(&self, now: i64) -> Result<u64, sqlx::Error> {
        let cutoff = now - millis(self.config.retention);
        let mut purged = 0;
        loop {
            let done = sqlx::query(
                "DELETE FROM push_outbox WHERE id IN (SELECT id FROM push_outbox \
                 WHERE delivered_at IS NOT NULL AND delivered_at < $1 LIMIT $2)",
            )
            .bind(cutoff)
            .bind(PURGE_BATCH)
            .execute(self.db.pool())
            .await?;
            purged += done.rows_affected();
            if done.rows_affected() < PURGE_BATCH as u64 {
                return Ok(purged);
            }
        }
    }

    /// The due entries this dispatcher wins, each counted as one more
    /// attempt. An entry with a collapse key is due once its collapse window
    /// has passed since its first event.
    async fn claim(&self, now: i64) -> Result<Vec<Claimed>, sqlx::Error> {
        let due = sqlx::query(
            "SELECT id, next_attempt_at FROM push_outbox \
             WHERE delivered_at IS NULL AND dead_at IS NULL AND next_attempt_at <= $1 \
             AND (collapse_key IS NULL OR created_at <= $3) \
             ORDER BY next_attempt_at, id LIMIT $2",
        )
        .bind(now)
        .bind(self.config.batch)
        .bind(now - millis(self.config.collapse_window))
        .fetch_all(self.db.pool())
        .await?;
        let lease_until = now + millis(self.config.lease);
        let mut won = Vec::with_capacity(due.len());
        for row in due {
            let id: String = row.try_get("id")?;
            let seen: i64 = row.try_get("next_attempt_at")?;
            if let Some(entry) = self.claim_one(id, seen, lease_until).await? {
                won.push(entry);
            }
        }
        Ok(won)
    }

    /// Takes the lease on one entry if no one changed it since it was read.
    async fn claim_one(
        &self,
        id: String,
        seen: i64,
        lease_until: i64,
    ) -> Result<Option<Claimed>, sqlx::Error> {
        let row = sqlx::query(
            "UPDATE push_outbox SET next_attempt_at = $1, attempts = attempts + 1 \
             WHERE id = $2 AND next_attempt_at = $3 AND delivered_at IS NULL AND dead_at IS NULL \
             RETURNING user_id, kind, payload, CAST(attempts AS BIGINT) AS attempts, \
             CAST(collapsed AS BIGINT) AS collapsed, created_at",
        )
        .bind(lease_until)
        .bind(&id)
        .bind(seen)
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|r| {
            Ok(Claimed {
                id,
                user_id: r.try_get("user_id")?,
                kind: r.try_get("kind")?,
                payload: r.try_get("payload")?,
                attempts: r.try_get("attempts")?,
                collapsed: r.try_get("collapsed")?,
                created_at: r.try_get("created_at")?,
                lease_until,
            })
        })
        .transpose()
    }

    /// Sends one claimed entry and records the outcome.
    async fn deliver(&self, entry: Claimed) -> Result<Outcome, sqlx::Error> {
        let request = self.request(&entry).await?;
        if request.devices.is_empty() {
            // Nothing to reach: done, with the reason on record.
            return self.finish(&entry, Some("no registered device")).await;
        }
        // A panicking sender fails this attempt, not the dispatcher.
        let result = AssertUnwindSafe(self.sender.send(&request))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(SendError::transient("sender panicked")));
        match result {
            Ok(()) => self.finish(&entry, None).await,
            Err(SendError::Transient { why, retry_after })
                if entry.attempts < i64::from(self.config.max_attempts) =>
            {
                // The receiver's Retry-After, when later than our backoff.
                let backoff = backoff(&self.config, entry.attempts);
                let asked = retry_after.unwrap_or_default().min(MAX_RETRY_AFTER);
                self.retry(&entry, &why, backoff.max(asked)).await
            }
            Err(e) => self.give_up(&entry, &e.to_string()).await,
        }
    }

    /// The request for an entry: its event and every device of its user.
    async fn request(&self, entry: &Claimed) -> Result<PushRequest, sqlx::Error> {
        let mut data: serde_json::Value =
            serde_json::from_str(&entry.payload).unwrap_or(serde_json::Value::Null);
        if !self.config.message_text {
            if let Some(fields) = data.as_object_mut() {
                fields.remove("text");
            }
        }
        if entry.collapsed > 1 {
            let people = self.people(entry, &data).await?;
            if let Some(fields) = data.as_object_mut() {
                fields.insert("count".to_owned(), people.into());
            }
        }
        let name = match data.get("sender_name") {
            Some(_) => None,
            None => {
                let who = data.get("sender_id").or_else(|| data.get("actor_id"));
                self.display_name(who).await?
            }
        };
        let content = Content::of_entry(&entry.id, &entry.kind, &data, name.as_deref());
        let rows = sqlx::query(
            "SELECT device_id, platform, push_token FROM devices WHERE user_id = $1 \
             ORDER BY device_id LIMIT $2",
        )
        .bind(&entry.user_id)
        .bind(MAX_DEVICES)
        .fetch_all(self.db.pool())
        .await?;
        let devices = rows
            .iter()
            .map(|r| {
                let push_token: String = r.try_get("push_token")?;
                Ok(DeviceTarget {
                    device_id: r.try_get("device_id")?,
                    platform: r.try_get("platform")?,
                    fcm: fcm::message(&push_token, &content),
                    push_token,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(PushRequest {
            id: entry.id.clone(),
            user_id: entry.user_id.clone(),
            kind: entry.kind.clone(),
            data,
            devices,
        })
    }

    /// How many different people a collapsed entry stands for (two
    /// comments of one person count once): the actors of its user's
    /// notifications of its kind, on its post, since its first event.
    async fn people(&self, entry: &Claimed, data: &serde_json::Value) -> Result<i64, sqlx::Error> {
        let post = data.get("post_id").and_then(serde_json::Value::as_str);
        sqlx::query_scalar(
            "SELECT CAST(COUNT(DISTINCT actor_id) AS BIGINT) FROM notifications \
             WHERE user_id = $1 AND kind = $2 AND created_at >= $3 AND (post_id = $4 OR $4 IS NULL)",
        )
        .bind(&entry.user_id)
        .bind(&entry.kind)
        .bind(entry.created_at)
        .bind(post)
        .fetch_one(self.db.pool())
        .await
    }

    /// The current display name of the user `id` names, if any.
    async fn display_name(
        &self,
        id: Option<&serde_json::Value>,
    ) -> Result<Option<String>, sqlx::Error> {
        let Some(id) = id.and_then(serde_json::Value::as_str) else {
            return Ok(None);
        };
        sqlx::query_scalar("SELECT display_name FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(self.db.pool())
            .await
    }

    /// Marks the entry delivered, even if its lease ran out meanwhile: it was sent.
    async fn finish(&self, entry: &Claimed, note: Option<&str>) -> Result<Outcome, sqlx::Error> {
        sqlx::query(
            "UPDATE push_outbox SET delivered_at = $1, last_error = $2 \
             WHERE id = $3 AND delivered_at IS NULL",
        )
        .bind(now_ms())
        .bind(note)
        .bind(&entry.id)
        .execute(self.db.pool())
        .await?;
        self.metrics.delivered.inc();
        Ok(Outcome::Delivered)
    }

    /// Records the failure and schedules the next attempt `delay` from now, if this
    /// dispatcher still holds the lease.
    async fn retry(
        &self,
        entry: &Claimed,
        why: &str,
        delay: Duration,
    ) -> Result<Outcome, sqlx::Error> {
        tracing::info!(push_id = %entry.id, attempts = entry.attempts, error = %why, ?delay, "push failed; will retry");
        sqlx::query(
            "UPDATE push_outbox SET next_attempt_at = $1, last_error = $2 \
             WHERE id = $3 AND next_attempt_at = $4 AND delivered_at IS NULL",
        )
        .bind(now_ms() + millis(delay))
        .bind(why)
        .bind(&entry.id)
        .bind(entry.lease_until)
        .execute(self.db.pool())
        .await?;
        self.metrics.retried.inc();
        Ok(Outcome::Retried)
    }

    /// Marks the entry dead: kept with its last error, never sent again.
    async fn give_up(&self, entry: &Claimed, why: &str) -> Result<Outcome, sqlx::Error> {
        tracing::warn!(push_id = %entry.id, attempts = entry.attempts, error = %why, "push given up");
        sqlx::query(
            "UPDATE push_outbox SET dead_at = $1, last_error = $2 \
             WHERE id = $3 AND next_attempt_at = $4 AND delivered_at IS NULL",
        )
        .bind(now_ms())
        .bind(why)
        .bind(&entry.id)
        .bind(entry.lease_until)
        .execute(self.db.pool())
        .await?;
        self.metrics.dead.inc();
        Ok(Outcome::Dead)
    }
}

/// The wait after failed attempt number `attempts` (1-based): `backoff_base`
/// doubled per attempt, capped at `backoff_max`, then jittered into its upper
/// half so retries of many entries spread out.
pub fn backoff(config: &DispatchConfig, attempts: i64) -> Duration {
    let exp = attempts.saturating_sub(1).clamp(0, 20) as u32;
    let full = config
        .backoff_base
        .saturating_mul(1 << exp)
        .min(config.backoff_max);
    let half = full / 2;
    half + full.mul_f64(rand::thread_rng().gen_range(0.0..0.5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let config = DispatchConfig {
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(60),
            ..DispatchConfig::default()
        };
        for _ in 0..100 {
            let first = backoff(&config, 1);
            assert!(first >= Duration::from_secs(1) && first <= Duration::from_secs(2));
            let third = backoff(&config, 3);
            assert!(third >= Duration::from_secs(4) && third <= Duration::from_secs(8));
            let late = backoff(&config, 40);
            assert!(late >= Duration::from_secs(30) && late <= Duration::from_secs(60));
        }
    }
}
