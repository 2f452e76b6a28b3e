//! Playlists: a user's ordered lists of voice posts, public or private.
//!
//! A private playlist exists only for its owner: everyone else gets 404, so
//! its existence does not leak. A public one is seen by everyone except users
//! blocked either way with the owner; only the owner edits it (others get 403).
//!
//! An item whose post is hidden, not ready, or written by someone blocked
//! either way with the viewer drops out of what that viewer sees (item list,
//! counts, total duration) but keeps its row, and comes back if the post does;
//! a deleted post's rows go with it (cascade).
//!
//! Order: each item stores an integer `position`. Every write runs in one
//! transaction whose first statement bumps `playlists.version`, which
//! serialises the writers of one playlist on both backends (a row lock on
//! PostgreSQL, the database write lock on SQLite); the writer then rewrites
//! the positions to `0..n-1` ([`write_order`]), and `UNIQUE(playlist_id,
//! position)` guards the result.

use crate::core::error::{on_unique, ApiError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::media_urls::UrlSigner;
use crate::core::pagination::{Cursor, Page, PageQuery};
use crate::core::state::AppState;
use crate::core::time;
use crate::core::validation::{self, Checks, JsonBody, QueryParams};
use crate::model::posts::{PostItem, PostRow, SELECT_ITEMS};
use crate::model::rules::{user_visible, visible};
use crate::model::users::{require_user, Author};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sori_db::Db;
use sqlx::{Any, Transaction};
use std::collections::HashSet;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Most items in one playlist (counting items that currently drop out).
pub const MAX_ITEMS: usize = 500;
/// Most playlists one user may own.
pub const MAX_PLAYLISTS: i64 = 200;
/// Longest title, in characters.
pub const MAX_TITLE: usize = 100;
/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 1000;

/// Playlist routes, merged by [`crate::app`].
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_playlist))
        .routes(routes!(get_playlist, update_playlist, delete_playlist))
        .routes(routes!(add_item, reorder_items))
        .routes(routes!(remove_item))
        .routes(routes!(user_playlists))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePlaylist {
    /// 1–100 characters.
    pub title: String,
    /// At most 1000 characters.
    #[serde(default)]
    pub description: String,
    /// Whether everyone may see it; private (`false`) by default.
    #[serde(default)]
    pub public: bool,
}

/// Only the fields given change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePlaylist {
    pub title: Option<String>,
    pub description: Option<String>,
    pub public: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddItem {
    /// A ready post the caller can see.
    pub post_id: String,
    /// Where the post goes among the items the owner sees (0 = first);
    /// the end when absent.
    pub position: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reorder {
    /// Every item of the playlist (as the owner sees it), each once, in the new order.
    pub post_ids: Vec<String>,
}

/// A playlist without its items, as lists show it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlaylistSummary {
    pub id: String,
    pub owner: Author,
    pub title: String,
    pub description: String,
    pub public: bool,
    /// Items the caller sees.
    pub item_count: i64,
    /// Sum of the durations of the items the caller sees.
    pub total_duration_ms: i64,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

/// A playlist and its items in order, each playable as it is.
#[derive(Debug, Serialize, ToSchema)]
pub struct Playlist {
    #[serde(flatten)]
    pub playlist: PlaylistSummary,
    pub items: Vec<PostItem>,
}

/// Whether the viewer `$1` sees item post `p` (author `u`, media `m`): a
/// ready post the feed would show them ([`visible`]).
fn item_visible() -> String {
    format!("m.state = 'ready' AND {}", visible())
}

/// Whether the viewer `$1` sees playlist `l` of owner `o`.
fn playlist_visible() -> String {
    format!(
        "(l.owner_id = $1 OR (l.is_public = 1 AND {}))",
        user_visible("o", "$1")
    )
}

/// A playlist's items joined to their posts, authors and media.
const ITEMS_OF_L: &str = "FROM playlist_items i JOIN posts p ON p.id = i.post_id \
    JOIN users u ON u.id = p.author_id JOIN media m ON m.id = p.media_id \
    WHERE i.playlist_id = l.id";

/// The columns of a [`PlaylistRow`] for viewer `$1`; callers append `WHERE …`
/// over `l` (playlists) and `o` (owner).
fn select_playlists() -> String {
    format!(
        "SELECT l.id, l.owner_id, o.handle, o.display_name, o.avatar_version, l.title, l.description, l.is_public, \
           (SELECT COUNT(*) {ITEMS_OF_L} AND {visible}) AS item_count, \
           (SELECT CAST(COALESCE(SUM(m.duration_ms), 0) AS BIGINT) {ITEMS_OF_L} AND {visible}) \
             AS total_duration_ms, \
           l.created_at, l.updated_at \
         FROM playlists l JOIN users o ON o.id = l.owner_id ",
        visible = item_visible(),
    )
}

#[derive(Debug, sqlx::FromRow)]
struct PlaylistRow {
    id: String,
    owner_id: String,
    handle: String,
    display_name: String,
    avatar_version: Option<i64>,
    title: String,
    description: String,
    is_public: i64,
    item_count: i64,
    total_duration_ms: i64,
    created_at: i64,
    updated_at: i64,
}

impl PlaylistRow {
    /// The answer shape, the owner's avatar URL signed by `urls`.
    fn summary(self, urls: &UrlSigner) -> PlaylistSummary {
        let r = self;
        PlaylistSummary {
            id: r.id,
            owner: Author {
                avatar_url: urls.avatar(&r.owner_id, r.avatar_version),
                id: r.owner_id,
                handle: r.handle,
                display_name: r.display_name,
            },
            title: r.title,
            description: r.description,
            public: r.is_public != 0,
            item_count: r.item_count,
            total_duration_ms: r.total_duration_ms,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// The playlist as `viewer` may see it; 404 when it does not exist for them.
async fn find_playlist(db: &Db, viewer: &str, id: &str) -> Result<PlaylistRow, ApiError> {
    let sql = format!(
        "{} WHERE l.id = $2 AND {}",
        select_playlists(),
        playlist_visible()
    );
    let row: Option<PlaylistRow> = sqlx::query_as(&sql)
        .bind(viewer)
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    row.ok_or(ApiError::NotFound)
}

/// The playlist with the items `viewer` sees, in order.
async fn load_playlist(state: &AppState, viewer: &str, id: &str) -> Result<Playlist, ApiError> {
    let row = find_playlist(&state.db, viewer, id).await?;
    let sql = format!(
        "{SELECT_ITEMS} JOIN playlist_items i ON i.post_id = p.id \
         WHERE i.playlist_id = $2 AND {visible} ORDER BY i.position LIMIT {MAX_ITEMS}",
        visible = item_visible(),
    );
    let rows: Vec<PostRow> = sqlx::query_as(&sql)
        .bind(viewer)
        .bind(id)
        .fetch_all(state.db.pool())
        .await?;
    let urls = state.media_urls.signer().await?;
    let mut playlist = row.summary(&urls);
    let items: Vec<PostItem> = rows.into_iter().map(|r| r.into_item(&urls)).collect();
    // The counts of exactly the items returned (the summary was a separate read).
    playlist.item_count = items.len() as i64;
    playlist.total_duration_ms = items.iter().filter_map(|i| i.duration_ms).sum();
    Ok(Playlist { playlist, items })
}

/// Why the caller could not write playlist `id`: 403 when they can see it
/// (a public playlist of someone else), else 404.
async fn refusal(db: &Db, caller: &str, id: &str) -> ApiError {
    match find_playlist(db, caller, id).await {
        Ok(_) => ApiError::Forbidden,
        Err(e) => e,
    }
}

/// Starts a write to the caller's playlist `id`: bumps its version (taking
/// the per-playlist turn, see the module docs) or answers [`refusal`].
async fn begin_write(
    db: &Db,
    owner: &str,
    id: &str,
) -> Result<Transaction<'static, Any>, ApiError> {
    let mut tx = db.pool().begin().await?;
    let locked = sqlx::query(
        "UPDATE playlists SET version = version + 1, updated_at = $3 \
         WHERE id = $1 AND owner_id = $2",
    )
    .bind(id)
    .bind(owner)
    .bind(time::now_ms())
    .execute(&mut *tx)
    .await?;
    if locked.rows_affected() == 0 {
        drop(tx);
        return Err(refusal(db, owner, id).await);
    }
    Ok(tx)
}

/// A playlist's post ids in order, split into those `viewer` sees and the rest.
struct Order {
    visible: Vec<String>,
    hidden: Vec<String>,
}

impl Order {
    fn len(&self) -> usize {
        self.visible.len() + self.hidden.len()
    }

    fn contains(&self, post_id: &str) -> bool {
        self.visible
            .iter()
            .chain(&self.hidden)
            .any(|p| p == post_id)
    }
}

async fn load_order(
    tx: &mut Transaction<'static, Any>,
    viewer: &str,
    id: &str,
) -> Result<Order, ApiError> {
    let sql = format!(
        "SELECT i.post_id, CAST(CASE WHEN {visible} THEN 1 ELSE 0 END AS BIGINT) \
         FROM playlist_items i JOIN posts p ON p.id = i.post_id \
         JOIN users u ON u.id = p.author_id JOIN media m ON m.id = p.media_id \
         WHERE i.playlist_id = $2 ORDER BY i.position",
        visible = item_visible(),
    );
    let rows: Vec<(String, i64)> = sqlx::query_as(&sql)
        .bind(viewer)
        .bind(id)
        .fetch_all(&mut **tx)
        .await?;
    let (visible, hidden): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(_, v)| *v != 0);
    Ok(Order {
        visible: visible.into_iter().map(|(p, _)| p).collect(),
        hidden: hidden.into_iter().map(|(p, _)| p).collect(),
    })
}

/// Sets the positions of playlist `id` to `0..n-1` in `order`, the owner's
/// visible items first and the ones that drop out after them. It goes
/// through negative positions first, so no intermediate row collides with
/// another under `UNIQUE(playlist_id, position)` (checked row by row on both
/// backends). `order` must name every item: the caller holds the playlist's turn.
async fn write_order(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    order: &[String],
) -> Result<(), ApiError> {
    sqlx::query("UPDATE playlist_items SET position = -1 - position WHERE playlist_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    if order.is_empty() {
        return Ok(());
    }
    let cases: String = (0..order.len())
        .map(|i| format!("WHEN ${} THEN {i} ", i + 2))
        .collect();
    let sql = format!(
        "UPDATE playlist_items SET position = CASE post_id {cases}END WHERE playlist_id = $1"
    );
    let mut q = sqlx::query(&sql).bind(id);
    for post_id in order {
        q = q.bind(post_id);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Checks a title and description that are present; returns them trimmed.
fn check_text(
    title: Option<&str>,
    description: Option<&str>,
) -> Result<(Option<String>, Option<String>), ApiError> {
    let title = title.map(|t| t.trim().to_owned());
    let description = description.map(|d| d.trim().to_owned());
    let mut checks = Checks::default();
    if let Some(t) = &title {
        checks.check("title", validation::text(t, 1, MAX_TITLE));
    }
    if let Some(d) = &description {
        checks.check("description", validation::text(d, 0, MAX_DESCRIPTION));
    }
    checks.finish()?;
    Ok((title, description))
}

/// Creates a playlist owned by the caller.
#[utoipa::path(post, path = "/v1/playlists", tag = "playlists",
    security(("bearer" = [])),
    request_body = CreatePlaylist,
    responses(
        (status = 201, body = Playlist),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The caller already has the most playlists allowed", body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad title or description", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many playlist changes this hour; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_playlist(
    State(state): State<AppState>,
    user: AuthUser,
    JsonBody(req): JsonBody<CreatePlaylist>,
) -> Result<(StatusCode, Json<Playlist>), ApiError> {
    let (title, description) = check_text(Some(&req.title), Some(&req.description))?;
    state.creation_limits.playlist_writes.take(&user.id)?;
    let id = uuid::Uuid::now_v7().to_string();
    let now = time::now_ms();
    let mut tx = state.db.pool().begin().await?;
    // A no-op write to the owner's row first: one user's creates take turns,
    // so the count below cannot be raced past the limit.
    sqlx::query("UPDATE users SET handle = handle WHERE id = $1")
        .bind(&user.id)
        .execute(&mut *tx)
        .await?;
    let owned: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM playlists WHERE owner_id = $1")
        .bind(&user.id)
        .fetch_one(&mut *tx)
        .await?;
    if owned >= MAX_PLAYLISTS {
        return Err(ApiError::Conflict(format!(
            "you already have {MAX_PLAYLISTS} playlists, the most allowed; delete one first"
        )));
    }
    sqlx::query(
        "INSERT INTO playlists (id, owner_id, title, description, is_public, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(&id)
    .bind(&user.id)
    .bind(title)
    .bind(description)
    .bind(i64::from(req.public))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let playlist = load_playlist(&state, &user.id, &id).await?;
    Ok((StatusCode::CREATED, Json(playlist)))
}

/// One playlist and its items in order.
#[utoipa::path(get, path = "/v1/playlists/{id}", tag = "playlists",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Playlist id")),
    responses(
        (status = 200, body = Playlist),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such playlist, or a private one of someone else", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_playlist(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Playlist>, ApiError> {
    load_playlist(&state, &user.id, &id).await.map(Json)
}

/// Changes the title, description or visibility of one of the caller's playlists.
#[utoipa::path(patch, path = "/v1/playlists/{id}", tag = "playlists",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Playlist id")),
    request_body = UpdatePlaylist,
    responses(
        (status = 200, body = Playlist),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Someone else's public playlist", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad title or description", body = Problem, content_type = "application/problem+json"),
    ))]
async fn update_playlist(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<UpdatePlaylist>,
) -> Result<Json<Playlist>, ApiError> {
    let (title, description) = check_text(req.title.as_deref(), req.description.as_deref())?;
    let mut tx = begin_write(&state.db, &user.id, &id).await?;
    sqlx::query(
        "UPDATE playlists SET title = COALESCE($2, title), \
         description = COALESCE($3, description), is_public = COALESCE($4, is_public) \
         WHERE id = $1",
    )
    .bind(&id)
    .bind(title)
    .bind(description)
    .bind(req.public.map(i64::from))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    load_playlist(&state, &user.id, &id).await.map(Json)
}

/// Deletes one of the caller's playlists (the posts stay).
#[utoipa::path(delete, path = "/v1/playlists/{id}", tag = "playlists",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Playlist id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Someone else's public playlist", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_playlist(
    State(db): State<Db>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let deleted = sqlx::query("DELETE FROM playlists WHERE id = $1 AND owner_id = $2")
        .bind(&id)
        .bind(&user.id)
        .execute(db.pool())
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(refusal(&db, &user.id, &id).await);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The post must exist and be visible to the caller and ready: 404 when it
/// does not exist for them, 422 for their own post still processing.
async fn check_addable(
    tx: &mut Transaction<'static, Any>,
    caller: &str,
    post_id: &str,
) -> Result<(), ApiError> {
    let sql = format!(
        "SELECT p.author_id, m.state, CAST(CASE WHEN {visible} THEN 1 ELSE 0 END AS BIGINT) \
         FROM posts p JOIN users u ON u.id = p.author_id JOIN media m ON m.id = p.media_id \
         WHERE p.id = $2",
        visible = item_visible(),
    );
    let row: Option<(String, String, i64)> = sqlx::query_as(&sql)
        .bind(caller)
        .bind(post_id)
        .fetch_optional(&mut **tx)
        .await?;
    match row {
        Some((_, _, visible)) if visible != 0 => Ok(()),
        Some((author, state, _)) if author == caller && state != "ready" => Err(ApiError::invalid(
            "post_id",
            "this post's audio is not ready yet",
        )),
        _ => Err(ApiError::NotFound),
    }
}

/// Adds a post to one of the caller's playlists, at `position` or at the end.
#[utoipa::path(post, path = "/v1/playlists/{id}/items", tag = "playlists",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Playlist id")),
    request_body = AddItem,
    responses(
        (status = 201, description = "Added; the playlist as it is now", body = Playlist),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Someone else's public playlist", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such playlist, or no such post visible to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The post is already in the playlist, or the playlist is full", body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Position past the end, or the post is not ready", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many playlist changes this hour; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
async fn add_item(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<AddItem>,
) -> Result<(StatusCode, Json<Playlist>), ApiError> {
    state.creation_limits.playlist_writes.take(&user.id)?;
    let mut tx = begin_write(&state.db, &user.id, &id).await?;
    check_addable(&mut tx, &user.id, &req.post_id).await?;
    let mut order = load_order(&mut tx, &user.id, &id).await?;
    if order.contains(&req.post_id) {
        return Err(ApiError::Conflict(
            "this post is already in the playlist".to_owned(),
        ));
    }
    if order.len() >= MAX_ITEMS {
        return Err(ApiError::Conflict(format!(
            "the playlist is full ({MAX_ITEMS} items); remove one first"
        )));
    }
    let at = match req.position {
        None => order.visible.len(),
        Some(p) if p as usize <= order.visible.len() => p as usize,
        Some(_) => {
            return Err(ApiError::invalid(
                "position",
                format!("must be 0 to {}", order.visible.len()),
            ))
        }
    };
    // Appended past every current position, then moved into place.
    sqlx::query(
        "INSERT INTO playlist_items (playlist_id, post_id, position, added_at) \
         SELECT $1, $2, COALESCE(MAX(position), -1) + 1, $3 FROM playlist_items \
         WHERE playlist_id = $1",
    )
    .bind(&id)
    .bind(&req.post_id)
    .bind(time::now_ms())
    .execute(&mut *tx)
    .await
    .map_err(|e| {
        on_unique(e, || {
            ApiError::Conflict("this post is already in the playlist".to_owned())
        })
    })?;
    order.visible.insert(at, req.post_id);
    write_order(&mut tx, &id, &[order.visible, order.hidden].concat()).await?;
    tx.commit().await?;
    let playlist = load_playlist(&state, &user.id, &id).await?;
    Ok((StatusCode::CREATED, Json(playlist)))
}

/// Puts the items of one of the caller's playlists in a new order.
#[utoipa::path(put, path = "/v1/playlists/{id}/items", tag = "playlists",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Playlist id")),
    request_body = Reorder,
    responses(
        (status = 200, description = "The playlist in its new order", body = Playlist),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Someone else's public playlist", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`post_ids` is not an ordering of the current items", body = Problem, content_type = "application/problem+json"),
    ))]
async fn reorder_items(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<Reorder>,
) -> Result<Json<Playlist>, ApiError> {
    let mut tx = begin_write(&state.db, &user.id, &id).await?;
    let order = load_order(&mut tx, &user.id, &id).await?;
    let given: HashSet<&String> = req.post_ids.iter().collect();
    let current: HashSet<&String> = order.visible.iter().collect();
    if req.post_ids.len() != order.visible.len() || given != current {
        return Err(ApiError::invalid(
            "post_ids",
            format!(
                "must list each of the playlist's {} items exactly once",
                order.visible.len()
            ),
        ));
    }
    write_order(&mut tx, &id, &[req.post_ids, order.hidden].concat()).await?;
    tx.commit().await?;
    load_playlist(&state, &user.id, &id).await.map(Json)
}

/// Removes a post from one of the caller's playlists (also one that drops out).
#[utoipa::path(delete, path = "/v1/playlists/{id}/items/{post_id}", tag = "playlists",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Playlist id"),
        ("post_id" = String, Path, description = "Post id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Someone else's public playlist", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such playlist, or the post is not in it", body = Problem, content_type = "application/problem+json"),
    ))]
async fn remove_item(
    State(db): State<Db>,
    user: AuthUser,
    Path((id, post_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let mut tx = begin_write(&db, &user.id, &id).await?;
    let removed = sqlx::query("DELETE FROM playlist_items WHERE playlist_id = $1 AND post_id = $2")
        .bind(&id)
        .bind(&post_id)
        .execute(&mut *tx)
        .await?;
    if removed.rows_affected() == 0 {
        return Err(ApiError::NotFound);
    }
    let order = load_order(&mut tx, &user.id, &id).await?;
    write_order(&mut tx, &id, &[order.visible, order.hidden].concat()).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's playlists, newest first: all of them for that user, the public
/// ones for everyone else (none when either blocks the other).
#[utoipa::path(get, path = "/v1/users/{id}/playlists", tag = "playlists",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "User id"), PageQuery),
    responses(
        (status = 200, body = Page<PlaylistSummary>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
    ))]
async fn user_playlists(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<Page<PlaylistSummary>>, ApiError> {
    let (limit, cursor) = query.resolve()?;
    require_user(&state.db, &id).await?;
    let sql = format!(
        "{} WHERE l.owner_id = $2 AND {} \
         AND (l.created_at < $3 OR (l.created_at = $3 AND l.id < $4)) \
         ORDER BY l.created_at DESC, l.id DESC LIMIT $5",
        select_playlists(),
        playlist_visible()
    );
    let rows: Vec<PlaylistRow> = sqlx::query_as(&sql)
        .bind(&user.id)
        .bind(&id)
        .bind(cursor.created_at)
        .bind(cursor.id)
        .bind(i64::from(limit) + 1)
        .fetch_all(state.db.pool())
        .await?;
    let urls = state.media_urls.signer().await?;
    let items = rows.into_iter().map(|r| r.summary(&urls)).collect();
    Ok(Json(Page::from_rows(
        items,
        limit,
        |p: &PlaylistSummary| Cursor {
            created_at: p.created_at,
            id: p.id.clone(),
        },
    )))
}
