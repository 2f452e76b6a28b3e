//! End to end: the real `sori` binary, started the way a user starts it.

mod common;

use common::client::{Client, PASSWORD};
use common::smtp::{code_in, free_port, header, SmtpServer};
use common::{command, eventually, sori_command, spawn};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;

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
    // The container's HEALTHCHECK: 0 while ready, a one-line reason after.
    let listen = sori.base.trim_start_matches("http://").to_owned();
    let healthcheck = || {
        command(
            dir.path(),
            &["healthcheck"],
            &[("SORI_LISTEN", listen.as_str())],
        )
        .output()
        .unwrap()
    };
    let ready = healthcheck();
    assert!(
        ready.status.success(),
        "{}",
        String::from_utf8_lossy(&ready.stderr)
    );
    sori.stop();
    let gone = healthcheck();
    assert!(!gone.status.success());
    let stderr = String::from_utf8(gone.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("healthcheck"), "{stderr}");
}

#[tokio::test]
async fn serve_mails_a_password_reset_through_smtp() {
    let smtp = SmtpServer::start(free_port());
    let dir = tempfile::tempdir().unwrap();
    let url = format!("smtp://127.0.0.1:{}", smtp.port);
    let envs = [
        ("SORI_SMTP_URL", url.as_str()),
        ("SORI_MAIL_FROM", "Sori <no-reply@sori.test>"),
    ];
    let mut sori = spawn(dir.path(), &["serve"], &envs);
    sori.wait_ready().await;
    let api = Client::new(&sori.base);
    let alice = api.sign_up("alice").await;
    let me = Some(alice.token.as_str());
    let email = json!({"email": "alice@example.com"});
    api.expect(
        StatusCode::ACCEPTED,
        Method::PUT,
        "/v1/me/email",
        me,
        Some(email),
    )
    .await;
    // The process's own relay sends it.
    let mail = eventually("the code arrives", Duration::from_secs(30), || async {
        smtp.messages().pop()
    })
    .await;
    assert_eq!(header(&mail, "To"), "alice@example.com");
    let code = json!({ "code": code_in(&mail) });
    api.expect(
        StatusCode::OK,
        Method::POST,
        "/v1/me/email/verify",
        me,
        Some(code),
    )
    .await;
    let ask = json!({"email": "alice@example.com"});
    api.expect(
        StatusCode::ACCEPTED,
        Method::POST,
        "/v1/auth/password-reset",
        None,
        Some(ask),
    )
    .await;
    let mail = eventually(
        "the reset code arrives",
        Duration::from_secs(30),
        || async {
            let mails = smtp.messages();
            (mails.len() == 2).then(|| mails[1].clone())
        },
    )
    .await;
    let confirm = json!({"email": "alice@example.com", "code": code_in(&mail), "new_password": "a new passphrase"});
    api.expect(
        StatusCode::NO_CONTENT,
        Method::POST,
        "/v1/auth/password-reset/confirm",
        None,
        Some(confirm),
    )
    .await;
    let (status, _) = api.call(Method::GET, "/v1/me", me, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let old = json!({"handle": "alice", "password": PASSWORD});
    let (status, _) = api
        .call(Method::POST, "/v1/auth/login", None, Some(old))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
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
        "SORI_TIMELINE_LENGTH",
        "SORI_FANOUT_MAX_FOLLOWERS",
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
        "SORI_PUSH_COLLAPSE_SECS",
        "SORI_SMTP_URL",
        "SORI_MIGRATE_ON_START",
        "SORI_DRAIN_SECS",
        "SORI_MAIL_FROM",
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

#[tokio::test]
async fn roles_skip_migrations_when_told_and_migrate_applies_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let url = format!("sqlite://{}/data/sori.db", dir.path().display());
    let envs = [
        ("DATABASE_URL", url.as_str()),
        ("SORI_MIGRATE_ON_START", "false"),
    ];
    // A role's start-up connects but leaves the schema alone.
    let out = command(dir.path(), &["admin", "grant", "nobody"], &envs)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let db = sori_db::Db::connect(&url, 1).await.unwrap();
    assert!(!db.is_ready().await);
    // `sori migrate` migrates whatever the setting says.
    let out = command(dir.path(), &["migrate"], &envs).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(db.is_ready().await);
}

#[tokio::test]
async fn at_sigterm_readiness_turns_off_while_requests_are_still_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut sori = spawn(dir.path(), &["serve"], &[("SORI_DRAIN_SECS", "3")]);
    sori.wait_ready().await;
    let api = Client::new(&sori.base);
    sori.send("-TERM");
    // Within the drain: not ready, yet still answering.
    let (ready, live) = eventually("readiness turns off", Duration::from_secs(2), || async {
        let (ready, _) = api.call(Method::GET, "/readyz", None, None).await;
        let (live, _) = api.call(Method::GET, "/healthz", None, None).await;
        (ready == StatusCode::SERVICE_UNAVAILABLE).then_some((ready, live))
    })
    .await;
    assert_eq!(
        (ready, live),
        (StatusCode::SERVICE_UNAVAILABLE, StatusCode::OK)
    );
    assert_eq!(sori.wait_exit(Duration::from_secs(30)), Some(0));
}
