//! Push to offline users. What causes a push (a chat message to a member with
//! no live connection) calls [`enqueue`] inside its own transaction, so the
//! push is recorded exactly when the message is; a dispatcher delivers the
//! outbox later and keeps an entry until a sender accepts it.

use sori_pipeline::clock::now_ms;
use sqlx::AnyConnection;

/// Records a push of event `kind` (e.g. `message.new`) with `payload` for
/// `user_id`, due at once. Call it on the connection of the transaction that
/// writes the cause.
pub async fn enqueue(
    conn: &mut AnyConnection,
    user_id: &str,
    kind: &str,
    payload: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO push_outbox (id, user_id, kind, payload, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(user_id)
    .bind(kind)
    .bind(payload.to_string())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}
