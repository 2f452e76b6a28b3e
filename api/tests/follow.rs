//! Router tests of following and unfollowing, on the backend `SORI_TEST_DB`
//! names: idempotence, the effect on the feed, unknown users and oneself,
//! follower and following lists, profile counts, and blocks refusing follows.

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

async fn handles(api: &Api, path: &str, who: &User) -> Vec<String> {
    api.get(path, who).await.strings("handle")
}

#[tokio::test]
async fn follower_lists_are_newest_first_in_pages() {
    let api = Api::new().await;
    let star = api.user("star").await;
    let fans = api.many_users("fan", 5).await;
    for fan in &fans {
        assert_eq!(
            follow(&api, Method::PUT, fan, &star.id).await.status,
            StatusCode::NO_CONTENT
        );
    }
    follow(&api, Method::PUT, &star, &fans[2].id).await;

    let followers = format!("/v1/users/{}/followers", star.id);
    let mut seen = Vec::new();
    for u in api.all_pages(&followers, &fans[0], 2).await {
        assert_eq!(
            u.as_object().unwrap().len(),
            4,
            "id, handle, display_name, avatar_url: {u}"
        );
        seen.push(u["handle"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, ["fan4", "fan3", "fan2", "fan1", "fan0"]);
    let following = handles(&api, &format!("/v1/users/{}/following", star.id), &star).await;
    assert_eq!(following, ["fan2"]);
    let r = api
        .get(&format!("/v1/users/{}/following", fans[2].id), &star)
        .await;
    assert_eq!(r.json["items"][0]["id"], star.id.as_str());

    // Unfollowing leaves the list; unknown users are 404.
    follow(&api, Method::DELETE, &fans[3], &star.id).await;
    let seen = handles(&api, &format!("/v1/users/{}/followers", star.id), &star).await;
    assert_eq!(seen, ["fan4", "fan2", "fan1", "fan0"]);
    let nobody = uuid::Uuid::now_v7();
    let r = api
        .get(&format!("/v1/users/{nobody}/followers"), &star)
        .await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
}

#[tokio::test]
async fn profiles_count_followers_following_and_posts() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    follow(&api, Method::PUT, &bob, &alice.id).await;
    follow(&api, Method::PUT, &carol, &alice.id).await;
    follow(&api, Method::PUT, &alice, &bob.id).await;
    api.ready_post(&alice).await;
    api.ready_post(&alice).await;
    // A post still processing is not counted.
    let media = api.media(&alice, "processing").await;
    api.post("/v1/posts", &alice, serde_json::json!({"media_id": media}))
        .await;

    let counts = |v: &Value| {
        (
            v["follower_count"].as_i64().unwrap(),
            v["following_count"].as_i64().unwrap(),
            v["post_count"].as_i64().unwrap(),
        )
    };
    let profile = api.get(&format!("/v1/users/{}", alice.id), &bob).await;
    assert_eq!(counts(&profile.json), (2, 1, 2));
    let me = api.get("/v1/me", &alice).await;
    assert_eq!(counts(&me.json), (2, 1, 2));
    let me = api.get("/v1/me", &carol).await;
    assert_eq!(counts(&me.json), (0, 1, 0));
}

#[tokio::test]
async fn a_profile_says_whether_the_caller_follows_them() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let path = format!("/v1/users/{}", alice.id);
    assert_eq!(api.get(&path, &bob).await.json["followed_by_me"], false);
    follow(&api, Method::PUT, &bob, &alice.id).await;
    assert_eq!(api.get(&path, &bob).await.json["followed_by_me"], true);
    // Alice does not follow Bob back, and one's own profile is never followed.
    let back = format!("/v1/users/{}", bob.id);
    assert_eq!(api.get(&back, &alice).await.json["followed_by_me"], false);
    assert_eq!(api.get("/v1/me", &bob).await.json["followed_by_me"], false);
    follow(&api, Method::DELETE, &bob, &alice.id).await;
    assert_eq!(api.get(&path, &bob).await.json["followed_by_me"], false);
}

#[tokio::test]
async fn a_block_either_way_refuses_following() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    api.block(&alice, &bob).await;
    let r = follow(&api, Method::PUT, &bob, &alice.id).await;
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = follow(&api, Method::PUT, &alice, &bob.id).await;
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        follow_rows(&api, &alice).await + follow_rows(&api, &bob).await,
        0
    );
}
