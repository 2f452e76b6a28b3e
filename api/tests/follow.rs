//! Router tests of following and unfollowing, on the backend `SORI_TEST_DB`
//! names: idempotence, the effect on the feed, unknown users and oneself.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::Value;
use support::{assert_problem, Api, Reply, User};

async fn follow(api: &Api, method: Method, who: &User, target: &str) -> Reply {
    let path = format!("/v1/users/{target}/follow");
    api.call(method, &path, Some(&who.token), Value::Null).await
}

async fn follow_rows(api: &Api, follower: &User) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM follows WHERE follower_id = $1")
        .bind(&follower.id)
        .fetch_one(api.t.db.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn following_is_idempotent_and_decides_the_feed() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let post = api.ready_post(&alice).await;
    assert!(api.feed_ids(&bob).await.is_empty());

    for _ in 0..2 {
        let r = follow(&api, Method::PUT, &bob, &alice.id).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.json);
    }
    assert_eq!(follow_rows(&api, &bob).await, 1);
    assert_eq!(api.feed_ids(&bob).await, vec![post.clone()]);
    // Following is one way: alice's feed is only her own post.
    assert_eq!(follow_rows(&api, &alice).await, 0);
    assert_eq!(api.feed_ids(&alice).await, vec![post]);

    for _ in 0..2 {
        let r = follow(&api, Method::DELETE, &bob, &alice.id).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.json);
    }
    assert_eq!(follow_rows(&api, &bob).await, 0);
    assert!(api.feed_ids(&bob).await.is_empty());
}

#[tokio::test]
async fn unknown_users_are_404_and_oneself_is_422() {
    let api = Api::new().await;
    let bob = api.user("bob").await;
    let nobody = uuid::Uuid::now_v7().to_string();
    for method in [Method::PUT, Method::DELETE] {
        let r = follow(&api, method.clone(), &bob, &nobody).await;
        assert_problem(&r, StatusCode::NOT_FOUND, "not-found");

        let r = follow(&api, method, &bob, &bob.id).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
        assert_eq!(r.json["errors"][0]["field"], "id");
    }
    assert_eq!(follow_rows(&api, &bob).await, 0);
}

#[tokio::test]
async fn following_needs_a_token() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let path = format!("/v1/users/{}/follow", alice.id);
    for method in [Method::PUT, Method::DELETE] {
        let r = api.call(method, &path, None, Value::Null).await;
        assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    }
}
