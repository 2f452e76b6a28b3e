//! Router tests of the cross-cutting HTTP layers (`sori_api::core::http`): CORS
//! by configured origin, gzip of large JSON lists only, ETags with `304`,
//! `Cache-Control` on authenticated answers, and the request body limit
//! (which the blob upload route is exempt from), on the backend `SORI_TEST_DB` names.

mod support;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::json;
use sori_api::core::http::HttpConfig;
use support::{Api, NewMedia, User};

const ALLOWED: &str = "https://app.sori.example";

/// An API that lets `origins` call it from other origins.
async fn cors_api(origins: &str) -> Api {
    let config = HttpConfig::with_cors_origins(origins).unwrap();
    Api::with_http(&config, |state| state).await
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
    let api = cors_api(&format!("{ALLOWED}, http://localhost:3000")).await;

    let ok = api.send(preflight(ALLOWED)).await;
    assert!(ok.status.is_success(), "{}", ok.status);
    assert_eq!(
        ok.header_if(header::ACCESS_CONTROL_ALLOW_ORIGIN),
        Some(ALLOWED)
    );
    let methods = ok.header(header::ACCESS_CONTROL_ALLOW_METHODS);
    assert!(methods.contains("PATCH"), "{methods}");
    let headers = ok
        .header(header::ACCESS_CONTROL_ALLOW_HEADERS)
        .to_ascii_lowercase();
    for h in ["authorization", "content-type", "idempotency-key"] {
        assert!(headers.contains(h), "{headers}");
    }

    let refused = api.send(preflight("https://evil.example")).await;
    assert!(refused
        .headers
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .is_none());

    // An actual cross-origin call names the origin and exposes the headers clients read.
    let r = api
        .plain(Method::GET, "/healthz", &[("origin", ALLOWED)])
        .await;
    assert_eq!(
        r.header_if(header::ACCESS_CONTROL_ALLOW_ORIGIN),
        Some(ALLOWED)
    );
    let exposed = r
        .header(header::ACCESS_CONTROL_EXPOSE_HEADERS)
        .to_ascii_lowercase();
    for h in ["etag", "location", "retry-after", "x-request-id"] {
        assert!(exposed.contains(h), "{exposed}");
    }

    // The default: same origin only.
    let same_origin = Api::new().await;
    let r = same_origin.send(preflight(ALLOWED)).await;
    assert!(r.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    let any = cors_api("*").await;
    let r = any.send(preflight("https://anyone.example")).await;
    assert_eq!(r.header_if(header::ACCESS_CONTROL_ALLOW_ORIGIN), Some("*"));
}

/// `n` posts by `author` with ready media (a hundred bars each, no
/// outputs), inserted as the pipeline and the posts route leave them.
async fn ready_posts(api: &Api, author: &User, n: usize) {
    let bars: Vec<u8> = (0..100).map(|i| (i % 32) as u8).collect();
    let bars = serde_json::to_string(&bars).unwrap();
    for i in 0..n as i64 {
        let row = NewMedia {
            duration_ms: Some(4321),
            bars: Some(&bars),
            created_at: i,
            ..NewMedia::bare("ready")
        };
        let media = api.media_with(&author.id, row).await;
        let caption = format!("the sound of rain, take {i} #rain");
        api.post_on(&author.id, &media, &caption, &["rain"], i)
            .await;
    }
}

#[tokio::test]
async fn large_json_lists_are_gzipped_when_accepted() {
    let api = Api::new().await;
    let gzipper = api.user("gzipper").await;
    ready_posts(&api, &gzipper, 30).await;
    let path = format!("/v1/users/{}/posts?limit=30", gzipper.id);

    let plain = api.get_raw(&path, &gzipper, &[]).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert!(plain.headers.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(plain.json()["items"].as_array().unwrap().len(), 30);

    let gz = api
        .get_raw(&path, &gzipper, &[("accept-encoding", "gzip")])
        .await;
    assert_eq!(gz.status, StatusCode::OK);
    assert_eq!(gz.header_if(header::CONTENT_ENCODING), Some("gzip"));
    assert!(gz.header(header::VARY).contains("accept-encoding"));
    assert_eq!(&gz.body[..2], &[0x1f, 0x8b], "not a gzip stream");
    assert!(
        gz.body.len() * 3 < plain.body.len(),
        "{} compressed vs {} plain",
        gz.body.len(),
        plain.body.len()
    );
    // Both encodings carry the same (weak) tag.
    assert_eq!(gz.header_if(header::ETAG), plain.header_if(header::ETAG));

    // Small answers are not worth compressing.
    let small = api
        .plain(Method::GET, "/healthz", &[("accept-encoding", "gzip")])
        .await;
    assert!(small.headers.get(header::CONTENT_ENCODING).is_none());
}

#[tokio::test]
async fn etag_answers_304_until_the_resource_changes() {
    let api = Api::new().await;
    let tagged = api.user("tagged").await;

    let first = api.get_raw("/v1/me", &tagged, &[]).await;
    assert_eq!(first.status, StatusCode::OK);
    let tag = first.header(header::ETAG).to_owned();
    assert!(tag.starts_with("W/\""), "{tag}");
    assert_eq!(
        first.header_if(header::CACHE_CONTROL),
        Some("private, no-cache")
    );

    let again = api
        .get_raw("/v1/me", &tagged, &[("if-none-match", tag.as_str())])
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    assert_eq!(again.header_if(header::ETAG), Some(tag.as_str()));
    assert_eq!(
        again.header_if(header::CACHE_CONTROL),
        Some("private, no-cache")
    );

    let patched = api
        .patch("/v1/me", &tagged, json!({"display_name": "Renamed"}))
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    assert!(
        patched.headers.get(header::ETAG).is_none(),
        "only GETs are tagged"
    );

    let changed = api
        .get_raw("/v1/me", &tagged, &[("if-none-match", tag.as_str())])
        .await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(changed.json()["display_name"], "Renamed");
    assert_ne!(changed.header_if(header::ETAG), Some(tag.as_str()));

    // Errors are not tagged; unauthenticated answers get no Cache-Control of ours.
    let missing = api.get_raw("/v1/users/nobody", &tagged, &[]).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.headers.get(header::ETAG).is_none());
    let health = api.plain(Method::GET, "/healthz", &[]).await;
    assert!(health.headers.get(header::ETAG).is_none(), "outside /v1");
    assert!(health.headers.get(header::CACHE_CONTROL).is_none());
}

#[tokio::test]
async fn json_bodies_are_limited_but_blob_uploads_are_not() {
    let api = Api::new().await;

    // Declared too large: refused before the body is read.
    let big = vec![b' '; 100 * 1024];
    let length = big.len().to_string();
    let json_of_length = [
        ("content-type", "application/json"),
        ("content-length", length.as_str()),
    ];
    let r = api
        .plain_with(
            Method::POST,
            "/v1/auth/signup",
            &json_of_length,
            big.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        r.header_if(header::CONTENT_TYPE),
        Some("application/problem+json")
    );

    // Also on routes that take no body at all.
    let headers = [
        ("authorization", "Bearer whatever"),
        ("content-length", length.as_str()),
    ];
    let r = api
        .plain_with(Method::POST, "/v1/auth/logout", &headers, big.clone())
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);

    // Streamed without a length: cut at the limit, still a problem+json 413.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..100).map(|_| Ok(vec![b' '; 1024])).collect();
    let req = Request::post("/v1/auth/signup")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap();
    let r = api.send(req).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        r.json()["type"],
        "https://sori.dev/problems/payload-too-large"
    );

    // A signed upload of the same size goes through.
    let who = api.user("uploader").await;
    let (media, done) = api.upload(&who, "audio/mp4", &big).await;
    assert!(done.status.is_success(), "{}", done.json);
    let store = api.store();
    let meta = store
        .head(&format!("originals/{media}"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(meta.size, big.len() as u64);

    // Audio is never compressed, even when asked.
    let key = "media/m/v1/audio.opus";
    api.put_object(key, &big).await;
    let signed = store
        .sign_get(key, None, sori_pipeline::clock::now_ms() + 60_000)
        .unwrap();
    let r = api
        .fetch(Method::GET, &signed, &[("accept-encoding", "gzip")])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header(header::CONTENT_TYPE).starts_with("audio/ogg"));
    assert!(r.headers.get(header::CONTENT_ENCODING).is_none());
    // The file's own strong validator, not a hash of the body buffered by the JSON layer.
    let etag = r.header(header::ETAG);
    assert!(etag.starts_with('"'), "{etag}");
    assert_eq!(r.body.len(), big.len());
}
