//! The `media.ready` / `media.failed` notification rows and in-process events
//! the worker writes when a media reaches a final state, on the backend named
//! by `SORI_TEST_DB`: exactly one per media, in the same transaction as the
//! state change, none for a duplicate delivery; and the push for an owner
//! with no app connected, unless they turned media pushes off.

use sori_codecs::CodecError;
use sori_db::testing::{fresh_db, TestDb};
use sori_pipeline::job::JobMessage;
use sori_pipeline::media::{self, Claim, Enqueued, Finished, MediaEvent, MediaState};
use sori_pipeline::metrics::PipelineMetrics;
use sori_pipeline::queue::{EmbeddedQueue, Staging};
use sori_pipeline::store::{original_key, LocalStore, ObjectStore};
use sori_pipeline::worker::{Outcome, ProcessFn, Worker, WorkerConfig};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::TryRecvError;

struct Env {
    t: TestDb,
    dir: tempfile::TempDir,
    store: LocalStore,
    queue: EmbeddedQueue,
}

#[derive(Debug, sqlx::FromRow)]
struct Notification {
    user_id: String,
    kind: String,
    actor_id: Option<String>,
    post_id: Option<String>,
    body: Option<String>,
    read_at: Option<i64>,
}

impl Env {
    async fn new(max_receives: u32) -> Self {
        let t = fresh_db().await;
        let dir = tempfile::tempdir().unwrap();
        let store =
            LocalStore::new(dir.path().join("blobs"), &[7u8; 32], "http://127.0.0.1:1").unwrap();
        let queue = EmbeddedQueue::new(t.db.clone(), "media", max_receives);
        Self {
            t,
            dir,
            store,
            queue,
        }
    }

    fn worker(&self, process: Option<ProcessFn>) -> Worker<ObjectStore, EmbeddedQueue> {
        let cfg = WorkerConfig {
            concurrency: 1,
            visibility: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            job_timeout: Duration::from_secs(60),
            max_receives: self.queue.max_receives(),
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(10),
            work_dir: self.dir.path().join("work"),
            ..WorkerConfig::default()
        };
        let store = ObjectStore::Local(self.store.clone());
        let (db, queue) = (self.t.db.clone(), self.queue.clone());
        let metrics = PipelineMetrics::default();
        match process {
            Some(p) => Worker::with_processor(db, store, queue, cfg, metrics, p),
            None => Worker::new(db, store, queue, cfg, metrics),
        }
    }

    /// A user and their media with `fixture` uploaded, queued; returns (owner, media).
    async fn queued_media(&self, fixture: &str) -> (String, String) {
        let user = uuid::Uuid::now_v7().to_string();
        let id = uuid::Uuid::now_v7().to_string();
        self.exec(
            "INSERT INTO users (id, handle, handle_lower, display_name, password_hash, created_at) \
             VALUES ($1, $2, $2, 'T', 'x', 0)",
            &[&user, &format!("u{}", &user[24..])],
        )
        .await;
        self.exec(
            "INSERT INTO media (id, owner_id, state, content_type, size_bytes, original_key, created_at, updated_at) \
             VALUES ($1, $2, 'awaiting_upload', 'audio/mp4', 0, $3, 0, 0)",
            &[&id, &user, &original_key(&id)],
        )
        .await;
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures")
            .join(fixture);
        assert!(path.exists(), "fixture {fixture} is missing");
        self.store
            .put_file(&original_key(&id), &path, "audio/mp4")
            .await
            .unwrap();
        let staging = Staging::Table(self.queue.clone());
        let queued = media::mark_queued(&self.t.db, &staging, &id).await.unwrap();
        assert_eq!(queued, Enqueued::Now);
        (user, id)
    }

    async fn exec(&self, sql: &str, args: &[&str]) {
        let mut q = sqlx::query(sql);
        for a in args {
            q = q.bind(a.to_string());
        }
        q.execute(self.t.db.pool()).await.unwrap();
    }

    /// Receives the next message and runs it to the end.
    async fn deliver(&self, worker: &Worker<ObjectStore, EmbeddedQueue>) -> Vec<Outcome> {
        let mut got = self
            .queue
            .receive(1, Duration::from_secs(2), Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(got.len(), 1, "no message to deliver");
        worker.handle(got.remove(0)).await
    }

    /// The job message of `id` once more, as a duplicate delivery would bring it.
    async fn send_again(&self, id: &str) {
        self.queue
            .send(&JobMessage::for_media(id).to_body(), Duration::ZERO)
            .await
            .unwrap();
    }

    async fn notifications(&self, media_id: &str) -> Vec<Notification> {
        sqlx::query_as(
            "SELECT user_id, kind, actor_id, post_id, body, read_at FROM notifications \
             WHERE media_id = $1 ORDER BY created_at, id",
        )
        .bind(media_id)
        .fetch_all(self.t.db.pool())
        .await
        .unwrap()
    }

    /// The push outbox's `(user_id, kind, payload)` rows naming `media_id`.
    async fn pushes(&self, media_id: &str) -> Vec<(String, String, serde_json::Value)> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT user_id, kind, payload FROM push_outbox WHERE payload LIKE '%' || $1 || '%'",
        )
        .bind(media_id)
        .fetch_all(self.t.db.pool())
        .await
        .unwrap();
        rows.into_iter()
            .map(|(u, k, p)| (u, k, serde_json::from_str(&p).unwrap()))
            .collect()
    }

    async fn failure(&self, media_id: &str) -> (String, Option<String>) {
        sqlx::query_as("SELECT state, failure FROM media WHERE id = $1")
            .bind(media_id)
            .fetch_one(self.t.db.pool())
            .await
            .unwrap()
    }
}

fn event(owner: &str, media_id: &str, state: MediaState) -> MediaEvent {
    MediaEvent {
        media_id: media_id.to_owned(),
        owner_id: owner.to_owned(),
        state,
    }
}

#[tokio::test]
async fn a_processed_fixture_notifies_its_owner_once() {
    let env = Env::new(5).await;
    let worker = env.worker(None);
    let mut events = worker.events().subscribe();
    let (owner, id) = env.queued_media("speech-mono-16k.m4a").await;
    // A post made while the media is pending: the notification links it.
    let post = uuid::Uuid::now_v7().to_string();
    env.exec(
        "INSERT INTO posts (id, author_id, media_id, created_at) VALUES ($1, $2, $3, 0)",
        &[&post, &owner, &id],
    )
    .await;

    let outcomes = env.deliver(&worker).await;
    assert_eq!(outcomes, [Outcome::Ready { version: 1 }]);
    let rows = env.notifications(&id).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let n = &rows[0];
    assert_eq!(
        (n.user_id.as_str(), n.kind.as_str()),
        (owner.as_str(), "media.ready")
    );
    assert_eq!(n.post_id.as_deref(), Some(post.as_str()));
    assert_eq!((n.actor_id.as_deref(), n.read_at), (None, None));
    let body: serde_json::Value = serde_json::from_str(n.body.as_deref().unwrap()).unwrap();
    assert!(body["duration_ms"].as_i64().unwrap() > 1000, "{body}");
    assert_eq!(
        events.try_recv().unwrap(),
        event(&owner, &id, MediaState::Ready)
    );

    // Its owner has no app connected: one push, in the same transaction.
    let pushes = env.pushes(&id).await;
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert_eq!(
        (pushes[0].0.as_str(), pushes[0].1.as_str()),
        (owner.as_str(), "media.ready")
    );
    assert_eq!(pushes[0].2["media_id"], id.as_str());

    // A duplicate delivery finds the media finished: no row, no event.
    env.send_again(&id).await;
    let outcomes = env.deliver(&worker).await;
    assert_eq!(outcomes, [Outcome::AlreadyFinished(MediaState::Ready)]);
    assert_eq!(env.notifications(&id).await.len(), 1);
    assert_eq!(env.pushes(&id).await.len(), 1);
    assert_eq!(events.try_recv(), Err(TryRecvError::Empty));
}

#[tokio::test]
async fn an_owner_with_media_pushes_off_or_an_app_open_is_not_pushed() {
    let env = Env::new(5).await;
    let worker = env.worker(None);
    let (quiet, first) = env.queued_media("speech-mono-16k.m4a").await;
    env.exec(
        "INSERT INTO notification_settings (user_id, kind, inbox, push) VALUES ($1, 'media', 1, 0)",
        &[&quiet],
    )
    .await;
    let (online, second) = env.queued_media("speech-mono-16k.m4a").await;
    env.exec(
        "INSERT INTO ws_connections (id, user_id, expires_at, created_at) \
         VALUES ('c1', $1, 9000000000000, 0)",
        &[&online],
    )
    .await;
    let mut outcomes = env.deliver(&worker).await;
    outcomes.extend(env.deliver(&worker).await);
    let ready = Outcome::Ready { version: 1 };
    assert_eq!(outcomes, [ready.clone(), ready]);
    for id in [&first, &second] {
        assert_eq!(env.notifications(id).await.len(), 1, "still in the list");
        assert!(env.pushes(id).await.is_empty());
    }
}

#[tokio::test]
async fn a_poison_file_notifies_its_failure_once_with_the_reason() {
    let env = Env::new(5).await;
    let worker = env.worker(None);
    let mut events = worker.events().subscribe();
    let (owner, id) = env.queued_media("bad-garbage.m4a").await;

    let outcomes = env.deliver(&worker).await;
    assert!(
        matches!(&outcomes[..], [Outcome::Failed(_)]),
        "{outcomes:?}"
    );
    let (state, reason) = env.failure(&id).await;
    assert_eq!(state, "failed");
    let reason = reason.unwrap();
    let rows = env.notifications(&id).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].user_id.as_str(), rows[0].kind.as_str()),
        (owner.as_str(), "media.failed")
    );
    assert_eq!(rows[0].post_id, None);
    let body: serde_json::Value = serde_json::from_str(rows[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(body["reason"].as_str(), Some(reason.as_str()));
    let pushes = env.pushes(&id).await;
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert_eq!(pushes[0].1, "media.failed");
    assert_eq!(pushes[0].2["reason"].as_str(), Some(reason.as_str()));
    assert_eq!(
        events.try_recv().unwrap(),
        event(&owner, &id, MediaState::Failed)
    );

    env.send_again(&id).await;
    let outcomes = env.deliver(&worker).await;
    assert_eq!(outcomes, [Outcome::AlreadyFinished(MediaState::Failed)]);
    assert_eq!(env.notifications(&id).await.len(), 1);
    assert_eq!(events.try_recv(), Err(TryRecvError::Empty));
}

#[tokio::test]
async fn the_last_failed_retry_notifies_once_and_a_retry_does_not() {
    let env = Env::new(2).await;
    let process: ProcessFn =
        Arc::new(|_, _| Err(CodecError::Io(std::io::Error::other("disk on fire"))));
    let worker = env.worker(Some(process));
    let mut events = worker.events().subscribe();
    let (owner, id) = env.queued_media("speech-mono-16k.m4a").await;

    // First receive: a retry, back to `queued`, nobody told.
    let outcomes = env.deliver(&worker).await;
    assert!(
        matches!(&outcomes[..], [Outcome::Retry { .. }]),
        "{outcomes:?}"
    );
    assert!(env.notifications(&id).await.is_empty());
    assert_eq!(events.try_recv(), Err(TryRecvError::Empty));
    // Wait out the backoff, then the last allowed receive fails the media.
    tokio::time::sleep(Duration::from_millis(50)).await;
    env.deliver(&worker).await;
    let (state, _) = env.failure(&id).await;
    assert_eq!(state, "failed");
    let rows = env.notifications(&id).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].kind, "media.failed");
    assert!(rows[0].body.as_deref().unwrap().contains("disk on fire"));
    assert_eq!(
        events.try_recv().unwrap(),
        event(&owner, &id, MediaState::Failed)
    );
    // Dead-lettering the same media again changes nothing and tells nobody.
    let again = media::fail_unless_ready(&env.t.db, &id, "again")
        .await
        .unwrap();
    assert_eq!(again, None);
    assert_eq!(env.notifications(&id).await.len(), 1);
    assert_eq!(env.failure(&id).await.1.unwrap(), "i/o error: disk on fire");
}

#[tokio::test]
async fn the_state_change_and_its_notification_commit_together() {
    let env = Env::new(5).await;
    let (_, id) = env.queued_media("speech-mono-16k.m4a").await;
    let Claim::Won(lease) = media::claim(&env.t.db, &id, Duration::from_secs(30))
        .await
        .unwrap()
    else {
        panic!("claim refused");
    };
    let done = Finished {
        report: "{}",
        bars: "[]",
        duration_ms: 1234,
        output_prefix: "media/x/v1/",
    };
    // A stale lease writes neither the state nor a notification.
    let mut stale = lease.clone();
    stale.token = "someone-else".to_owned();
    assert_eq!(
        media::complete(&env.t.db, &stale, &done).await.unwrap(),
        None
    );
    assert!(env.notifications(&id).await.is_empty());
    // When the notification cannot be written, the state change is rolled back.
    env.exec("DROP TABLE notifications", &[]).await;
    assert!(media::complete(&env.t.db, &lease, &done).await.is_err());
    assert_eq!(env.failure(&id).await.0, "processing");
    let failed = media::release_lease(&env.t.db, &lease, MediaState::Failed, "bad").await;
    assert!(failed.is_err());
    assert_eq!(env.failure(&id).await.0, "processing");
    // A retry (not final) needs no notification and still works.
    let retry = media::release_lease(&env.t.db, &lease, MediaState::Queued, "later").await;
    assert_eq!(retry.unwrap(), None);
    assert_eq!(
        env.failure(&id).await,
        ("queued".to_owned(), Some("later".to_owned()))
    );
}
