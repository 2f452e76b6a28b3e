//! Home timelines, written on post (fan-out on write; migration 0023): a
//! new post gets a `timelines` row for its author and each of the author's
//! followers, so the feed ([`crate::feed`]) reads one user's rows newest
//! first instead of merging the posts of every followed author.
//!
//! The invariant the feed relies on: a user's timeline holds every post of
//! an author they follow at or above its floor (`users.timeline_floor_at`,
//! `timeline_floor_id`, in `(created_at, id)` order) and nothing below it;
//! the feed reads below the floor by the merge over followed authors.
//! Each writer keeps it:
//! - a new post is the newest, so it goes to every follower's timeline;
//! - a follow backfills the followee's posts above the floor, at most the
//!   timeline's length of them (raising the floor past the rest,
//!   [`backfill`]); an unfollow or a block removes the author's rows ([`withdraw`]);
//! - a post turned private leaves others' timelines; one turned visible
//!   again goes back to the followers whose floor is below it ([`visibility_changed`]);
//! - [`trim`] keeps the newest [`TimelineConfig::length`] rows and raises
//!   the floor to the oldest kept; deleting a post deletes its rows (foreign key).
//!
//! Accounts from before timelines have their floor at the migration's time;
//! new ones at 0, so a short timeline is the whole feed without a merge.
//!
//! Authors with more followers than [`TimelineConfig::max_fan_out`] are not
//! written out: their posts are marked `fan_in` and the feed reads them from
//! the author's index at request time (the hybrid large networks use: one
//! post of theirs would otherwise write a row per follower). An author
//! stays `fan_in` once marked.
//!
//! Mutes, moderation, hidden accounts and media not yet ready are filtered
//! per row when the feed reads: a timed mute ends without an event, and a
//! restored post or account must come back without rewriting timelines.
//!
//! Transactions see each other's rows only once committed, so the writers
//! of an author's rows in others' timelines take the author's lock
//! ([`lock_author`]): without it a follow committing while a post of the
//! followee is written would miss the post, and an unfollow racing a post
//! would leave the post's row behind. The feed can then trust every row to
//! be of an author the user follows.

pub use crate::core::state::TimelineConfig;
use sori_db::Backend;
use sqlx::AnyConnection;

/// How a writer holds an author's lock ([`lock_author`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Posting, and changing a post's visibility: many at once per author.
    Shared,
    /// Following, unfollowing, blocking: one at a time per followee, and
    /// not while the followee's posts are being written out.
    Exclusive,
}

/// Takes `author`'s timeline lock until the transaction ends, on
/// PostgreSQL (an advisory lock, so it never waits on or blocks row locks
/// such as foreign-key checks); SQLite runs one writing transaction at a
/// time already. A follow and a post of the followee then run one after
/// the other, and the later one's statements see the earlier one's rows.
pub async fn lock_author(
    conn: &mut AnyConnection,
    author: &str,
    hold: Hold,
) -> Result<(), sqlx::Error> {
    if Backend::of(conn) != Backend::Postgres {
        return Ok(());
    }
    // Called in FROM, so no `void` column reaches the driver.
    let sql = match hold {
        Hold::Shared => "SELECT 1 FROM pg_advisory_xact_lock_shared($1, hashtext($2))",
        Hold::Exclusive => "SELECT 1 FROM pg_advisory_xact_lock($1, hashtext($2))",
    };
    sqlx::query(sql)
        .bind(LOCK_SPACE)
        .bind(author)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The first key of [`lock_author`]'s advisory locks: the migration that
/// made timelines, so other advisory locks can pick other numbers.
const LOCK_SPACE: i32 = 23;

/// A post as fan-out needs it.
#[derive(Debug, Clone, Copy)]
pub struct NewPost<'a> {
    pub id: &'a str,
    pub author: &'a str,
    pub created_at: i64,
    /// `posts.visibility`: a private post reaches only its author's timeline.
    pub visibility: &'a str,
}

/// Writes a new post into its author's timeline and, unless it is private
/// or the author has too many followers (then the post is marked `fan_in`),
/// into each follower's. Returns the number of rows written.
pub async fn fan_out(
    conn: &mut AnyConnection,
    post: NewPost<'_>,
    config: TimelineConfig,
) -> Result<u64, sqlx::Error> {
    lock_author(conn, post.author, Hold::Shared).await?;
    let mut written = insert_for(conn, post, "SELECT CAST($3 AS TEXT) AS id").await?;
    // A private post of a fan-in author is marked too, so turning it
    // visible later leaves it to the feed's fan-in read, not to rows.
    if is_fan_in(conn, post.author, config.max_fan_out).await? {
        sqlx::query("UPDATE posts SET fan_in = 1 WHERE id = $1")
            .bind(post.id)
            .execute(&mut *conn)
            .await?;
        return Ok(written);
    }
    if post.visibility == "private" {
        return Ok(written);
    }
    let followers = "SELECT follower_id AS id FROM follows WHERE followee_id = $3";
    written += insert_for(conn, post, followers).await?;
    Ok(written)
}

/// Inserts the post's row for each user `users` selects as `id` (`$3`
/// the author). (SQLite parses `ON CONFLICT` after a `SELECT` only once it
/// has a `WHERE`.)
async fn insert_for(
    conn: &mut AnyConnection,
    post: NewPost<'_>,
    users: &str,
) -> Result<u64, sqlx::Error> {
    let sql = format!(
        "INSERT INTO timelines (user_id, created_at, post_id, author_id) \
         SELECT r.id, $1, $2, $3 FROM ({users}) r WHERE 1 = 1 \
         ON CONFLICT (user_id, created_at, post_id) DO NOTHING"
    );
    Ok(sqlx::query(&sql)
        .bind(post.created_at)
        .bind(post.id)
        .bind(post.author)
        .execute(&mut *conn)
        .await?
        .rows_affected())
}

/// Whether `author`'s posts are read at feed time: marked so before, or
/// followed by more than `max_fan_out` users now (then marked). Counts at
/// most `max_fan_out + 1` follows.
async fn is_fan_in(
    conn: &mut AnyConnection,
    author: &str,
    max_fan_out: i64,
) -> Result<bool, sqlx::Error> {
    let marked: i64 = sqlx::query_scalar("SELECT fan_in FROM users WHERE id = $1")
        .bind(author)
        .fetch_optional(&mut *conn)
        .await?
        .unwrap_or(0);
    if marked == 1 {
        return Ok(true);
    }
    let followers: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT 1 FROM follows WHERE followee_id = $1 LIMIT $2) f",
    )
    .bind(author)
    .bind(max_fan_out + 1)
    .fetch_one(&mut *conn)
    .await?;
    if followers <= max_fan_out {
        return Ok(false);
    }
    mark_fan_in(conn, author).await?;
    Ok(true)
}

/// Marks `author` fan-in, and their follows so (`follows_fan_in`, which
/// the feed reads). Only the transaction that flips the user's mark updates
/// the follows: two posts marking at once would otherwise both rewrite them.
/// Follows made later take the mark themselves ([`crate::effects::follows`]).
async fn mark_fan_in(conn: &mut AnyConnection, author: &str) -> Result<(), sqlx::Error> {
    let flipped = sqlx::query("UPDATE users SET fan_in = 1 WHERE id = $1 AND fan_in = 0")
        .bind(author)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if flipped > 0 {
        sqlx::query("UPDATE follows SET fan_in = 1 WHERE followee_id = $1")
            .bind(author)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// SQL: `$1`'s timeline floor, as the row value `(at, id)`.
pub const FLOOR: &str =
    "SELECT fl.timeline_floor_at, fl.timeline_floor_id FROM users fl WHERE fl.id = $1";

/// `follower` now follows `followee`: the followee's written-out posts at
/// or above the follower's floor join the follower's timeline, the newest
/// `length` of them; when there are more, the floor rises to the oldest
/// written (the feed reads the rest by the merge). The timeline is then
/// trimmed back to `length`.
pub async fn backfill(
    conn: &mut AnyConnection,
    follower: &str,
    followee: &str,
    length: i64,
) -> Result<u64, sqlx::Error> {
    let above_floor = format!(
        "FROM posts p WHERE p.author_id = $2 AND p.fan_in = 0 AND p.visibility <> 'private' \
         AND (p.created_at, p.id) >= ({FLOOR})"
    );
    let cut: Vec<(i64, String)> = sqlx::query_as(&format!(
        "SELECT p.created_at, p.id {above_floor} \
         ORDER BY p.created_at DESC, p.id DESC LIMIT 2 OFFSET $3"
    ))
    .bind(follower)
    .bind(followee)
    .bind(length.max(1) - 1)
    .fetch_all(&mut *conn)
    .await?;
    if let [oldest_kept, _beyond] = cut.as_slice() {
        raise_floor(conn, follower, oldest_kept).await?;
    }
    let written = sqlx::query(&format!(
        "INSERT INTO timelines (user_id, created_at, post_id, author_id) \
         SELECT $1, p.created_at, p.id, p.author_id {above_floor} \
         ON CONFLICT (user_id, created_at, post_id) DO NOTHING"
    ))
    .bind(follower)
    .bind(followee)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if written > 0 {
        trim(conn, follower, length).await?;
    }
    Ok(written)
}

/// Moves `user`'s floor up to `to` (never down) and drops the rows below
/// it; returns how many.
async fn raise_floor(
    conn: &mut AnyConnection,
    user: &str,
    to: &(i64, String),
) -> Result<u64, sqlx::Error> {
    let mut dropped = 0;
    for sql in [
        "UPDATE users SET timeline_floor_at = $2, timeline_floor_id = $3 \
         WHERE id = $1 AND (timeline_floor_at, timeline_floor_id) < ($2, $3)",
        "DELETE FROM timelines WHERE user_id = $1 AND (created_at, post_id) < ($2, $3)",
    ] {
        dropped = sqlx::query(sql)
            .bind(user)
            .bind(to.0)
            .bind(&to.1)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(dropped)
}

/// `user` no longer follows `author` (an unfollow, a block): the author's
/// rows leave the user's timeline.
pub async fn withdraw(
    conn: &mut AnyConnection,
    user: &str,
    author: &str,
) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM timelines WHERE user_id = $1 AND author_id = $2")
            .bind(user)
            .bind(author)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
    )
}

/// `author`'s post changed visibility from `before` to `after`: turned
/// private, it leaves others' timelines; turned visible from private, it
/// returns to each follower's timeline whose floor is at or below the post
/// (above it, the feed reads the post by the merge). Followers-only
/// and public posts reach the same timelines (only followers have them).
pub async fn visibility_changed(
    conn: &mut AnyConnection,
    post_id: &str,
    author: &str,
    before: &str,
    after: &str,
) -> Result<u64, sqlx::Error> {
    lock_author(conn, author, Hold::Shared).await?;
    let sql = match (before == "private", after == "private") {
        (false, true) => {
            "DELETE FROM timelines WHERE post_id = $1 \
             AND user_id <> (SELECT author_id FROM posts WHERE id = $1)"
        }
        (true, false) => {
            "INSERT INTO timelines (user_id, created_at, post_id, author_id) \
             SELECT f.follower_id, p.created_at, p.id, p.author_id \
             FROM posts p JOIN follows f ON f.followee_id = p.author_id \
             JOIN users fu ON fu.id = f.follower_id \
             WHERE p.id = $1 AND p.fan_in = 0 \
             AND (p.created_at, p.id) >= (fu.timeline_floor_at, fu.timeline_floor_id) \
             ON CONFLICT (user_id, created_at, post_id) DO NOTHING"
        }
        _ => return Ok(0),
    };
    Ok(sqlx::query(sql)
        .bind(post_id)
        .execute(&mut *conn)
        .await?
        .rows_affected())
}

/// Keeps the newest `length` rows of `user`'s timeline: when it has more,
/// the floor rises to the oldest kept. Returns the rows dropped.
pub async fn trim(conn: &mut AnyConnection, user: &str, length: i64) -> Result<u64, sqlx::Error> {
    let cut: Vec<(i64, String)> = sqlx::query_as(
        "SELECT created_at, post_id FROM timelines WHERE user_id = $1 \
         ORDER BY created_at DESC, post_id DESC LIMIT 2 OFFSET $2",
    )
    .bind(user)
    .bind(length.max(1) - 1)
    .fetch_all(&mut *conn)
    .await?;
    match cut.as_slice() {
        [oldest_kept, _beyond] => raise_floor(conn, user, oldest_kept).await,
        _ => Ok(0),
    }
}

/// One trimming pass over the timelines that gained rows from posts made
/// at or after `since` (Unix ms; the API's cleanup task passes the start of
/// its previous pass, less a margin): returns the rows dropped. Only posts
/// lengthen timelines past [`trim`]'s reach, as a follow trims the
/// follower's after its backfill, so the pass costs what the posts since
/// wrote, not a visit to every user.
pub async fn trim_all(db: &sori_db::Db, length: i64, since: i64) -> Result<u64, sqlx::Error> {
    let users: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT t.user_id FROM posts p JOIN timelines t ON t.post_id = p.id \
         WHERE p.created_at >= $1",
    )
    .bind(since)
    .fetch_all(db.pool())
    .await?;
    let mut dropped = 0;
    let mut conn = db.pool().acquire().await?;
    for user in &users {
        dropped += trim(&mut conn, user, length).await?;
    }
    Ok(dropped)
}
