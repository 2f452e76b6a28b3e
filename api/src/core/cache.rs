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

use crate::core::auth::{self, Session};
use crate::core::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
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

struct Entry<V> {
    stored: Instant,
    value: V,
}

/// One lock's worth of entries, and how many times one of them was forgotten.
struct Shard<V> {
    entries: HashMap<String, Entry<V>>,
    /// Bumped by every [`TtlCache::forget`] of a key in this shard;
    /// [`TtlCache::store`] refuses a value read under an older generation.
    generation: u64,
}

/// A sharded map from string keys to values that expire `ttl` after being stored.
pub struct TtlCache<V> {
    shards: Box<[Mutex<Shard<V>>]>,
    hasher: RandomState,
    ttl: Duration,
    per_shard: usize,
}

impl<V: Clone> TtlCache<V> {
    /// A cache of about `capacity` entries; a zero `ttl` stores nothing.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        entries: HashMap::new(),
                        generation: 0,
                    })
                })
                .collect(),
            hasher: RandomState::new(),
            ttl,
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    pub fn is_enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// Take this before reading what will be stored under `key`, and pass it
    /// to [`TtlCache::store`]. Counted per shard, so forgetting one key
    /// rarely refuses the store of another.
    pub fn generation(&self, key: &str) -> u64 {
        self.shard(key).generation
    }

    /// The value stored under `key`, unless it has expired.
    pub fn get(&self, key: &str) -> Option<V> {
        if !self.is_enabled() {
            return None;
        }
        let shard = self.shard(key);
        let entry = shard.entries.get(key)?;
        (entry.stored.elapsed() < self.ttl).then(|| entry.value.clone())
    }

    /// Stores what `merge` makes of the current fresh value (if any), unless
    /// `key` was forgotten since `generation` was taken.
    pub fn store(&self, key: &str, generation: u64, merge: impl FnOnce(Option<&V>) -> V) {
        if !self.is_enabled() {
            return;
        }
        let mut shard = self.shard(key);
        if shard.generation != generation {
            return;
        }
        let now = Instant::now();
        let fresh = shard
            .entries
            .get(key)
            .filter(|e| now.duration_since(e.stored) < self.ttl);
        let value = merge(fresh.map(|e| &e.value));
        if !shard.entries.contains_key(key) {
            self.make_room(&mut shard.entries, now);
        }
        shard
            .entries
            .insert(key.to_owned(), Entry { stored: now, value });
    }

    /// Drops `key`'s entry, and keeps any read already under way from storing
    /// what it read before this call.
    pub fn forget(&self, key: &str) {
        if !self.is_enabled() {
            return;
        }
        let mut shard = self.shard(key);
        shard.generation += 1;
        shard.entries.remove(key);
    }

    fn shard_index(&self, key: &str) -> usize {
        self.hasher.hash_one(key) as usize % self.shards.len()
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard<V>> {
        let index = self.shard_index(key);
        // A panic elsewhere while holding the lock leaves a map that is still
        // consistent (every operation is a single insert or remove).
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Expired entries go first; if the shard is still full, an arbitrary one.
    fn make_room(&self, entries: &mut HashMap<String, Entry<V>>, now: Instant) {
        if entries.len() < self.per_shard {
            return;
        }
        entries.retain(|_, e| now.duration_since(e.stored) < self.ttl);
        if entries.len() >= self.per_shard {
            if let Some(victim) = entries.keys().next().cloned() {
                entries.remove(&victim);
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
    pub fn new(value: &impl serde::Serialize) -> Result<Self, crate::core::error::ApiError> {
        let body = Bytes::from(
            serde_json::to_vec(value).map_err(|e| crate::core::error::ApiError::Internal(Box::new(e)))?,
        );
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
        let Some(pages) = self.viewers.get(viewer) else {
            return Lookup::Missing;
        };
        let Some(cached) = pages.iter().find(|p| p.query == query) else {
            return Lookup::Missing;
        };
        let age = cached.read_at.elapsed();
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

    #[test]
    fn entries_expire_and_zero_ttl_stores_nothing() {
        let cache = TtlCache::new(Duration::from_millis(30), 10);
        cache.store("a", cache.generation("a"), |_| 1);
        assert_eq!(cache.get("a"), Some(1));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.get("a"), None);

        let off = TtlCache::new(Duration::ZERO, 10);
        off.store("a", off.generation("a"), |_| 1);
        assert_eq!(off.get("a"), None);
    }

    #[test]
    fn a_read_older_than_a_forget_is_not_stored() {
        let cache = TtlCache::new(Duration::from_secs(60), 10);
        let before = cache.generation("a");
        cache.forget("a");
        cache.store("a", before, |_| "stale");
        assert_eq!(cache.get("a"), None);
        cache.store("a", cache.generation("a"), |_| "fresh");
        assert_eq!(cache.get("a"), Some("fresh"));
    }

    #[test]
    fn capacity_is_bounded() {
        let cache = TtlCache::new(Duration::from_secs(60), SHARDS * 2);
        for i in 0..10_000 {
            let key = i.to_string();
            cache.store(&key, cache.generation(&key), |_| i);
        }
        let total: usize = cache
            .shards
            .iter()
            .map(|s| s.lock().unwrap().entries.len())
            .sum();
        assert!(total <= SHARDS * 2, "{total} entries");
    }

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
        let lifetime = Duration::from_millis(200);
        let cache = FeedPages::new(lifetime, 10);
        let page = |n: u32| CachedJson::new(&n).unwrap();
        cache.store("v", cache.generation("v"), "q".into(), page(1));
        assert_eq!(body(cache.lookup("v", "q")), Some(("1".into(), false)));
        std::thread::sleep(lifetime + Duration::from_millis(10));
        assert_eq!(body(cache.lookup("v", "q")), Some(("1".into(), true)));
        assert_eq!(body(cache.lookup("v", "q")), Some(("1".into(), false)));
        // The refresh lands: fresh again, and its own first stale reader refreshes it.
        cache.store("v", cache.generation("v"), "q".into(), page(2));
        assert_eq!(body(cache.lookup("v", "q")), Some(("2".into(), false)));
        std::thread::sleep(lifetime * 2 + Duration::from_millis(10));
        assert!(body(cache.lookup("v", "q")).is_none());
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
