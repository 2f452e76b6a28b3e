//! Account deletion (`DELETE /v1/me`) on the backend `SORI_TEST_DB` names,
//! with the local store: the account stops working at once, then every row
//! and stored object it owns is erased — counted before and after — while
//! everyone else's stays, with the counters on their posts right. Also: an
//! erasure cut short by a crash is finished by the cleanup pass, two passes
//! at once do not count anything twice, and an upload URL still valid or a
//! worker's lease keeps media until they end.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use sori_api::effects::erasure::{self, Erased};
use sori_pipeline::clock::now_ms;
use sori_pipeline::store::ObjectStore;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;
use support::{assert_problem, Api, NewMedia, User};

const PASSWORD: &str = "correct horse";

/// Every row that names a user, as (table, condition on `$1`): after the
/// erasure none may name the deleted one but its tombstone and its side of
/// its chat rooms.
const USER_ROWS: &[(&str, &str)] = &[
    ("auth_tokens", "user_id = $1"),
    ("media", "owner_id = $1"),
    ("posts", "author_id = $1"),
    ("follows", "follower_id = $1 OR followee_id = $1"),
    ("likes", "user_id = $1"),
    ("comments", "author_id = $1"),
    ("notifications", "user_id = $1 OR actor_id = $1"),
    ("blocks", "blocker_id = $1 OR blocked_id = $1"),
    ("mutes", "muter_id = $1 OR muted_id = $1"),
    ("notification_settings", "user_id = $1"),
    ("follow_requests", "requester_id = $1 OR target_id = $1"),
    ("reports", "reporter_id = $1 OR target_id = $1"),
    ("plays", "user_id = $1"),
    ("devices", "user_id = $1"),
    (
        "push_outbox",
        "user_id = $1 OR payload LIKE '%' || $1 || '%'",
    ),
    ("playlists", "owner_id = $1"),
    ("messages", "sender_id = $1"),
    ("ws_tickets", "user_id = $1"),
    ("presence", "user_id = $1"),
    ("idempotency_keys", "user_id = $1"),
    ("account_codes", "user_id = $1"),
    ("exports", "user_id = $1"),
];

async fn count(api: &Api, table: &str, condition: &str, id: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table} WHERE {condition}"))
        .bind(id)
        .fetch_one(api.t.db.pool())
        .await
        .unwrap()
}

/// Every object in the local store, as keys.
fn objects(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let key = path.strip_prefix(root).unwrap().to_string_lossy();
                out.insert(key.replace('\\', "/"));
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

/// A ready clip of `owner` with its original and two processing attempts'
/// outputs in the store, as the worker leaves them after a retry.
async fn stored_clip(api: &Api, owner: &User) -> String {
    let media = api
        .media_with(
            &owner.id,
            NewMedia {
                attempts: 2,
                version: Some(2),
                ..NewMedia::clip("ready")
            },
        )
        .await;
    api.put_object(&format!("originals/{media}"), b"original bytes")
        .await;
    api.outputs(&media, b"opus", b"caf", b"webm", b"[1,2]")
        .await;
    for name in ["audio.opus", "waveform.json"] {
        api.put_object(&format!("media/{media}/v2/{name}"), b"v2")
            .await;
    }
    media
}

async fn delete_account(api: &Api, who: &User, password: &str) -> support::Reply {
    api.call(
        Method::DELETE,
        "/v1/me",
        Some(&who.token),
        json!({ "password": password }),
    )
    .await
}

/// Waits until the erasure the request started has finished.
async fn purged(api: &Api, id: &str) {
    for _ in 0..200 {
        let purged: Option<i64> = sqlx::query_scalar("SELECT purged_at FROM users WHERE id = $1")
            .bind(id)
            .fetch_one(api.t.db.pool())
            .await
            .unwrap();
        if purged.is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the erasure never finished");
}

/// A post's counters as its author sees them.
async fn counters(api: &Api, post: &str, who: &User) -> (i64, i64) {
    let item = api.post_item(post, who).await;
    (
        item["like_count"].as_i64().unwrap(),
        item["comment_count"].as_i64().unwrap(),
    )
}

/// Alice's life on Sori, entwined with Bob's and Carol's: posts with
/// stored clips, likes and comments both ways, follows, a block, reports,
/// playlists, a chat with text and voice, a device. Returns Bob's post.
struct Life {
    alice: User,
    bob: User,
    carol: User,
    alice_post: String,
    bob_post: String,
    room: String,
    alice_media: Vec<String>,
}

async fn life(api: &Api) -> Life {
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let dave = api.user("dave").await;

    let clip = stored_clip(api, &alice).await;
    let alice_post = api.publish(&alice, &clip, "my first #sori").await;
    let bob_clip = stored_clip(api, &bob).await;
    let bob_post = api.publish(&bob, &bob_clip, "hello @alice").await;
    let voice_comment = stored_clip(api, &alice).await;
    let comments = format!("/v1/posts/{bob_post}/comments");
    for body in [json!({"text": "nice"}), json!({"media_id": voice_comment})] {
        let r = api.post(&comments, &alice, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    }
    let r = api.post(&comments, &carol, json!({"text": "agreed"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let r = api
        .post(
            &format!("/v1/posts/{alice_post}/comments"),
            &bob,
            json!({"text": "hi"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    for (who, post) in [
        (&alice, &bob_post),
        (&carol, &bob_post),
        (&bob, &alice_post),
    ] {
        let r = api.put(&format!("/v1/posts/{post}/like"), who).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.json);
    }
    api.follow(&alice, &bob).await;
    api.follow(&bob, &alice).await;
    api.follow(&carol, &alice).await;
    api.follow(&carol, &bob).await;
    api.block(&alice, &dave).await;
    api.mute(&alice, &carol).await;
    api.mute(&bob, &alice).await;
    let r = api
        .notification_settings(&alice, json!({"like": {"push": false}}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    // Carol's account is private: alice's follow is a request.
    let r = api.patch("/v1/me", &carol, json!({"private": true})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let r = api
        .put(&format!("/v1/users/{}/follow", carol.id), &alice)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    for (who, kind, target) in [(&alice, "post", &bob_post), (&bob, "post", &alice_post)] {
        let body = json!({"target_kind": kind, "target_id": target, "reason": "spam"});
        let r = api.post("/v1/reports", who, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    }
    for (who, title) in [(&alice, "mine"), (&bob, "bob's")] {
        let r = api
            .post("/v1/playlists", who, json!({"title": title}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        let items = format!("/v1/playlists/{}/items", r.id());
        for post in [&alice_post, &bob_post] {
            let r = api.post(&items, who, json!({"post_id": post})).await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        }
    }
    let r = api
        .post(&format!("/v1/posts/{bob_post}/plays"), &alice, Value::Null)
        .await;
    assert!(r.status.is_success(), "{}", r.json);

    let room = api.room(&alice, &bob).await;
    api.text_message(&alice, &room, "from alice").await;
    api.text_message(&bob, &room, "from bob").await;
    let voice = stored_clip(api, &alice).await;
    let r = api
        .send_message(&alice, &room, json!({"kind": "voice", "media_id": voice}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    // Her avatar: three stored variants.
    let png = {
        let mut out = std::io::Cursor::new(Vec::new());
        image::RgbImage::from_pixel(64, 64, image::Rgb([9, 9, 9]))
            .write_to(&mut out, image::ImageFormat::Png)
            .unwrap();
        out.into_inner()
    };
    let (picture, _) = api.upload(&alice, "image/png", &png).await;
    let r = api
        .call(
            Method::PUT,
            "/v1/me/avatar",
            Some(&alice.token),
            json!({"media_id": picture}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let device = json!({"platform": "webhook", "push_token": "alice-phone"});
    let r = api
        .call(
            Method::PUT,
            "/v1/me/devices/phone",
            Some(&alice.token),
            device,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    // An upload begun an hour ago and never finished: its URL has expired.
    let abandoned = api
        .media_with(
            &alice.id,
            NewMedia {
                created_at: now_ms() - 3_600_000,
                ..NewMedia::bare("awaiting_upload")
            },
        )
        .await;
    api.put_object(&format!("originals/{abandoned}"), b"late")
        .await;

    Life {
        alice_media: vec![clip, voice_comment, voice, abandoned],
        alice,
        bob,
        carol,
        alice_post,
        bob_post,
        room,
    }
}

#[tokio::test]
async fn deleting_an_account_erases_everything_it_owns_and_nothing_else() {
    let api = Api::new().await;
    let l = life(&api).await;
    // Her data export, ready: its archive is hers too.
    let r = api.post("/v1/me/export", &l.alice, Value::Null).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    for _ in 0..200 {
        if api.get("/v1/me/export", &l.alice).await.json["state"] == "ready" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = objects(api.blobs.path());
    let alices: BTreeSet<String> = before
        .iter()
        .filter(|key| {
            key.contains(&format!("exports/{}/", l.alice.id))
                || key.contains(&format!("avatars/{}/", l.alice.id))
                || l.alice_media.iter().any(|m| key.contains(m.as_str()))
        })
        .cloned()
        .collect();
    // Three clips' originals and outputs, an abandoned upload, an export
    // archive, three avatar variants.
    assert_eq!(alices.len(), 3 * 7 + 1 + 1 + 3, "{alices:?}");
    for (table, condition) in USER_ROWS {
        if ![
            "ws_tickets",
            "presence",
            "idempotency_keys",
            "push_outbox",
            "account_codes",
        ]
        .contains(table)
        {
            assert!(
                count(&api, table, condition, &l.alice.id).await > 0,
                "no {table} row to erase"
            );
        }
    }
    assert_eq!(counters(&api, &l.bob_post, &l.bob).await, (2, 3));

    let r = delete_account(&api, &l.alice, PASSWORD).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    // At once: the token, the handle, the profile.
    assert_problem(
        &api.get("/v1/me", &l.alice).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let login = json!({"handle": "alice", "password": PASSWORD});
    let r = api.call(Method::POST, "/v1/auth/login", None, login).await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    let r = api.get(&format!("/v1/users/{}", l.alice.id), &l.bob).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    let found = api.get("/v1/search?q=alice&kind=users", &l.bob).await;
    assert_eq!(found.json["items"], json!([]), "{}", found.json);

    purged(&api, &l.alice.id).await;
    for (table, condition) in USER_ROWS {
        assert_eq!(
            count(&api, table, condition, &l.alice.id).await,
            0,
            "{table} still names alice"
        );
    }
    assert_eq!(
        count(&api, "users", "id = $1", &l.alice.id).await,
        1,
        "the tombstone"
    );
    let tombstone: (String, String, String) =
        sqlx::query_as("SELECT handle, display_name, password_hash FROM users WHERE id = $1")
            .bind(&l.alice.id)
            .fetch_one(api.t.db.pool())
            .await
            .unwrap();
    assert_eq!(
        tombstone,
        ("deleted".into(), "Deleted account".into(), String::new())
    );
    for (table, column) in [
        ("post_tags", "post_id"),
        ("playlist_items", "post_id"),
        ("likes", "post_id"),
    ] {
        assert_eq!(
            count(&api, table, &format!("{column} = $1"), &l.alice_post).await,
            0,
            "{table}"
        );
    }
    // Every object of hers is gone, and only those.
    let after = objects(api.blobs.path());
    let expected: BTreeSet<String> = before.difference(&alices).cloned().collect();
    assert_eq!(after, expected);

    // Bob's post keeps Carol's like and comment, and its own counters agree.
    assert_eq!(counters(&api, &l.bob_post, &l.bob).await, (1, 1));
    let comments = api
        .get(&format!("/v1/posts/{}/comments", l.bob_post), &l.bob)
        .await;
    assert_eq!(comments.json["items"].as_array().unwrap().len(), 1);
    // Her posts left every feed and playlist.
    assert!(!api.feed_ids(&l.carol).await.contains(&l.alice_post));
    let lists = api
        .get(&format!("/v1/users/{}/playlists", l.bob.id), &l.bob)
        .await;
    let list_id = lists.json["items"][0]["id"].as_str().unwrap();
    let list = api.get(&format!("/v1/playlists/{list_id}"), &l.bob).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.json.to_string().contains(&l.bob_post));
    assert!(!list.json.to_string().contains(&l.alice_post));
    // Bob keeps the room and his own message; she shows as deleted.
    let rooms = api.get("/v1/chats", &l.bob).await;
    let room = &rooms.json["items"][0];
    assert_eq!(room["id"], l.room.as_str());
    assert_eq!(room["other"]["display_name"], "Deleted account");
    assert_eq!(room["last_message"]["text"], "from bob");
    let history = api
        .get(&format!("/v1/chats/{}/messages", l.room), &l.bob)
        .await;
    let texts: Vec<&str> = history.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, ["from bob"]);
    // The handle is free for someone new.
    let fresh = api.user("alice").await;
    assert_ne!(fresh.id, l.alice.id);
}

#[tokio::test]
async fn a_wrong_password_deletes_nothing() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let r = delete_account(&api, &alice, "not my password").await;
    assert_problem(&r, StatusCode::FORBIDDEN, "wrong-password");
    assert_eq!(api.get("/v1/me", &alice).await.status, StatusCode::OK);
    let r = api
        .call(Method::DELETE, "/v1/me", Some(&alice.token), Value::Null)
        .await;
    assert!(r.status.is_client_error(), "{}", r.status);
    assert_eq!(api.get("/v1/me", &alice).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_erasure_cut_short_is_finished_by_the_cleanup_pass_and_counts_once() {
    let api = Api::new().await;
    let l = life(&api).await;
    let store = ObjectStore::Local(api.store());
    // The process that took the request died right after closing the
    // account: nothing was erased yet.
    assert!(erasure::close_account(&api.t.db, &l.alice.id, now_ms())
        .await
        .unwrap());
    assert!(!erasure::close_account(&api.t.db, &l.alice.id, now_ms())
        .await
        .unwrap());
    assert_problem(
        &api.get("/v1/me", &l.alice).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    // Two API processes resume it at the same moment; on SQLite one may
    // find the database busy and leave it to the next pass.
    let now = now_ms();
    let (a, b) = tokio::join!(
        erasure::erase(&api.t.db, &store, &l.alice.id, now),
        erasure::erase(&api.t.db, &store, &l.alice.id, now),
    );
    assert!(a.is_ok() || b.is_ok(), "{a:?} {b:?}");
    erasure::erase_pending(&api.t.db, &store, now_ms())
        .await
        .unwrap();
    for (table, condition) in USER_ROWS {
        assert_eq!(
            count(&api, table, condition, &l.alice.id).await,
            0,
            "{table} still names alice"
        );
    }
    assert_eq!(counters(&api, &l.bob_post, &l.bob).await, (1, 1));
    // Nothing left to do, and doing it again changes nothing.
    assert_eq!(
        erasure::erase_pending(&api.t.db, &store, now_ms())
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        erasure::erase(&api.t.db, &store, &l.alice.id, now_ms())
            .await
            .unwrap(),
        Erased::Done
    );
    assert_eq!(counters(&api, &l.bob_post, &l.bob).await, (1, 1));
}

#[tokio::test]
async fn a_live_upload_url_or_worker_lease_holds_media_until_it_ends() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let store = ObjectStore::Local(api.store());
    // An upload URL handed out just now, and a clip a worker is processing.
    let body = json!({"content_type": "audio/mp4", "size_bytes": 4});
    let r = api.post("/v1/media", &alice, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let uploading = r.id();
    let url = r.json["upload"]["url"].as_str().unwrap().to_owned();
    let headers: Vec<(String, String)> = r.json["upload"]["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let leased = api.media(&alice, "processing").await;
    let lease_until = now_ms() + 60_000;
    sqlx::query("UPDATE media SET lease_until = $1, attempts = 1 WHERE id = $2")
        .bind(lease_until)
        .bind(&leased)
        .execute(api.t.db.pool())
        .await
        .unwrap();
    assert!(erasure::close_account(&api.t.db, &alice.id, now_ms())
        .await
        .unwrap());

    let now = now_ms();
    let pass = erasure::erase(&api.t.db, &store, &alice.id, now)
        .await
        .unwrap();
    assert_eq!(pass, Erased::Pending);
    let state: String = sqlx::query_scalar("SELECT state FROM media WHERE id = $1")
        .bind(&uploading)
        .fetch_one(api.t.db.pool())
        .await
        .unwrap();
    assert_eq!(state, "erasing");
    // The late upload is refused: no object can appear behind the erasure.
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let put = api
        .fetch_with(Method::PUT, &url, &headers, b"late".to_vec())
        .await;
    assert!(put.status.is_client_error(), "late PUT: {}", put.status);
    // A worker taking the erasing media finds it finished.
    let claim = sori_pipeline::media::claim(&api.t.db, &uploading, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(
        matches!(claim, sori_pipeline::media::Claim::Finished(_)),
        "{claim:?}"
    );

    // Once the lease and the URL have run out, the next pass finishes.
    let later = now + 16 * 60_000;
    let pass = erasure::erase(&api.t.db, &store, &alice.id, later)
        .await
        .unwrap();
    assert_eq!(pass, Erased::Done);
    assert_eq!(count(&api, "media", "owner_id = $1", &alice.id).await, 0);
}
