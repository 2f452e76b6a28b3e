//! Sign-ups per client address and uploads per user are limited per hour,
//! chat messages per user per minute, and per user the other actions that
//! reach people or grow stored state (comments, reports, rooms, playlist
//! writes, devices, socket tickets) per hour: past the limit the API answers
//! 429 with `Retry-After`, and other addresses or users are unaffected. On
//! the backend `SORI_TEST_DB` names.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::json;
use sori_api::core::limits::{CreationLimits, RateLimiter, CREATION_WINDOW};
use support::{assert_problem, from_address, json_request, Api, Reply, User};

/// `POST /v1/auth/signup` as the server sees it from `from`: status and `Retry-After`.
async fn signup_from(api: &Api, handle: &str, from: &str) -> (StatusCode, Option<u64>) {
    let body = json!({"handle": handle, "password": "correct horse", "display_name": handle});
    let req = json_request(Method::POST, "/v1/auth/signup", None, &body);
    let r = api.reply(from_address(req, from)).await;
    if r.status == StatusCode::TOO_MANY_REQUESTS {
        assert!(r.json["type"]
            .as_str()
            .unwrap()
            .ends_with("too-many-requests"));
    }
    (r.status, r.retry_after)
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

/// Sends a text message to `room` as `who`; the reply and its `Retry-After`.
async fn send_text(api: &Api, room: &str, who: &User, text: &str) -> (Reply, Option<u64>) {
    let body = json!({"kind": "text", "text": text});
    let reply = api.send_message(who, room, body).await;
    let retry = reply.retry_after;
    (reply, retry)
}

#[tokio::test]
async fn messages_per_user_are_limited_per_minute() {
    let limits = CreationLimits::per_hour(20, 60).with_messages_per_minute(3);
    let api = Api::with(|s| s.with_creation_limits(limits)).await;
    let [ann, bea, cid]: [User; 3] = api.many_users("chat", 3).await.try_into().ok().unwrap();
    let ab = api.room(&ann, &bea).await;
    let ac = api.room(&ann, &cid).await;
    // The limit is per sender, across rooms.
    for (i, room) in [&ab, &ac, &ab].into_iter().enumerate() {
        let (r, _) = send_text(&api, room, &ann, &format!("m{i}")).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    }
    let (refused, retry) = send_text(&api, &ac, &ann, "one too many").await;
    assert_problem(&refused, StatusCode::TOO_MANY_REQUESTS, "too-many-requests");
    let retry = retry.expect("Retry-After");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // The refused message was not stored; the other member can still answer.
    let history = api.get(&format!("/v1/chats/{ac}/messages"), &cid).await;
    let texts: Vec<&str> = history.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["m1"]);
    let (r, _) = send_text(&api, &ac, &cid, "hi ann").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
}

#[tokio::test]
async fn invalid_messages_and_resends_do_not_count() {
    let limits = CreationLimits::per_hour(20, 60).with_messages_per_minute(2);
    let api = Api::with(|s| s.with_creation_limits(limits)).await;
    let [ann, bea]: [User; 2] = api.many_users("chat", 2).await.try_into().ok().unwrap();
    let ab = api.room(&ann, &bea).await;
    let path = format!("/v1/chats/{ab}/messages");
    for _ in 0..3 {
        let r = api
            .post(&path, &ann, json!({"kind": "text", "text": ""}))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.json);
        let body = json!({"kind": "text", "text": "once", "client_id": "c1"});
        let r = api.post(&path, &ann, body).await;
        assert!(r.status.is_success(), "{}", r.json);
    }
    let (r, _) = send_text(&api, &ab, &ann, "second").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let (r, _) = send_text(&api, &ab, &ann, "third").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.json);
}

#[tokio::test]
async fn zero_lifts_the_message_limit() {
    let limits = CreationLimits::per_hour(20, 60).with_messages_per_minute(0);
    let api = Api::with(|s| s.with_creation_limits(limits)).await;
    let [ann, bea]: [User; 2] = api.many_users("chat", 2).await.try_into().ok().unwrap();
    let ab = api.room(&ann, &bea).await;
    for i in 0..150 {
        let (r, _) = send_text(&api, &ab, &ann, &format!("m{i}")).await;
        assert_eq!(r.status, StatusCode::CREATED, "message {i}: {}", r.json);
    }
}

#[tokio::test]
async fn the_default_message_limit_is_120_a_minute() {
    let api = Api::new().await;
    let [ann, bea]: [User; 2] = api.many_users("chat", 2).await.try_into().ok().unwrap();
    let ab = api.room(&ann, &bea).await;
    for i in 0..120 {
        let (r, _) = send_text(&api, &ab, &ann, &format!("m{i}")).await;
        assert_eq!(r.status, StatusCode::CREATED, "message {i}: {}", r.json);
    }
    let (r, _) = send_text(&api, &ab, &ann, "121st").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.json);
}

async fn create_media(api: &Api, who: &User) -> Reply {
    let body = json!({"content_type": "audio/mp4", "size_bytes": 1000});
    api.post("/v1/media", who, body).await
}

#[tokio::test]
async fn uploads_per_user_are_limited_per_hour() {
    let api = Api::with(|s| s.with_creation_limits(CreationLimits::per_hour(20, 3))).await;
    let (dan, eve) = (api.user("dan").await, api.user("eve").await);
    for _ in 0..3 {
        let r = create_media(&api, &dan).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    }
    let refused = create_media(&api, &dan).await;
    assert_problem(&refused, StatusCode::TOO_MANY_REQUESTS, "too-many-requests");
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM media WHERE owner_id = $1")
        .bind(&dan.id)
        .fetch_one(api.t.db.pool())
        .await
        .unwrap();
    assert_eq!(count, 3, "the refused upload created a media row");
    let r = create_media(&api, &eve).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
}

/// The per-user actions with an hourly limit, each as one request by `who`
/// (the `n`th time) against what `other` owns.
#[derive(Debug, Clone, Copy)]
enum Action {
    Comment,
    Report,
    OpenRoom,
    PlaylistWrite,
    Device,
    SocketTicket,
}

impl Action {
    const ALL: [Action; 6] = [
        Self::Comment,
        Self::Report,
        Self::OpenRoom,
        Self::PlaylistWrite,
        Self::Device,
        Self::SocketTicket,
    ];

    /// Default limits, with this action's lowered to `limit` an hour.
    fn limited_to(self, limit: u32) -> CreationLimits {
        let low = RateLimiter::new(limit, CREATION_WINDOW);
        let mut limits = CreationLimits::default();
        match self {
            Self::Comment => limits.comments = low,
            Self::Report => limits.reports = low,
            Self::OpenRoom => limits.rooms = low,
            Self::PlaylistWrite => limits.playlist_writes = low,
            Self::Device => limits.devices = low,
            Self::SocketTicket => limits.socket_tickets = low,
        }
        limits
    }

    async fn perform(self, api: &Api, who: &User, other: &User, n: usize) -> Reply {
        match self {
            Self::Comment => {
                let post = api.ready_post(other).await;
                let path = format!("/v1/posts/{post}/comments");
                api.post(&path, who, json!({"text": "nice"})).await
            }
            Self::Report => {
                // One open report per target: a new post each time.
                let post = api.ready_post(other).await;
                let body = json!({"target_kind": "post", "target_id": post, "reason": "spam"});
                api.post("/v1/reports", who, body).await
            }
            Self::OpenRoom => {
                api.post("/v1/chats", who, json!({"user_id": other.id}))
                    .await
            }
            Self::PlaylistWrite => {
                api.post("/v1/playlists", who, json!({"title": format!("mix {n}")}))
                    .await
            }
            Self::Device => {
                let body = json!({"platform": "fcm", "push_token": format!("{}-{n}", who.handle)});
                let path = format!("/v1/me/devices/d{n}");
                api.call(Method::PUT, &path, Some(&who.token), body).await
            }
            Self::SocketTicket => api.post("/v1/ws/ticket", who, json!(null)).await,
        }
    }
}

#[tokio::test]
async fn each_per_user_action_is_limited_per_hour() {
    for action in Action::ALL {
        let api = Api::with(|s| s.with_creation_limits(action.limited_to(2))).await;
        let (ann, bea) = (api.user("ann").await, api.user("bea").await);
        for n in 0..2 {
            let r = action.perform(&api, &ann, &bea, n).await;
            assert!(
                r.status.is_success(),
                "{action:?} #{n}: {} {}",
                r.status,
                r.json
            );
        }
        let refused = action.perform(&api, &ann, &bea, 2).await;
        assert_problem(&refused, StatusCode::TOO_MANY_REQUESTS, "too-many-requests");
        let retry = refused.retry_after.expect("Retry-After");
        assert!(
            (3500..=3600).contains(&retry),
            "{action:?}: Retry-After {retry}"
        );
        // Bea's own count is untouched.
        let r = action.perform(&api, &bea, &ann, 0).await;
        assert!(
            r.status.is_success(),
            "{action:?} for another user: {}",
            r.json
        );
    }
}

#[tokio::test]
async fn openapi_documents_the_429s() {
    let api = Api::new().await;
    let doc = api.openapi().await;
    for (path, method) in [
        ("/v1/auth/signup", "post"),
        ("/v1/media", "post"),
        ("/v1/chats/{id}/messages", "post"),
        ("/v1/posts/{id}/comments", "post"),
        ("/v1/reports", "post"),
        ("/v1/chats", "post"),
        ("/v1/playlists", "post"),
        ("/v1/playlists/{id}/items", "post"),
        ("/v1/me/devices/{device_id}", "put"),
        ("/v1/ws/ticket", "post"),
        ("/v1/ws", "get"),
    ] {
        let r = &doc["paths"][path][method]["responses"]["429"];
        assert!(
            r["content"]["application/problem+json"].is_object(),
            "{path}: {r}"
        );
    }
}
