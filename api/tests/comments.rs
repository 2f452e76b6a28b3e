//! Router tests of comments, on the backend `SORI_TEST_DB` names: text and
//! voice comments, their order and pages, who may delete them, the post's
//! comment count, and the media cleanup leaving a voice comment's clip alone.

mod support;

use axum::http::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use support::{assert_problem, Api, Reply, User};

async fn comment(api: &Api, post: &str, who: &User, body: Value) -> Reply {
    api.post(&format!("/v1/posts/{post}/comments"), who, body)
        .await
}

async fn text(api: &Api, post: &str, who: &User, text: &str) -> String {
    let r = comment(api, post, who, json!({ "text": text })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    r.json["id"].as_str().unwrap().to_owned()
}

async fn texts(api: &Api, post: &str, who: &User) -> Vec<String> {
    let r = api.get(&format!("/v1/posts/{post}/comments"), who).await;
    r.strings("text")
}

async fn comment_count(api: &Api, post: &str, who: &User) -> i64 {
    api.post_item(post, who).await["comment_count"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn text_comments_list_oldest_first_in_pages() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let post = api.ready_post(&alice).await;
    for i in 0..5 {
        text(
            &api,
            &post,
            if i % 2 == 0 { &bob } else { &alice },
            &format!("c{i}"),
        )
        .await;
    }
    assert_eq!(
        texts(&api, &post, &bob).await,
        ["c0", "c1", "c2", "c3", "c4"]
    );
    assert_eq!(comment_count(&api, &post, &bob).await, 5);

    let pages = api
        .all_pages(&format!("/v1/posts/{post}/comments"), &alice, 2)
        .await;
    let seen: Vec<&str> = pages.iter().map(|c| c["text"].as_str().unwrap()).collect();
    assert_eq!(seen, ["c0", "c1", "c2", "c3", "c4"]);

    let first = api.get(&format!("/v1/posts/{post}/comments"), &alice).await;
    let c = &first.json["items"][0];
    assert_eq!(c["kind"], "text");
    assert_eq!(c["author"]["handle"], "bob");
    assert_eq!(c["post_id"], post.as_str());
    assert!(c["audio_url"].is_null());
}

#[tokio::test]
async fn bad_comments_are_refused() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let post = api.ready_post(&alice).await;
    for body in [
        json!({ "text": "x".repeat(1001) }),
        json!({ "text": "   " }),
        json!({}),
        json!({ "text": "hi", "media_id": uuid::Uuid::now_v7().to_string() }),
    ] {
        let r = comment(&api, &post, &alice, body).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
        assert_eq!(r.json["errors"][0]["field"], "text");
    }
    let ok = comment(&api, &post, &alice, json!({ "text": "x".repeat(1000) })).await;
    assert_eq!(ok.status, StatusCode::CREATED);
    let nothing = uuid::Uuid::now_v7();
    let r = comment(&api, &nothing.to_string(), &alice, json!({ "text": "hi" })).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    assert_eq!(comment_count(&api, &post, &alice).await, 1);
}

#[tokio::test]
async fn voice_comments_need_own_unattached_media_and_show_once_ready() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let post = api.ready_post(&alice).await;

    // Someone else's media, a posted one, a failed one: refused.
    let alices = api.media(&alice, "ready").await;
    let r = comment(&api, &post, &bob, json!({ "media_id": alices })).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(r.json["errors"][0]["field"], "media_id");
    let posted: String = sqlx::query_scalar("SELECT media_id FROM posts WHERE id = $1")
        .bind(&post)
        .fetch_one(api.t.db.pool())
        .await
        .unwrap();
    let r = comment(&api, &post, &alice, json!({ "media_id": posted })).await;
    assert_problem(&r, StatusCode::CONFLICT, "conflict");
    let failed = api.media(&bob, "failed").await;
    let r = comment(&api, &post, &bob, json!({ "media_id": failed })).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");

    // A clip still processing: its author sees it, others do not.
    let clip = api.media(&bob, "processing").await;
    let r = comment(&api, &post, &bob, json!({ "media_id": clip })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(r.json["kind"], "voice");
    assert_eq!(r.json["state"], "processing");
    assert!(r.json["audio_url"].is_null());
    let path = format!("/v1/posts/{post}/comments");
    assert_eq!(api.ids(&path, &bob).await.len(), 1);
    assert!(api.ids(&path, &alice).await.is_empty());
    // The same clip cannot go on a second comment.
    let r = comment(&api, &post, &bob, json!({ "media_id": clip })).await;
    assert_problem(&r, StatusCode::CONFLICT, "conflict");

    api.set_media_state(&clip, "ready").await;
    let r = api.get(&path, &alice).await;
    let c = &r.json["items"][0];
    assert_eq!(c["media_id"], clip.as_str());
    assert_eq!(c["duration_ms"], 1234);
    assert_eq!(c["bars"], json!([1, 2, 3]));
    support::assert_clip_urls(c, &clip);
    assert_eq!(comment_count(&api, &post, &alice).await, 1);
}

#[tokio::test]
async fn the_comment_or_post_author_may_delete_others_may_not() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let post = api.ready_post(&alice).await;
    let first = text(&api, &post, &bob, "one").await;
    let second = text(&api, &post, &bob, "two").await;
    assert_eq!(comment_count(&api, &post, &alice).await, 2);

    let r = api.delete(&format!("/v1/comments/{first}"), &carol).await;
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = api.delete(&format!("/v1/comments/{first}"), &bob).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api.delete(&format!("/v1/comments/{first}"), &bob).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    let r = api.delete(&format!("/v1/comments/{second}"), &alice).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    assert!(texts(&api, &post, &carol).await.is_empty());
    assert_eq!(comment_count(&api, &post, &alice).await, 0);
}

#[tokio::test]
async fn the_cleanup_keeps_a_voice_comments_clip() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let post = api.ready_post(&alice).await;
    let clip = api.media(&alice, "ready").await;
    let loose = api.media(&alice, "ready").await;
    let r = comment(&api, &post, &alice, json!({ "media_id": clip })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);

    // The test media were created at time 0: long past any time to live.
    let swept = api.sweep(Duration::from_secs(60), 1_000_000).await;
    assert_eq!(swept.media, 1);
    let left: Vec<String> = sqlx::query_scalar("SELECT id FROM media WHERE id IN ($1, $2)")
        .bind(&clip)
        .bind(&loose)
        .fetch_all(api.t.db.pool())
        .await
        .unwrap();
    assert_eq!(left, [clip]);
}
