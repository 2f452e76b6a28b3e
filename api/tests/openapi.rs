//! The OpenAPI document covers every route the router serves, and documents
//! nothing the router does not serve.
//!
//! axum cannot list its routes, so [`ROUTES`] is the inventory: each entry is
//! checked against the router (a request without credentials must reach a
//! handler, not the 404 fallback or a 405) and the set is checked against the
//! document's operations in both directions. A new route therefore fails
//! this test until it is both documented and listed here.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::Value;
use std::collections::BTreeSet;
use support::{operations, Api};

/// Every API route as `(method, OpenAPI path)`; `{param}` segments are
/// filled in when the route is exercised.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("post", "/v1/auth/signup"),
    ("post", "/v1/auth/login"),
    ("post", "/v1/auth/logout"),
    ("get", "/v1/me"),
    ("patch", "/v1/me"),
    ("delete", "/v1/me"),
    ("get", "/v1/me/sessions"),
    ("delete", "/v1/me/sessions/{id}"),
    ("post", "/v1/auth/logout-all"),
    ("post", "/v1/me/password"),
    ("put", "/v1/me/avatar"),
    ("delete", "/v1/me/avatar"),
    ("post", "/v1/me/export"),
    ("get", "/v1/me/export"),
    ("put", "/v1/me/email"),
    ("post", "/v1/me/email/verify"),
    ("post", "/v1/auth/password-reset"),
    ("post", "/v1/auth/password-reset/confirm"),
    ("get", "/v1/users/{id}"),
    ("post", "/v1/posts"),
    ("get", "/v1/posts/{id}"),
    ("patch", "/v1/posts/{id}"),
    ("delete", "/v1/posts/{id}"),
    ("get", "/v1/feed"),
    ("get", "/v1/explore"),
    ("get", "/v1/users/{id}/posts"),
    ("post", "/v1/media"),
    ("post", "/v1/media/{id}/complete"),
    ("get", "/v1/media/{id}"),
    ("get", "/v1/media/{id}/audio"),
    ("get", "/v1/media/{id}/waveform"),
    ("put", "/v1/users/{id}/follow"),
    ("delete", "/v1/users/{id}/follow"),
    ("get", "/v1/users/{id}/followers"),
    ("get", "/v1/users/{id}/following"),
    ("get", "/v1/me/follow-requests"),
    ("get", "/v1/me/notification-settings"),
    ("put", "/v1/me/notification-settings"),
    ("post", "/v1/me/follow-requests/{user_id}/approve"),
    ("post", "/v1/me/follow-requests/{user_id}/decline"),
    ("put", "/v1/posts/{id}/like"),
    ("delete", "/v1/posts/{id}/like"),
    ("get", "/v1/posts/{id}/comments"),
    ("post", "/v1/posts/{id}/comments"),
    ("delete", "/v1/comments/{id}"),
    ("put", "/v1/users/{id}/block"),
    ("delete", "/v1/users/{id}/block"),
    ("get", "/v1/me/blocks"),
    ("put", "/v1/users/{id}/mute"),
    ("delete", "/v1/users/{id}/mute"),
    ("get", "/v1/me/mutes"),
    ("post", "/v1/reports"),
    ("get", "/v1/reports"),
    ("post", "/v1/reports/{id}/resolve"),
    ("get", "/v1/search"),
    ("post", "/v1/posts/{id}/plays"),
    ("get", "/v1/notifications"),
    ("post", "/v1/notifications/read"),
    ("delete", "/v1/notifications/{id}"),
    ("get", "/v1/admin/audit"),
    ("post", "/v1/admin/restore"),
    ("post", "/v1/admin/announcements"),
    ("get", "/v1/blobs/{key}"),
    ("put", "/v1/blobs/{key}"),
    ("post", "/v1/playlists"),
    ("get", "/v1/playlists/{id}"),
    ("patch", "/v1/playlists/{id}"),
    ("delete", "/v1/playlists/{id}"),
    ("post", "/v1/playlists/{id}/items"),
    ("put", "/v1/playlists/{id}/items"),
    ("delete", "/v1/playlists/{id}/items/{post_id}"),
    ("get", "/v1/users/{id}/playlists"),
    ("get", "/v1/media/{id}/original"),
    ("post", "/v1/chats"),
    ("get", "/v1/chats"),
    ("get", "/v1/chats/{id}/messages"),
    ("post", "/v1/chats/{id}/messages"),
    ("patch", "/v1/chats/{id}/messages/{message_id}"),
    ("delete", "/v1/chats/{id}/messages/{message_id}"),
    ("post", "/v1/chats/{id}/read"),
    ("get", "/v1/users/{id}/presence"),
    ("get", "/v1/ws"),
    ("post", "/v1/ws/ticket"),
    ("put", "/v1/me/devices/{device_id}"),
    ("delete", "/v1/me/devices/{device_id}"),
    ("get", "/v1/me/devices"),
];

/// Routes served but deliberately outside the document: the document itself and its UI.
const UNDOCUMENTED: &[(&str, &str)] = &[("get", "/openapi.json"), ("get", "/docs/")];

/// `/v1/users/{id}/posts` → `/v1/users/x/posts`.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "x"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The status of `method path` (placeholders filled) with no token.
async fn status(api: &Api, method: &str, path: &str) -> StatusCode {
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
    api.plain(method, &concrete(path), &[]).await.status
}

#[tokio::test]
async fn every_listed_route_is_served() {
    let api = Api::new().await;
    for (method, path) in ROUTES.iter().chain(UNDOCUMENTED) {
        let s = status(&api, method, path).await;
        assert!(
            s != StatusCode::NOT_FOUND && s != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is not routed ({s})"
        );
    }
    // The check can fail: an unknown path reaches the fallback.
    assert_eq!(
        status(&api, "get", "/v1/nothing-here").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status(&api, "patch", "/v1/feed").await,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn the_document_covers_exactly_the_routes() {
    let api = Api::new().await;
    let doc = api.openapi().await;
    let documented = operations(&doc);
    let listed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let undocumented: Vec<_> = listed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "served, not documented: {undocumented:?}"
    );
    let unlisted: Vec<_> = documented.difference(&listed).collect();
    assert!(
        unlisted.is_empty(),
        "documented but not in ROUTES (add them, so they are checked): {unlisted:?}"
    );
}

#[tokio::test]
async fn every_operation_documents_its_errors_and_security() {
    let api = Api::new().await;
    let doc = api.openapi().await;
    let public = [
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/auth/signup",
        "/v1/auth/login",
        "/v1/auth/password-reset",
        "/v1/auth/password-reset/confirm",
        "/v1/blobs/{key}",
    ];
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][&method];
        let responses = op["responses"].as_object().unwrap();
        assert!(!responses.is_empty(), "{method} {path}: no responses");
        let bearer = op["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
        if public.contains(&path.as_str()) {
            assert!(!bearer, "{method} {path} should not need a token");
        } else {
            assert!(bearer, "{method} {path} lacks its bearer security");
            assert!(responses.contains_key("401"), "{method} {path} lacks 401");
        }
    }
}

#[tokio::test]
async fn the_blob_routes_document_their_signature() {
    let api = Api::new().await;
    let doc = api.openapi().await;
    for method in ["get", "put"] {
        let op = &doc["paths"]["/v1/blobs/{key}"][method];
        let params: BTreeSet<(&str, &str)> = op["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("{method}: no parameters"))
            .iter()
            .map(|p| (p["name"].as_str().unwrap(), p["in"].as_str().unwrap()))
            .collect();
        for expected in [("key", "path"), ("expires", "query"), ("sig", "query")] {
            assert!(
                params.contains(&expected),
                "{method}: {expected:?} in {params:?}"
            );
        }
        for status in ["400", "403", "404"] {
            let response = &op["responses"][status];
            assert!(
                response["content"]["application/problem+json"].is_object(),
                "{method} {status}: {response}"
            );
        }
    }
    let get = &doc["paths"]["/v1/blobs/{key}"]["get"]["responses"];
    assert!(get["206"].is_object() && get["416"].is_object());
    let put = &doc["paths"]["/v1/blobs/{key}"]["put"]["responses"];
    assert!(put["201"].is_object() && put["413"].is_object());
}

/// Every URL field a client may hand to a player is documented with what it
/// grants and how long it lives; the creating POSTs document `Idempotency-Key`.
#[tokio::test]
async fn media_urls_and_idempotency_keys_are_documented() {
    let api = Api::new().await;
    let doc = api.openapi().await;
    let schemas = &doc["components"]["schemas"];
    // A field's schema, which must carry a description (an optional
    // reference carries it beside the `$ref`).
    let described = |schema: &str, field: &str| {
        let parts = schemas[schema]["allOf"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let text = std::iter::once(&schemas[schema])
            .chain(parts.iter())
            .map(|part| &part["properties"][field])
            .find(|p| !p.is_null())
            .unwrap_or(&Value::Null)
            .to_string();
        assert!(
            text.contains("\"description\""),
            "{schema}.{field} undocumented: {text}"
        );
        text
    };
    // The clip URLs, in one schema every item with a clip includes.
    let clip = schemas["ClipUrls"]["description"].as_str().unwrap();
    for words in [
        "GET",
        "HEAD",
        "SORI_MEDIA_URL_TTL_SECS",
        "403",
        "Authorization",
    ] {
        assert!(clip.contains(words), "ClipUrls: {words} in {clip}");
    }
    for field in ["audio_url", "audio_urls", "waveform_url"] {
        described("ClipUrls", field);
    }
    for schema in ["PostItem", "CommentItem", "Voice", "MediaStatus"] {
        let all_of = schemas[schema]["allOf"].to_string();
        assert!(
            all_of.contains("ClipUrls"),
            "{schema} lacks the clip URLs: {all_of}"
        );
    }
    for (schema, field) in [("Image", "image_url"), ("MediaStatus", "image_url")] {
        let text = described(schema, field);
        assert!(
            text.contains("SORI_MEDIA_URL_TTL_SECS"),
            "{schema}.{field}: {text}"
        );
    }
    for path in [
        "/v1/posts",
        "/v1/posts/{id}/comments",
        "/v1/chats/{id}/messages",
        "/v1/media",
    ] {
        let op = &doc["paths"][path]["post"];
        let key = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "Idempotency-Key")
            .unwrap_or_else(|| panic!("POST {path}: no Idempotency-Key"));
        assert_eq!(key["in"], "header");
        assert!(op["responses"]["409"].is_object(), "POST {path}: 409");
        assert!(op["responses"]["422"].is_object(), "POST {path}: 422");
    }
}
