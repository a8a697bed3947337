// TEMPORARY: the lead replaces this with the background class
//! Background work on the texture service, as the prefetcher calls it.
//!
//! A stand-in until the engine has its own live and background classes:
//! prefetch is an ordinary read whose bytes are dropped, "cached" means
//! built in memory, and the engine counts as busy while any generation
//! runs.

use std::ops::Range;

use super::TextureService;
use crate::coord::TextureId;

impl TextureService {
    /// Builds `range` of the texture as background work. Dropping the
    /// future cancels what nobody else waits for.
    pub async fn prefetch(&self, id: &TextureId, range: Range<u64>) {
        let _ = self.read(&self.entry(id), range).await;
    }

    /// `range` is already built: a read would not wait for a download.
    pub fn is_cached(&self, id: &TextureId, range: Range<u64>) -> bool {
        self.entry(id).state().is_built(range)
    }

    /// Live reads are waiting for builds now (a burst is being served).
    pub fn live_busy(&self) -> bool {
        self.metrics().generations_in_flight.get() > 0
    }
}
