//! Prefetch while flying, for `start` and `run`: the `--telemetry` option,
//! and the telemetry clients and prefetcher started over the mounts.

use std::sync::Arc;

use clap::Args;
use xearthlayer::fs::OverlayFs;
use xearthlayer::prefetch::{IndexCatalog, PrefetchConfig, PrefetchStatus, Prefetcher};
use xearthlayer::telemetry::{self, InferredPosition, Telemetry, TelemetrySpec};
use xearthlayer::texture::TextureService;

use crate::config::FileSettings;

#[derive(Args, Debug, Clone)]
pub struct TelemetryArg {
    /// Where the aircraft is, for prefetch: auto (X-Plane's Web API on
    /// 127.0.0.1:8086, else UDP on 127.0.0.1:49000, and what X-Plane reads),
    /// off, inferred (only what X-Plane reads through the mounts, no
    /// telemetry client), udp://HOST:PORT or http://HOST:PORT [config:
    /// prefetch.telemetry; default: auto].
    #[arg(long, value_parser = parse_telemetry)]
    pub telemetry: Option<TelemetrySpec>,
}

fn parse_telemetry(s: &str) -> Result<TelemetrySpec, String> {
    s.parse().map_err(|e| format!("{e}"))
}

impl TelemetryArg {
    pub fn spec(&self, file: &FileSettings) -> TelemetrySpec {
        self.telemetry
            .clone()
            .or_else(|| file.telemetry.clone())
            .unwrap_or_default()
    }
}

/// The running prefetch: stops (cancelling its work) on drop.
pub struct FlightPrefetch {
    prefetcher: Prefetcher,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl FlightPrefetch {
    /// Starts prefetch over the mounts `filesystems`, or nothing with `off`.
    pub fn start(
        spec: &TelemetrySpec,
        service: &TextureService,
        filesystems: &[Arc<OverlayFs<TextureService>>],
    ) -> Option<FlightPrefetch> {
        if *spec == TelemetrySpec::Off {
            return None;
        }
        let catalog = Arc::new(IndexCatalog::new(filesystems.iter().map(|fs| fs.index())));
        let hub = Telemetry::new();
        let prefetcher = Prefetcher::new(
            service.clone(),
            catalog,
            hub.clone(),
            spec.uses_inferred()
                .then(|| InferredPosition::new(hub.clone())),
            PrefetchConfig::default(),
        );
        for fs in filesystems {
            fs.set_observer(prefetcher.observer());
        }
        let mut tasks = telemetry::spawn(spec, &hub);
        tasks.push(prefetcher.spawn());
        Some(FlightPrefetch { prefetcher, tasks })
    }

    pub fn status(&self) -> PrefetchStatus {
        self.prefetcher.status()
    }
}

impl Drop for FlightPrefetch {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// One status line: source, position, background work, hit rate.
pub fn status_line(status: &PrefetchStatus) -> String {
    let position = status.fix.map_or("unknown".to_string(), |f| {
        format!("{:.3},{:.3}", f.lat, f.lon)
    });
    let hits = status
        .hit_rate()
        .map_or("-".to_string(), |r| format!("{:.1}%", r * 100.0));
    format!(
        "prefetch: telemetry {} at {position}; background {} queued, {} in flight, {} built, {} dropped; X-Plane reads ready {hits} of {}",
        status.source_name(),
        status.queued,
        status.in_flight,
        status.built,
        status.dropped,
        status.reads
    )
}

/// [`FlightPrefetch::start`], printing what it uses and adding its counters
/// to `stats` (`--stats-file`).
pub fn start_with_status(
    spec: &TelemetrySpec,
    service: &TextureService,
    filesystems: &[Arc<OverlayFs<TextureService>>],
    stats: Option<&crate::status::StatsFile>,
) -> Option<Arc<FlightPrefetch>> {
    let prefetch = FlightPrefetch::start(spec, service, filesystems).map(Arc::new);
    match &prefetch {
        Some(_) => println!("prefetch: telemetry {spec}"),
        None => println!("prefetch: off"),
    }
    if let (Some(prefetch), Some(stats)) = (&prefetch, stats) {
        let prefetch = Arc::downgrade(prefetch);
        stats.set_extra(Box::new(move || {
            prefetch
                .upgrade()
                .map(|p| p.status().key_values())
                .unwrap_or_default()
        }));
    }
    prefetch
}

/// The status view's prefetch line, while prefetch runs.
pub fn status_lines(prefetch: Option<&Arc<FlightPrefetch>>) -> crate::status::ExtraLines {
    let prefetch = prefetch.map(Arc::downgrade);
    Arc::new(move || {
        prefetch
            .as_ref()
            .and_then(std::sync::Weak::upgrade)
            .map(|p| vec![status_line(&p.status())])
            .unwrap_or_default()
    })
}
