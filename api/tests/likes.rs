//! Router tests of likes, on the backend `SORI_TEST_DB` names: idempotence,
//! the counter under concurrency, `liked_by_me`, and who may like what.

mod support;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use support::{assert_problem, request, Api};
use tower::ServiceExt;

async fn like_rows(api: &Api, post: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM likes WHERE post_id = $1")
        .bind(post)
        .fetch_one(api.t.db.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn liking_is_idempotent_and_counted_once() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let post = api.ready_post(&alice).await;
    let path = format!("/v1/posts/{post}/like");

    for _ in 0..2 {
        assert_eq!(api.put(&path, &bob).await.status, StatusCode::NO_CONTENT);
    }
    let item = api.post_item(&post, &bob).await;
    assert_eq!(item["like_count"], 1);
    assert_eq!(item["liked_by_me"], true);
    assert_eq!(api.post_item(&post, &alice).await["liked_by_me"], false);
    assert_eq!(like_rows(&api, &post).await, 1);

    for _ in 0..2 {
        assert_eq!(api.delete(&path, &bob).await.status, StatusCode::NO_CONTENT);
    }
    let item = api.post_item(&post, &bob).await;
    assert_eq!(item["like_count"], 0);
    assert_eq!(item["liked_by_me"], false);
    assert_eq!(like_rows(&api, &post).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_likes_count_a_hundred() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let post = api.ready_post(&alice).await;
    let fans = api.many_users("fan", 100).await;
    let mut tasks = tokio::task::JoinSet::new();
    for fan in &fans {
        // Each fan likes twice at once: the repeats must change nothing.
        for _ in 0..2 {
            let path = format!("/v1/posts/{post}/like");
            let req = request(Method::PUT, &path, Some(&fan.token))
                .body(Body::empty())
                .unwrap();
            let app = api.app.clone();
            tasks.spawn(async move { app.oneshot(req).await.unwrap().status() });
        }
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::NO_CONTENT);
    }
    assert_eq!(like_rows(&api, &post).await, 100);
    assert_eq!(api.post_item(&post, &alice).await["like_count"], 100);

    // In a fan's feed (they follow alice) the item says they liked it; not in alice's.
    let fan = &fans[7];
    api.follow(fan, &alice).await;
    let feed = api.get("/v1/feed", fan).await;
    assert_eq!(feed.json["items"][0]["id"], post.as_str());
    assert_eq!(feed.json["items"][0]["liked_by_me"], true);
    assert_eq!(feed.json["items"][0]["like_count"], 100);
    let own = api.get("/v1/feed", &alice).await;
    assert_eq!(own.json["items"][0]["liked_by_me"], false);
}

#[tokio::test]
async fn only_visible_posts_can_be_liked() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let nothing = uuid::Uuid::now_v7();
    let r = api.put(&format!("/v1/posts/{nothing}/like"), &bob).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");

    // A post still processing exists only for its author.
    let media = api.media(&alice, "processing").await;
    let r = api
        .post("/v1/posts", &alice, serde_json::json!({"media_id": media}))
        .await;
    let pending = r.json["id"].as_str().unwrap().to_owned();
    let r = api.put(&format!("/v1/posts/{pending}/like"), &bob).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    let r = api.put(&format!("/v1/posts/{pending}/like"), &alice).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    let path = format!("/v1/posts/{pending}/like");
    let r = api
        .call(Method::PUT, &path, None, serde_json::Value::Null)
        .await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn a_block_refuses_likes_both_ways_but_not_unliking() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let post = api.ready_post(&alice).await;
    let bobs = api.ready_post(&bob).await;
    let path = format!("/v1/posts/{post}/like");
    assert_eq!(api.put(&path, &bob).await.status, StatusCode::NO_CONTENT);

    // Alice blocks bob: bob cannot like her post, nor she his.
    api.block(&alice, &bob).await;
    let r = api.put(&path, &bob).await;
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = api.put(&format!("/v1/posts/{bobs}/like"), &alice).await;
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");

    // Bob can still take back the like he gave before.
    assert_eq!(api.delete(&path, &bob).await.status, StatusCode::NO_CONTENT);
    assert_eq!(like_rows(&api, &post).await, 0);
    assert_eq!(api.post_item(&post, &alice).await["like_count"], 0);
}
