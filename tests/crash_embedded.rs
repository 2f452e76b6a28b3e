//! `kill -9` of `sori serve` during writes loses no acknowledged write: with
//! several clients signing up and posting, the process is SIGKILLed at a
//! random moment, restarted on the same data directory, and every write it
//! answered 201 to must be there; uploads completed before the kill must
//! still end `ready` (the queue resumes). Repeated for several rounds on the
//! same directory.
//!
//! Embedded mode is SQLite by definition (WAL, `synchronous=FULL`), so this
//! runs on SQLite whatever `SORI_TEST_DB` says. `SORI_CRASH_ROUNDS` sets the
//! number of kills (default 3); the figures are printed (`--nocapture`).

mod common;

use common::client::{Client, Person};
use common::{fixture, spawn, Sori};
use reqwest::{Method, StatusCode};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Concurrent writing clients.
const WRITERS: usize = 4;
/// Uploads completed just before the writers start, per round.
const UPLOADS: usize = 2;

/// Writes the server acknowledged.
#[derive(Debug, Default, Clone)]
struct Acked {
    users: Vec<String>,
    /// Post ids with their author's token: a post of media not ready yet is the author's alone.
    posts: Vec<(String, String)>,
}

fn start(dir: &Path) -> Sori {
    let data = dir.join("data").display().to_string();
    let envs = [
        ("SORI_DATA_DIR", data.as_str()),
        ("SORI_WORKERS", "1"),
        // A job the killed process held is retried this soon after the restart.
        ("SORI_JOB_VISIBILITY_SECS", "3"),
        ("SORI_SIGNUPS_PER_HOUR", "0"),
    ];
    spawn(dir, &["serve"], &envs)
}

/// Signs up and posts until the server stops answering, recording each
/// write as soon as it is acknowledged.
async fn writer(api: Client, round: usize, n: usize, acked: Arc<Mutex<Acked>>) {
    for i in 0.. {
        let Ok(person) = api.try_sign_up(&format!("r{round}w{n}_{i}")).await else {
            return;
        };
        acked.lock().unwrap().users.push(person.id.clone());
        let Ok((media, _)) = api.try_create_media(&person, 1000, "audio/mp4").await else {
            return;
        };
        let Ok(post) = api.try_post(&person, &media, "crash test").await else {
            return;
        };
        acked
            .lock()
            .unwrap()
            .posts
            .push((post, person.token.clone()));
    }
}

/// A pseudo-random kill delay between 0.5 and 3.5 s, printed so a failing
/// run can be told apart.
fn kill_delay() -> Duration {
    Duration::from_millis(500 + (uuid::Uuid::new_v4().as_u128() % 3000) as u64)
}

/// Every acknowledged user and post answers 200 on the restarted server.
async fn check(api: &Client, reader: &Person, acked: &Acked) -> usize {
    let users = acked
        .users
        .iter()
        .map(|id| (format!("/v1/users/{id}"), &reader.token));
    let posts = acked
        .posts
        .iter()
        .map(|(id, author)| (format!("/v1/posts/{id}"), author));
    let mut lost = Vec::new();
    for (path, token) in users.chain(posts) {
        let (status, _) = api.call(Method::GET, &path, Some(token), None).await;
        if status != StatusCode::OK {
            lost.push(path);
        }
    }
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    acked.users.len() + acked.posts.len()
}

/// How many of `uploads` are not `ready` yet.
async fn unfinished(api: &Client, owner: &Person, uploads: &[String]) -> usize {
    let mut count = 0;
    for id in uploads {
        let path = format!("/v1/media/{id}");
        let (_, media) = api.call(Method::GET, &path, Some(&owner.token), None).await;
        count += usize::from(media["state"] != "ready");
    }
    count
}

#[tokio::test]
async fn sigkill_during_writes_loses_no_acknowledged_write() {
    let rounds: usize = std::env::var("SORI_CRASH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    server.wait_ready().await;
    let api = Client::new(&server.base);
    let owner = api.sign_up("owner").await;
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut uploads = Vec::new();
    let mut unfinished_at_kill = 0;
    for round in 0..rounds {
        let api = Client::new(&server.base);
        let writers: Vec<_> = (0..WRITERS)
            .map(|n| tokio::spawn(writer(api.clone(), round, n, acked.clone())))
            .collect();
        let delay = kill_delay();
        tokio::time::sleep(delay).await;
        // Completed just before the kill, so the queue holds them when it comes.
        for _ in 0..UPLOADS {
            let id = api
                .upload_file(&owner, &fixture("speech-mono-16k.m4a"), "audio/mp4")
                .await;
            uploads.push(id);
        }
        unfinished_at_kill += unfinished(&api, &owner, &uploads).await;
        assert_eq!(server.signal("-KILL"), None, "sori was not killed");
        for w in writers {
            w.await.unwrap();
        }

        server = start(dir.path());
        server.wait_ready().await;
        let api = Client::new(&server.base);
        let so_far = acked.lock().unwrap().clone();
        let checked = check(&api, &owner, &so_far).await;
        for id in &uploads {
            api.wait_ready(&owner, id).await;
        }
        eprintln!(
            "round {round}: killed after {delay:?}; {checked} acknowledged writes so far, 0 lost; \
             {} completed uploads ready ({unfinished_at_kill} were queued or processing at a kill)",
            uploads.len()
        );
    }
    assert!(
        unfinished_at_kill > 0,
        "no upload was in the queue at a kill"
    );
    server.stop();
}
