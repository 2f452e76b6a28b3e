//! What admins do besides resolving reports ([`super::reports`]), each
//! recorded in the audit log ([`crate::effects::audit`]) in its own
//! transaction: read that log, restore something a removal hid, and post an
//! announcement every account sees in its notifications (and gets one push
//! of, when no app of theirs is connected).

use super::comments::recount;
use super::reports::audit_reason;
use super::require_admin;
use crate::core::error::{ApiError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::media_urls::UrlSigner;
use crate::core::pagination::{Cursor, Page, PageQuery};
use crate::core::realtime::Event;
use crate::core::state::AppState;
use crate::core::time;
use crate::core::validation::{self, JsonBody, QueryParams};
use crate::effects::audit::{self, AuditEntry};
use crate::model::rules::live_connection;
use crate::model::users::Author;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sori_db::Db;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Moderation routes, merged by [`super::router`].
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(audit_log))
        .routes(routes!(restore))
        .routes(routes!(announce))
}

/// One admin action as the log shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditItem {
    pub id: String,
    /// The admin; `null` for the command line (`sori admin`).
    pub actor: Option<Author>,
    /// `report.dismiss`, `report.remove`, `restore`, `role.grant`,
    /// `role.revoke` or `announcement`.
    pub action: String,
    /// `post`, `comment`, `user`, `message` or `announcement`.
    pub target_kind: String,
    pub target_id: String,
    pub reason: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: String,
    actor_id: Option<String>,
    handle: Option<String>,
    display_name: Option<String>,
    avatar_version: Option<i64>,
    action: String,
    target_kind: String,
    target_id: String,
    reason: Option<String>,
    created_at: i64,
}

impl AuditRow {
    fn into_item(self, urls: &UrlSigner) -> AuditItem {
        let actor = Author::joined(
            self.actor_id,
            self.handle,
            self.display_name,
            self.avatar_version,
            urls,
        );
        AuditItem {
            id: self.id,
            actor,
            action: self.action,
            target_kind: self.target_kind,
            target_id: self.target_id,
            reason: self.reason,
            created_at: self.created_at,
        }
    }
}

/// Every admin action, newest first. Admins only.
#[utoipa::path(get, path = "/v1/admin/audit", tag = "social",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, body = Page<AuditItem>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
    ))]
async fn audit_log(
    State(state): State<AppState>,
    user: AuthUser,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<Page<AuditItem>>, ApiError> {
    let db = &state.db;
    require_admin(db, &user.id).await?;
    let (limit, cursor) = query.resolve()?;
    let rows: Vec<AuditRow> = sqlx::query_as(
        "SELECT l.id, l.actor_id, u.handle, u.display_name, u.avatar_version, l.action, \
         l.target_kind, l.target_id, l.reason, l.created_at \
         FROM audit_log l LEFT JOIN users u ON u.id = l.actor_id \
         WHERE l.created_at < $1 OR (l.created_at = $1 AND l.id < $2) \
         ORDER BY l.created_at DESC, l.id DESC LIMIT $3",
    )
    .bind(cursor.created_at)
    .bind(&cursor.id)
    .bind(i64::from(limit) + 1)
    .fetch_all(db.pool())
    .await?;
    let urls = state.media_urls.signer().await?;
    let items = rows.into_iter().map(|r| r.into_item(&urls)).collect();
    Ok(Json(Page::from_rows(items, limit, |i: &AuditItem| {
        Cursor {
            created_at: i.created_at,
            id: i.id.clone(),
        }
    })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Restore {
    /// `post`, `comment`, `user` or `message`.
    pub target_kind: String,
    pub target_id: String,
    /// Why, for the audit log (at most 500 characters).
    pub reason: Option<String>,
}

/// Undoes a moderator's removal: the post, comment, message or account is
/// shown again (a restored account signs in again: its sessions ended with
/// the removal). Admins only.
#[utoipa::path(post, path = "/v1/admin/restore", tag = "social",
    security(("bearer" = [])),
    request_body = Restore,
    responses(
        (status = 204, description = "Shown again"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such target", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not removed, or an account its owner deleted", body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown kind, or reason too long", body = Problem, content_type = "application/problem+json"),
    ))]
async fn restore(
    State(db): State<Db>,
    user: AuthUser,
    JsonBody(req): JsonBody<Restore>,
) -> Result<StatusCode, ApiError> {
    require_admin(&db, &user.id).await?;
    let table = match req.target_kind.as_str() {
        "post" => "posts",
        "comment" => "comments",
        "user" => "users",
        "message" => "messages",
        _ => {
            return Err(ApiError::invalid(
                "target_kind",
                "must be post, comment, user or message",
            ))
        }
    };
    let reason = audit_reason(req.reason.as_deref())?;
    let mut tx = db.pool().begin().await?;
    let hidden: Option<Option<i64>> =
        sqlx::query_scalar(&format!("SELECT hidden_at FROM {table} WHERE id = $1"))
            .bind(&req.target_id)
            .fetch_optional(&mut *tx)
            .await?;
    match hidden {
        None => return Err(ApiError::NotFound),
        Some(None) => return Err(ApiError::Conflict("this is not removed".to_owned())),
        Some(Some(_)) => {}
    }
    if table == "users" && account_deleted(&mut tx, &req.target_id).await? {
        return Err(ApiError::Conflict(
            "this account was deleted by its owner".to_owned(),
        ));
    }
    sqlx::query(&format!(
        "UPDATE {table} SET hidden_at = NULL WHERE id = $1"
    ))
    .bind(&req.target_id)
    .execute(&mut *tx)
    .await?;
    if table == "comments" {
        recount(&mut tx, &req.target_id).await?;
    }
    let entry = AuditEntry {
        actor_id: Some(&user.id),
        action: "restore",
        target_kind: &req.target_kind,
        target_id: &req.target_id,
        reason,
    };
    audit::record(&mut tx, entry).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether the account `id` was deleted by its owner (hidden for good).
async fn account_deleted(conn: &mut sqlx::AnyConnection, id: &str) -> Result<bool, sqlx::Error> {
    let deleted: Option<i64> = sqlx::query_scalar("SELECT deleted_at FROM users WHERE id = $1")
        .bind(id)
        .fetch_one(conn)
        .await?;
    Ok(deleted.is_some())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAnnouncement {
    /// What everyone is told: 1–500 characters.
    pub text: String,
}

/// An announcement as posted.
#[derive(Debug, Serialize, ToSchema)]
pub struct Announcement {
    pub id: String,
    pub text: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Accounts it was written to.
    pub recipients: u64,
}

/// Most characters of an announcement.
const MAX_ANNOUNCEMENT_CHARS: usize = 500;

/// Posts an announcement: every account (not removed or deleted) finds it
/// in its notifications (kind `announcement`, the text in `body.text`,
/// dismissable with `DELETE /v1/notifications/{id}`); connected ones are
/// told at once, the others get one push. Admins only.
#[utoipa::path(post, path = "/v1/admin/announcements", tag = "social",
    security(("bearer" = [])),
    request_body = CreateAnnouncement,
    responses(
        (status = 201, body = Announcement),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Empty or too long text", body = Problem, content_type = "application/problem+json"),
    ))]
async fn announce(
    State(state): State<AppState>,
    user: AuthUser,
    JsonBody(req): JsonBody<CreateAnnouncement>,
) -> Result<(StatusCode, Json<Announcement>), ApiError> {
    let db = &state.db;
    require_admin(db, &user.id).await?;
    let text = req.text.trim().to_owned();
    validation::text(&text, 1, MAX_ANNOUNCEMENT_CHARS)
        .map_err(|why| ApiError::invalid("text", why))?;
    let id = uuid::Uuid::now_v7().to_string();
    let now = time::now_ms();
    let mut tx = db.pool().begin().await?;
    sqlx::query(
        "INSERT INTO announcements (id, author_id, text, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&id)
    .bind(&user.id)
    .bind(&text)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let recipients = write_to_everyone(&mut tx, &id, &text, now).await?;
    let entry = AuditEntry {
        actor_id: Some(&user.id),
        action: "announcement",
        target_kind: "announcement",
        target_id: &id,
        reason: None,
    };
    audit::record(&mut tx, entry).await?;
    tx.commit().await?;
    tell_connected(&state, &id, now).await?;
    let announcement = Announcement {
        id,
        text,
        created_at: now,
        recipients,
    };
    Ok((StatusCode::CREATED, Json(announcement)))
}

/// SQL: the account `u` can be told (not removed, not deleted).
const ACTIVE: &str = "u.hidden_at IS NULL AND u.deleted_at IS NULL";

/// The notification id of announcement `id` for user `user` (SQL or
/// Rust): one per account, found again without a lookup table.
fn notice_id(id: &str, user: &str) -> String {
    format!("{id}:{user}")
}

/// Writes announcement `id` into every active account's notifications,
/// and a push for each that has a device and no live connection, in two
/// set-wise statements; returns how many accounts it was written to.
async fn write_to_everyone(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    text: &str,
    now: i64,
) -> Result<u64, sqlx::Error> {
    let body = serde_json::json!({ "announcement_id": id, "text": text }).to_string();
    let written = sqlx::query(&format!(
        "INSERT INTO notifications (id, user_id, kind, body, created_at) \
         SELECT $1 || ':' || u.id, u.id, 'announcement', $2, $3 FROM users u WHERE {ACTIVE}"
    ))
    .bind(id)
    .bind(&body)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    sqlx::query(&format!(
        "INSERT INTO push_outbox (id, user_id, kind, payload, next_attempt_at, created_at) \
         SELECT $1 || ':' || u.id, u.id, 'announcement', $2, $3, $3 FROM users u WHERE {ACTIVE} \
         AND EXISTS (SELECT 1 FROM devices d WHERE d.user_id = u.id) AND NOT {}",
        live_connection("u.id", "$3")
    ))
    .bind(id)
    .bind(&body)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(written)
}

/// Sends the `notification` event of announcement `id` to every account
/// connected now, on any API process.
async fn tell_connected(state: &AppState, id: &str, now: i64) -> Result<(), ApiError> {
    let online: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT user_id FROM ws_connections WHERE expires_at > $1")
            .bind(now)
            .fetch_all(state.db.pool())
            .await?;
    for user in online {
        let data = serde_json::json!({
            "id": notice_id(id, &user), "kind": "announcement", "created_at": now,
        });
        state
            .realtime
            .publish(vec![user], Event::new("notification", data))
            .await;
    }
    Ok(())
}
