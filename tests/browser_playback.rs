//! A web app on another origin, in real Chromium, through the whole path
//! against the real `sori` binary in both modes: sign up, record from a fake
//! microphone (speech made here with espeak-ng) with `MediaRecorder`, upload
//! through the signed URL, complete, wait for ready, post, read the feed,
//! play the item's `audio_url` as given in an `<audio>` element to `ended`
//! with a finite duration, seek, and fetch a range of it cross-origin.
//!
//! The browser side is `tests/browser/playback.mjs`, driven through
//! playwright-core with Debian's Chromium (`/usr/bin/chromium`); both are
//! installed by `scripts/setup.sh test`, and a missing one fails the test
//! with that instruction. Production mode needs PostgreSQL and the moto
//! server, as `tests/user_path.rs` does.

mod common;

use common::aws::Backends;
use common::browser::{self, AppPage};
use common::{api_and_worker, spawn};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// How long the page records from the fake microphone.
const RECORD_MS: u64 = 3000;
/// The whole browser run, at most.
const BROWSER_DEADLINE: Duration = Duration::from_secs(180);

/// What the fake microphone says.
const SPEECH: &str = "Hello from the browser. This is a voice post recorded by a web app.";

/// Runs the page's path against `api` with the web app served as `page`;
/// what the page measured.
fn run_browser(api: &str, page: AppPage, wav: &Path) -> Value {
    let record_ms = RECORD_MS.to_string();
    let wav = wav.display().to_string();
    browser::run_page_script(
        "playback.mjs",
        page,
        &[api, &wav, &record_ms],
        BROWSER_DEADLINE,
    )
}

/// What a listener would check: it played to the end, its length is the
/// clip's, seeking landed where asked, and a range fetch got the Ogg start.
fn check_playback(seen: &Value, signed_marker: &str) {
    println!("{seen}");
    let url = seen["audio_url"].as_str().unwrap();
    assert!(url.contains(signed_marker), "not a signed URL: {url}");
    assert_eq!(seen["ended"], true);
    let duration = seen["duration"].as_f64().expect("a finite duration");
    let clip = seen["item_duration_ms"].as_f64().unwrap() / 1000.0;
    let recorded = RECORD_MS as f64 / 1000.0;
    assert!(
        (duration - clip).abs() < 0.1,
        "played {duration} s, the clip has {clip} s"
    );
    assert!(
        (duration - recorded).abs() < 0.6,
        "played {duration} s of a {recorded} s recording"
    );
    let seeked = seen["seeked_to"].as_f64().unwrap();
    assert!((seeked - duration / 2.0).abs() < 0.1, "seeked to {seeked}");
    let seekable = seen["seekable_end"].as_f64().unwrap();
    assert!((seekable - duration).abs() < 0.1, "seekable to {seekable}");
    assert_eq!(seen["range_status"], 206);
    assert_eq!(seen["range_magic"], "OggS");
}

#[tokio::test]
async fn a_web_app_on_another_origin_records_posts_and_plays_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let wav = browser::speech_wav(dir.path(), SPEECH);
    let page = AppPage::bind();
    let envs = [
        (
            "SORI_DATA_DIR".to_owned(),
            dir.path().join("data").display().to_string(),
        ),
        ("SORI_CORS_ORIGINS".to_owned(), page.origin.clone()),
    ];
    let mut server = spawn(dir.path(), &["serve"], &envs);
    server.wait_ready().await;
    let base = server.base.clone();
    let seen = tokio::task::spawn_blocking(move || run_browser(&base, page, &wav))
        .await
        .unwrap();
    check_playback(&seen, "/v1/blobs/media/");
    server.stop();
}

#[tokio::test]
async fn a_web_app_on_another_origin_records_posts_and_plays_in_production() {
    let page = AppPage::bind();
    let b = Backends::new().await.allow_origins(&page.origin);
    let wav = browser::speech_wav(b.dir.path(), SPEECH);
    let (api, worker) = api_and_worker(b.dir.path(), &b.envs).await;
    let base = api.base.clone();
    let seen = tokio::task::spawn_blocking(move || run_browser(&base, page, &wav))
        .await
        .unwrap();
    check_playback(&seen, "X-Amz-Signature=");
    api.stop();
    worker.stop();
}
