//! The accounts routes' pictures and downloads in real Chromium, as a web app
//! on another origin uses them, against the real `sori` binary in both
//! modes: an avatar shown from a profile and from the chat list, a chat
//! picture and its thumbnail, each in an `<img>` as given and drawn to a
//! canvas through CORS, and the data export's `download_url` followed by a
//! link to a saved archive that opens as the user's data.
//!
//! The browser side is `tests/browser/pictures.mjs`; the set-up and the
//! servers needed are those of `tests/browser_playback.rs`.

mod common;

use common::aws::Backends;
use common::browser::{self, AppPage};
use common::{api_and_worker, spawn};
use serde_json::Value;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

/// The whole browser run, at most.
const BROWSER_DEADLINE: Duration = Duration::from_secs(180);

/// Runs the page's path against `api` from the web app served as `page`,
/// saving the archive as `archive`; what the page saw.
fn run_browser(api: &str, page: AppPage, archive: &Path) -> Value {
    let archive = archive.display().to_string();
    browser::run_page_script("pictures.mjs", page, &[api, &archive], BROWSER_DEADLINE)
}

/// An RGB triple as the canvas read it.
fn rgb(v: &Value) -> [u64; 3] {
    let c: Vec<u64> = v
        .as_array()
        .unwrap_or_else(|| panic!("no colour: {v}"))
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect();
    [c[0], c[1], c[2]]
}

/// One picture as the page showed it: signed as `signed_marker` says, the
/// same size whether plain or through CORS, `size` pixels, the photo's red
/// above its blue.
fn check_picture(name: &str, shown: &Value, signed_marker: &str, size: (u64, u64)) {
    let url = shown["url"].as_str().unwrap();
    assert!(url.contains(signed_marker), "{name}: not signed: {url}");
    for how in ["plain", "cors"] {
        let got = (
            shown[how]["width"].as_u64().unwrap(),
            shown[how]["height"].as_u64().unwrap(),
        );
        assert_eq!(got, size, "{name} ({how}) shown at {got:?}");
    }
    let [r, _, b] = rgb(&shown["cors"]["top"]);
    assert!(r > 150 && b < 100, "{name}: the top is not red: {shown}");
    let [r, _, b] = rgb(&shown["cors"]["bottom"]);
    assert!(
        b > 150 && r < 100,
        "{name}: the bottom is not blue: {shown}"
    );
}

/// What alice and bob would have noticed, and the archive opened.
fn check(seen: &Value, archive: &Path, signed_marker: &str) {
    println!("{seen}");
    for avatar in ["profile_avatar", "chat_avatar"] {
        check_picture(avatar, &seen[avatar], signed_marker, (256, 256));
    }
    check_picture("image", &seen["image"], signed_marker, (600, 400));
    check_picture("thumbnail", &seen["thumbnail"], signed_marker, (320, 213));
    let name = seen["download_name"].as_str().unwrap();
    assert!(name.ends_with(".zip"), "the archive downloads as {name}");
    let file = std::fs::File::open(archive).expect("the download was saved");
    let mut zip = zip::ZipArchive::new(file).expect("the download is a ZIP");
    let mut profile = String::new();
    zip.by_name("profile.json")
        .expect("profile.json in the archive")
        .read_to_string(&mut profile)
        .unwrap();
    let handle = seen["handle"].as_str().unwrap();
    assert!(profile.contains(handle), "{profile}");
    let names: Vec<String> = zip.file_names().map(str::to_owned).collect();
    assert!(
        names.iter().any(|n| n.starts_with("avatar")),
        "no avatar in the archive: {names:?}"
    );
}

#[tokio::test]
async fn a_web_app_shows_pictures_and_downloads_the_export_embedded() {
    let dir = tempfile::tempdir().unwrap();
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
    let archive = dir.path().join("export.zip");
    let saved = archive.clone();
    let seen = tokio::task::spawn_blocking(move || run_browser(&base, page, &saved))
        .await
        .unwrap();
    check(&seen, &archive, "/v1/blobs/");
    server.stop();
}

#[tokio::test]
async fn a_web_app_shows_pictures_and_downloads_the_export_in_production() {
    let page = AppPage::bind();
    let b = Backends::new().await.allow_origins(&page.origin);
    let (api, worker) = api_and_worker(b.dir.path(), &b.envs).await;
    let base = api.base.clone();
    let archive = b.dir.path().join("export.zip");
    let saved = archive.clone();
    let seen = tokio::task::spawn_blocking(move || run_browser(&base, page, &saved))
        .await
        .unwrap();
    check(&seen, &archive, "X-Amz-Signature=");
    api.stop();
    worker.stop();
}
