//! Editing and unsending chat messages through the router, on the backend
//! `SORI_TEST_DB` names: only the sender, editing within the window, the
//! history, room list, unread counts and queued pushes after an unsend, the
//! picture deleted from the store, and a reported message kept for the
//! moderators.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use support::{assert_problem, Api, Reply, User};

fn message_path(room: &str, id: &str) -> String {
    format!("/v1/chats/{room}/messages/{id}")
}

async fn edit(api: &Api, who: &User, room: &str, id: &str, text: &str) -> Reply {
    let path = message_path(room, id);
    api.call(
        Method::PATCH,
        &path,
        Some(&who.token),
        json!({"text": text}),
    )
    .await
}

async fn unsend(api: &Api, who: &User, room: &str, id: &str) -> Reply {
    api.delete(&message_path(room, id), who).await
}

/// The texts of the room's history as `who` sees it, newest first.
async fn history(api: &Api, who: &User, room: &str) -> Vec<String> {
    let page = api.get(&format!("/v1/chats/{room}/messages"), who).await;
    page.items()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

/// `who`'s view of the room in the room list.
async fn room_entry(api: &Api, who: &User, room: &str) -> Value {
    let rooms = api.get("/v1/chats", who).await;
    rooms
        .items()
        .iter()
        .find(|r| r["id"] == room)
        .cloned()
        .unwrap_or_else(|| panic!("{room} not listed: {}", rooms.json))
}

/// The message ids of the pushes queued for `user_id`.
async fn queued_pushes(api: &Api, user_id: &str) -> Vec<String> {
    let payloads: Vec<String> =
        sqlx::query_scalar("SELECT payload FROM push_outbox WHERE user_id = $1 ORDER BY id")
            .bind(user_id)
            .fetch_all(api.t.db.pool())
            .await
            .unwrap();
    payloads
        .iter()
        .map(|p| serde_json::from_str::<Value>(p).unwrap()["message_id"].to_string())
        .collect()
}

#[tokio::test]
async fn the_sender_edits_the_text_within_fifteen_minutes() {
    let api = Api::new().await;
    let (alice, bob, carol) = (
        api.user("alice").await,
        api.user("bob").await,
        api.user("carol").await,
    );
    let room = api.room(&alice, &bob).await;
    let id = api.text_message(&alice, &room, "helo bob").await;
    let r = edit(&api, &alice, &room, &id, "hello bob").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["text"], "hello bob");
    assert!(r.json["edited_at"].as_i64().is_some(), "{}", r.json);
    let seen = api.get(&format!("/v1/chats/{room}/messages"), &bob).await;
    assert_eq!(seen.items()[0]["text"], "hello bob");
    assert_eq!(seen.items()[0]["edited_at"], r.json["edited_at"]);

    assert_problem(
        &edit(&api, &bob, &room, &id, "not mine").await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_problem(
        &edit(&api, &carol, &room, &id, "not my room").await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    assert_problem(
        &edit(&api, &alice, &room, "nope", "no message").await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    let r = edit(&api, &alice, &room, &id, "").await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(r.json["errors"][0]["field"], "text");

    // Sent sixteen minutes ago: too late.
    sqlx::query("UPDATE messages SET created_at = created_at - 960000 WHERE id = $1")
        .bind(&id)
        .execute(api.t.db.pool())
        .await
        .unwrap();
    let r = edit(&api, &alice, &room, &id, "rewriting history").await;
    assert_problem(&r, StatusCode::CONFLICT, "conflict");
    assert_eq!(history(&api, &bob, &room).await, ["hello bob"]);
}

#[tokio::test]
async fn an_unsent_message_leaves_history_room_list_unread_counts_and_pushes() {
    let api = Api::new().await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    let room = api.room(&alice, &bob).await;
    let first = api.text_message(&alice, &room, "first").await;
    let second = api.text_message(&alice, &room, "second, regretted").await;
    // Bob is offline: a push each.
    assert_eq!(queued_pushes(&api, &bob.id).await.len(), 2);
    let entry = room_entry(&api, &bob, &room).await;
    assert_eq!(entry["unread_count"], 2);
    assert_eq!(entry["last_message"]["id"], second.as_str());

    assert_problem(
        &unsend(&api, &bob, &room, &second).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let r = unsend(&api, &alice, &room, &second).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.json);
    for who in [&alice, &bob] {
        assert_eq!(history(&api, who, &room).await, ["first"]);
        let entry = room_entry(&api, who, &room).await;
        assert_eq!(entry["last_message"]["id"], first.as_str(), "{entry}");
    }
    assert_eq!(room_entry(&api, &bob, &room).await["unread_count"], 1);
    assert_eq!(
        queued_pushes(&api, &bob.id).await,
        [format!("\"{first}\"")],
        "the unsent message's push is withdrawn"
    );
    assert_problem(
        &unsend(&api, &alice, &room, &second).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    // The last one too: the room stays, with no last message.
    let r = unsend(&api, &alice, &room, &first).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let entry = room_entry(&api, &bob, &room).await;
    assert!(entry["last_message"].is_null(), "{entry}");
    assert_eq!(entry["unread_count"], 0);
}

/// Files under the local store's directory whose path names `media_id`.
fn stored_files(api: &Api, media_id: &str) -> usize {
    let mut pending = vec![api.blobs.path().to_path_buf()];
    let mut found = 0;
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.display().to_string().contains(media_id) {
                found += 1;
            }
        }
    }
    found
}

#[tokio::test]
async fn an_unsent_picture_is_deleted_from_the_store() {
    let api = Api::new().await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    let room = api.room(&alice, &bob).await;
    let picture = image::RgbImage::from_pixel(64, 48, image::Rgb([10, 200, 10]));
    let mut png = std::io::Cursor::new(Vec::new());
    picture.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let (media, done) = api.upload(&alice, "image/png", png.get_ref()).await;
    assert_eq!(done.status, StatusCode::ACCEPTED, "{}", done.json);
    let r = api
        .send_message(&alice, &room, json!({"kind": "image", "media_id": media}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    // The upload, the picture as sent on and its thumbnail.
    assert_eq!(stored_files(&api, &media), 3);
    let r = unsend(&api, &alice, &room, &r.id()).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.json);
    assert_eq!(stored_files(&api, &media), 0);
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM media WHERE id = $1")
        .bind(&media)
        .fetch_one(api.t.db.pool())
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn a_reported_message_is_hidden_for_the_moderators_not_deleted() {
    let api = Api::new().await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    let room = api.room(&alice, &bob).await;
    let id = api.text_message(&alice, &room, "something nasty").await;
    let report = json!({"target_kind": "message", "target_id": id, "reason": "harassment"});
    let r = api.post("/v1/reports", &bob, report).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let r = unsend(&api, &alice, &room, &id).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.json);
    assert!(history(&api, &bob, &room).await.is_empty());
    assert!(room_entry(&api, &bob, &room).await["last_message"].is_null());
    let kept: (String, Option<i64>) =
        sqlx::query_as("SELECT body, hidden_at FROM messages WHERE id = $1")
            .bind(&id)
            .fetch_one(api.t.db.pool())
            .await
            .unwrap();
    assert_eq!(kept.0, "something nasty");
    assert!(kept.1.is_some(), "not hidden");
    let open: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM reports WHERE target_id = $1 AND state = 'open'")
            .bind(&id)
            .fetch_one(api.t.db.pool())
            .await
            .unwrap();
    assert_eq!(open, 1);
}
