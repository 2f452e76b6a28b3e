//! Mutes: the caller stops hearing someone without telling them. A muted
//! user's posts leave the caller's feed and explore, and their
//! notifications leave the caller's list; nothing changes for the muted user,
//! who can still follow, like and message ([`crate::model::rules::not_muted`]).
//! A mute is for good or for a number of minutes, and muting again replaces it.

use super::{relation_page, Relation};
use crate::core::error::{ApiError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::pagination::{Page, PageQuery};
use crate::core::state::AppState;
use crate::core::time;
use crate::core::validation::QueryParams;
use crate::model::dialect::json_strings;
use crate::model::users::{require_user, Author};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sori_db::Db;
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Mute routes, merged by [`super::router`].
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(mute, unmute))
        .routes(routes!(list))
}

/// The longest mute with an end: a year, in minutes.
const MAX_MINUTES: i64 = 525_600;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MuteQuery {
    /// Mute for this many minutes (1–525600); absent: until unmuted.
    pub minutes: Option<i64>,
}

/// The user to mute or unmute must exist and not be the caller.
async fn check_target(db: &Db, caller: &str, id: &str) -> Result<(), ApiError> {
    require_user(db, id).await?;
    if id == caller {
        return Err(ApiError::invalid("id", "you cannot mute yourself"));
    }
    Ok(())
}

/// Mutes a user, for good or for `minutes`; they are not told.
#[utoipa::path(put, path = "/v1/users/{id}/mute", tag = "social",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "User id"), MuteQuery),
    responses(
        (status = 204, description = "Muted (an earlier mute of them is replaced)"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Muting yourself, or minutes out of range", body = Problem, content_type = "application/problem+json"),
    ))]
async fn mute(
    State(db): State<Db>,
    user: AuthUser,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<MuteQuery>,
) -> Result<StatusCode, ApiError> {
    if query
        .minutes
        .is_some_and(|m| !(1..=MAX_MINUTES).contains(&m))
    {
        return Err(ApiError::invalid(
            "minutes",
            format!("must be 1–{MAX_MINUTES}, or absent to mute until unmuted"),
        ));
    }
    check_target(&db, &user.id, &id).await?;
    let now = time::now_ms();
    let until = query.minutes.map(|m| now + m * 60_000);
    sqlx::query(
        "INSERT INTO mutes (muter_id, muted_id, until, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (muter_id, muted_id) DO UPDATE SET until = $3, created_at = $4",
    )
    .bind(&user.id)
    .bind(&id)
    .bind(until)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lifts the caller's mute of a user.
#[utoipa::path(delete, path = "/v1/users/{id}/mute", tag = "social",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 204, description = "Not muted (also when they were not)"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unmuting yourself", body = Problem, content_type = "application/problem+json"),
    ))]
async fn unmute(
    State(db): State<Db>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_target(&db, &user.id, &id).await?;
    sqlx::query("DELETE FROM mutes WHERE muter_id = $1 AND muted_id = $2")
        .bind(&user.id)
        .bind(&id)
        .execute(db.pool())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A muted person, and until when.
#[derive(Debug, Serialize, ToSchema)]
pub struct Muted {
    #[serde(flatten)]
    pub user: Author,
    /// Unix milliseconds when the mute lapses; `null`: until unmuted.
    pub until: Option<i64>,
}

/// The people the caller has muted (mutes in force), newest first, to undo them.
#[utoipa::path(get, path = "/v1/me/mutes", tag = "social",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, body = Page<Muted>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<Page<Muted>>, ApiError> {
    let page = relation_page(&state, &user.id, Relation::Mutes, &query).await?;
    // The ends of this page's mutes, in one statement over its ids.
    let ids: Vec<&str> = page.items.iter().map(|u| u.id.as_str()).collect();
    let sql = format!(
        "SELECT muted_id, until FROM mutes WHERE muter_id = $1 AND until IS NOT NULL \
         AND muted_id IN ({})",
        json_strings(state.db.backend(), "$2")
    );
    let timed: HashMap<String, i64> = sqlx::query_as::<_, (String, i64)>(&sql)
        .bind(&user.id)
        .bind(serde_json::to_string(&ids).unwrap_or_default())
        .fetch_all(state.db.pool())
        .await?
        .into_iter()
        .collect();
    let items = page
        .items
        .into_iter()
        .map(|user| Muted {
            until: timed.get(&user.id).copied(),
            user,
        })
        .collect();
    Ok(Json(Page {
        items,
        next_cursor: page.next_cursor,
    }))
}
