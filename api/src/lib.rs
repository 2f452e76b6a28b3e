//! Sori's HTTP API: one axum [`Router`] built by [`app`], served by [`serve`].
//!
//! Each resource lives in its own module exporting its routes; they are
//! merged here, documented by OpenAPI (`/openapi.json`, `/docs`).
//!
//! The modules form layers, each importing only the ones below it
//! (`api/tests/module_layers.rs` fails on a cycle or an upward import):
//!
//! 1. [`core`]: state, errors, extractors, sessions, limits, caches,
//!    metrics, pagination, validation, HTTP layers, real-time plumbing;
//! 2. [`model`]: the read models and visibility rules resources share;
//! 3. [`effects`]: side effects across resources (notifications, push,
//!    chat events), called with the acting resource's transaction;
//! 4. the resources (accounts, posts, feed, social, chat, realtime, push,
//!    playlists, media, blobs, ops, cleanup, and the embedded web app), which
//!    never import each other;
//! 5. this module, which assembles the router.

pub mod core;
pub mod effects;
pub mod model;

pub mod accounts;
pub mod blobs;
pub mod chat;
pub mod cleanup;
pub mod feed;
pub mod mail;
pub mod media;
pub mod ops;
pub mod playlists;
pub mod posts;
pub mod push;
pub mod realtime;
pub mod social;
pub mod webapp;

use axum::http::{HeaderName, Request};
use axum::Router;
use core::server::ServerLimits;
use std::future::Future;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::core::error::problem_response;
pub use crate::core::error::ApiError;
pub use crate::core::state::AppState;
use crate::core::{cache, http, idempotency, metrics};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sori API",
        description = "Voice posts, feeds, social actions, chat and playlists."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "ops", description = "Health, readiness and metrics"),
        (name = "accounts", description = "Sign-up, login, logout and profiles"),
        (name = "posts", description = "Voice posts"),
        (name = "media", description = "Voice uploads through signed URLs, processing state, playback"),
        (name = "feed", description = "Feed, explore and profile timelines, keyset-paginated"),
        (name = "chat", description = "1:1 rooms, messages, read markers, presence and the event socket"),
        (name = "blobs", description = "The embedded store's signed upload and download URLs (no bearer token)"),
        (name = "playlists", description = "Ordered lists of voice posts, public or private"),
        (name = "social", description = "Follows, likes, comments, blocks, reports, search, plays and notifications"),
        (name = "push", description = "The caller's devices and their push tokens"),
    )
)]
struct ApiDoc;

/// Declares the `bearer` security scheme the authenticated routes name.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Documents the problems that happen before a handler runs, on every
/// operation they can happen to, so a new route gets them without repeating
/// them: for a JSON request body ([`core::validation::JsonBody`],
/// [`http::limit_body`]) 400 for broken syntax, 413 past the limit, 415
/// without a JSON content type, 422 naming the field for wrong types,
/// unknown and missing fields; for a path parameter, 404 when it names
/// nothing (also [`http::refuse_unreadable_paths`]).
struct InputProblems;

impl Modify for InputProblems {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        let body_problems = [
            ("400", "Malformed JSON"),
            ("413", "Body larger than 64 KiB"),
            ("415", "Content-Type is not application/json"),
            ("422", "A field is missing, unknown or of the wrong type"),
        ];
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                let takes_json = op
                    .request_body
                    .as_ref()
                    .is_some_and(|b| b.content.contains_key("application/json"));
                let has_path_param = op
                    .parameters
                    .iter()
                    .flatten()
                    .any(|p| p.parameter_in == ParameterIn::Path);
                let mut add = |status: &str, description: &str| {
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| problem_response(description));
                };
                if takes_json {
                    for (status, description) in body_problems {
                        add(status, description);
                    }
                }
                if has_path_param {
                    add("404", "Nothing has this id");
                }
            }
        }
    }
}

/// The whole HTTP application with the default [`http::HttpConfig`] (no cross-origin callers).
pub fn app(state: AppState) -> Router {
    app_with(state, &http::HttpConfig::default())
}

/// The whole HTTP application: routes, OpenAPI document and docs UI, request
/// ids and tracing, and the cross-cutting layers of [`http`] (CORS,
/// compression, ETags, body limit).
pub fn app_with(state: AppState, config: &http::HttpConfig) -> Router {
    let (router, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(ops::router())
        .merge(accounts::router())
        .merge(posts::router())
        .merge(feed::router())
        .merge(media::router())
        .merge(blobs::router())
        .merge(social::router())
        .merge(playlists::router())
        .merge(chat::router())
        .merge(realtime::presence::router())
        .merge(realtime::socket::router())
        .merge(push::router())
        .split_for_parts();
    InputProblems.modify(&mut openapi);
    idempotency::Documented.modify(&mut openapi);
    router
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .merge(webapp::router())
        .fallback(|| async { ApiError::NotFound })
        .layer(axum::middleware::from_fn(http::limit_body))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::layer,
        ))
        .layer(axum::middleware::from_fn(http::refuse_unreadable_paths))
        .layer(axum::middleware::from_fn(http::etag))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            cache::forget_writer::<AppState>,
        ))
        .layer(axum::middleware::from_fn_with_state(
            config.request_timeout(),
            http::time_limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track_requests,
        ))
        .layer(http::compression_layer())
        .layer(tower::util::option_layer(http::cors_layer(config)))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let request_id = req
                        .headers()
                        .get(&REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    // The path only: query strings may carry tokens and are never logged.
                    tracing::info_span!(
                        "http",
                        method = %req.method(),
                        path = %req.uri().path(),
                        request_id = %request_id,
                    )
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

/// The operations endpoints only (`/healthz`, `/readyz`, `/metrics`): what a
/// `sori worker` serves, so it can be probed and scraped without exposing the API.
pub fn ops_app(state: AppState) -> Router {
    let (router, _) = OpenApiRouter::new().merge(ops::router()).split_for_parts();
    router.with_state(state)
}

/// Serves any router (e.g. [`ops_app`]) until `shutdown` resolves, with the
/// header, idle and connection `limits` of [`core::server`].
pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    disable_nagle(&listener);
    core::server::serve(listener, router, limits, shutdown).await
}

/// Accepted connections send each write at once. With Nagle's algorithm on,
/// a small write (a WebSocket event, the end of an answer) waits while an
/// earlier one is unacknowledged, and the peer delays its ACK by up to 40 ms:
/// under chat load that put a few percent of deliveries 40 ms late. Set on
/// the listening socket, as accepted sockets inherit it (Linux and the BSDs).
fn disable_nagle(listener: &TcpListener) {
    if let Err(e) = socket2::SockRef::from(listener).set_tcp_nodelay(true) {
        tracing::warn!(error = %e, "cannot set TCP_NODELAY on the listener");
    }
}

/// Serves [`app`] on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(listener, app(state), ServerLimits::default(), shutdown).await
}
