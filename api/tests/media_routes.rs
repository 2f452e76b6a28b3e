//! Playback in embedded mode, on the backend `SORI_TEST_DB` names.
//!
//! The signed URLs answers carry play as given, with no token, and answer
//! what players need (ranges, `HEAD`, types, validators, caching); a URL
//! grants only its object, `GET`/`HEAD`, until it expires (403 problem
//! otherwise); who gets one is decided when the answer is made (blocks,
//! removals, readiness); `GET /v1/media/{id}/audio` redirects to the same
//! URLs and `/waveform` answers the JSON.

mod support;

use axum::http::{header, Method, StatusCode};
use serde_json::{json, Value};
use sori_pipeline::clock::now_ms;
use support::{assert_problem, Api, Fetched, User};

const OGG: &[u8] = b"OggS-pretend-opus-0123456789";
const CAF: &[u8] = b"caff-pretend";
const WEBM: &[u8] = b"webm-pretend-bytes";

fn waveform_json() -> Vec<u8> {
    json!({"version": 2, "channels": 1, "sample_rate": 48000, "samples_per_pixel": 480,
           "bits": 8, "length": 2, "data": [-3, 5, -7, 9]})
    .to_string()
    .into_bytes()
}

/// A ready clip of `owner` with its outputs stored; its media id.
async fn clip(api: &Api, owner: &User) -> String {
    let media = api.media(owner, "ready").await;
    api.outputs(&media, OGG, CAF, WEBM, &waveform_json()).await;
    media
}

/// `owner`'s post of a ready clip with stored outputs: post and media ids.
async fn posted_clip(api: &Api, owner: &User) -> (String, String) {
    let media = clip(api, owner).await;
    (api.publish(owner, &media, "hi").await, media)
}

fn url(item: &Value, field: &str) -> String {
    let value = match field.split_once('.') {
        Some((outer, inner)) => &item[outer][inner],
        None => &item[field],
    };
    value
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {item}"))
        .to_owned()
}

/// The `expires` parameter of a signed blob URL, Unix ms.
fn expires_of(url: &str) -> i64 {
    let query = url.split_once('?').unwrap().1;
    let value = query
        .split('&')
        .find_map(|p| p.strip_prefix("expires="))
        .unwrap();
    value.parse().unwrap()
}

fn problem_403(r: &Fetched, what: &str) {
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{what}");
    assert_eq!(r.header(header::CONTENT_TYPE), "application/problem+json");
    let v = r.json();
    assert_eq!(v["type"], "https://sori.dev/problems/forbidden", "{what}");
    assert!(
        v["detail"].as_str().unwrap().contains("signed URL"),
        "{what}"
    );
}

#[tokio::test]
async fn the_urls_in_answers_play_as_given_with_types_and_caching() {
    let api = Api::new().await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    api.follow(&bob, &alice).await;
    let (post, _) = posted_clip(&api, &alice).await;
    let item = api.post_item(&post, &bob).await;
    assert_eq!(url(&item, "audio_url"), url(&item, "audio_urls.opus"));

    for (field, bytes, content_type) in [
        ("audio_urls.opus", OGG, "audio/ogg; codecs=opus"),
        ("audio_urls.caf", CAF, "audio/x-caf"),
        ("audio_urls.webm", WEBM, "audio/webm"),
    ] {
        let signed = url(&item, field);
        let r = api.fetch(Method::GET, &signed, &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{field}");
        assert_eq!(r.body, bytes, "{field}");
        assert_eq!(r.header(header::CONTENT_TYPE), content_type);
        assert_eq!(r.header(header::CONTENT_LENGTH), bytes.len().to_string());
        assert_eq!(r.header(header::ACCEPT_RANGES), "bytes");
        assert_eq!(r.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert_eq!(r.header(header::CONTENT_DISPOSITION), "inline");
        assert!(r.header(header::ETAG).starts_with('"'), "a strong tag");
        httpdate::parse_http_date(r.header(header::LAST_MODIFIED)).unwrap();
        // Cacheable by anyone holding the URL, until the URL expires.
        let cache = r.header(header::CACHE_CONTROL);
        let max_age: i64 = cache
            .strip_prefix("public, max-age=")
            .and_then(|rest| rest.strip_suffix(", immutable"))
            .unwrap_or_else(|| panic!("{cache}"))
            .parse()
            .unwrap();
        let left = (expires_of(&signed) - now_ms()) / 1000;
        assert!((left - 2..=left).contains(&max_age), "{max_age} vs {left}");
        assert!((3600 - 2..=4500).contains(&max_age), "{max_age}");
        let expires = httpdate::parse_http_date(r.header(header::EXPIRES)).unwrap();
        let expires_ms = expires.duration_since(std::time::UNIX_EPOCH).unwrap();
        assert_eq!(expires_ms.as_millis() as i64, expires_of(&signed));
    }
    let waveform = api
        .fetch(Method::GET, &url(&item, "waveform_url"), &[])
        .await;
    assert_eq!(waveform.status, StatusCode::OK);
    assert_eq!(waveform.header(header::CONTENT_TYPE), "application/json");
    assert_eq!(waveform.json()["data"], json!([-3, 5, -7, 9]));

    // The feed hands out the very same URLs (one expiry per window), so a
    // cache keyed on the URL hits.
    let feed = api.get("/v1/feed", &bob).await;
    let in_feed = &feed.json["items"][0];
    assert_eq!(in_feed["id"], post.as_str());
    assert_eq!(in_feed["audio_urls"], item["audio_urls"]);
    assert_eq!(in_feed["waveform_url"], item["waveform_url"]);
}

#[tokio::test]
async fn ranges_head_and_conditional_requests() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let media = clip(&api, &alice).await;
    let status = api.get(&format!("/v1/media/{media}"), &alice).await;
    let signed = url(&status.json, "audio_url");
    let total = OGG.len();
    let get = |headers: &'static [(&'static str, &'static str)]| {
        let signed = signed.clone();
        let api = &api;
        async move { api.fetch(Method::GET, &signed, headers).await }
    };

    let r = get(&[("range", "bytes=4-7")]).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body, &OGG[4..=7]);
    assert_eq!(
        r.header(header::CONTENT_RANGE),
        format!("bytes 4-7/{total}")
    );
    assert_eq!(r.header(header::CONTENT_LENGTH), "4");
    // Open-ended, as a player seeking sends it; and a suffix.
    let r = get(&[("range", "bytes=4-")]).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body, &OGG[4..]);
    let last = total - 1;
    assert_eq!(
        r.header(header::CONTENT_RANGE),
        format!("bytes 4-{last}/{total}")
    );
    let r = get(&[("range", "bytes=-3")]).await;
    assert_eq!(r.body, &OGG[total - 3..]);
    let past = format!("bytes={total}-");
    let r = api.fetch(Method::GET, &signed, &[("range", &past)]).await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header(header::CONTENT_RANGE), format!("bytes */{total}"));
    assert_eq!(r.json()["status"], 416);

    // HEAD: the same headers, no body; the GET signature allows it.
    let full = get(&[]).await;
    let head = api.fetch(Method::HEAD, &signed, &[]).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    for name in [header::CONTENT_LENGTH, header::CONTENT_TYPE, header::ETAG] {
        assert_eq!(head.header(name.clone()), full.header(name));
    }

    // Validators: the client's copy is current.
    let etag = full.header(header::ETAG).to_owned();
    let modified = full.header(header::LAST_MODIFIED).to_owned();
    let weak = format!("W/{etag}");
    for (name, value) in [
        ("if-none-match", etag.as_str()),
        ("if-none-match", weak.as_str()),
        ("if-modified-since", modified.as_str()),
    ] {
        let r = api.fetch(Method::GET, &signed, &[(name, value)]).await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED, "{name}: {value}");
        assert!(r.body.is_empty());
        assert_eq!(r.header(header::ETAG), etag);
        assert!(r
            .header(header::CACHE_CONTROL)
            .starts_with("public, max-age="));
    }
    let r = get(&[("if-none-match", "\"another\"")]).await;
    assert_eq!((r.status, r.body.as_slice()), (StatusCode::OK, OGG));

    // If-Range: the range of the copy the client has, else all of it.
    for (if_range, expected) in [
        (etag.as_str(), StatusCode::PARTIAL_CONTENT),
        (modified.as_str(), StatusCode::PARTIAL_CONTENT),
        ("\"stale\"", StatusCode::OK),
        ("Thu, 01 Jan 2015 00:00:00 GMT", StatusCode::OK),
    ] {
        let headers = [("range", "bytes=0-3"), ("if-range", if_range)];
        let r = api.fetch(Method::GET, &signed, &headers).await;
        assert_eq!(r.status, expected, "If-Range {if_range}");
        let body: &[u8] = if expected == StatusCode::OK {
            OGG
        } else {
            &OGG[..4]
        };
        assert_eq!(r.body, body);
    }
}

#[tokio::test]
async fn a_url_grants_only_its_object_its_methods_and_its_time() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let (post, media) = posted_clip(&api, &alice).await;
    let (_, other) = posted_clip(&api, &alice).await;
    let item = api.post_item(&post, &alice).await;
    let signed = url(&item, "audio_urls.opus");
    assert_eq!(
        api.fetch(Method::GET, &signed, &[]).await.status,
        StatusCode::OK
    );

    let sig = signed.rsplit_once("sig=").unwrap().1;
    let flipped = format!(
        "{}{}",
        if sig.starts_with('0') { "1" } else { "0" },
        &sig[1..]
    );
    let later = (expires_of(&signed) + 86_400_000).to_string();
    let expires = format!("expires={}", expires_of(&signed));
    let cases = [
        ("signature changed", signed.replace(sig, &flipped)),
        (
            "expiry stretched",
            signed.replace(&expires, &format!("expires={later}")),
        ),
        ("another media", signed.replace(&media, &other)),
        ("another variant", signed.replace("audio.opus", "audio.caf")),
        ("another version", signed.replace("/v1/audio", "/v2/audio")),
        (
            "a type added",
            signed.replace("&sig=", "&type=text%2Fhtml&sig="),
        ),
        (
            "no signature",
            signed.split_once('?').unwrap().0.to_owned() + "?" + &expires,
        ),
    ];
    for (what, tampered) in &cases {
        let r = api.fetch(Method::GET, tampered, &[]).await;
        if *what == "no signature" {
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}");
        } else {
            problem_403(&r, what);
        }
    }
    // Expired a second ago.
    let key = format!("media/{media}/v1/audio.opus");
    let expired = api.store().sign_get(&key, None, now_ms() - 1000).unwrap();
    problem_403(&api.fetch(Method::GET, &expired, &[]).await, "expired");
    // A download URL does not upload.
    let headers = [("content-type", "audio/ogg"), ("content-length", "4")];
    let put = api
        .fetch_with(Method::PUT, &signed, &headers, b"evil".to_vec())
        .await;
    problem_403(&put, "PUT with a GET signature");
    assert_eq!(api.fetch(Method::GET, &signed, &[]).await.body, OGG);
}

#[tokio::test]
async fn blocked_viewers_get_no_url_and_voice_comments_play_for_others() {
    let api = Api::new().await;
    let (alice, bob, carol) = (
        api.user("alice").await,
        api.user("bob").await,
        api.user("carol").await,
    );
    api.follow(&bob, &alice).await;
    let (post, media) = posted_clip(&api, &alice).await;
    let voice = clip(&api, &carol).await;
    let comments = format!("/v1/posts/{post}/comments");
    let r = api
        .post(&comments, &carol, json!({"media_id": voice}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);

    // Bob sees the post and carol's voice comment, both playable.
    let seen = api.get(&comments, &bob).await;
    let comment = &seen.json["items"][0];
    let comment_url = url(comment, "audio_url");
    let r = api.fetch(Method::GET, &comment_url, &[]).await;
    assert_eq!((r.status, r.body.as_slice()), (StatusCode::OK, OGG));
    let redirect = api
        .get_raw(&format!("/v1/media/{voice}/audio"), &bob, &[])
        .await;
    assert_eq!(redirect.status, StatusCode::FOUND);
    assert_eq!(redirect.header(header::LOCATION), comment_url);

    // Carol blocks bob: her comment and its URL are gone for him.
    api.block(&carol, &bob).await;
    assert!(api.ids(&comments, &bob).await.is_empty());
    let r = api.get(&format!("/v1/media/{voice}/audio"), &bob).await;
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");

    // Alice blocks bob: no post, no feed item, no URL.
    api.block(&alice, &bob).await;
    let r = api.get(&format!("/v1/posts/{post}"), &bob).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    assert!(api.feed_ids(&bob).await.is_empty());
    let r = api.get(&format!("/v1/media/{media}/audio"), &bob).await;
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");
    // Alice still plays her own.
    let own = api
        .get_raw(&format!("/v1/media/{media}/audio"), &alice, &[])
        .await;
    assert_eq!(own.status, StatusCode::FOUND);
}

#[tokio::test]
async fn removed_posts_and_removed_viewers_get_no_url() {
    let api = Api::new().await;
    let (alice, bob, admin) = (
        api.user("alice").await,
        api.user("bob").await,
        api.user("admin").await,
    );
    api.make_admin(&admin).await;
    api.follow(&bob, &alice).await;
    let (post, media) = posted_clip(&api, &alice).await;
    assert!(api.post_item(&post, &bob).await["audio_url"].is_string());
    let audio = format!("/v1/media/{media}/audio");
    assert_eq!(
        api.get_raw(&audio, &bob, &[]).await.status,
        StatusCode::FOUND
    );

    let report = |kind: &'static str, id: String| {
        let api = &api;
        let (bob, admin) = (&bob, &admin);
        async move {
            let body = json!({"target_kind": kind, "target_id": id, "reason": "spam"});
            let r = api.post("/v1/reports", bob, body).await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
            let resolve = format!("/v1/reports/{}/resolve", r.json["id"].as_str().unwrap());
            let r = api.post(&resolve, admin, json!({"action": "remove"})).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        }
    };
    report("post", post.clone()).await;
    let r = api.get(&format!("/v1/posts/{post}"), &bob).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    assert!(api.feed_ids(&bob).await.is_empty());
    assert_problem(
        &api.get(&audio, &bob).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );

    // A removed viewer: signed out, so no answer carries anything for them.
    let (other_post, _) = posted_clip(&api, &alice).await;
    assert_eq!(api.feed_ids(&bob).await, [other_post.as_str()]);
    let reported_by_admin = {
        let body = json!({"target_kind": "user", "target_id": bob.id, "reason": "spam"});
        let r = api.post("/v1/reports", &admin, body).await;
        r.json["id"].as_str().unwrap().to_owned()
    };
    let resolve = format!("/v1/reports/{reported_by_admin}/resolve");
    let r = api
        .post(&resolve, &admin, json!({"action": "remove"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let r = api.get("/v1/feed", &bob).await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    let r = api.get(&format!("/v1/posts/{other_post}"), &bob).await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn the_audio_route_redirects_to_the_signed_variant() {
    let api = Api::new().await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    let media = clip(&api, &alice).await;
    let status = api.get(&format!("/v1/media/{media}"), &alice).await;
    assert_eq!(status.json["state"], "ready");
    let audio = format!("/v1/media/{media}/audio");

    // The variant: `?format=` first, then `Accept`, else Ogg.
    for (query, accept, variant) in [
        ("", None, "opus"),
        ("?format=caf", Some("audio/webm"), "caf"),
        ("?format=ogg", None, "opus"),
        ("", Some("audio/webm, audio/ogg"), "webm"),
        ("", Some("audio/x-caf;q=1"), "caf"),
        ("", Some("text/html"), "opus"),
    ] {
        let headers: Vec<_> = accept.map(|a| ("accept", a)).into_iter().collect();
        let r = api
            .get_raw(&format!("{audio}{query}"), &alice, &headers)
            .await;
        assert_eq!(r.status, StatusCode::FOUND, "{query} {accept:?}");
        let location = r.header(header::LOCATION);
        assert_eq!(
            location, status.json["audio_urls"][variant],
            "{query} {accept:?}"
        );
        assert_eq!(r.header(header::CACHE_CONTROL), "no-store");
        assert_eq!(r.header(header::VARY), "accept");
    }
    let r = api.get(&format!("{audio}?format=mp3"), &alice).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(r.json["errors"][0]["field"], "format");

    // Only the owner until it is posted; nobody anonymously.
    assert_problem(
        &api.get(&audio, &bob).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let waveform = format!("/v1/media/{media}/waveform");
    assert_problem(
        &api.get(&waveform, &bob).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let anonymous = api.plain(Method::GET, &audio, &[]).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let r = api.get("/v1/media/unknown/audio", &alice).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    let r = api
        .post(
            "/v1/posts",
            &alice,
            json!({"media_id": media, "caption": "hi"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        api.get_raw(&audio, &bob, &[]).await.status,
        StatusCode::FOUND
    );
    assert_eq!(api.get(&waveform, &bob).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_waveform_is_answered_as_json() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let media = clip(&api, &alice).await;
    let r = api
        .get_raw(&format!("/v1/media/{media}/waveform"), &alice, &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header(header::CONTENT_TYPE), "application/json");
    assert_eq!(r.body, waveform_json());

    // A waveform past the cap is a server fault, not a 2 MiB+ answer.
    let huge = api.media(&alice, "ready").await;
    let big = vec![b' '; 2 * 1024 * 1024 + 1];
    api.outputs(&huge, OGG, CAF, WEBM, &big).await;
    let r = api
        .get_raw(&format!("/v1/media/{huge}/waveform"), &alice, &[])
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.body.len() < 1024);
}

#[tokio::test]
async fn media_that_is_not_ready_has_no_urls_and_answers_409() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    for state in ["awaiting_upload", "queued", "processing", "failed"] {
        let id = api.media(&alice, state).await;
        let status = api.get(&format!("/v1/media/{id}"), &alice).await;
        for field in ["audio_url", "audio_urls", "waveform_url", "image_url"] {
            assert_eq!(status.json[field], Value::Null, "{state} {field}");
        }
        for route in ["audio", "waveform"] {
            let r = api.get(&format!("/v1/media/{id}/{route}"), &alice).await;
            assert_problem(&r, StatusCode::CONFLICT, "conflict");
            assert_eq!(r.json["detail"], format!("media is {state}"));
        }
    }
}
