//! The demo's short flight: the simulated X-Plane parks over a small grid of
//! packages (one per DSF tile) while it loads the start-up scenery, then
//! flies north at 450 kt with 16x time compression, sending its position
//! over UDP and loading the band ahead through the mounts by X-Plane's
//! rule. Prefetch, started as `start` and `run` start it, builds that band
//! in the background first; the demo prints, per load, the share of
//! X-Plane's reads that found their texture ready.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use xearthlayer::fs::OverlayFs;
use xearthlayer::fuse::{mount_shared, MountConfig, MountSession};
use xearthlayer::provider::TemplateProvider;
use xearthlayer::telemetry::TelemetrySpec;
use xearthlayer::texture::{ServiceConfig, TextureService};
use xel_sim::grid::create_grid;
use xel_sim::server::ImageryServer;
use xel_sim::xplane::loader::LoaderConfig;
use xel_sim::xplane::{FlightPlan, SceneryLoader, SimXPlane, Trip};

use crate::args::CliResult;
use crate::flight::FlightPrefetch;

/// The grid: what the start-up load and the first in-flight load reach.
const ROWS: std::ops::RangeInclusive<i32> = 45..=49;
const COLUMNS: std::ops::RangeInclusive<i32> = -8..=-4;
const TEXTURES_PER_TILE: usize = 4;
/// From 0.2° into a tile, past the 0.6° mark where X-Plane loads the band ahead.
const PLAN: FlightPlan = FlightPlan {
    start: (46.2, -5.55),
    track_deg: 0.0,
    speed_kt: 450.0,
    time_compression: 16.0,
    elevation_m: 10_000.0,
};
const DISTANCE_M: f64 = 60_000.0;

/// One load as the demo reports it.
struct LoadLine {
    flown_km: f64,
    tiles: usize,
    textures: usize,
    reads: u64,
    ready: u64,
    p99: Duration,
    /// Prefetches still queued or running when the load fired.
    prefetch_behind: u64,
}

/// Flies, prints what happened, and unmounts whatever it mounted.
pub async fn fly(dir: &Path, server: &ImageryServer) -> CliResult {
    let grid = {
        let dir = dir.join("flight");
        tokio::task::spawn_blocking(move || create_grid(&dir, ROWS, COLUMNS, 16, TEXTURES_PER_TILE))
            .await??
    };
    let provider = Arc::new(TemplateProvider::custom(&server.url_template())?);
    let service = TextureService::new(
        provider,
        ServiceConfig {
            disk_cache: Some((dir.join("flight-cache"), 1 << 30)),
            ..ServiceConfig::default()
        },
    )?;
    let mut sessions: Vec<MountSession> = Vec::new();
    let mut filesystems = Vec::new();
    let mut mounts: Vec<PathBuf> = Vec::new();
    let mounted = async {
        for package in &grid {
            let fs = {
                let (root, service) = (package.root.clone(), service.clone());
                Arc::new(tokio::task::spawn_blocking(move || OverlayFs::new(root, service)).await??)
            };
            let mut name = package.root.file_name().unwrap_or_default().to_os_string();
            name.push("_xel");
            let mountpoint = dir.join("flight-mounts").join(name);
            sessions
                .push(mount_shared(Arc::clone(&fs), &mountpoint, &MountConfig::default()).await?);
            filesystems.push(fs);
            mounts.push(mountpoint);
        }
        CliResult::Ok(())
    }
    .await;
    let flown = match mounted {
        Ok(()) => fly_mounted(&service, &filesystems, mounts).await,
        Err(e) => Err(e),
    };
    for session in sessions {
        session.unmount().await?;
    }
    service.flush().await;
    flown
}

async fn fly_mounted(
    service: &TextureService,
    filesystems: &[Arc<OverlayFs<TextureService>>],
    mounts: Vec<PathBuf>,
) -> CliResult {
    let sim = SimXPlane::start(PLAN).await?;
    let prefetch = FlightPrefetch::start(&TelemetrySpec::Udp(sim.udp_addr()), service, filesystems)
        .ok_or("prefetch did not start")?;
    println!(
        "5. a short flight: {} tiles of {TEXTURES_PER_TILE} textures, one mount each; the simulated \
         X-Plane sends UDP telemetry from {:.1}, {:.2}, then flies north at {:.0} kt with {:.0}x \
         time compression",
        mounts.len(),
        PLAN.start.0,
        PLAN.start.1,
        PLAN.speed_kt,
        PLAN.time_compression
    );
    let metrics = Arc::clone(service.metrics());
    let prefetch = Arc::new(prefetch);
    let watcher = Arc::clone(&prefetch);
    // X-Plane's loader reads with blocking file I/O, on threads of its own.
    let loads = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<LoadLine>> {
        let mut loader = SceneryLoader::scan(&mounts, LoaderConfig::default())?;
        let mut trip = Trip::new(&sim, PLAN, DISTANCE_M);
        let mut lines = Vec::new();
        while let Some(due) = trip.next_due(&mut loader) {
            let before = metrics.snapshot();
            let status = watcher.status();
            let report = loader.load(&due.tiles, due.position)?;
            let after = metrics.snapshot();
            let reads = after.reads - before.reads;
            lines.push(LoadLine {
                flown_km: due.flown_m / 1e3,
                tiles: due.tiles.len(),
                textures: report.textures.len(),
                reads,
                ready: reads - (after.reads_waited - before.reads_waited),
                p99: report.percentile(99.0),
                prefetch_behind: status.queued + status.in_flight,
            });
        }
        Ok(lines)
    })
    .await??;
    for (i, load) in loads.iter().enumerate() {
        let what = if i == 0 {
            "start-up load (parked; nothing can predict it)".to_string()
        } else {
            format!("load at {:.0} km", load.flown_km)
        };
        println!(
            "   {what}: {} tiles, {} textures, {}/{} reads ready ({:.0}%), slowest 1% {:.0} ms; {} prefetches were still to do",
            load.tiles,
            load.textures,
            load.ready,
            load.reads,
            load.ready as f64 * 100.0 / load.reads.max(1) as f64,
            load.p99.as_secs_f64() * 1e3,
            load.prefetch_behind
        );
    }
    let status = prefetch.status();
    println!(
        "   prefetch built {} textures ahead in the background (telemetry: {})",
        status.built,
        status.source_name()
    );
    if loads.len() < 2 {
        return Err("the flight fired no load after the start-up load".into());
    }
    Ok(())
}
