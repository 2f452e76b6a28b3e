//! The application state every handler can reach.

use crate::metrics::Metrics;
use axum::extract::FromRef;
use sori_pipeline::Db;
use std::sync::Arc;

/// Cheap to clone: every field is a handle.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            metrics: Arc::new(Metrics::default()),
        }
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
