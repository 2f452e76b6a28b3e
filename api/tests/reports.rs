//! Router tests of reports and moderation, on the backend `SORI_TEST_DB`
//! names: reporting (one open report per reporter and target), the admins'
//! queue, and resolving — a removal hides the target from every list.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use support::{assert_problem, Api, Reply, User};

async fn report(api: &Api, who: &User, kind: &str, id: &str) -> Reply {
    let body = json!({"target_kind": kind, "target_id": id, "reason": "spam", "details": "ads"});
    api.post("/v1/reports", who, body).await
}

async fn resolve(api: &Api, admin: &User, report: &Value, action: &str) -> Reply {
    let id = report["id"].as_str().unwrap();
    api.post(
        &format!("/v1/reports/{id}/resolve"),
        admin,
        json!({"action": action}),
    )
    .await
}

#[tokio::test]
async fn one_open_report_per_reporter_and_target() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let admin = api.user("admin").await;
    api.make_admin(&admin).await;
    let post = api.ready_post(&alice).await;

    let first = report(&api, &bob, "post", &post).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.json);
    assert_eq!(first.json["state"], "open");
    assert_eq!(first.json["reason"], "spam");
    let r = report(&api, &bob, "post", &post).await;
    assert_problem(&r, StatusCode::CONFLICT, "conflict");
    // Someone else may report it too; bob may report another target.
    assert_eq!(
        report(&api, &admin, "post", &post).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        report(&api, &bob, "user", &alice.id).await.status,
        StatusCode::CREATED
    );

    // Once dismissed, bob may report the post again.
    let r = resolve(&api, &admin, &first.json, "dismiss").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["state"], "dismissed");
    assert_eq!(r.json["resolved_by"], admin.id.as_str());
    let r = resolve(&api, &admin, &first.json, "dismiss").await;
    assert_problem(&r, StatusCode::CONFLICT, "conflict");
    assert_eq!(
        report(&api, &bob, "post", &post).await.status,
        StatusCode::CREATED
    );
    // The dismissal left the post alone.
    api.post_item(&post, &bob).await;
}

#[tokio::test]
async fn bad_reports_name_the_field() {
    let api = Api::new().await;
    let bob = api.user("bob").await;
    let cases = [
        (
            json!({"target_kind": "song", "target_id": bob.id, "reason": "spam"}),
            "target_kind",
        ),
        (
            json!({"target_kind": "user", "target_id": bob.id, "reason": "boring"}),
            "reason",
        ),
        (
            json!({"target_kind": "post", "target_id": uuid::Uuid::now_v7().to_string(), "reason": "spam"}),
            "target_id",
        ),
        (
            json!({"target_kind": "message", "target_id": "not-a-uuid", "reason": "spam"}),
            "target_id",
        ),
        (
            json!({"target_kind": "user", "target_id": bob.id, "reason": "spam", "details": "x".repeat(1001)}),
            "details",
        ),
    ];
    for (body, field) in cases {
        let r = api.post("/v1/reports", &bob, body).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
        assert_eq!(r.json["errors"][0]["field"], field);
    }
    // A message no one sent is no target either.
    let message = uuid::Uuid::now_v7().to_string();
    let r = report(&api, &bob, "message", &message).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
}

#[tokio::test]
async fn a_removed_message_leaves_the_history_and_the_room_list() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let admin = api.user("admin").await;
    api.make_admin(&admin).await;
    let room = api
        .post("/v1/chats", &bob, json!({"user_id": alice.id}))
        .await;
    let room = room.json["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/chats/{room}/messages");
    api.post(&path, &bob, json!({"kind": "text", "text": "hello"}))
        .await;
    let bad = api
        .post(&path, &bob, json!({"kind": "text", "text": "buy now"}))
        .await;
    let bad = bad.json["id"].as_str().unwrap().to_owned();

    // Only a member of the room can see, so report, the message.
    let r = report(&api, &carol, "message", &bad).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    let reported = report(&api, &alice, "message", &bad).await;
    assert_eq!(reported.status, StatusCode::CREATED, "{}", reported.json);
    let rooms = api.get("/v1/chats", &alice).await.json;
    assert_eq!(rooms["items"][0]["unread_count"], 2);

    let r = resolve(&api, &admin, &reported.json, "remove").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    for who in [&alice, &bob] {
        let texts: Vec<Value> = api.get(&path, who).await.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].clone())
            .collect();
        assert_eq!(texts, [json!("hello")]);
    }
    let rooms = api.get("/v1/chats", &alice).await.json;
    assert_eq!(rooms["items"][0]["unread_count"], 1);
    assert!(rooms["items"][0]["last_message"].is_null(), "{rooms}");
}

#[tokio::test]
async fn a_removed_voice_message_is_no_longer_playable_by_the_other_member() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let admin = api.user("admin").await;
    api.make_admin(&admin).await;
    let room = api.room(&bob, &alice).await;
    let clip = api.media(&bob, "ready").await;
    let sent = api
        .send_message(&bob, &room, json!({"kind": "voice", "media_id": clip}))
        .await;
    assert_eq!(sent.status, StatusCode::CREATED, "{}", sent.json);
    let waveform = format!("/v1/media/{clip}/waveform");
    // Past the access check (409: this fixture has no outputs).
    assert_ne!(
        api.get(&waveform, &alice).await.status,
        StatusCode::FORBIDDEN
    );

    let message = sent.json["id"].as_str().unwrap();
    let reported = report(&api, &alice, "message", message).await;
    let r = resolve(&api, &admin, &reported.json, "remove").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_problem(
        &api.get(&waveform, &alice).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
}

#[tokio::test]
async fn only_admins_see_and_resolve_the_queue_oldest_first() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let admin = api.user("admin").await;
    let mut reports = Vec::new();
    for _ in 0..3 {
        let post = api.ready_post(&alice).await;
        reports.push(report(&api, &bob, "post", &post).await.json);
    }
    let r = api.get("/v1/reports", &bob).await;
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = resolve(&api, &bob, &reports[0], "remove").await;
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");

    api.make_admin(&admin).await;
    let r = api.get("/v1/reports?limit=2", &admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let ids = |r: &Reply| -> Vec<Value> {
        r.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].clone())
            .collect()
    };
    assert_eq!(
        ids(&r),
        [reports[0]["id"].clone(), reports[1]["id"].clone()]
    );
    let cursor = r.json["next_cursor"].as_str().unwrap();
    let r2 = api
        .get(&format!("/v1/reports?limit=2&cursor={cursor}"), &admin)
        .await;
    assert_eq!(ids(&r2), [reports[2]["id"].clone()]);

    let r = resolve(&api, &admin, &reports[1], "ban").await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(
        resolve(&api, &admin, &reports[1], "remove").await.status,
        StatusCode::OK
    );
    let r = api.get("/v1/reports", &admin).await;
    assert_eq!(
        ids(&r),
        [reports[0]["id"].clone(), reports[2]["id"].clone()]
    );
    let nothing = json!({"id": uuid::Uuid::now_v7().to_string()});
    let r = resolve(&api, &admin, &nothing, "remove").await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
}

#[tokio::test]
async fn a_removed_post_disappears_everywhere() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let admin = api.user("admin").await;
    api.make_admin(&admin).await;
    api.follow(&bob, &alice).await;
    let post = api.post_with(&alice, "#news bad").await;
    let kept = api.post_with(&alice, "#news fine").await;
    let by_bob = report(&api, &bob, "post", &post).await.json;
    let by_carol = report(&api, &carol, "post", &post).await.json;

    let r = resolve(&api, &admin, &by_bob, "remove").await;
    assert_eq!(r.json["state"], "removed");
    // Every open report on the same target is resolved with it.
    let r = resolve(&api, &admin, &by_carol, "dismiss").await;
    assert_problem(&r, StatusCode::CONFLICT, "conflict");

    for who in [&alice, &bob] {
        assert_eq!(api.feed_ids(who).await, [kept.as_str()]);
        assert_eq!(api.ids("/v1/explore", who).await, [kept.as_str()]);
        assert_eq!(api.ids("/v1/explore?tag=news", who).await, [kept.as_str()]);
        assert_eq!(
            api.ids(&format!("/v1/users/{}/posts", alice.id), who).await,
            [kept.as_str()]
        );
        assert_eq!(
            api.ids("/v1/search?q=news&kind=posts", who).await,
            [kept.as_str()]
        );
        let r = api.get(&format!("/v1/posts/{post}"), who).await;
        assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
        let r = api.get(&format!("/v1/posts/{post}/comments"), who).await;
        assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    }
    let profile = api.get(&format!("/v1/users/{}", alice.id), &bob).await;
    assert_eq!(profile.json["post_count"], 1);
}

#[tokio::test]
async fn a_removed_comment_leaves_the_list_and_the_count() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let admin = api.user("admin").await;
    api.make_admin(&admin).await;
    let post = api.ready_post(&alice).await;
    let path = format!("/v1/posts/{post}/comments");
    let bad = api.post(&path, &bob, json!({"text": "bad"})).await.json;
    api.post(&path, &bob, json!({"text": "fine"})).await;
    let id = bad["id"].as_str().unwrap();
    let reported = report(&api, &alice, "comment", id).await.json;

    assert_eq!(
        resolve(&api, &admin, &reported, "remove").await.status,
        StatusCode::OK
    );
    let texts: Vec<Value> = api.get(&path, &bob).await.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].clone())
        .collect();
    assert_eq!(texts, [json!("fine")]);
    assert_eq!(api.post_item(&post, &alice).await["comment_count"], 1);
    // Gone for its author too: deleting it now finds nothing.
    let r = api.delete(&format!("/v1/comments/{id}"), &bob).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    assert_eq!(api.post_item(&post, &alice).await["comment_count"], 1);
}

#[tokio::test]
async fn a_removed_user_disappears_with_their_posts_and_comments() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let admin = api.user("admin").await;
    api.make_admin(&admin).await;
    api.follow(&bob, &alice).await;
    api.follow(&alice, &bob).await;
    let post = api.post_with(&alice, "#tag hi").await;
    let bobs = api.ready_post(&bob).await;
    api.post(
        &format!("/v1/posts/{bobs}/comments"),
        &alice,
        json!({"text": "from alice"}),
    )
    .await;

    let reported = report(&api, &bob, "user", &alice.id).await.json;
    assert_eq!(
        resolve(&api, &admin, &reported, "remove").await.status,
        StatusCode::OK
    );

    let r = api.get(&format!("/v1/users/{}", alice.id), &bob).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    assert_eq!(api.feed_ids(&bob).await, [bobs.as_str()]);
    assert_eq!(api.ids("/v1/explore", &bob).await, [bobs.as_str()]);
    assert!(api.ids("/v1/search?q=ali", &bob).await.is_empty());
    assert!(api
        .ids("/v1/search?q=tag&kind=posts", &bob)
        .await
        .is_empty());
    assert!(api
        .ids(&format!("/v1/users/{}/followers", bob.id), &bob)
        .await
        .is_empty());
    assert!(api
        .ids(&format!("/v1/posts/{bobs}/comments"), &bob)
        .await
        .is_empty());
    let r = api.get(&format!("/v1/posts/{post}"), &bob).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");

    // Signed out, and cannot sign in again; a wrong password learns nothing.
    let r = api.get("/v1/me", &alice).await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    let login = |password: &str| {
        api.call(
            Method::POST,
            "/v1/auth/login",
            None,
            json!({"handle": "alice", "password": password}),
        )
    };
    assert_problem(
        &login("correct horse").await,
        StatusCode::FORBIDDEN,
        "account-removed",
    );
    assert_problem(
        &login("wrong").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    // A login that read the account just before the removal mints its token
    // after the removal deleted the others: that token does not work either.
    let raced = sori_api::core::sessions::issue_token(&api.t.db, &alice.id, &Default::default())
        .await
        .unwrap();
    let raced = User {
        id: alice.id.clone(),
        handle: alice.handle.clone(),
        token: raced.token,
    };
    let r = api.get("/v1/me", &raced).await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    // Bob is not affected.
    assert_eq!(api.get("/v1/me", &bob).await.status, StatusCode::OK);
}
