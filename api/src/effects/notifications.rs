//! Notifications as the actions that cause them write them: a new follower,
//! a like, a comment, a mention (`@handle` in a caption or comment). The
//! list and its read marks are [`crate::social::notifications`].
//!
//! Every row is written by [`notify`] inside the transaction of the action
//! itself, so an action and its notification exist together or not at all;
//! the recipient's sockets are told once it has committed ([`tell`]). Likes,
//! follows and a caption's mentions are told once per actor and target
//! (partial unique indexes of 0007 and 0019; [`notify`] inserts with `ON
//! CONFLICT DO NOTHING`), so an edited caption tells only new mentions.
//!
//! A notification written also queues its push ([`push_of`]) for a user
//! with no live connection, in the same transaction; the user's settings
//! turn either off per kind (`notification_settings`): the list hides what
//! its inbox switch turned off, and the socket is not told of it.

use crate::core::error::ApiError;
use crate::core::realtime::{Event, Realtime};
use crate::core::time;
use crate::effects::push::PushEntry;
use crate::model::posts::Audience;
use crate::model::rules::{blocked_either_way, turned_off, Channel};
use sori_db::{Backend, Db};
use sqlx::AnyConnection;

/// One notification to write.
#[derive(Debug, Clone, Copy)]
pub struct Notice<'a> {
    /// Who is told.
    pub user_id: &'a str,
    /// `follow`, `like`, `comment` or `mention`.
    pub kind: &'a str,
    /// Who did it.
    pub actor_id: &'a str,
    pub post_id: Option<&'a str>,
    pub comment_id: Option<&'a str>,
}

impl<'a> Notice<'a> {
    pub fn new(user_id: &'a str, kind: &'a str, actor_id: &'a str) -> Self {
        Self {
            user_id,
            kind,
            actor_id,
            post_id: None,
            comment_id: None,
        }
    }

    pub fn post(mut self, post_id: &'a str) -> Self {
        self.post_id = Some(post_id);
        self
    }

    pub fn comment(mut self, comment_id: &'a str) -> Self {
        self.comment_id = Some(comment_id);
        self
    }
}

/// A notification written by a transaction, to tell the recipient's live
/// sockets once that transaction has committed ([`tell`]).
#[derive(Debug)]
pub struct Written {
    user_id: String,
    event: Event,
}

/// Writes a notification and its push inside the caller's transaction; a
/// repeat of a like or follow notification is silently skipped (`None`),
/// and so is the socket event of a kind the user keeps out of their inbox.
pub async fn notify(
    conn: &mut AnyConnection,
    n: Notice<'_>,
) -> Result<Option<Written>, sqlx::Error> {
    let id = uuid::Uuid::now_v7().to_string();
    let now = time::now_ms();
    let inserted = sqlx::query(
        "INSERT INTO notifications (id, user_id, kind, actor_id, post_id, comment_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(&id)
    .bind(n.user_id)
    .bind(n.kind)
    .bind(n.actor_id)
    .bind(n.post_id)
    .bind(n.comment_id)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(None);
    }
    push_of(&n, &id, Backend::of(conn))
        .at(now)
        .write(conn)
        .await?;
    if in_inbox(conn, n.user_id, n.kind).await? {
        let data = serde_json::json!({
            "id": id, "kind": n.kind, "actor_id": n.actor_id,
            "post_id": n.post_id, "comment_id": n.comment_id, "created_at": now,
        });
        return Ok(Some(Written {
            user_id: n.user_id.to_owned(),
            event: Event::new("notification", data),
        }));
    }
    Ok(None)
}

/// The push of the notification `id`, for a user with no live connection.
/// The dispatcher names the actor and says what they did; a burst on one
/// target (the likes, comments or mentions of one post; new followers; new
/// requests) collapses into one waiting push.
fn push_of<'a>(n: &Notice<'a>, id: &str, backend: Backend) -> PushEntry<'a> {
    let payload = serde_json::json!({
        "notification_id": id, "actor_id": n.actor_id,
        "post_id": n.post_id, "comment_id": n.comment_id,
    });
    let entry = PushEntry::new(n.user_id, n.kind, &payload)
        .unless_online()
        .from_actor(n.actor_id, backend);
    match (n.kind, n.post_id) {
        ("like" | "comment" | "mention", Some(post)) => {
            entry.collapse(format!("{}:{post}", n.kind))
        }
        ("follow" | "follow_request", _) => entry.collapse(n.kind.to_owned()),
        _ => entry,
    }
}

/// Whether `user` keeps notifications of `kind` in their inbox.
async fn in_inbox(conn: &mut AnyConnection, user: &str, kind: &str) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "SELECT CAST(CASE WHEN {} THEN 0 ELSE 1 END AS BIGINT)",
        turned_off("$1", "$2", Channel::Inbox)
    );
    let on: i64 = sqlx::query_scalar(&sql)
        .bind(user)
        .bind(kind)
        .fetch_one(conn)
        .await?;
    Ok(on == 1)
}

/// Sends a `notification` event to each recipient's sockets, on any API
/// process. Call it after the transaction that wrote them has committed.
pub async fn tell(realtime: &Realtime, written: Vec<Written>) {
    for w in written {
        realtime.publish(vec![w.user_id], w.event).await;
    }
}

/// Most mentions notified per text, so one caption cannot notify everyone.
const MAX_MENTIONS: usize = 10;

/// The handles `@mentioned` in `text`, lowercased and deduplicated: `@`
/// not preceded by a word character, then a valid handle (3–30 letters,
/// digits, underscores).
pub fn mentioned_handles(text: &str) -> Vec<String> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut handles: Vec<String> = Vec::new();
    let mut previous: Option<char> = None;
    for (i, c) in text.char_indices() {
        if c == '@' && !previous.is_some_and(is_word) {
            let rest = &text[i + 1..];
            let end = rest.find(|c: char| !is_word(c)).unwrap_or(rest.len());
            let handle = rest[..end].to_ascii_lowercase();
            if (3..=30).contains(&handle.len()) && !handles.contains(&handle) {
                handles.push(handle);
            }
        }
        previous = Some(c);
    }
    handles.truncate(MAX_MENTIONS);
    handles
}

/// The ids of the users `author` mentions in `text` (a caption or comment
/// of a post with the audience `post`) who should be told: existing, not
/// removed, not the author, no block either way, and able to hear the post,
/// so a mention does not lead to a post its reader may not see. Read before
/// the action's transaction, which then writes one [`notify`] per id.
pub async fn mention_targets(
    db: &Db,
    author: &str,
    text: &str,
    post: &Audience,
) -> Result<Vec<String>, ApiError> {
    let mut ids = Vec::new();
    for handle in mentioned_handles(text) {
        let id: Option<String> = sqlx::query_scalar(
            "SELECT id FROM users WHERE handle_lower = $1 AND hidden_at IS NULL",
        )
        .bind(&handle)
        .fetch_optional(db.pool())
        .await?;
        let Some(id) = id.filter(|id| id != author) else {
            continue;
        };
        if !blocked_either_way(db, author, &id).await? && post.includes(db, &id).await? {
            ids.push(id);
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::mentioned_handles;

    #[test]
    fn mentions_are_handles_after_an_at_sign() {
        assert_eq!(
            mentioned_handles("hi @Alice and @bob_2, mail x@carol.com @al @ALICE"),
            ["alice", "bob_2"]
        );
        assert!(mentioned_handles("no mentions here @").is_empty());
    }
}
