//! Router tests of the operations endpoints, on the backend `SORI_TEST_DB` names.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use sori_api::{app, AppState};
use sori_pipeline::db::testing::{fresh_db, fresh_unmigrated_db};
use tower::ServiceExt;

async fn get(app: Router, path: &str) -> (StatusCode, String, String) {
    let response = app
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn healthz_answers_ok() {
    let t = fresh_db().await;
    let (status, _, body) = get(app(AppState::new(t.db.clone())), "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, r#"{"status":"ok"}"#);
}

#[tokio::test]
async fn readyz_is_ok_once_migrated() {
    let t = fresh_db().await;
    let (status, _, _) = get(app(AppState::new(t.db.clone())), "/readyz").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn readyz_refuses_while_migrations_are_pending() {
    let t = fresh_unmigrated_db().await;
    let (status, content_type, body) = get(app(AppState::new(t.db.clone())), "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(content_type, "application/problem+json");
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["status"], 503);
    assert!(problem["type"].as_str().unwrap().ends_with("/unavailable"));
}

#[tokio::test]
async fn metrics_count_requests_by_route() {
    let t = fresh_db().await;
    let app = app(AppState::new(t.db.clone()));
    get(app.clone(), "/healthz").await;
    let (status, content_type, body) = get(app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/plain"));
    assert!(
        body.contains(r#"sori_http_requests_total{method="GET",route="/healthz",status="200"} 1"#),
        "{body}"
    );
}

/// With a metrics token set, only its bearer reads `/metrics`; a user's
/// token or a near miss gets the 401 problem.
#[tokio::test]
async fn a_metrics_token_guards_the_metrics() {
    let t = fresh_db().await;
    let app = app(AppState::new(t.db.clone()).with_metrics_token(Some("scrape-secret")));
    let with = |authorization: Option<&str>| {
        let mut request = Request::get("/metrics");
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        app.clone().oneshot(request.body(Body::empty()).unwrap())
    };
    for refused in [
        None,
        Some("Bearer scrape-secre"),
        Some("Basic scrape-secret"),
    ] {
        let response = with(refused).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{refused:?}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    let response = with(Some("Bearer scrape-secret")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("sori_http_requests_total"));
}

#[tokio::test]
async fn openapi_documents_every_route_and_docs_are_served_offline() {
    let t = fresh_db().await;
    let app = app(AppState::new(t.db.clone()));
    let (status, _, body) = get(app.clone(), "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from OpenAPI"
        );
    }
    let (status, _, html) = get(app.clone(), "/docs/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("swagger-ui"));
    // The UI's assets come from this server, not a CDN.
    let (status, _, js) = get(app, "/docs/swagger-ui-bundle.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(js.len() > 100_000);
    assert!(
        !html.contains("https://"),
        "docs page must not load from a CDN"
    );
}

#[tokio::test]
async fn unknown_routes_are_404_with_a_request_id() {
    let t = fresh_db().await;
    let response = app(AppState::new(t.db.clone()))
        .oneshot(Request::get("/nope").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}
