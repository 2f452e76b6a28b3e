//! Router tests of media uploads, posts, the feed, explore and profile
//! timelines, on the backend `SORI_TEST_DB` names. Apart from the upload
//! tests, media rows are inserted directly, in the state each test needs, as
//! the pipeline would leave them.

mod support;

use axum::http::{header, Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashSet;
use support::{Api, NewMedia, User, PUBLIC_URL};

/// A media row of `owner` in `state`: only a ready one has a duration,
/// bars and outputs, as the pipeline leaves them.
async fn media(api: &Api, owner: &User, state: &str) -> String {
    let row = match state {
        "ready" => NewMedia {
            bars: Some("[0,31,7]"),
            ..NewMedia::clip(state)
        },
        _ => NewMedia::bare(state),
    };
    api.media_with(&owner.id, row).await
}

/// A post of `author` with `caption` on new media in `state`.
async fn post(api: &Api, author: &User, state: &str, caption: &str) -> String {
    let media = media(api, author, state).await;
    api.publish(author, &media, caption).await
}

#[tokio::test]
async fn create_get_and_delete_a_post() {
    let api = Api::new().await;
    let alice = api.user_named("alice", "ALICE").await;
    let bob = api.user("bob").await;
    let media = media(&api, &alice, "ready").await;
    let body = json!({"media_id": media, "caption": " Rain at night #Rain #소리 ", "tags": ["#Night", "rain"]});
    let r = api.post("/v1/posts", &alice, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let post = r.json;
    let id = post["id"].as_str().unwrap();
    assert_eq!(post["caption"], "Rain at night #Rain #소리");
    assert_eq!(post["tags"], json!(["night", "rain", "소리"]));
    assert_eq!(
        post["author"],
        json!({"id": alice.id, "handle": "alice", "display_name": "ALICE", "avatar_url": null})
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
    let r = api.delete(&path, &bob).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.json["type"].as_str().unwrap().ends_with("/forbidden"));
    let r = api.delete(&path, &alice).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(api.get(&path, &alice).await.status, StatusCode::NOT_FOUND);
    let r = api.delete(&path, &alice).await;
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
    let mine = media(&api, &alice, "ready").await;
    let theirs = media(&api, &bob, "ready").await;
    let failed = media(&api, &alice, "failed").await;
    let create = |body: Value| api.post("/v1/posts", &alice, body);

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
    let r = create(json!({"media_id": mine, "visibility": "friends"})).await;
    assert_eq!(r.fields(), ["visibility"]);
    let r = create(json!({"media_id": mine, "audience": "public"})).await;
    assert_eq!(r.fields(), ["audience"]);

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
    let pending = media(&api, &alice, "processing").await;
    let id = api.publish(&alice, &pending, "soon").await;
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
    let r = api.delete(&path, &bob).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(api.get("/v1/feed", &bob).await.ids().is_empty());
    assert!(api.get(&profile, &bob).await.ids().is_empty());
    assert!(api.get("/v1/explore", &bob).await.ids().is_empty());

    api.set_media_state(&pending, "ready").await;
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
    let b1 = post(&api, &bob, "ready", "b1").await;
    let a1 = post(&api, &alice, "ready", "a1").await;
    let _c1 = post(&api, &carol, "ready", "c1").await;
    let _b_pending = post(&api, &bob, "queued", "b2").await;
    let b3 = post(&api, &bob, "ready", "b3").await;

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
    // Rows written directly reach no timeline: alice's feed reads them by
    // the merge, as an account from before timelines does.
    api.accounts_before_timelines().await;
    // 23 posts, many sharing a timestamp, so the id must break ties.
    let mut expected = Vec::new();
    for i in 0..23_i64 {
        let author = if i % 3 == 0 { &alice } else { &bob };
        let media = media(&api, author, "ready").await;
        let created_at = 1_700_000_000_000 + i / 4;
        let id = api
            .post_on(&author.id, &media, "", &["bulk"], created_at)
            .await;
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
    let rain = post(&api, &alice, "ready", "drops #rain").await;
    let _sun = post(&api, &bob, "ready", "#sun").await;
    let rain2 = post(&api, &bob, "ready", "more #Rain and #sun").await;
    let _pending = post(&api, &bob, "processing", "#rain later").await;

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
    let doc = api.openapi().await;
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
    let api = Api::new().await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    let body = json!({"content_type": "audio/webm;codecs=opus", "size_bytes": 5});
    let created = api.post("/v1/media", &alice, body).await;
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
    let early = api.post(&complete_path, &alice, Value::Null).await;
    assert_eq!(early.status, StatusCode::CONFLICT);

    // The client PUTs the bytes to the signed URL with a plain request: no token.
    let headers = [("content-type", "audio/webm"), ("content-length", "5")];
    let put = api
        .fetch_with(Method::PUT, url, &headers, b"12345".to_vec())
        .await;
    assert!(put.status.is_success(), "{} {}", put.status, put.json());

    let r = api.post(&complete_path, &bob, Value::Null).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    for _ in 0..2 {
        let r = api.post(&complete_path, &alice, Value::Null).await;
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
    let r = api.post("/v1/posts", &alice, post).await;
    assert_eq!(r.status, StatusCode::CREATED);
    // Once posted, bob may play it: the audio route redirects to the same
    // signed URL the post carries, which serves the bytes with no token.
    api.put_object(&format!("media/{id}/v1/audio.opus"), b"OggS fake")
        .await;
    let redirect = api.get(&audio, &bob).await;
    assert_eq!(redirect.status, StatusCode::FOUND);
    let location = redirect.header(header::LOCATION).unwrap();
    assert_eq!(location, r.json["audio_url"]);
    let played = api.fetch(Method::GET, location, &[]).await;
    assert_eq!(played.status, StatusCode::OK);
    assert_eq!(
        played.header(header::CONTENT_TYPE),
        "audio/ogg; codecs=opus"
    );
    assert_eq!(
        api.get("/v1/media/unknown", &alice).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn an_upload_of_the_wrong_size_is_not_queued() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let body = json!({"content_type": "audio/mp4", "size_bytes": 10});
    let created = api.post("/v1/media", &alice, body).await;
    let id = created.id();
    api.put_object(&format!("originals/{id}"), b"123").await;
    let r = api
        .post(&format!("/v1/media/{id}/complete"), &alice, Value::Null)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let state = api.get(&format!("/v1/media/{id}"), &alice).await;
    assert_eq!(state.json["state"], "awaiting_upload");
}

#[tokio::test]
async fn upload_requests_are_checked() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let create = |body: Value| api.post("/v1/media", &alice, body);
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
    let bare = Api::without_media().await;
    let carol = bare.user("carol").await;
    let body = json!({"content_type": "audio/mpeg", "size_bytes": 10});
    let r = bare.post("/v1/media", &carol, body).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
}
