//! Plain-text status: a periodic line while serving and a summary on exit.

use std::time::{Duration, Instant};

use xearthlayer::metrics::MetricsSnapshot;
use xearthlayer::texture::TextureService;

/// Logs a status line every `every` until aborted.
pub fn spawn_reporter(service: TextureService, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = (Instant::now(), service.metrics().snapshot());
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = (Instant::now(), service.metrics().snapshot());
            let secs = now.0.duration_since(last.0).as_secs_f64().max(1e-9);
            tracing::info!("{}", line(&last.1, &now.1, secs, &service));
            last = now;
        }
    })
}

fn line(before: &MetricsSnapshot, now: &MetricsSnapshot, secs: f64, service: &TextureService) -> String {
    let rate = |a: u64, b: u64| (b - a) as f64 / secs;
    format!(
        "textures: {} in flight, {:.1}/s built | chunks: {:.0}/s, {:.1} errors/s, {} in flight | cache: {} memory hits, {} disk hits | memory cache {} MiB",
        now.generations_in_flight,
        rate(before.textures_generated, now.textures_generated),
        rate(before.chunk_requests, now.chunk_requests),
        rate(before.chunk_failures, now.chunk_failures),
        now.requests_in_flight,
        now.memory_hits - before.memory_hits,
        now.disk_hits - before.disk_hits,
        service.memory_bytes() >> 20,
    )
}

/// One paragraph on what the service did.
pub fn summary(service: &TextureService) -> String {
    let m = service.metrics().snapshot();
    format!(
        "served {} MiB; built {} textures ({} with filled chunks), {} from disk, {} from memory; \
         {} chunk requests ({} retried, {} failed), peak {} textures and {} requests in flight",
        m.bytes_read >> 20,
        m.textures_generated,
        m.textures_degraded,
        m.disk_hits,
        m.memory_hits,
        m.chunk_requests,
        m.chunk_retries,
        m.chunk_failures,
        m.peak_generations_in_flight,
        m.peak_requests_in_flight
    )
}
