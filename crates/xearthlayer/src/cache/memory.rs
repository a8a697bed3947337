//! The memory tier: finished textures, bounded by bytes, evicted by
//! quick_cache's CLOCK-Pro policy (scan resistant: one pass over many
//! distant textures does not flush the ones being flown over).

use std::time::Instant;

use bytes::Bytes;
use quick_cache::sync::Cache;
use quick_cache::{OptionsBuilder, Weighter};

use super::TextureKey;

/// A finished texture file.
#[derive(Debug, Clone)]
pub struct CachedTexture {
    pub bytes: Bytes,
    /// Some chunks were filled in: serve it, but build it again later.
    pub degraded: bool,
    pub built_at: Instant,
}

#[derive(Debug, Clone, Copy)]
struct ByteWeight;

impl Weighter<TextureKey, CachedTexture> for ByteWeight {
    fn weight(&self, _key: &TextureKey, texture: &CachedTexture) -> u64 {
        texture.bytes.len() as u64
    }
}

/// Textures in memory, at most `capacity` bytes of them.
pub struct MemoryCache {
    cache: Cache<TextureKey, CachedTexture, ByteWeight>,
}

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache")
            .field("bytes", &self.cache.weight())
            .field("entries", &self.cache.len())
            .finish()
    }
}

impl MemoryCache {
    pub fn new(capacity: u64) -> Self {
        // quick_cache splits the capacity over shards and refuses items larger
        // than a shard; keep shards large enough for a few textures each.
        let shards = (capacity / (256 << 20)).clamp(1, 16) as usize;
        let options = OptionsBuilder::new()
            .shards(shards)
            .estimated_items_capacity((capacity / (11 << 20)).max(1) as usize)
            .weight_capacity(capacity.max(1))
            .build()
            .expect("cache options are complete");
        MemoryCache {
            cache: Cache::with_options(options, ByteWeight, Default::default(), Default::default()),
        }
    }

    pub fn get(&self, key: &TextureKey) -> Option<CachedTexture> {
        self.cache.get(key)
    }

    pub fn insert(&self, key: TextureKey, texture: CachedTexture) {
        self.cache.insert(key, texture);
    }

    pub fn remove(&self, key: &TextureKey) {
        self.cache.remove(key);
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

    fn texture(len: usize) -> CachedTexture {
        CachedTexture {
            bytes: Bytes::from(vec![0u8; len]),
            degraded: false,
            built_at: Instant::now(),
        }
    }

    #[test]
    fn stays_within_its_byte_budget() {
        let cache = MemoryCache::new(100 << 20);
        for row in 0..40 {
            cache.insert(TextureKey { zoom: 16, row, col: 0 }, texture(11 << 20));
        }
        assert!(cache.weight() <= 100 << 20, "{}", cache.weight());
        assert!(cache.len() >= 5, "a 100 MiB cache holds several 11 MiB textures");
        let last = TextureKey { zoom: 16, row: 39, col: 0 };
        assert!(cache.get(&last).is_some());
    }
}
