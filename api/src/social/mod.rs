//! The social graph and what people do to each other's posts: follows,
//! likes, comments, blocks, reports, search, plays and notifications, one
//! module each, merged by [`router`].
//!
//! The rules these modules share live here: who may act on a post
//! ([`post_for_action`]), the admin check, and oldest-first pages; the block
//! and removal filters other resources use too are [`crate::model::rules`].

pub mod blocks;
pub mod comments;
pub mod follow_requests;
pub mod follows;
pub mod likes;
pub mod moderation;
pub mod mutes;
pub mod notification_settings;
pub mod notifications;
pub mod plays;
pub mod reports;
pub mod search;

use crate::core::error::ApiError;
use crate::core::pagination::{Cursor, Page, PageQuery};
use crate::core::state::AppState;
use crate::effects::audit::{self, AuditEntry};
use sori_db::Db;
use utoipa_axum::router::OpenApiRouter;

use crate::model::posts::Audience;
use crate::model::rules::{audience, blocked_either_way, mute_in_force};
use crate::model::users::{author_page, Author, AuthorRow};

/// Every social route, merged by [`crate::app`].
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(follows::router())
        .merge(follow_requests::router())
        .merge(likes::router())
        .merge(comments::router())
        .merge(blocks::router())
        .merge(mutes::router())
        .merge(reports::router())
        .merge(search::router())
        .merge(plays::router())
        .merge(notifications::router())
        .merge(notification_settings::router())
        .merge(moderation::router())
}

/// A post someone wants to act on (like, comment, play).
#[derive(Debug)]
pub struct PostTarget {
    pub author_id: String,
    /// `public`, `followers` or `private`.
    pub visibility: String,
    /// A block stands between the caller and the author, in either direction.
    pub blocked: bool,
}

impl PostTarget {
    /// Whom the post reaches, for mentions in a comment on it.
    pub fn audience(&self) -> Audience {
        Audience {
            author_id: self.author_id.clone(),
            visibility: self.visibility.clone(),
        }
    }
}

/// Finds a post the caller may act on: 404 when it does not exist, was
/// removed (or its author was), is not meant for the caller
/// ([`audience`]), or is still processing and not the caller's. Whether a
/// block stands in the way is returned, not decided: acting is refused with
/// 403, reading answers 404.
pub async fn post_for_action(db: &Db, caller: &str, post_id: &str) -> Result<PostTarget, ApiError> {
    let sql = format!(
        "SELECT p.author_id, p.visibility, m.state FROM posts p JOIN users u ON u.id = p.author_id \
         JOIN media m ON m.id = p.media_id \
         WHERE p.id = $2 AND p.hidden_at IS NULL AND u.hidden_at IS NULL AND {}",
        audience("$1")
    );
    let row: Option<(String, String, String)> = sqlx::query_as(&sql)
        .bind(caller)
        .bind(post_id)
        .fetch_optional(db.pool())
        .await?;
    let Some((author_id, visibility, state)) = row else {
        return Err(ApiError::NotFound);
    };
    if state != "ready" && author_id != caller {
        return Err(ApiError::NotFound);
    }
    let blocked = author_id != caller && blocked_either_way(db, caller, &author_id).await?;
    Ok(PostTarget {
        author_id,
        visibility,
        blocked,
    })
}

/// A list of people only the caller sees: whom they block or mute, and who
/// asks to follow them.
#[derive(Debug, Clone, Copy)]
pub enum Relation {
    Blocks,
    Mutes,
    FollowRequests,
}

/// A page of the people in the caller's [`Relation`], newest first (walks
/// `blocks_list`, `mutes_list` or `follow_requests_target`), leaving out
/// removed users and lapsed mutes.
pub async fn relation_page(
    state: &AppState,
    caller: &str,
    relation: Relation,
    query: &PageQuery,
) -> Result<Page<Author>, ApiError> {
    let (limit, cursor) = query.resolve()?;
    let (table, mine, other, in_force) = match relation {
        Relation::Blocks => ("blocks", "blocker_id", "blocked_id", "1 = 1".to_owned()),
        Relation::FollowRequests => (
            "follow_requests",
            "target_id",
            "requester_id",
            "1 = 1".to_owned(),
        ),
        Relation::Mutes => (
            "mutes",
            "muter_id",
            "muted_id",
            mute_in_force(state.db.backend(), "r"),
        ),
    };
    let sql = format!(
        "SELECT u.id, u.handle, u.display_name, u.avatar_version, r.created_at \
         FROM {table} r JOIN users u ON u.id = r.{other} \
         WHERE r.{mine} = $1 AND u.hidden_at IS NULL AND {in_force} \
         AND (r.created_at < $2 OR (r.created_at = $2 AND r.{other} < $3)) \
         ORDER BY r.created_at DESC, r.{other} DESC LIMIT $4"
    );
    let rows: Vec<AuthorRow> = sqlx::query_as(&sql)
        .bind(caller)
        .bind(cursor.created_at)
        .bind(&cursor.id)
        .bind(i64::from(limit) + 1)
        .fetch_all(state.db.pool())
        .await?;
    let urls = state.media_urls.signer().await?;
    Ok(author_page(rows, limit, &urls))
}

/// 403 unless the caller's role is `admin` (granted with `sori admin grant`).
pub async fn require_admin(db: &Db, caller: &str) -> Result<(), ApiError> {
    let role: Option<String> = sqlx::query_scalar("SELECT role FROM users WHERE id = $1")
        .bind(caller)
        .fetch_optional(db.pool())
        .await?;
    match role.as_deref() {
        Some("admin") => Ok(()),
        _ => Err(ApiError::Forbidden),
    }
}

/// Grants (`admin = true`) or revokes the admin role of the user with this
/// handle (any case): what `sori admin` does, recorded in the audit log as
/// the command line's. False when no user has it.
pub async fn set_admin(db: &Db, handle: &str, admin: bool) -> Result<bool, sqlx::Error> {
    let (role, action) = if admin {
        ("admin", "role.grant")
    } else {
        ("user", "role.revoke")
    };
    let mut tx = db.pool().begin().await?;
    let id: Option<String> =
        sqlx::query_scalar("UPDATE users SET role = $1 WHERE handle_lower = $2 RETURNING id")
            .bind(role)
            .bind(handle.to_ascii_lowercase())
            .fetch_optional(&mut *tx)
            .await?;
    let Some(id) = id else {
        return Ok(false);
    };
    let entry = AuditEntry {
        actor_id: None,
        action,
        target_kind: "user",
        target_id: &id,
        reason: Some("sori admin"),
    };
    audit::record(&mut tx, entry).await?;
    tx.commit().await?;
    Ok(true)
}

/// The limit and position of an oldest-first page: [`PageQuery::resolve`]
/// starts newest-first lists at the end of time, these start at its beginning.
/// Queries then ask for rows strictly after the cursor.
pub fn oldest_first(query: &PageQuery) -> Result<(u32, Cursor), ApiError> {
    let (limit, cursor) = query.resolve()?;
    if query.cursor.as_deref().unwrap_or("").is_empty() {
        let start = Cursor {
            created_at: i64::MIN,
            id: String::new(),
        };
        return Ok((limit, start));
    }
    Ok((limit, cursor))
}
