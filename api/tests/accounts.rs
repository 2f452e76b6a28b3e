//! Router tests of sign-up, login, logout, profiles, token checks, input
//! validation and the login rate limit, on the backend `SORI_TEST_DB` names.

mod support;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};
use sori_api::core::limits::LoginLimiter;
use std::sync::Arc;
use std::time::Duration;
use support::{from_address, json_request, Api, Reply};

/// `POST /v1/auth/login`, from the client address `from` when given.
async fn login(api: &Api, handle: &str, password: &str, from: Option<&str>) -> Reply {
    let body = json!({"handle": handle, "password": password});
    let req = json_request(Method::POST, "/v1/auth/login", None, &body);
    match from {
        Some(addr) => api.reply(from_address(req, addr)).await,
        None => api.reply(req).await,
    }
}

#[tokio::test]
async fn signup_login_profile_and_logout() {
    let api = Api::new().await;
    let alice = api.user("Alice_1").await;

    let me = api.get("/v1/me", &alice).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json["id"], alice.id.as_str());
    assert_eq!(me.json["handle"], "Alice_1");
    assert_eq!(me.json["bio"], "");

    let body = json!({"display_name": "  Alice Kim ", "bio": "I hum."});
    let patched = api.patch("/v1/me", &alice, body).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.json);
    assert_eq!(patched.json["display_name"], "Alice Kim");
    assert_eq!(patched.json["bio"], "I hum.");
    // Absent fields stay as they are.
    let patched = api
        .patch("/v1/me", &alice, json!({"bio": "Still humming."}))
        .await;
    assert_eq!(patched.json["display_name"], "Alice Kim");

    let bob = api.user("bob").await;
    let profile = api.get(&format!("/v1/users/{}", alice.id), &bob).await;
    assert_eq!(profile.status, StatusCode::OK);
    assert_eq!(profile.json["display_name"], "Alice Kim");
    assert_eq!(profile.json["bio"], "Still humming.");
    assert!(profile.json.get("password_hash").is_none());
    let missing = api.get("/v1/users/nobody", &bob).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.problem(), "not-found");

    // Login is case-insensitive on the handle and gives a second, independent token.
    let session = login(&api, "alice_1", "correct horse", None).await;
    assert_eq!(session.status, StatusCode::OK, "{}", session.json);
    let second = session.json["token"].as_str().unwrap().to_owned();
    assert_ne!(second, alice.token);
    assert_eq!(session.json["user_id"], alice.id.as_str());

    let logout = api.post("/v1/auth/logout", &alice, Value::Null).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    let revoked = api.get("/v1/me", &alice).await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED);
    let again = api.call(Method::GET, "/v1/me", Some(&second), Value::Null);
    assert_eq!(again.await.status, StatusCode::OK);

    let wrong = login(&api, "alice_1", "wrong password", None).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.problem(), "unauthorized");
    let unknown = login(&api, "nobody", "correct horse", None).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn missing_malformed_expired_and_revoked_tokens_are_401() {
    let api = Api::new().await;
    let carol = api.user("carol").await;
    let with_header = |value: &str| {
        let req = Request::get("/v1/me").header(header::AUTHORIZATION, value);
        api.reply(req.body(Body::empty()).unwrap())
    };
    let well_formed_unknown = "A".repeat(43);
    let cases = [
        api.get_anonymous("/v1/me").await,
        with_header("Bearer").await,
        with_header("Bearer not-a-token").await,
        with_header(&format!("Basic {}", carol.token)).await,
        api.call(
            Method::GET,
            "/v1/me",
            Some(&well_formed_unknown),
            Value::Null,
        )
        .await,
    ];
    for reply in &cases {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.json);
        assert_eq!(reply.problem(), "unauthorized");
        assert_eq!(reply.headers[header::WWW_AUTHENTICATE], "Bearer");
    }
    // Every route but sign-up, login, health and docs needs a token.
    for path in [
        "/v1/feed",
        "/v1/explore",
        &format!("/v1/users/{}", carol.id),
        "/v1/posts/x",
    ] {
        assert_eq!(
            api.get_anonymous(path).await.status,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }

    assert_eq!(api.get("/v1/me", &carol).await.status, StatusCode::OK);
    sqlx::query("UPDATE auth_tokens SET expires_at = $1 WHERE user_id = $2")
        .bind(1_i64)
        .bind(&carol.id)
        .execute(api.t.db.pool())
        .await
        .unwrap();
    let expired = api.get("/v1/me", &carol).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(expired.json["detail"], "token expired");
}

#[tokio::test]
async fn tokens_are_stored_hashed() {
    let api = Api::new().await;
    let dave = api.user("dave").await;
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT token_hash FROM auth_tokens WHERE user_id = $1")
            .bind(&dave.id)
            .fetch_all(api.t.db.pool())
            .await
            .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], dave.token);
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(&dave.id)
        .fetch_one(api.t.db.pool())
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
}

#[tokio::test]
async fn handles_are_unique_ignoring_case() {
    let api = Api::new().await;
    api.user("erin").await;
    let dup = api
        .call(
            Method::POST,
            "/v1/auth/signup",
            None,
            json!({"handle": "ERIN", "password": "another pass", "display_name": "E"}),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(dup.problem(), "conflict");
}

#[tokio::test]
async fn invalid_input_is_422_naming_each_field() {
    let api = Api::new().await;
    let signup = |body: Value| api.call(Method::POST, "/v1/auth/signup", None, body);
    let r = signup(json!({"handle": "a b", "password": "short", "display_name": ""})).await;
    assert_eq!(r.fields(), ["handle", "password", "display_name"]);
    let r = signup(json!({"handle": "ok_handle", "password": "long enough", "display_name": "x", "admin": true})).await;
    assert_eq!(r.fields(), ["admin"]);
    let r = signup(json!({"handle": 5, "password": "long enough", "display_name": "x"})).await;
    assert_eq!(r.fields(), ["handle"]);
    let r = signup(json!({"handle": "ok_handle", "display_name": "x"})).await;
    assert_eq!(r.fields(), ["password"]);
    let too_long = "x".repeat(201);
    let r = signup(json!({"handle": "ok_handle", "password": too_long, "display_name": "x"})).await;
    assert_eq!(r.fields(), ["password"]);

    let frank = api.user("frank").await;
    let r = api
        .patch("/v1/me", &frank, json!({"bio": "b".repeat(301)}))
        .await;
    assert_eq!(r.fields(), ["bio"]);
    let r = api.patch("/v1/me", &frank, json!({"handle": "new"})).await;
    assert_eq!(r.fields(), ["handle"]);
}

#[tokio::test]
async fn bodies_must_be_small_well_formed_json() {
    let api = Api::new().await;
    let raw = |content_type: &'static str, body: Vec<u8>| {
        let signup = "/v1/auth/signup";
        api.call_raw(Method::POST, signup, None, Some(content_type), body)
    };
    let r = raw("text/plain", b"{}".to_vec()).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.problem(), "unsupported-media-type");
    let r = raw("application/json", b"{\"handle\":".to_vec()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.problem(), "bad-request");
    let big = format!(r#"{{"handle":"{}"}}"#, "h".repeat(70 * 1024));
    let r = raw("application/json", big.into_bytes()).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.problem(), "payload-too-large");
}

#[tokio::test]
async fn repeated_bad_logins_are_429_with_retry_after() {
    let api = Api::new().await;
    api.user("grace").await;
    for _ in 0..5 {
        let r = login(&api, "grace", "wrong password", None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // Now even the right password waits: the account is locked for the window.
    let r = login(&api, "GRACE", "correct horse", None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.problem(), "too-many-requests");
    let retry = r.retry_after.expect("Retry-After");
    assert!((1..=900).contains(&retry), "{retry}");
    // Another account is unaffected.
    api.user("heidi").await;
    assert_eq!(
        login(&api, "heidi", "correct horse", None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn one_address_guessing_many_accounts_is_limited() {
    let api = Api::with(|mut s| {
        s.login_limiter = Arc::new(LoginLimiter::new(5, 3, Duration::from_secs(60)));
        s
    })
    .await;
    api.user("ivan").await;
    let attacker = "192.0.2.7:5000";
    let other = "198.51.100.1:6000";
    for handle in ["a_1", "a_2", "a_3"] {
        let r = login(&api, handle, "guess guess", Some(attacker)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = login(&api, "ivan", "correct horse", Some(attacker)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    let r = login(&api, "ivan", "correct horse", Some(other)).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn openapi_documents_the_account_routes_and_bearer_scheme() {
    let api = Api::new().await;
    let doc = api.openapi().await;
    for path in [
        "/v1/auth/signup",
        "/v1/auth/login",
        "/v1/auth/logout",
        "/v1/me",
        "/v1/users/{id}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc["paths"]["/v1/me"]["patch"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["paths"]["/v1/me"]["get"]["security"][0]["bearer"].is_array());
    let login_responses = &doc["paths"]["/v1/auth/login"]["post"]["responses"];
    assert!(login_responses["429"]["content"]["application/problem+json"].is_object());
    assert!(doc["components"]["schemas"]["Problem"].is_object());
}
