//! Shared set-up of the router tests: an app on a fresh database (the backend
//! `SORI_TEST_DB` names), requests with or without a bearer token, users,
//! ready media and posts, and problem-response assertions.
//!
//! Each test binary uses only part of it.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sori_api::{app, AppState};
use sori_pipeline::db::testing::{fresh_db, TestDb};
use tower::ServiceExt;

/// The router on its own fresh database.
pub struct Api {
    pub app: Router,
    pub t: TestDb,
}

/// A response, its body parsed as JSON (`Null` when empty or not JSON).
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub json: Value,
    /// Seconds of `Retry-After`, when the answer has one (429s).
    pub retry_after: Option<u64>,
}

/// A signed-up user and their bearer token.
pub struct User {
    pub id: String,
    pub handle: String,
    pub token: String,
}

impl Api {
    pub async fn new() -> Self {
        Self::with(|state| state).await
    }

    /// An app whose state is adjusted first (e.g. given a store and queue).
    pub async fn with(configure: impl FnOnce(AppState) -> AppState) -> Self {
        let t = fresh_db().await;
        let app = app(configure(AppState::new(t.db.clone())));
        Self { app, t }
    }

    /// Sends `body` as JSON (no body when `Null`), with the token when given.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> Reply {
        match body {
            Value::Null => self.call_raw(method, path, token, None, Vec::new()).await,
            body => {
                let bytes = body.to_string().into_bytes();
                self.call_raw(method, path, token, Some("application/json"), bytes)
                    .await
            }
        }
    }

    /// Sends `body` as it is, with `content_type` when given (none and no
    /// body when `None` and empty).
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(content_type) = content_type {
            req = req.header(header::CONTENT_TYPE, content_type);
        }
        let req = req.body(Body::from(body)).unwrap();
        let response = self.app.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().parse().unwrap());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            content_type,
            json,
            retry_after,
        }
    }

    pub async fn get(&self, path: &str, who: &User) -> Reply {
        self.call(Method::GET, path, Some(&who.token), Value::Null)
            .await
    }

    /// Signs up `handle` (also its display name).
    pub async fn user(&self, handle: &str) -> User {
        let body = json!({"handle": handle, "password": "correct horse", "display_name": handle});
        let r = self.call(Method::POST, "/v1/auth/signup", None, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        User {
            id: r.json["user_id"].as_str().unwrap().to_owned(),
            handle: handle.to_owned(),
            token: r.json["token"].as_str().unwrap().to_owned(),
        }
    }

    /// A media row of `owner` in `state`, as the pipeline would leave it
    /// (duration 1234 ms and three bars).
    pub async fn media(&self, owner: &User, state: &str) -> String {
        let media = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO media (id, owner_id, state, content_type, size_bytes, original_key, \
             duration_ms, bars, created_at, updated_at) \
             VALUES ($1, $2, $3, 'audio/mp4', 1000, $4, 1234, '[1,2,3]', 0, 0)",
        )
        .bind(&media)
        .bind(&owner.id)
        .bind(state)
        .bind(format!("uploads/{media}"))
        .execute(self.t.db.pool())
        .await
        .unwrap();
        media
    }

    /// A post of `author` with `caption` on media the pipeline has finished.
    pub async fn post_with(&self, author: &User, caption: &str) -> String {
        let media = self.media(author, "ready").await;
        let body = json!({"media_id": media, "caption": caption});
        let r = self
            .call(Method::POST, "/v1/posts", Some(&author.token), body)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        r.json["id"].as_str().unwrap().to_owned()
    }

    /// A post of `author` on media the pipeline has finished.
    pub async fn ready_post(&self, author: &User) -> String {
        self.post_with(author, "hello").await
    }

    /// The ids of a list route's first page, in order.
    pub async fn ids(&self, path: &str, who: &User) -> Vec<String> {
        let r = self.get(path, who).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.json);
        r.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect()
    }

    pub async fn feed_ids(&self, who: &User) -> Vec<String> {
        self.ids("/v1/feed", who).await
    }
}

/// Asserts a problem response of `status` whose `type` ends in `kind`.
pub fn assert_problem(r: &Reply, status: StatusCode, kind: &str) {
    assert_eq!(r.status, status, "{}", r.json);
    assert_eq!(r.content_type, "application/problem+json");
    assert_eq!(
        r.json["type"].as_str().unwrap(),
        format!("https://sori.dev/problems/{kind}")
    );
}

/// Social-graph helpers: short forms of the social routes, admins, and many
/// users at once.
impl Api {
    /// `PUT path` with `who`'s token and no body.
    pub async fn put(&self, path: &str, who: &User) -> Reply {
        self.call(Method::PUT, path, Some(&who.token), Value::Null)
            .await
    }

    /// `DELETE path` with `who`'s token.
    pub async fn delete(&self, path: &str, who: &User) -> Reply {
        self.call(Method::DELETE, path, Some(&who.token), Value::Null)
            .await
    }

    /// `POST path` with `who`'s token and a JSON body.
    pub async fn post(&self, path: &str, who: &User, body: Value) -> Reply {
        self.call(Method::POST, path, Some(&who.token), body).await
    }

    /// Gives `who` the admin role, as `sori admin grant` does.
    pub async fn make_admin(&self, who: &User) {
        let done = sori_api::social::set_admin(&self.t.db, &who.handle, true).await;
        assert!(done.unwrap(), "no user {}", who.handle);
    }

    /// `n` users `{prefix}{i}` with tokens, written directly (no password
    /// hashing), for tests that need many of them.
    pub async fn many_users(&self, prefix: &str, n: usize) -> Vec<User> {
        self.users_with_hash(prefix, n, "x").await
    }

    /// As [`Api::many_users`], with one precomputed `password_hash` for all
    /// of them (from `sori_api::auth::hash_password`), so they can log in.
    pub async fn users_with_hash(&self, prefix: &str, n: usize, password_hash: &str) -> Vec<User> {
        let mut users = Vec::with_capacity(n);
        for i in 0..n {
            let id = uuid::Uuid::now_v7().to_string();
            let handle = format!("{prefix}{i}");
            sqlx::query(
                "INSERT INTO users (id, handle, handle_lower, display_name, password_hash, \
                 created_at, handle_fold, name_fold) VALUES ($1, $2, $2, $2, $3, 0, $2, $2)",
            )
            .bind(&id)
            .bind(&handle)
            .bind(password_hash)
            .execute(self.t.db.pool())
            .await
            .unwrap();
            let issued = sori_api::auth::issue_token(&self.t.db, &id).await.unwrap();
            users.push(User {
                id,
                handle,
                token: issued.token,
            });
        }
        users
    }

    /// One post as `who` sees it (`GET /v1/posts/{id}`), asserting 200.
    pub async fn post_item(&self, post: &str, who: &User) -> Value {
        let r = self.get(&format!("/v1/posts/{post}"), who).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        r.json
    }
}
