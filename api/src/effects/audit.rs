//! The moderation audit log: every admin action (a report resolved, a
//! removal undone, a role changed, an announcement) is recorded with who,
//! what, which target, why and when, in the transaction of the action
//! itself, so an action and its record exist together or not at all. Admins
//! read it at `GET /v1/admin/audit` ([`crate::social::moderation`]).

use crate::core::time;
use sqlx::AnyConnection;

/// One admin action to record.
#[derive(Debug, Clone, Copy)]
pub struct AuditEntry<'a> {
    /// The admin; `None` for the command line (`sori admin`).
    pub actor_id: Option<&'a str>,
    /// e.g. `report.remove`, `restore`, `role.grant`, `announcement`.
    pub action: &'a str,
    /// `post`, `comment`, `user`, `message`, `report` or `announcement`.
    pub target_kind: &'a str,
    pub target_id: &'a str,
    /// Why, as the admin gave it.
    pub reason: Option<&'a str>,
}

/// Writes `entry` on the connection of the transaction that does the action.
pub async fn record(conn: &mut AnyConnection, entry: AuditEntry<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (id, actor_id, action, target_kind, target_id, reason, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(entry.actor_id)
    .bind(entry.action)
    .bind(entry.target_kind)
    .bind(entry.target_id)
    .bind(entry.reason)
    .bind(time::now_ms())
    .execute(conn)
    .await?;
    Ok(())
}
