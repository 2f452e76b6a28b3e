//! Follows as they are written: at once to a public account, as a request
//! to a private one, and the requests an account accepts (one, or all of
//! them when it turns public). Shared by the follow routes and the profile
//! route, each calling with its own transaction.

use crate::core::time;
use crate::effects::notifications::{notify, Notice, Written};
use crate::effects::timelines::{self, Hold};
use sqlx::AnyConnection;

/// `follower` now follows `followee`; the followee is told of a new follow
/// (`follow`) once, and their posts join the follower's home timeline
/// (`timeline_length` of them at most). Nothing happens when the follow exists.
/// The follow takes the followee's fan-in mark ([`timelines`]), read under
/// the followee's lock so an author turning fan-in cannot slip between.
pub async fn follow(
    conn: &mut AnyConnection,
    follower: &str,
    followee: &str,
    timeline_length: i64,
) -> Result<Option<Written>, sqlx::Error> {
    timelines::lock_author(conn, followee, Hold::Exclusive).await?;
    let insert = "INSERT INTO follows (follower_id, followee_id, created_at, fan_in) \
                  SELECT $1, $2, $3, u.fan_in FROM users u WHERE u.id = $2 \
                  ON CONFLICT (follower_id, followee_id) DO NOTHING";
    if !inserted(conn, insert, follower, followee).await? {
        return Ok(None);
    }
    timelines::backfill(conn, follower, followee, timeline_length).await?;
    notify(conn, Notice::new(followee, "follow", follower)).await
}

/// `requester` asks to follow the private account `target`, which is told
/// (`follow_request`) once per requester. Asking again changes nothing.
pub async fn request(
    conn: &mut AnyConnection,
    requester: &str,
    target: &str,
) -> Result<Option<Written>, sqlx::Error> {
    let insert = "INSERT INTO follow_requests (requester_id, target_id, created_at) \
                  VALUES ($1, $2, $3) ON CONFLICT (requester_id, target_id) DO NOTHING";
    if !inserted(conn, insert, requester, target).await? {
        return Ok(None);
    }
    notify(conn, Notice::new(target, "follow_request", requester)).await
}

/// Runs `insert` (`$1` actor, `$2` target, `$3` now): whether it inserted
/// a row (false when the follow or request exists).
async fn inserted(
    conn: &mut AnyConnection,
    insert: &str,
    actor: &str,
    target: &str,
) -> Result<bool, sqlx::Error> {
    let rows = sqlx::query(insert)
        .bind(actor)
        .bind(target)
        .bind(time::now_ms())
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(rows > 0)
}

/// `target` accepts `requester`'s request: it becomes a follow, and the
/// requester is told (`follow_accepted`). `None` when there was no request.
pub async fn accept(
    conn: &mut AnyConnection,
    target: &str,
    requester: &str,
    timeline_length: i64,
) -> Result<Option<Vec<Written>>, sqlx::Error> {
    // Before the request's row lock: an unfollow takes the lock, then that row.
    timelines::lock_author(conn, target, Hold::Exclusive).await?;
    let removed =
        sqlx::query("DELETE FROM follow_requests WHERE requester_id = $1 AND target_id = $2")
            .bind(requester)
            .bind(target)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    if removed == 0 {
        return Ok(None);
    }
    let mut written: Vec<Written> = follow(conn, requester, target, timeline_length)
        .await?
        .into_iter()
        .collect();
    written.extend(notify(conn, Notice::new(requester, "follow_accepted", target)).await?);
    Ok(Some(written))
}

/// Accepts every request `target` has (it turned public).
pub async fn accept_all(
    conn: &mut AnyConnection,
    target: &str,
    timeline_length: i64,
) -> Result<Vec<Written>, sqlx::Error> {
    let requesters: Vec<String> =
        sqlx::query_scalar("SELECT requester_id FROM follow_requests WHERE target_id = $1")
            .bind(target)
            .fetch_all(&mut *conn)
            .await?;
    let mut written = Vec::new();
    for requester in requesters {
        let accepted = accept(conn, target, &requester, timeline_length).await?;
        written.extend(accepted.unwrap_or_default());
    }
    Ok(written)
}
