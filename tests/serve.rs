//! End to end: the real `sori` binary, started the way a user starts it.

mod common;

use common::client::Client;
use common::{command, sori_command, spawn};
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn serve_runs_on_embedded_defaults_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut sori = spawn(dir.path(), &["serve"], &[] as &[(&str, &str)]);
    sori.wait_ready().await;
    let api = Client::new(&sori.base);
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs/"] {
        let (status, _) = api.call(Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    // The embedded database lives in ./data by default.
    assert!(dir.path().join("data/sori.db").exists());
    sori.stop();
}

#[test]
fn a_bad_setting_ends_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let unreachable = [("DATABASE_URL", "postgres://sori@127.0.0.1:1/none")];
    let out = command(dir.path(), &["migrate"], &unreachable)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: DATABASE_URL=postgres://sori@127.0.0.1:1/none"));
    assert!(stderr.contains("Connection refused"), "{stderr}");

    let out = command(dir.path(), &["serve"], &[("SORI_STORE", "floppy")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.lines().next().unwrap().contains("--store"),
        "{stderr}"
    );
}

#[test]
fn help_lists_every_command_and_setting() {
    let out = sori_command().arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for command in [
        "serve",
        "api",
        "worker",
        "migrate",
        "process",
        "bench",
        "backup",
        "bucket-cors",
    ] {
        assert!(
            help.contains(command),
            "sori --help does not mention {command}"
        );
    }
    // A deployment reads its settings from one of the two: both name each.
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example"))
        .expect(".env.example");
    let settings = [
        "DATABASE_URL",
        "SORI_LISTEN",
        "SORI_PUBLIC_URL",
        "SORI_DATA_DIR",
        "SORI_STORE",
        "SORI_S3_BUCKET",
        "SORI_QUEUE",
        "SORI_SQS_QUEUE_URL",
        "SORI_WORKERS",
        "SORI_MAX_RECEIVES",
        "SORI_JOB_VISIBILITY_SECS",
        "SORI_JOB_TIMEOUT_SECS",
        "SORI_BLOB_SECRET",
        "SORI_CORS_ORIGINS",
        "SORI_MEDIA_URL_TTL_SECS",
        "SORI_MEDIA_TTL_SECS",
        "SORI_WS_PING_SECS",
        "SORI_WS_PONG_TIMEOUT_SECS",
        "SORI_WS_QUEUE",
        "SORI_PUSH_WEBHOOK_URL",
        "SORI_PUSH_WEBHOOK_SECRET",
        "SORI_PUSH_TIMEOUT_SECS",
        "SORI_PUSH_MAX_ATTEMPTS",
        "SORI_PUSH_RETENTION_SECS",
        "SORI_SIGNUPS_PER_HOUR",
        "SORI_MEDIA_PER_HOUR",
        "SORI_SESSION_CACHE_MS",
        "SORI_FEED_CACHE_MS",
        "SORI_MESSAGES_PER_MINUTE",
        "SORI_METRICS_TOKEN",
        "SORI_LOG_FORMAT",
        "SORI_SHUTDOWN_GRACE_SECS",
        "SORI_TRUSTED_PROXIES",
        "SORI_HEADER_TIMEOUT_SECS",
        "SORI_REQUEST_TIMEOUT_SECS",
        "SORI_IDLE_TIMEOUT_SECS",
        "SORI_MAX_CONNECTIONS",
        "SORI_PUSH_MESSAGE_TEXT",
        "RUST_LOG",
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ];
    for setting in settings {
        assert!(
            help.contains(setting),
            "sori --help does not mention {setting}"
        );
        let line = format!("{setting}=");
        assert!(example.contains(&line), ".env.example lacks {line}");
    }
    // And the list above is every setting there is: a new one joins it.
    for shown in help.lines().filter_map(|l| l.trim().strip_prefix("[env: ")) {
        let name = shown.split(['=', ']']).next().unwrap();
        assert!(settings.contains(&name), "{name} is missing from this test");
    }
    let out = sori_command().args(["process", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in ["--out", "--target-lufs", "--true-peak", "--bitrate"] {
        assert!(help.contains(flag), "sori process --help lacks {flag}");
    }
}
