//! Account deletion: closing the account at the request ([`close_account`]),
//! then erasing everything it owns in the background ([`erase`]).
//!
//! There is no grace period: the request is the decision (the password is
//! asked for again), the account stops working at once and its handle is
//! free for anyone. The `users` row stays as a tombstone without personal
//! data ("Deleted account", no password), so the other member of a chat
//! room still sees the room and their own messages.
//!
//! The work is durable without a job table: a closed account (`deleted_at`
//! set, `purged_at` not) is the job. The API process that took the request
//! starts erasing at once, and every API process's cleanup task resumes any
//! unfinished erasure ([`erase_pending`]), so a crash mid-way loses nothing.
//! Every step is idempotent and safe to run twice at once: counters on
//! others' posts are decremented by exactly the rows a `DELETE … RETURNING`
//! removed, so a second run finds nothing to decrement.
//!
//! Stored objects go before their rows: a media is first marked `erasing`
//! (no worker takes it, and the local store refuses uploads to it), its
//! original and every output version are deleted, and only then the row,
//! and not before its upload URL has expired ([`UPLOAD_URL_TTL`]) so an
//! object a late upload leaves is deleted too. A media a worker holds a
//! live lease on is left for a later pass.

use crate::effects::export::archive_key;
use crate::model::media::{UNATTACHED, UPLOAD_URL_TTL};
use sori_db::Db;
use sori_pipeline::store::{original_key, outputs_prefix, ObjectStore};
use std::collections::HashMap;

/// Why a pass stopped. Recoverable: the next pass resumes the work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErasureError {
    #[error("account erasure: database: {0}")]
    Db(#[from] sqlx::Error),
}

/// How far an erasure got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Erased {
    /// Nothing of the account is left but its tombstone.
    Done,
    /// Some media could not go yet (an object deletion failed, a worker
    /// holds it, or its upload URL still works); a later pass finishes.
    Pending,
}

/// What a deleted account's row shows where it still appears (the other
/// side of a chat room).
pub const DELETED_NAME: &str = "Deleted account";

/// Closes `user_id`'s account at `now`: hidden from every list and search
/// (`hidden_at`), its handle freed, its profile blanked, its password unusable.
/// False if it was already closed. Its sessions are ended separately
/// ([`crate::core::sessions::revoke_all`]); the lookup already refuses them, as the user
/// is hidden.
pub async fn close_account(db: &Db, user_id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let closed = sqlx::query(
        "UPDATE users SET deleted_at = $2, hidden_at = COALESCE(hidden_at, $2), \
         handle = 'deleted', handle_lower = 'deleted:' || id, handle_fold = '', name_fold = '', \
         display_name = $3, bio = '', password_hash = '', email = NULL, email_verified_at = NULL, \
         avatar_version = NULL \
         WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(user_id)
    .bind(now)
    .bind(DELETED_NAME)
    .execute(db.pool())
    .await?;
    Ok(closed.rows_affected() == 1)
}

/// Closed accounts whose erasure is unfinished, examined per pass.
const PENDING_BATCH: i64 = 100;

/// One pass of [`erase`] over every closed account not yet erased; returns
/// how many finished. Run by the API role's cleanup task.
pub async fn erase_pending(db: &Db, store: &ObjectStore, now: i64) -> Result<u64, ErasureError> {
    let pending: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM users WHERE deleted_at IS NOT NULL AND purged_at IS NULL \
         ORDER BY deleted_at LIMIT $1",
    )
    .bind(PENDING_BATCH)
    .fetch_all(db.pool())
    .await?;
    let mut finished = 0;
    for user in pending {
        if erase(db, store, &user, now).await? == Erased::Done {
            finished += 1;
        }
    }
    Ok(finished)
}

/// Erases what the closed account `user_id` owns, as of `now`: sessions and
/// devices, likes and comments (with the counters of the posts they were
/// on), chat messages, posts, the social graph, reports, playlists,
/// notifications, then media rows with every stored object. Marks the
/// account purged when nothing is left.
pub async fn erase(
    db: &Db,
    store: &ObjectStore,
    user_id: &str,
    now: i64,
) -> Result<Erased, ErasureError> {
    unlike(db, user_id).await?;
    uncomment(db, user_id).await?;
    in_one_transaction(db, user_id, ERASE_ROWS).await?;
    let exports = erase_exports(db, store, user_id, now).await?;
    let avatars = format!("avatars/{user_id}/");
    if let Err(e) = store.delete_prefix(&avatars).await {
        tracing::warn!(error = %e, prefix = %avatars, "cannot delete avatars");
        return Ok(Erased::Pending);
    }
    if erase_media(db, store, user_id, now).await? == Erased::Pending || exports == Erased::Pending
    {
        return Ok(Erased::Pending);
    }
    sqlx::query("UPDATE users SET purged_at = $2 WHERE id = $1 AND purged_at IS NULL")
        .bind(user_id)
        .bind(now)
        .execute(db.pool())
        .await?;
    Ok(Erased::Done)
}

/// Rows of the account that go without counters to keep, in this order,
/// each statement taking the user id as `$1`. Reports about its content go
/// before the content they name; its rooms keep their last message right;
/// a room whose other member is gone too goes with its messages.
const ERASE_ROWS: &[&str] = &[
    "DELETE FROM auth_tokens WHERE user_id = $1",
    "DELETE FROM ws_tickets WHERE user_id = $1",
    "DELETE FROM devices WHERE user_id = $1",
    "DELETE FROM push_outbox WHERE user_id = $1",
    // Pushes still queued for others that carry its messages.
    "DELETE FROM push_outbox WHERE payload LIKE '%\"sender_id\":\"' || $1 || '\"%'",
    // And those its likes, comments and follows caused.
    "DELETE FROM push_outbox WHERE payload LIKE '%\"actor_id\":\"' || $1 || '\"%'",
    "DELETE FROM notification_settings WHERE user_id = $1",
    "DELETE FROM presence WHERE user_id = $1",
    "DELETE FROM ws_connections WHERE user_id = $1",
    "DELETE FROM idempotency_keys WHERE user_id = $1",
    "DELETE FROM account_codes WHERE user_id = $1",
    "DELETE FROM reports WHERE reporter_id = $1 OR (target_kind = 'user' AND target_id = $1) \
     OR (target_kind = 'post' AND target_id IN (SELECT id FROM posts WHERE author_id = $1)) \
     OR (target_kind = 'message' AND target_id IN (SELECT id FROM messages WHERE sender_id = $1))",
    "DELETE FROM messages WHERE sender_id = $1",
    "UPDATE chat_rooms SET last_message_id = (SELECT m.id FROM messages m \
     WHERE m.room_id = chat_rooms.id AND m.kind <> 'read' ORDER BY m.created_at DESC, m.id DESC LIMIT 1) \
     WHERE user_lo = $1 OR user_hi = $1",
    "DELETE FROM chat_rooms WHERE (user_lo = $1 AND user_hi IN (SELECT id FROM users WHERE deleted_at IS NOT NULL)) \
     OR (user_hi = $1 AND user_lo IN (SELECT id FROM users WHERE deleted_at IS NOT NULL))",
    "DELETE FROM notifications WHERE user_id = $1 OR actor_id = $1",
    // The account's posts leave others' timelines with them (foreign key).
    "DELETE FROM timelines WHERE user_id = $1",
    "DELETE FROM posts WHERE author_id = $1",
    "DELETE FROM follows WHERE follower_id = $1 OR followee_id = $1",
    "DELETE FROM follow_requests WHERE requester_id = $1 OR target_id = $1",
    "DELETE FROM blocks WHERE blocker_id = $1 OR blocked_id = $1",
    "DELETE FROM mutes WHERE muter_id = $1 OR muted_id = $1",
    "DELETE FROM plays WHERE user_id = $1",
    "DELETE FROM playlists WHERE owner_id = $1",
];

/// Runs `statements` with `$1` = `user_id` in one transaction.
async fn in_one_transaction(
    db: &Db,
    user_id: &str,
    statements: &[&str],
) -> Result<(), sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    for sql in statements {
        sqlx::query(sql).bind(user_id).execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// Deletes the account's likes, one fewer on each post they were on.
async fn unlike(db: &Db, user_id: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    let posts: Vec<String> =
        sqlx::query_scalar("DELETE FROM likes WHERE user_id = $1 RETURNING post_id")
            .bind(user_id)
            .fetch_all(&mut *tx)
            .await?;
    for post in posts {
        sqlx::query("UPDATE posts SET like_count = like_count - 1 WHERE id = $1")
            .bind(&post)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// Deletes the account's comments (with the reports about them), the
/// visible ones uncounted from their posts (a comment a moderator removed
/// was uncounted then).
async fn uncomment(db: &Db, user_id: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    sqlx::query(
        "DELETE FROM reports WHERE target_kind = 'comment' \
         AND target_id IN (SELECT id FROM comments WHERE author_id = $1)",
    )
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    let removed: Vec<(String, Option<i64>)> =
        sqlx::query_as("DELETE FROM comments WHERE author_id = $1 RETURNING post_id, hidden_at")
            .bind(user_id)
            .fetch_all(&mut *tx)
            .await?;
    let mut per_post: HashMap<String, i64> = HashMap::new();
    for (post, hidden_at) in removed {
        if hidden_at.is_none() {
            *per_post.entry(post).or_default() += 1;
        }
    }
    for (post, count) in per_post {
        sqlx::query("UPDATE posts SET comment_count = comment_count - $1 WHERE id = $2")
            .bind(count)
            .bind(&post)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// Deletes the account's export archives and rows; an export a build
/// holds right now waits for a later pass (its archive may still appear).
async fn erase_exports(
    db: &Db,
    store: &ObjectStore,
    user_id: &str,
    now: i64,
) -> Result<Erased, sqlx::Error> {
    let exports: Vec<(String, Option<i64>)> =
        sqlx::query_as("SELECT id, lease_until FROM exports WHERE user_id = $1")
            .bind(user_id)
            .fetch_all(db.pool())
            .await?;
    let mut outcome = Erased::Done;
    for (id, lease_until) in exports {
        let key = archive_key(user_id, &id);
        if lease_until.is_some_and(|until| until >= now) {
            outcome = Erased::Pending;
        } else if let Err(e) = store.delete(&key).await {
            tracing::warn!(error = %e, %key, "cannot delete an export archive");
            outcome = Erased::Pending;
        } else {
            sqlx::query("DELETE FROM exports WHERE id = $1")
                .bind(&id)
                .execute(db.pool())
                .await?;
        }
    }
    Ok(outcome)
}

/// Media rows examined per query.
const MEDIA_BATCH: i64 = 200;

/// Marks the account's media `erasing` (all but those a worker holds),
/// deletes their objects, and then the rows whose upload URL has expired.
/// Pending while anything is left.
async fn erase_media(
    db: &Db,
    store: &ObjectStore,
    user_id: &str,
    now: i64,
) -> Result<Erased, sqlx::Error> {
    let upload_window = UPLOAD_URL_TTL.as_millis() as i64;
    sqlx::query(
        "UPDATE media SET state = 'erasing', lease_token = NULL, updated_at = $2, \
         erase_after = CASE WHEN state = 'awaiting_upload' THEN created_at + $3 ELSE $2 END \
         WHERE owner_id = $1 AND state <> 'erasing' \
         AND NOT (state = 'processing' AND lease_until IS NOT NULL AND lease_until >= $2)",
    )
    .bind(user_id)
    .bind(now)
    .bind(upload_window)
    .execute(db.pool())
    .await?;
    let mut outcome = Erased::Done;
    let mut after = String::new();
    loop {
        let batch: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT id, original_key, COALESCE(erase_after, 0) \
             FROM media WHERE owner_id = $1 AND state = 'erasing' AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(user_id)
        .bind(&after)
        .bind(MEDIA_BATCH)
        .fetch_all(db.pool())
        .await?;
        let Some(last) = batch.last() else { break };
        after = last.0.clone();
        let full = batch.len() as i64 == MEDIA_BATCH;
        for (id, key, erase_after) in batch {
            let failed = delete_media_objects(store, &id, &key).await;
            if failed > 0 || erase_after > now {
                outcome = Erased::Pending;
                continue;
            }
            sqlx::query("DELETE FROM media WHERE id = $1 AND state = 'erasing'")
                .bind(&id)
                .execute(db.pool())
                .await?;
        }
        if !full {
            break;
        }
    }
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM media WHERE owner_id = $1")
        .bind(user_id)
        .fetch_one(db.pool())
        .await?;
    Ok(if left > 0 { Erased::Pending } else { outcome })
}

/// Deletes a media's original (under the key its row names, and the
/// standard one) and everything under `media/{id}/`: every output of every
/// processing attempt. Returns how many deletions failed (logged).
/// Deleting what is absent succeeds.
pub async fn delete_media_objects(
    store: &ObjectStore,
    media_id: &str,
    stored_original: &str,
) -> u64 {
    let mut keys = vec![stored_original.to_owned(), original_key(media_id)];
    keys.dedup();
    let mut failed = 0;
    for key in keys {
        if let Err(e) = store.delete(&key).await {
            tracing::warn!(error = %e, %key, %media_id, "cannot delete a stored object");
            failed += 1;
        }
    }
    let outputs = outputs_prefix(media_id);
    if let Err(e) = store.delete_prefix(&outputs).await {
        tracing::warn!(error = %e, prefix = %outputs, %media_id, "cannot delete a media's outputs");
        failed += 1;
    }
    failed
}

/// Deletes a media just detached from what used it (its chat message
/// unsent) at once, rather than a media time to live later: the row, if
/// still unattached and held by no worker (a held one is left to the
/// media sweep, which waits for the lease), then its objects. Returns
/// whether it was deleted; objects that cannot be deleted are logged.
pub async fn delete_detached_media(
    db: &Db,
    store: &ObjectStore,
    media_id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "DELETE FROM media WHERE id = $1 AND (lease_until IS NULL OR lease_until < $2) \
         AND {UNATTACHED} RETURNING original_key"
    );
    let original: Option<String> = sqlx::query_scalar(&sql)
        .bind(media_id)
        .bind(now)
        .fetch_optional(db.pool())
        .await?;
    let Some(original) = original else {
        return Ok(false);
    };
    delete_media_objects(store, media_id, &original).await;
    Ok(true)
}

/// Erases `user_id` until done or until a pass leaves work for later (the
/// cleanup task's [`erase_pending`] finishes it then). Started by the
/// deletion request; failures are logged.
pub async fn erase_now(db: Db, store: ObjectStore, user_id: String) {
    match erase(&db, &store, &user_id, sori_pipeline::clock::now_ms()).await {
        Ok(Erased::Done) => tracing::info!(user_id = %user_id, "account erased"),
        Ok(Erased::Pending) => {
            tracing::info!(user_id = %user_id, "account erasure continues in the cleanup task")
        }
        Err(e) => {
            tracing::warn!(error = %e, user_id = %user_id, "account erasure failed; the cleanup task retries")
        }
    }
}
