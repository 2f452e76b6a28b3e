//! The one harness of the router tests: an app on a fresh database (the
//! backend `SORI_TEST_DB` names), requests with or without a bearer token,
//! their answers parsed ([`reply`]), the data tests start from
//! ([`fixtures`]), and the event socket read as a client ([`ws`]).
//!
//! Each test binary uses only part of it.
#![allow(dead_code)]

pub mod fixtures;
pub mod reply;
pub mod smtp;
pub mod ws;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, request, Method, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use sori_api::core::http::HttpConfig;
use sori_api::{app_with, AppState};
use sori_db::testing::{fresh_db, fresh_unmigrated_db, TestDb};
use sori_pipeline::queue::{EmbeddedQueue, JobQueue};
use sori_pipeline::store::{LocalStore, ObjectStore};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use tower::ServiceExt;

// Short paths for the tests; each test binary uses some of them.
#[allow(unused_imports)]
pub use fixtures::NewMedia;
#[allow(unused_imports)]
pub use reply::{assert_clip_urls, assert_problem, Fetched, Reply};

/// The router on its own fresh database, with a local store in a
/// temporary directory and the embedded queue (so answers carry signed
/// media URLs), unless built [`Api::without_media`] or [`Api::unmigrated`].
pub struct Api {
    pub app: Router,
    pub t: TestDb,
    pub blobs: tempfile::TempDir,
    /// The state the router was built from: its caches, event hubs and
    /// realtime parts, for tests that drive them directly.
    pub state: AppState,
}

/// The base of the URLs the test apps hand out.
pub const PUBLIC_URL: &str = "http://127.0.0.1:8080";

/// The secret the test store signs URLs with.
const SIGNING_KEY: [u8; 32] = [9; 32];

/// A signed-up user and their bearer token.
pub struct User {
    pub id: String,
    pub handle: String,
    pub token: String,
}

/// Building the app: with the media routes connected to the local store
/// (the default), without them, or on a database not yet migrated.
impl Api {
    pub async fn new() -> Self {
        Self::with(|state| state).await
    }

    /// An app whose state is adjusted first (e.g. given caches or limits).
    pub async fn with(configure: impl FnOnce(AppState) -> AppState) -> Self {
        Self::with_http(&HttpConfig::default(), configure).await
    }

    /// As [`Api::with`], with the cross-cutting HTTP layers configured too.
    pub async fn with_http(
        config: &HttpConfig,
        configure: impl FnOnce(AppState) -> AppState,
    ) -> Self {
        let t = fresh_db().await;
        let blobs = tempfile::tempdir().unwrap();
        let store = LocalStore::new(blobs.path(), &SIGNING_KEY, PUBLIC_URL).unwrap();
        let queue = EmbeddedQueue::new(t.db.clone(), "media", 5);
        let state = AppState::new(t.db.clone())
            .with_media(ObjectStore::Local(store), JobQueue::Embedded(queue));
        Self::assemble(t, blobs, configure(state), config)
    }

    /// The app with no object store or queue: the media routes say so.
    pub async fn without_media() -> Self {
        let t = fresh_db().await;
        let state = AppState::new(t.db.clone());
        Self::assemble(
            t,
            tempfile::tempdir().unwrap(),
            state,
            &HttpConfig::default(),
        )
    }

    /// The app on a database whose migrations have not run.
    pub async fn unmigrated() -> Self {
        let t = fresh_unmigrated_db().await;
        let state = AppState::new(t.db.clone());
        Self::assemble(
            t,
            tempfile::tempdir().unwrap(),
            state,
            &HttpConfig::default(),
        )
    }

    fn assemble(t: TestDb, blobs: tempfile::TempDir, state: AppState, config: &HttpConfig) -> Self {
        let app = app_with(state.clone(), config);
        Self {
            app,
            t,
            blobs,
            state,
        }
    }

    /// The store the app signs URLs for (the same directory and secret).
    pub fn store(&self) -> LocalStore {
        LocalStore::new(self.blobs.path(), &SIGNING_KEY, PUBLIC_URL).unwrap()
    }
}

/// `method path`, with `token` as bearer when given; add headers and a body.
pub fn request(method: Method, path: &str, token: Option<&str>) -> request::Builder {
    let req = Request::builder().method(method).uri(path);
    match token {
        Some(token) => req.header(header::AUTHORIZATION, format!("Bearer {token}")),
        None => req,
    }
}

/// `req` with `headers` added.
fn with_headers(mut req: request::Builder, headers: &[(&str, &str)]) -> request::Builder {
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req
}

/// As [`request`], with `body` as JSON.
pub fn json_request(
    method: Method,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> Request<Body> {
    request(method, path, token)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// `req` as the server sees it arrive from `addr` (per-address limits).
pub fn from_address(mut req: Request<Body>, addr: &str) -> Request<Body> {
    let addr: SocketAddr = addr.parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    req
}

/// Sending requests through the router.
impl Api {
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
        let mut req = request(method, path, token);
        if let Some(content_type) = content_type {
            req = req.header(header::CONTENT_TYPE, content_type);
        }
        self.reply(req.body(Body::from(body)).unwrap()).await
    }

    /// Any request through the router; the answer as it came.
    pub async fn send(&self, req: Request<Body>) -> Fetched {
        Fetched::read(self.app.clone().oneshot(req).await.unwrap()).await
    }

    /// Any request through the router; the answer parsed.
    pub async fn reply(&self, req: Request<Body>) -> Reply {
        Reply::from(self.send(req).await)
    }

    pub async fn get(&self, path: &str, who: &User) -> Reply {
        self.call(Method::GET, path, Some(&who.token), Value::Null)
            .await
    }

    /// `GET path` with no token at all.
    pub async fn get_anonymous(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None, Value::Null).await
    }

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

    /// `PATCH path` with `who`'s token and a JSON body.
    pub async fn patch(&self, path: &str, who: &User, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(&who.token), body).await
    }

    /// `GET path` with `who`'s token and `headers`; the answer as it came.
    pub async fn get_raw(&self, path: &str, who: &User, headers: &[(&str, &str)]) -> Fetched {
        let req = with_headers(request(Method::GET, path, Some(&who.token)), headers);
        self.send(req.body(Body::empty()).unwrap()).await
    }

    /// `method path` with no token, only `headers`; the answer as it came.
    pub async fn plain(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Fetched {
        self.plain_with(method, path, headers, Vec::new()).await
    }

    /// As [`Api::plain`], with `body`.
    pub async fn plain_with(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Fetched {
        let req = with_headers(request(method, path, None), headers);
        self.send(req.body(Body::from(body)).unwrap()).await
    }

    /// `method` of an absolute URL the app handed out, exactly as a player
    /// sends it: no token, only `headers`.
    pub async fn fetch(&self, method: Method, url: &str, headers: &[(&str, &str)]) -> Fetched {
        self.fetch_with(method, url, headers, Vec::new()).await
    }

    /// As [`Api::fetch`], with `body` (an upload to a signed URL).
    pub async fn fetch_with(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Fetched {
        let path = url
            .strip_prefix(PUBLIC_URL)
            .unwrap_or_else(|| panic!("{url} is not under {PUBLIC_URL}"));
        self.plain_with(method, path, headers, body).await
    }
}

/// Reading lists, the document and the metrics.
impl Api {
    /// One sample of the process's metrics (as `/metrics` renders them), by
    /// its full name with labels, e.g. `sori_push_dead_total`.
    pub fn metric(&self, series: &str) -> f64 {
        let body = self.state.metrics.render();
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{series} ")))
            .unwrap_or_else(|| panic!("no {series} in {body}"))
            .parse()
            .unwrap_or_else(|e| panic!("{series}: {e}"))
    }

    /// Waits up to 10 s for the sample `series` to read a value `ok` accepts.
    pub async fn metric_until(&self, series: &str, ok: impl Fn(f64) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !ok(self.metric(series)) {
            assert!(
                std::time::Instant::now() < deadline,
                "{series} stays at {}",
                self.metric(series)
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The ids of a list route's first page, in order.
    pub async fn ids(&self, path: &str, who: &User) -> Vec<String> {
        self.get(path, who).await.ids()
    }

    pub async fn feed_ids(&self, who: &User) -> Vec<String> {
        self.ids("/v1/feed", who).await
    }

    /// Every item of a list, page by page of `limit` following
    /// `next_cursor`; asserts each page is a 200 of at most `limit` items.
    pub async fn all_pages(&self, path: &str, who: &User, limit: usize) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let first = format!("{path}{sep}limit={limit}");
        let mut url = first.clone();
        let mut items = Vec::new();
        for _ in 0..100 {
            let page = self.get(&url, who).await;
            let batch = page.items();
            assert!(batch.len() <= limit, "{url}: {} items", batch.len());
            items.extend(batch.iter().cloned());
            match page.json["next_cursor"].as_str() {
                Some(cursor) => url = format!("{first}&cursor={cursor}"),
                None => return items,
            }
        }
        panic!("{path}: pagination did not end");
    }

    /// `GET /openapi.json` (no token), asserting 200.
    pub async fn openapi(&self) -> Value {
        let r = self.get_anonymous("/openapi.json").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        r.json
    }
}

/// The `(method, path)` operations of an OpenAPI document.
pub fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let methods = ["get", "put", "post", "delete", "patch", "head", "options"];
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            methods
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(move |m| ((*m).to_owned(), path.clone()))
        })
        .collect()
}
