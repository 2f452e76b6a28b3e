//! Follows as they are written: at once to a public account, as a request
//! to a private one, and the requests an account accepts (one, or all of
//! them when it turns public). Shared by the follow routes and the profile
//! route, each calling with its own transaction.

use crate::core::time;
use crate::effects::notifications::{notify, Notice, Written};
use crate::effects::timelines;
use sqlx::AnyConnection;

/// `follower` now follows `followee`; the followee is told of a new follow
/// (`follow`) once, and their posts join the follower's home timeline
/// (`timeline_length` of them at most). Nothing happens when the follow exists.
pub async fn follow(
    conn: &mut AnyConnection,
    follower: &str,
    followee: &str,
    timeline_length: i64,
) -> Result<Option<Written>, sqlx::Error> {
    let insert = "INSERT INTO follows (follower_id, followee_id, created_at) VALUES ($1, $2, $3) \
                  ON CONFLICT (follower_id, followee_id) DO NOTHING";
    let notice = Notice::new(followee, "follow", follower);
    let written = insert_and_tell(conn, insert, follower, followee, notice).await?;
    timelines::backfill(conn, follower, followee, timeline_length).await?;
    Ok(written)
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
    let notice = Notice::new(target, "follow_request", requester);
    insert_and_tell(conn, insert, requester, target, notice).await
}

/// Runs `insert` (`$1` actor, `$2` target, `$3` now) and writes `notice`
/// only when it inserted a row.
async fn insert_and_tell(
    conn: &mut AnyConnection,
    insert: &str,
    actor: &str,
    target: &str,
    notice: Notice<'_>,
) -> Result<Option<Written>, sqlx::Error> {
    let inserted = sqlx::query(insert)
        .bind(actor)
        .bind(target)
        .bind(time::now_ms())
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if inserted == 0 {
        return Ok(None);
    }
    notify(conn, notice).await
}

/// `target` accepts `requester`'s request: it becomes a follow, and the
/// requester is told (`follow_accepted`). `None` when there was no request.
pub async fn accept(
    conn: &mut AnyConnection,
    target: &str,
    requester: &str,
    timeline_length: i64,
) -> Result<Option<Vec<Written>>, sqlx::Error> {
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
