//! Chat rooms and messages through the router, on the backend `SORI_TEST_DB`
//! names: race-safe room creation, idempotent sends, blocks, membership,
//! history pages, read markers and unread counts, voice and image messages,
//! pushes for offline recipients, and cleanup leaving chat media alone.

mod support;

use axum::http::{header, Method, StatusCode};
use futures_util::future::join_all;
use serde_json::{json, Value};
use std::time::Duration;
use support::{assert_problem, Api, Reply, User, PUBLIC_URL};

/// `who` asks for the room with the user `id`.
async fn open(api: &Api, who: &User, id: &str) -> Reply {
    api.post("/v1/chats", who, json!({"user_id": id})).await
}

async fn read(api: &Api, room: &str, who: &User, id: &str) -> Reply {
    let path = format!("/v1/chats/{room}/read");
    api.post(&path, who, json!({"message_id": id})).await
}

/// The caller's rooms (first page), as the room list shows them.
async fn rooms(api: &Api, who: &User) -> Vec<Value> {
    api.get("/v1/chats", who).await.items().clone()
}

#[tokio::test]
async fn concurrent_creations_of_a_pair_get_one_room() {
    let api = Api::new().await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    let calls = (0..8).map(|i| {
        let (who, with) = if i % 2 == 0 {
            (&alice, &bob)
        } else {
            (&bob, &alice)
        };
        open(&api, who, &with.id)
    });
    let replies = join_all(calls).await;
    let created = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "exactly one call creates the room");
    let ids: std::collections::BTreeSet<&str> = replies
        .iter()
        .map(|r| r.json["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let mine = rooms(&api, &alice).await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["other"]["handle"], "bob");
    assert_eq!(mine[0]["other"]["display_name"], "bob");
    assert_eq!(rooms(&api, &bob).await[0]["other"]["id"], alice.id.as_str());
}

#[tokio::test]
async fn rooms_need_another_existing_unblocked_user() {
    let api = Api::new().await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    assert_problem(
        &open(&api, &alice, &alice.id).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation",
    );
    assert_problem(
        &open(&api, &alice, "nobody").await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    let body = json!({"user_id": bob.id});
    let r = api.call(Method::POST, "/v1/chats", None, body).await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    api.block(&bob, &alice).await;
    assert_problem(
        &open(&api, &alice, &bob.id).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_problem(
        &open(&api, &bob, &alice.id).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
}

#[tokio::test]
async fn history_is_newest_first_in_pages_and_members_only() {
    let api = Api::new().await;
    let (alice, bob, carol) = (
        api.user("alice").await,
        api.user("bob").await,
        api.user("carol").await,
    );
    let room = api.room(&alice, &bob).await;
    let mut sent = Vec::new();
    for i in 0..5 {
        let who = if i % 2 == 0 { &alice } else { &bob };
        sent.push(api.text_message(who, &room, &format!("message {i}")).await);
    }
    let seen: Vec<String> = api
        .all_pages(&format!("/v1/chats/{room}/messages"), &bob, 2)
        .await
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    sent.reverse();
    assert_eq!(seen, sent);
    let first = api.get(&format!("/v1/chats/{room}/messages"), &alice).await;
    assert_eq!(first.json["items"][0]["text"], "message 4");
    assert_eq!(first.json["items"][0]["sender_id"], alice.id.as_str());
    assert_eq!(first.json["items"][0]["kind"], "text");
    // Not a member: the room does not exist for carol.
    let r = api.get(&format!("/v1/chats/{room}/messages"), &carol).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    let r = api
        .send_message(&carol, &room, json!({"kind": "text", "text": "hi"}))
        .await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    let r = read(&api, &room, &carol, &sent[0]).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    assert_problem(
        &api.get("/v1/chats/nope/messages", &alice).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    assert!(rooms(&api, &carol).await.is_empty());
}

#[tokio::test]
async fn a_resend_with_the_same_client_id_returns_the_original() {
    let api = Api::new().await;
    let (alice, bob, carol) = (
        api.user("alice").await,
        api.user("bob").await,
        api.user("carol").await,
    );
    let room_ab = api.room(&alice, &bob).await;
    let body = json!({"kind": "text", "text": "once", "client_id": "c-1"});
    let first = api.send_message(&alice, &room_ab, body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.json);
    let again = api.send_message(&alice, &room_ab, body.clone()).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.json);
    assert_eq!(again.json["id"], first.json["id"]);
    assert_eq!(again.json["client_id"], "c-1");
    // Concurrent resends too.
    let body2 = json!({"kind": "text", "text": "twice", "client_id": "c-2"});
    let replies = join_all((0..4).map(|_| api.send_message(&alice, &room_ab, body2.clone()))).await;
    assert_eq!(
        replies
            .iter()
            .filter(|r| r.status == StatusCode::CREATED)
            .count(),
        1
    );
    assert!(replies
        .iter()
        .all(|r| r.json["id"] == replies[0].json["id"]));
    let history = api
        .ids(&format!("/v1/chats/{room_ab}/messages"), &bob)
        .await;
    assert_eq!(history.len(), 2, "{history:?}");
    // Another sender may use the same key; the same sender not in another room.
    let r = api.send_message(&bob, &room_ab, body.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let room_ac = api.room(&alice, &carol).await;
    assert_problem(
        &api.send_message(&alice, &room_ac, body).await,
        StatusCode::CONFLICT,
        "conflict",
    );
}

#[tokio::test]
async fn blocked_users_cannot_message_each_other() {
    let api = Api::new().await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    let room = api.room(&alice, &bob).await;
    api.text_message(&alice, &room, "before").await;
    api.block(&alice, &bob).await;
    let body = json!({"kind": "text", "text": "after"});
    assert_problem(
        &api.send_message(&bob, &room, body.clone()).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_problem(
        &api.send_message(&alice, &room, body).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_eq!(
        api.ids(&format!("/v1/chats/{room}/messages"), &bob)
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn read_markers_drive_unread_counts_and_read_up_to() {
    let api = Api::new().await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    let room = api.room(&alice, &bob).await;
    let m1 = api.text_message(&bob, &room, "one").await;
    let m2 = api.text_message(&bob, &room, "two").await;
    let _m3 = api.text_message(&bob, &room, "three").await;
    let mine = api.text_message(&alice, &room, "mine").await;
    let listed = &rooms(&api, &alice).await[0];
    assert_eq!(listed["unread_count"], 3, "own messages are not unread");
    assert_eq!(listed["last_message"]["id"], mine.as_str());
    assert!(listed["read_up_to"].is_null());
    assert_eq!(rooms(&api, &bob).await[0]["unread_count"], 1);

    let r = read(&api, &room, &alice, &m2).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["unread_count"], 1);
    assert_eq!(r.json["read_up_to"], m2.as_str());
    // Bob sees how far alice read, in history and in his room list.
    let history = api.get(&format!("/v1/chats/{room}/messages"), &bob).await;
    assert_eq!(history.json["read_up_to"], m2.as_str());
    assert_eq!(rooms(&api, &bob).await[0]["read_up_to"], m2.as_str());
    // Markers are not messages in history, nor the last message.
    assert_eq!(history.json["items"].as_array().unwrap().len(), 4);
    assert_eq!(
        rooms(&api, &alice).await[0]["last_message"]["id"],
        mine.as_str()
    );
    // Never backwards.
    let r = read(&api, &room, &alice, &m1).await;
    assert_eq!(
        (
            r.json["unread_count"].as_i64(),
            r.json["read_up_to"].as_str()
        ),
        (Some(1), Some(m2.as_str()))
    );
    let r = read(&api, &room, &alice, &mine).await;
    assert_eq!(r.json["unread_count"], 0);
    assert_eq!(rooms(&api, &alice).await[0]["unread_count"], 0);
    let markers: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE kind = 'read' AND sender_id = $1")
            .bind(&alice.id)
            .fetch_one(api.t.db.pool())
            .await
            .unwrap();
    assert_eq!(markers, 2, "one marker per forward move");
    assert_problem(
        &read(&api, &room, &alice, "not-a-message").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation",
    );
}

#[tokio::test]
async fn rooms_are_listed_by_last_activity_in_pages() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let mut others = Vec::new();
    for name in ["bob", "carol", "dave"] {
        let other = api.user(name).await;
        let id = api.room(&alice, &other).await;
        others.push((other, id));
    }
    // Activity: carol's room, then bob's (dave's stays empty and oldest).
    api.text_message(&others[1].0, &others[1].1, "hi from carol")
        .await;
    api.text_message(&others[0].0, &others[0].1, "hi from bob")
        .await;
    let pages = api.all_pages("/v1/chats", &alice, 2).await;
    let handles: Vec<&str> = pages
        .iter()
        .map(|room| room["other"]["handle"].as_str().unwrap())
        .collect();
    assert_eq!(handles, ["bob", "carol", "dave"]);
    let list = rooms(&api, &alice).await;
    assert_eq!(list[0]["last_message"]["text"], "hi from bob");
    assert!(list[2]["last_message"].is_null());
    assert_problem(
        &api.get("/v1/chats?limit=0", &alice).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation",
    );
}

#[tokio::test]
async fn messages_are_validated() {
    let api = Api::new().await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    let room = api.room(&alice, &bob).await;
    let bobs_media = api.media(&bob, "ready").await;
    let unfinished = api.media(&alice, "awaiting_upload").await;
    let long = "x".repeat(4001);
    for body in [
        json!({"kind": "text", "text": ""}),
        json!({"kind": "text", "text": long}),
        json!({"kind": "sticker", "text": "hi"}),
        json!({"kind": "voice"}),
        json!({"kind": "voice", "media_id": bobs_media}),
        json!({"kind": "voice", "media_id": unfinished}),
        json!({"kind": "image", "media_id": api.media(&alice, "ready").await}),
        json!({"kind": "text", "text": "hi", "client_id": ""}),
    ] {
        let r = api.send_message(&alice, &room, body.clone()).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    }
    assert!(api
        .ids(&format!("/v1/chats/{room}/messages"), &alice)
        .await
        .is_empty());
}

#[tokio::test]
async fn voice_messages_carry_duration_bars_and_audio_once_ready() {
    let api = Api::new().await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    let room = api.room(&alice, &bob).await;
    let ready = api.media(&alice, "ready").await;
    let r = api
        .send_message(&alice, &room, json!({"kind": "voice", "media_id": ready}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let voice = &r.json["voice"];
    assert_eq!(voice["duration_ms"], 1234);
    assert_eq!(voice["bars"], json!([1, 2, 3]));
    support::assert_clip_urls(voice, &ready);
    let processing = api.media(&alice, "processing").await;
    let r = api
        .send_message(
            &alice,
            &room,
            json!({"kind": "voice", "media_id": processing}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(r.json["voice"]["state"], "processing");
    assert!(r.json["voice"]["audio_url"].is_null());
    // A media goes in one message only.
    let r = api
        .send_message(&alice, &room, json!({"kind": "voice", "media_id": ready}))
        .await;
    assert_problem(&r, StatusCode::CONFLICT, "conflict");
}

#[tokio::test]
async fn offline_recipients_get_a_push_and_online_ones_do_not() {
    let api = Api::new().await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    let room = api.room(&alice, &bob).await;
    let id = api.text_message(&alice, &room, "are you there?").await;
    let pushes = |user: String| {
        let db = api.t.db.clone();
        async move {
            let rows: Vec<(String, String)> =
                sqlx::query_as("SELECT kind, payload FROM push_outbox WHERE user_id = $1")
                    .bind(user)
                    .fetch_all(db.pool())
                    .await
                    .unwrap();
            rows
        }
    };
    let bobs = pushes(bob.id.clone()).await;
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0].0, "message.new");
    let payload: Value = serde_json::from_str(&bobs[0].1).unwrap();
    assert_eq!(payload["message_id"], id.as_str());
    assert_eq!(payload["text"], "are you there?");
    // Bob has a live connection (as a socket records it): no push.
    sqlx::query(
        "INSERT INTO ws_connections (id, user_id, expires_at, created_at) VALUES ('c', $1, $2, 0)",
    )
    .bind(&bob.id)
    .bind(sori_pipeline::clock::now_ms() + 60_000)
    .execute(api.t.db.pool())
    .await
    .unwrap();
    api.text_message(&alice, &room, "now you are").await;
    assert_eq!(pushes(bob.id.clone()).await.len(), 1);
    let presence = api
        .get(&format!("/v1/users/{}/presence", bob.id), &alice)
        .await;
    assert_eq!(presence.json["online"], true, "{}", presence.json);
    let presence = api
        .get(&format!("/v1/users/{}/presence", alice.id), &bob)
        .await;
    assert_eq!(presence.json["online"], false, "{}", presence.json);
    assert!(presence.json["last_seen"].is_null());
    assert_problem(
        &api.get("/v1/users/nobody/presence", &bob).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
}

#[tokio::test]
async fn presence_is_for_chat_partners_and_can_be_hidden() {
    let api = Api::new().await;
    let (alice, bob, carol) = (
        api.user("alice").await,
        api.user("bob").await,
        api.user("carol").await,
    );
    api.room(&alice, &bob).await;
    sqlx::query(
        "INSERT INTO ws_connections (id, user_id, expires_at, created_at) VALUES ('c', $1, $2, 0)",
    )
    .bind(&bob.id)
    .bind(sori_pipeline::clock::now_ms() + 60_000)
    .execute(api.t.db.pool())
    .await
    .unwrap();
    let bobs = format!("/v1/users/{}/presence", bob.id);
    assert_eq!(api.get(&bobs, &alice).await.json["online"], true);
    assert_eq!(api.get(&bobs, &bob).await.json["online"], true);
    // A stranger learns nothing, not even that bob can be asked.
    assert_problem(
        &api.get(&bobs, &carol).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    let told = sori_api::model::presence::partners(&api.t.db, &bob.id)
        .await
        .unwrap();
    assert_eq!(told, [alice.id.as_str()]);

    // Bob hides his presence: offline and never seen to alice, and his
    // changes are told to nobody; he still sees his own.
    let r = api
        .patch("/v1/me", &bob, json!({"show_presence": false}))
        .await;
    assert_eq!(r.json["show_presence"], false, "{}", r.json);
    let hidden = api.get(&bobs, &alice).await;
    assert_eq!(
        (&hidden.json["online"], &hidden.json["last_seen"]),
        (&json!(false), &Value::Null)
    );
    assert_eq!(api.get(&bobs, &bob).await.json["online"], true);
    let told = sori_api::model::presence::partners(&api.t.db, &bob.id)
        .await
        .unwrap();
    assert!(told.is_empty());
    // Blocked, alice is a stranger again.
    api.patch("/v1/me", &bob, json!({"show_presence": true}))
        .await;
    api.block(&bob, &alice).await;
    assert_problem(
        &api.get(&bobs, &alice).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
}

/// A real PNG of that size (one colour: a few hundred bytes).
fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_pixel(width, height, image::Rgb([200, 30, 30]));
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[tokio::test]
async fn images_upload_with_dimensions_and_are_served_to_members_only() {
    let api = &Api::new().await;
    let (alice, bob, carol) = (
        api.user("alice").await,
        api.user("bob").await,
        api.user("carol").await,
    );
    let bytes = png(640, 480);
    let (id, done) = api.upload(&alice, "image/png", &bytes).await;
    assert_eq!(done.status, StatusCode::ACCEPTED, "{}", done.json);
    assert_eq!(done.json["state"], "ready");
    assert_eq!(done.json["kind"], "image");
    assert_eq!(
        (done.json["width"].as_i64(), done.json["height"].as_i64()),
        (Some(640), Some(480))
    );
    let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM queue_messages")
        .fetch_one(api.t.db.pool())
        .await
        .unwrap_or(0);
    assert_eq!(queued, 0, "images are not processed");

    // Images are for chat, not voice posts.
    let post = json!({"media_id": id, "caption": "a picture"});
    let r = api.post("/v1/posts", &alice, post).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    let room = api.room(&alice, &bob).await;
    let r = api
        .send_message(
            &alice,
            &room,
            json!({"kind": "image", "media_id": id, "text": "look"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let image = &r.json["image"];
    assert_eq!(
        (image["width"].as_i64(), image["height"].as_i64()),
        (Some(640), Some(480))
    );
    // What members are shown is a JPEG made from it, metadata left behind.
    assert_eq!(image["content_type"], "image/jpeg");
    // The picture's signed URL: an `<img>` fetches it with no token, and it
    // is served as the type it was made as.
    let url = image["image_url"].as_str().unwrap();
    let signed = format!("{PUBLIC_URL}/v1/blobs/media/{id}/image.jpg?");
    assert!(url.starts_with(&signed), "{url}");
    let resp = api.fetch(Method::GET, url, &[]).await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.header(header::CONTENT_TYPE), "image/jpeg");
    assert_eq!(resp.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert_eq!(resp.header(header::CONTENT_DISPOSITION), "inline");
    let shown = image::load_from_memory(&resp.body).unwrap();
    assert_eq!((shown.width(), shown.height()), (640, 480));
    assert_ne!(resp.body, bytes);
    // Served as another type only with a signature for it.
    let retyped = url.replace("image%2Fjpeg", "text%2Fhtml");
    let resp = api.fetch(Method::GET, &retyped, &[]).await;
    assert_eq!(resp.status, StatusCode::FORBIDDEN);
    // The members are sent to the same URL by the original route; others are refused.
    let original = format!("/v1/media/{id}/original");
    for (who, expected) in [
        (&alice, StatusCode::FOUND),
        (&bob, StatusCode::FOUND),
        (&carol, StatusCode::FORBIDDEN),
    ] {
        let resp = api.get_raw(&original, who, &[]).await;
        assert_eq!(resp.status, expected, "{}", who.handle);
        if expected == StatusCode::FOUND {
            assert_eq!(resp.header(header::LOCATION), url);
        }
    }
    // Carol, not a member, never had the URL: the room's history is the members'.
    let history = api.get(&format!("/v1/chats/{room}/messages"), &carol).await;
    assert_problem(&history, StatusCode::NOT_FOUND, "not-found");
}

#[tokio::test]
async fn images_are_checked_by_type_bytes_and_size() {
    let api = &Api::new().await;
    let alice = api.user("alice").await;
    let (_, done) = api.upload(&alice, "image/jpeg", &png(10, 10)).await;
    assert_problem(&done, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    let too_big = json!({"content_type": "image/webp", "size_bytes": 10 * 1024 * 1024 + 1});
    let r = api.post("/v1/media", &alice, too_big).await;
    assert_problem(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
    let gif = json!({"content_type": "image/gif", "size_bytes": 100});
    let r = api.post("/v1/media", &alice, gif).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    // Audio has no original route.
    let audio = api.media(&alice, "ready").await;
    let r = api
        .get(&format!("/v1/media/{audio}/original"), &alice)
        .await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
}

#[tokio::test]
async fn chat_media_is_playable_by_members_and_survives_cleanup() {
    let api = &Api::new().await;
    let (alice, bob, carol) = (
        api.user("alice").await,
        api.user("bob").await,
        api.user("carol").await,
    );
    let room = api.room(&alice, &bob).await;
    let sent = api.media(&alice, "ready").await;
    let loose = api.media(&alice, "ready").await;
    let r = api
        .send_message(&alice, &room, json!({"kind": "voice", "media_id": sent}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    // Playback access: a member gets past the access check (409: no outputs in
    // this fixture), a stranger is refused.
    let waveform = format!("/v1/media/{sent}/waveform");
    assert_ne!(api.get(&waveform, &bob).await.status, StatusCode::FORBIDDEN);
    assert_problem(
        &api.get(&waveform, &carol).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    // The fixture media have no objects, so the store's deletions are no-ops.
    let now = sori_pipeline::clock::now_ms() + 1_000;
    let swept = api.sweep(Duration::ZERO, now).await;
    assert_eq!(swept.media, 1);
    let left: Vec<String> = sqlx::query_scalar("SELECT id FROM media WHERE owner_id = $1")
        .bind(&alice.id)
        .fetch_all(api.t.db.pool())
        .await
        .unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(
        left[0], sent,
        "the loose upload {loose} went, the sent one stayed"
    );
}
