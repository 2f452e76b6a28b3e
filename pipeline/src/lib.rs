//! Sori's media pipeline: the database layer, object store, queue and worker pool.
//!
//! Dependencies point one way: `sori` → `sori-api` → `sori-pipeline` → `sori-codecs`.
//!
//! The flow of one upload: the API presigns a PUT on the [`store`]; the client
//! uploads the original; [`media::mark_queued`] moves the media to `queued` and
//! enqueues its [`job`] in one transaction; a [`worker`] receives it from the
//! [`queue`], runs the audio engine and records the result.

pub mod clock;
pub mod db;
pub mod job;
pub mod media;
pub mod metrics;
pub mod output;
pub mod queue;
pub mod reaper;
pub mod registry;
pub mod store;
pub mod worker;

pub use db::{Backend, Db, DbError};
