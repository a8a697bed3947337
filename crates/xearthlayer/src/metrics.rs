//! Counters and gauges shared by every stage, read by the status view,
//! benchmarks and tests. Lock-free atomics: cheap on hot paths.

use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn incr(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A level that goes up and down, remembering its peak.
#[derive(Debug, Default)]
pub struct Gauge {
    now: AtomicU64,
    peak: AtomicU64,
}

impl Gauge {
    /// Raises the level until the returned guard is dropped.
    pub fn enter(&self) -> GaugeGuard<'_> {
        self.raise();
        GaugeGuard(self)
    }
    /// Raises the level by one; pair with [`Gauge::lower`].
    pub fn raise(&self) {
        let now = self.now.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }
    pub fn lower(&self) {
        self.now.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
    /// Starts a new peak measurement from the current level.
    pub fn reset_peak(&self) {
        self.peak.store(self.get(), Ordering::Relaxed);
    }
}

/// Lowers its gauge on drop.
#[derive(Debug)]
pub struct GaugeGuard<'a>(&'a Gauge);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.lower();
    }
}

/// Everything the service counts.
#[derive(Debug, Default)]
pub struct Metrics {
    pub chunk_requests: Counter,
    pub chunk_retries: Counter,
    pub chunk_failures: Counter,
    pub chunk_bytes: Counter,
    pub requests_in_flight: Gauge,
    /// Of those, for live reads and for background work.
    pub requests_live: Gauge,
    pub requests_background: Gauge,
    /// 429 and 503 replies.
    pub chunk_throttled: Counter,
    /// Requests failed at once: their provider was failing or paused.
    pub chunk_fast_failed: Counter,
    /// 200 replies that were fillers ("no imagery here").
    pub chunk_filler: Counter,
    /// Chunks the provider has no imagery for (404, fillers, beyond its zooms).
    pub chunk_no_data: Counter,
    /// Attempts ended by the first-byte or body timeout.
    pub chunk_timeouts: Counter,
    /// Textures opened with nothing of them in memory.
    pub textures_touched: Counter,
    /// Textures with chunks filled in rather than downloaded.
    pub textures_degraded: Counter,
    pub chunks_filled: Counter,
    pub generations_in_flight: Gauge,
    pub memory_hits: Counter,
    pub disk_hits: Counter,
    pub cache_misses: Counter,
    pub bytes_read: Counter,
    /// Texture bytes built (segments added), against `bytes_read`.
    pub bytes_produced: Counter,
    /// Build units (strips, low levels) finished.
    pub units_built: Counter,
    /// Reads that touched each mip level.
    pub reads_by_level: [Counter; 13],
    /// Background unit builds (read-ahead, prefetch) running now.
    pub background_builds_in_flight: Gauge,
    /// Background builds that would have had stand-ins and kept nothing.
    pub background_discarded: Counter,
    /// Prefetch requests made of the service.
    pub prefetches: Counter,
    /// Reads of texture bytes (the filesystem's, not the prefetcher's).
    pub reads: Counter,
    /// Of those, reads that waited for a build: their range was neither in
    /// memory nor on disk. The others were ready.
    pub reads_waited: Counter,
    /// Reads answered with final imagery: every byte built from the
    /// provider's imagery at the texture's own zoom.
    pub reads_final: Counter,
    /// Reads answered (partly) with stand-ins: the provider stalled or
    /// failed for what they needed, their cap ran out, or some chunks of
    /// their texture had no imagery and were filled in.
    pub reads_stood_in: Counter,
    /// Of those, reads given up because their provider stalled or failed fast.
    pub reads_stalled: Counter,
    /// Of those, reads whose cap ran out while their work still moved.
    pub reads_past_cap: Counter,
    /// Background unit builds whose downloads were cut by their budget.
    pub units_cut_by_deadline: Counter,
    /// Unit builds that died (a bug): served with stand-ins.
    pub builds_failed: Counter,
    /// Finished parts not stored because disk writes were backed up.
    pub disk_writes_dropped: Counter,
}

/// A point-in-time copy of [`Metrics`], for reports and rates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub chunk_requests: u64,
    pub chunk_retries: u64,
    pub chunk_failures: u64,
    pub chunk_bytes: u64,
    pub requests_in_flight: u64,
    pub peak_requests_in_flight: u64,
    pub requests_live: u64,
    pub requests_background: u64,
    pub chunk_throttled: u64,
    pub chunk_fast_failed: u64,
    pub chunk_filler: u64,
    pub chunk_no_data: u64,
    pub chunk_timeouts: u64,
    pub textures_touched: u64,
    pub textures_degraded: u64,
    pub chunks_filled: u64,
    pub generations_in_flight: u64,
    pub peak_generations_in_flight: u64,
    pub memory_hits: u64,
    pub disk_hits: u64,
    pub cache_misses: u64,
    pub bytes_read: u64,
    pub bytes_produced: u64,
    pub units_built: u64,
    pub reads_by_level: [u64; 13],
    pub background_builds_in_flight: u64,
    pub background_discarded: u64,
    pub prefetches: u64,
    pub reads: u64,
    pub reads_waited: u64,
    pub reads_final: u64,
    pub reads_stood_in: u64,
    pub reads_stalled: u64,
    pub reads_past_cap: u64,
    pub units_cut_by_deadline: u64,
    pub builds_failed: u64,
    pub disk_writes_dropped: u64,
}

impl Metrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            chunk_requests: self.chunk_requests.get(),
            chunk_retries: self.chunk_retries.get(),
            chunk_failures: self.chunk_failures.get(),
            chunk_bytes: self.chunk_bytes.get(),
            requests_in_flight: self.requests_in_flight.get(),
            peak_requests_in_flight: self.requests_in_flight.peak(),
            requests_live: self.requests_live.get(),
            requests_background: self.requests_background.get(),
            chunk_throttled: self.chunk_throttled.get(),
            chunk_fast_failed: self.chunk_fast_failed.get(),
            chunk_filler: self.chunk_filler.get(),
            chunk_no_data: self.chunk_no_data.get(),
            chunk_timeouts: self.chunk_timeouts.get(),
            textures_touched: self.textures_touched.get(),
            textures_degraded: self.textures_degraded.get(),
            chunks_filled: self.chunks_filled.get(),
            generations_in_flight: self.generations_in_flight.get(),
            peak_generations_in_flight: self.generations_in_flight.peak(),
            memory_hits: self.memory_hits.get(),
            disk_hits: self.disk_hits.get(),
            cache_misses: self.cache_misses.get(),
            bytes_read: self.bytes_read.get(),
            bytes_produced: self.bytes_produced.get(),
            units_built: self.units_built.get(),
            reads_by_level: std::array::from_fn(|l| self.reads_by_level[l].get()),
            background_builds_in_flight: self.background_builds_in_flight.get(),
            background_discarded: self.background_discarded.get(),
            prefetches: self.prefetches.get(),
            reads: self.reads.get(),
            reads_waited: self.reads_waited.get(),
            reads_final: self.reads_final.get(),
            reads_stood_in: self.reads_stood_in.get(),
            reads_stalled: self.reads_stalled.get(),
            reads_past_cap: self.reads_past_cap.get(),
            units_cut_by_deadline: self.units_cut_by_deadline.get(),
            builds_failed: self.builds_failed.get(),
            disk_writes_dropped: self.disk_writes_dropped.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauge_tracks_peak() {
        let g = Gauge::default();
        let a = g.enter();
        let b = g.enter();
        assert_eq!((g.get(), g.peak()), (2, 2));
        drop(a);
        drop(b);
        assert_eq!((g.get(), g.peak()), (0, 2));
        g.reset_peak();
        assert_eq!(g.peak(), 0);
    }
}
