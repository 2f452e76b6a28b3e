//! The caller's sessions: listing them (where and when each was used),
//! ending one, and ending all of them ("log out everywhere"). Ending a
//! session closes its WebSockets and unregisters the push devices
//! registered with it ([`sessions::ended`]).

use crate::core::error::{ApiError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::pagination::{Cursor, Page, PageQuery};
use crate::core::sessions::{self, LastUses, LAST_USED_FLUSH};
use crate::core::state::AppState;
use crate::core::validation::QueryParams;
use crate::model::dialect::json_strings;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use sori_db::Db;
use std::future::Future;
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
    // This process's last uses first, so the list shows this very request's.
    write_last_uses(&state.db, &state.sessions.last_uses).await?;
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

/// Writes the sessions marked in `last_uses` every [`LAST_USED_FLUSH`]
/// until `stop`, then once more, so a stopping process loses none.
pub async fn flush_last_uses(last_uses: LastUses, db: Db, stop: impl Future<Output = ()>) {
    let mut tick = tokio::time::interval(LAST_USED_FLUSH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        let stopping = tokio::select! {
            _ = &mut stop => true,
            _ = tick.tick() => false,
        };
        if let Err(e) = write_last_uses(&db, &last_uses).await {
            tracing::warn!(error = %e, "cannot record sessions' last use; retrying later");
        }
        if stopping {
            break;
        }
    }
}

/// Sessions written per statement by [`write_last_uses`].
const LAST_USES_PER_STATEMENT: usize = 500;

/// Records the sessions marked in `last_uses` as used now; on failure they
/// stay marked for the next try.
async fn write_last_uses(db: &Db, last_uses: &LastUses) -> Result<(), sqlx::Error> {
    let marked: Vec<String> = last_uses.take().into_iter().collect();
    let sql = format!(
        "UPDATE auth_tokens SET last_used_at = $1 WHERE token_hash IN ({})",
        json_strings(db.backend(), "$2")
    );
    for (i, chunk) in marked.chunks(LAST_USES_PER_STATEMENT).enumerate() {
        let hashes = serde_json::to_string(chunk).unwrap_or_default();
        let written = sqlx::query(&sql)
            .bind(crate::core::time::now_ms())
            .bind(hashes)
            .execute(db.pool())
            .await;
        if let Err(e) = written {
            let unwritten = &marked[i * LAST_USES_PER_STATEMENT..];
            last_uses.restore(unwritten.iter().cloned().collect());
            return Err(e);
        }
    }
    Ok(())
}
