//! Who is online, shared by every API process through the database.
//!
//! Each live socket has a row in `ws_connections` whose `expires_at` its
//! heartbeat (every pong) pushes forward; a user is online while any of their
//! rows has not expired. Why a table rather than counts kept through the
//! pub/sub: counts are lost or doubled when a process dies or a notification
//! is missed, and a newly started process could not learn them; a row per
//! connection with an expiry is self-healing — a crashed process's
//! connections simply expire within [`crate::core::realtime::WsConfig::presence_ttl`] — and
//! one indexed query answers "online?" from any process, including the
//! message route deciding whether to push. The cost is one small write per
//! connection per ping interval, and those are batched: a pong only marks its
//! connection in [`Heartbeats`], and every [`crate::core::realtime::WsConfig::heartbeat_flush`]
//! one transaction writes all marked connections (at 2 000 sockets, about one
//! commit a second instead of two hundred). The flush delay is far inside the
//! slack the expiry leaves (`presence_ttl` minus one ping interval).

use crate::core::error::{ApiError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::realtime::Heartbeats;
use crate::core::state::AppState;
use crate::model::dialect::json_strings;
use crate::model::presence::{is_live, status, Presence};
use crate::model::rules::blocked_either_way;
use crate::model::users::require_user;
use axum::extract::{Path, State};
use axum::Json;
use sori_db::Db;
use sori_pipeline::clock::now_ms;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_presence))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Records a new connection; true when the user was offline before it.
/// Also removes the user's expired rows (left by a process that died).
pub async fn connect(
    db: &Db,
    conn_id: &str,
    user_id: &str,
    ttl: Duration,
) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    sqlx::query("DELETE FROM ws_connections WHERE user_id = $1 AND expires_at <= $2")
        .bind(user_id)
        .bind(now)
        .execute(db.pool())
        .await?;
    let was_online = is_live(db, user_id, now).await?;
    sqlx::query(
        "INSERT INTO ws_connections (id, user_id, expires_at, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(conn_id)
    .bind(user_id)
    .bind(now + ms(ttl))
    .bind(now)
    .execute(db.pool())
    .await?;
    seen(db, user_id, now).await?;
    Ok(!was_online)
}

/// Writes the connections marked in `heartbeats` every `every`, for as long
/// as the process runs; a failed write puts its beats back for the next try.
pub async fn flush_heartbeats(heartbeats: Heartbeats, db: Db, every: Duration, ttl: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let beats = heartbeats.take();
        if beats.is_empty() {
            continue;
        }
        if let Err(e) = write_heartbeats(&db, &beats, ttl).await {
            tracing::warn!(error = %e, connections = beats.len(), "cannot record heartbeats");
            heartbeats.restore(beats);
        }
    }
}

/// Keeps each of `beats`' connections alive for another `ttl` and records
/// their users as seen, in one transaction.
async fn write_heartbeats(
    db: &Db,
    beats: &HashMap<String, String>,
    ttl: Duration,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    let conns: Vec<&String> = beats.keys().collect();
    // Distinct: an upsert may not touch one row twice in a statement.
    let users: BTreeSet<&String> = beats.values().collect();
    let json = |ids: Vec<&String>| serde_json::to_string(&ids).unwrap_or_default();
    let ids = json_strings(db.backend(), "$1");
    let mut tx = db.pool().begin().await?;
    sqlx::query(&format!(
        "UPDATE ws_connections SET expires_at = $2 WHERE id IN ({ids})"
    ))
    .bind(json(conns))
    .bind(now + ms(ttl))
    .execute(&mut *tx)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO presence (user_id, last_seen) SELECT value, $2 FROM ({ids}) AS ids \
         WHERE true ON CONFLICT (user_id) DO UPDATE SET last_seen = excluded.last_seen"
    ))
    .bind(json(users.into_iter().collect()))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Removes a connection; true when it was the user's last live one.
pub async fn disconnect(db: &Db, conn_id: &str, user_id: &str) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    sqlx::query("DELETE FROM ws_connections WHERE id = $1")
        .bind(conn_id)
        .execute(db.pool())
        .await?;
    seen(db, user_id, now).await?;
    Ok(!is_live(db, user_id, now).await?)
}

async fn seen(db: &Db, user_id: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO presence (user_id, last_seen) VALUES ($1, $2) \
         ON CONFLICT (user_id) DO UPDATE SET last_seen = excluded.last_seen",
    )
    .bind(user_id)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Whether the user is online on any device, and when they were last seen:
/// for the user themself and their chat partners only (a room between
/// them, no block). A user who hides their presence is shown offline and
/// never seen.
#[utoipa::path(get, path = "/v1/users/{id}/presence", tag = "chat",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, body = Presence),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user, no chat between you, or a block", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_presence(
    State(db): State<Db>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Presence>, ApiError> {
    require_user(&db, &id).await?;
    if id == user.id {
        return Ok(Json(status(&db, &id).await?));
    }
    if !chat_partners(&db, &user.id, &id).await? || blocked_either_way(&db, &user.id, &id).await? {
        return Err(ApiError::NotFound);
    }
    let shown: i64 = sqlx::query_scalar("SELECT show_presence FROM users WHERE id = $1")
        .bind(&id)
        .fetch_one(db.pool())
        .await?;
    if shown == 0 {
        return Ok(Json(Presence::hidden(&id)));
    }
    Ok(Json(status(&db, &id).await?))
}

/// Whether `a` and `b` share a chat room.
async fn chat_partners(db: &Db, a: &str, b: &str) -> Result<bool, sqlx::Error> {
    let found: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM chat_members me JOIN chat_members o \
         ON o.room_id = me.room_id WHERE me.user_id = $1 AND o.user_id = $2",
    )
    .bind(a)
    .bind(b)
    .fetch_one(db.pool())
    .await?;
    Ok(found > 0)
}
