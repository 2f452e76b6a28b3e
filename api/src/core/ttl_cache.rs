//! A sharded map whose entries expire a fixed time after being stored: the
//! building block of the session and feed caches ([`crate::core::cache`]).
//!
//! Bounded in number of entries, and a value read from the database before
//! a `forget` is never stored after it (generations).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Lock shards: enough that concurrent requests rarely wait on each other.
const SHARDS: usize = 32;
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

    pub(crate) fn shard_index(&self, key: &str) -> usize {
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
}
