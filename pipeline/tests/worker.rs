//! The media job and the worker pool on real fixtures, on the backend named
//! by `SORI_TEST_DB`: success checked by ffprobe, duplicates, poison input,
//! transient store failures, panics, timeouts, races, dead letters, shutdown.

use sori_codecs::CodecError;
use sori_db::testing::{fresh_db, TestDb};
use sori_pipeline::media::{self, Enqueued};
use sori_pipeline::metrics::PipelineMetrics;
use sori_pipeline::queue::{relay_outbox_once, EmbeddedQueue, QueueDepth, Staging};
use sori_pipeline::store::{original_key, LocalStore, ObjectMeta, Store, StoreError};
use sori_pipeline::worker::{Outcome, ProcessFn, Worker, WorkerConfig};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name)
}

/// A local store that fails the first `fail_gets` downloads with a transient error.
#[derive(Clone)]
struct FlakyStore {
    inner: LocalStore,
    fail_gets: Arc<AtomicU32>,
}

impl Store for FlakyStore {
    async fn put_file(&self, key: &str, path: &Path, content_type: &str) -> Result<(), StoreError> {
        self.inner.put_file(key, path, content_type).await
    }
    async fn get_to_file(&self, key: &str, path: &Path) -> Result<u64, StoreError> {
        let left = self.fail_gets.load(Ordering::SeqCst);
        if left > 0 {
            self.fail_gets.store(left - 1, Ordering::SeqCst);
            return Err(StoreError::Transient("injected: connection reset".into()));
        }
        self.inner.get_to_file(key, path).await
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        self.inner.head(key).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
}

struct Env {
    t: TestDb,
    dir: tempfile::TempDir,
    store: FlakyStore,
    queue: EmbeddedQueue,
    metrics: PipelineMetrics,
}

impl Env {
    async fn new(max_receives: u32) -> Self {
        let t = fresh_db().await;
        let dir = tempfile::tempdir().unwrap();
        let inner =
            LocalStore::new(dir.path().join("blobs"), &[7u8; 32], "http://127.0.0.1:1").unwrap();
        let queue = EmbeddedQueue::new(t.db.clone(), "media", max_receives)
            .with_poll_step(Duration::from_millis(20));
        Self {
            t,
            dir,
            store: FlakyStore {
                inner,
                fail_gets: Arc::new(AtomicU32::new(0)),
            },
            queue,
            metrics: PipelineMetrics::default(),
        }
    }

    fn config(&self) -> WorkerConfig {
        WorkerConfig {
            concurrency: 2,
            visibility: Duration::from_secs(5),
            heartbeat: Duration::from_millis(500),
            job_timeout: Duration::from_secs(60),
            max_receives: self.queue.max_receives(),
            wait: Duration::from_millis(200),
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(400),
            shutdown_grace: Duration::from_secs(10),
            work_dir: self.dir.path().join("work"),
            depth_interval: Duration::from_millis(100),
        }
    }

    fn worker(
        &self,
        cfg: WorkerConfig,
        process: Option<ProcessFn>,
    ) -> Worker<FlakyStore, EmbeddedQueue> {
        let (db, store, queue, metrics) = (
            self.t.db.clone(),
            self.store.clone(),
            self.queue.clone(),
            self.metrics.clone(),
        );
        match process {
            Some(p) => Worker::with_processor(db, store, queue, cfg, metrics, p),
            None => Worker::new(db, store, queue, cfg, metrics),
        }
    }

    /// A user, a media row awaiting upload, its original in the store, then "complete".
    async fn queued_media(&self, fixture_name: &str) -> String {
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
        self.store
            .inner
            .put_file(&original_key(&id), &fixture(fixture_name), "audio/mp4")
            .await
            .unwrap();
        let staging = Staging::Table(self.queue.clone());
        assert_eq!(
            media::mark_queued(&self.t.db, &staging, &id).await.unwrap(),
            Enqueued::Now
        );
        id
    }

    async fn row(&self, id: &str) -> MediaRow {
        sqlx::query_as(
            "SELECT state, failure, CAST(attempts AS BIGINT) AS attempts, output_prefix AS prefix, \
                    duration_ms AS duration, bars, report \
             FROM media WHERE id = $1",
        )
        .bind(id)
        .fetch_one(self.t.db.pool())
        .await
        .unwrap()
    }

    async fn wait_for(&self, id: &str, states: &[&str], within: Duration) -> MediaRow {
        let deadline = Instant::now() + within;
        loop {
            let row = self.row(id).await;
            if states.contains(&row.state.as_str()) {
                return row;
            }
            assert!(
                Instant::now() < deadline,
                "media still {} ({:?})",
                row.state,
                row.failure
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_queue_empty(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let depth = self.queue.depth().await.unwrap();
            if depth.visible + depth.in_flight == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "queue not drained: {depth:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn versions(&self, id: &str) -> Vec<String> {
        let dir = self.dir.path().join("blobs/media").join(id);
        let mut v: Vec<String> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }

    fn failed_count(&self, reason: &str, retry: bool) -> u64 {
        self.metrics
            .jobs_failed
            .get_or_create(&sori_pipeline::metrics::FailureLabels {
                reason: reason.into(),
                retry,
            })
            .get()
    }
}

#[derive(Debug, sqlx::FromRow)]
struct MediaRow {
    state: String,
    failure: Option<String>,
    attempts: i64,
    prefix: Option<String>,
    duration: Option<i64>,
    bars: Option<String>,
    report: Option<String>,
}

/// Runs a pool in the background; dropping the handle stops it.
struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(w: Worker<FlakyStore, EmbeddedQueue>) -> Self {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(w.run(async {
            let _ = rx.await;
        }));
        Self {
            stop: Some(tx),
            task,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

fn ffprobe_codec(path: &Path) -> String {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe must be installed (scripts/setup.sh test)");
    assert!(
        out.status.success(),
        "ffprobe rejects {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn a_fixture_becomes_ready_and_a_duplicate_changes_nothing() {
    let env = Env::new(5).await;
    let id = env.queued_media("speech-mono-16k.m4a").await;
    let pool = Running::start(env.worker(env.config(), None));
    let row = env
        .wait_for(&id, &["ready", "failed"], Duration::from_secs(60))
        .await;
    assert_eq!(row.state, "ready", "{:?}", row.failure);
    assert_eq!(row.attempts, 1);
    let prefix = row.prefix.clone().unwrap();
    assert_eq!(prefix, format!("media/{id}/v1/"));
    assert!(row.duration.unwrap() > 1000);
    let bars: Vec<u8> = serde_json::from_str(&row.bars.unwrap()).unwrap();
    assert_eq!(bars.len(), 100);
    let report: serde_json::Value = serde_json::from_str(&row.report.unwrap()).unwrap();
    assert!(report["output"]["integrated_lufs"].as_f64().is_some());
    let out = env.dir.path().join("blobs").join(&prefix);
    assert_eq!(ffprobe_codec(&out.join("audio.opus")), "opus");
    assert_eq!(ffprobe_codec(&out.join("audio.webm")), "opus");
    assert_eq!(ffprobe_codec(&out.join("audio.caf")), "opus");
    let waveform: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("waveform.json")).unwrap()).unwrap();
    assert_eq!(waveform["version"], 2);
    env.wait_queue_empty(Duration::from_secs(5)).await;
    assert!(
        env.dir
            .path()
            .join("blobs")
            .join(original_key(&id))
            .exists(),
        "the original is kept"
    );

    let updated: i64 = sqlx::query_scalar("SELECT updated_at FROM media WHERE id = $1")
        .bind(&id)
        .fetch_one(env.t.db.pool())
        .await
        .unwrap();
    // The same job delivered again: deleted, nothing rewritten.
    env.queue
        .send(
            &sori_pipeline::job::JobMessage::for_media(&id).to_body(),
            Duration::ZERO,
        )
        .await
        .unwrap();
    env.wait_queue_empty(Duration::from_secs(10)).await;
    pool.stop().await;
    let again = env.row(&id).await;
    assert_eq!((again.state.as_str(), again.attempts), ("ready", 1));
    let updated_again: i64 = sqlx::query_scalar("SELECT updated_at FROM media WHERE id = $1")
        .bind(&id)
        .fetch_one(env.t.db.pool())
        .await
        .unwrap();
    assert_eq!(updated, updated_again);
    assert_eq!(env.versions(&id), ["v1"]);
    assert_eq!(env.metrics.jobs_succeeded.get(), 1);
    assert_eq!(env.queue.depth().await.unwrap(), QueueDepth::default());
}

#[tokio::test]
async fn poison_input_fails_at_once_with_its_reason() {
    let env = Env::new(5).await;
    let id = env.queued_media("bad-garbage.m4a").await;
    let pool = Running::start(env.worker(env.config(), None));
    let row = env
        .wait_for(&id, &["ready", "failed"], Duration::from_secs(30))
        .await;
    env.wait_queue_empty(Duration::from_secs(5)).await;
    pool.stop().await;
    assert_eq!(row.state, "failed");
    let reason = row.failure.unwrap();
    assert!(!reason.is_empty() && !reason.contains('\n'), "{reason:?}");
    assert_eq!(row.attempts, 1, "no retry");
    assert!(env.versions(&id).is_empty());
    assert_eq!(
        env.queue.depth().await.unwrap(),
        QueueDepth::default(),
        "deleted, not dead-lettered"
    );
    assert_eq!(env.failed_count("input", false), 1);
}

#[tokio::test]
async fn a_transient_store_failure_is_retried_then_succeeds() {
    let env = Env::new(5).await;
    env.store.fail_gets.store(2, Ordering::SeqCst);
    let id = env.queued_media("speech-mono-16k.m4a").await;
    let pool = Running::start(env.worker(env.config(), None));
    let row = env
        .wait_for(&id, &["ready", "failed"], Duration::from_secs(60))
        .await;
    env.wait_queue_empty(Duration::from_secs(5)).await;
    pool.stop().await;
    assert_eq!(row.state, "ready");
    assert_eq!(row.attempts, 3);
    assert_eq!(row.failure, None, "a success clears the last failure");
    assert_eq!(env.versions(&id), ["v3"]);
    assert_eq!(env.failed_count("transient", true), 2);
}

#[tokio::test]
async fn a_panic_is_recorded_and_the_worker_carries_on() {
    let env = Env::new(5).await;
    let calls = Arc::new(AtomicU32::new(0));
    let process: ProcessFn = {
        let calls = calls.clone();
        Arc::new(move |input, out| {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("injected engine bug");
            }
            sori_codecs::process::process_file(input, out, &Default::default(), &Default::default())
        })
    };
    let worker = env.worker(env.config(), Some(process));
    let id = env.queued_media("speech-mono-16k.m4a").await;
    let d = env
        .queue
        .receive(1, Duration::ZERO, Duration::from_secs(5))
        .await
        .unwrap()
        .remove(0);
    let outcomes = worker.handle(d).await;
    assert!(
        matches!(&outcomes[..], [Outcome::Retry { kind: "panic", .. }]),
        "{outcomes:?}"
    );
    let row = env.row(&id).await;
    assert_eq!(row.state, "queued");
    assert!(row.failure.unwrap().contains("injected engine bug"));
    assert_eq!(env.failed_count("panic", true), 1);
    // The same worker (pool) then finishes the job.
    let pool = Running::start(worker);
    let row = env
        .wait_for(&id, &["ready", "failed"], Duration::from_secs(60))
        .await;
    pool.stop().await;
    assert_eq!(row.state, "ready");
}

#[tokio::test]
async fn after_max_receives_the_media_fails_and_the_message_dead_letters() {
    let env = Env::new(2).await;
    let process: ProcessFn =
        Arc::new(|_, _| Err(CodecError::Io(std::io::Error::other("disk on fire"))));
    let id = env.queued_media("speech-mono-16k.m4a").await;
    let pool = Running::start(env.worker(env.config(), Some(process)));
    let row = env
        .wait_for(&id, &["ready", "failed"], Duration::from_secs(30))
        .await;
    assert_eq!(row.state, "failed");
    assert!(row.failure.unwrap().contains("disk on fire"));
    assert_eq!(row.attempts, 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.queue.depth().await.unwrap().dead == 0 {
        assert!(Instant::now() < deadline, "message not dead-lettered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pool.stop().await;
    assert_eq!(
        env.queue.depth().await.unwrap(),
        QueueDepth {
            visible: 0,
            in_flight: 0,
            dead: 1
        }
    );
    assert_eq!(env.failed_count("transient", true), 1);
    assert_eq!(env.failed_count("transient", false), 1);
}

#[tokio::test]
async fn a_job_past_its_timeout_is_abandoned_and_retried() {
    let env = Env::new(5).await;
    let calls = Arc::new(AtomicU32::new(0));
    let process: ProcessFn = {
        let calls = calls.clone();
        Arc::new(move |input, out| {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                std::thread::sleep(Duration::from_secs(3));
            }
            sori_codecs::process::process_file(input, out, &Default::default(), &Default::default())
        })
    };
    let cfg = WorkerConfig {
        job_timeout: Duration::from_secs(1),
        ..env.config()
    };
    let id = env.queued_media("speech-mono-16k.m4a").await;
    let pool = Running::start(env.worker(cfg, Some(process)));
    let row = env
        .wait_for(&id, &["ready", "failed"], Duration::from_secs(60))
        .await;
    pool.stop().await;
    assert_eq!(row.state, "ready");
    assert_eq!(row.attempts, 2);
    assert_eq!(env.failed_count("timeout", true), 1);
    assert_eq!(env.versions(&id), ["v2"]);
}

#[tokio::test]
async fn two_deliveries_of_one_job_produce_one_result() {
    let env = Env::new(5).await;
    let id = env.queued_media("speech-mono-16k.m4a").await;
    // The outbox relay (or SQS) delivered the job twice.
    env.queue
        .send(
            &sori_pipeline::job::JobMessage::for_media(&id).to_body(),
            Duration::ZERO,
        )
        .await
        .unwrap();
    let pool = Running::start(env.worker(env.config(), None));
    let row = env
        .wait_for(&id, &["ready", "failed"], Duration::from_secs(60))
        .await;
    env.wait_queue_empty(Duration::from_secs(15)).await;
    pool.stop().await;
    assert_eq!(row.state, "ready");
    assert_eq!(
        row.attempts, 1,
        "the second delivery never claimed the media"
    );
    assert_eq!(env.versions(&id), ["v1"]);
    assert_eq!(env.metrics.jobs_started.get(), 1);
}

#[tokio::test]
async fn shutdown_releases_running_jobs_after_the_grace_period() {
    let env = Env::new(5).await;
    let process: ProcessFn = Arc::new(|input, out| {
        std::thread::sleep(Duration::from_secs(2));
        sori_codecs::process::process_file(input, out, &Default::default(), &Default::default())
    });
    let cfg = WorkerConfig {
        shutdown_grace: Duration::from_millis(300),
        ..env.config()
    };
    let id = env.queued_media("speech-mono-16k.m4a").await;
    let pool = Running::start(env.worker(cfg, Some(process)));
    env.wait_for(&id, &["processing"], Duration::from_secs(10))
        .await;
    let started = Instant::now();
    pool.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "stopped within the grace period plus release"
    );
    let row = env.row(&id).await;
    assert_eq!(row.state, "queued");
    assert_eq!(row.failure.as_deref(), Some("interrupted by shutdown"));
    assert_eq!(
        env.queue.depth().await.unwrap().visible,
        1,
        "given back, visible at once"
    );
}

#[tokio::test]
async fn the_outbox_relay_delivers_what_the_transaction_wrote() {
    let env = Env::new(5).await;
    let id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO users (id, handle, handle_lower, display_name, password_hash, created_at) VALUES ('u', 'u', 'u', 'U', 'x', 0)",
    )
    .execute(env.t.db.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO media (id, owner_id, state, content_type, size_bytes, original_key, created_at, updated_at) \
         VALUES ($1, 'u', 'awaiting_upload', 'audio/mp4', 0, $2, 0, 0)",
    )
    .bind(&id)
    .bind(original_key(&id))
    .execute(env.t.db.pool())
    .await
    .unwrap();
    assert_eq!(
        media::mark_queued(&env.t.db, &Staging::Outbox, &id)
            .await
            .unwrap(),
        Enqueued::Now
    );
    assert_eq!(
        media::mark_queued(&env.t.db, &Staging::Outbox, &id)
            .await
            .unwrap(),
        Enqueued::Already(media::MediaState::Queued),
        "idempotent"
    );
    assert!(matches!(
        media::mark_queued(&env.t.db, &Staging::Outbox, "nope").await,
        Err(media::MediaError::NotFound)
    ));
    assert_eq!(
        env.queue.depth().await.unwrap(),
        QueueDepth::default(),
        "nothing sent yet"
    );
    assert_eq!(relay_outbox_once(&env.t.db, &env.queue).await.unwrap(), 1);
    assert_eq!(
        relay_outbox_once(&env.t.db, &env.queue).await.unwrap(),
        0,
        "row deleted once sent"
    );
    let d = env
        .queue
        .receive(1, Duration::ZERO, Duration::from_secs(5))
        .await
        .unwrap()
        .remove(0);
    let job: sori_pipeline::job::JobMessage = serde_json::from_str(&d.body).unwrap();
    assert_eq!(job, sori_pipeline::job::JobMessage::for_media(&id));
}

#[tokio::test]
async fn a_copy_of_a_running_job_is_deleted_on_its_last_receive_not_dead_lettered() {
    let env = Env::new(2).await;
    let id = env.queued_media("speech-mono-16k.m4a").await;
    // Another worker holds the media (its own delivery is elsewhere).
    let held = media::claim(&env.t.db, &id, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(matches!(held, media::Claim::Won(_)), "{held:?}");
    let worker = env.worker(env.config(), None);
    for receive in 1..=2 {
        let mut got = env
            .queue
            .receive(1, Duration::from_secs(10), Duration::from_secs(30))
            .await
            .unwrap();
        let d = got.pop().expect("the copy comes back after its delay");
        assert_eq!(d.receive_count, receive);
        let outcomes = worker.handle(d).await;
        assert!(
            matches!(outcomes[..], [Outcome::Busy { .. }]),
            "{outcomes:?}"
        );
    }
    let depth = env.queue.depth().await.unwrap();
    assert_eq!(
        depth,
        QueueDepth::default(),
        "settled, not left to dead-letter"
    );
    assert_eq!(
        env.row(&id).await.state,
        "processing",
        "the holder's job goes on"
    );
}
