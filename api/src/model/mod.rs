//! Shared read models and visibility rules, below the resources: the shapes
//! several resources answer with (a post and its author, a chat message),
//! the SQL rules that decide what a viewer sees, and the statements that
//! differ between SQLite and PostgreSQL.
//!
//! Imports only [`crate::core`]; `api/tests/module_layers.rs` checks it.

pub mod dialect;
pub mod media;
pub mod messages;
pub mod posts;
pub mod presence;
pub mod rules;
pub mod users;
