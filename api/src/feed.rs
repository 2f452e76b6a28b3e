//! Lists of posts, newest first and keyset-paginated: the caller's feed (own
//! and followed users' posts), explore (everyone's, optionally by tag) and
//! one user's posts.
//!
//! Each page is one query walking a `(…, created_at, id)` index backwards
//! from the cursor: the viewer's home timeline for the feed (written on
//! post, [`crate::effects::timelines`]; older posts by merging the followed
//! authors' `posts_author_feed` ranges), `posts_author_feed` for profiles,
//! `posts_time` for explore, the `post_tags` primary key for a tag.
//!
//! Posts removed by a moderator, posts of removed users, posts not meant for
//! the viewer (`followers` ones to non-followers, others' `private` ones),
//! and (outside the feed) posts of users with a block to the viewer are left
//! out of every list: [`crate::model::rules::visible`] adds those conditions
//! as column checks on rows the walk reads anyway and primary-key probes of
//! `blocks` and `follows`. The feed needs no block check: it shows only
//! followed authors, and blocking removes the follows both ways (see
//! [`crate::social::blocks`]). Muted authors leave the feed and explore, not
//! profiles ([`crate::model::rules::not_muted`]).
//!
//! Feed pages are kept in memory per viewer and query, and read again in the
//! background once older than `SORI_FEED_CACHE_MS` ([`crate::core::cache::FeedPages`]):
//! the caller's own writes (a mute included) clear them at once; others'
//! posts, likes, comments and visibility changes show within twice that time.

use crate::core::cache::{CachedJson, Lookup};
use crate::core::error::{ApiError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::pagination::{Cursor, Page, PageQuery};
use crate::core::state::AppState;
use crate::core::validation::{self, QueryParams};
use crate::effects::timelines;
use crate::model::dialect;
use crate::model::posts::{page, page_by, rows_from, tag_page, PostItem, SELECT_ITEMS};
use crate::model::rules::{not_muted, visible};
use crate::model::users::require_user;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use sori_db::Backend;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Feed, explore and profile-timeline routes, merged by [`crate::app`].
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(feed))
        .routes(routes!(explore))
        .routes(routes!(user_posts))
}

/// Rows strictly after the cursor in `(created_at DESC, id DESC)` order.
const BEFORE_CURSOR: &str = "(p.created_at < $2 OR (p.created_at = $2 AND p.id < $3))";
const NEWEST_FIRST: &str = "ORDER BY p.created_at DESC, p.id DESC LIMIT $4";

/// The merge query, for what is older than the viewer's timeline: the
/// page's post ids ([`dialect::feed_ids`]), then the full rows of those posts.
fn merge_sql(backend: Backend) -> String {
    let ids = dialect::feed_ids(backend, &not_muted(backend, "$1", "f.followee_id"));
    format!("{SELECT_ITEMS} WHERE p.id IN ({ids}) AND {BEFORE_CURSOR} {NEWEST_FIRST}")
}

/// The timeline query: the page from the viewer's home timeline, its rows
/// walked by the primary key and each checked against its post (removed,
/// private, media not ready) and author (removed, muted), merged newest
/// first with the posts of followed fan-in authors ([`dialect::fan_in_ids`]).
/// Each post's row is read once, for the check and the answer alike. Every
/// timeline row is of an author the viewer follows: the writers of
/// timelines keep it so ([`timelines::lock_author`]).
fn timeline_sql(backend: Backend) -> String {
    let rows = format!(
        "{SELECT_ITEMS} JOIN timelines t ON t.post_id = p.id \
         WHERE t.user_id = $1 AND (t.created_at, t.post_id) < ($2, $3) \
         AND p.hidden_at IS NULL AND u.hidden_at IS NULL \
         AND (p.author_id = $1 OR (p.visibility <> 'private' AND m.state = 'ready' AND {})) \
         ORDER BY t.created_at DESC, t.post_id DESC LIMIT $4",
        not_muted(backend, "$1", "t.author_id")
    );
    let fan_in_ids = dialect::fan_in_ids(
        backend,
        &not_muted(backend, "$1", "f.followee_id"),
        timelines::FLOOR,
    );
    let fan_in = format!("{SELECT_ITEMS} WHERE p.id IN ({fan_in_ids}) {NEWEST_FIRST}");
    format!(
        "SELECT * FROM ({rows}) tl UNION ALL SELECT * FROM ({fan_in}) fi \
         ORDER BY created_at DESC, id DESC LIMIT $4"
    )
}

/// A feed page: from the viewer's home timeline down to its floor, then,
/// when that leaves the page short, from the merge over followed authors
/// below the floor (a deep page, or an account older than timelines).
async fn feed_page(
    state: &AppState,
    viewer: &str,
    query: &PageQuery,
) -> Result<Page<PostItem>, ApiError> {
    let (limit, cursor) = query.resolve()?;
    let wanted = limit as usize + 1;
    let backend = state.db.backend();
    let timeline = timeline_sql(backend);
    let mut rows = rows_from(state, &timeline, viewer, &cursor, wanted as i64, &[]).await?;
    if rows.len() < wanted {
        let floor: Option<(i64, String)> = sqlx::query_as(timelines::FLOOR)
            .bind(viewer)
            .fetch_optional(state.db.pool())
            .await?;
        let below = match floor {
            // Floor 0: the timeline is everything there is.
            None | Some((0, _)) => None,
            Some((created_at, id)) if (created_at, &id) < (cursor.created_at, &cursor.id) => {
                Some(Cursor { created_at, id })
            }
            Some(_) => Some(cursor),
        };
        if let Some(below) = below {
            let more = (wanted - rows.len()) as i64;
            rows.extend(rows_from(state, &merge_sql(backend), viewer, &below, more, &[]).await?);
        }
    }
    let urls = state.media_urls.signer().await?;
    let items = rows.into_iter().map(|r| r.into_item(&urls)).collect();
    Ok(Page::from_rows(items, limit, PostItem::cursor))
}

/// The caller's posts (pending ones included) and the ready posts of everyone they follow.
#[utoipa::path(get, path = "/v1/feed", tag = "feed",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, body = Page<PostItem>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
    ))]
async fn feed(
    State(state): State<AppState>,
    user: AuthUser,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let key = query.key()?;
    let lookup = state.feed_pages.lookup(&user.id, &key);
    if state.feed_pages.is_enabled() {
        state.metrics.feed_cache_lookup(match &lookup {
            Lookup::Fresh(_) => "hit",
            Lookup::Stale { .. } => "stale",
            Lookup::Missing => "miss",
        });
    }
    match lookup {
        Lookup::Fresh(page) => Ok(page.into_response()),
        Lookup::Stale { page, refresh } => {
            if refresh {
                tokio::spawn(refresh_feed_page(state, user.id, query, key));
            }
            Ok(page.into_response())
        }
        Lookup::Missing => Ok(read_feed_page(&state, &user.id, &query, key)
            .await?
            .into_response()),
    }
}

/// Reads a feed page from the database and keeps it for the viewer.
async fn read_feed_page(
    state: &AppState,
    viewer: &str,
    query: &PageQuery,
    key: String,
) -> Result<CachedJson, ApiError> {
    let generation = state.feed_pages.generation(viewer);
    let page = CachedJson::new(&feed_page(state, viewer, query).await?)?;
    state
        .feed_pages
        .store(viewer, generation, key, page.clone());
    Ok(page)
}

/// Reads a stale cached page again, off the request that found it stale.
/// On failure the stale page ages out and the next reader reads the database.
async fn refresh_feed_page(state: AppState, viewer: String, query: PageQuery, key: String) {
    if let Err(e) = read_feed_page(&state, &viewer, &query, key).await {
        tracing::warn!(error = %e, "feed page refresh failed");
    }
}

/// How explore orders its posts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExploreSort {
    /// Newest first.
    #[default]
    Recent,
    /// Hottest first: plays, likes and comments, each worth less as it ages
    /// (half as much every six hours).
    Trending,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TagQuery {
    /// Only posts with this tag (with or without `#`, any case).
    pub tag: Option<String>,
    /// `recent` (the default) or `trending`.
    #[param(value_type = Option<ExploreSort>)]
    pub sort: Option<ExploreSort>,
}

/// SQL: explore's trending walk (`posts_trending`), hottest first, from the
/// cursor (`$2` a trend key, `$3` an id).
const TRENDING_FROM_CURSOR: &str = "(p.trend_key < $2 OR (p.trend_key = $2 AND p.id < $3)) \
     ORDER BY p.trend_key DESC, p.id DESC LIMIT $4";

/// Everyone's ready posts the caller may hear, newest or hottest first,
/// without authors the caller muted or a block between them; optionally
/// only those with a tag.
#[utoipa::path(get, path = "/v1/explore", tag = "feed",
    security(("bearer" = [])),
    params(TagQuery, PageQuery),
    responses(
        (status = 200, body = Page<PostItem>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad tag, sort, limit or cursor", body = Problem, content_type = "application/problem+json"),
    ))]
async fn explore(
    State(state): State<AppState>,
    user: AuthUser,
    QueryParams(query): QueryParams<PageQuery>,
    QueryParams(tag): QueryParams<TagQuery>,
) -> Result<Json<Page<PostItem>>, ApiError> {
    let tag_given = tag.tag.filter(|t| !t.is_empty());
    if tag.sort == Some(ExploreSort::Trending) {
        return trending(&state, &user.id, tag_given.as_deref(), &query)
            .await
            .map(Json);
    }
    let Some(raw) = tag_given else {
        let sql = format!(
            "{SELECT_ITEMS} WHERE m.state = 'ready' AND {} AND {} AND {BEFORE_CURSOR} {NEWEST_FIRST}",
            visible(),
            not_muted(state.db.backend(), "$1", "p.author_id")
        );
        return page(&state, &sql, &user.id, &query, &[]).await.map(Json);
    };
    let tag = validation::normalize_tag(&raw).map_err(|m| ApiError::invalid("tag", m))?;
    tag_page(&state, &user.id, &tag, &query).await.map(Json)
}

/// Explore's hottest posts first, with `tag` (raw) when given.
async fn trending(
    state: &AppState,
    viewer: &str,
    tag: Option<&str>,
    query: &PageQuery,
) -> Result<Page<PostItem>, ApiError> {
    let tag = tag
        .map(|raw| validation::normalize_tag(raw).map_err(|m| ApiError::invalid("tag", m)))
        .transpose()?;
    let with_tag = match tag {
        Some(_) => "AND EXISTS (SELECT 1 FROM post_tags t WHERE t.post_id = p.id AND t.tag = $5)",
        None => "",
    };
    let sql = format!(
        "{SELECT_ITEMS} WHERE m.state = 'ready' AND {} AND {} {with_tag} AND {TRENDING_FROM_CURSOR}",
        visible(),
        not_muted(state.db.backend(), "$1", "p.author_id")
    );
    let extra: Vec<&str> = tag.as_deref().into_iter().collect();
    page_by(
        state,
        &sql,
        viewer,
        query,
        &extra,
        PostItem::trending_cursor,
    )
    .await
}

/// One user's posts: ready ones, plus pending ones when the caller is that user.
#[utoipa::path(get, path = "/v1/users/{id}/posts", tag = "feed",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "User id"), PageQuery),
    responses(
        (status = 200, body = Page<PostItem>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
    ))]
async fn user_posts(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<Page<PostItem>>, ApiError> {
    require_user(&state.db, &id).await?;
    let sql = format!(
        "{SELECT_ITEMS} WHERE p.author_id = $5 AND (m.state = 'ready' OR p.author_id = $1) \
         AND {} AND {BEFORE_CURSOR} {NEWEST_FIRST}",
        visible()
    );
    page(&state, &sql, &user.id, &query, &[&id]).await.map(Json)
}
