//! Open file and directory handles.
//!
//! Every read looks its handle up, so the table is sharded: a handful of
//! small mutexes held only to clone an `Arc` out, never across an await.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::dir::DirSnapshot;

const SHARDS: usize = 16;

/// What one handle refers to.
pub(crate) enum OpenNode<H> {
    /// A real file, read with positional reads.
    Real { ino: u64, file: std::fs::File },
    /// A virtual texture with the engine's per-open state.
    Texture { ino: u64, handle: H },
    /// A directory: the listing taken at `opendir`.
    Dir(Arc<DirSnapshot>),
}

/// Handles by number; numbers start at 1 and are never reused in a mount.
pub(crate) struct HandleTable<T> {
    next: AtomicU64,
    shards: [Mutex<HashMap<u64, Arc<T>>>; SHARDS],
}

impl<T> HandleTable<T> {
    pub fn new() -> Self {
        HandleTable {
            next: AtomicU64::new(1),
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        }
    }

    pub fn insert(&self, value: T) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        self.shard(fh).insert(fh, Arc::new(value));
        fh
    }

    pub fn get(&self, fh: u64) -> Option<Arc<T>> {
        self.shard(fh).get(&fh).cloned()
    }

    pub fn remove(&self, fh: u64) -> Option<Arc<T>> {
        self.shard(fh).remove(&fh)
    }

    pub fn len(&self) -> usize {
        (0..SHARDS).map(|i| self.shard(i as u64).len()).sum()
    }

    fn shard(&self, fh: u64) -> MutexGuard<'_, HashMap<u64, Arc<T>>> {
        self.shards[fh as usize % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}
