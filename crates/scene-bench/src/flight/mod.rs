//! The flight benchmark (`scene-bench --flight`): is the ground ready before
//! X-Plane asks for it, and what does prefetch cost?
//!
//! A grid of packages, one per DSF tile at ZL16 and one tile at ZL17, is
//! served by `xearthlayer run` as a child process (so the product is
//! measured as shipped, `--telemetry` included). The simulated X-Plane
//! (`xel_sim::xplane`) parks at the start while it loads the start-up
//! scenery, then cruises north over the grid with time compression, sends
//! its telemetry over UDP and the Web API, and loads scenery through the
//! mounts by X-Plane's rule. Each flight is flown once per telemetry source:
//! UDP, Web API, inferred only (what X-Plane reads) and none (prefetch off,
//! the baseline), each on a fresh service and cache.
//!
//! Per load: textures read, the share of reads that found their range
//! ready (neither waiting for a download nor a build: the service's
//! `reads_waited` counter), read latency p50 and p99. Per flight: chunks
//! fetched beyond the baseline's (waste) and the live-read p99 against it.
//! A first flight, not reported, has the imagery server encode what the
//! loads ask for (a remote provider's work costs this machine nothing).
//!
//! Modules: [`report`] (Markdown), [`chart`] (hit rate along the flight).

mod chart;
mod report;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::ValueEnum;
use xel_sim::grid::create_grid_zoned;
use xel_sim::xplane::loader::LoaderConfig;
use xel_sim::xplane::{FlightPlan, SceneryLoader, SimXPlane, Trip};
use xel_sim::{start_in_background, BackgroundServer, ServerConfig};

use crate::service::{Mount, ServiceProcess, ServiceSpec};
use crate::BenchResult;

/// The grid: rows the flight and its loads reach, five columns around the track.
const ROWS: std::ops::RangeInclusive<i32> = 45..=51;
const COLUMNS: std::ops::RangeInclusive<i32> = -8..=-4;
/// The tile Ortho4XP made at ZL17 (near an airport, say), on the track.
const ZL17_TILE: (i32, i32) = (48, -6);
/// Take-off point and track: north along 5.55°W, from 0.2° into a tile.
const START: (f64, f64) = (46.2, -5.55);
const TRACK_DEG: f64 = 0.0;
/// Room in the imagery server's cache per texture of the grid.
const SERVER_CHUNKS_PER_TEXTURE: usize = 300;

/// Where the simulated X-Plane's position reaches the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Source {
    Udp,
    #[value(name = "webapi")]
    WebApi,
    /// No telemetry: the position inferred from what X-Plane reads.
    Inferred,
    /// Prefetch off: the baseline.
    None,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Udp => "UDP",
            Source::WebApi => "Web API",
            Source::Inferred => "inferred only",
            Source::None => "none (prefetch off)",
        }
    }

    /// The service's `--telemetry` for this source with `sim` flying.
    fn telemetry_arg(self, sim: &SimXPlane) -> String {
        match self {
            Source::Udp => format!("udp://{}", sim.udp_addr()),
            Source::WebApi => format!("http://{}", sim.web_addr()),
            Source::Inferred => "inferred".to_string(),
            Source::None => "off".to_string(),
        }
    }
}

/// What to fly.
#[derive(Debug, Clone)]
pub struct FlightSettings {
    pub binary: PathBuf,
    pub root: PathBuf,
    pub per_tile: usize,
    pub distance_km: f64,
    pub speeds_kt: Vec<f64>,
    pub time_compression: f64,
    pub sources: Vec<Source>,
    pub latency: Duration,
    pub jitter: Duration,
    /// Bytes per second all imagery answers share; 0 for none.
    pub bandwidth: u64,
    pub readers: usize,
    pub memory_cache_bytes: u64,
    pub extra_args: Vec<String>,
    pub seed: u64,
}

/// One load of a flight, as measured.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// The start-up load (parked, before the flight).
    pub startup: bool,
    pub flown_km: f64,
    pub at: Duration,
    pub tiles: usize,
    pub textures: usize,
    /// Texture reads the service answered during the load...
    pub reads: u64,
    /// ...and of those, the reads that waited for a build.
    pub waited: u64,
    pub stood_in: u64,
    /// Chunk requests during the load (the prefetcher's included).
    pub chunks: u64,
    pub latencies: Vec<Duration>,
    pub wall: Duration,
}

impl LoadResult {
    pub fn ready_share(&self) -> Option<f64> {
        (self.reads > 0).then(|| 1.0 - self.waited as f64 / self.reads as f64)
    }
}

/// One flight with one telemetry source.
#[derive(Debug, Clone)]
pub struct FlightResult {
    pub source: Source,
    pub speed_kt: f64,
    pub loads: Vec<LoadResult>,
    /// Chunk requests over the whole flight.
    pub chunks: u64,
    /// Textures the prefetcher built and dropped.
    pub prefetch_built: u64,
    pub prefetch_dropped: u64,
}

impl FlightResult {
    fn in_flight(&self) -> impl Iterator<Item = &LoadResult> {
        self.loads.iter().filter(|l| !l.startup)
    }

    /// Share of the in-flight loads' reads that were ready.
    pub fn ready_share(&self) -> Option<f64> {
        let (reads, waited) = self
            .in_flight()
            .fold((0, 0), |(r, w), l| (r + l.reads, w + l.waited));
        (reads > 0).then(|| 1.0 - waited as f64 / reads as f64)
    }

    /// Latency percentile over every texture of the in-flight loads.
    pub fn in_flight_percentile(&self, p: f64) -> Duration {
        let mut all: Vec<Duration> = self
            .in_flight()
            .flat_map(|l| l.latencies.iter().copied())
            .collect();
        all.sort_unstable();
        percentile(&all, p)
    }
}

/// `p` (0..=100) of sorted `values`.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    match sorted.len() {
        0 => Duration::ZERO,
        n => sorted[(((p / 100.0) * (n - 1) as f64).round() as usize).min(n - 1)],
    }
}

/// Flies every speed with every source, writes the report and the chart.
pub fn run(
    settings: &FlightSettings,
    label: &str,
    out: &Path,
    chart_path: &Path,
    command: &str,
) -> BenchResult {
    let root = &settings.root;
    let packages = root.join("packages");
    let grid = create_grid_zoned(&packages, ROWS, COLUMNS, settings.per_tile, |tile| {
        if tile == ZL17_TILE {
            17
        } else {
            16
        }
    })?;
    let custom_scenery = root.join("Custom Scenery");
    std::fs::create_dir_all(&custom_scenery)?;
    let mountpoints: Vec<PathBuf> = grid
        .iter()
        .filter_map(|p| p.root.file_name())
        .map(|name| {
            let mut name = name.to_os_string();
            name.push("_xel");
            custom_scenery.join(name)
        })
        .collect();
    let server = start_in_background(ServerConfig {
        seed: settings.seed,
        ..ServerConfig::default()
    })?;
    server.set_cache_entries(grid.len() * settings.per_tile * SERVER_CHUNKS_PER_TEXTURE);
    server.set_latency(settings.latency, settings.jitter);
    server.set_bandwidth(settings.bandwidth);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let flights = Flights {
        settings,
        server,
        runtime,
        spec: ServiceSpec {
            binary: settings.binary.clone(),
            mount: Mount::All {
                packages,
                custom_scenery,
                mountpoints,
                union: false,
            },
            url: String::new(),
            cache_dir: PathBuf::new(),
            memory_cache_bytes: settings.memory_cache_bytes,
            max_builds: None,
            extra_args: settings.extra_args.clone(),
            stats_file: PathBuf::new(),
            log: PathBuf::new(),
            config: root.join("config.ini"),
        },
    };
    eprintln!(
        "scene-bench: flight over {} tiles of {} textures; rehearsal flight first",
        grid.len(),
        settings.per_tile
    );
    let first_speed = *settings.speeds_kt.first().ok_or("no --speeds")?;
    flights.fly(Source::None, first_speed, "rehearsal")?;
    let mut results = Vec::new();
    for &speed in &settings.speeds_kt {
        for &source in &settings.sources {
            let result = flights.fly(source, speed, "flight")?;
            results.push(result);
        }
    }
    chart::draw(chart_path, settings, &results)?;
    let block = report::markdown(
        settings,
        &results,
        command,
        &crate::chart_link(out, chart_path),
    );
    println!("{block}");
    crate::report::write_block(out, label, &block)?;
    eprintln!(
        "scene-bench: wrote {} and {}",
        out.display(),
        chart_path.display()
    );
    Ok(())
}

struct Flights<'a> {
    settings: &'a FlightSettings,
    server: BackgroundServer,
    runtime: tokio::runtime::Runtime,
    spec: ServiceSpec,
}

impl Flights<'_> {
    /// One flight on a fresh service and cache.
    fn fly(&self, source: Source, speed_kt: f64, what: &str) -> BenchResult<FlightResult> {
        let s = self.settings;
        let plan = FlightPlan {
            start: START,
            track_deg: TRACK_DEG,
            speed_kt,
            time_compression: s.time_compression,
            elevation_m: 10_000.0,
        };
        let sim = self.runtime.block_on(SimXPlane::start(plan))?;
        let name = format!(
            "{what}-{}-{speed_kt:.0}",
            format!("{source:?}").to_lowercase()
        );
        let cache = s.root.join(format!("cache-{name}"));
        let _ = std::fs::remove_dir_all(&cache);
        let mut extra_args = self.spec.extra_args.clone();
        extra_args.extend(["--telemetry".to_string(), source.telemetry_arg(&sim)]);
        let mut service = ServiceProcess::start(ServiceSpec {
            url: self.server.url_template(),
            cache_dir: cache,
            stats_file: s.root.join(format!("stats-{name}.txt")),
            log: s.root.join(format!("service-{name}.log")),
            extra_args,
            ..self.spec.clone()
        })?;
        let mut loader = SceneryLoader::scan(
            self.spec.mount.mountpoints(),
            LoaderConfig {
                readers: s.readers,
                ..LoaderConfig::default()
            },
        )?;
        let mut trip = Trip::new(&sim, plan, s.distance_km * 1e3);
        let mut loads = Vec::new();
        while let Some(due) = trip.next_due(&mut loader) {
            let before = service.dump()?;
            let report = loader.load(&due.tiles, due.position)?;
            let after = service.dump()?;
            let mut latencies: Vec<Duration> = report.textures.iter().map(|t| t.latency).collect();
            latencies.sort_unstable();
            let load = LoadResult {
                startup: loads.is_empty(),
                flown_km: due.flown_m / 1e3,
                at: due.elapsed,
                tiles: due.tiles.len(),
                textures: report.textures.len(),
                reads: after.since(&before, "reads"),
                waited: after.since(&before, "reads_waited"),
                stood_in: after.since(&before, "reads_stood_in"),
                chunks: after.since(&before, "chunk_requests"),
                latencies,
                wall: report.wall,
            };
            eprintln!(
                "scene-bench: {name} at {:.0} km: {} tiles, {} textures, {}/{} reads ready, p99 {:.0} ms",
                load.flown_km,
                load.tiles,
                load.textures,
                load.reads - load.waited,
                load.reads,
                percentile(&load.latencies, 99.0).as_secs_f64() * 1e3
            );
            loads.push(load);
        }
        let end = service.dump()?;
        service.stop()?;
        Ok(FlightResult {
            source,
            speed_kt,
            loads,
            chunks: end.get("chunk_requests"),
            prefetch_built: end.get("prefetch_built"),
            prefetch_dropped: end.get("prefetch_dropped"),
        })
    }
}
