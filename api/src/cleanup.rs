//! Media hygiene: uploads never attached to a post or a chat message within the time to live
//! (`SORI_MEDIA_TTL_SECS`, a day by default) are deleted — the row, the
//! original upload and every processed output — by a task the API role runs
//! ([`run`]); [`sweep`] is one pass, keyset-batched so it never loads an
//! unbounded set.
//!
//! A media row is deleted first, by a statement that re-checks it is still
//! unattached (so a post created meanwhile wins), then its objects. An object
//! that cannot be deleted is logged and counted; it is left behind, not retried.
//!
//! The same task finishes the erasure of deleted accounts
//! ([`crate::effects::erasure::erase_pending`]), builds data exports left
//! pending and expires old ones ([`crate::effects::export::build_pending`]), purges answers stored for `Idempotency-Key` requests once
//! past their day ([`crate::core::idempotency::purge_expired`]), and expired
//! tokens with the push devices registered with them
//! ([`crate::core::sessions::purge_expired`]), and trims home timelines
//! ([`crate::effects::timelines::trim_all`]).

use crate::effects::{erasure, export, timelines};
use crate::model::media::UNATTACHED;
use sori_db::Db;
use sori_pipeline::store::ObjectStore;
use sqlx::Row;
use std::future::Future;
use std::time::Duration;

/// How long after its time a post may still be committing: the timeline
/// trimming pass looks back this much further than its previous start.
const TRIM_MARGIN: Duration = Duration::from_secs(60);

/// Rows examined per query.
pub const BATCH: i64 = 200;

/// Why a pass stopped. Recoverable: the next pass starts over and resumes the work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CleanupError {
    /// The database refused or is unreachable.
    #[error("media cleanup: database: {0}")]
    Db(#[from] sqlx::Error),
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Media rows deleted.
    pub media: u64,
    /// Objects whose deletion failed (left behind, logged).
    pub objects_failed: u64,
}

struct Candidate {
    id: String,
    original_key: String,
}

/// One pass: deletes every media created before `now_ms - ttl` that is not
/// attached and not leased by a worker, in batches of [`BATCH`].
pub async fn sweep(
    db: &Db,
    store: &ObjectStore,
    ttl: Duration,
    now_ms: i64,
) -> Result<Swept, CleanupError> {
    let cutoff = now_ms.saturating_sub(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
    let mut swept = Swept::default();
    let mut after = String::new();
    loop {
        let batch = candidates(db, &after, cutoff, now_ms).await?;
        let Some(last) = batch.last() else { break };
        after = last.id.clone();
        let full = batch.len() as i64 == BATCH;
        for media in batch {
            if delete_row(db, &media.id, cutoff).await? {
                swept.media += 1;
                swept.objects_failed += delete_objects(store, &media).await;
            }
        }
        if !full {
            break;
        }
    }
    Ok(swept)
}

/// The next batch after `after`, in id order (ids are UUIDv7: creation order).
async fn candidates(
    db: &Db,
    after: &str,
    cutoff: i64,
    now_ms: i64,
) -> Result<Vec<Candidate>, sqlx::Error> {
    let sql = format!(
        "SELECT id, original_key FROM media \
         WHERE id > $1 AND created_at < $2 \
         AND (lease_until IS NULL OR lease_until < $3) AND {UNATTACHED} \
         ORDER BY id LIMIT $4"
    );
    let rows = sqlx::query(&sql)
        .bind(after)
        .bind(cutoff)
        .bind(now_ms)
        .bind(BATCH)
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Candidate {
                id: r.try_get("id")?,
                original_key: r.try_get("original_key")?,
            })
        })
        .collect()
}

/// Deletes the row if it is still old and unattached; false when it no longer qualifies.
async fn delete_row(db: &Db, id: &str, cutoff: i64) -> Result<bool, sqlx::Error> {
    let sql = format!("DELETE FROM media WHERE id = $1 AND created_at < $2 AND {UNATTACHED}");
    let done = sqlx::query(&sql)
        .bind(id)
        .bind(cutoff)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the original and the outputs of every attempt; returns how many deletions failed.
async fn delete_objects(store: &ObjectStore, media: &Candidate) -> u64 {
    erasure::delete_media_objects(store, &media.id, &media.original_key).await
}

/// How often [`run`] sweeps for a given time to live: a 24th of it, between
/// one second and ten minutes, so media outlives its TTL by at most that.
pub fn interval_for(ttl: Duration) -> Duration {
    (ttl / 24).clamp(Duration::from_secs(1), Duration::from_secs(600))
}

/// Sweeps every [`interval_for`]`(ttl)` until `stop` resolves, and trims
/// home timelines to `timeline_length` rows. A failed pass is logged and
/// retried at the next tick.
pub async fn run(
    db: Db,
    store: ObjectStore,
    ttl: Duration,
    timeline_length: i64,
    stop: impl Future<Output = ()>,
) {
    let mut tick = tokio::time::interval(interval_for(ttl));
    // Timelines lengthened by posts since this, less a margin for posts
    // committing a little after their time was taken: at first, those of
    // the interval before this process started.
    let margin = TRIM_MARGIN.as_millis() as i64;
    let mut trim_since = now_ms() - interval_for(ttl).as_millis() as i64 - margin;
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {}
        }
        match sweep(&db, &store, ttl, now_ms()).await {
            Ok(s) if s.media > 0 => {
                tracing::info!(
                    media = s.media,
                    objects_failed = s.objects_failed,
                    "cleaned up unattached media"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "media cleanup pass failed; retrying later"),
        }
        let pass_start = now_ms();
        match timelines::trim_all(&db, timeline_length, trim_since).await {
            Ok(dropped) => {
                trim_since = pass_start - margin;
                if dropped > 0 {
                    tracing::info!(dropped, "trimmed home timelines");
                }
            }
            Err(e) => tracing::warn!(error = %e, "timeline trimming failed; retrying later"),
        }
        // Expired tokens, the push devices registered with them, old tickets.
        if let Err(e) = crate::core::sessions::purge_expired(&db, now_ms()).await {
            tracing::warn!(error = %e, "expired session purge failed; retrying later");
        }
        // Deleted accounts whose erasure is unfinished (a crash, a failed
        // object deletion, an upload URL still valid).
        match erasure::erase_pending(&db, &store, now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(accounts = n, "finished erasing deleted accounts"),
            Err(e) => tracing::warn!(error = %e, "account erasure pass failed; retrying later"),
        }
        // Data exports left pending, and archives past their time.
        if let Err(e) = export::build_pending(&db, &store, now_ms()).await {
            tracing::warn!(error = %e, "export pass failed; retrying later");
        }
        // Stored answers to Idempotency-Key requests past their day.
        if let Err(e) = crate::core::idempotency::purge_expired(&db, now_ms()).await {
            tracing::warn!(error = %e, "idempotency key purge failed; retrying later");
        }
    }
}

use sori_pipeline::clock::now_ms;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_follows_the_ttl_within_bounds() {
        assert_eq!(
            interval_for(Duration::from_secs(86_400)),
            Duration::from_secs(600)
        );
        assert_eq!(
            interval_for(Duration::from_secs(2_400)),
            Duration::from_secs(100)
        );
        assert_eq!(interval_for(Duration::ZERO), Duration::from_secs(1));
    }
}
