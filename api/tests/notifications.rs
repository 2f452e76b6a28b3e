//! Router tests of notifications, on the backend `SORI_TEST_DB` names: what
//! writes them (follow, like — once —, comment, mention), the list with its
//! unread count, and marking read.

mod support;

use axum::http::StatusCode;
use serde_json::{json, Value};
use support::{assert_problem, Api, User};

async fn list(api: &Api, who: &User) -> Value {
    let r = api.get("/v1/notifications", who).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    r.json
}

/// `(kind, actor handle)` of each item, newest first.
async fn kinds(api: &Api, who: &User) -> Vec<(String, String)> {
    list(api, who).await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let actor = n["actor"]["handle"].as_str().unwrap_or("-");
            (n["kind"].as_str().unwrap().to_owned(), actor.to_owned())
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, a)| ((*k).to_owned(), (*a).to_owned()))
        .collect()
}

#[tokio::test]
async fn follows_likes_and_comments_notify_the_author_once() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let post = api.ready_post(&alice).await;
    let like = format!("/v1/posts/{post}/like");
    let follow = format!("/v1/users/{}/follow", alice.id);

    api.put(&follow, &bob).await;
    api.delete(&follow, &bob).await;
    api.put(&follow, &bob).await;
    api.put(&like, &bob).await;
    api.delete(&like, &bob).await;
    api.put(&like, &bob).await;
    let c = api
        .post(
            &format!("/v1/posts/{post}/comments"),
            &bob,
            json!({"text": "nice"}),
        )
        .await;
    // Her own like and comment tell her nothing.
    api.put(&like, &alice).await;
    api.post(
        &format!("/v1/posts/{post}/comments"),
        &alice,
        json!({"text": "thanks"}),
    )
    .await;

    assert_eq!(
        kinds(&api, &alice).await,
        pairs(&[("comment", "bob"), ("like", "bob"), ("follow", "bob")])
    );
    let page = list(&api, &alice).await;
    assert_eq!(page["unread_count"], 3);
    let comment = &page["items"][0];
    assert_eq!(comment["post_id"], post.as_str());
    assert_eq!(comment["comment_id"], c.json["id"]);
    assert_eq!(comment["actor"]["id"], bob.id.as_str());
    assert_eq!(comment["actor"]["display_name"], "bob");
    assert_eq!(comment["read"], false);
    assert!(comment["created_at"].is_i64());
    assert_eq!(page["items"][1]["post_id"], post.as_str());
    assert!(page["items"][2]["post_id"].is_null());
    assert!(kinds(&api, &bob).await.is_empty());
}

#[tokio::test]
async fn mentions_notify_existing_users_but_not_oneself() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let media = api.media(&alice, "ready").await;
    let body = json!({"media_id": media, "caption": "with @Bob and @nobody_here and @alice"});
    let post = api.post("/v1/posts", &alice, body).await.json["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(kinds(&api, &bob).await, pairs(&[("mention", "alice")]));
    assert_eq!(list(&api, &bob).await["items"][0]["post_id"], post.as_str());
    assert!(kinds(&api, &alice).await.is_empty());

    // A comment mentioning carol and the post's author: alice hears of the
    // comment once, carol of the mention.
    let path = format!("/v1/posts/{post}/comments");
    api.post(&path, &bob, json!({"text": "@carol listen, @alice"}))
        .await;
    assert_eq!(kinds(&api, &alice).await, pairs(&[("comment", "bob")]));
    assert_eq!(kinds(&api, &carol).await, pairs(&[("mention", "bob")]));
    assert!(list(&api, &carol).await["items"][0]["comment_id"].is_string());

    // A blocked user is not told.
    api.block(&carol, &bob).await;
    let other = api.post_with(&alice, "hi").await;
    api.post(
        &format!("/v1/posts/{other}/comments"),
        &bob,
        json!({"text": "@carol"}),
    )
    .await;
    assert!(kinds(&api, &carol).await.is_empty());
}

#[tokio::test]
async fn marking_read_up_to_an_id_or_all() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let fans = api.many_users("fan", 4).await;
    for fan in &fans {
        api.follow(fan, &alice).await;
    }
    // The pipeline's notification: no actor.
    let media = api.media(&alice, "ready").await;
    sqlx::query(
        "INSERT INTO notifications (id, user_id, kind, media_id, body, created_at) \
         VALUES ($1, $2, 'media.failed', $3, '{\"reason\":\"too long\"}', $4)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&alice.id)
    .bind(&media)
    .bind(i64::MAX / 2)
    .execute(api.t.db.pool())
    .await
    .unwrap();

    let page = list(&api, &alice).await;
    assert_eq!(page["unread_count"], 5);
    let items = page["items"].as_array().unwrap();
    assert_eq!(items[0]["kind"], "media.failed");
    assert!(items[0]["actor"].is_null());
    assert_eq!(items[0]["body"]["reason"], "too long");

    // Pages, newest first.
    let r = api.get("/v1/notifications?limit=3", &alice).await;
    let cursor = r.json["next_cursor"].as_str().unwrap();
    let r2 = api
        .get(
            &format!("/v1/notifications?limit=3&cursor={cursor}"),
            &alice,
        )
        .await;
    let ids: Vec<&Value> = r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(r2.json["items"].as_array().unwrap())
        .map(|n| &n["id"])
        .collect();
    let all: Vec<&Value> = items.iter().map(|n| &n["id"]).collect();
    assert_eq!(ids, all);

    // Up to the second-oldest follow: the two oldest are read.
    let up_to = items[3]["id"].clone();
    let r = api
        .post("/v1/notifications/read", &alice, json!({"up_to_id": up_to}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["unread_count"], 3);
    let read: Vec<bool> = list(&api, &alice).await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["read"].as_bool().unwrap())
        .collect();
    assert_eq!(read, [false, false, false, true, true]);

    let r = api
        .post(
            "/v1/notifications/read",
            &fans[0],
            json!({"up_to_id": up_to}),
        )
        .await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    let r = api.post("/v1/notifications/read", &alice, json!({})).await;
    assert_eq!(r.json["unread_count"], 0);
    assert_eq!(list(&api, &alice).await["unread_count"], 0);
}
