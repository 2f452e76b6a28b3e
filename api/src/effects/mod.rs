//! Cross-resource side effects: what an action causes beyond its own rows,
//! for other users and other resources. Resources call them with their
//! transaction (its `&mut AnyConnection`, or their statement's
//! [`crate::core::sql::Params`]), so an action and its effects are written
//! together or not at all; socket events go out once it has committed.
//!
//! - [`notifications`]: a follow, like, comment or mention notifies its
//!   target (row in the transaction, event after it).
//! - [`follows`]: a follow, or a request to a private account, and accepting them.
//! - [`push`]: a push outbox entry, unless the recipient is online.
//! - [`events`]: the chat's `message.new` and `message.read` events.
//! - [`erasure`]: a deleted account's rows and stored objects, everywhere.
//! - [`mail`]: a mail in the outbox, sent by the relay.
//! - [`export`]: the archive of everything an account holds.
//! - [`audit`]: the record of an admin action.
//! - [`trending`]: a play, like or comment raising a post's trending score.
//! - [`timelines`]: a post written into its readers' home timelines, and
//!   the follows, blocks and visibility changes that add or remove rows.
//!
//! Imports only [`crate::core`] and [`crate::model`]; `api/tests/module_layers.rs`
//! checks it.

pub mod audit;
pub mod erasure;
pub mod events;
pub mod export;
pub mod follows;
pub mod mail;
pub mod notifications;
pub mod push;
pub mod timelines;
pub mod trending;
