//! The login throttle under attack: simultaneous guesses, guesses from many
//! addresses, and clients behind a trusted proxy, on the backend
//! `SORI_TEST_DB` names.

mod support;

use axum::http::{Method, StatusCode};
use futures_util::future::join_all;
use serde_json::json;
use sori_api::core::limits::{CreationLimits, LoginLimiter};
use sori_api::core::proxies::TrustedProxies;
use std::sync::Arc;
use std::time::Duration;
use support::{from_address, json_request, Api, Reply};

/// `POST /v1/auth/login` arriving from `peer`, with `X-Forwarded-For: xff` when given.
async fn login(api: &Api, handle: &str, password: &str, peer: &str, xff: Option<&str>) -> Reply {
    let body = json!({"handle": handle, "password": password});
    let mut req = json_request(Method::POST, "/v1/auth/login", None, &body);
    if let Some(xff) = xff {
        req.headers_mut()
            .insert("x-forwarded-for", xff.parse().unwrap());
    }
    api.reply(from_address(req, peer)).await
}

/// How many answers had each status: (401s, 429s); anything else fails.
fn tally(replies: &[Reply]) -> (usize, usize) {
    let mut counts = (0, 0);
    for r in replies {
        match r.status {
            StatusCode::UNAUTHORIZED => counts.0 += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(r.retry_after.is_some(), "429 without Retry-After");
                counts.1 += 1;
            }
            other => panic!("unexpected {other}: {}", r.json),
        }
    }
    counts
}

#[tokio::test]
async fn fifty_simultaneous_guesses_get_no_more_tries_than_five_in_a_row() {
    let api = Api::new().await;
    api.user("target").await;
    let burst = (0..50).map(|i| {
        let guess = format!("guess number {i}");
        let api = &api;
        async move { login(api, "target", &guess, "192.0.2.7:4000", None).await }
    });
    let replies = join_all(burst).await;
    let (checked, refused) = tally(&replies);
    // A 401 is an answer from the password check: at most the per-account
    // limit (5); as they all arrive at once, no more than the in-flight cap.
    assert!(checked <= 5, "{checked} guesses checked");
    assert!(checked >= 1, "no guess was checked");
    assert_eq!(checked + refused, 50);
    // The same burst from 50 addresses fares no better.
    let botnet = (0..50).map(|i| {
        let api = &api;
        async move {
            let peer = format!("198.51.100.{}:4000", i + 1);
            login(api, "target", "guess guess", &peer, None).await
        }
    });
    let (checked_too, _) = tally(&join_all(botnet).await);
    assert!(
        checked + checked_too <= 5,
        "{checked} + {checked_too} guesses checked"
    );
    // The owner, from their own address, still gets in (within a second).
    let owner = "203.0.113.1:5000";
    let mut r = login(&api, "target", "correct horse", owner, None).await;
    if r.status == StatusCode::TOO_MANY_REQUESTS && r.retry_after == Some(1) {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        r = login(&api, "target", "correct horse", owner, None).await;
    }
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}

#[tokio::test]
async fn guessing_cannot_lock_the_owner_out() {
    let api = Api::new().await;
    api.user("famous").await;
    for _ in 0..5 {
        let r = login(&api, "famous", "guess guess", "192.0.2.7:4000", None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // The attacker's address is done with this account for the window.
    let r = login(&api, "famous", "guess guess", "192.0.2.7:4000", None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.retry_after.unwrap() > 800, "{:?}", r.retry_after);
    // The owner waits a second, not the window.
    let owner = "203.0.113.1:5000";
    let r = login(&api, "famous", "correct horse", owner, None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.retry_after, Some(1));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = login(&api, "famous", "correct horse", owner, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_is_limited_on_its_own() {
    let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
    let api = Api::with(|mut s| {
        s.login_limiter = Arc::new(LoginLimiter::new(5, 3, Duration::from_secs(60)));
        s.with_trusted_proxies(proxies)
    })
    .await;
    api.user("olga").await;
    let lb = "10.0.0.2:40000";
    for handle in ["a_1", "a_2", "a_3"] {
        let r = login(&api, handle, "guess guess", lb, Some("192.0.2.7")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // The attacker's address is limited; a forged entry left of it changes nothing.
    let r = login(
        &api,
        "a_4",
        "guess guess",
        lb,
        Some("203.0.113.5, 192.0.2.7"),
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // Everyone else behind the same load balancer is not.
    let r = login(&api, "olga", "correct horse", lb, Some("198.51.100.1")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    // A client that is not a trusted proxy cannot pick an address.
    for n in 0..3 {
        let xff = format!("198.51.100.{}", 10 + n);
        let r = login(&api, "a_5", "guess guess", "192.0.2.99:1", Some(&xff)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = login(
        &api,
        "olga",
        "correct horse",
        "192.0.2.99:1",
        Some("198.51.100.50"),
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn sign_ups_from_one_ipv6_64_share_a_limit() {
    let api = Api::with(|s| s.with_creation_limits(CreationLimits::per_hour(2, 60))).await;
    let signup = |handle: &'static str, from: &'static str| {
        let api = &api;
        async move {
            let body =
                json!({"handle": handle, "password": "correct horse", "display_name": handle});
            let req = json_request(Method::POST, "/v1/auth/signup", None, &body);
            api.reply(from_address(req, from)).await.status
        }
    };
    assert_eq!(
        signup("ann", "[2001:db8:1:2::1]:5000").await,
        StatusCode::CREATED
    );
    assert_eq!(
        signup("bea", "[2001:db8:1:2::2]:5000").await,
        StatusCode::CREATED
    );
    let third = signup("cid", "[2001:db8:1:2:ffff::3]:5000").await;
    assert_eq!(third, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        signup("cid", "[2001:db8:1:3::1]:5000").await,
        StatusCode::CREATED
    );
}
