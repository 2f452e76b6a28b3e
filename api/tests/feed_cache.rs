//! The session and feed caches as a user meets them (`SORI_SESSION_CACHE_MS`,
//! `SORI_FEED_CACHE_MS`): your own writes show at once, others' within two
//! lifetimes (a stale page is refreshed behind the reader), a logout takes
//! effect at once, and one viewer's page is never another's.

mod support;

use axum::http::{header, StatusCode};
use serde_json::{json, Value};
use sori_api::core::cache::CacheConfig;
use sori_pipeline::media::{MediaEvent, MediaState};
use std::time::{Duration, Instant};
use support::{Api, User};

async fn cached_api(feed_ttl: Duration) -> Api {
    Api::with(|state| {
        state.with_caches(CacheConfig {
            feed_ttl,
            ..CacheConfig::default()
        })
    })
    .await
}

async fn first_item(api: &Api, who: &User) -> Value {
    let r = api.get("/v1/feed", who).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    r.json["items"][0].clone()
}

#[tokio::test]
async fn your_own_writes_show_in_your_feed_at_once() {
    let api = cached_api(Duration::from_secs(60)).await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    let post = api.ready_post(&bob).await;
    api.follow(&alice, &bob).await;
    assert_eq!(first_item(&api, &alice).await["liked_by_me"], false);

    let r = api.put(&format!("/v1/posts/{post}/like"), &alice).await;
    assert!(r.status.is_success(), "{}", r.json);
    let item = first_item(&api, &alice).await;
    assert_eq!(
        (item["liked_by_me"].clone(), item["like_count"].clone()),
        (json!(true), json!(1))
    );

    let own = api.ready_post(&alice).await;
    assert_eq!(first_item(&api, &alice).await["id"], own.as_str());
    let r = api
        .delete(&format!("/v1/users/{}/follow", bob.id), &alice)
        .await;
    assert!(r.status.is_success(), "{}", r.json);
    assert_eq!(api.feed_ids(&alice).await, [own]);
}

#[tokio::test]
async fn others_posts_appear_within_the_cache_lifetime() {
    let ttl = Duration::from_millis(300);
    let api = cached_api(ttl).await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    api.follow(&alice, &bob).await;
    assert!(api.feed_ids(&alice).await.is_empty());

    let posted = Instant::now();
    let post = api.ready_post(&bob).await;
    loop {
        let ids = api.feed_ids(&alice).await;
        if ids == [post.clone()] {
            break;
        }
        assert!(ids.is_empty(), "{ids:?}");
        assert!(
            posted.elapsed() < ttl * 3,
            "bob's post missing after {:?}",
            posted.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_stale_page_is_served_while_it_refreshes_and_never_past_twice_its_lifetime() {
    let ttl = Duration::from_secs(1);
    let api = cached_api(ttl).await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    api.follow(&alice, &bob).await;

    // Past one lifetime: the old page answers at once, and is read again behind it.
    assert!(api.feed_ids(&alice).await.is_empty());
    let first = api.ready_post(&bob).await;
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert!(api.feed_ids(&alice).await.is_empty(), "stale page expected");
    let refreshed = Instant::now();
    while api.feed_ids(&alice).await != [first.clone()] {
        assert!(refreshed.elapsed() < ttl, "the refresh never landed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Past two lifetimes: never served, the next read goes to the database.
    let second = api.ready_post(&bob).await;
    tokio::time::sleep(ttl * 2 + Duration::from_millis(100)).await;
    assert_eq!(api.feed_ids(&alice).await, [second, first]);
}

#[tokio::test]
async fn one_viewers_page_is_never_served_to_another() {
    let api = cached_api(Duration::from_secs(60)).await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    let a = api.ready_post(&alice).await;
    let b = api.ready_post(&bob).await;
    for _ in 0..2 {
        assert_eq!(api.feed_ids(&alice).await, std::slice::from_ref(&a));
        assert_eq!(api.feed_ids(&bob).await, std::slice::from_ref(&b));
    }
    // Another page of the same viewer is its own entry.
    let second = api.get("/v1/feed?limit=1&cursor=", &alice).await;
    assert_eq!(second.json["items"][0]["id"], a.as_str());
}

#[tokio::test]
async fn a_cached_page_answers_if_none_match_with_304() {
    let api = cached_api(Duration::from_secs(60)).await;
    let alice = api.user("alice").await;
    api.ready_post(&alice).await;
    let first = api.get_raw("/v1/feed", &alice, &[]).await;
    let etag = first.header(header::ETAG);
    let cached = api.get_raw("/v1/feed", &alice, &[]).await;
    assert_eq!(cached.header(header::ETAG), etag);
    let again = api
        .get_raw("/v1/feed", &alice, &[("if-none-match", etag)])
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn logout_refuses_the_token_at_once() {
    let api = cached_api(Duration::from_secs(60)).await;
    let alice = api.user("alice").await;
    assert_eq!(api.get("/v1/me", &alice).await.status, StatusCode::OK);
    let r = api.post("/v1/auth/logout", &alice, Value::Null).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.get("/v1/me", &alice).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.get("/v1/feed", &alice).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_processed_upload_clears_its_owners_cached_feed() {
    let api = cached_api(Duration::from_secs(60)).await;
    let state = &api.state;
    let events = state.media_events.subscribe();
    tokio::spawn(sori_api::core::cache::forget_processed(
        events,
        state.feed_pages.clone(),
    ));

    let alice = api.user("alice").await;
    let media = api.media(&alice, "processing").await;
    let r = api
        .post("/v1/posts", &alice, json!({"media_id": media}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(first_item(&api, &alice).await["state"], "processing");

    api.set_media_state(&media, "ready").await;
    state.media_events.publish(MediaEvent {
        media_id: media.clone(),
        owner_id: alice.id.clone(),
        state: MediaState::Ready,
    });
    let sent = Instant::now();
    while first_item(&api, &alice).await["state"] != "ready" {
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "feed still shows processing"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
