//! Router tests of blocks, on the backend `SORI_TEST_DB` names: what a block
//! refuses (follow, like, comment: 403) and hides (posts and comments, both
//! ways, in every list), the follows it removes, and unblocking.

mod support;

use axum::http::StatusCode;
use serde_json::json;
use support::{assert_problem, Api, User};

async fn follow_status(api: &Api, who: &User, whom: &User) -> StatusCode {
    api.put(&format!("/v1/users/{}/follow", whom.id), who)
        .await
        .status
}

#[tokio::test]
async fn blocking_removes_follows_both_ways_and_refuses_new_ones() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let post = api.ready_post(&bob).await;
    assert_eq!(
        follow_status(&api, &alice, &bob).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        follow_status(&api, &bob, &alice).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(api.feed_ids(&alice).await, [post.as_str()]);

    api.block(&alice, &bob).await;
    api.block(&alice, &bob).await;
    let follows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM follows")
        .fetch_one(api.t.db.pool())
        .await
        .unwrap();
    assert_eq!(follows, 0);
    assert!(api.feed_ids(&alice).await.is_empty());
    let me = api.get("/v1/me", &alice).await;
    assert_eq!(
        (
            me.json["follower_count"].as_i64(),
            me.json["following_count"].as_i64()
        ),
        (Some(0), Some(0))
    );

    // Neither may follow the other while the block stands.
    for (who, whom) in [(&alice, &bob), (&bob, &alice)] {
        let r = api.put(&format!("/v1/users/{}/follow", whom.id), who).await;
        assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");
    }

    // Lifting it allows following again.
    let r = api
        .delete(&format!("/v1/users/{}/block", bob.id), &alice)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        follow_status(&api, &bob, &alice).await,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn blocked_users_see_none_of_each_others_posts() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let alices = api.post_with(&alice, "#voice from alice").await;
    let bobs = api.post_with(&bob, "#voice from bob").await;

    api.block(&bob, &alice).await;
    for (who, other_post, other) in [(&alice, &bobs, &bob), (&bob, &alices, &alice)] {
        assert_eq!(api.ids("/v1/explore", who).await.len(), 1);
        assert!(!api
            .ids("/v1/explore?tag=voice", who)
            .await
            .contains(other_post));
        assert!(api
            .ids(&format!("/v1/users/{}/posts", other.id), who)
            .await
            .is_empty());
        let r = api.get(&format!("/v1/posts/{other_post}"), who).await;
        assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
        let r = api
            .get(&format!("/v1/posts/{other_post}/comments"), who)
            .await;
        assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
        let r = api.get("/v1/search?q=voice&kind=posts", who).await;
        assert_eq!(r.json["items"].as_array().unwrap().len(), 1);
    }
    // Others still see both.
    assert_eq!(api.ids("/v1/explore", &carol).await.len(), 2);
}

#[tokio::test]
async fn a_block_refuses_comments_and_hides_existing_ones() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let post = api.ready_post(&carol).await;
    let alices = api.ready_post(&alice).await;
    let path = format!("/v1/posts/{post}/comments");
    for who in [&alice, &bob] {
        let r = api
            .post(&path, who, json!({"text": format!("by {}", who.handle)}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }

    api.block(&alice, &bob).await;
    // On carol's post, each sees only their own comment now; carol sees both.
    assert_eq!(api.ids(&path, &alice).await.len(), 1);
    assert_eq!(api.ids(&path, &bob).await.len(), 1);
    assert_eq!(api.ids(&path, &carol).await.len(), 2);

    let r = api
        .post(
            &format!("/v1/posts/{alices}/comments"),
            &bob,
            json!({"text": "hey"}),
        )
        .await;
    // The post is not visible to bob at all; commenting is refused.
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn blocking_oneself_or_nobody_is_refused() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let r = api
        .put(&format!("/v1/users/{}/block", alice.id), &alice)
        .await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    let nobody = uuid::Uuid::now_v7();
    let r = api.put(&format!("/v1/users/{nobody}/block"), &alice).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
}
