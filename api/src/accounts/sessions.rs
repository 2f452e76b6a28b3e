//! The caller's sessions: listing them (where and when each was used),
//! ending one, and ending all of them ("log out everywhere"). Ending a
//! session closes its WebSockets and unregisters the push devices
//! registered with it ([`sessions::ended`]).

use crate::core::error::{ApiError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::pagination::{Cursor, Page, PageQuery};
use crate::core::sessions;
use crate::core::state::AppState;
use crate::core::validation::QueryParams;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sessions))
        .routes(routes!(end_session))
        .routes(routes!(logout_all))
}

/// One of the caller's sessions (a login), as a "where you're logged in"
/// screen shows it.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct SessionInfo {
    /// Pass to `DELETE /v1/me/sessions/{id}` to end it.
    pub id: String,
    /// Unix milliseconds of the login.
    pub created_at: i64,
    /// Unix milliseconds of its last request, to within five minutes.
    pub last_used_at: i64,
    /// Unix milliseconds after which its token is refused.
    pub expires_at: i64,
    /// The `User-Agent` the login came with; empty if none.
    pub user_agent: String,
    /// The network the login came from (an IPv4 /24 or IPv6 /48, never the
    /// full address); empty if unknown.
    pub address: String,
    /// Whether this is the session the request came with.
    #[sqlx(skip)]
    pub current: bool,
    #[serde(skip)]
    token_hash: String,
}

/// The caller's unexpired sessions, newest login first.
#[utoipa::path(get, path = "/v1/me/sessions", tag = "accounts",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, body = Page<SessionInfo>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_sessions(
    State(state): State<AppState>,
    user: AuthUser,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<Page<SessionInfo>>, ApiError> {
    let (limit, cursor) = query.resolve()?;
    let rows: Vec<SessionInfo> = sqlx::query_as(
        "SELECT id, created_at, COALESCE(last_used_at, created_at) AS last_used_at, expires_at, \
         user_agent, address, token_hash FROM auth_tokens \
         WHERE user_id = $1 AND expires_at > $2 \
         AND (created_at < $3 OR (created_at = $3 AND id < $4)) \
         ORDER BY created_at DESC, id DESC LIMIT $5",
    )
    .bind(&user.id)
    .bind(crate::core::time::now_ms())
    .bind(cursor.created_at)
    .bind(&cursor.id)
    .bind(i64::from(limit) + 1)
    .fetch_all(state.db.pool())
    .await?;
    let mut page = Page::from_rows(rows, limit, |s| Cursor {
        created_at: s.created_at,
        id: s.id.clone(),
    });
    for session in &mut page.items {
        session.current = session.token_hash == user.session_hash();
    }
    Ok(Json(page))
}

/// Ends one of the caller's sessions (this one too, if named): its token
/// stops working, its sockets close, its push devices are unregistered.
#[utoipa::path(delete, path = "/v1/me/sessions/{id}", tag = "accounts",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 204, description = "Session ended"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No session of the caller has this id", body = Problem, content_type = "application/problem+json"),
    ))]
async fn end_session(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let hash: Option<String> = sqlx::query_scalar(
        "DELETE FROM auth_tokens WHERE id = $1 AND user_id = $2 RETURNING token_hash",
    )
    .bind(&id)
    .bind(&user.id)
    .fetch_optional(state.db.pool())
    .await?;
    let hash = hash.ok_or(ApiError::NotFound)?;
    sessions::ended(state.ending(), &user.id, &[hash]).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How many sessions "log out everywhere" ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ended {
    pub sessions_ended: usize,
}

/// Logs out everywhere: ends every session of the caller, the one this
/// request came with included.
#[utoipa::path(post, path = "/v1/auth/logout-all", tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Ended),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn logout_all(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<Ended>, ApiError> {
    let sessions_ended = sessions::revoke_all(state.ending(), &user.id, None).await?;
    Ok(Json(Ended { sessions_ended }))
}
