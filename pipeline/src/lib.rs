//! Sori's media pipeline: object store, queue, worker pool and the media's
//! job state (the database itself is `sori-db`'s).
//!
//! Dependencies point one way: `sori` → `sori-api` → `sori-pipeline` →
//! `sori-codecs`, `sori-db`.
//!
//! The flow of one upload: the API presigns a PUT on the [`store`]; the client
//! uploads the original; [`media::mark_queued`] moves the media to `queued` and
//! enqueues its [`job`] in one transaction; a [`worker`] receives it from the
//! [`queue`], runs the audio engine and records the result.

pub mod clock;
pub mod job;
pub mod media;
pub mod metrics;
pub mod queue;
pub mod reaper;
pub mod registry;
pub mod store;
pub mod worker;
