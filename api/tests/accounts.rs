//! Router tests of sign-up, login, logout, profiles, token checks, input
//! validation and the login rate limit, on the backend `SORI_TEST_DB` names.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sori_api::core::limits::LoginLimiter;
use sori_api::{app, AppState};
use sori_pipeline::db::testing::{fresh_db, TestDb};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

struct Api {
    app: Router,
    t: TestDb,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
}

impl Reply {
    /// The problem `type`'s last segment, after checking the content type.
    fn problem(&self) -> &str {
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/problem+json",
            "{}",
            self.json
        );
        assert_eq!(self.json["status"], self.status.as_u16());
        self.json["type"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
    }

    /// The fields a 422 names.
    fn fields(&self) -> Vec<String> {
        assert_eq!(
            self.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            self.json
        );
        assert_eq!(self.problem(), "validation");
        self.json["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_owned())
            .collect()
    }
}

impl Api {
    async fn new() -> Self {
        Self::with(|s| s).await
    }

    async fn with(configure: impl FnOnce(AppState) -> AppState) -> Self {
        let t = fresh_db().await;
        let app = app(configure(AppState::new(t.db.clone())));
        Self { app, t }
    }

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

    fn request(method: Method, path: &str, token: Option<&str>) -> axum::http::request::Builder {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        builder
    }

    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Value) -> Reply {
        let req = Self::request(method, path, token)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        self.send(req).await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let req = Self::request(Method::GET, path, token)
            .body(Body::empty())
            .unwrap();
        self.send(req).await
    }

    async fn signup(&self, handle: &str) -> (String, String) {
        let r = self
            .call(
                Method::POST,
                "/v1/auth/signup",
                None,
                json!({"handle": handle, "password": "correct horse", "display_name": handle}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        (
            r.json["token"].as_str().unwrap().to_owned(),
            r.json["user_id"].as_str().unwrap().to_owned(),
        )
    }

    async fn login(&self, handle: &str, password: &str, from: Option<SocketAddr>) -> Reply {
        let mut req = Self::request(Method::POST, "/v1/auth/login", None)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"handle": handle, "password": password}).to_string(),
            ))
            .unwrap();
        if let Some(addr) = from {
            req.extensions_mut().insert(ConnectInfo(addr));
        }
        self.send(req).await
    }
}

#[tokio::test]
async fn signup_login_profile_and_logout() {
    let api = Api::new().await;
    let (token, id) = api.signup("Alice_1").await;

    let me = api.get("/v1/me", Some(&token)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json["id"], id.as_str());
    assert_eq!(me.json["handle"], "Alice_1");
    assert_eq!(me.json["bio"], "");

    let patched = api
        .call(
            Method::PATCH,
            "/v1/me",
            Some(&token),
            json!({"display_name": "  Alice Kim ", "bio": "I hum."}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.json);
    assert_eq!(patched.json["display_name"], "Alice Kim");
    assert_eq!(patched.json["bio"], "I hum.");
    // Absent fields stay as they are.
    let patched = api
        .call(
            Method::PATCH,
            "/v1/me",
            Some(&token),
            json!({"bio": "Still humming."}),
        )
        .await;
    assert_eq!(patched.json["display_name"], "Alice Kim");

    let (bob, _) = api.signup("bob").await;
    let profile = api.get(&format!("/v1/users/{id}"), Some(&bob)).await;
    assert_eq!(profile.status, StatusCode::OK);
    assert_eq!(profile.json["display_name"], "Alice Kim");
    assert_eq!(profile.json["bio"], "Still humming.");
    assert!(profile.json.get("password_hash").is_none());
    let missing = api.get("/v1/users/nobody", Some(&bob)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.problem(), "not-found");

    // Login is case-insensitive on the handle and gives a second, independent token.
    let login = api.login("alice_1", "correct horse", None).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.json);
    let second = login.json["token"].as_str().unwrap().to_owned();
    assert_ne!(second, token);
    assert_eq!(login.json["user_id"], id.as_str());

    let logout = api
        .send(
            Api::request(Method::POST, "/v1/auth/logout", Some(&token))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    let revoked = api.get("/v1/me", Some(&token)).await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        api.get("/v1/me", Some(&second)).await.status,
        StatusCode::OK
    );

    let wrong = api.login("alice_1", "wrong password", None).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.problem(), "unauthorized");
    let unknown = api.login("nobody", "correct horse", None).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn missing_malformed_expired_and_revoked_tokens_are_401() {
    let api = Api::new().await;
    let (token, id) = api.signup("carol").await;
    let with_header = |value: &str| {
        Request::get("/v1/me")
            .header(header::AUTHORIZATION, value)
            .body(Body::empty())
            .unwrap()
    };
    let well_formed_unknown = "A".repeat(43);
    let cases = [
        api.get("/v1/me", None).await,
        api.send(with_header("Bearer")).await,
        api.send(with_header("Bearer not-a-token")).await,
        api.send(with_header(&format!("Basic {token}"))).await,
        api.get("/v1/me", Some(&well_formed_unknown)).await,
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
        &format!("/v1/users/{id}"),
        "/v1/posts/x",
    ] {
        assert_eq!(
            api.get(path, None).await.status,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }

    assert_eq!(api.get("/v1/me", Some(&token)).await.status, StatusCode::OK);
    sqlx::query("UPDATE auth_tokens SET expires_at = $1 WHERE user_id = $2")
        .bind(1_i64)
        .bind(&id)
        .execute(api.t.db.pool())
        .await
        .unwrap();
    let expired = api.get("/v1/me", Some(&token)).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(expired.json["detail"], "token expired");
}

#[tokio::test]
async fn tokens_are_stored_hashed() {
    let api = Api::new().await;
    let (token, id) = api.signup("dave").await;
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT token_hash FROM auth_tokens WHERE user_id = $1")
            .bind(&id)
            .fetch_all(api.t.db.pool())
            .await
            .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], token);
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(&id)
        .fetch_one(api.t.db.pool())
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
}

#[tokio::test]
async fn handles_are_unique_ignoring_case() {
    let api = Api::new().await;
    api.signup("erin").await;
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

    let (token, _) = api.signup("frank").await;
    let r = api
        .call(
            Method::PATCH,
            "/v1/me",
            Some(&token),
            json!({"bio": "b".repeat(301)}),
        )
        .await;
    assert_eq!(r.fields(), ["bio"]);
    let r = api
        .call(
            Method::PATCH,
            "/v1/me",
            Some(&token),
            json!({"handle": "new"}),
        )
        .await;
    assert_eq!(r.fields(), ["handle"]);
}

#[tokio::test]
async fn bodies_must_be_small_well_formed_json() {
    let api = Api::new().await;
    let raw = |content_type: &str, body: Vec<u8>| {
        Request::post("/v1/auth/signup")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap()
    };
    let r = api.send(raw("text/plain", b"{}".to_vec())).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.problem(), "unsupported-media-type");
    let r = api
        .send(raw("application/json", b"{\"handle\":".to_vec()))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.problem(), "bad-request");
    let big = format!(r#"{{"handle":"{}"}}"#, "h".repeat(70 * 1024));
    let r = api.send(raw("application/json", big.into_bytes())).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.problem(), "payload-too-large");
}

#[tokio::test]
async fn repeated_bad_logins_are_429_with_retry_after() {
    let api = Api::new().await;
    api.signup("grace").await;
    for _ in 0..5 {
        let r = api.login("grace", "wrong password", None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // Now even the right password waits: the account is locked for the window.
    let r = api.login("GRACE", "correct horse", None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.problem(), "too-many-requests");
    let retry: u64 = r.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    // Another account is unaffected.
    api.signup("heidi").await;
    assert_eq!(
        api.login("heidi", "correct horse", None).await.status,
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
    api.signup("ivan").await;
    let attacker: SocketAddr = "192.0.2.7:5000".parse().unwrap();
    let other: SocketAddr = "198.51.100.1:6000".parse().unwrap();
    for handle in ["a_1", "a_2", "a_3"] {
        let r = api.login(handle, "guess guess", Some(attacker)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = api.login("ivan", "correct horse", Some(attacker)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    let r = api.login("ivan", "correct horse", Some(other)).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn openapi_documents_the_account_routes_and_bearer_scheme() {
    let api = Api::new().await;
    let doc = api.get("/openapi.json", None).await.json;
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
