//! Tokens and passwords never reach the logs: the real `sori serve` with
//! JSON logs at `trace` level, requests carrying a bearer token in the
//! `Authorization` header and in `?token=` query strings (where a careless
//! client or proxy puts it), good and bad, then a search of everything the
//! process wrote on stdout and stderr.
//!
//! Runs on the database `SORI_TEST_DB` names (a fresh one per run).

mod common;

use common::client::{Client, PASSWORD};
use common::spawn_logged;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sori_db::testing::fresh_db;

#[tokio::test]
async fn tokens_and_passwords_never_appear_in_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let t = fresh_db().await;
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let data = dir.path().join("data").display().to_string();
    let envs = [
        ("DATABASE_URL", t.url.as_str()),
        ("SORI_DATA_DIR", data.as_str()),
        ("SORI_LOG_FORMAT", "json"),
        ("SORI_WORKERS", "1"),
        ("RUST_LOG", "trace"),
    ];
    let mut server = spawn_logged(dir.path(), &["serve"], &envs, &out_path, &err_path);
    server.wait_ready().await;
    let api = Client::new(&server.base);

    let alice = api.sign_up("alice").await;
    let token = alice.token.clone();
    let ok = |path: &str| (path.to_owned(), Some(token.clone()), StatusCode::OK);
    let bare = |path: String, status| (path, None, status);
    let requests = [
        ok("/v1/me"),
        ok(&format!("/v1/feed?limit=5&token={token}")),
        bare(format!("/v1/me?token={token}"), StatusCode::UNAUTHORIZED),
        bare(
            format!("/v1/me?access_token={token}"),
            StatusCode::UNAUTHORIZED,
        ),
        bare(format!("/v1/nowhere?token={token}"), StatusCode::NOT_FOUND),
        bare(
            format!("/v1/media/x/audio?token={token}"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/v1/me".to_owned(),
            Some(format!("{token}x")),
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (path, bearer, want) in &requests {
        let (status, body) = api.call(Method::GET, path, bearer.as_deref(), None).await;
        assert_eq!(status, *want, "GET {path}: {body}");
    }
    let login = json!({"handle": "alice", "password": PASSWORD});
    let session = api
        .expect(
            StatusCode::OK,
            Method::POST,
            "/v1/auth/login",
            None,
            Some(login),
        )
        .await;
    let second = session["token"].as_str().unwrap().to_owned();
    api.expect(
        StatusCode::NO_CONTENT,
        Method::POST,
        "/v1/auth/logout",
        Some(&token),
        None,
    )
    .await;
    let (status, _) = api.call(Method::GET, "/v1/me", Some(&token), None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a revoked token still works"
    );
    server.stop();

    let logs =
        std::fs::read_to_string(&out_path).unwrap() + &std::fs::read_to_string(&err_path).unwrap();
    // The requests were logged, as JSON lines, so the search below means something.
    assert!(logs.contains("/v1/nowhere"), "requests not logged:\n{logs}");
    assert!(logs.contains(r#""level":"TRACE""#), "trace level not on");
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
    for (what, secret) in [
        ("token", &token),
        ("second token", &second),
        ("password", &PASSWORD.to_owned()),
    ] {
        let leaks: Vec<_> = logs
            .lines()
            .filter(|l| l.contains(secret.as_str()))
            .collect();
        assert!(
            leaks.is_empty(),
            "the {what} appears in the logs:\n{}",
            leaks.join("\n")
        );
    }
}
