//! Sori's HTTP API: one axum [`Router`] built by [`app`], served by [`serve`].
//!
//! Each resource lives in its own module exporting its routes; they are
//! merged here, documented by OpenAPI (`/openapi.json`, `/docs`).

pub mod error;
pub mod metrics;
pub mod ops;
pub mod state;

use axum::http::{HeaderName, Request};
use axum::Router;
use std::future::Future;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

pub use error::ApiError;
pub use state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sori API",
        description = "Voice posts, feeds, social actions, chat and playlists."
    ),
    tags((name = "ops", description = "Health, readiness and metrics"))
)]
struct ApiDoc;

/// The whole HTTP application: routes, OpenAPI document and docs UI, request ids and tracing.
pub fn app(state: AppState) -> Router {
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(ops::router())
        .split_for_parts();
    router
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .fallback(|| async { ApiError::NotFound })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track_requests,
        ))
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

/// Serves [`app`] on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
