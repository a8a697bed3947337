//! Finding a texture's one entry, independent of the memory cache.
//!
//! The memory cache decides which entries stay in memory when nobody uses
//! them; it does not decide which entry is *the* entry of a texture. That is
//! this registry: a map of every entry still alive anywhere (held by the
//! memory cache, an open file or a build), so an entry evicted from the
//! cache while a build or a reader still holds it is found again, and no
//! second build of the same unit starts. An entry is replaced only when it
//! is degraded and older than the retry interval, so a failure does not
//! stick: open files keep the entry they got.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::entry::{lock, EntryKey, TextureEntry};
use crate::cache::MemoryCache;

/// Every live entry, and the memory cache that keeps recent ones alive.
pub struct Registry {
    live: Mutex<HashMap<EntryKey, Weak<TextureEntry>>>,
    memory: MemoryCache<EntryKey, Arc<TextureEntry>>,
    retry_after: Duration,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("memory", &self.memory)
            .finish_non_exhaustive()
    }
}

/// What [`Registry::entry`] found.
pub enum Found {
    Existing(Arc<TextureEntry>),
    /// A new entry (nothing of the texture was alive, or it was stale).
    New(Arc<TextureEntry>),
}

impl Registry {
    pub fn new(memory_bytes: u64, retry_after: Duration) -> Self {
        Registry {
            live: Mutex::new(HashMap::new()),
            memory: MemoryCache::new(memory_bytes),
            retry_after,
        }
    }

    /// The entry of `key`, made by `make` if none is alive or usable.
    pub fn entry(&self, key: EntryKey, make: impl FnOnce() -> TextureEntry) -> Found {
        let mut live = lock(&self.live);
        if let Some(entry) = live.get(&key).and_then(Weak::upgrade) {
            if !entry.stale(self.retry_after) {
                // Back in the memory cache if it had been evicted.
                if self.memory.get(&key).is_none() {
                    self.memory
                        .insert(key.clone(), Arc::clone(&entry), entry.weight());
                }
                return Found::Existing(entry);
            }
        }
        let entry = Arc::new(make());
        if live.len() >= 1024 && live.len().is_power_of_two() {
            live.retain(|_, e| e.strong_count() > 0);
        }
        live.insert(key.clone(), Arc::downgrade(&entry));
        self.memory.insert(key, Arc::clone(&entry), entry.weight());
        Found::New(entry)
    }

    /// Tells the memory cache how much the entry holds now, if the entry is
    /// still the texture's current one.
    pub fn reweigh(&self, entry: &Arc<TextureEntry>) {
        let live = lock(&self.live);
        let current = live
            .get(entry.key())
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(entry)));
        if current {
            self.memory
                .insert(entry.key().clone(), Arc::clone(entry), entry.weight());
        }
    }

    /// The entry of `key` if one is alive (no new entry is made).
    pub fn find(&self, key: &EntryKey) -> Option<Arc<TextureEntry>> {
        lock(&self.live).get(key).and_then(Weak::upgrade)
    }

    /// Bytes the memory cache holds.
    pub fn memory_bytes(&self) -> u64 {
        self.memory.weight()
    }

    /// Entries alive (in the cache or held elsewhere).
    pub fn live_entries(&self) -> usize {
        lock(&self.live)
            .values()
            .filter(|e| e.strong_count() > 0)
            .count()
    }
}
