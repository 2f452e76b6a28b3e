//! Sori's media pipeline: the database layer, object store, queue and worker pool.
//!
//! Dependencies point one way: `sori` → `sori-api` → `sori-pipeline` → `sori-codecs`.

pub mod db;

pub use db::{Backend, Db, DbError};
