//! What the prefetcher did, for the status view and `--stats-file`.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::{Counter, MetricsSnapshot};
use crate::telemetry::Fix;

/// Counters the prefetcher and its mount observer share.
#[derive(Debug, Default)]
pub struct PrefetchStats {
    /// Textures planned and waiting for a slot.
    pub queued: AtomicU64,
    /// Textures being prefetched now.
    pub in_flight: AtomicU64,
    /// Textures whose planned parts were built in the background.
    pub built: Counter,
    /// Prefetches cancelled: the aircraft flew past, or nobody flies.
    pub dropped: Counter,
    /// DSF tiles X-Plane opened.
    pub dsf_opens: Counter,
}

/// A point-in-time view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrefetchStatus {
    pub fix: Option<Fix>,
    pub queued: u64,
    pub in_flight: u64,
    pub built: u64,
    pub dropped: u64,
    /// Texture reads the service answered...
    pub reads: u64,
    /// ...and of those, reads whose range was built or on disk already.
    pub read_hits: u64,
    pub dsf_opens: u64,
}

impl PrefetchStats {
    /// The status now; the hit rate comes from the service's own count of
    /// reads that waited for a build (`service`).
    pub fn status(&self, fix: Option<Fix>, service: &MetricsSnapshot) -> PrefetchStatus {
        PrefetchStatus {
            fix,
            queued: self.queued.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            built: self.built.get(),
            dropped: self.dropped.get(),
            reads: service.reads,
            read_hits: service.reads.saturating_sub(service.reads_waited),
            dsf_opens: self.dsf_opens.get(),
        }
    }
}

impl PrefetchStatus {
    /// Share of X-Plane's texture reads that found their range built.
    pub fn hit_rate(&self) -> Option<f64> {
        (self.reads > 0).then(|| self.read_hits as f64 / self.reads as f64)
    }

    /// Where telemetry comes from, for people.
    pub fn source_name(&self) -> &'static str {
        self.fix.map_or("none", |fix| fix.source.name())
    }

    /// `key=value` lines for `--stats-file`.
    pub fn key_values(&self) -> Vec<(&'static str, String)> {
        let (lat, lon) = self.fix.map_or((String::new(), String::new()), |f| {
            (format!("{:.5}", f.lat), format!("{:.5}", f.lon))
        });
        vec![
            ("prefetch_source", self.source_name().to_string()),
            ("prefetch_lat", lat),
            ("prefetch_lon", lon),
            ("prefetch_queued", self.queued.to_string()),
            ("prefetch_in_flight", self.in_flight.to_string()),
            ("prefetch_built", self.built.to_string()),
            ("prefetch_dropped", self.dropped.to_string()),
            ("prefetch_reads", self.reads.to_string()),
            ("prefetch_read_hits", self.read_hits.to_string()),
            ("prefetch_dsf_opens", self.dsf_opens.to_string()),
        ]
    }
}
