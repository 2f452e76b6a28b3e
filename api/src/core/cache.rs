//! Short-lived in-process caches in front of the two reads every feed
//! request makes: the bearer token's session and the feed page itself.
//!
//! Each API process keeps its own. What a request changes, the process that
//! served it forgets at once (see [`forget_writer`]), so a user always reads
//! their own writes; other processes, and changes made by other users, show
//! up within the time to live (`SORI_SESSION_CACHE_MS`; twice
//! `SORI_FEED_CACHE_MS` for feed pages, which are refreshed in the background,
//! see [`FeedPages`]; 0 turns a cache off). Entries are bounded in number, and
//! a value read from the database before a `forget` is never stored after it
//! (generations).

use crate::core::error::ApiError;
use crate::core::sessions::{self, Session, Sessions};
use crate::core::ttl_cache::TtlCache;
use axum::body::{Body, Bytes};
use axum::extract::{FromRef, Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sori_db::Db;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long entries live and how many there may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Token → session (`SORI_SESSION_CACHE_MS`): how long a token revoked on
    /// another process, or expired, may still be accepted here.
    pub session_ttl: Duration,
    /// Viewer → feed pages (`SORI_FEED_CACHE_MS`): a page this old is read
    /// again; another user's post, like or comment shows within twice this.
    pub feed_ttl: Duration,
    /// Entries per cache (sessions, and viewers with cached feed pages).
    pub capacity: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(5),
            feed_ttl: Duration::from_secs(2),
            capacity: 100_000,
        }
    }
}

impl CacheConfig {
    /// Both caches off: every request reads the database.
    pub fn off() -> Self {
        Self {
            session_ttl: Duration::ZERO,
            feed_ttl: Duration::ZERO,
            ..Self::default()
        }
    }
}
/// A JSON answer serialized once, with its ETag, served as often as it is asked for.
#[derive(Debug, Clone)]
pub struct CachedJson {
    body: Bytes,
    etag: HeaderValue,
}

impl CachedJson {
    pub fn new(value: &impl serde::Serialize) -> Result<Self, ApiError> {
        let body =
            Bytes::from(serde_json::to_vec(value).map_err(|e| ApiError::Internal(Box::new(e)))?);
        let etag = crate::core::http::etag_of(&body);
        Ok(Self { body, etag })
    }
}

impl IntoResponse for CachedJson {
    fn into_response(self) -> Response {
        let headers = [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, self.etag),
        ];
        (headers, Body::from(self.body)).into_response()
    }
}

/// One page of a viewer's list, as served at `read_at`.
#[derive(Debug, Clone)]
pub struct CachedPage {
    /// The page's query (`limit` and `cursor`).
    query: String,
    read_at: Instant,
    page: CachedJson,
    /// Set by the one reader who found the page stale and reads it again.
    refreshing: Arc<AtomicBool>,
}

/// A viewer's cached pages of one list, most recently read first.
pub type Pages = Arc<Vec<CachedPage>>;

/// Pages kept per viewer: the first few a client scrolls through.
const PAGES_PER_VIEWER: usize = 8;

/// What [`FeedPages::lookup`] found.
#[derive(Debug)]
pub enum Lookup {
    /// Read less than the lifetime ago: serve it.
    Fresh(CachedJson),
    /// Read between one and two lifetimes ago: serve it, and when `refresh`
    /// (true for one reader only) read the page again in the background.
    Stale { page: CachedJson, refresh: bool },
    /// Nothing usable: read the database.
    Missing,
}

/// Viewer → recently served feed pages (`SORI_FEED_CACHE_MS`).
///
/// A page older than its lifetime is still served, once the first reader to
/// find it so has started reading it again in the background; past twice its
/// lifetime it is never served. So a viewer who keeps reading never waits for
/// the database, and others' posts, likes and comments show within two
/// lifetimes.
pub struct FeedPages {
    viewers: TtlCache<Pages>,
    lifetime: Duration,
}

impl FeedPages {
    /// Pages live `lifetime` (zero: no cache); about `capacity` viewers are kept.
    pub fn new(lifetime: Duration, capacity: usize) -> Self {
        Self {
            viewers: TtlCache::new(lifetime * 2, capacity),
            lifetime,
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.viewers.is_enabled()
    }

    /// Take this before reading a page of `viewer`, and pass it to [`FeedPages::store`].
    pub fn generation(&self, viewer: &str) -> u64 {
        self.viewers.generation(viewer)
    }

    /// The cached page `query` of `viewer`.
    pub fn lookup(&self, viewer: &str, query: &str) -> Lookup {
        self.lookup_at(viewer, query, Instant::now())
    }

    /// [`FeedPages::lookup`] as seen at `now`: the tests move the clock
    /// instead of sleeping, which a loaded machine stretches past a lifetime.
    fn lookup_at(&self, viewer: &str, query: &str, now: Instant) -> Lookup {
        let Some(pages) = self.viewers.get(viewer) else {
            return Lookup::Missing;
        };
        let Some(cached) = pages.iter().find(|p| p.query == query) else {
            return Lookup::Missing;
        };
        let age = now.saturating_duration_since(cached.read_at);
        if age < self.lifetime {
            Lookup::Fresh(cached.page.clone())
        } else if age < self.lifetime * 2 {
            let refresh = !cached.refreshing.swap(true, Ordering::SeqCst);
            Lookup::Stale {
                page: cached.page.clone(),
                refresh,
            }
        } else {
            Lookup::Missing
        }
    }

    /// Adds page `query` of `viewer`, read from the database after taking
    /// `generation` (see [`TtlCache::store`]).
    pub fn store(&self, viewer: &str, generation: u64, query: String, page: CachedJson) {
        let limit = self.lifetime * 2;
        self.viewers.store(viewer, generation, |old| {
            let mut pages: Vec<_> = old.map(|p| p.as_ref().clone()).unwrap_or_default();
            pages.retain(|p| p.query != query && p.read_at.elapsed() < limit);
            pages.truncate(PAGES_PER_VIEWER - 1);
            let read_at = Instant::now();
            let refreshing = Arc::default();
            pages.insert(
                0,
                CachedPage {
                    query,
                    read_at,
                    page,
                    refreshing,
                },
            );
            Arc::new(pages)
        });
    }

    /// Drops `viewer`'s pages, and keeps any read under way from storing them.
    pub fn forget(&self, viewer: &str) {
        self.viewers.forget(viewer);
    }
}

/// After a successful write (any method but GET/HEAD/OPTIONS) by a signed-in
/// caller, forgets the caller's cached feed pages: whatever the write was (a
/// post, a like, a follow, a comment…), their next read sees it. One place
/// for every route, present and future.
///
/// Generic over the state (anything holding the database, the sessions and
/// the feed pages), so this module needs nothing above it.
pub async fn forget_writer<S>(State(state): State<S>, req: Request, next: Next) -> Response
where
    Db: FromRef<S>,
    Sessions: FromRef<S>,
    Arc<FeedPages>: FromRef<S>,
{
    let feed_pages = Arc::<FeedPages>::from_ref(&state);
    let reads = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let token = (!reads && feed_pages.is_enabled())
        .then(|| sessions::request_token(req.headers()))
        .flatten();
    let response = next.run(req).await;
    if let Some(token) = token {
        if response.status().is_success() {
            let (db, cache) = (Db::from_ref(&state), Sessions::from_ref(&state));
            if let Some(Session { user_id, .. }) = sessions::session(&db, &cache, &token).await {
                feed_pages.forget(&user_id);
            }
        }
    }
    response
}

/// Forgets the owner's cached feed pages whenever one of their media is
/// processed (`sori serve`, whose worker pool runs in the process), so a feed
/// fetched after the `media.ready` event no longer shows the post processing.
/// Events relayed from other processes do the same in [`crate::realtime::listener`].
pub async fn forget_processed(
    mut events: tokio::sync::broadcast::Receiver<sori_pipeline::media::MediaEvent>,
    feed_pages: Arc<FeedPages>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match events.recv().await {
            Ok(e) => feed_pages.forget(&e.owner_id),
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(lookup: Lookup) -> Option<(Bytes, bool)> {
        match lookup {
            Lookup::Fresh(page) => Some((page.body, false)),
            Lookup::Stale { page, refresh } => Some((page.body, refresh)),
            Lookup::Missing => None,
        }
    }

    #[test]
    fn pages_are_kept_per_query_and_bounded() {
        let cache = FeedPages::new(Duration::from_secs(60), 10);
        let page = |n: u32| CachedJson::new(&n).unwrap();
        for n in 0..20 {
            cache.store("v", cache.generation("v"), format!("q{n}"), page(n));
        }
        assert_eq!(cache.viewers.get("v").unwrap().len(), PAGES_PER_VIEWER);
        assert_eq!(body(cache.lookup("v", "q19")).unwrap().0, "19");
        assert!(body(cache.lookup("v", "q0")).is_none());
        assert!(body(cache.lookup("w", "q19")).is_none());
    }

    #[test]
    fn a_stale_page_is_served_while_one_reader_refreshes_it_then_dropped() {
        let lifetime = Duration::from_secs(60);
        let cache = FeedPages::new(lifetime, 10);
        let page = |n: u32| CachedJson::new(&n).unwrap();
        let stored_after = Instant::now();
        cache.store("v", cache.generation("v"), "q".into(), page(1));
        let look = |age| body(cache.lookup_at("v", "q", stored_after + age));
        assert_eq!(look(Duration::ZERO), Some(("1".into(), false)));
        let stale = lifetime * 3 / 2;
        assert_eq!(look(stale), Some(("1".into(), true)));
        assert_eq!(look(stale), Some(("1".into(), false)));
        assert!(look(lifetime * 3).is_none());
        // The refresh lands: fresh again, and its own first stale reader refreshes it.
        let refreshed_after = Instant::now();
        cache.store("v", cache.generation("v"), "q".into(), page(2));
        let look = |age| body(cache.lookup_at("v", "q", refreshed_after + age));
        assert_eq!(look(Duration::ZERO), Some(("2".into(), false)));
        assert_eq!(look(stale), Some(("2".into(), true)));
        assert!(look(lifetime * 3).is_none());
    }

    #[test]
    fn forgetting_a_viewer_refuses_reads_started_before() {
        let cache = FeedPages::new(Duration::from_secs(60), 10);
        let shard_of = |key: &str| cache.viewers.shard_index(key);
        let w = (0..)
            .map(|i| format!("w{i}"))
            .find(|k| shard_of(k) != shard_of("v"))
            .unwrap();
        let before = cache.generation("v");
        let other = cache.generation(&w);
        cache.forget("v");
        cache.store("v", before, "q".into(), CachedJson::new(&1).unwrap());
        cache.store(&w, other, "q".into(), CachedJson::new(&2).unwrap());
        assert!(body(cache.lookup("v", "q")).is_none());
        // A viewer in another shard is not held back by that forget.
        assert_eq!(body(cache.lookup(&w, "q")).unwrap().0, "2");
    }
}
