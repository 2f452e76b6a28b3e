//! Router tests of plays, on the backend `SORI_TEST_DB` names: at most one
//! counted play per listener, post and UTC day, shown as the feed's `play_count`.

mod support;

use axum::http::StatusCode;
use serde_json::Value;
use support::{assert_problem, Api, User};

async fn play(api: &Api, post: &str, who: &User) -> Value {
    let r = api
        .post(&format!("/v1/posts/{post}/plays"), who, Value::Null)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    r.json
}

#[tokio::test]
async fn a_listener_counts_once_a_day() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let post = api.ready_post(&alice).await;

    let first = play(&api, &post, &bob).await;
    assert_eq!(
        (first["counted"].as_bool(), first["play_count"].as_i64()),
        (Some(true), Some(1))
    );
    let again = play(&api, &post, &bob).await;
    assert_eq!(
        (again["counted"].as_bool(), again["play_count"].as_i64()),
        (Some(false), Some(1))
    );
    assert_eq!(play(&api, &post, &carol).await["play_count"], 2);

    // Bob's play was yesterday (UTC): today's counts again.
    sqlx::query("UPDATE plays SET day = day - 1 WHERE user_id = $1")
        .bind(&bob.id)
        .execute(api.t.db.pool())
        .await
        .unwrap();
    assert_eq!(play(&api, &post, &bob).await["counted"], true);

    assert_eq!(api.post_item(&post, &carol).await["play_count"], 3);
    let explore = api.get("/v1/explore", &carol).await;
    assert_eq!(explore.json["items"][0]["play_count"], 3);
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM plays WHERE post_id = $1")
        .bind(&post)
        .fetch_one(api.t.db.pool())
        .await
        .unwrap();
    assert_eq!(rows, 3);
}

#[tokio::test]
async fn only_visible_posts_can_be_played() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let post = api.ready_post(&alice).await;
    let nothing = uuid::Uuid::now_v7();
    let r = api
        .post(&format!("/v1/posts/{nothing}/plays"), &bob, Value::Null)
        .await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    api.block(&alice, &bob).await;
    let r = api
        .post(&format!("/v1/posts/{post}/plays"), &bob, Value::Null)
        .await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    assert_eq!(api.post_item(&post, &alice).await["play_count"], 0);
}
