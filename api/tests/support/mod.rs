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
use sori_pipeline::queue::{EmbeddedQueue, JobQueue};
use sori_pipeline::store::{LocalStore, ObjectStore};
use tower::ServiceExt;

/// The router on its own fresh database, with a local store in a
/// temporary directory (so answers carry signed media URLs) unless the test
/// configures another.
pub struct Api {
    pub app: Router,
    pub t: TestDb,
    pub blobs: tempfile::TempDir,
}

/// The base of the URLs the test apps hand out.
pub const PUBLIC_URL: &str = "http://127.0.0.1:8080";

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

    /// An app whose state is adjusted first (e.g. given another store and queue).
    pub async fn with(configure: impl FnOnce(AppState) -> AppState) -> Self {
        let t = fresh_db().await;
        let blobs = tempfile::tempdir().unwrap();
        let store = LocalStore::new(blobs.path(), &[9; 32], PUBLIC_URL).unwrap();
        let queue = EmbeddedQueue::new(t.db.clone(), "media", 5);
        let state = AppState::new(t.db.clone())
            .with_media(ObjectStore::Local(store), JobQueue::Embedded(queue));
        let app = app(configure(state));
        Self { app, t, blobs }
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
    /// (duration 1234 ms, three bars, outputs under `media/{id}/v1/`; the
    /// files themselves are not written).
    pub async fn media(&self, owner: &User, state: &str) -> String {
        let media = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO media (id, owner_id, state, content_type, size_bytes, original_key, \
             duration_ms, bars, output_prefix, created_at, updated_at) \
             VALUES ($1, $2, $3, 'audio/mp4', 1000, $4, 1234, '[1,2,3]', $5, 0, 0)",
        )
        .bind(&media)
        .bind(&owner.id)
        .bind(state)
        .bind(format!("originals/{media}"))
        .bind(format!("media/{media}/v1/"))
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

/// A plain answer: status, headers and bytes.
pub struct Fetched {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Fetched {
    /// A header's value; fails when absent.
    pub fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", self.headers))
            .to_str()
            .unwrap()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Media files in the test app's local store.
impl Api {
    /// The store the app signs URLs for (the same directory and secret).
    pub fn store(&self) -> LocalStore {
        LocalStore::new(self.blobs.path(), &[9; 32], PUBLIC_URL).unwrap()
    }

    /// Writes a ready media's four outputs (as [`Api::media`] names them)
    /// with these bytes.
    pub async fn outputs(
        &self,
        media: &str,
        opus: &[u8],
        caf: &[u8],
        webm: &[u8],
        waveform: &[u8],
    ) {
        let prefix = format!("media/{media}/v1/");
        for (name, mut bytes) in [
            ("audio.opus", opus),
            ("audio.caf", caf),
            ("audio.webm", webm),
            ("waveform.json", waveform),
        ] {
            let len = bytes.len() as u64;
            self.store()
                .put_reader(&format!("{prefix}{name}"), &mut bytes, len)
                .await
                .unwrap();
        }
    }

    /// `method` of an absolute URL the app handed out, exactly as a player
    /// sends it: no token, only `headers`.
    pub async fn fetch(&self, method: Method, url: &str, headers: &[(&str, &str)]) -> Fetched {
        let path = url
            .strip_prefix(PUBLIC_URL)
            .unwrap_or_else(|| panic!("{url} is not under {PUBLIC_URL}"));
        let mut req = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    /// `GET path` with `who`'s token and `headers`; the answer as it came.
    pub async fn get_raw(&self, path: &str, who: &User, headers: &[(&str, &str)]) -> Fetched {
        let bearer = format!("Bearer {}", who.token);
        let mut req = Request::get(path).header(header::AUTHORIZATION, bearer);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    /// Any request through the router; the answer as it came.
    pub async fn send(&self, req: Request<Body>) -> Fetched {
        let response = self.app.clone().oneshot(req).await.unwrap();
        let (parts, body) = response.into_parts();
        Fetched {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes().to_vec(),
        }
    }
}

/// Asserts an item carries the signed URLs of `media`'s outputs, version 1
/// (as [`Api::media`] makes them): `audio_url` (the Ogg Opus one), every
/// variant in `audio_urls`, and `waveform_url`.
pub fn assert_clip_urls(item: &Value, media: &str) {
    let base = format!("{PUBLIC_URL}/v1/blobs/media/{media}/v1/");
    assert_eq!(item["audio_url"], item["audio_urls"]["opus"], "{item}");
    for (variant, file) in [
        ("opus", "audio.opus"),
        ("caf", "audio.caf"),
        ("webm", "audio.webm"),
    ] {
        let url = item["audio_urls"][variant].as_str().unwrap_or_default();
        assert!(
            url.starts_with(&format!("{base}{file}?expires=")),
            "{variant}: {item}"
        );
        assert!(url.contains("&sig="), "{url}");
    }
    let waveform = item["waveform_url"].as_str().unwrap_or_default();
    assert!(
        waveform.starts_with(&format!("{base}waveform.json?expires=")),
        "{item}"
    );
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
    /// of them (from `sori_api::core::passwords::hash_password`), so they can log in.
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
            let issued = sori_api::core::sessions::issue_token(&self.t.db, &id)
                .await
                .unwrap();
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
