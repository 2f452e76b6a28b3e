//! Router tests of mutes and the lists of blocks and mutes, on the backend
//! `SORI_TEST_DB` names: a mute quiets the feed, explore and notifications
//! and nothing else; it lapses when timed; the muted user notices nothing;
//! both lists page newest first and undo what they show.

mod support;

use axum::http::StatusCode;
use support::{assert_problem, Api, User};

fn notification_actors(r: &support::Reply) -> Vec<String> {
    r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["actor"]["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn handles(api: &Api, path: &str, who: &User) -> Vec<String> {
    api.all_pages(path, who, 2)
        .await
        .iter()
        .map(|u| u["handle"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_mute_quiets_feed_explore_and_notifications_only() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    api.follow(&alice, &bob).await;
    let post = api.post_with(&bob, "#rain on the roof").await;
    let mine = api.post_with(&alice, "mine").await;
    let r = api.put(&format!("/v1/posts/{mine}/like"), &bob).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let before = api.get("/v1/notifications", &alice).await;
    assert_eq!(notification_actors(&before), [bob.id.as_str()]);
    assert_eq!(before.json["unread_count"], 1);

    api.mute(&alice, &bob).await;
    assert_eq!(api.feed_ids(&alice).await, [mine.as_str()]);
    assert!(!api.ids("/v1/explore", &alice).await.contains(&post));
    assert!(api.ids("/v1/explore?tag=rain", &alice).await.is_empty());
    let after = api.get("/v1/notifications", &alice).await;
    assert!(notification_actors(&after).is_empty(), "{}", after.json);
    assert_eq!(after.json["unread_count"], 0);
    // A profile and a link still work, and they still follow.
    let profile = api
        .ids(&format!("/v1/users/{}/posts", bob.id), &alice)
        .await;
    assert_eq!(profile, [post.as_str()]);
    assert_eq!(
        api.get(&format!("/v1/posts/{post}"), &alice).await.status,
        StatusCode::OK
    );
    // Bob notices nothing: he sees alice's post and may like it again.
    assert!(api.ids("/v1/explore", &bob).await.contains(&mine));
    let r = api.delete(&format!("/v1/posts/{mine}/like"), &bob).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api.put(&format!("/v1/posts/{mine}/like"), &bob).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    // Unmuted, everything is back (the notification was kept, not dropped).
    let r = api
        .delete(&format!("/v1/users/{}/mute", bob.id), &alice)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(api.feed_ids(&alice).await.len(), 2);
    let back = api.get("/v1/notifications", &alice).await;
    assert_eq!(notification_actors(&back), [bob.id.as_str()]);
}

#[tokio::test]
async fn a_timed_mute_lapses_on_its_own() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    api.follow(&alice, &bob).await;
    let post = api.ready_post(&bob).await;
    let r = api
        .put(&format!("/v1/users/{}/mute?minutes=30", bob.id), &alice)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(api.feed_ids(&alice).await.is_empty());
    assert_eq!(handles(&api, "/v1/me/mutes", &alice).await, ["bob"]);
    // The list says when it lapses; a mute for good, never.
    let carol = api.user("carol").await;
    api.mute(&alice, &carol).await;
    let listed = api.get("/v1/me/mutes", &alice).await.json;
    assert_eq!(listed["items"][0]["handle"], "carol");
    assert!(listed["items"][0]["until"].is_null());
    let until = listed["items"][1]["until"].as_i64().unwrap();
    let expected = sori_pipeline::clock::now_ms() + 30 * 60_000;
    assert!((until - expected).abs() < 60_000, "{until} vs {expected}");
    api.delete(&format!("/v1/users/{}/mute", carol.id), &alice)
        .await;

    // Thirty minutes later (the row's end moved into the past).
    sqlx::query("UPDATE mutes SET until = until - 1800001")
        .execute(api.t.db.pool())
        .await
        .unwrap();
    assert_eq!(api.feed_ids(&alice).await, [post]);
    assert!(handles(&api, "/v1/me/mutes", &alice).await.is_empty());

    for bad in ["0", "525601", "-5", "soon"] {
        let r = api
            .put(&format!("/v1/users/{}/mute?minutes={bad}", bob.id), &alice)
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            r.json
        );
        assert!(
            r.json["errors"].to_string().contains("minutes"),
            "{}",
            r.json
        );
    }
    let r = api
        .put(&format!("/v1/users/{}/mute", alice.id), &alice)
        .await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    let r = api.put("/v1/users/nobody/mute", &alice).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
}

#[tokio::test]
async fn blocks_and_mutes_list_newest_first_and_undo() {
    let api = Api::new().await;
    let me = api.user("myself").await;
    let others = [
        api.user("ann").await,
        api.user("ben").await,
        api.user("cid").await,
    ];
    for other in &others {
        api.block(&me, other).await;
        api.mute(&me, other).await;
        // Distinct times, so the order is the order of the calls.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    // Someone blocking or muting me is not in my lists.
    api.block(&others[0], &me).await;
    api.mute(&others[1], &me).await;
    for list in ["/v1/me/blocks", "/v1/me/mutes"] {
        assert_eq!(
            handles(&api, list, &me).await,
            ["cid", "ben", "ann"],
            "{list}"
        );
    }
    let r = api.get("/v1/me/blocks?limit=2", &me).await;
    assert!(r.json["items"][0]["avatar_url"].is_null(), "{}", r.json);

    for undo in ["block", "mute"] {
        let path = format!("/v1/users/{}/{undo}", others[1].id);
        assert_eq!(api.delete(&path, &me).await.status, StatusCode::NO_CONTENT);
    }
    for list in ["/v1/me/blocks", "/v1/me/mutes"] {
        assert_eq!(handles(&api, list, &me).await, ["cid", "ann"], "{list}");
    }
    // Muting again replaces the mute (now timed), moving it to the top.
    let r = api
        .put(&format!("/v1/users/{}/mute?minutes=5", others[0].id), &me)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(handles(&api, "/v1/me/mutes", &me).await, ["ann", "cid"]);
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mutes WHERE muter_id = $1")
        .bind(&me.id)
        .fetch_one(api.t.db.pool())
        .await
        .unwrap();
    assert_eq!(rows, 2);
}
