//! Time as the database stores it: Unix milliseconds.

pub use sori_pipeline::clock::now_ms;
