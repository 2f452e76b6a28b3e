//! Short-lived in-process caches in front of the two reads every feed
//! request makes: the bearer token's session and the feed page itself.
//!
//! Each API process keeps its own. What a request changes, the process that
//! served it forgets at once (see [`forget_writer`]), so a user always reads
//! their own writes; other processes, and changes made by other users, show
//! up within the time to live (`SORI_SESSION_CACHE_MS`, `SORI_FEED_CACHE_MS`;
//! 0 turns a cache off). Entries are bounded in number, and a value read from
//! the database before a `forget` is never stored after it (generations).

use crate::auth::{self, Session};
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Lock shards: enough that concurrent requests rarely wait on each other.
const SHARDS: usize = 32;

/// How long entries live and how many there may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Token → session (`SORI_SESSION_CACHE_MS`): how long a token revoked on
    /// another process, or expired, may still be accepted here.
    pub session_ttl: Duration,
    /// Viewer → feed pages (`SORI_FEED_CACHE_MS`): how late another user's
    /// post, like or comment may appear in a feed.
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

struct Entry<V> {
    stored: Instant,
    value: V,
}

/// One lock's worth of entries.
type Shard<V> = Mutex<HashMap<String, Entry<V>>>;

/// A sharded map from string keys to values that expire `ttl` after being stored.
pub struct TtlCache<V> {
    shards: Box<[Shard<V>]>,
    hasher: RandomState,
    ttl: Duration,
    per_shard: usize,
    /// Bumped by every [`TtlCache::forget`]; [`TtlCache::store`] refuses a
    /// value read under an older generation.
    generation: AtomicU64,
}

impl<V: Clone> TtlCache<V> {
    /// A cache of about `capacity` entries; a zero `ttl` stores nothing.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            ttl,
            per_shard: capacity.div_ceil(SHARDS).max(1),
            generation: AtomicU64::new(0),
        }
    }

    pub fn is_enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// Take this before reading what will be stored, and pass it to [`TtlCache::store`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The value stored under `key`, unless it has expired.
    pub fn get(&self, key: &str) -> Option<V> {
        if !self.is_enabled() {
            return None;
        }
        let shard = self.shard(key);
        let entry = shard.get(key)?;
        (entry.stored.elapsed() < self.ttl).then(|| entry.value.clone())
    }

    /// Stores what `merge` makes of the current fresh value (if any), unless
    /// something was forgotten since `generation` was taken. A merged value
    /// keeps the old entry's time, so nothing outlives the ttl of its oldest part.
    pub fn store(&self, key: &str, generation: u64, merge: impl FnOnce(Option<&V>) -> V) {
        if !self.is_enabled() {
            return;
        }
        let mut shard = self.shard(key);
        if self.generation() != generation {
            return;
        }
        let now = Instant::now();
        let fresh = shard
            .get(key)
            .filter(|e| now.duration_since(e.stored) < self.ttl);
        let stored = fresh.map_or(now, |e| e.stored);
        let value = merge(fresh.map(|e| &e.value));
        if !shard.contains_key(key) {
            self.make_room(&mut shard, now);
        }
        shard.insert(key.to_owned(), Entry { stored, value });
    }

    /// Drops `key`'s entry, and keeps any read already under way from storing
    /// what it read before this call.
    pub fn forget(&self, key: &str) {
        if !self.is_enabled() {
            return;
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.shard(key).remove(key);
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, HashMap<String, Entry<V>>> {
        let index = self.hasher.hash_one(key) as usize % self.shards.len();
        // A panic elsewhere while holding the lock leaves a map that is still
        // consistent (every operation is a single insert or remove).
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Expired entries go first; if the shard is still full, an arbitrary one.
    fn make_room(&self, shard: &mut HashMap<String, Entry<V>>, now: Instant) {
        if shard.len() < self.per_shard {
            return;
        }
        shard.retain(|_, e| now.duration_since(e.stored) < self.ttl);
        if shard.len() >= self.per_shard {
            if let Some(victim) = shard.keys().next().cloned() {
                shard.remove(&victim);
            }
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
    pub fn new(value: &impl serde::Serialize) -> Result<Self, crate::error::ApiError> {
        let body = Bytes::from(
            serde_json::to_vec(value).map_err(|e| crate::error::ApiError::Internal(Box::new(e)))?,
        );
        let etag = crate::http::etag_of(&body);
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

/// A viewer's cached pages of one list, by query (`limit` and `cursor`).
pub type Pages = Arc<Vec<(String, CachedJson)>>;

/// Pages kept per viewer: the first few a client scrolls through.
const PAGES_PER_VIEWER: usize = 8;

/// The cached page `query` of `viewer`, if fresh.
pub fn cached_page(cache: &TtlCache<Pages>, viewer: &str, query: &str) -> Option<CachedJson> {
    let pages = cache.get(viewer)?;
    pages
        .iter()
        .find(|(q, _)| q == query)
        .map(|(_, page)| page.clone())
}

/// Adds page `query` to `viewer`'s cached pages (see [`TtlCache::store`]).
pub fn store_page(
    cache: &TtlCache<Pages>,
    viewer: &str,
    generation: u64,
    query: String,
    page: CachedJson,
) {
    cache.store(viewer, generation, |old| {
        let mut pages: Vec<_> = old.map(|p| p.as_ref().clone()).unwrap_or_default();
        pages.retain(|(q, _)| *q != query);
        pages.truncate(PAGES_PER_VIEWER - 1);
        pages.insert(0, (query, page));
        Arc::new(pages)
    });
}

/// After a successful write (any method but GET/HEAD/OPTIONS) by a signed-in
/// caller, forgets the caller's cached feed pages: whatever the write was (a
/// post, a like, a follow, a comment…), their next read sees it. One place
/// for every route, present and future.
pub async fn forget_writer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let reads = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let token = (!reads && state.feed_pages.is_enabled())
        .then(|| auth::request_token(req.headers()))
        .flatten();
    let response = next.run(req).await;
    if let Some(token) = token {
        if response.status().is_success() {
            if let Some(Session { user_id, .. }) = auth::session(&state, &token).await {
                state.feed_pages.forget(&user_id);
            }
        }
    }
    response
}

/// Forgets the owner's cached feed pages whenever one of their media is
/// processed (`sori serve`, whose worker pool runs in the process), so a feed
/// fetched after the `media.ready` event no longer shows the post processing.
/// Events relayed from other processes do the same in [`crate::realtime`].
pub async fn forget_processed(
    mut events: tokio::sync::broadcast::Receiver<sori_pipeline::media::MediaEvent>,
    feed_pages: Arc<TtlCache<Pages>>,
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

    #[test]
    fn entries_expire_and_zero_ttl_stores_nothing() {
        let cache = TtlCache::new(Duration::from_millis(30), 10);
        cache.store("a", cache.generation(), |_| 1);
        assert_eq!(cache.get("a"), Some(1));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.get("a"), None);

        let off = TtlCache::new(Duration::ZERO, 10);
        off.store("a", off.generation(), |_| 1);
        assert_eq!(off.get("a"), None);
    }

    #[test]
    fn a_read_older_than_a_forget_is_not_stored() {
        let cache = TtlCache::new(Duration::from_secs(60), 10);
        let before = cache.generation();
        cache.forget("a");
        cache.store("a", before, |_| "stale");
        assert_eq!(cache.get("a"), None);
        cache.store("a", cache.generation(), |_| "fresh");
        assert_eq!(cache.get("a"), Some("fresh"));
    }

    #[test]
    fn capacity_is_bounded() {
        let cache = TtlCache::new(Duration::from_secs(60), SHARDS * 2);
        for i in 0..10_000 {
            cache.store(&i.to_string(), cache.generation(), |_| i);
        }
        let total: usize = cache.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(total <= SHARDS * 2, "{total} entries");
    }

    #[test]
    fn pages_are_kept_per_query_and_bounded() {
        let cache = TtlCache::new(Duration::from_secs(60), 10);
        let page = |n: u32| CachedJson::new(&n).unwrap();
        for n in 0..20 {
            store_page(&cache, "v", cache.generation(), format!("q{n}"), page(n));
        }
        assert_eq!(cache.get("v").unwrap().len(), PAGES_PER_VIEWER);
        assert_eq!(cached_page(&cache, "v", "q19").unwrap().body, "19");
        assert!(cached_page(&cache, "v", "q0").is_none());
        assert!(cached_page(&cache, "w", "q19").is_none());
    }
}
