//! The memory tier: textures (whole or in part), bounded by bytes, evicted by
//! quick_cache's CLOCK-Pro policy (scan resistant: one pass over many distant
//! textures does not flush the ones being flown over).

use quick_cache::sync::Cache;
use quick_cache::{OptionsBuilder, Weighter};

use std::hash::Hash;

/// Smallest weight an entry counts for: its bookkeeping. (quick_cache never
/// evicts weightless entries.)
const MIN_WEIGHT: u64 = 4096;

#[derive(Debug, Clone)]
struct Weighted<V> {
    value: V,
    weight: u64,
}

#[derive(Debug, Clone, Copy)]
struct ByWeight;

impl<K, V> Weighter<K, Weighted<V>> for ByWeight {
    fn weight(&self, _key: &K, entry: &Weighted<V>) -> u64 {
        entry.weight
    }
}

/// Values by key (a texture of one source), at most `capacity` bytes of
/// them by their stated weight.
pub struct MemoryCache<K: Hash + Eq + Clone, V: Clone> {
    cache: Cache<K, Weighted<V>, ByWeight>,
}

impl<K: Hash + Eq + Clone, V: Clone> std::fmt::Debug for MemoryCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache")
            .field("bytes", &self.cache.weight())
            .field("entries", &self.cache.len())
            .finish()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> MemoryCache<K, V> {
    pub fn new(capacity: u64) -> Self {
        // quick_cache splits the capacity over shards and refuses items larger
        // than a shard; keep shards large enough for a few whole textures.
        let shards = (capacity / (256 << 20)).clamp(1, 16) as usize;
        let options = OptionsBuilder::new()
            .shards(shards)
            .estimated_items_capacity((capacity / (1 << 20)).max(16) as usize)
            .weight_capacity(capacity.max(MIN_WEIGHT))
            .build()
            .expect("cache options are complete");
        MemoryCache {
            cache: Cache::with_options(options, ByWeight, Default::default(), Default::default()),
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.cache.get(key).map(|e| e.value)
    }

    /// Inserts or replaces; `weight` is the bytes the value holds now
    /// (re-insert to update it as a value grows).
    pub fn insert(&self, key: K, value: V, weight: u64) {
        let weight = weight.max(MIN_WEIGHT);
        self.cache.insert(key, Weighted { value, weight });
    }

    /// Bytes held.
    pub fn weight(&self) -> u64 {
        self.cache.weight()
    }

    pub fn len(&self) -> usize {
        self.cache.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::TextureKey;

    #[test]
    fn stays_within_its_byte_budget() {
        let cache = MemoryCache::new(100 << 20);
        for row in 0..40 {
            cache.insert(
                TextureKey {
                    zoom: 16,
                    row,
                    col: 0,
                },
                row,
                11 << 20,
            );
        }
        assert!(cache.weight() <= 100 << 20, "{}", cache.weight());
        assert!(
            cache.len() >= 5,
            "a 100 MiB cache holds several 11 MiB textures"
        );
        assert_eq!(
            cache.get(&TextureKey {
                zoom: 16,
                row: 39,
                col: 0
            }),
            Some(39)
        );
    }

    #[test]
    fn reinsertion_updates_the_weight() {
        let cache = MemoryCache::new(100 << 20);
        let key = TextureKey {
            zoom: 16,
            row: 0,
            col: 0,
        };
        cache.insert(key, "small", 1 << 20);
        assert_eq!(cache.weight(), 1 << 20);
        cache.insert(key, "grown", 5 << 20);
        assert_eq!(cache.weight(), 5 << 20);
        assert_eq!(cache.get(&key), Some("grown"));
    }
}
