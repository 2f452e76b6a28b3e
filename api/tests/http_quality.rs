//! Router tests of the cross-cutting HTTP layers (`sori_api::core::http`): CORS
//! by configured origin, gzip of large JSON lists only, ETags with `304`,
//! `Cache-Control` on authenticated answers, and the request body limit
//! (which the blob upload route is exempt from), on the backend `SORI_TEST_DB` names.

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sori_api::core::http::HttpConfig;
use sori_api::{app, app_with, AppState};
use sori_pipeline::db::testing::{fresh_db, TestDb};
use sori_pipeline::queue::{EmbeddedQueue, JobQueue};
use sori_pipeline::store::{LocalStore, ObjectStore};
use std::time::Duration;
use tower::ServiceExt;

const PUBLIC_URL: &str = "http://sori.test";
const ALLOWED: &str = "https://app.sori.example";

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

async fn send(app: &Router, req: Request<Body>) -> Reply {
    let response = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes().to_vec(),
    }
}

/// Signs up `handle` and returns (user id, token).
async fn signup(app: &Router, handle: &str) -> (String, String) {
    let req = Request::post("/v1/auth/signup")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"handle": handle, "password": "correct horse", "display_name": handle})
                .to_string(),
        ))
        .unwrap();
    let r = send(app, req).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let v = r.json();
    (
        v["user_id"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
    )
}

fn get(path: &str, token: &str) -> axum::http::request::Builder {
    Request::get(path).header(header::AUTHORIZATION, format!("Bearer {token}"))
}

fn preflight(origin: &str) -> Request<Body> {
    Request::builder()
        .method(Method::OPTIONS)
        .uri("/v1/me")
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "PATCH")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization, content-type, idempotency-key",
        )
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn cors_preflight_is_allowed_only_for_configured_origins() {
    let t = fresh_db().await;
    let config =
        HttpConfig::with_cors_origins(&format!("{ALLOWED}, http://localhost:3000")).unwrap();
    let api = app_with(AppState::new(t.db.clone()), &config);

    let ok = send(&api, preflight(ALLOWED)).await;
    assert!(ok.status.is_success(), "{}", ok.status);
    assert_eq!(
        ok.header(header::ACCESS_CONTROL_ALLOW_ORIGIN),
        Some(ALLOWED)
    );
    let methods = ok.header(header::ACCESS_CONTROL_ALLOW_METHODS).unwrap();
    assert!(methods.contains("PATCH"), "{methods}");
    let headers = ok
        .header(header::ACCESS_CONTROL_ALLOW_HEADERS)
        .unwrap()
        .to_ascii_lowercase();
    for h in ["authorization", "content-type", "idempotency-key"] {
        assert!(headers.contains(h), "{headers}");
    }

    let refused = send(&api, preflight("https://evil.example")).await;
    assert!(refused
        .headers
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .is_none());

    // An actual cross-origin call names the origin and exposes the headers clients read.
    let req = Request::get("/healthz")
        .header(header::ORIGIN, ALLOWED)
        .body(Body::empty())
        .unwrap();
    let r = send(&api, req).await;
    assert_eq!(r.header(header::ACCESS_CONTROL_ALLOW_ORIGIN), Some(ALLOWED));
    let exposed = r
        .header(header::ACCESS_CONTROL_EXPOSE_HEADERS)
        .unwrap()
        .to_ascii_lowercase();
    for h in ["etag", "location", "retry-after", "x-request-id"] {
        assert!(exposed.contains(h), "{exposed}");
    }

    // The default: same origin only.
    let same_origin = app(AppState::new(t.db.clone()));
    let r = send(&same_origin, preflight(ALLOWED)).await;
    assert!(r.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    let any = app_with(
        AppState::new(t.db.clone()),
        &HttpConfig::with_cors_origins("*").unwrap(),
    );
    let r = send(&any, preflight("https://anyone.example")).await;
    assert_eq!(r.header(header::ACCESS_CONTROL_ALLOW_ORIGIN), Some("*"));
}

/// `n` posts by `author` with ready media, inserted as the pipeline and the posts route leave them.
async fn ready_posts(t: &TestDb, author: &str, n: usize) {
    let bars: Vec<u8> = (0..100).map(|i| (i % 32) as u8).collect();
    let bars = serde_json::to_string(&bars).unwrap();
    for i in 0..n {
        let media = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO media (id, owner_id, state, content_type, size_bytes, original_key, \
             duration_ms, bars, created_at, updated_at) \
             VALUES ($1, $2, 'ready', 'audio/mp4', 1000, $3, 4321, $4, $5, $5)",
        )
        .bind(&media)
        .bind(author)
        .bind(format!("originals/{media}"))
        .bind(&bars)
        .bind(i as i64)
        .execute(t.db.pool())
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO posts (id, author_id, media_id, caption, tags, created_at) \
             VALUES ($1, $2, $3, $4, '[\"rain\"]', $5)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(author)
        .bind(&media)
        .bind(format!("the sound of rain, take {i} #rain"))
        .bind(i as i64)
        .execute(t.db.pool())
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn large_json_lists_are_gzipped_when_accepted() {
    let t = fresh_db().await;
    let api = app(AppState::new(t.db.clone()).with_public_url(PUBLIC_URL));
    let (id, token) = signup(&api, "gzipper").await;
    ready_posts(&t, &id, 30).await;
    let path = format!("/v1/users/{id}/posts?limit=30");

    let plain = send(&api, get(&path, &token).body(Body::empty()).unwrap()).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert!(plain.headers.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(plain.json()["items"].as_array().unwrap().len(), 30);

    let req = get(&path, &token)
        .header(header::ACCEPT_ENCODING, "gzip")
        .body(Body::empty())
        .unwrap();
    let gz = send(&api, req).await;
    assert_eq!(gz.status, StatusCode::OK);
    assert_eq!(gz.header(header::CONTENT_ENCODING), Some("gzip"));
    assert!(gz.header(header::VARY).unwrap().contains("accept-encoding"));
    assert_eq!(&gz.body[..2], &[0x1f, 0x8b], "not a gzip stream");
    assert!(
        gz.body.len() * 3 < plain.body.len(),
        "{} compressed vs {} plain",
        gz.body.len(),
        plain.body.len()
    );
    // Both encodings carry the same (weak) tag.
    assert_eq!(gz.header(header::ETAG), plain.header(header::ETAG));

    // Small answers are not worth compressing.
    let req = Request::get("/healthz")
        .header(header::ACCEPT_ENCODING, "gzip")
        .body(Body::empty())
        .unwrap();
    let small = send(&api, req).await;
    assert!(small.headers.get(header::CONTENT_ENCODING).is_none());
}

#[tokio::test]
async fn etag_answers_304_until_the_resource_changes() {
    let t = fresh_db().await;
    let api = app(AppState::new(t.db.clone()));
    let (_, token) = signup(&api, "tagged").await;

    let first = send(&api, get("/v1/me", &token).body(Body::empty()).unwrap()).await;
    assert_eq!(first.status, StatusCode::OK);
    let tag = first.header(header::ETAG).unwrap().to_owned();
    assert!(tag.starts_with("W/\""), "{tag}");
    assert_eq!(
        first.header(header::CACHE_CONTROL),
        Some("private, no-cache")
    );

    let req = get("/v1/me", &token)
        .header(header::IF_NONE_MATCH, &tag)
        .body(Body::empty())
        .unwrap();
    let again = send(&api, req).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    assert_eq!(again.header(header::ETAG), Some(tag.as_str()));
    assert_eq!(
        again.header(header::CACHE_CONTROL),
        Some("private, no-cache")
    );

    let req = Request::patch("/v1/me")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"display_name": "Renamed"}).to_string()))
        .unwrap();
    let patched = send(&api, req).await;
    assert_eq!(patched.status, StatusCode::OK);
    assert!(
        patched.headers.get(header::ETAG).is_none(),
        "only GETs are tagged"
    );

    let req = get("/v1/me", &token)
        .header(header::IF_NONE_MATCH, &tag)
        .body(Body::empty())
        .unwrap();
    let changed = send(&api, req).await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(changed.json()["display_name"], "Renamed");
    assert_ne!(changed.header(header::ETAG), Some(tag.as_str()));

    // Errors are not tagged; unauthenticated answers get no Cache-Control of ours.
    let missing = send(
        &api,
        get("/v1/users/nobody", &token).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.headers.get(header::ETAG).is_none());
    let health = send(&api, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert!(health.headers.get(header::ETAG).is_none(), "outside /v1");
    assert!(health.headers.get(header::CACHE_CONTROL).is_none());
}

#[tokio::test]
async fn json_bodies_are_limited_but_blob_uploads_are_not() {
    let t = fresh_db().await;
    let blobs = tempfile::tempdir().unwrap();
    let store = LocalStore::new(blobs.path(), &[7; 32], PUBLIC_URL).unwrap();
    let queue = JobQueue::Embedded(EmbeddedQueue::new(t.db.clone(), "media", 5));
    let api = app(AppState::new(t.db.clone()).with_media(ObjectStore::Local(store.clone()), queue));

    // Declared too large: refused before the body is read.
    let big = vec![b' '; 100 * 1024];
    let req = Request::post("/v1/auth/signup")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, big.len())
        .body(Body::from(big.clone()))
        .unwrap();
    let r = send(&api, req).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        r.header(header::CONTENT_TYPE),
        Some("application/problem+json")
    );

    // Also on routes that take no body at all.
    let req = Request::post("/v1/auth/logout")
        .header(header::AUTHORIZATION, "Bearer whatever")
        .header(header::CONTENT_LENGTH, big.len())
        .body(Body::from(big.clone()))
        .unwrap();
    assert_eq!(send(&api, req).await.status, StatusCode::PAYLOAD_TOO_LARGE);

    // Streamed without a length: cut at the limit, still a problem+json 413.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..100).map(|_| Ok(vec![b' '; 1024])).collect();
    let req = Request::post("/v1/auth/signup")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(futures_stream(chunks)))
        .unwrap();
    let r = send(&api, req).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        r.json()["type"],
        "https://sori.dev/problems/payload-too-large"
    );

    // A signed upload of the same size goes through.
    let signed = store
        .presign_put(
            "originals/big",
            "audio/mp4",
            big.len() as u64,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let req = Request::put(signed.url.strip_prefix(PUBLIC_URL).unwrap())
        .header(header::CONTENT_TYPE, "audio/mp4")
        .header(header::CONTENT_LENGTH, big.len())
        .body(Body::from(big.clone()))
        .unwrap();
    let r = send(&api, req).await;
    assert!(
        r.status.is_success(),
        "{} {:?}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    let meta = store.head("originals/big").await.unwrap().unwrap();
    assert_eq!(meta.size, big.len() as u64);

    // Audio is never compressed, even when asked.
    let file = blobs.path().join("upload.opus");
    std::fs::write(&file, &big).unwrap();
    let key = "media/m/v1/audio.opus";
    store.put_file(key, &file, "audio/ogg").await.unwrap();
    let signed = store
        .sign_get(key, None, sori_pipeline::clock::now_ms() + 60_000)
        .unwrap();
    let req = Request::get(signed.strip_prefix(PUBLIC_URL).unwrap())
        .header(header::ACCEPT_ENCODING, "gzip")
        .body(Body::empty())
        .unwrap();
    let r = send(&api, req).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r
        .header(header::CONTENT_TYPE)
        .unwrap()
        .starts_with("audio/ogg"));
    assert!(r.headers.get(header::CONTENT_ENCODING).is_none());
    // The file's own strong validator, not a hash of the body buffered by the JSON layer.
    let etag = r.header(header::ETAG).unwrap();
    assert!(etag.starts_with('"'), "{etag}");
    assert_eq!(r.body.len(), big.len());
}

fn futures_stream(
    chunks: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::iter(chunks)
}
