//! Router tests of notification settings and the grouped list, on the
//! backend `SORI_TEST_DB` names: the switches per kind (defaults, partial
//! changes, bad bodies), a kind kept out of the inbox leaving the list, the
//! unread count and the socket, and `?grouped=true` folding the likes of a
//! post and new followers into one item each.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use sori_api::model::rules::SETTING_KINDS;
use support::{assert_problem, Api, User};

/// Every kind, as the API must answer them.
const KINDS: [&str; 7] = SETTING_KINDS;

async fn put_settings(api: &Api, who: &User, body: Value) -> support::Reply {
    api.notification_settings(who, body).await
}

/// `(kind, inbox, push)` for every kind, as GET answers.
async fn switches(api: &Api, who: &User) -> Vec<(String, bool, bool)> {
    let r = api.get("/v1/me/notification-settings", who).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    KINDS
        .iter()
        .map(|k| {
            let s = &r.json[*k];
            let flag = |c: &str| {
                s[c].as_bool()
                    .unwrap_or_else(|| panic!("{k}.{c}: {}", r.json))
            };
            ((*k).to_owned(), flag("inbox"), flag("push"))
        })
        .collect()
}

fn all_on_but(off: &[(&str, bool, bool)]) -> Vec<(String, bool, bool)> {
    KINDS
        .iter()
        .map(|k| match off.iter().find(|(o, _, _)| o == k) {
            Some((_, inbox, push)) => ((*k).to_owned(), *inbox, *push),
            None => ((*k).to_owned(), true, true),
        })
        .collect()
}

#[tokio::test]
async fn every_kind_is_on_until_turned_off_and_a_change_keeps_the_rest() {
    let api = Api::new().await;
    let mina = api.user("mina").await;
    let joon = api.user("joon").await;
    assert_eq!(switches(&api, &mina).await, all_on_but(&[]));

    let r = put_settings(&api, &mina, json!({"like": {"push": false}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["like"], json!({"inbox": true, "push": false}));
    let r = put_settings(
        &api,
        &mina,
        json!({"like": {"inbox": false}, "media": {"push": false, "inbox": true}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let expected = all_on_but(&[("like", false, false), ("media", true, false)]);
    assert_eq!(switches(&api, &mina).await, expected);
    // An empty body changes nothing; another user's are their own.
    assert_eq!(
        put_settings(&api, &mina, json!({})).await.status,
        StatusCode::OK
    );
    assert_eq!(switches(&api, &mina).await, expected);
    assert_eq!(switches(&api, &joon).await, all_on_but(&[]));
    put_settings(&api, &mina, json!({"like": {"inbox": true, "push": true}})).await;
    assert_eq!(
        switches(&api, &mina).await,
        all_on_but(&[("media", true, false)])
    );
}

#[tokio::test]
async fn bad_settings_are_refused_naming_the_field() {
    let api = Api::new().await;
    let mina = api.user("mina").await;
    let cases = [
        (json!({"likes": {"push": false}}), "likes"),
        (json!({"like": {"sms": false}}), "like.sms"),
        (json!({"like": {"push": "no"}}), "like.push"),
        (json!({"message": {"inbox": false}}), "message.inbox"),
    ];
    for (body, field) in cases {
        let r = put_settings(&api, &mina, body.clone()).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
        let named = r.json["errors"][0]["field"].as_str().unwrap_or_default();
        assert!(
            named.ends_with(field) || named == field,
            "{body}: {}",
            r.json
        );
    }
    assert_eq!(switches(&api, &mina).await, all_on_but(&[]));
    let r = api
        .call(
            Method::GET,
            "/v1/me/notification-settings",
            None,
            Value::Null,
        )
        .await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
}

/// `(kind, count, actor handles)` of each item of a list answer.
fn items(list: &Value) -> Vec<(String, i64, Vec<String>)> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let actors = n["actors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["handle"].as_str().unwrap().to_owned())
                .collect();
            (
                n["kind"].as_str().unwrap().to_owned(),
                n["count"].as_i64().unwrap(),
                actors,
            )
        })
        .collect()
}

fn item(kind: &str, count: i64, actors: &[&str]) -> (String, i64, Vec<String>) {
    (
        kind.to_owned(),
        count,
        actors.iter().map(|a| (*a).to_owned()).collect(),
    )
}

#[tokio::test]
async fn a_kind_kept_out_of_the_inbox_leaves_the_list_and_the_unread_count() {
    let api = Api::new().await;
    let mina = api.user("mina").await;
    let joon = api.user("joon").await;
    let post = api.ready_post(&mina).await;
    api.follow(&joon, &mina).await;
    api.put(&format!("/v1/posts/{post}/like"), &joon).await;
    let r = api.get("/v1/notifications", &mina).await;
    assert_eq!(r.json["unread_count"], 2);

    put_settings(&api, &mina, json!({"like": {"inbox": false}})).await;
    let r = api.get("/v1/notifications", &mina).await;
    assert_eq!(items(&r.json), [item("follow", 1, &["joon"])]);
    assert_eq!(r.json["unread_count"], 1);

    // Turned on again, the like is back: it was kept, only hidden.
    put_settings(&api, &mina, json!({"like": {"inbox": true}})).await;
    let r = api.get("/v1/notifications", &mina).await;
    assert_eq!(
        items(&r.json),
        [item("like", 1, &["joon"]), item("follow", 1, &["joon"])]
    );
    assert_eq!(r.json["unread_count"], 2);
}

#[tokio::test]
async fn the_grouped_list_folds_a_posts_likes_and_new_followers() {
    let api = Api::new().await;
    let mina = api.user("mina").await;
    let first = api.ready_post(&mina).await;
    let second = api.ready_post(&mina).await;
    let fans = api.many_users("fan", 5).await;
    for fan in &fans {
        api.put(&format!("/v1/posts/{first}/like"), fan).await;
    }
    api.put(&format!("/v1/posts/{second}/like"), &fans[0]).await;
    api.follow(&fans[1], &mina).await;
    api.follow(&fans[2], &mina).await;
    let comment = json!({"text": "again"});
    for _ in 0..2 {
        api.post(
            &format!("/v1/posts/{first}/comments"),
            &fans[3],
            comment.clone(),
        )
        .await;
    }
    let h = |i: usize| fans[i].handle.as_str();

    let r = api.get("/v1/notifications?grouped=true", &mina).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let expected = [
        item("comment", 2, &[h(3)]),
        item("follow", 2, &[h(2), h(1)]),
        item("like", 1, &[h(0)]),
        item("like", 5, &[h(4), h(3), h(2)]),
    ];
    assert_eq!(items(&r.json), expected);
    assert_eq!(r.json["items"][3]["post_id"], first.as_str());
    // Two comments of one person: two notifications, one person.
    assert_eq!(r.json["items"][0]["actor_count"], 1);
    assert_eq!(r.json["items"][3]["actor_count"], 5);
    assert_eq!(r.json["items"][3]["actor"]["handle"], h(4));
    assert_eq!(r.json["items"][3]["read"], false);
    assert_eq!(
        r.json["unread_count"], 10,
        "the count stays per notification"
    );

    // Page by page, the same groups, each once.
    let pages = api
        .all_pages("/v1/notifications?grouped=true", &mina, 1)
        .await;
    let paged = items(&json!({ "items": pages }));
    assert_eq!(paged, expected);

    // Marking up to a group's latest marks the whole group read.
    let latest = r.json["items"][0]["id"].as_str().unwrap();
    api.post("/v1/notifications/read", &mina, json!({"up_to_id": latest}))
        .await;
    let r = api.get("/v1/notifications?grouped=true", &mina).await;
    assert!(r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["read"] == true));

    // Ungrouped, every notification is its own item with a count of one.
    let r = api.get("/v1/notifications?limit=100", &mina).await;
    let flat = items(&r.json);
    assert_eq!(flat.len(), 10);
    assert!(flat
        .iter()
        .all(|(_, count, actors)| *count == 1 && actors.len() == 1));
}
