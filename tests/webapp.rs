//! The bundled web app at `/`, in real Chromium, as two people use it,
//! against the real `sori` binary in both modes: sign-up, recording and
//! posting, search, follow, feed, playing to the end and seeking, likes,
//! voice and text comments, live notifications, explore by tag, chat with
//! live delivery and read markers (text, voice, a photo), playlists, profile
//! editing and logout; axe-core on every screen, no console error, no
//! request beyond the server (and, in production, the object store).
//!
//! The browser side is `tests/browser/webapp.mjs`. Screenshots of the feed
//! (phone width) and of a conversation (desktop width) go to
//! `SORI_SCREENSHOT_DIR` when it is set (the README's come from there), to
//! the test's temporary folder otherwise.

mod common;

use common::aws::Backends;
use common::{api_and_worker, browser, spawn};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// The whole two-person run, at most.
const DEADLINE: Duration = Duration::from_secs(420);

/// What the fake microphone says (it loops).
const SPEECH: &str = "Good morning. This is Sori, a voice network. Leave me a message.";

/// The run against `base`, the allowed origins besides the server's own.
fn run(base: &str, dir: &Path, store_origins: &[&str]) -> Value {
    let wav = browser::speech_wav(dir, SPEECH);
    let shots = std::env::var("SORI_SCREENSHOT_DIR").unwrap_or_else(|_| dir.display().to_string());
    let image = Path::new(env!("CARGO_MANIFEST_DIR")).join("web/icon-192.png");
    let allowed = serde_json::to_string(store_origins).unwrap();
    browser::run_script(
        "webapp.mjs",
        &[
            base,
            &wav.display().to_string(),
            &allowed,
            &shots,
            &image.display().to_string(),
        ],
        DEADLINE,
    )
}

/// What the two people would have noticed.
fn check(seen: &Value) {
    println!("{seen}");
    let list = |key: &str| seen[key].as_array().cloned().unwrap_or_default();
    assert!(
        list("violations").is_empty(),
        "accessibility: {:#?}",
        list("violations")
    );
    assert!(
        list("console_errors").is_empty(),
        "console errors: {:#?}",
        list("console_errors")
    );
    assert!(
        list("foreign_requests").is_empty(),
        "requests elsewhere: {:#?}",
        list("foreign_requests")
    );
    assert!(
        list("audited").len() >= 17,
        "screens audited: {:?}",
        list("audited")
    );
    let loudest = seen["meter_loudest"].as_f64().unwrap();
    assert!(loudest > 0.2, "the level meter barely moved: {loudest}");
    assert_eq!(
        seen["upload_progress"], 1.0,
        "the upload bar did not reach the end"
    );
    let played = seen["played_duration"].as_f64().unwrap();
    assert!(
        (played - 3.0).abs() < 0.6,
        "played {played} s of a 3 s recording"
    );
    let time = seen["time_after_play"].as_str().unwrap();
    assert_eq!(
        time, "0:03 / 0:03",
        "the time shown after playing to the end"
    );
    let seeked = seen["seeked_to"].as_f64().unwrap();
    assert!(
        (seeked - 1.0).abs() < 0.15,
        "ten steps of the scrubber went to {seeked} s"
    );
    assert!(seen["a_unread_live"].as_i64().unwrap() >= 3);
    assert_eq!(
        seen["a_unread_after_opening"], 0,
        "opening the list leaves them unread"
    );
    let voice = seen["voice_message_duration"].as_f64().unwrap();
    assert!(
        (voice - 2.0).abs() < 0.6,
        "a 2 s voice message plays {voice} s"
    );
    assert_eq!(seen["photo_width"], 192);
    assert_eq!(seen["edited_and_unsent_live"], true);
    assert_eq!(seen["follow_request_approved"], true);
    assert_eq!(
        seen["like_switches_after_reload"],
        json!([true, false, true])
    );
    let order = |key: &str| -> Vec<String> {
        serde_json::from_value(seen[key].clone()).unwrap_or_else(|e| panic!("{key}: {e}"))
    };
    let (ana, ben) = ("Morning hello from Ana #sori", "Ben says hi back");
    assert_eq!(order("playlist_added"), [ana, ben], "added in this order");
    assert_eq!(
        order("playlist_dragged"),
        [ben, ana],
        "dragged, then reloaded"
    );
    assert_eq!(
        order("playlist_keyboard"),
        [ana, ben],
        "moved down from the keyboard"
    );
    assert_eq!(seen["playlist_played_through"], true);
    assert_eq!(seen["service_worker"], "activated");
    assert_eq!(seen["offline_start"], true);
    assert_eq!(seen["logged_out"], true);
    assert_eq!(seen["logged_back_in"], true);
}

#[tokio::test]
async fn two_people_use_the_web_app_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let envs = [(
        "SORI_DATA_DIR".to_owned(),
        dir.path().join("data").display().to_string(),
    )];
    let mut server = spawn(dir.path(), &["serve"], &envs);
    server.wait_ready().await;
    let base = server.base.clone();
    let path = dir.path().to_owned();
    let seen = tokio::task::spawn_blocking(move || run(&base, &path, &[]))
        .await
        .unwrap();
    check(&seen);
    assert!(seen["played_url"]
        .as_str()
        .unwrap()
        .contains("/v1/blobs/media/"));
    server.stop();
}

#[tokio::test]
async fn two_people_use_the_web_app_in_production() {
    let b = Backends::new().await;
    let (api, worker) = api_and_worker(b.dir.path(), &b.envs).await;
    let base = api.base.clone();
    let path = b.dir.path().to_owned();
    let store = b.aws.endpoint.trim_end_matches('/').to_owned();
    let seen = tokio::task::spawn_blocking(move || run(&base, &path, &[store.as_str()]))
        .await
        .unwrap();
    check(&seen);
    assert!(seen["played_url"]
        .as_str()
        .unwrap()
        .contains("X-Amz-Signature="));
    api.stop();
    worker.stop();
}
