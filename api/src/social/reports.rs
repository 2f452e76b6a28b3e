//! Reports for moderation: anyone reports a post, comment, user or chat
//! message (one open report per reporter and target); admins list the open
//! ones and resolve each by dismissing it or removing the target.
//!
//! Removing sets `hidden_at` on the post, comment or user: the row stays, for
//! the record, but no list or lookup shows it any more. A removed user's
//! tokens are revoked and logging in again answers 403 `account-removed`. A removal resolves
//! every open report on the same target. A message can be reported only by a
//! member of its room (to anyone else it does not exist); removing it hides it
//! from the room's history, room list and unread counts.

use super::comments::uncount;
use super::{oldest_first, require_admin};
use crate::core::error::{on_unique, ApiError, FieldError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::limits::CreationLimits;
use crate::core::pagination::{Cursor, Page, PageQuery};
use crate::core::sessions;
use crate::core::state::AppState;
use crate::core::time;
use crate::core::validation::{self, JsonBody, QueryParams};
use crate::effects::audit::{self, AuditEntry};
use crate::model::rules::audience;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sori_db::Db;
use sqlx::AnyConnection;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Report routes, merged by [`super::router`].
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(resolve))
}

/// What can be reported.
pub const TARGET_KINDS: &[&str] = &["post", "comment", "user", "message"];
/// Why: a fixed list, so moderators can sort and count.
pub const REASONS: &[&str] = &[
    "spam",
    "harassment",
    "hate",
    "violence",
    "sexual",
    "self_harm",
    "misinformation",
    "other",
];
const MAX_DETAILS: usize = 1000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateReport {
    /// `post`, `comment`, `user` or `message`.
    pub target_kind: String,
    pub target_id: String,
    /// `spam`, `harassment`, `hate`, `violence`, `sexual`, `self_harm`, `misinformation` or `other`.
    pub reason: String,
    /// At most 1000 characters.
    #[serde(default)]
    pub details: String,
}

/// A report as moderators see it.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Report {
    pub id: String,
    pub reporter_id: String,
    pub target_kind: String,
    pub target_id: String,
    pub reason: String,
    pub details: String,
    /// `open`, `dismissed` or `removed`.
    pub state: String,
    pub resolved_by: Option<String>,
    /// Unix milliseconds.
    pub resolved_at: Option<i64>,
    /// Unix milliseconds.
    pub created_at: i64,
}

const SELECT_REPORTS: &str = "SELECT id, reporter_id, target_kind, target_id, reason, details, \
     state, resolved_by, resolved_at, created_at FROM reports ";

/// Checks the fields; names every bad one.
fn check(req: &CreateReport) -> Result<(), ApiError> {
    let mut fields = Vec::new();
    if !TARGET_KINDS.contains(&req.target_kind.as_str()) {
        let message = format!("must be one of {}", TARGET_KINDS.join(", "));
        fields.push(FieldError::new("target_kind", message));
    }
    if !REASONS.contains(&req.reason.as_str()) {
        fields.push(FieldError::new(
            "reason",
            format!("must be one of {}", REASONS.join(", ")),
        ));
    }
    if let Err(message) = validation::text(req.details.trim(), 0, MAX_DETAILS) {
        fields.push(FieldError::new("details", message));
    }
    if fields.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation { fields })
    }
}

/// The target must exist and be visible; a post, to someone it is meant
/// for; a message, to a member of its room.
async fn check_target(db: &Db, reporter: &str, kind: &str, id: &str) -> Result<(), ApiError> {
    let post = format!(
        "SELECT COUNT(*) FROM posts p WHERE p.id = $1 AND p.hidden_at IS NULL AND {}",
        audience("$2")
    );
    let sql = match kind {
        "post" => post.as_str(),
        "comment" => "SELECT COUNT(*) FROM comments WHERE id = $1 AND hidden_at IS NULL",
        "user" => "SELECT COUNT(*) FROM users WHERE id = $1 AND hidden_at IS NULL",
        _ => {
            "SELECT COUNT(*) FROM messages m JOIN chat_members cm \
             ON cm.room_id = m.room_id AND cm.user_id = $2 \
             WHERE m.id = $1 AND m.kind <> 'read' AND m.hidden_at IS NULL"
        }
    };
    let mut query = sqlx::query_scalar(sql).bind(id);
    if kind == "message" || kind == "post" {
        query = query.bind(reporter);
    }
    let found: i64 = query.fetch_one(db.pool()).await?;
    if found == 0 {
        return Err(ApiError::invalid("target_id", format!("no such {kind}")));
    }
    Ok(())
}

/// Reports content or a person to the moderators.
#[utoipa::path(post, path = "/v1/reports", tag = "social",
    security(("bearer" = [])),
    request_body = CreateReport,
    responses(
        (status = 201, body = Report),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "You already have an open report on this target", body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad kind, reason or details, or no such target", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many reports this hour; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
async fn create(
    State(db): State<Db>,
    State(limits): State<Arc<CreationLimits>>,
    user: AuthUser,
    JsonBody(req): JsonBody<CreateReport>,
) -> Result<(StatusCode, Json<Report>), ApiError> {
    check(&req)?;
    limits.reports.take(&user.id)?;
    check_target(&db, &user.id, &req.target_kind, &req.target_id).await?;
    let id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO reports (id, reporter_id, target_kind, target_id, reason, details, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(&user.id)
    .bind(&req.target_kind)
    .bind(&req.target_id)
    .bind(&req.reason)
    .bind(req.details.trim())
    .bind(time::now_ms())
    .execute(db.pool())
    .await
    .map_err(|e| {
        on_unique(e, || {
            ApiError::Conflict("you already have an open report on this".to_owned())
        })
    })?;
    Ok((StatusCode::CREATED, Json(find(&db, &id).await?)))
}

async fn find(db: &Db, id: &str) -> Result<Report, ApiError> {
    sqlx::query_as(&format!("{SELECT_REPORTS} WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?
        .ok_or(ApiError::NotFound)
}

/// Open reports, oldest first (the moderators' queue). Admins only.
#[utoipa::path(get, path = "/v1/reports", tag = "social",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, body = Page<Report>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list(
    State(db): State<Db>,
    user: AuthUser,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<Page<Report>>, ApiError> {
    require_admin(&db, &user.id).await?;
    let (limit, cursor) = oldest_first(&query)?;
    let sql = format!(
        "{SELECT_REPORTS} WHERE state = 'open' \
         AND (created_at > $1 OR (created_at = $1 AND id > $2)) \
         ORDER BY created_at, id LIMIT $3"
    );
    let rows: Vec<Report> = sqlx::query_as(&sql)
        .bind(cursor.created_at)
        .bind(&cursor.id)
        .bind(i64::from(limit) + 1)
        .fetch_all(db.pool())
        .await?;
    Ok(Json(Page::from_rows(rows, limit, |r| Cursor {
        created_at: r.created_at,
        id: r.id.clone(),
    })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolve {
    /// `dismiss` (nothing wrong) or `remove` (hide the target everywhere).
    pub action: String,
    /// Why, for the audit log (at most 500 characters).
    pub reason: Option<String>,
}

/// Resolves an open report. Admins only.
#[utoipa::path(post, path = "/v1/reports/{id}/resolve", tag = "social",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Report id")),
    request_body = Resolve,
    responses(
        (status = 200, body = Report),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already resolved", body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown action", body = Problem, content_type = "application/problem+json"),
    ))]
async fn resolve(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<Resolve>,
) -> Result<Json<Report>, ApiError> {
    let db = &app.db;
    require_admin(db, &user.id).await?;
    let state = match req.action.as_str() {
        "dismiss" => "dismissed",
        "remove" => "removed",
        _ => return Err(ApiError::invalid("action", "must be dismiss or remove")),
    };
    let reason = audit_reason(req.reason.as_deref())?;
    let report = find(db, &id).await?;
    if report.state != "open" {
        return Err(already_resolved());
    }
    let now = time::now_ms();
    let mut tx = db.pool().begin().await?;
    let closed = sqlx::query(
        "UPDATE reports SET state = $1, resolved_by = $2, resolved_at = $3 \
         WHERE id = $4 AND state = 'open'",
    )
    .bind(state)
    .bind(&user.id)
    .bind(now)
    .bind(&id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if closed != 1 {
        return Err(already_resolved());
    }
    let revoked = if state == "removed" {
        remove(&mut tx, &report, &user.id, now).await?
    } else {
        Vec::new()
    };
    let entry = AuditEntry {
        actor_id: Some(&user.id),
        action: &format!("report.{}", req.action),
        target_kind: &report.target_kind,
        target_id: &report.target_id,
        reason,
    };
    audit::record(&mut tx, entry).await?;
    tx.commit().await?;
    // A removed user's sockets close and their devices stop receiving pushes.
    sessions::ended(app.ending(), &report.target_id, &revoked).await?;
    find(db, &id).await.map(Json)
}

/// Most characters of an admin's reason.
const MAX_REASON_CHARS: usize = 500;

/// An admin's reason for the audit log: trimmed, empty as none, at most
/// [`MAX_REASON_CHARS`].
pub fn audit_reason(reason: Option<&str>) -> Result<Option<&str>, ApiError> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.chars().count() > MAX_REASON_CHARS) {
        return Err(ApiError::invalid(
            "reason",
            format!("at most {MAX_REASON_CHARS} characters"),
        ));
    }
    Ok(reason)
}

fn already_resolved() -> ApiError {
    ApiError::Conflict("this report is already resolved".to_owned())
}

/// Hides the report's target and resolves the other open reports on it; a
/// removed user's tokens are deleted, and their hashes returned for the
/// caller to drop from this process's session cache once committed.
async fn remove(
    conn: &mut AnyConnection,
    report: &Report,
    admin: &str,
    now: i64,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query(
        "UPDATE reports SET state = 'removed', resolved_by = $1, resolved_at = $2 \
         WHERE target_kind = $3 AND target_id = $4 AND state = 'open'",
    )
    .bind(admin)
    .bind(now)
    .bind(&report.target_kind)
    .bind(&report.target_id)
    .execute(&mut *conn)
    .await?;
    let table = match report.target_kind.as_str() {
        "post" => "posts",
        "comment" => "comments",
        "user" => "users",
        _ => "messages",
    };
    let sql = format!("UPDATE {table} SET hidden_at = $1 WHERE id = $2 AND hidden_at IS NULL");
    let hidden = sqlx::query(&sql)
        .bind(now)
        .bind(&report.target_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let mut revoked = Vec::new();
    if hidden == 1 && report.target_kind == "user" {
        // Signed out everywhere, on every process ([`sessions::ended`]).
        revoked =
            sqlx::query_scalar("DELETE FROM auth_tokens WHERE user_id = $1 RETURNING token_hash")
                .bind(&report.target_id)
                .fetch_all(&mut *conn)
                .await?;
    }
    if hidden == 1 && report.target_kind == "comment" {
        let post: String = sqlx::query_scalar("SELECT post_id FROM comments WHERE id = $1")
            .bind(&report.target_id)
            .fetch_one(&mut *conn)
            .await?;
        uncount(conn, &post).await?;
    }
    Ok(revoked)
}
