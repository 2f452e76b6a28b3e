//! The statements that differ between SQLite and PostgreSQL, in one place.
//! The same SQL serves both databases unless a backend-specific form is
//! clearly worth it; each variant here says why it is.

use sori_db::Backend;

/// SQL: the strings of the JSON array bound at `param`, as a one-column
/// (`value`) subquery: one bound array instead of a placeholder per item
/// (the two databases name their JSON table functions differently).
pub fn json_strings(backend: Backend, param: &str) -> String {
    match backend {
        Backend::Postgres => format!("SELECT json_array_elements_text({param}::json) AS value"),
        Backend::Sqlite => format!("SELECT value FROM json_each({param})"),
    }
}

/// SQL: the database's clock in Unix milliseconds, for conditions that
/// lapse (a mute's `until`) in statements whose text stays the same.
pub fn now_ms(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        Backend::Sqlite => "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
    }
}

/// The feed's page of post ids for the viewer `$1`, before the cursor
/// (`$2` time, `$3` id), at most `$4` of them, newest first. Both forms pick
/// them from `posts_author_feed` alone (index-only: author, time, id, media
/// id, hidden). A followed author's post counts once its media is ready,
/// checked as "not in `media_not_ready`" (a small partial index) rather than
/// by reading each candidate's media row. Removed posts are skipped by
/// `hidden_at` and others' private posts by `visibility`, which the index
/// also carries (0007, 0019), and removed or muted authors by one
/// primary-key probe of `users` and `mutes` per followed author, not per post.
/// PostgreSQL takes at most one page per author (`LATERAL … LIMIT`), bounding a
/// page by followees × limit index entries; SQLite has no LATERAL and reads
/// each followed author's index range before the cursor (measured in
/// `benches/feed-load.sh`).
///
/// `followee_heard` is SQL over `f.followee_id`: the viewer's mute filter
/// (`rules::not_muted`), passed in as the rules sit above this module.
pub fn feed_ids(backend: Backend, followee_heard: &str) -> String {
    let visible = format!("(p2.author_id = $1 OR {})", media_ready(backend));
    // A follower sees public and followers-only posts; private ones are the author's.
    let before = "(p2.created_at, p2.id) < ($2, $3) AND p2.hidden_at IS NULL \
                  AND (p2.author_id = $1 OR p2.visibility <> 'private')";
    let author_shown = format!(
        "NOT EXISTS (SELECT 1 FROM users hu WHERE hu.id = f.followee_id \
         AND hu.hidden_at IS NOT NULL) AND {followee_heard}"
    );
    let newest = "ORDER BY p2.created_at DESC, p2.id DESC LIMIT $4";
    match backend {
        Backend::Postgres => format!(
            "SELECT q.id FROM (SELECT f.followee_id AS author FROM follows f \
               WHERE f.follower_id = $1 AND {author_shown} UNION ALL SELECT CAST($1 AS TEXT)) a \
             CROSS JOIN LATERAL (SELECT p2.id, p2.created_at FROM posts p2 \
               WHERE p2.author_id = a.author AND {before} AND {visible} {newest}) q \
             ORDER BY q.created_at DESC, q.id DESC LIMIT $4",
        ),
        Backend::Sqlite => format!(
            "SELECT p2.id FROM posts p2 WHERE {before} AND (p2.author_id = $1 OR \
               (p2.author_id IN (SELECT f.followee_id FROM follows f \
                 WHERE f.follower_id = $1 AND {author_shown}) \
                AND {visible})) {newest}",
        ),
    }
}

/// The feed's page of post ids by followed fan-in authors (too many
/// followers to write out, `effects::timelines`) for the viewer `$1`, before
/// the cursor (`$2`, `$3`), at most `$4`, newest first, and at or above the
/// viewer's timeline floor (`floor`, SQL of one row; below it the posts are
/// the merge's, [`feed_ids`]): the viewer's follows marked fan-in (the small
/// `follows_fan_in` index), without removed authors or those `author_heard`
/// (SQL over `f.followee_id`, the mute filter) leaves out, then each
/// author's `posts_fan_in` range. PostgreSQL takes at most a page per author
/// (`LATERAL … LIMIT`); SQLite reads the authors' ranges and sorts.
pub fn fan_in_ids(backend: Backend, author_heard: &str, floor: &str) -> String {
    let authors = format!(
        "SELECT f.followee_id FROM follows f WHERE f.follower_id = $1 AND f.fan_in = 1 \
         AND NOT EXISTS (SELECT 1 FROM users hu WHERE hu.id = f.followee_id \
         AND hu.hidden_at IS NOT NULL) AND {author_heard}"
    );
    let post = format!(
        "p2.fan_in = 1 AND (p2.created_at, p2.id) < ($2, $3) AND (p2.created_at, p2.id) >= ({floor}) \
         AND p2.hidden_at IS NULL AND p2.visibility <> 'private' AND {}",
        media_ready(backend)
    );
    let newest = "ORDER BY p2.created_at DESC, p2.id DESC LIMIT $4";
    match backend {
        Backend::Postgres => format!(
            "SELECT q.id FROM ({authors}) a(author) CROSS JOIN LATERAL \
             (SELECT p2.id, p2.created_at FROM posts p2 WHERE p2.author_id = a.author AND {post} {newest}) q \
             ORDER BY q.created_at DESC, q.id DESC LIMIT $4"
        ),
        Backend::Sqlite => {
            format!("SELECT p2.id FROM posts p2 WHERE p2.author_id IN ({authors}) AND {post} {newest}")
        }
    }
}

/// SQL: the media of the post aliased `p2` is ready, checked as "not in
/// `media_not_ready`" (a small partial index), for walks that read post ids
/// before the page's rows. SQLite's planner would probe media's primary
/// key; the hint names the small index.
fn media_ready(backend: Backend) -> String {
    let hint = match backend {
        Backend::Postgres => "",
        Backend::Sqlite => "INDEXED BY media_not_ready",
    };
    format!("NOT EXISTS (SELECT 1 FROM media m2 {hint} WHERE m2.id = p2.media_id AND m2.state <> 'ready')")
}
