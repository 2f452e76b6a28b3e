//! The layer every other one builds on: the application state, the error
//! type, extractors, sessions, password hashing, rate limiters, caches,
//! metrics, pagination, validation, cross-cutting HTTP behaviour and the
//! real-time plumbing.
//!
//! Nothing here imports a resource, the read models ([`crate::model`]) or
//! the side effects ([`crate::effects`]); `api/tests/module_layers.rs`
//! checks it.

pub mod cache;
pub mod error;
pub mod extractors;
pub mod http;
pub mod idempotency;
pub mod images;
pub mod limits;
pub mod mail;
pub mod media_urls;
pub mod metrics;
pub mod pagination;
pub mod passwords;
pub mod proxies;
pub mod realtime;
pub mod server;
pub mod sessions;
pub mod sql;
pub mod state;
pub mod time;
pub mod ttl_cache;
pub mod validation;
