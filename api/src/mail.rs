//! The mail relay the API role runs: sends what the outbox holds
//! ([`crate::effects::mail`]) through the [`Mailer`], deleting each mail
//! once the server accepted it, and retrying with a growing delay (up to
//! [`MAX_BACKOFF`]) while the server is down. Several API processes may run
//! it: each mail is claimed by moving its due time first, so one process
//! sends it (a crash between the server's acceptance and the delete sends
//! it twice, never zero times). A mail still unsent after [`GIVE_UP_AFTER`]
//! holds a code long expired: it is dropped, with a warning.

use crate::core::mail::{MailError, Mailer};
use sori_db::Db;
use sori_pipeline::clock::now_ms;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Mails read per pass.
const BATCH: i64 = 50;
/// How long a claim holds: a process that dies mid-send leaves the mail to
/// another after this.
const CLAIM: Duration = Duration::from_secs(60);
/// The longest wait between two tries of one mail.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How long a mail is tried before it is dropped.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How often [`run`] looks for due mail.
const TICK: Duration = Duration::from_secs(1);

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Relayed {
    pub sent: u64,
    /// Tries that failed; the mail stays for a later pass.
    pub failed: u64,
    /// Mails given up on ([`GIVE_UP_AFTER`]) or undeliverable.
    pub dropped: u64,
}

#[derive(sqlx::FromRow)]
struct Due {
    id: String,
    recipient: String,
    subject: String,
    body: String,
    attempts: i64,
    next_attempt_at: i64,
    created_at: i64,
}

/// One pass at `now`: every due mail (up to [`BATCH`]) is claimed and sent.
pub async fn relay_once(db: &Db, mailer: &Mailer, now: i64) -> Result<Relayed, sqlx::Error> {
    let due: Vec<Due> = sqlx::query_as(
        "SELECT id, recipient, subject, body, attempts, next_attempt_at, created_at \
         FROM mail_outbox WHERE next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2",
    )
    .bind(now)
    .bind(BATCH)
    .fetch_all(db.pool())
    .await?;
    let mut done = Relayed::default();
    for mail in due {
        if now - mail.created_at > GIVE_UP_AFTER.as_millis() as i64 {
            tracing::warn!(mail_id = %mail.id, attempts = mail.attempts, "mail dropped: unsent for a day");
            delete(db, &mail.id).await?;
            done.dropped += 1;
            continue;
        }
        if !claim(db, &mail, now).await? {
            continue;
        }
        match mailer
            .send(&mail.recipient, &mail.subject, &mail.body)
            .await
        {
            Ok(()) => {
                delete(db, &mail.id).await?;
                done.sent += 1;
            }
            Err(MailError::Recipient(why)) => {
                tracing::warn!(mail_id = %mail.id, %why, "mail dropped: undeliverable address");
                delete(db, &mail.id).await?;
                done.dropped += 1;
            }
            Err(e) => {
                retry_later(db, &mail, now, &e.to_string()).await?;
                done.failed += 1;
            }
        }
    }
    Ok(done)
}

/// Moves the mail's due time past the claim, if no other process did first.
async fn claim(db: &Db, mail: &Due, now: i64) -> Result<bool, sqlx::Error> {
    let claimed = sqlx::query(
        "UPDATE mail_outbox SET next_attempt_at = $1 WHERE id = $2 AND next_attempt_at = $3",
    )
    .bind(now + CLAIM.as_millis() as i64)
    .bind(&mail.id)
    .bind(mail.next_attempt_at)
    .execute(db.pool())
    .await?;
    Ok(claimed.rows_affected() == 1)
}

async fn delete(db: &Db, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM mail_outbox WHERE id = $1")
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// The wait after the `attempts`-th failure: 2 s, doubling, at most [`MAX_BACKOFF`].
pub fn backoff(attempts: i64) -> Duration {
    let exponent = attempts.clamp(0, 16) as u32;
    (Duration::from_secs(2) * 2u32.pow(exponent)).min(MAX_BACKOFF)
}

async fn retry_later(db: &Db, mail: &Due, now: i64, error: &str) -> Result<(), sqlx::Error> {
    tracing::warn!(mail_id = %mail.id, attempts = mail.attempts + 1, %error, "mail not sent; retrying later");
    sqlx::query(
        "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2 \
         WHERE id = $3",
    )
    .bind(now + backoff(mail.attempts).as_millis() as i64)
    .bind(error)
    .bind(&mail.id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Relays every [`TICK`] until `stop` resolves; a failed pass is logged.
pub async fn run(db: Db, mailer: Arc<Mailer>, stop: impl Future<Output = ()>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {}
        }
        if let Err(e) = relay_once(&db, &mailer, now_ms()).await {
            tracing::warn!(error = %e, "mail relay pass failed; retrying");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff(0), Duration::from_secs(2));
        assert_eq!(backoff(3), Duration::from_secs(16));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }
}
