//! The trending score of a post, kept up to date by what people do with it:
//! each play, like and comment adds its weight to a score that halves every
//! [`HALF_LIFE_MS`], so a burst of attention today outweighs more of it last
//! week. The score is stored as a time, the post's `trend_key` (migration
//! 0022): `t + H·log2(score at t)`. A post's score now is
//! `2^((trend_key − now)/H)`, so ordering by the key orders by the decayed
//! score at any moment, and one indexed walk serves `GET
//! /v1/explore?sort=trending`.
//!
//! The key is read and written in the transaction that counts the event,
//! after its `UPDATE` of the post's counter has locked the row, so two
//! events never lose one another's weight.

use sqlx::AnyConnection;

/// How long a post's trending score takes to halve: six hours.
pub const HALF_LIFE_MS: f64 = 6.0 * 3_600_000.0;

/// What an event adds to a post's score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engagement {
    Play,
    Like,
    Comment,
}

impl Engagement {
    fn weight(self) -> f64 {
        match self {
            Engagement::Play => 1.0,
            Engagement::Like => 3.0,
            Engagement::Comment => 5.0,
        }
    }
}

/// The key after an event of `weight` at `now` on a post whose key was `key`.
pub fn bumped(key: i64, now: i64, weight: f64) -> i64 {
    // The score now, bounded so a key far in the past or future stays finite.
    let exponent = ((key - now) as f64 / HALF_LIFE_MS).clamp(-1000.0, 1000.0);
    let score = exponent.exp2() + weight;
    now + (HALF_LIFE_MS * score.log2()).round() as i64
}

/// Adds `event` to the post's score, on the connection of the transaction
/// that has just counted it (and so holds the post's row).
pub async fn bump(
    conn: &mut AnyConnection,
    post_id: &str,
    event: Engagement,
    now: i64,
) -> Result<(), sqlx::Error> {
    let key: Option<i64> = sqlx::query_scalar("SELECT trend_key FROM posts WHERE id = $1")
        .bind(post_id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(key) = key else {
        return Ok(());
    };
    sqlx::query("UPDATE posts SET trend_key = $1 WHERE id = $2")
        .bind(bumped(key, now, event.weight()))
        .bind(post_id)
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn a_burst_now_outweighs_more_attention_a_day_ago() {
        let now = 100 * 24 * HOUR;
        // One like on a new post: score 1 + 3 = 4, two half-lives ahead.
        let fresh = bumped(now, now, 3.0);
        assert_eq!(fresh, now + 12 * HOUR);
        // Twenty likes a day ago (four half-lives): 61 then, under 4 now.
        let mut old = now - 24 * HOUR;
        for _ in 0..20 {
            old = bumped(old, now - 24 * HOUR, 3.0);
        }
        assert!(old < fresh, "{old} vs {fresh}");
        // The same twenty likes now are far ahead of one.
        let mut hot = now;
        for _ in 0..20 {
            hot = bumped(hot, now, 3.0);
        }
        assert!(hot > fresh + 2 * 6 * HOUR);
    }

    #[test]
    fn a_post_never_engaged_keeps_its_creation_time_and_extremes_stay_finite() {
        let now = 1_000 * HOUR;
        // A play on a post whose score has decayed to nothing adds one unit.
        let revived = bumped(0, now, 1.0);
        assert!((revived - now).abs() <= 1, "{revived}");
        let far = bumped(i64::MAX / 2, now, 1.0);
        assert!(far > now);
    }
}
