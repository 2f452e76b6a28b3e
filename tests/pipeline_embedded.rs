//! End to end on embedded defaults: the real `sori` binary, a SQLite file,
//! blobs on disk and the queue in the database. Upload through a signed URL,
//! process, download with a Range request; and the faults: a worker killed
//! mid-job, duplicate deliveries, a poison file, the original briefly
//! unreadable, SIGTERM during a job (finished within the grace period, or
//! released at once after it).

use sori_db::Db;
use sori_pipeline::media::{self, Enqueued};
use sori_pipeline::queue::{EmbeddedQueue, Staging};
use sori_pipeline::store::local::{load_or_create_secret, now_ms};
use sori_pipeline::store::{original_key, LocalStore};

mod common;

use common::client::{check_outputs, ffprobe};
use common::{command, eventually, fixture, long_wav, media_notifications, media_row, spawn, Sori};
use sori_pipeline::job::JobMessage;
use sori_pipeline::queue::QueueDepth;
use std::path::Path;
use std::time::{Duration, Instant};

fn sori(dir: &Path, args: &[&str], extra: &[(&str, &str)]) -> Sori {
    let url = db_url(dir);
    let data = dir.join("data").display().to_string();
    let mut envs = vec![
        ("DATABASE_URL", url.as_str()),
        ("SORI_DATA_DIR", data.as_str()),
        ("SORI_WORKERS", "1"),
    ];
    envs.extend_from_slice(extra);
    spawn(dir, args, &envs)
}

fn db_url(dir: &Path) -> String {
    format!("sqlite://{}/sori.db", dir.display())
}

/// Migrates with `sori migrate`, then adds a user and a media awaiting upload.
async fn database_with_media(dir: &Path) -> (Db, String) {
    let envs = [
        ("DATABASE_URL", db_url(dir)),
        ("SORI_DATA_DIR", dir.join("data").display().to_string()),
    ];
    let out = command(dir, &["migrate"], &envs).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = Db::connect(&db_url(dir), 2).await.unwrap();
    sqlx::query(
        "INSERT INTO users (id, handle, handle_lower, display_name, password_hash, created_at) \
         VALUES ('u1', 'ana', 'ana', 'Ana', 'x', 0)",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO media (id, owner_id, state, content_type, size_bytes, original_key, created_at, updated_at) \
         VALUES ($1, 'u1', 'awaiting_upload', 'audio/mp4', 0, $2, $3, $3)",
    )
    .bind(&id)
    .bind(original_key(&id))
    // Created now: the API role deletes uploads left unattached for a day.
    .bind(now_ms())
    .execute(db.pool())
    .await
    .unwrap();
    (db, id)
}

/// The URL signer the server uses (same secret file, same public base).
fn signer(dir: &Path, base: &str) -> LocalStore {
    let secret = load_or_create_secret(&dir.join("data/secret")).unwrap();
    LocalStore::new(dir.join("data/blobs"), &secret, base).unwrap()
}

async fn upload(store: &LocalStore, id: &str, file: &Path, content_type: &str) {
    let bytes = std::fs::read(file).unwrap();
    let p = store
        .presign_put(
            &original_key(id),
            content_type,
            bytes.len() as u64,
            Duration::from_secs(300),
        )
        .await
        .unwrap();
    let mut req = reqwest::Client::new().put(&p.url).body(bytes);
    for (k, v) in &p.headers {
        req = req.header(k, v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

async fn mark_queued(db: &Db, id: &str) {
    let staging = Staging::Table(EmbeddedQueue::new(db.clone(), "media", 5));
    assert_eq!(
        media::mark_queued(db, &staging, id).await.unwrap(),
        Enqueued::Now
    );
}

async fn wait_state(db: &Db, id: &str, want: &[&str], within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let (state, failure): (String, Option<String>) =
            sqlx::query_as("SELECT state, failure FROM media WHERE id = $1")
                .bind(id)
                .fetch_one(db.pool())
                .await
                .unwrap();
        if want.contains(&state.as_str()) {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "media still {state} ({failure:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn output_prefix(db: &Db, id: &str) -> String {
    sqlx::query_scalar("SELECT output_prefix FROM media WHERE id = $1")
        .bind(id)
        .fetch_one(db.pool())
        .await
        .unwrap()
}

/// Output version directories that hold files.
fn output_sets(dir: &Path, id: &str) -> Vec<String> {
    let root = dir.join("data/blobs/media").join(id);
    let mut sets: Vec<String> = std::fs::read_dir(root)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .filter(|p| std::fs::read_dir(p).is_ok_and(|mut files| files.next().is_some()))
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    sets.sort();
    sets
}

#[tokio::test]
async fn upload_process_and_play_through_signed_urls() {
    let dir = tempfile::tempdir().unwrap();
    let (db, id) = database_with_media(dir.path()).await;
    let mut server = sori(dir.path(), &["serve"], &[]);
    server.wait_ready().await;
    let store = signer(dir.path(), &server.base);
    upload(&store, &id, &fixture("speech-mono-16k.m4a"), "audio/mp4").await;
    mark_queued(&db, &id).await;
    assert_eq!(
        wait_state(&db, &id, &["ready", "failed"], Duration::from_secs(60)).await,
        "ready"
    );

    let prefix = output_prefix(&db, &id).await;
    let url = store
        .sign_get(&format!("{prefix}audio.opus"), None, now_ms() + 60_000)
        .unwrap();
    let client = reqwest::Client::new();
    let part = client
        .get(&url)
        .header("Range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    let total: u64 = part.headers()["content-range"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(part.headers()["content-type"], "audio/ogg; codecs=opus");
    assert_eq!(part.bytes().await.unwrap().len(), 100);
    let whole = client.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    let bytes = whole.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, total);
    let local = dir.path().join("downloaded.opus");
    std::fs::write(&local, &bytes).unwrap();
    assert_eq!(ffprobe(&local).codec, "opus");

    let metrics = client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("sori_jobs_succeeded_total 1"), "{metrics}");
    assert_eq!(server.signal("-TERM"), Some(0));
}

#[tokio::test]
async fn a_worker_killed_mid_job_is_replaced_and_one_output_set_remains() {
    let dir = tempfile::tempdir().unwrap();
    // Long enough to be caught mid-job.
    let long = long_wav(dir.path(), 300);
    let (db, id) = database_with_media(dir.path()).await;
    let fast = [("SORI_JOB_VISIBILITY_SECS", "3")];
    let mut first = sori(dir.path(), &["worker"], &fast);
    first.wait_ready().await;
    let store = signer(dir.path(), "http://127.0.0.1:1");
    // Workers serve no blob routes: the original goes straight into the store.
    store
        .put_file(&original_key(&id), &long, "audio/wav")
        .await
        .unwrap();
    mark_queued(&db, &id).await;
    wait_state(&db, &id, &["processing"], Duration::from_secs(30)).await;
    // A second worker on the same SQLite file, then the first dies mid-job.
    let mut second = sori(dir.path(), &["worker"], &fast);
    second.wait_ready().await;
    assert_eq!(first.signal("-KILL"), None, "killed by a signal");
    assert_eq!(
        wait_state(&db, &id, &["ready", "failed"], Duration::from_secs(120)).await,
        "ready"
    );
    let sets = output_sets(dir.path(), &id);
    assert_eq!(sets.len(), 1, "{sets:?}");
    let prefix = output_prefix(&db, &id).await;
    assert!(
        prefix.ends_with(&format!("{}/", sets[0])),
        "{prefix} vs {sets:?}"
    );
    let attempts = media_row(&db, &id).await.attempts;
    assert_eq!(attempts, 2, "the killed attempt, then the second worker's");
    drop(second);
}

/// The media job queue of the SQLite file, as the workers see it.
fn job_queue(db: &Db) -> EmbeddedQueue {
    EmbeddedQueue::new(db.clone(), "media", 5)
}

async fn depth(db: &Db) -> QueueDepth {
    job_queue(db).depth().await.unwrap()
}

/// Waits until no job message waits or runs, then checks none is dead.
async fn wait_queue_empty(db: &Db) {
    eventually("the job queue empties", Duration::from_secs(60), || async {
        let d = depth(db).await;
        (d.visible == 0 && d.in_flight == 0).then_some(())
    })
    .await;
    assert_eq!(depth(db).await.dead, 0, "dead letters");
}

/// Exactly one output set, the one the media row names, whose audio
/// ffprobe reads as the original's length.
async fn check_single_output_set(dir: &Path, db: &Db, id: &str, original: &Path) {
    let row = media_row(db, id).await;
    assert_eq!(row.state, "ready", "{row:?}");
    let sets = output_sets(dir, id);
    assert_eq!(sets.len(), 1, "{sets:?}");
    let prefix = row.output_prefix.expect("an output prefix");
    assert_eq!(prefix, format!("media/{id}/{}/", sets[0]));
    check_outputs(
        &dir.join("data/blobs").join(&prefix),
        ffprobe(original).seconds,
    );
}

/// A migrated database with a media whose original is `file`, in the store.
async fn stored_media(dir: &Path, file: &Path, content_type: &str) -> (Db, String) {
    let (db, id) = database_with_media(dir).await;
    signer(dir, "http://127.0.0.1:1")
        .put_file(&original_key(&id), file, content_type)
        .await
        .unwrap();
    (db, id)
}

#[tokio::test]
async fn embedded_duplicate_deliveries_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let original = fixture("speech-mono-16k.m4a");
    let (db, id) = stored_media(dir.path(), &original, "audio/mp4").await;
    // A copy that finds the job running waits out the lease: keep it short.
    let mut worker = sori(
        dir.path(),
        &["worker"],
        &[("SORI_WORKERS", "2"), ("SORI_JOB_VISIBILITY_SECS", "3")],
    );
    worker.wait_ready().await;
    let body = JobMessage::for_media(&id).to_body();
    mark_queued(&db, &id).await;
    job_queue(&db).send(&body, Duration::ZERO).await.unwrap();
    let done = wait_state(&db, &id, &["ready", "failed"], Duration::from_secs(60)).await;
    assert_eq!(done, "ready");
    wait_queue_empty(&db).await;
    let before = media_row(&db, &id).await;
    assert_eq!(
        before.attempts, 1,
        "one claim for two deliveries: {before:?}"
    );

    // And two more once it is ready.
    job_queue(&db).send(&body, Duration::ZERO).await.unwrap();
    job_queue(&db).send(&body, Duration::ZERO).await.unwrap();
    wait_queue_empty(&db).await;
    assert_eq!(
        media_row(&db, &id).await,
        before,
        "a late delivery changed the media"
    );
    assert_eq!(media_notifications(&db, &id, "media.ready").await, 1);
    check_single_output_set(dir.path(), &db, &id, &original).await;
    worker.stop();
}

#[tokio::test]
async fn embedded_poison_file_fails_once_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (db, id) = database_with_media(dir.path()).await;
    let mut server = sori(dir.path(), &["serve"], &[]);
    server.wait_ready().await;
    let store = signer(dir.path(), &server.base);
    upload(&store, &id, &fixture("bad-garbage.m4a"), "audio/mp4").await;
    mark_queued(&db, &id).await;
    let done = wait_state(&db, &id, &["ready", "failed"], Duration::from_secs(60)).await;
    assert_eq!(done, "failed");
    let row = media_row(&db, &id).await;
    let reason = row.failure.clone().unwrap_or_default();
    assert!(reason.contains("not an audio format"), "{row:?}");
    // The message is gone, not retried nor dead-lettered.
    wait_queue_empty(&db).await;
    assert_eq!(
        media_row(&db, &id).await.attempts,
        1,
        "one receive, no retry"
    );
    assert_eq!(output_sets(dir.path(), &id), Vec::<String>::new());
    assert_eq!(media_notifications(&db, &id, "media.failed").await, 1);
    server.stop();
}

#[tokio::test]
async fn embedded_original_briefly_unreadable_is_retried_then_ready() {
    let dir = tempfile::tempdir().unwrap();
    let original = fixture("speech-mono-16k.m4a");
    let (db, id) = stored_media(dir.path(), &original, "audio/mp4").await;
    // The original's path turns into a directory: reading it fails with an
    // I/O error (permissions would not stop a test running as root).
    let path = signer(dir.path(), "http://127.0.0.1:1")
        .path_of(&original_key(&id))
        .unwrap();
    let aside = dir.path().join("original-aside");
    std::fs::rename(&path, &aside).unwrap();
    std::fs::create_dir(&path).unwrap();
    let mut worker = sori(dir.path(), &["worker"], &[]);
    worker.wait_ready().await;
    mark_queued(&db, &id).await;
    let failed = eventually(
        "the first attempt fails",
        Duration::from_secs(60),
        || async {
            let row = media_row(&db, &id).await;
            (row.state == "queued" && row.failure.is_some()).then_some(row)
        },
    )
    .await;
    assert_eq!(failed.attempts, 1, "{failed:?}");
    // The store recovers before the retry's backoff (at least a second) ends.
    std::fs::remove_dir(&path).unwrap();
    std::fs::rename(&aside, &path).unwrap();
    let done = wait_state(&db, &id, &["ready", "failed"], Duration::from_secs(60)).await;
    assert_eq!(done, "ready");
    let row = media_row(&db, &id).await;
    assert_eq!(row.attempts, 2, "retried once: {row:?}");
    assert_eq!(row.failure, None);
    check_single_output_set(dir.path(), &db, &id, &original).await;
    wait_queue_empty(&db).await;
    worker.stop();
}

#[tokio::test]
async fn embedded_sigterm_mid_job_finishes_it_and_takes_no_new_job() {
    let dir = tempfile::tempdir().unwrap();
    let long = long_wav(dir.path(), 600);
    let (db, id) = stored_media(dir.path(), &long, "audio/wav").await;
    let grace = [("SORI_SHUTDOWN_GRACE_SECS", "90")];
    let mut worker = sori(dir.path(), &["worker"], &grace);
    worker.wait_ready().await;
    mark_queued(&db, &id).await;
    wait_state(&db, &id, &["processing"], Duration::from_secs(30)).await;
    worker.send("-TERM");
    // A job queued after the signal is left for another worker.
    let later = second_media(&db, &fixture("speech-mono-16k.m4a"), dir.path()).await;
    mark_queued(&db, &later).await;
    assert_eq!(worker.wait_exit(Duration::from_secs(120)), Some(0));
    let row = media_row(&db, &id).await;
    assert_eq!(
        row.state, "ready",
        "finished within the grace period: {row:?}"
    );
    assert_eq!(row.attempts, 1);
    check_single_output_set(dir.path(), &db, &id, &long).await;
    let untouched = media_row(&db, &later).await;
    assert_eq!(
        (untouched.state.as_str(), untouched.attempts),
        ("queued", 0)
    );
    assert_eq!(depth(&db).await.visible, 1, "the later job waits");

    let mut next = sori(dir.path(), &["worker"], &[]);
    next.wait_ready().await;
    let done = wait_state(&db, &later, &["ready", "failed"], Duration::from_secs(60)).await;
    assert_eq!(done, "ready");
    wait_queue_empty(&db).await;
    next.stop();
}

#[tokio::test]
async fn embedded_sigterm_after_the_grace_period_releases_the_job_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let long = long_wav(dir.path(), 600);
    let (db, id) = stored_media(dir.path(), &long, "audio/wav").await;
    // The default 60 s visibility: only an explicit release makes the job
    // visible again before the next worker's deadline below.
    let grace = [("SORI_SHUTDOWN_GRACE_SECS", "1")];
    let mut worker = sori(dir.path(), &["worker"], &grace);
    worker.wait_ready().await;
    mark_queued(&db, &id).await;
    wait_state(&db, &id, &["processing"], Duration::from_secs(30)).await;
    let signalled = Instant::now();
    assert_eq!(worker.signal("-TERM"), Some(0), "exit status after SIGTERM");
    let took = signalled.elapsed();
    assert!(took < Duration::from_secs(15), "took {took:?} to stop");
    let row = media_row(&db, &id).await;
    assert_eq!(row.state, "queued", "given back: {row:?}");
    assert_eq!(row.failure.as_deref(), Some("interrupted by shutdown"));
    let d = depth(&db).await;
    assert_eq!((d.visible, d.in_flight), (1, 0), "visible again at once");

    let mut next = sori(dir.path(), &["worker"], &[]);
    next.wait_ready().await;
    let done = wait_state(&db, &id, &["ready", "failed"], Duration::from_secs(120)).await;
    assert_eq!(done, "ready");
    assert_eq!(media_row(&db, &id).await.attempts, 2);
    check_single_output_set(dir.path(), &db, &id, &long).await;
    wait_queue_empty(&db).await;
    next.stop();
}

/// Another media of the same user, its original already stored.
async fn second_media(db: &Db, file: &Path, dir: &Path) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO media (id, owner_id, state, content_type, size_bytes, original_key, created_at, updated_at) \
         VALUES ($1, 'u1', 'awaiting_upload', 'audio/mp4', 0, $2, $3, $3)",
    )
    .bind(&id)
    .bind(original_key(&id))
    .bind(now_ms())
    .execute(db.pool())
    .await
    .unwrap();
    signer(dir, "http://127.0.0.1:1")
        .put_file(&original_key(&id), file, "audio/mp4")
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn embedded_duplicate_during_a_long_job_leaves_no_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    // Fourteen minutes of audio (the longest clip is fifteen): the job runs
    // long enough for the copy to use up both its receives (about six
    // seconds apart) before it ends.
    let long = long_wav(dir.path(), 840);
    let (db, id) = stored_media(dir.path(), &long, "audio/wav").await;
    // A short lease and two receives per message: the copy that finds the
    // job running comes back once the lease would end and uses up its
    // receives before the job ends. The lease is six seconds because a
    // loaded 2-core machine was seen taking three seconds for one SQLite
    // write: a shorter lease (two, then three seconds) lost the job to the
    // copy while its heartbeat's renewal waited on the disk.
    let mut worker = sori(
        dir.path(),
        &["worker"],
        &[
            ("SORI_WORKERS", "2"),
            ("SORI_JOB_VISIBILITY_SECS", "6"),
            ("SORI_MAX_RECEIVES", "2"),
        ],
    );
    worker.wait_ready().await;
    mark_queued(&db, &id).await;
    wait_state(&db, &id, &["processing"], Duration::from_secs(30)).await;
    let body = JobMessage::for_media(&id).to_body();
    job_queue(&db).send(&body, Duration::ZERO).await.unwrap();
    let done = wait_state(&db, &id, &["ready", "failed"], Duration::from_secs(120)).await;
    assert_eq!(done, "ready");
    // The copy is settled without alarming anyone: no dead letter.
    wait_queue_empty(&db).await;
    assert_eq!(media_row(&db, &id).await.attempts, 1);
    check_single_output_set(dir.path(), &db, &id, &long).await;
    worker.stop();
}
