//! Router tests of the `Idempotency-Key` header on the creating POSTs, on the
//! backend `SORI_TEST_DB` names: a resend gets the first answer and creates
//! nothing; another body with the same key is refused (422); concurrent
//! duplicates create once; refused requests are not remembered; keys are
//! per user and expire.

mod support;

use axum::http::{header, HeaderValue, Method, StatusCode};
use serde_json::{json, Value};
use support::{json_request, Api, Fetched, User};

/// `POST path` as `who` (anonymous when `None`) with `body` and, when
/// given, an `Idempotency-Key`.
async fn send(
    api: &Api,
    path: &str,
    who: Option<&User>,
    key: Option<&str>,
    body: &Value,
) -> Fetched {
    let token = who.map(|u| u.token.as_str());
    let mut req = json_request(Method::POST, path, token, body);
    if let Some(key) = key {
        let value = HeaderValue::from_str(key).unwrap();
        req.headers_mut().insert("idempotency-key", value);
    }
    api.send(req).await
}

/// `POST path` as `who` with `body` and, when given, an `Idempotency-Key`.
async fn post(api: &Api, path: &str, who: &User, key: Option<&str>, body: &Value) -> Fetched {
    send(api, path, Some(who), key, body).await
}

async fn count(api: &Api, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(api.t.db.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_resend_gets_the_first_answer_and_creates_nothing() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let media = api.media(&alice, "ready").await;
    let body = json!({"media_id": media, "caption": "once"});
    let key = Some("\"8e03978e-40d5-43e8-bc93-6894a57f9324\"");
    let first = post(&api, "/v1/posts", &alice, key, &body).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let again = post(&api, "/v1/posts", &alice, key, &body).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.header(header::CONTENT_TYPE), "application/json");
    assert_eq!(again.header("idempotent-replayed".parse().unwrap()), "true");
    assert_eq!(again.json(), first.json());
    assert_eq!(count(&api, "posts").await, 1);

    // The same key with another body: refused, naming the header.
    let other = json!({"media_id": media, "caption": "twice?"});
    let r = post(&api, "/v1/posts", &alice, key, &other).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["errors"][0]["field"], "Idempotency-Key");
    // Without a key, the API's own rule answers (the media is posted already).
    let r = post(&api, "/v1/posts", &alice, None, &body).await;
    assert_eq!(r.status, StatusCode::CONFLICT);

    // Keys are the caller's: bob's same key is his own.
    let bob = api.user("bob").await;
    let his = api.media(&bob, "ready").await;
    let r = post(&api, "/v1/posts", &bob, key, &json!({"media_id": his})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.headers.get("idempotent-replayed").is_none());
    assert_eq!(count(&api, "posts").await, 2);
}

#[tokio::test]
async fn uploads_comments_and_messages_are_created_once() {
    let api = Api::new().await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    let upload = json!({"content_type": "audio/mp4", "size_bytes": 1000});
    let a = post(&api, "/v1/media", &alice, Some("up-1"), &upload).await;
    let b = post(&api, "/v1/media", &alice, Some("up-1"), &upload).await;
    assert_eq!(
        (a.status, b.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_eq!(a.json()["id"], b.json()["id"]);
    assert_eq!(count(&api, "media").await, 1);

    let post_id = api.ready_post(&alice).await;
    let comments = format!("/v1/posts/{post_id}/comments");
    let text = json!({"text": "nice"});
    for _ in 0..3 {
        let r = post(&api, &comments, &bob, Some("c-1"), &text).await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    assert_eq!(count(&api, "comments").await, 1);

    let room = api.room(&alice, &bob).await;
    let messages = format!("/v1/chats/{room}/messages");
    let hello = json!({"kind": "text", "text": "hello"});
    let first = post(&api, &messages, &alice, Some("m-1"), &hello).await;
    let second = post(&api, &messages, &alice, Some("m-1"), &hello).await;
    assert_eq!(first.json()["id"], second.json()["id"]);
    // client_id keeps working on its own, with or without a key.
    let with_id = json!({"kind": "text", "text": "hi", "client_id": "phone-7"});
    let x = post(&api, &messages, &alice, None, &with_id).await;
    let y = post(&api, &messages, &alice, Some("m-2"), &with_id).await;
    assert_eq!((x.status, y.status), (StatusCode::CREATED, StatusCode::OK));
    assert_eq!(x.json()["id"], y.json()["id"]);
    let sent: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE kind = 'text'")
        .fetch_one(api.t.db.pool())
        .await
        .unwrap();
    assert_eq!(sent, 2);
}

#[tokio::test]
async fn concurrent_duplicates_create_once() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let media = api.media(&alice, "ready").await;
    let body = json!({"media_id": media, "caption": "racing"});
    let sends = (0..8).map(|_| post(&api, "/v1/posts", &alice, Some("race"), &body));
    let answers = futures_util::future::join_all(sends).await;
    let mut ids = Vec::new();
    for r in &answers {
        match r.status {
            StatusCode::CREATED => ids.push(r.json()["id"].clone()),
            StatusCode::CONFLICT => {
                let detail = r.json()["detail"].as_str().unwrap().to_owned();
                assert!(detail.contains("still being processed"), "{detail}");
            }
            other => panic!("unexpected {other}: {}", r.json()),
        }
    }
    assert!(!ids.is_empty());
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(count(&api, "posts").await, 1);
}

#[tokio::test]
async fn refused_requests_are_not_remembered_and_answers_expire() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let media = api.media(&alice, "ready").await;
    // Refused (a caption too long): nothing stored, so the key is free.
    let long = json!({"media_id": media, "caption": "x".repeat(501)});
    let r = post(&api, "/v1/posts", &alice, Some("k"), &long).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fixed = json!({"media_id": media, "caption": "short"});
    let r = post(&api, "/v1/posts", &alice, Some("k"), &fixed).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());

    // A day later the answer is gone: the key runs again (and the API's own
    // rule refuses a second post of the media).
    sqlx::query("UPDATE idempotency_keys SET created_at = created_at - 86400001")
        .execute(api.t.db.pool())
        .await
        .unwrap();
    let r = post(&api, "/v1/posts", &alice, Some("k"), &fixed).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.headers.get("idempotent-replayed").is_none());

    // Malformed keys are refused before anything runs.
    for bad in ["", "\"\"", "a b"] {
        let r = post(&api, "/v1/posts", &alice, Some(bad), &fixed).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}");
    }
    // Without a token: 401, as without the header.
    let r = send(&api, "/v1/posts", None, Some("k"), &fixed).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}
