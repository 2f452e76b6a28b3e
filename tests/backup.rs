//! `sori backup` with the real binary: a copy taken while `sori serve` takes
//! writes holds every write acknowledged before it started, and a second
//! `sori serve` runs on it with the processed audio intact.
//!
//! Embedded mode is SQLite by definition, so the online copy runs on SQLite
//! whatever `SORI_TEST_DB` says; the refusal of PostgreSQL and S3 settings is
//! checked without any server.

mod common;

use common::client::{Client, Person};
use common::{command, fixture, spawn};
use reqwest::{Method, StatusCode};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Concurrent writers while the backup runs.
const WRITERS: usize = 3;

/// A write the server acknowledged, and when.
#[derive(Debug, Clone)]
enum Write {
    User(String),
    /// A post and its author's token: posts of media not ready yet are the author's alone.
    Post(String, String),
}

type Log = Arc<Mutex<Vec<(Instant, Write)>>>;

/// Signs up a user, then creates a media and a post of it, in a loop until `stop`.
async fn writer(api: Client, n: usize, stop: Arc<AtomicBool>, log: Log) {
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let person = api.sign_up(&format!("w{n}_{i}")).await;
        log.lock()
            .unwrap()
            .push((Instant::now(), Write::User(person.id.clone())));
        let (media, _) = api.create_media(&person, 1000, "audio/mp4").await;
        let post = api.post(&person, &media, "during backup").await;
        log.lock()
            .unwrap()
            .push((Instant::now(), Write::Post(post, person.token)));
    }
}

fn data_env(data: &Path) -> Vec<(String, String)> {
    vec![
        ("SORI_DATA_DIR".to_owned(), data.display().to_string()),
        ("SORI_WORKERS".to_owned(), "1".to_owned()),
        // The writers all sign up from 127.0.0.1.
        ("SORI_SIGNUPS_PER_HOUR".to_owned(), "0".to_owned()),
    ]
}

#[tokio::test]
async fn a_backup_taken_under_writes_restores_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = (dir.path().join("data"), dir.path().join("backup"));
    let mut server = spawn(dir.path(), &["serve"], &data_env(&data));
    server.wait_ready().await;
    let api = Client::new(&server.base);
    let alice = api.sign_up("alice").await;
    let media = api
        .upload_file(&alice, &fixture("speech-mono-16k.m4a"), "audio/mp4")
        .await;
    api.wait_ready(&alice, &media).await;
    let post = api.post(&alice, &media, "before the backup").await;
    let audio = api.audio(&alice, &media).await;
    assert_eq!(&audio[..4], b"OggS");

    let stop = Arc::new(AtomicBool::new(false));
    let log: Log = Arc::default();
    let writers: Vec<_> = (0..WRITERS)
        .map(|n| tokio::spawn(writer(api.clone(), n, stop.clone(), log.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let backup_dir = out.display().to_string();
    let envs = data_env(&data);
    let root = dir.path().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        command(&root, &["backup", "--out", &backup_dir], &envs)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let finished = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "sori backup: {stderr}");
    assert!(stderr.contains("blobs"), "{stderr}");
    assert!(
        out.join("secret").is_file(),
        "the signing secret is backed up"
    );
    assert_private(&out);
    server.stop();

    let log = log.lock().unwrap().clone();
    let before: Vec<_> = log.iter().filter(|(t, _)| *t < started).collect();
    let after = log.iter().filter(|(t, _)| *t > finished).count();
    assert!(
        before.len() >= 4,
        "too few writes before the backup: {log:?}"
    );
    assert!(after > 0, "the server took no writes after the backup");
    let during = log.len() - before.len() - after;
    eprintln!(
        "backup: {} writes acknowledged before it, {during} during, {after} after ({:?})",
        before.len(),
        finished - started
    );

    // The backup is a data directory: serve it and read everything back.
    let mut restored = spawn(dir.path(), &["serve"], &data_env(&out));
    restored.wait_ready().await;
    let api = Client::new(&restored.base);
    for (_, write) in &before {
        let (path, token) = match write {
            Write::User(id) => (format!("/v1/users/{id}"), &alice.token),
            Write::Post(id, author) => (format!("/v1/posts/{id}"), author),
        };
        api.try_expect(StatusCode::OK, Method::GET, &path, Some(token), None)
            .await
            .unwrap_or_else(|e| panic!("acknowledged before the backup, missing from it: {e}"));
    }
    check_alice(&api, &alice, &media, &post, &audio).await;
    restored.stop();
}

/// The backup folder is its owner's only (0700), and so is every file in it
/// (0600): it holds the signing secret, password hashes and chat media.
fn assert_private(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_private(&path);
        } else {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
}

/// Alice's token, post, ready media and its processed audio survived.
async fn check_alice(api: &Client, alice: &Person, media: &str, post: &str, audio: &[u8]) {
    let me = api
        .expect(
            StatusCode::OK,
            Method::GET,
            "/v1/me",
            Some(&alice.token),
            None,
        )
        .await;
    assert_eq!(me["handle"], "alice");
    let path = format!("/v1/posts/{post}");
    let item = api
        .expect(StatusCode::OK, Method::GET, &path, Some(&alice.token), None)
        .await;
    assert_eq!(item["state"], "ready", "{item}");
    let status = api.wait_ready(alice, media).await;
    assert_eq!(status["bars"].as_array().map(Vec::len), Some(100));
    assert_eq!(
        api.audio(alice, media).await,
        audio,
        "processed audio differs"
    );
}

/// `sori backup` with these settings fails with one line containing `needle`.
fn refused(envs: &[(&str, &str)], out: &Path, needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = out.display().to_string();
    let output = command(dir.path(), &["backup", "--out", &out], envs)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in {stderr}");
}

#[test]
fn backup_refuses_what_it_cannot_copy_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let pg = std::env::var("SORI_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    refused(&[("DATABASE_URL", pg.as_str())], &out, "pg_dump");
    let s3 = [("SORI_STORE", "s3"), ("SORI_S3_BUCKET", "media")];
    refused(&s3, &out, "versioning");
    let empty = dir.path().join("nothing").display().to_string();
    refused(&[("SORI_DATA_DIR", empty.as_str())], &out, "no database");
    assert!(!out.exists(), "a refused backup created its directory");

    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("old"), b"x").unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("sori.db"), b"").unwrap();
    let data = data.display().to_string();
    refused(&[("SORI_DATA_DIR", data.as_str())], &out, "not empty");
}
