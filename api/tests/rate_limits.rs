//! Sign-ups per client address and uploads per user are limited per hour:
//! past the limit the API answers 429 with `Retry-After`, and other
//! addresses or users are unaffected. On the backend `SORI_TEST_DB` names.

mod support;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sori_api::auth::CreationLimits;
use sori_pipeline::queue::{EmbeddedQueue, JobQueue};
use sori_pipeline::store::{LocalStore, ObjectStore};
use std::net::SocketAddr;
use support::{assert_problem, Api, Reply};
use tower::ServiceExt;

/// `POST /v1/auth/signup` as the server sees it from `from`: status and `Retry-After`.
async fn signup_from(api: &Api, handle: &str, from: &str) -> (StatusCode, Option<u64>) {
    let addr: SocketAddr = from.parse().unwrap();
    let body = json!({"handle": handle, "password": "correct horse", "display_name": handle});
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/v1/auth/signup")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    let response = api.app.clone().oneshot(req).await.unwrap();
    let retry = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status == StatusCode::TOO_MANY_REQUESTS {
        assert!(json["type"]
            .as_str()
            .unwrap()
            .ends_with("too-many-requests"));
    }
    (status, retry)
}

#[tokio::test]
async fn sign_ups_from_one_address_are_limited_per_hour() {
    let api = Api::with(|s| s.with_creation_limits(CreationLimits::per_hour(2, 60))).await;
    let crowd = "192.0.2.7:5000";
    assert_eq!(signup_from(&api, "ann", crowd).await.0, StatusCode::CREATED);
    assert_eq!(signup_from(&api, "bea", crowd).await.0, StatusCode::CREATED);
    let (status, retry) = signup_from(&api, "cid", "192.0.2.7:5001").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let retry = retry.expect("Retry-After");
    assert!((3500..=3600).contains(&retry), "Retry-After {retry}");
    // The refused sign-up created nothing; another address can still sign up.
    let (status, _) = signup_from(&api, "cid", "198.51.100.1:6000").await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn zero_lifts_the_sign_up_limit() {
    let api = Api::with(|s| s.with_creation_limits(CreationLimits::per_hour(0, 60))).await;
    for i in 0..5 {
        let (status, _) = signup_from(&api, &format!("user{i}"), "192.0.2.7:5000").await;
        assert_eq!(status, StatusCode::CREATED);
    }
}

async fn create_media(api: &Api, token: &str) -> Reply {
    let body = json!({"content_type": "audio/mp4", "size_bytes": 1000});
    api.call(Method::POST, "/v1/media", Some(token), body).await
}

#[tokio::test]
async fn uploads_per_user_are_limited_per_hour() {
    let blobs = tempfile::tempdir().unwrap();
    let root = blobs.path().to_owned();
    let api = Api::with(move |s| {
        let store = LocalStore::new(&root, &[7; 32], "https://sori.example").unwrap();
        let queue = EmbeddedQueue::new(s.db.clone(), "media", 5);
        s.with_media(ObjectStore::Local(store), JobQueue::Embedded(queue))
            .with_creation_limits(CreationLimits::per_hour(20, 3))
    })
    .await;
    let (dan, eve) = (api.user("dan").await, api.user("eve").await);
    for _ in 0..3 {
        let r = create_media(&api, &dan.token).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    }
    let refused = create_media(&api, &dan.token).await;
    assert_problem(&refused, StatusCode::TOO_MANY_REQUESTS, "too-many-requests");
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM media WHERE owner_id = $1")
        .bind(&dan.id)
        .fetch_one(api.t.db.pool())
        .await
        .unwrap();
    assert_eq!(count, 3, "the refused upload created a media row");
    let r = create_media(&api, &eve.token).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
}

#[tokio::test]
async fn openapi_documents_the_429s() {
    let api = Api::new().await;
    let doc = api
        .call(Method::GET, "/openapi.json", None, Value::Null)
        .await
        .json;
    for (path, method) in [("/v1/auth/signup", "post"), ("/v1/media", "post")] {
        let r = &doc["paths"][path][method]["responses"]["429"];
        assert!(
            r["content"]["application/problem+json"].is_object(),
            "{path}: {r}"
        );
    }
}
