//! The playback routes in embedded mode, on the backend `SORI_TEST_DB` names:
//! `GET /v1/media/{id}/audio` answers the bytes (ranges, per-format types),
//! `GET /v1/media/{id}/waveform` the JSON; media that is not ready answers 409
//! with its state; only the owner, or anyone once posted, may play.

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sori_api::{app, AppState};
use sori_pipeline::db::testing::{fresh_db, TestDb};
use sori_pipeline::queue::{EmbeddedQueue, JobQueue};
use sori_pipeline::store::{LocalStore, ObjectStore};
use tower::ServiceExt;

const PUBLIC_URL: &str = "https://sori.example";
const OGG: &[u8] = b"OggS-pretend-opus-0123456789";
const CAF: &[u8] = b"caff-pretend";
const WEBM: &[u8] = b"webm-pretend-bytes";

struct Api {
    app: Router,
    t: TestDb,
    store: LocalStore,
    _blobs: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .unwrap_or_else(|| panic!("no {name}"))
            .to_str()
            .unwrap()
    }
}

impl Api {
    async fn new() -> Self {
        let t = fresh_db().await;
        let blobs = tempfile::tempdir().unwrap();
        let store = LocalStore::new(blobs.path(), &[7; 32], PUBLIC_URL).unwrap();
        let queue = EmbeddedQueue::new(t.db.clone(), "media", 5);
        let state = AppState::new(t.db.clone())
            .with_public_url(PUBLIC_URL)
            .with_media(ObjectStore::Local(store.clone()), JobQueue::Embedded(queue));
        Self {
            app: app(state),
            t,
            store,
            _blobs: blobs,
        }
    }

    async fn user(&self, handle: &str) -> (String, String) {
        let body = json!({"handle": handle, "password": "correct horse", "display_name": handle});
        let req = Request::post("/v1/auth/signup")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let r = self.send(req).await;
        assert_eq!(r.status, StatusCode::CREATED);
        let json = r.json();
        (
            json["user_id"].as_str().unwrap().to_owned(),
            json["token"].as_str().unwrap().to_owned(),
        )
    }

    /// A media of `owner` in `state`; when ready, its outputs are in the store.
    async fn media(&self, owner: &str, state: &str, waveform: &[u8]) -> String {
        let id = uuid::Uuid::now_v7().to_string();
        let prefix = format!("media/{id}/v1/");
        sqlx::query(
            "INSERT INTO media (id, owner_id, state, content_type, size_bytes, original_key, \
             output_prefix, created_at, updated_at) VALUES ($1, $2, $3, 'audio/mp4', 10, $4, $5, 0, 0)",
        )
        .bind(&id)
        .bind(owner)
        .bind(state)
        .bind(format!("originals/{id}"))
        .bind((state == "ready").then_some(prefix.as_str()))
        .execute(self.t.db.pool())
        .await
        .unwrap();
        for (name, bytes) in [
            ("audio.opus", OGG),
            ("audio.caf", CAF),
            ("audio.webm", WEBM),
            ("waveform.json", waveform),
        ] {
            let mut body = bytes;
            let key = format!("{prefix}{name}");
            self.store
                .put_reader(&key, &mut body, bytes.len() as u64)
                .await
                .unwrap();
        }
        id
    }

    async fn send(&self, req: Request<Body>) -> Reply {
        let response = self.app.clone().oneshot(req).await.unwrap();
        let (parts, body) = response.into_parts();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes().to_vec(),
        }
    }

    async fn get(&self, path: &str, token: &str, extra: &[(header::HeaderName, &str)]) -> Reply {
        let mut req = Request::get(path).header(header::AUTHORIZATION, format!("Bearer {token}"));
        for (name, value) in extra {
            req = req.header(name, *value);
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }
}

fn waveform_json() -> Vec<u8> {
    json!({"version": 2, "channels": 1, "sample_rate": 48000, "samples_per_pixel": 480,
           "bits": 8, "length": 2, "data": [-3, 5, -7, 9]})
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn embedded_audio_is_served_with_ranges_and_its_type() {
    let api = Api::new().await;
    let (alice, token) = api.user("alice").await;
    let id = api.media(&alice, "ready", &waveform_json()).await;
    let audio = format!("/v1/media/{id}/audio");

    let r = api.get(&audio, &token, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, OGG);
    assert_eq!(r.header(header::CONTENT_TYPE), "audio/ogg; codecs=opus");
    assert_eq!(r.header(header::ACCEPT_RANGES), "bytes");
    assert_eq!(r.header(header::CONTENT_LENGTH), OGG.len().to_string());
    assert_eq!(r.header(header::VARY), "accept");

    let r = api
        .get(&audio, &token, &[(header::RANGE, "bytes=4-7")])
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body, &OGG[4..=7]);
    let total = OGG.len();
    assert_eq!(
        r.header(header::CONTENT_RANGE),
        format!("bytes 4-7/{total}")
    );
    let r = api
        .get(&audio, &token, &[(header::RANGE, "bytes=-3")])
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body, &OGG[total - 3..]);
    let past = format!("bytes={total}-");
    let r = api.get(&audio, &token, &[(header::RANGE, &past)]).await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header(header::CONTENT_RANGE), format!("bytes */{total}"));
    assert_eq!(r.header(header::CONTENT_TYPE), "application/problem+json");
    assert_eq!(r.json()["status"], 416);

    // The variant: `?format=` first, then `Accept`, else Ogg.
    for (query, accept, body, content_type) in [
        ("?format=caf", Some("audio/webm"), CAF, "audio/x-caf"),
        ("?format=ogg", None, OGG, "audio/ogg; codecs=opus"),
        ("", Some("audio/webm, audio/ogg"), WEBM, "audio/webm"),
        ("", Some("audio/x-caf;q=1"), CAF, "audio/x-caf"),
        ("", Some("text/html"), OGG, "audio/ogg; codecs=opus"),
    ] {
        let extra: Vec<_> = accept.map(|a| (header::ACCEPT, a)).into_iter().collect();
        let r = api.get(&format!("{audio}{query}"), &token, &extra).await;
        assert_eq!(r.status, StatusCode::OK, "{query} {accept:?}");
        assert_eq!(
            (r.body.as_slice(), r.header(header::CONTENT_TYPE)),
            (body, content_type)
        );
    }
    let r = api
        .get(
            &format!("{audio}?format=webm"),
            &token,
            &[(header::RANGE, "bytes=0-3")],
        )
        .await;
    assert_eq!(
        (r.status, r.body.as_slice()),
        (StatusCode::PARTIAL_CONTENT, &WEBM[..4])
    );
    let r = api.get(&format!("{audio}?format=mp3"), &token, &[]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["errors"][0]["field"], "format");
}

#[tokio::test]
async fn the_waveform_is_answered_as_json() {
    let api = Api::new().await;
    let (alice, token) = api.user("alice").await;
    let stored = waveform_json();
    let id = api.media(&alice, "ready", &stored).await;
    let r = api
        .get(&format!("/v1/media/{id}/waveform"), &token, &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header(header::CONTENT_TYPE), "application/json");
    assert_eq!(r.body, stored);
    assert_eq!(r.json()["data"], json!([-3, 5, -7, 9]));

    // A waveform past the cap is a server fault, not a 2 MiB+ answer.
    let huge = vec![b' '; 2 * 1024 * 1024 + 1];
    let id = api.media(&alice, "ready", &huge).await;
    let r = api
        .get(&format!("/v1/media/{id}/waveform"), &token, &[])
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.body.len() < 1024);
}

#[tokio::test]
async fn media_that_is_not_ready_answers_409_with_its_state() {
    let api = Api::new().await;
    let (alice, token) = api.user("alice").await;
    for state in ["awaiting_upload", "queued", "processing", "failed"] {
        let id = api.media(&alice, state, b"{}").await;
        for route in ["audio", "waveform"] {
            let r = api
                .get(&format!("/v1/media/{id}/{route}"), &token, &[])
                .await;
            assert_eq!(r.status, StatusCode::CONFLICT, "{state} {route}");
            assert_eq!(r.json()["detail"], format!("media is {state}"));
        }
    }
}

#[tokio::test]
async fn only_the_owner_plays_until_it_is_posted() {
    let api = Api::new().await;
    let (alice, alice_token) = api.user("alice").await;
    let (_, bob_token) = api.user("bob").await;
    let id = api.media(&alice, "ready", &waveform_json()).await;
    let routes = [
        format!("/v1/media/{id}/audio"),
        format!("/v1/media/{id}/waveform"),
    ];
    for path in &routes {
        assert_eq!(
            api.get(path, &bob_token, &[]).await.status,
            StatusCode::FORBIDDEN
        );
        let anonymous = api
            .send(Request::get(path).body(Body::empty()).unwrap())
            .await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    }
    let unknown = api.get("/v1/media/unknown/audio", &alice_token, &[]).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let unknown = api
        .get("/v1/media/unknown/waveform", &alice_token, &[])
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    let post = json!({"media_id": id, "caption": "hello"});
    let req = Request::post("/v1/posts")
        .header(header::AUTHORIZATION, format!("Bearer {alice_token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(post.to_string()))
        .unwrap();
    assert_eq!(api.send(req).await.status, StatusCode::CREATED);
    for path in &routes {
        assert_eq!(
            api.get(path, &bob_token, &[]).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
}
