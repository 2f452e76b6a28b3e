//! Router tests of following and unfollowing, on the backend `SORI_TEST_DB`
//! names: idempotence, the effect on the feed, unknown users and oneself.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sori_api::{app, AppState};
use sori_pipeline::db::testing::{fresh_db, TestDb};
use tower::ServiceExt;

struct Api {
    app: Router,
    t: TestDb,
}

struct Reply {
    status: StatusCode,
    content_type: String,
    json: Value,
}

struct User {
    id: String,
    token: String,
}

impl Api {
    async fn new() -> Self {
        let t = fresh_db().await;
        let app = app(AppState::new(t.db.clone()));
        Self { app, t }
    }

    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Value) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = match body {
            Value::Null => req.body(Body::empty()),
            body => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
        }
        .unwrap();
        let response = self.app.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            content_type,
            json,
        }
    }

    async fn user(&self, handle: &str) -> User {
        let body = json!({"handle": handle, "password": "correct horse", "display_name": handle});
        let r = self.call(Method::POST, "/v1/auth/signup", None, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        User {
            id: r.json["user_id"].as_str().unwrap().to_owned(),
            token: r.json["token"].as_str().unwrap().to_owned(),
        }
    }

    async fn follow(&self, method: Method, who: &User, target: &str) -> Reply {
        let path = format!("/v1/users/{target}/follow");
        self.call(method, &path, Some(&who.token), Value::Null)
            .await
    }

    /// A post of `author` on media the pipeline has finished.
    async fn ready_post(&self, author: &User) -> String {
        let media = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO media (id, owner_id, state, content_type, size_bytes, original_key, \
             duration_ms, bars, created_at, updated_at) \
             VALUES ($1, $2, 'ready', 'audio/mp4', 1000, $3, 1234, '[1,2,3]', 0, 0)",
        )
        .bind(&media)
        .bind(&author.id)
        .bind(format!("uploads/{media}"))
        .execute(self.t.db.pool())
        .await
        .unwrap();
        let body = json!({"media_id": media, "caption": "hello"});
        let r = self
            .call(Method::POST, "/v1/posts", Some(&author.token), body)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        r.json["id"].as_str().unwrap().to_owned()
    }

    async fn feed_ids(&self, who: &User) -> Vec<String> {
        let r = self
            .call(Method::GET, "/v1/feed", Some(&who.token), Value::Null)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        r.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn follow_rows(&self, follower: &User) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM follows WHERE follower_id = $1")
            .bind(&follower.id)
            .fetch_one(self.t.db.pool())
            .await
            .unwrap()
    }
}

fn assert_problem(r: &Reply, status: StatusCode, kind: &str) {
    assert_eq!(r.status, status, "{}", r.json);
    assert_eq!(r.content_type, "application/problem+json");
    assert_eq!(
        r.json["type"].as_str().unwrap(),
        format!("https://sori.dev/problems/{kind}")
    );
}

#[tokio::test]
async fn following_is_idempotent_and_decides_the_feed() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let post = api.ready_post(&alice).await;
    assert!(api.feed_ids(&bob).await.is_empty());

    for _ in 0..2 {
        let r = api.follow(Method::PUT, &bob, &alice.id).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.json);
    }
    assert_eq!(api.follow_rows(&bob).await, 1);
    assert_eq!(api.feed_ids(&bob).await, vec![post.clone()]);
    // Following is one way: alice's feed is only her own post.
    assert_eq!(api.follow_rows(&alice).await, 0);
    assert_eq!(api.feed_ids(&alice).await, vec![post]);

    for _ in 0..2 {
        let r = api.follow(Method::DELETE, &bob, &alice.id).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.json);
    }
    assert_eq!(api.follow_rows(&bob).await, 0);
    assert!(api.feed_ids(&bob).await.is_empty());
}

#[tokio::test]
async fn unknown_users_are_404_and_oneself_is_422() {
    let api = Api::new().await;
    let bob = api.user("bob").await;
    let nobody = uuid::Uuid::now_v7().to_string();
    for method in [Method::PUT, Method::DELETE] {
        let r = api.follow(method.clone(), &bob, &nobody).await;
        assert_problem(&r, StatusCode::NOT_FOUND, "not-found");

        let r = api.follow(method, &bob, &bob.id).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
        assert_eq!(r.json["errors"][0]["field"], "id");
    }
    assert_eq!(api.follow_rows(&bob).await, 0);
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
