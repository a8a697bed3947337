//! One texture's shared entry: what is built of it and the work under way.
//!
//! Every open file of a texture and every build of it share one entry, found
//! through the [`registry`](super::registry). The entry owns its unit builds
//! (through [`SharedWork`] claims), the stand-in chunks fetched for it, and
//! which of its units failed, so a failure is served with stand-ins and
//! built again on a later open instead of being retried on every read.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::OnceCell;

use super::plan::Unit;
use super::shared_work::SharedWork;
use super::state::TextureState;
use crate::cache::{DiskCache, TextureKey};
use crate::coord::{ChunkCoord, TextureId};
use crate::dds::layout::DdsFormat;
use crate::provider::TileProvider;

/// What identifies an entry: a texture's pixels from one source of imagery
/// (the same tile from two providers is two entries).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntryKey {
    /// The provider's cache key.
    pub source: Arc<str>,
    pub texture: TextureKey,
}

/// How a unit build ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitOutcome {
    /// Its bytes are in the state, all from real imagery.
    Built,
    /// Its bytes are in the state, with stand-in chunks.
    Degraded,
    /// A background build that would have had stand-ins: nothing was kept,
    /// so a reader builds it for real later.
    Discarded,
}

/// One texture's shared entry.
pub struct TextureEntry {
    id: TextureId,
    key: EntryKey,
    /// Where its imagery comes from, and where its built parts are kept.
    pub(super) provider: Arc<dyn TileProvider>,
    pub(super) disk: Option<Arc<DiskCache>>,
    pub(super) state: TextureState,
    /// Units being built, each shared by every reader that needs it.
    pub(super) units: SharedWork<Unit, UnitOutcome>,
    /// Stand-in chunks fetched for this texture (lower-zoom imagery), kept
    /// for its other units.
    pub(super) stand_ins: Mutex<HashMap<ChunkCoord, Bytes>>,
    /// Units whose build died (a bug): served with stand-ins from now on.
    pub(super) failed: Mutex<HashSet<Unit>>,
    pub(super) disk_loaded: OnceCell<()>,
}

impl std::fmt::Debug for TextureEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextureEntry")
            .field("id", &self.id)
            .field("bytes_held", &self.state.bytes_held())
            .finish_non_exhaustive()
    }
}

impl TextureEntry {
    pub(super) fn new(
        id: TextureId,
        provider: Arc<dyn TileProvider>,
        disk: Option<Arc<DiskCache>>,
        format: DdsFormat,
    ) -> Self {
        TextureEntry {
            key: EntryKey {
                source: Arc::from(provider.cache_key()),
                texture: TextureKey::from(&id),
            },
            id,
            provider,
            disk,
            state: TextureState::new(format),
            units: SharedWork::default(),
            stand_ins: Mutex::default(),
            failed: Mutex::default(),
            disk_loaded: OnceCell::new(),
        }
    }

    pub fn id(&self) -> &TextureId {
        &self.id
    }

    pub fn key(&self) -> &EntryKey {
        &self.key
    }

    pub fn provider(&self) -> &Arc<dyn TileProvider> {
        &self.provider
    }

    pub fn state(&self) -> &TextureState {
        &self.state
    }

    /// Memory the entry holds: built bytes and stand-in chunks kept.
    pub fn weight(&self) -> u64 {
        let stand_ins: u64 = lock(&self.stand_ins).values().map(|b| b.len() as u64).sum();
        self.state.bytes_held() + stand_ins
    }

    /// A degraded entry is replaced for new opens once it is this old.
    pub(super) fn stale(&self, retry_after: Duration) -> bool {
        self.state.is_degraded() && self.state.age() >= retry_after
    }

    pub(super) fn stand_in(&self, chunk: &ChunkCoord) -> Option<Bytes> {
        lock(&self.stand_ins).get(chunk).cloned()
    }

    pub(super) fn keep_stand_in(&self, chunk: ChunkCoord, image: Bytes) {
        lock(&self.stand_ins).insert(chunk, image);
    }

    pub(super) fn mark_failed(&self, unit: Unit) {
        self.state.mark_degraded();
        lock(&self.failed).insert(unit);
    }

    pub(super) fn has_failed(&self, unit: Unit) -> bool {
        lock(&self.failed).contains(&unit)
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Held for map updates and reference copies only.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
