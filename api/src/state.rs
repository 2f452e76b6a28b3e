//! The application state every handler can reach.

use crate::auth::LoginLimiter;
use crate::metrics::Metrics;
use axum::extract::FromRef;
use sori_pipeline::Db;
use std::sync::Arc;

/// Cheap to clone: every field is a handle.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub metrics: Arc<Metrics>,
    /// Absolute base of the URLs the API hands out (`SORI_PUBLIC_URL`), without a trailing slash.
    pub public_url: String,
    /// Failed-login counts per account and client address.
    pub login_limiter: Arc<LoginLimiter>,
}

impl AppState {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            metrics: Arc::new(Metrics::default()),
            public_url: "http://127.0.0.1:8080".to_owned(),
            login_limiter: Arc::new(LoginLimiter::default()),
        }
    }

    /// Sets the base of the URLs handed out (audio URLs in feeds, upload URLs).
    pub fn with_public_url(mut self, url: &str) -> Self {
        self.public_url = url.trim_end_matches('/').to_owned();
        self
    }
}

impl FromRef<AppState> for Db {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}

impl FromRef<AppState> for Arc<Metrics> {
    fn from_ref(state: &AppState) -> Self {
        state.metrics.clone()
    }
}

impl FromRef<AppState> for Arc<LoginLimiter> {
    fn from_ref(state: &AppState) -> Self {
        state.login_limiter.clone()
    }
}
