//! The reaper on the backend named by `SORI_TEST_DB`: a media left in
//! `processing` by a worker killed on its last receive ends `failed` with a
//! reason; one whose message vanished earlier is re-queued and runs again;
//! a `queued` media whose message was lost gets a new one once the queue is
//! empty; live leases, recent expiries and finished media are left alone.

use sori_db::testing::{fresh_db, TestDb};
use sori_pipeline::media::{self, Claim, Enqueued};
use sori_pipeline::metrics::PipelineMetrics;
use sori_pipeline::queue::{EmbeddedQueue, Staging};
use sori_pipeline::reaper::{reap_once, Reaped, ReaperConfig};
use sori_pipeline::store::original_key;
use std::time::Duration;

/// A lease that has run out by the time the reaper looks.
const SHORT: Duration = Duration::from_millis(1);
/// How long a received message stays invisible in these tests.
const VISIBILITY: Duration = Duration::from_millis(50);

struct Env {
    t: TestDb,
    queue: EmbeddedQueue,
    metrics: PipelineMetrics,
}

impl Env {
    async fn new(max_receives: u32) -> Self {
        let t = fresh_db().await;
        let queue = EmbeddedQueue::new(t.db.clone(), "media", max_receives)
            .with_poll_step(Duration::from_millis(10));
        Self {
            t,
            queue,
            metrics: PipelineMetrics::default(),
        }
    }

    /// A media in `queued` with its job message enqueued.
    async fn queued_media(&self) -> String {
        let id = uuid::Uuid::now_v7().to_string();
        let user = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO users (id, handle, handle_lower, display_name, password_hash, created_at) \
             VALUES ($1, $2, $2, 'T', 'x', 0)",
        )
        .bind(&user)
        .bind(format!("u{}", &user[24..]))
        .execute(self.t.db.pool())
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO media (id, owner_id, state, content_type, size_bytes, original_key, created_at, updated_at) \
             VALUES ($1, $2, 'awaiting_upload', 'audio/mp4', 0, $3, 0, 0)",
        )
        .bind(&id)
        .bind(&user)
        .bind(original_key(&id))
        .execute(self.t.db.pool())
        .await
        .unwrap();
        let staging = Staging::Table(self.queue.clone());
        let done = media::mark_queued(&self.t.db, &staging, &id).await.unwrap();
        assert_eq!(done, Enqueued::Now);
        id
    }

    /// Receives the media's message and claims it with `lease`, as a worker
    /// would; neither the message nor the lease is touched again (a worker
    /// that dies, or one still running). Returns the message's receive count
    /// and the claim's attempt number.
    async fn receive_and_claim(&self, id: &str, lease: Duration) -> (u32, i64) {
        let got = self
            .queue
            .receive(1, Duration::from_secs(2), VISIBILITY)
            .await
            .unwrap();
        assert_eq!(got.len(), 1, "expected the job message");
        assert!(got[0].body.contains(id));
        match media::claim(&self.t.db, id, lease).await.unwrap() {
            Claim::Won(lease) => (got[0].receive_count, lease.attempt),
            other => panic!("claim: {other:?}"),
        }
    }

    async fn row(&self, id: &str) -> (String, Option<String>, i64) {
        sqlx::query_as(
            "SELECT state, failure, CAST(attempts AS BIGINT) AS attempts FROM media WHERE id = $1",
        )
        .bind(id)
        .fetch_one(self.t.db.pool())
        .await
        .unwrap()
    }

    async fn reap(&self, stale_after: Duration, max_attempts: u32) -> Reaped {
        let cfg = ReaperConfig {
            interval: Duration::from_secs(60),
            stale_after,
            max_attempts,
        };
        reap_once(&self.t.db, &self.queue, &cfg, &self.metrics)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn killed_on_last_receive_ends_failed_with_reason() {
    let env = Env::new(2).await;
    let id = env.queued_media().await;
    assert_eq!(env.receive_and_claim(&id, SHORT).await.0, 1);
    tokio::time::sleep(VISIBILITY * 2).await;
    assert_eq!(env.receive_and_claim(&id, SHORT).await.0, 2);
    tokio::time::sleep(VISIBILITY * 2).await;
    // The next receive dead-letters the message: nobody will run this job again.
    let got = env
        .queue
        .receive(1, Duration::ZERO, VISIBILITY)
        .await
        .unwrap();
    assert!(got.is_empty());
    assert_eq!(env.queue.depth().await.unwrap().dead, 1);
    assert_eq!(env.row(&id).await.0, "processing");

    let reaped = env.reap(Duration::ZERO, 2).await;
    assert_eq!(
        reaped,
        Reaped {
            requeued: 0,
            failed: 1
        }
    );
    let (state, failure, attempts) = env.row(&id).await;
    assert_eq!(state, "failed");
    assert_eq!(attempts, 2);
    let failure = failure.unwrap();
    assert!(failure.starts_with("abandoned"), "{failure}");
    assert!(failure.contains("attempt 2"), "{failure}");
    let depth = env.queue.depth().await.unwrap();
    assert_eq!((depth.visible, depth.in_flight), (0, 0));
    // A second pass finds nothing left to do.
    assert_eq!(env.reap(Duration::ZERO, 2).await, Reaped::default());
    // The owner is told, once, in the same transaction as the state change.
    let notified: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, body FROM notifications WHERE media_id = $1")
            .bind(&id)
            .fetch_all(env.t.db.pool())
            .await
            .unwrap();
    assert_eq!(notified.len(), 1, "{notified:?}");
    assert_eq!(notified[0].0, "media.failed");
    assert!(notified[0].1.contains("abandoned"), "{}", notified[0].1);
}

#[tokio::test]
async fn lost_message_with_attempts_left_is_requeued_and_runs_again() {
    let env = Env::new(5).await;
    let id = env.queued_media().await;
    env.receive_and_claim(&id, SHORT).await;
    // The message vanishes (deleted by hand, lost by an external queue…).
    sqlx::query("DELETE FROM queue_messages")
        .execute(env.t.db.pool())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;

    let reaped = env.reap(Duration::ZERO, 5).await;
    assert_eq!(
        reaped,
        Reaped {
            requeued: 1,
            failed: 0
        }
    );
    assert_eq!(env.row(&id).await.0, "queued");
    assert_eq!(env.queue.depth().await.unwrap().visible, 1);
    // The new message is a normal job: a worker takes it as attempt 2.
    let (_, attempt) = env.receive_and_claim(&id, Duration::from_secs(60)).await;
    assert_eq!(attempt, 2);
    // Now held by a live lease: the reaper leaves it alone.
    assert_eq!(env.reap(Duration::ZERO, 5).await, Reaped::default());
    assert_eq!(env.row(&id).await.0, "processing");
}

#[tokio::test]
async fn queued_media_whose_message_was_lost_is_resent_only_from_an_empty_queue() {
    let env = Env::new(5).await;
    let lost = env.queued_media().await;
    let spent = env.queued_media().await;
    sqlx::query("DELETE FROM queue_messages")
        .execute(env.t.db.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE media SET attempts = 5 WHERE id = $1")
        .bind(&spent)
        .execute(env.t.db.pool())
        .await
        .unwrap();
    // A backlog: another media's message still waits in the queue.
    let waiting = env.queued_media().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(env.reap(Duration::ZERO, 5).await, Reaped::default());
    assert_eq!(env.row(&lost).await.0, "queued");

    // The backlog drains.
    let got = env
        .queue
        .receive(1, Duration::ZERO, VISIBILITY)
        .await
        .unwrap();
    assert!(got[0].body.contains(&waiting));
    env.queue.delete(&got[0]).await.unwrap();
    sqlx::query("UPDATE media SET state = 'ready', attempts = 1 WHERE id = $1")
        .bind(&waiting)
        .execute(env.t.db.pool())
        .await
        .unwrap();
    // Queued only milliseconds ago: not stranded after an hour's margin.
    assert_eq!(
        env.reap(Duration::from_secs(3600), 5).await,
        Reaped::default()
    );
    assert_eq!(
        env.reap(Duration::ZERO, 5).await,
        Reaped {
            requeued: 1,
            failed: 1
        }
    );
    let (state, failure, _) = env.row(&spent).await;
    assert_eq!(state, "failed");
    let failure = failure.unwrap();
    assert!(failure.contains("message was lost"), "{failure}");
    assert_eq!(env.row(&lost).await.0, "queued");
    assert_eq!(env.queue.depth().await.unwrap().visible, 1);
    // The queue is no longer empty: the next pass sends nothing more.
    assert_eq!(env.reap(Duration::ZERO, 5).await, Reaped::default());
    assert_eq!(env.queue.depth().await.unwrap().visible, 1);
    // The new message is a normal job: a worker takes it as attempt 1.
    let (_, attempt) = env.receive_and_claim(&lost, Duration::from_secs(60)).await;
    assert_eq!(attempt, 1);
}

#[tokio::test]
async fn live_recent_and_finished_media_are_left_alone() {
    let env = Env::new(1).await;
    let live = env.queued_media().await;
    env.receive_and_claim(&live, Duration::from_secs(600)).await;
    let recent = env.queued_media().await;
    env.receive_and_claim(&recent, SHORT).await;
    let ready = env.queued_media().await;
    sqlx::query("UPDATE media SET state = 'ready', attempts = 1 WHERE id = $1")
        .bind(&ready)
        .execute(env.t.db.pool())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;

    // `recent` expired only milliseconds ago: not stale after an hour's margin.
    assert_eq!(
        env.reap(Duration::from_secs(3600), 1).await,
        Reaped::default()
    );
    assert_eq!(env.row(&recent).await.0, "processing");
    // With no margin, only the expired one is reaped; the live lease and the
    // ready media are untouched.
    assert_eq!(
        env.reap(Duration::ZERO, 1).await,
        Reaped {
            requeued: 0,
            failed: 1
        }
    );
    assert_eq!(env.row(&recent).await.0, "failed");
    assert_eq!(env.row(&live).await.0, "processing");
    assert_eq!(env.row(&ready).await.0, "ready");
}

#[tokio::test]
async fn config_for_worker_waits_longer_than_a_redelivery() {
    let cfg = sori_pipeline::worker::WorkerConfig::default();
    let r = ReaperConfig::for_worker(&cfg);
    assert!(r.stale_after >= cfg.visibility + cfg.backoff_max);
    assert!(r.stale_after >= Duration::from_secs(15 * 60));
    assert_eq!(r.max_attempts, cfg.max_receives);
}

/// The oldest queued media's wait (`sori_queue_oldest_seconds`): zero with
/// none queued, the longest wait among queued ones, and media a worker has
/// claimed no longer count.
#[tokio::test]
async fn the_oldest_queued_wait_counts_only_queued_media() {
    let env = Env::new(5).await;
    let db = &env.t.db;
    let now = sori_pipeline::clock::now_ms();
    assert_eq!(
        media::oldest_queued_wait(db, now).await.unwrap(),
        Duration::ZERO
    );
    let older = env.queued_media().await;
    let newer = env.queued_media().await;
    for (id, ago) in [(&older, 90_000), (&newer, 30_000)] {
        sqlx::query("UPDATE media SET updated_at = $1 WHERE id = $2")
            .bind(now - ago)
            .bind(id)
            .execute(db.pool())
            .await
            .unwrap();
    }
    assert_eq!(
        media::oldest_queued_wait(db, now).await.unwrap(),
        Duration::from_secs(90)
    );
    // Claimed 90 s ago and still running: no longer waiting.
    env.receive_and_claim(&older, Duration::from_secs(60)).await;
    sqlx::query("UPDATE media SET updated_at = $1 WHERE id = $2")
        .bind(now - 90_000)
        .bind(&older)
        .execute(db.pool())
        .await
        .unwrap();
    assert_eq!(
        media::oldest_queued_wait(db, now).await.unwrap(),
        Duration::from_secs(30)
    );
}
