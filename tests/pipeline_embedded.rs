//! End to end on embedded defaults: the real `sori` binary, a SQLite file,
//! blobs on disk and the queue in the database. Upload through a signed URL,
//! process, download with a Range request; a worker killed mid-job.

use sori_pipeline::media::{self, Enqueued};
use sori_pipeline::queue::{EmbeddedQueue, Staging};
use sori_pipeline::store::local::{load_or_create_secret, now_ms};
use sori_pipeline::store::{original_key, LocalStore};
use sori_pipeline::Db;

mod common;

use common::{fixture, spawn, Sori};
use std::path::Path;
use std::process::Command;
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
    let out = Command::new(env!("CARGO_BIN_EXE_sori"))
        .arg("migrate")
        .current_dir(dir)
        .env("DATABASE_URL", db_url(dir))
        .env("SORI_DATA_DIR", dir.join("data"))
        .output()
        .unwrap();
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
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
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
    let get = store
        .presign_get(&format!("{prefix}audio.opus"), Duration::from_secs(60))
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let part = client
        .get(&get.url)
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
    let whole = client.get(&get.url).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    let bytes = whole.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, total);
    let local = dir.path().join("downloaded.opus");
    std::fs::write(&local, &bytes).unwrap();
    assert_eq!(ffprobe_codec(&local), "opus");

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
    // Long enough to be caught mid-job: five minutes of tone and noise.
    let long = dir.path().join("long.wav");
    let made = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=220:duration=300,volume=0.3",
        ])
        .args(["-ac", "1", "-ar", "44100"])
        .arg(&long)
        .status()
        .expect("ffmpeg must be installed (scripts/setup.sh test)");
    assert!(made.success());
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
    let attempts: i64 =
        sqlx::query_scalar("SELECT CAST(attempts AS BIGINT) FROM media WHERE id = $1")
            .bind(&id)
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(attempts, 2, "the killed attempt, then the second worker's");
    drop(second);
}
