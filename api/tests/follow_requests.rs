//! Router tests of private accounts, on the backend `SORI_TEST_DB` names:
//! following one is a request it approves or declines, the requester may
//! withdraw it, a block removes it, and turning public accepts every
//! pending one; until approved, a requester hears none of its posts, not
//! even public ones.

mod support;

use axum::http::StatusCode;
use serde_json::json;
use support::{assert_problem, Api, User};

async fn kinds(api: &Api, who: &User) -> Vec<String> {
    let r = api.get("/v1/notifications", who).await;
    r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap().to_owned())
        .collect()
}

async fn requesters(api: &Api, who: &User) -> Vec<String> {
    api.all_pages("/v1/me/follow-requests", who, 2)
        .await
        .iter()
        .map(|u| u["handle"].as_str().unwrap().to_owned())
        .collect()
}

/// `who` asks to follow `whom` (a private account): 202.
async fn ask(api: &Api, who: &User, whom: &User) {
    let r = api.put(&format!("/v1/users/{}/follow", whom.id), who).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
}

async fn make_private(api: &Api, who: &User, private: bool) {
    let r = api.patch("/v1/me", who, json!({"private": private})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["private"], private);
}

#[tokio::test]
async fn a_private_account_approves_its_followers() {
    let api = Api::new().await;
    let (ana, ben, cat) = (
        api.user("ana").await,
        api.user("ben").await,
        api.user("cat").await,
    );
    make_private(&api, &ana, true).await;
    let post = api.post_with(&ana, "#public but private account").await;
    let followers_only = api
        .post(
            "/v1/posts",
            &ana,
            json!({"media_id": api.media(&ana, "ready").await, "visibility": "followers"}),
        )
        .await
        .id();

    ask(&api, &ben, &ana).await;
    ask(&api, &ben, &ana).await;
    ask(&api, &cat, &ana).await;
    assert_eq!(requesters(&api, &ana).await, ["cat", "ben"]);
    assert_eq!(
        kinds(&api, &ana).await,
        ["follow_request", "follow_request"]
    );
    let profile = api.get(&format!("/v1/users/{}", ana.id), &ben).await;
    assert_eq!(
        (&profile.json["private"], &profile.json["requested_by_me"]),
        (&json!(true), &json!(true))
    );
    assert_eq!(profile.json["follower_count"], 0);
    assert_eq!(profile.json["post_count"], 0);
    // Asking is not following: nothing of ana's reaches ben yet, nor whom
    // she follows or who follows her.
    for list in ["followers", "following"] {
        let path = format!("/v1/users/{}/{list}", ana.id);
        assert_problem(
            &api.get(&path, &ben).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
        assert_eq!(api.get(&path, &ana).await.status, StatusCode::OK);
    }
    assert!(api.feed_ids(&ben).await.is_empty());
    assert!(api
        .ids(&format!("/v1/users/{}/posts", ana.id), &ben)
        .await
        .is_empty());
    assert!(api.ids("/v1/explore", &ben).await.is_empty());
    let r = api.get(&format!("/v1/posts/{post}"), &ben).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");

    // Approved, ben follows and hears both; he is told.
    let r = api
        .post(
            &format!("/v1/me/follow-requests/{}/approve", ben.id),
            &ana,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.json);
    assert_eq!(
        api.feed_ids(&ben).await,
        [followers_only.clone(), post.clone()]
    );
    assert_eq!(kinds(&api, &ben).await, ["follow_accepted"]);
    // Answered, ben's request leaves her list; cat's still waits there.
    assert_eq!(kinds(&api, &ana).await, ["follow", "follow_request"]);
    assert_eq!(requesters(&api, &ana).await, ["cat"]);
    let followers = api
        .ids(&format!("/v1/users/{}/followers", ana.id), &ben)
        .await;
    assert_eq!(followers, [ben.id.as_str()]);
    // Answering twice finds nothing.
    let again = format!("/v1/me/follow-requests/{}/approve", ben.id);
    assert_problem(
        &api.post(&again, &ana, json!({})).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    // A follower's follow call stays a follow.
    let r = api.put(&format!("/v1/users/{}/follow", ana.id), &ben).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    // Declined, cat is not told and still hears nothing.
    let r = api
        .post(
            &format!("/v1/me/follow-requests/{}/decline", cat.id),
            &ana,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(kinds(&api, &cat).await.is_empty());
    assert!(requesters(&api, &ana).await.is_empty());
    assert_eq!(kinds(&api, &ana).await, ["follow"]);
    // Asked again, the request is listed again, and told no second time.
    ask(&api, &cat, &ana).await;
    assert_eq!(kinds(&api, &ana).await, ["follow", "follow_request"]);
    assert!(api
        .ids(&format!("/v1/users/{}/posts", ana.id), &cat)
        .await
        .is_empty());
}

#[tokio::test]
async fn requests_are_withdrawn_blocked_and_accepted_on_turning_public() {
    let api = Api::new().await;
    let (ana, ben, cat, dan) = (
        api.user("ana").await,
        api.user("ben").await,
        api.user("cat").await,
        api.user("dan").await,
    );
    make_private(&api, &ana, true).await;
    let post = api.ready_post(&ana).await;
    for who in [&ben, &cat, &dan] {
        ask(&api, who, &ana).await;
    }
    // Ben withdraws his; ana blocks cat (which removes cat's).
    let r = api
        .delete(&format!("/v1/users/{}/follow", ana.id), &ben)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    api.block(&ana, &cat).await;
    assert_eq!(requesters(&api, &ana).await, ["dan"]);
    let r = api
        .post(
            &format!("/v1/me/follow-requests/{}/approve", ben.id),
            &ana,
            json!({}),
        )
        .await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");

    // Turning public accepts dan's, and everyone hears ana's public post again.
    make_private(&api, &ana, false).await;
    assert!(requesters(&api, &ana).await.is_empty());
    assert_eq!(api.feed_ids(&dan).await, [post.as_str()]);
    assert_eq!(kinds(&api, &dan).await, ["follow_accepted"]);
    assert_eq!(api.ids("/v1/explore", &ben).await, [post.as_str()]);
    let r = api.put(&format!("/v1/users/{}/follow", ana.id), &ben).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

/// `(follows, requests)` rows between `a` and `b`, either way.
async fn between(api: &Api, a: &User, b: &User) -> (i64, i64) {
    let count = |table: &str, x: &str, y: &str| {
        format!(
            "SELECT COUNT(*) FROM {table} WHERE ({x} = $1 AND {y} = $2) OR ({x} = $2 AND {y} = $1)"
        )
    };
    let mut counts = [0; 2];
    for (i, sql) in [
        count("follows", "follower_id", "followee_id"),
        count("follow_requests", "requester_id", "target_id"),
    ]
    .iter()
    .enumerate()
    {
        counts[i] = sqlx::query_scalar(sql)
            .bind(&a.id)
            .bind(&b.id)
            .fetch_one(api.t.db.pool())
            .await
            .unwrap();
    }
    (counts[0], counts[1])
}

/// An approval racing the requester's withdrawal, or the account's block,
/// leaves what one order or the other would: never a follow that outlives
/// the withdrawal or the block.
#[tokio::test]
async fn an_approval_racing_a_withdrawal_or_a_block_leaves_no_follow() {
    let api = Api::new().await;
    let ana = api.user("ana").await;
    make_private(&api, &ana, true).await;
    for round in 0..10 {
        let ben = api.user(&format!("ben{round}")).await;
        ask(&api, &ben, &ana).await;
        let approve = format!("/v1/me/follow-requests/{}/approve", ben.id);
        let follow = format!("/v1/users/{}/follow", ana.id);
        let (approved, withdrawn) = tokio::join!(
            api.post(&approve, &ana, json!({})),
            api.delete(&follow, &ben),
        );
        assert!(
            [StatusCode::NO_CONTENT, StatusCode::NOT_FOUND].contains(&approved.status),
            "{}",
            approved.json
        );
        assert_eq!(withdrawn.status, StatusCode::NO_CONTENT);
        assert_eq!(between(&api, &ana, &ben).await, (0, 0), "round {round}");

        ask(&api, &ben, &ana).await;
        let block = format!("/v1/users/{}/block", ben.id);
        let (_, blocked) = tokio::join!(api.post(&approve, &ana, json!({})), api.put(&block, &ana));
        assert_eq!(blocked.status, StatusCode::NO_CONTENT);
        assert_eq!(between(&api, &ana, &ben).await, (0, 0), "round {round}");
    }
}
