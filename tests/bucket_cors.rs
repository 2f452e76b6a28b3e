//! The S3 bucket's CORS rules in production mode, against the moto server
//! (which itself lets any origin through, so only reading the configuration
//! back can tell whether it is set): `sori api` warns in one line at start
//! when the rules leave out an origin of `SORI_CORS_ORIGINS`, `sori
//! bucket-cors` applies them, and the configuration read back from the
//! bucket allows each origin to upload and play.

mod common;

use common::aws::Backends;
use common::{command, free_port, spawn_logged};
use std::path::Path;

const APP: &str = "https://app.sori.example";
const WARNING: &str = "CORS rules do not let";

/// Starts `sori api` with `envs`, waits until it is ready, stops it, and
/// returns what it logged.
async fn api_log(dir: &Path, envs: &[(String, String)], name: &str) -> String {
    let log = dir.join(name);
    let out = dir.join(format!("{name}.out"));
    let mut api = spawn_logged(dir, &["api"], envs, &out, &log);
    api.wait_ready().await;
    api.stop();
    std::fs::read_to_string(&log).unwrap()
}

fn warnings(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains(WARNING)).collect()
}

#[tokio::test]
async fn the_bucket_gets_the_rules_browsers_need_and_the_api_says_when_it_lacks_them() {
    let local = format!("http://127.0.0.1:{}", free_port());
    let b = Backends::new()
        .await
        .allow_origins(&format!("{APP},{local}"));
    let (aws, bucket, dir, envs) = (&b.aws, &b.bucket, &b.dir, &b.envs);
    let migrated = command(dir.path(), &["migrate"], envs).output().unwrap();
    assert!(migrated.status.success());
    assert_eq!(aws.cors(bucket).await, None, "a fresh bucket has no rules");

    // No rules yet: one warning line naming both origins and the fix.
    let log = api_log(dir.path(), envs, "first.log").await;
    let found = warnings(&log);
    assert_eq!(found.len(), 1, "{log}");
    assert!(
        found[0].contains(&format!("{APP}, {local}")),
        "{}",
        found[0]
    );
    assert!(found[0].contains("sori bucket-cors"), "{}", found[0]);
    assert!(found[0].contains(bucket.as_str()), "{}", found[0]);

    // Rules for the app's origin only: the warning names the other one.
    let mut only_app = envs.clone();
    only_app.retain(|(k, _)| k != "SORI_CORS_ORIGINS");
    only_app.push(("SORI_CORS_ORIGINS".to_owned(), APP.to_owned()));
    let out = command(dir.path(), &["bucket-cors"], &only_app)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = api_log(dir.path(), envs, "partial.log").await;
    let found = warnings(&log);
    assert_eq!(found.len(), 1, "{log}");
    assert!(
        found[0].contains(&local) && !found[0].contains(APP),
        "{}",
        found[0]
    );

    // Both origins: the bucket's configuration, read back, allows them to
    // upload with the signed type and play with ranges, and exposes what a
    // player reads; the API no longer warns.
    let out = command(dir.path(), &["bucket-cors"], envs)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("CORS allows {APP}, {local}")),
        "{stdout}"
    );
    let xml = aws.cors(bucket).await.expect("CORS configuration");
    for expected in [
        format!("<AllowedOrigin>{APP}</AllowedOrigin>"),
        format!("<AllowedOrigin>{local}</AllowedOrigin>"),
        "<AllowedMethod>GET</AllowedMethod>".to_owned(),
        "<AllowedMethod>HEAD</AllowedMethod>".to_owned(),
        "<AllowedMethod>PUT</AllowedMethod>".to_owned(),
        "<AllowedHeader>content-type</AllowedHeader>".to_owned(),
        "<AllowedHeader>range</AllowedHeader>".to_owned(),
        "<ExposeHeader>ETag</ExposeHeader>".to_owned(),
        "<ExposeHeader>Content-Range</ExposeHeader>".to_owned(),
        "<ExposeHeader>Accept-Ranges</ExposeHeader>".to_owned(),
    ] {
        assert!(xml.contains(&expected), "{expected} not in {xml}");
    }
    let log = api_log(dir.path(), envs, "configured.log").await;
    assert!(warnings(&log).is_empty(), "{log}");

    // Nothing to apply without origins: a one-line reason.
    let mut none = envs.clone();
    none.retain(|(k, _)| k != "SORI_CORS_ORIGINS");
    let out = command(dir.path(), &["bucket-cors"], &none)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("SORI_CORS_ORIGINS"), "{stderr}");
}
