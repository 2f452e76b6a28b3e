//! The post as every answer shows it ([`PostItem`], loaded by
//! [`SELECT_ITEMS`]): single posts, feeds, explore, search and playlists;
//! and the pages of them those lists read.
//!
//! A post is visible to others once its media is `ready`; its author sees it
//! from the start, with the media's state.

use crate::core::error::ApiError;
use crate::core::media_urls::{ClipUrls, UrlSigner};
use crate::core::pagination::{Cursor, Page, PageQuery};
use crate::core::state::AppState;
use crate::model::media::parse_bars;
use crate::model::rules::{audience, not_muted, visible};
use crate::model::users::Author;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Who may hear a post (see [`crate::model::rules::audience`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Everyone signed in.
    Public,
    /// The author's followers.
    Followers,
    /// The author alone.
    Private,
}

impl Visibility {
    /// The stored value (`posts.visibility`, `users.default_visibility`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Followers => "followers",
            Self::Private => "private",
        }
    }
}

/// A post's author and visibility: whom it reaches, for telling mentioned
/// users only when they may hear it ([`Audience::includes`]).
#[derive(Debug, Clone)]
pub struct Audience {
    pub author_id: String,
    pub visibility: String,
}

impl Audience {
    /// Whether `user` may hear the post by its visibility (blocks and
    /// removals are checked apart): [`audience`] over the post's author and
    /// visibility as a one-row table, so the rule is written once.
    pub async fn includes(&self, db: &sori_db::Db, user: &str) -> Result<bool, sqlx::Error> {
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT CAST($2 AS TEXT) AS author_id, \
             CAST($3 AS TEXT) AS visibility) p WHERE {}",
            audience("$1")
        );
        let found: i64 = sqlx::query_scalar(&sql)
            .bind(user)
            .bind(&self.author_id)
            .bind(&self.visibility)
            .fetch_one(db.pool())
            .await?;
        Ok(found > 0)
    }
}

/// A post as clients render it, without further requests.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PostItem {
    pub id: String,
    pub author: Author,
    pub caption: String,
    /// Normalized, lowercase, without `#`.
    pub tags: Vec<String>,
    /// Who may hear it: `public`, `followers` (the author's) or `private` (the author alone).
    pub visibility: String,
    /// When the author last changed its caption or tags (Unix milliseconds); `null` if never.
    pub edited_at: Option<i64>,
    pub media_id: String,
    /// The media's processing state: `ready` for everyone else's posts.
    pub state: String,
    pub duration_ms: Option<i64>,
    /// Loudness summary for drawing the clip: up to 100 values 0–31; empty until ready.
    pub bars: Vec<u8>,
    /// Signed URLs of the clip and its waveform; `null` until the media is ready.
    #[serde(flatten)]
    pub urls: ClipUrls,
    pub like_count: i64,
    pub comment_count: i64,
    /// Listeners' plays, each counted at most once per listener and UTC day.
    pub play_count: i64,
    pub liked_by_me: bool,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Its place in trending explore ([`crate::effects::trending`]); not shown.
    #[serde(skip)]
    pub trend_key: i64,
}

impl PostItem {
    /// Its position in a newest-first list.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            created_at: self.created_at,
            id: self.id.clone(),
        }
    }

    /// Its position in a trending list (the cursor's time is the trend key).
    pub fn trending_cursor(&self) -> Cursor {
        Cursor {
            created_at: self.trend_key,
            id: self.id.clone(),
        }
    }
}

/// The columns of a [`PostItem`]; `$1` is the viewer (for `liked_by_me`).
/// Callers append `WHERE …` over aliases `p` (posts), `u` (author), `m` (media).
pub const SELECT_ITEMS: &str = "\
    SELECT p.id, p.author_id, u.handle, u.display_name, u.avatar_version, p.caption, p.tags, \
           p.visibility, p.edited_at, p.media_id, \
           m.state, m.duration_ms, m.bars, m.output_prefix, p.like_count, p.comment_count, \
           p.play_count, p.created_at, p.trend_key, \
           CAST(CASE WHEN EXISTS (SELECT 1 FROM likes l WHERE l.post_id = p.id AND l.user_id = $1) \
                THEN 1 ELSE 0 END AS BIGINT) AS liked \
    FROM posts p JOIN users u ON u.id = p.author_id JOIN media m ON m.id = p.media_id ";

/// One row of [`SELECT_ITEMS`].
#[derive(Debug, sqlx::FromRow)]
pub struct PostRow {
    id: String,
    author_id: String,
    handle: String,
    display_name: String,
    avatar_version: Option<i64>,
    caption: String,
    tags: String,
    visibility: String,
    edited_at: Option<i64>,
    media_id: String,
    state: String,
    duration_ms: Option<i64>,
    bars: Option<String>,
    output_prefix: Option<String>,
    like_count: i64,
    comment_count: i64,
    play_count: i64,
    created_at: i64,
    trend_key: i64,
    liked: i64,
}

impl PostRow {
    /// The answer shape, with the clip's URLs signed by `urls`.
    pub fn into_item(self, urls: &UrlSigner) -> PostItem {
        PostItem {
            urls: urls.clip(self.state == "ready", self.output_prefix.as_deref()),
            bars: self.bars.as_deref().map(parse_bars).unwrap_or_default(),
            tags: serde_json::from_str(&self.tags).unwrap_or_default(),
            author: Author {
                avatar_url: urls.avatar(&self.author_id, self.avatar_version),
                id: self.author_id,
                handle: self.handle,
                display_name: self.display_name,
            },
            id: self.id,
            caption: self.caption,
            visibility: self.visibility,
            edited_at: self.edited_at,
            media_id: self.media_id,
            state: self.state,
            duration_ms: self.duration_ms,
            like_count: self.like_count,
            comment_count: self.comment_count,
            play_count: self.play_count,
            liked_by_me: self.liked != 0,
            created_at: self.created_at,
            trend_key: self.trend_key,
        }
    }
}

/// Runs a [`SELECT_ITEMS`] query whose first four parameters are viewer,
/// cursor time, cursor id and row limit, then `extra` binds.
pub async fn page(
    state: &AppState,
    sql: &str,
    viewer: &str,
    query: &PageQuery,
    extra: &[&str],
) -> Result<Page<PostItem>, ApiError> {
    page_by(state, sql, viewer, query, extra, PostItem::cursor).await
}

/// [`page`] of a list in another order than newest first: `position` is an
/// item's cursor in it (its `$2`, `$3`).
pub async fn page_by(
    state: &AppState,
    sql: &str,
    viewer: &str,
    query: &PageQuery,
    extra: &[&str],
    position: fn(&PostItem) -> Cursor,
) -> Result<Page<PostItem>, ApiError> {
    let (limit, cursor) = query.resolve()?;
    let rows = rows_from(state, sql, viewer, &cursor, i64::from(limit) + 1, extra).await?;
    let urls = state.media_urls.signer().await?;
    let items = rows.into_iter().map(|r| r.into_item(&urls)).collect();
    Ok(Page::from_rows(items, limit, position))
}

/// The rows of a list statement: `$1` the viewer, `$2`/`$3` the position
/// to read from, `$4` how many, then `extra`.
pub async fn rows_from(
    state: &AppState,
    sql: &str,
    viewer: &str,
    from: &Cursor,
    count: i64,
    extra: &[&str],
) -> Result<Vec<PostRow>, ApiError> {
    let mut q = sqlx::query_as::<_, PostRow>(sql)
        .bind(viewer)
        .bind(from.created_at)
        .bind(&from.id)
        .bind(count);
    for value in extra {
        q = q.bind(*value);
    }
    Ok(q.fetch_all(state.db.pool()).await?)
}

/// Ready posts with a normalized `tag` the viewer may see, newest first,
/// without muted authors: explore by tag, and search for posts.
pub async fn tag_page(
    state: &AppState,
    viewer: &str,
    tag: &str,
    query: &PageQuery,
) -> Result<Page<PostItem>, ApiError> {
    // Walks the tag's index; `t.created_at` is the post's, so the cursor applies to both.
    let sql = format!(
        "{SELECT_ITEMS} JOIN post_tags t ON t.post_id = p.id \
         WHERE t.tag = $5 AND m.state = 'ready' AND {} AND {} \
         AND (t.created_at < $2 OR (t.created_at = $2 AND t.post_id < $3)) \
         ORDER BY t.created_at DESC, t.post_id DESC LIMIT $4",
        visible(),
        not_muted(state.db.backend(), "$1", "p.author_id")
    );
    page(state, &sql, viewer, query, &[tag]).await
}
