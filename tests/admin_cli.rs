//! `sori admin grant|revoke HANDLE` with the real binary on SQLite: the role
//! it sets is what lets a user reach the moderators' queue of a running
//! `sori serve` on the same database.

mod common;

use common::client::Client;
use common::{command, spawn};
use reqwest::{Method, StatusCode};
use std::path::Path;

/// `sori admin ARGS` on the database at `url`: (success, stdout, stderr).
fn admin(dir: &Path, url: &str, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["admin"];
    all.extend_from_slice(args);
    let out = command(dir, &all, &[("DATABASE_URL", url)])
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[tokio::test]
async fn granting_and_revoking_admin_decides_who_sees_the_reports() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/sori.db", dir.path().display());
    let mut sori = spawn(dir.path(), &["serve"], &[("DATABASE_URL", url.as_str())]);
    sori.wait_ready().await;
    let api = Client::new(&sori.base);
    let alice = api.sign_up("Alice").await;
    let reports = || async {
        let token = Some(alice.token.as_str());
        api.call(Method::GET, "/v1/reports", token, None).await.0
    };
    assert_eq!(reports().await, StatusCode::FORBIDDEN);

    let (ok, stdout, stderr) = admin(dir.path(), &url, &["grant", "alice"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "alice is now an admin");
    assert_eq!(reports().await, StatusCode::OK);

    let (ok, stdout, stderr) = admin(dir.path(), &url, &["revoke", "ALICE"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "ALICE is no longer an admin");
    assert_eq!(reports().await, StatusCode::FORBIDDEN);

    let (ok, _, stderr) = admin(dir.path(), &url, &["grant", "nobody"]);
    assert!(!ok);
    assert_eq!(stderr.trim(), "error: no user with handle nobody");
    sori.stop();
}
