//! The registry of live worker processes: each pool refreshes its row with
//! its job slots while it runs and removes it on shutdown, so every process
//! can report backlog per *live worker* — the figure an autoscaler scales
//! on — rather than per its own slots. A process that dies without removing
//! its row stops counting once its row is older than [`LIVE_FOR`].

use crate::clock::{millis, now_ms};
use sori_db::Db;
use std::time::Duration;

/// How long a row counts as live without a refresh (several sampling intervals).
pub const LIVE_FOR: Duration = Duration::from_secs(30);

/// Rows this much older than [`LIVE_FOR`] are deleted by any refresh.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// What the live workers add up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fleet {
    pub workers: u64,
    pub slots: u64,
}

/// Records that worker `id`, with `slots` job slots, is alive now.
pub async fn refresh(db: &Db, id: &str, slots: usize) -> Result<(), sqlx::Error> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO workers (id, slots, started_at, seen_at) VALUES ($1, $2, $3, $3) \
         ON CONFLICT (id) DO UPDATE SET slots = $2, seen_at = $3",
    )
    .bind(id)
    .bind(i64::try_from(slots).unwrap_or(i64::MAX))
    .bind(now)
    .execute(db.pool())
    .await?;
    sqlx::query("DELETE FROM workers WHERE seen_at < $1")
        .bind(now - millis(FORGET_AFTER))
        .execute(db.pool())
        .await?;
    Ok(())
}

/// The workers seen within [`LIVE_FOR`].
pub async fn live(db: &Db) -> Result<Fleet, sqlx::Error> {
    let (workers, slots): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), CAST(COALESCE(SUM(slots), 0) AS BIGINT) FROM workers WHERE seen_at >= $1",
    )
    .bind(now_ms() - millis(LIVE_FOR))
    .fetch_one(db.pool())
    .await?;
    Ok(Fleet {
        workers: u64::try_from(workers).unwrap_or(0),
        slots: u64::try_from(slots).unwrap_or(0),
    })
}

/// Removes worker `id` (a clean shutdown).
pub async fn leave(db: &Db, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM workers WHERE id = $1")
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sori_db::testing::fresh_db;

    #[tokio::test]
    async fn live_workers_are_counted_until_they_leave_or_go_quiet() {
        let t = fresh_db().await;
        assert_eq!(live(&t.db).await.unwrap(), Fleet::default());
        refresh(&t.db, "a", 2).await.unwrap();
        refresh(&t.db, "b", 4).await.unwrap();
        refresh(&t.db, "a", 2).await.unwrap();
        assert_eq!(
            live(&t.db).await.unwrap(),
            Fleet {
                workers: 2,
                slots: 6
            }
        );
        leave(&t.db, "b").await.unwrap();
        assert_eq!(
            live(&t.db).await.unwrap(),
            Fleet {
                workers: 1,
                slots: 2
            }
        );
        // A worker that died without leaving stops counting once quiet.
        sqlx::query("UPDATE workers SET seen_at = $1 WHERE id = 'a'")
            .bind(now_ms() - millis(LIVE_FOR) - 1000)
            .execute(t.db.pool())
            .await
            .unwrap();
        assert_eq!(live(&t.db).await.unwrap().workers, 0);
    }
}
