//! Search: people by handle or display-name prefix, posts by tag.
//!
//! One route, `GET /v1/search?q=&kind=users|posts`, answering the usual list
//! envelope `{"items": [...], "next_cursor": …}` of one kind of item: users
//! (id, handle, display name) or posts (the feed's item). Two kinds in one
//! answer would need two cursors in one; a client showing both asks twice.
//!
//! Matching is case- and accent-insensitive by folding: [`fold`] (NFKD,
//! combining marks dropped, lowercase) is applied to the query and, on
//! sign-up and profile change, stored in `users.handle_fold` and
//! `users.name_fold`. A prefix is then the range `fold >= q AND fold < q ||
//! U+FFFF` on those columns' indexes. Both backends compare them bytewise
//! (SQLite's BINARY collation; the columns are `COLLATE "C"` on PostgreSQL),
//! and in UTF-8 byte order U+FFFF sorts after every character a folded
//! name can continue with (astral characters excepted), so the range is
//! exactly "starts with q" — the same answer on both, unlike `LIKE` (case
//! rules differ) or `ILIKE` (PostgreSQL only), and without scanning.
//!
//! Users come newest first by sign-up; removed users and users with a block
//! to the caller are left out, as are their posts.

use crate::core::error::{ApiError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::pagination::{Page, PageQuery};
use crate::core::state::AppState;
use crate::core::validation::{self, QueryParams};
use crate::model::posts::{tag_page, PostItem};
use crate::model::rules::user_visible;
use crate::model::users::{author_page, fold, Author, AuthorRow};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The search route, merged by [`super::router`].
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(search))
}

/// Longest query, in characters.
const MAX_QUERY: usize = 50;

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// People whose handle or display name starts with `q`.
    #[default]
    Users,
    /// Posts tagged `q` (with or without `#`).
    Posts,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// What to look for: 1–50 characters.
    pub q: String,
    /// `users` (default) or `posts`.
    #[param(inline)]
    pub kind: Option<Kind>,
}

/// The documented answer of the route: a page of users or a page of posts,
/// by `kind`. `anyOf`, not `oneOf`: an empty page is both. The two pages
/// are the components the follow lists and the feeds register.
struct SearchPage;

impl utoipa::PartialSchema for SearchPage {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::AnyOfBuilder;
        use utoipa::openapi::Ref;
        AnyOfBuilder::new()
            .item(Ref::from_schema_name("Page_Author"))
            .item(Ref::from_schema_name("Page_PostItem"))
            .into()
    }
}

impl ToSchema for SearchPage {}

/// People or posts matching `q`: one kind of item per answer (see the module docs).
#[utoipa::path(get, path = "/v1/search", tag = "social",
    security(("bearer" = [])),
    params(SearchQuery, PageQuery),
    responses(
        (status = 200, description = "A page of users (`kind=users`, `Page<Author>`) or posts (`kind=posts`, `Page<PostItem>`)",
            body = SearchPage),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad q, kind, limit or cursor", body = Problem, content_type = "application/problem+json"),
    ))]
async fn search(
    State(state): State<AppState>,
    user: AuthUser,
    QueryParams(search): QueryParams<SearchQuery>,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let q = search.q.trim();
    validation::text(q, 1, MAX_QUERY).map_err(|m| ApiError::invalid("q", m))?;
    match search.kind.unwrap_or_default() {
        Kind::Users => users(&state, &user.id, q, &page)
            .await
            .map(|p| Json(p).into_response()),
        Kind::Posts => {
            let tag = validation::normalize_tag(q).map_err(|m| ApiError::invalid("q", m))?;
            let posts: Page<PostItem> = tag_page(&state, &user.id, &tag, &page).await?;
            Ok(Json(posts).into_response())
        }
    }
}

/// Users whose folded handle or display name starts with the folded `q`.
async fn users(
    state: &AppState,
    viewer: &str,
    q: &str,
    query: &PageQuery,
) -> Result<Page<Author>, ApiError> {
    let (limit, cursor) = query.resolve()?;
    let low = fold(q);
    let high = format!("{low}\u{ffff}");
    let sql = format!(
        "SELECT u.id, u.handle, u.display_name, u.avatar_version, u.created_at FROM users u \
         WHERE ((u.handle_fold >= $2 AND u.handle_fold < $3) \
             OR (u.name_fold >= $2 AND u.name_fold < $3)) \
         AND {visible} AND (u.created_at < $4 OR (u.created_at = $4 AND u.id < $5)) \
         ORDER BY u.created_at DESC, u.id DESC LIMIT $6",
        visible = user_visible("u", "$1"),
    );
    let rows: Vec<AuthorRow> = sqlx::query_as(&sql)
        .bind(viewer)
        .bind(&low)
        .bind(&high)
        .bind(cursor.created_at)
        .bind(&cursor.id)
        .bind(i64::from(limit) + 1)
        .fetch_all(state.db.pool())
        .await?;
    let urls = state.media_urls.signer().await?;
    Ok(author_page(rows, limit, &urls))
}
