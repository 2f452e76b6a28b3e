//! End to end, the user's path through the real `sori` binary, in both modes,
//! with a plain HTTP client only: sign up two people, one follows the other,
//! upload a voice clip through the signed URL, wait for `ready`, post it with
//! a `#tag`, see it in the follower's feed, play it, find it in explore;
//! export the account's data and open the archive from its signed URL; then
//! delete the account and see every stored object of the clip and the
//! archive erased (the files under the data directory, the bucket's keys).
//!
//! - embedded: `sori serve` with a fresh data directory and no other setting;
//! - production: `sori migrate`, then one `sori api` and one `sori worker` on
//!   PostgreSQL (a fresh schema), S3 (a fresh bucket) and SQS (a fresh queue
//!   with a dead-letter queue) served by the local moto server; once with the
//!   client calling `/complete`, once relying on the bucket's `ObjectCreated`
//!   notification alone.
//!
//! PostgreSQL is found at `SORI_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and moto at
//! `SORI_TEST_AWS_ENDPOINT` (default `http://127.0.0.1:5000`, started by
//! `scripts/aws-test-server.sh start`). Missing servers fail the tests.

mod common;

use common::aws::Backends;
use common::client::{ffprobe, Client, Person, PASSWORD};
use common::{api_and_worker, eventually, fixture, spawn};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const FIXTURE: &str = "speech-mono-16k.m4a";
const TAG: &str = "firstclip";

/// Whether the client says the upload is done, or the bucket's event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Completion {
    Client,
    StorageEvent,
}

/// The user's path against the API at `base`. `scratch` holds the download.
/// Returns alice, who posted, and her clip's media id.
async fn user_path(base: &str, completion: Completion, scratch: &Path) -> (Person, String) {
    let api = Client::new(base);
    let alice = api.sign_up("alice").await;
    let bob = api.sign_up("bob").await;
    let follow = format!("/v1/users/{}/follow", alice.id);
    api.expect(
        StatusCode::NO_CONTENT,
        Method::PUT,
        &follow,
        Some(&bob.token),
        None,
    )
    .await;

    let original = fixture(FIXTURE);
    let bytes = std::fs::read(&original).expect("fixture");
    let media_id = api.upload(&alice, bytes, "audio/mp4").await;
    if completion == Completion::Client {
        api.complete(&alice, &media_id).await;
    }
    let media = api.wait_ready(&alice, &media_id).await;
    assert_eq!(media["bars"].as_array().map(Vec::len), Some(100), "{media}");

    let caption = format!("Morning voice note #{TAG}");
    let body = json!({"media_id": media_id, "caption": caption});
    let post = api
        .expect(
            StatusCode::CREATED,
            Method::POST,
            "/v1/posts",
            Some(&alice.token),
            Some(body),
        )
        .await;
    let post_id = post["id"].as_str().unwrap();
    assert_eq!(post["tags"], json!([TAG]), "{post}");

    let feed = api
        .expect(
            StatusCode::OK,
            Method::GET,
            "/v1/feed",
            Some(&bob.token),
            None,
        )
        .await;
    let item = find(&feed, post_id).unwrap_or_else(|| panic!("not in bob's feed: {feed}"));
    check_item(&api, &bob, item, scratch).await;

    let explore = format!("/v1/explore?tag={TAG}");
    let found = api
        .expect(
            StatusCode::OK,
            Method::GET,
            &explore,
            Some(&bob.token),
            None,
        )
        .await;
    assert!(find(&found, post_id).is_some(), "not in explore: {found}");
    (alice, media_id)
}

/// Alice exports her data: the archive, fetched with no token from its
/// signed URL, holds her profile and her clip's original as uploaded.
async fn export(base: &str, alice: &Person, media_id: &str) {
    let api = Client::new(base);
    let me = Some(alice.token.as_str());
    api.expect(
        StatusCode::ACCEPTED,
        Method::POST,
        "/v1/me/export",
        me,
        None,
    )
    .await;
    let ready = eventually("the export is ready", Duration::from_secs(60), || async {
        let status = api
            .expect(StatusCode::OK, Method::GET, "/v1/me/export", me, None)
            .await;
        (status["state"] == "ready").then_some(status)
    })
    .await;
    let url = ready["download_url"].as_str().unwrap();
    let archive = reqwest::get(url).await.unwrap();
    assert_eq!(archive.status(), StatusCode::OK);
    let bytes = archive.bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a ZIP");
    let original = std::fs::read(fixture(FIXTURE)).unwrap();
    let mut got = Vec::new();
    std::io::Read::read_to_end(
        &mut zip.by_name(&format!("media/{media_id}/original")).unwrap(),
        &mut got,
    )
    .unwrap();
    assert!(
        got == original,
        "the archive's original differs from the upload"
    );
    assert!(zip.by_name(&format!("media/{media_id}/audio.opus")).is_ok());
    let mut profile = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("profile.json").unwrap(), &mut profile).unwrap();
    assert!(profile.contains("\"alice\""), "{profile}");
}

/// Alice deletes her account: her token stops working at once, and soon no
/// stored object (original, outputs, export archive) of hers is left among
/// `objects()`.
async fn delete_account(
    base: &str,
    alice: &Person,
    media_id: &str,
    objects: impl AsyncFn() -> Vec<String>,
) {
    let api = Client::new(base);
    let hers = async || -> usize {
        let all = objects().await;
        let archive = format!("exports/{}/", alice.id);
        all.iter()
            .filter(|key| key.contains(media_id) || key.contains(&archive))
            .count()
    };
    // The original, the four outputs and the archive, at least.
    assert!(hers().await >= 6, "{:?}", objects().await);
    let body = json!({ "password": PASSWORD });
    let me = Some(alice.token.as_str());
    api.expect(
        StatusCode::ACCEPTED,
        Method::DELETE,
        "/v1/me",
        me,
        Some(body),
    )
    .await;
    api.expect(StatusCode::UNAUTHORIZED, Method::GET, "/v1/me", me, None)
        .await;
    eventually(
        "her stored objects are erased",
        Duration::from_secs(60),
        || async { (hers().await == 0).then_some(()) },
    )
    .await;
}

/// Every file under `dir`, as paths relative to it.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(rel) = path.strip_prefix(dir) {
                out.push(rel.display().to_string());
            }
        }
    }
    out
}

fn find<'a>(page: &'a Value, post_id: &str) -> Option<&'a Value> {
    page["items"]
        .as_array()?
        .iter()
        .find(|p| p["id"] == post_id)
}

/// A feed item as bob sees it: ready, with duration and bars, and audio
/// that an independent decoder reads as the mono 48 kHz Ogg Opus of the
/// fixture's length.
async fn check_item(api: &Client, bob: &Person, item: &Value, scratch: &Path) {
    let expected = ffprobe(&fixture(FIXTURE)).seconds;
    assert_eq!(item["state"], "ready", "{item}");
    let duration_ms = item["duration_ms"].as_i64().expect("duration_ms");
    assert!(
        (duration_ms as f64 / 1000.0 - expected).abs() < 0.1,
        "duration {duration_ms} ms vs fixture {expected} s"
    );
    let bars = item["bars"].as_array().expect("bars");
    assert_eq!(bars.len(), 100, "{item}");
    assert!(bars.iter().all(|b| b.as_u64().is_some_and(|v| v <= 31)));
    assert!(bars.iter().any(|b| b.as_u64() > Some(0)), "all bars silent");

    // Every variant plays as given, with no token: what a player does.
    let audio_url = item["audio_url"].as_str().expect("audio_url");
    assert_eq!(item["audio_urls"]["opus"], audio_url, "{item}");
    for variant in ["caf", "webm"] {
        let url = item["audio_urls"][variant].as_str().expect("variant URL");
        let bytes = api.play(url).await;
        let local = scratch.join(format!("played.{variant}"));
        std::fs::write(&local, &bytes).unwrap();
        assert_eq!(ffprobe(&local).codec, "opus", "{variant}");
    }
    let waveform = api
        .play(item["waveform_url"].as_str().expect("waveform_url"))
        .await;
    let waveform: Value = serde_json::from_slice(&waveform).expect("waveform JSON");
    assert_eq!(waveform["version"], 2, "{waveform}");
    let audio = api.play(audio_url).await;
    let media_id = item["media_id"].as_str().expect("media_id");
    assert_eq!(
        api.audio(bob, media_id).await,
        audio,
        "the audio route's redirect"
    );
    assert_eq!(&audio[..4], b"OggS", "not an Ogg stream");
    assert_eq!(&audio[28..36], b"OpusHead", "first packet not OpusHead");
    let local = scratch.join("played.opus");
    std::fs::write(&local, &audio).unwrap();
    let probe = ffprobe(&local);
    assert_eq!(probe.codec, "opus", "{probe:?}");
    assert_eq!(probe.format, "ogg", "{probe:?}");
    assert_eq!(probe.sample_rate, 48_000, "{probe:?}");
    assert_eq!(probe.channels, 1, "{probe:?}");
    assert!(
        (probe.seconds - expected).abs() < 0.05,
        "played {} s vs fixture {expected} s",
        probe.seconds
    );
}

#[tokio::test]
async fn embedded_user_path() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let envs = [("SORI_DATA_DIR".to_owned(), data)];
    let mut server = spawn(dir.path(), &["serve"], &envs);
    server.wait_ready().await;
    let (alice, media_id) = user_path(&server.base, Completion::Client, dir.path()).await;
    export(&server.base, &alice, &media_id).await;
    let blobs = dir.path().join("data").join("blobs");
    delete_account(&server.base, &alice, &media_id, async || files(&blobs)).await;
    server.stop();
}

#[tokio::test]
async fn production_user_path() {
    production(Completion::Client).await;
}

#[tokio::test]
async fn production_user_path_completed_by_the_storage_event() {
    production(Completion::StorageEvent).await;
}

/// `sori migrate`, one `sori api` and one `sori worker` on PostgreSQL, S3 and SQS.
async fn production(completion: Completion) {
    let b = Backends::new().await;
    let (aws, bucket, queue, dir) = (&b.aws, &b.bucket, &b.queue, &b.dir);
    if completion == Completion::StorageEvent {
        aws.notify(bucket, &queue.arn).await;
    }
    let (api, worker) = api_and_worker(dir.path(), &b.envs).await;

    let (alice, media_id) = user_path(&api.base, completion, dir.path()).await;
    assert_eq!(aws.queue_length(&queue.dead_letter_url).await, 0);
    export(&api.base, &alice, &media_id).await;
    delete_account(&api.base, &alice, &media_id, async || {
        aws.keys(bucket, "").await
    })
    .await;
    api.stop();
    worker.stop();
}
