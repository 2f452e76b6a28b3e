//! Mail to send, written into the outbox in the caller's transaction (so
//! the request and its mail commit together, and a mail server outage only
//! delays it); the relay ([`crate::mail`]) sends it.

use sqlx::AnyConnection;

/// Queues one plain-text mail to `recipient`, due at once.
pub async fn enqueue(
    conn: &mut AnyConnection,
    recipient: &str,
    subject: &str,
    body: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO mail_outbox (id, recipient, subject, body, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(recipient)
    .bind(subject)
    .bind(body)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}
