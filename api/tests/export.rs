//! Data export (`POST` / `GET /v1/me/export`) on the backend
//! `SORI_TEST_DB` names, with the local store: the archive is downloaded
//! through its signed URL as a client would, opened as a ZIP, and its JSON
//! and files compared with what the account holds; a build left pending by
//! a crash is finished by the cleanup pass; archives expire.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use sori_api::effects::export::{archive_key, build_pending, ARCHIVE_TTL};
use sori_pipeline::clock::now_ms;
use sori_pipeline::store::ObjectStore;
use std::io::{Cursor, Read};
use std::time::Duration;
use support::{assert_problem, Api, NewMedia, User};

/// Waits until the caller's latest export is no longer pending.
async fn finished(api: &Api, who: &User) -> Value {
    for _ in 0..200 {
        let r = api.get("/v1/me/export", who).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        if r.json["state"] != "pending" {
            return r.json;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the export never finished");
}

/// The archive's entries, by name.
fn entries(bytes: Vec<u8>) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).expect("a ZIP");
    let mut out = std::collections::BTreeMap::new();
    for i in 0..zip.len() {
        let mut file = zip.by_index(i).unwrap();
        let mut data = Vec::new();
        file.read_to_end(&mut data).unwrap();
        out.insert(file.name().to_owned(), data);
    }
    out
}

fn json_entry(files: &std::collections::BTreeMap<String, Vec<u8>>, name: &str) -> Value {
    serde_json::from_slice(&files[name]).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[tokio::test]
async fn the_archive_holds_the_accounts_data_and_files() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let media = api
        .media_with(
            &alice.id,
            NewMedia {
                attempts: 1,
                ..NewMedia::clip("ready")
            },
        )
        .await;
    api.put_object(&format!("originals/{media}"), b"what alice recorded")
        .await;
    api.outputs(
        &media,
        b"opus bytes",
        b"caf bytes",
        b"webm bytes",
        b"[1,2,3]",
    )
    .await;
    let post = api.publish(&alice, &media, "my #voice").await;
    let bob_post = api.ready_post(&bob).await;
    let r = api.put(&format!("/v1/posts/{bob_post}/like"), &alice).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api
        .post(
            &format!("/v1/posts/{bob_post}/comments"),
            &alice,
            json!({"text": "lovely"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    api.follow(&alice, &bob).await;
    api.follow(&bob, &alice).await;
    let room = api.room(&alice, &bob).await;
    api.text_message(&alice, &room, "hi bob").await;
    api.text_message(&bob, &room, "hi alice").await;
    let r = api
        .post("/v1/playlists", &alice, json!({"title": "faves"}))
        .await;
    let list = r.id();
    let r = api
        .post(
            &format!("/v1/playlists/{list}/items"),
            &alice,
            json!({"post_id": bob_post}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);

    assert_problem(
        &api.get("/v1/me/export", &alice).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    let r = api
        .notification_settings(&alice, json!({"like": {"push": false}}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let r = api.post("/v1/me/export", &alice, Value::Null).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    let status = finished(&api, &alice).await;
    assert_eq!(status["state"], "ready", "{status}");
    assert!(status["expires_at"].as_i64().unwrap() > now_ms() + 6 * 24 * 3_600_000);
    // The owner is told.
    let notes = api.get("/v1/notifications", &alice).await;
    assert!(
        notes.json.to_string().contains("export.ready"),
        "{}",
        notes.json
    );

    // Downloaded with no bearer token, as a browser's link does.
    let url = status["download_url"].as_str().unwrap();
    let got = api.fetch(Method::GET, url, &[]).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(
        got.body.len() as i64,
        status["size_bytes"].as_i64().unwrap()
    );
    let files = entries(got.body.to_vec());
    assert!(files.contains_key("README.txt"));
    assert_eq!(json_entry(&files, "profile.json")[0]["handle"], "alice");
    assert_eq!(json_entry(&files, "posts.json")[0]["id"], post.as_str());
    assert_eq!(
        json_entry(&files, "likes.json")[0]["post_id"],
        bob_post.as_str()
    );
    assert_eq!(json_entry(&files, "comments.json")[0]["text"], "lovely");
    assert_eq!(json_entry(&files, "following.json")[0]["handle"], "bob");
    assert_eq!(json_entry(&files, "followers.json")[0]["handle"], "bob");
    assert_eq!(json_entry(&files, "playlists.json")[0]["title"], "faves");
    let switches = &json_entry(&files, "notification_settings.json")[0];
    assert_eq!(
        (&switches["kind"], &switches["inbox"], &switches["push"]),
        (&json!("like"), &json!(1), &json!(0))
    );
    let texts: Vec<Value> = json_entry(&files, "messages.json")
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].clone())
        .collect();
    assert_eq!(texts, [json!("hi bob"), json!("hi alice")]);
    assert_eq!(
        files[&format!("media/{media}/original")],
        b"what alice recorded"
    );
    assert_eq!(files[&format!("media/{media}/audio.opus")], b"opus bytes");
    assert_eq!(files[&format!("media/{media}/waveform.json")], b"[1,2,3]");
    // Nothing of Bob's account beyond the conversation: not his likes, not his media.
    let all = String::from_utf8_lossy(&got.body).to_string();
    let bob_media: String = sqlx::query_scalar("SELECT media_id FROM posts WHERE id = $1")
        .bind(&bob_post)
        .fetch_one(api.t.db.pool())
        .await
        .unwrap();
    assert!(!all.contains(&format!("media/{bob_media}/")));
    // Another user cannot see it.
    assert_problem(
        &api.get("/v1/me/export", &bob).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );

    // Past its time the archive is deleted and the URL stops working.
    let store = ObjectStore::Local(api.store());
    let later = now_ms() + ARCHIVE_TTL.as_millis() as i64 + 1;
    build_pending(&api.t.db, &store, later).await.unwrap();
    let status = api.get("/v1/me/export", &alice).await.json;
    assert_eq!(status["state"], "expired");
    assert!(status["download_url"].is_null());
    let key = archive_key(&alice.id, status["id"].as_str().unwrap());
    assert!(store.head(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn a_build_left_pending_is_finished_by_the_cleanup_pass() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    // The process that took the request died before building.
    sqlx::query(
        "INSERT INTO exports (id, user_id, state, created_at) VALUES ('e1', $1, 'pending', $2)",
    )
    .bind(&alice.id)
    .bind(now_ms())
    .execute(api.t.db.pool())
    .await
    .unwrap();
    let r = api.post("/v1/me/export", &alice, Value::Null).await;
    assert_eq!(
        r.json["id"], "e1",
        "a pending export is answered, not doubled"
    );
    let store = ObjectStore::Local(api.store());
    assert_eq!(build_pending(&api.t.db, &store, now_ms()).await.unwrap(), 1);
    let status = api.get("/v1/me/export", &alice).await.json;
    assert_eq!(status["state"], "ready");
    assert!(store
        .head(&archive_key(&alice.id, "e1"))
        .await
        .unwrap()
        .is_some());
    // Nothing left to build.
    assert_eq!(build_pending(&api.t.db, &store, now_ms()).await.unwrap(), 0);
}

#[tokio::test]
async fn exports_are_limited_per_hour() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    for _ in 0..3 {
        let r = api.post("/v1/me/export", &alice, Value::Null).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
        finished(&api, &alice).await;
    }
    let r = api.post("/v1/me/export", &alice, Value::Null).await;
    assert_problem(&r, StatusCode::TOO_MANY_REQUESTS, "too-many-requests");
}
