//! Router tests of media uploads, posts, the feed, explore and profile
//! timelines, on the backend `SORI_TEST_DB` names. Apart from the upload
//! tests, media rows are inserted directly, in the state each test needs, as
//! the pipeline would leave them.

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sori_api::{app, AppState};
use sori_pipeline::db::testing::{fresh_db, TestDb};
use sori_pipeline::queue::{EmbeddedQueue, JobQueue};
use sori_pipeline::store::{LocalStore, ObjectStore};
use std::collections::HashSet;
use tower::ServiceExt;

const PUBLIC_URL: &str = "https://sori.example";

struct Api {
    app: Router,
    t: TestDb,
    /// The embedded store's directory, when the media routes are connected.
    blobs: Option<tempfile::TempDir>,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
}

impl Reply {
    fn fields(&self) -> Vec<String> {
        assert_eq!(
            self.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            self.json
        );
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/problem+json"
        );
        self.json["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_owned())
            .collect()
    }

    fn ids(&self) -> Vec<String> {
        assert_eq!(self.status, StatusCode::OK, "{}", self.json);
        self.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

struct User {
    id: String,
    token: String,
}

impl Api {
    async fn new() -> Self {
        Self::with_media().await
    }

    /// With the embedded object store and queue, as `sori serve` runs.
    async fn with_media() -> Self {
        let t = fresh_db().await;
        let blobs = tempfile::tempdir().unwrap();
        let store = LocalStore::new(blobs.path(), &[7; 32], PUBLIC_URL).unwrap();
        let queue = EmbeddedQueue::new(t.db.clone(), "media", 5);
        let state = AppState::new(t.db.clone())
            .with_public_url(PUBLIC_URL)
            .with_media(ObjectStore::Local(store), JobQueue::Embedded(queue));
        Self {
            app: app(state),
            t,
            blobs: Some(blobs),
        }
    }

    fn store(&self) -> LocalStore {
        let root = self.blobs.as_ref().unwrap().path();
        LocalStore::new(root, &[7; 32], PUBLIC_URL).unwrap()
    }

    async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Reply {
        let builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        let req = match body {
            Some(body) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => builder.body(Body::empty()),
        }
        .unwrap();
        let response = self.app.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            json,
        }
    }

    async fn get(&self, path: &str, user: &User) -> Reply {
        self.call(Method::GET, path, &user.token, None).await
    }

    /// Sends a prepared request through the router.
    async fn send(&self, req: Request<Body>) -> Reply {
        let response = self.app.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            json,
        }
    }

    async fn user(&self, handle: &str) -> User {
        let req = Request::post("/v1/auth/signup")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"handle": handle, "password": "correct horse", "display_name": handle.to_uppercase()})
                    .to_string(),
            ))
            .unwrap();
        let response = self.app.clone().oneshot(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json: Value = serde_json::from_slice(&bytes).unwrap();
        User {
            id: json["user_id"].as_str().unwrap().to_owned(),
            token: json["token"].as_str().unwrap().to_owned(),
        }
    }

    /// A media row as the pipeline leaves it in `state`.
    async fn media(&self, owner: &User, state: &str) -> String {
        let id = uuid::Uuid::now_v7().to_string();
        let ready = state == "ready";
        sqlx::query(
            "INSERT INTO media (id, owner_id, state, content_type, size_bytes, original_key, \
             duration_ms, bars, output_prefix, created_at, updated_at) \
             VALUES ($1, $2, $3, 'audio/mp4', 1000, $4, $5, $6, $7, 0, 0)",
        )
        .bind(&id)
        .bind(&owner.id)
        .bind(state)
        .bind(format!("originals/{id}"))
        .bind(ready.then_some(1234_i64))
        .bind(ready.then_some("[0,31,7]"))
        .bind(ready.then(|| format!("media/{id}/v1/")))
        .execute(self.t.db.pool())
        .await
        .unwrap();
        id
    }

    async fn post(&self, author: &User, state: &str, caption: &str) -> String {
        let media = self.media(author, state).await;
        let r = self
            .call(
                Method::POST,
                "/v1/posts",
                &author.token,
                Some(json!({"media_id": media, "caption": caption})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        r.json["id"].as_str().unwrap().to_owned()
    }

    async fn set_media_state(&self, post_id: &str, state: &str) {
        sqlx::query(
            "UPDATE media SET state = $1 WHERE id = (SELECT media_id FROM posts WHERE id = $2)",
        )
        .bind(state)
        .bind(post_id)
        .execute(self.t.db.pool())
        .await
        .unwrap();
    }

    async fn follow(&self, follower: &User, followee: &User) {
        sqlx::query(
            "INSERT INTO follows (follower_id, followee_id, created_at) VALUES ($1, $2, 0)",
        )
        .bind(&follower.id)
        .bind(&followee.id)
        .execute(self.t.db.pool())
        .await
        .unwrap();
    }

    /// Every page of a list, following `next_cursor`; checks no page exceeds `limit`.
    async fn all_pages(&self, path: &str, user: &User, limit: usize) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100 {
            let url = match &cursor {
                Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
                None => format!("{path}{sep}limit={limit}"),
            };
            let page = self.get(&url, user).await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.json);
            let batch = page.json["items"].as_array().unwrap().clone();
            assert!(batch.len() <= limit);
            items.extend(batch);
            match page.json["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return items,
            }
        }
        panic!("pagination did not end");
    }
}

#[tokio::test]
async fn create_get_and_delete_a_post() {
    let api = Api::new().await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    let media = api.media(&alice, "ready").await;
    let r = api
        .call(
            Method::POST,
            "/v1/posts",
            &alice.token,
            Some(json!({"media_id": media, "caption": " Rain at night #Rain #소리 ", "tags": ["#Night", "rain"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let post = r.json;
    let id = post["id"].as_str().unwrap();
    assert_eq!(post["caption"], "Rain at night #Rain #소리");
    assert_eq!(post["tags"], json!(["night", "rain", "소리"]));
    assert_eq!(
        post["author"],
        json!({"id": alice.id, "handle": "alice", "display_name": "ALICE"})
    );
    assert_eq!(post["state"], "ready");
    assert_eq!(post["duration_ms"], 1234);
    assert_eq!(post["bars"], json!([0, 31, 7]));
    // Signed URLs of every variant and the waveform, of this media's outputs.
    let opus = post["audio_urls"]["opus"].as_str().unwrap();
    assert_eq!(post["audio_url"], opus);
    for (variant, file) in [
        ("opus", "audio.opus"),
        ("caf", "audio.caf"),
        ("webm", "audio.webm"),
    ] {
        let url = post["audio_urls"][variant].as_str().unwrap();
        let signed = format!("{PUBLIC_URL}/v1/blobs/media/{media}/v1/{file}?expires=");
        assert!(url.starts_with(&signed), "{url}");
        assert!(url.contains("&sig="), "{url}");
    }
    let waveform = post["waveform_url"].as_str().unwrap();
    assert!(waveform.contains(&format!("/media/{media}/v1/waveform.json?")));
    assert_eq!(post["like_count"], 0);
    assert_eq!(post["liked_by_me"], false);

    let seen = api.get(&format!("/v1/posts/{id}"), &bob).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.json, post);

    let path = format!("/v1/posts/{id}");
    let r = api.call(Method::DELETE, &path, &bob.token, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.json["type"].as_str().unwrap().ends_with("/forbidden"));
    let r = api.call(Method::DELETE, &path, &alice.token, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(api.get(&path, &alice).await.status, StatusCode::NOT_FOUND);
    let r = api.call(Method::DELETE, &path, &alice.token, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let tags: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM post_tags")
        .fetch_one(api.t.db.pool())
        .await
        .unwrap();
    assert_eq!(tags, 0, "tags go with the post");
}

#[tokio::test]
async fn bad_posts_are_refused_naming_the_field() {
    let api = Api::new().await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    let mine = api.media(&alice, "ready").await;
    let theirs = api.media(&bob, "ready").await;
    let failed = api.media(&alice, "failed").await;
    let create = |body: Value| api.call(Method::POST, "/v1/posts", &alice.token, Some(body));

    let r = create(json!({"media_id": mine, "caption": "x".repeat(501)})).await;
    assert_eq!(r.fields(), ["caption"]);
    let r = create(json!({"media_id": theirs})).await;
    assert_eq!(r.fields(), ["media_id"]);
    let r = create(json!({"media_id": "no-such-media"})).await;
    assert_eq!(r.fields(), ["media_id"]);
    let r = create(json!({"media_id": failed})).await;
    assert_eq!(r.fields(), ["media_id"]);
    let r = create(json!({"media_id": mine, "tags": ["ok", "not ok"]})).await;
    assert_eq!(r.fields(), ["tags[1]"]);
    let eleven: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
    let r = create(json!({"media_id": mine, "tags": eleven})).await;
    assert_eq!(r.fields(), ["tags"]);
    let r = create(json!({"media_id": mine, "tags": "rain"})).await;
    assert_eq!(r.fields(), ["tags"]);
    let r = create(json!({"media_id": mine, "visibility": "public"})).await;
    assert_eq!(r.fields(), ["visibility"]);

    assert_eq!(
        create(json!({"media_id": mine})).await.status,
        StatusCode::CREATED
    );
    let again = create(json!({"media_id": mine})).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(
        api.get("/v1/posts/unknown", &alice).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn pending_posts_are_shown_to_their_author_only() {
    let api = Api::new().await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    api.follow(&bob, &alice).await;
    let id = api.post(&alice, "processing", "soon").await;
    let path = format!("/v1/posts/{id}");

    let own = api.get(&path, &alice).await;
    assert_eq!(own.status, StatusCode::OK);
    assert_eq!(own.json["state"], "processing");
    assert_eq!(own.json["audio_url"], Value::Null);
    assert_eq!(own.json["audio_urls"], Value::Null);
    assert_eq!(own.json["waveform_url"], Value::Null);
    assert_eq!(own.json["bars"], json!([]));
    assert_eq!(
        api.get("/v1/feed", &alice).await.ids(),
        std::slice::from_ref(&id)
    );
    let profile = format!("/v1/users/{}/posts", alice.id);
    assert_eq!(
        api.get(&profile, &alice).await.ids(),
        std::slice::from_ref(&id)
    );

    assert_eq!(api.get(&path, &bob).await.status, StatusCode::NOT_FOUND);
    let r = api.call(Method::DELETE, &path, &bob.token, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(api.get("/v1/feed", &bob).await.ids().is_empty());
    assert!(api.get(&profile, &bob).await.ids().is_empty());
    assert!(api.get("/v1/explore", &bob).await.ids().is_empty());

    api.set_media_state(&id, "ready").await;
    assert_eq!(api.get(&path, &bob).await.status, StatusCode::OK);
    assert_eq!(
        api.get("/v1/feed", &bob).await.ids(),
        std::slice::from_ref(&id)
    );
    assert_eq!(api.get("/v1/explore", &bob).await.ids(), [id]);
}

#[tokio::test]
async fn the_feed_holds_own_and_followed_posts_newest_first() {
    let api = Api::new().await;
    let (alice, bob, carol) = (
        api.user("alice").await,
        api.user("bob").await,
        api.user("carol").await,
    );
    api.follow(&alice, &bob).await;
    let b1 = api.post(&bob, "ready", "b1").await;
    let a1 = api.post(&alice, "ready", "a1").await;
    let _c1 = api.post(&carol, "ready", "c1").await;
    let _b_pending = api.post(&bob, "queued", "b2").await;
    let b3 = api.post(&bob, "ready", "b3").await;

    let feed = api.get("/v1/feed", &alice).await;
    assert_eq!(feed.ids(), [b3.clone(), a1.clone(), b1.clone()]);
    assert_eq!(feed.json["next_cursor"], Value::Null);
    // Carol follows nobody: her feed is her own post.
    assert_eq!(api.get("/v1/feed", &carol).await.ids().len(), 1);

    // liked_by_me reflects the viewer's own like.
    sqlx::query("INSERT INTO likes (post_id, user_id, created_at) VALUES ($1, $2, 0)")
        .bind(&b3)
        .bind(&alice.id)
        .execute(api.t.db.pool())
        .await
        .unwrap();
    let feed = api.get("/v1/feed", &alice).await;
    assert_eq!(feed.json["items"][0]["liked_by_me"], true);
    assert_eq!(feed.json["items"][1]["liked_by_me"], false);
    let seen_by_bob = api.get(&format!("/v1/posts/{b3}"), &bob).await;
    assert_eq!(seen_by_bob.json["liked_by_me"], false);

    let profile = api
        .get(&format!("/v1/users/{}/posts", bob.id), &carol)
        .await;
    assert_eq!(profile.ids(), [b3, b1]);
    let unknown = api.get("/v1/users/nobody/posts", &carol).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn pages_follow_the_cursor_without_gaps_or_duplicates() {
    let api = Api::new().await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    api.follow(&alice, &bob).await;
    // 23 posts, many sharing a timestamp, so the id must break ties.
    let mut expected = Vec::new();
    for i in 0..23_i64 {
        let author = if i % 3 == 0 { &alice } else { &bob };
        let media = api.media(author, "ready").await;
        let id = uuid::Uuid::now_v7().to_string();
        let created_at = 1_700_000_000_000 + i / 4;
        sqlx::query(
            "INSERT INTO posts (id, author_id, media_id, caption, tags, created_at) \
             VALUES ($1, $2, $3, '', '[\"bulk\"]', $4)",
        )
        .bind(&id)
        .bind(&author.id)
        .bind(&media)
        .bind(created_at)
        .execute(api.t.db.pool())
        .await
        .unwrap();
        sqlx::query("INSERT INTO post_tags (tag, post_id, created_at) VALUES ('bulk', $1, $2)")
            .bind(&id)
            .bind(created_at)
            .execute(api.t.db.pool())
            .await
            .unwrap();
        expected.push((created_at, id));
    }
    expected.sort();
    expected.reverse();
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();

    for path in ["/v1/feed", "/v1/explore", "/v1/explore?tag=%23BULK"] {
        for limit in [1, 5, 7, 23, 100] {
            let items = api.all_pages(path, &alice, limit).await;
            let ids: Vec<String> = items
                .iter()
                .map(|p| p["id"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(ids, expected, "{path} limit {limit}");
            assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
        }
    }
    let first = api.get("/v1/feed", &alice).await;
    assert_eq!(first.ids().len(), 20, "default limit");
    let bob_only = api
        .all_pages(&format!("/v1/users/{}/posts", bob.id), &alice, 4)
        .await;
    assert_eq!(bob_only.len(), 15);
}

#[tokio::test]
async fn explore_filters_by_tag() {
    let api = Api::new().await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    let rain = api.post(&alice, "ready", "drops #rain").await;
    let _sun = api.post(&bob, "ready", "#sun").await;
    let rain2 = api.post(&bob, "ready", "more #Rain and #sun").await;
    let _pending = api.post(&bob, "processing", "#rain later").await;

    assert_eq!(
        api.get("/v1/explore?tag=rain", &alice).await.ids(),
        [rain2.clone(), rain]
    );
    assert_eq!(
        api.get("/v1/explore?tag=%23RAIN", &alice).await.ids().len(),
        2
    );
    assert!(api
        .get("/v1/explore?tag=snow", &alice)
        .await
        .ids()
        .is_empty());
    assert_eq!(api.get("/v1/explore", &alice).await.ids().len(), 3);
    assert_eq!(api.get("/v1/explore?tag=", &alice).await.ids()[0], rain2);
}

#[tokio::test]
async fn bad_list_parameters_are_422() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    for (path, field) in [
        ("/v1/feed?limit=0", "limit"),
        ("/v1/feed?limit=101", "limit"),
        ("/v1/feed?limit=ten", "limit"),
        ("/v1/feed?cursor=garbage", "cursor"),
        ("/v1/explore?tag=two%20words", "tag"),
    ] {
        let r = api.get(path, &alice).await;
        assert_eq!(r.fields(), [field], "{path}");
    }
}

#[tokio::test]
async fn openapi_documents_post_and_feed_routes() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let doc = api.get("/openapi.json", &alice).await.json;
    for (path, method) in [
        ("/v1/posts", "post"),
        ("/v1/posts/{id}", "get"),
        ("/v1/posts/{id}", "delete"),
        ("/v1/feed", "get"),
        ("/v1/explore", "get"),
        ("/v1/users/{id}/posts", "get"),
        ("/v1/media", "post"),
        ("/v1/media/{id}/complete", "post"),
        ("/v1/media/{id}", "get"),
        ("/v1/media/{id}/audio", "get"),
        ("/v1/media/{id}/waveform", "get"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} missing");
        assert!(
            op["responses"]["401"].is_object(),
            "{method} {path} lacks 401"
        );
    }
    let params: Vec<&str> = doc["paths"]["/v1/feed"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["limit", "cursor"]);
    // The page schema names its items and cursor (resolving a `$ref` if the generator made one).
    let mut schema = &doc["paths"]["/v1/feed"]["get"]["responses"]["200"]["content"]
        ["application/json"]["schema"];
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap();
        schema = &doc["components"]["schemas"][name];
    }
    assert!(schema["properties"]["items"].is_object(), "{schema}");
    assert!(schema["properties"]["next_cursor"].is_object(), "{schema}");
    let problem = &doc["components"]["schemas"]["Problem"]["properties"];
    assert!(problem["errors"].is_object(), "422 field list documented");
}

#[tokio::test]
async fn upload_complete_and_play_a_voice_clip() {
    let api = Api::with_media().await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    let body = json!({"content_type": "audio/webm;codecs=opus", "size_bytes": 5});
    let created = api
        .call(Method::POST, "/v1/media", &alice.token, Some(body))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    let id = created.json["id"].as_str().unwrap().to_owned();
    let upload = &created.json["upload"];
    assert_eq!(upload["method"], "PUT");
    assert_eq!(upload["headers"]["content-type"], "audio/webm");
    assert_eq!(upload["headers"]["content-length"], "5");
    let url = upload["url"].as_str().unwrap();
    let path = url
        .strip_prefix(PUBLIC_URL)
        .expect("upload URL under the public URL");
    assert!(
        path.starts_with(&format!("/v1/blobs/originals/{id}?")),
        "{url}"
    );

    let status_path = format!("/v1/media/{id}");
    let complete_path = format!("/v1/media/{id}/complete");
    assert_eq!(
        api.get(&status_path, &alice).await.json["state"],
        "awaiting_upload"
    );
    let early = api
        .call(Method::POST, &complete_path, &alice.token, None)
        .await;
    assert_eq!(early.status, StatusCode::CONFLICT);

    // The client PUTs the bytes to the signed URL with a plain request: no token.
    let put = Request::put(path)
        .header(header::CONTENT_TYPE, "audio/webm")
        .header(header::CONTENT_LENGTH, "5")
        .body(Body::from(&b"12345"[..]))
        .unwrap();
    let put = api.send(put).await;
    assert!(put.status.is_success(), "{} {}", put.status, put.json);

    let r = api
        .call(Method::POST, &complete_path, &bob.token, None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    for _ in 0..2 {
        let r = api
            .call(Method::POST, &complete_path, &alice.token, None)
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
        assert_eq!(r.json["state"], "queued");
    }
    let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM queue_messages")
        .fetch_one(api.t.db.pool())
        .await
        .unwrap();
    assert_eq!(jobs, 1, "completing twice queues one job");

    let audio = format!("/v1/media/{id}/audio");
    let not_ready = api.get(&audio, &alice).await;
    assert_eq!(not_ready.status, StatusCode::CONFLICT);
    assert_eq!(not_ready.json["detail"], "media is queued");

    sqlx::query(
        "UPDATE media SET state = 'ready', output_prefix = $1, duration_ms = 900, bars = '[1,2]', \
         report = '{\"duration_ms\": 900}' WHERE id = $2",
    )
    .bind(format!("media/{id}/v1/"))
    .bind(&id)
    .execute(api.t.db.pool())
    .await
    .unwrap();
    let status = api.get(&status_path, &alice).await;
    assert_eq!(status.json["state"], "ready");
    assert_eq!(status.json["bars"], json!([1, 2]));
    assert_eq!(status.json["report"]["duration_ms"], 900);

    // The bytes, ranges and formats served by /audio and /waveform are
    // covered by media_routes.rs against real outputs.
    let bad = api.get(&format!("{audio}?format=mp3"), &alice).await;
    assert_eq!(bad.fields(), ["format"]);

    // Others may play it only once it is posted, and never see its status.
    assert_eq!(api.get(&audio, &bob).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        api.get(&status_path, &bob).await.status,
        StatusCode::FORBIDDEN
    );
    let post = json!({"media_id": id, "caption": "first"});
    let r = api
        .call(Method::POST, "/v1/posts", &alice.token, Some(post))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    // Once posted, bob may play it: the audio route redirects to the same
    // signed URL the post carries, which serves the bytes with no token.
    let opus = api.blobs.as_ref().unwrap().path().join("audio.opus");
    std::fs::write(&opus, b"OggS fake").unwrap();
    api.store()
        .put_file(&format!("media/{id}/v1/audio.opus"), &opus, "audio/ogg")
        .await
        .unwrap();
    let redirect = api.get(&audio, &bob).await;
    assert_eq!(redirect.status, StatusCode::FOUND);
    let location = redirect.headers[header::LOCATION].to_str().unwrap();
    assert_eq!(location, r.json["audio_url"]);
    let played = Request::get(location.strip_prefix(PUBLIC_URL).unwrap())
        .body(Body::empty())
        .unwrap();
    let played = api.send(played).await;
    assert_eq!(played.status, StatusCode::OK);
    assert_eq!(
        played.headers[header::CONTENT_TYPE],
        "audio/ogg; codecs=opus"
    );
    assert_eq!(
        api.get("/v1/media/unknown", &alice).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn an_upload_of_the_wrong_size_is_not_queued() {
    let api = Api::with_media().await;
    let alice = api.user("alice").await;
    let body = json!({"content_type": "audio/mp4", "size_bytes": 10});
    let created = api
        .call(Method::POST, "/v1/media", &alice.token, Some(body))
        .await;
    let id = created.json["id"].as_str().unwrap();
    let short = api.blobs.as_ref().unwrap().path().join("short.m4a");
    std::fs::write(&short, b"123").unwrap();
    let key = format!("originals/{id}");
    api.store()
        .put_file(&key, &short, "audio/mp4")
        .await
        .unwrap();
    let r = api
        .call(
            Method::POST,
            &format!("/v1/media/{id}/complete"),
            &alice.token,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let state = api.get(&format!("/v1/media/{id}"), &alice).await;
    assert_eq!(state.json["state"], "awaiting_upload");
}

#[tokio::test]
async fn upload_requests_are_checked() {
    let api = Api::with_media().await;
    let alice = api.user("alice").await;
    let create = |body: Value| api.call(Method::POST, "/v1/media", &alice.token, Some(body));
    let r = create(json!({"content_type": "image/gif", "size_bytes": 10})).await;
    assert_eq!(r.fields(), ["content_type"]);
    let r = create(json!({"content_type": "audio/mpeg", "size_bytes": 0})).await;
    assert_eq!(r.fields(), ["size_bytes"]);
    let r = create(json!({"content_type": "audio/mpeg", "size_bytes": 10, "name": "x"})).await;
    assert_eq!(r.fields(), ["name"]);
    let r = create(json!({"content_type": "audio/mpeg", "size_bytes": 60 * 1024 * 1024})).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let media: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM media")
        .fetch_one(api.t.db.pool())
        .await
        .unwrap();
    assert_eq!(media, 0);

    // Without a store configured the media routes say so rather than fail obscurely.
    let t = fresh_db().await;
    let bare = Api {
        app: app(AppState::new(t.db.clone())),
        t,
        blobs: None,
    };
    let carol = bare.user("carol").await;
    let body = json!({"content_type": "audio/mpeg", "size_bytes": 10});
    let r = bare
        .call(Method::POST, "/v1/media", &carol.token, Some(body))
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
}
