//! Router tests of the caller's sessions (list, end one, log out
//! everywhere) and of the password change, on the backend `SORI_TEST_DB`
//! names. That an ended session's sockets close is in `chat_ws.rs`.

mod support;

use axum::http::{header, Method, StatusCode};
use serde_json::{json, Value};
use support::{assert_problem, from_address, json_request, Api, Reply, User};

const PASSWORD: &str = "correct horse";

/// Logs `user` in again from `addr` with `user_agent`: a second session.
async fn login_from(api: &Api, user: &User, addr: &str, user_agent: &str) -> User {
    let body = json!({"handle": user.handle, "password": PASSWORD});
    let mut req = json_request(Method::POST, "/v1/auth/login", None, &body);
    req.headers_mut()
        .insert(header::USER_AGENT, user_agent.parse().unwrap());
    let r = api.reply(from_address(req, addr)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    User {
        id: user.id.clone(),
        handle: user.handle.clone(),
        token: r.json["token"].as_str().unwrap().to_owned(),
    }
}

fn items(r: &Reply) -> Vec<Value> {
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    r.json["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_list_shows_each_login_with_its_client_and_which_is_current() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let phone = login_from(
        &api,
        &alice,
        "203.0.113.77:5000",
        "Sori/1.4 (iPhone; iOS 18.1)",
    )
    .await;
    let laptop = login_from(&api, &alice, "[2001:db8:abcd:12::9]:443", "Mozilla/5.0").await;

    let seen = items(&api.get("/v1/me/sessions", &phone).await);
    assert_eq!(seen.len(), 3, "{seen:?}");
    // Newest login first.
    assert_eq!(seen[0]["user_agent"], "Mozilla/5.0");
    assert_eq!(seen[0]["address"], "2001:db8:abcd::/48");
    assert_eq!(seen[1]["user_agent"], "Sori/1.4 (iPhone; iOS 18.1)");
    assert_eq!(seen[1]["address"], "203.0.113.0/24");
    let current: Vec<bool> = seen
        .iter()
        .map(|s| s["current"].as_bool().unwrap())
        .collect();
    assert_eq!(current, [false, true, false]);
    for s in &seen {
        assert!(s["created_at"].as_i64().unwrap() <= s["last_used_at"].as_i64().unwrap());
        assert!(s["expires_at"].as_i64().unwrap() > s["created_at"].as_i64().unwrap());
        assert!(s.get("token_hash").is_none(), "{s}");
    }
    // Nothing of the token itself, in any form.
    let text = api.get("/v1/me/sessions", &laptop).await.json.to_string();
    for token in [&alice.token, &phone.token, &laptop.token] {
        assert!(!text.contains(token.as_str()));
        assert!(!text.contains(&sori_api::core::sessions::token_hash(token)));
    }
    // Paginated like every list.
    let first = api.get("/v1/me/sessions?limit=2", &alice).await;
    assert_eq!(items(&first).len(), 2);
    let cursor = first.json["next_cursor"].as_str().unwrap();
    let rest = api
        .get(&format!("/v1/me/sessions?limit=2&cursor={cursor}"), &alice)
        .await;
    assert_eq!(items(&rest)[0]["id"], seen[2]["id"]);
    assert!(rest.json["next_cursor"].is_null());
    // Another user sees only their own.
    let bob = api.user("bob").await;
    assert_eq!(items(&api.get("/v1/me/sessions", &bob).await).len(), 1);
}

#[tokio::test]
async fn last_use_is_recorded_without_a_write_per_request() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let an_hour_ago = sori_pipeline::clock::now_ms() - 3_600_000;
    sqlx::query("UPDATE auth_tokens SET last_used_at = $1")
        .bind(an_hour_ago)
        .execute(api.t.db.pool())
        .await
        .unwrap();
    assert_eq!(api.get("/v1/me", &alice).await.status, StatusCode::OK);
    let seen = items(&api.get("/v1/me/sessions", &alice).await);
    let last_used = seen[0]["last_used_at"].as_i64().unwrap();
    assert!(last_used > an_hour_ago + 3_000_000, "{last_used}");
    // Within the granularity a request does not write it again.
    let recent = sori_pipeline::clock::now_ms() - 60_000;
    sqlx::query("UPDATE auth_tokens SET last_used_at = $1")
        .bind(recent)
        .execute(api.t.db.pool())
        .await
        .unwrap();
    api.get("/v1/me", &alice).await;
    let seen = items(&api.get("/v1/me/sessions", &alice).await);
    assert_eq!(seen[0]["last_used_at"].as_i64().unwrap(), recent);
}

#[tokio::test]
async fn ending_a_session_revokes_its_token_and_unregisters_its_devices() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let phone = login_from(&api, &alice, "198.51.100.1:1", "phone").await;
    let device = json!({"platform": "webhook", "push_token": "phone-push"});
    let r = api
        .call(
            Method::PUT,
            "/v1/me/devices/phone",
            Some(&phone.token),
            device,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let phone_session = items(&api.get("/v1/me/sessions", &alice).await)
        .into_iter()
        .find(|s| s["user_agent"] == "phone")
        .unwrap();
    let path = format!("/v1/me/sessions/{}", phone_session["id"].as_str().unwrap());

    // Someone else cannot end it, nor learn that it exists.
    let bob = api.user("bob").await;
    assert_problem(
        &api.delete(&path, &bob).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );

    let r = api.delete(&path, &alice).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.json);
    assert_problem(
        &api.get("/v1/me", &phone).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let devices = api.get("/v1/me/devices", &alice).await;
    assert_eq!(devices.json["items"], json!([]));
    assert_eq!(items(&api.get("/v1/me/sessions", &alice).await).len(), 1);
    assert_problem(
        &api.delete(&path, &alice).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    // Ending the current session is a logout.
    let own = items(&api.get("/v1/me/sessions", &alice).await)[0]["id"].clone();
    let r = api
        .delete(
            &format!("/v1/me/sessions/{}", own.as_str().unwrap()),
            &alice,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.get("/v1/me", &alice).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn logging_out_everywhere_ends_every_session_and_only_the_callers() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let phone = login_from(&api, &alice, "198.51.100.1:1", "phone").await;
    let tablet = login_from(&api, &alice, "198.51.100.2:1", "tablet").await;
    let bob = api.user("bob").await;

    let r = api.post("/v1/auth/logout-all", &tablet, Value::Null).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["sessions_ended"], 3);
    for who in [&alice, &phone, &tablet] {
        assert_eq!(
            api.get("/v1/me", who).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(api.get("/v1/me", &bob).await.status, StatusCode::OK);
    // A new login works as before.
    let again = login_from(&api, &alice, "198.51.100.1:1", "phone").await;
    assert_eq!(api.get("/v1/me", &again).await.status, StatusCode::OK);
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_ends_the_other_sessions() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let phone = login_from(&api, &alice, "198.51.100.1:1", "phone").await;

    let wrong = json!({"current_password": "wrong horse", "new_password": "battery staple"});
    let r = api.post("/v1/me/password", &alice, wrong).await;
    assert_problem(&r, StatusCode::FORBIDDEN, "wrong-password");
    // A refused change changes nothing.
    assert_eq!(api.get("/v1/me", &phone).await.status, StatusCode::OK);
    let short = json!({"current_password": PASSWORD, "new_password": "short"});
    let r = api.post("/v1/me/password", &alice, short).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(r.json["errors"][0]["field"], "new_password");

    let change = json!({"current_password": PASSWORD, "new_password": "battery staple"});
    let r = api.post("/v1/me/password", &alice, change).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.json);
    assert_eq!(api.get("/v1/me", &alice).await.status, StatusCode::OK);
    assert_eq!(
        api.get("/v1/me", &phone).await.status,
        StatusCode::UNAUTHORIZED
    );

    let login = |password: &str| json!({"handle": "alice", "password": password});
    let old = api
        .call(Method::POST, "/v1/auth/login", None, login(PASSWORD))
        .await;
    assert_problem(&old, StatusCode::UNAUTHORIZED, "unauthorized");
    let new = api
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            login("battery staple"),
        )
        .await;
    assert_eq!(new.status, StatusCode::OK, "{}", new.json);
}

#[tokio::test]
async fn guessing_the_current_password_with_a_stolen_token_is_throttled() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let mut statuses = Vec::new();
    for i in 0..30 {
        let body =
            json!({"current_password": format!("guess {i}"), "new_password": "battery staple"});
        let r = api.post("/v1/me/password", &alice, body).await;
        statuses.push(r.status.as_u16());
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.retry_after.is_some(), "429 without Retry-After");
            break;
        }
        assert_problem(&r, StatusCode::FORBIDDEN, "wrong-password");
    }
    assert_eq!(statuses.last(), Some(&429), "never throttled: {statuses:?}");
    // The same budget as logins to the account: they are throttled too.
    let body = json!({"handle": "alice", "password": "another guess"});
    let r = api.call(Method::POST, "/v1/auth/login", None, body).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.json);
}

/// Fifty wrong current passwords sent at once with a stolen token get no
/// more checks than the account's login budget (five), and none of them
/// changes the password.
#[tokio::test]
async fn fifty_simultaneous_password_change_guesses_get_five_checks_at_most() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let burst = (0..50).map(|i| {
        let (api, alice) = (&api, &alice);
        let body =
            json!({"current_password": format!("guess {i}"), "new_password": "battery staple"});
        async move { api.post("/v1/me/password", alice, body).await }
    });
    let replies = futures_util::future::join_all(burst).await;
    let checked = replies
        .iter()
        .filter(|r| r.status == StatusCode::FORBIDDEN)
        .count();
    let throttled = replies
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!((1..=5).contains(&checked), "{checked} guesses checked");
    assert_eq!(checked + throttled, 50, "other answers among the burst");
    // No guess changed the password: the new one does not log in.
    let body = json!({"handle": "alice", "password": "battery staple"});
    let r = api.call(Method::POST, "/v1/auth/login", None, body).await;
    assert_ne!(r.status, StatusCode::OK, "a guess changed the password");
}
