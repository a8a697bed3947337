//! Short flights through real mounts: the simulated X-Plane flies north
//! over a grid of packages and loads scenery by X-Plane's rule; the
//! prefetcher must have the band ahead built before X-Plane reads it,
//! steered by UDP telemetry, or by nothing but what X-Plane reads. The
//! start-up load, which nothing can predict, is the control: part of it
//! waits for downloads. Without /dev/fuse or root the tests print SKIPPED
//! and pass, like the other mount tests.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use xearthlayer::fs::OverlayFs;
use xearthlayer::fuse::{mount_shared, MountConfig};
use xearthlayer::prefetch::{IndexCatalog, PrefetchConfig, Prefetcher};
use xearthlayer::provider::TemplateProvider;
use xearthlayer::telemetry::{self, InferredPosition, SourceKind, Telemetry, TelemetrySpec};
use xearthlayer::texture::{ServiceConfig, TextureService};
use xel_sim::grid::create_grid;
use xel_sim::mounts::can_mount;
use xel_sim::server::{ImageryServer, ServerConfig};
use xel_sim::xplane::loader::LoaderConfig;
use xel_sim::xplane::{FlightPlan, SceneryLoader, SimXPlane};

/// One load as X-Plane read it: its tiles, its texture reads, and how many
/// of them found their bytes ready.
#[derive(Debug)]
struct Burst {
    tiles: Vec<(i32, i32)>,
    reads: u64,
    hits: u64,
}

/// Loads the start-up scenery parked at 47.0N, then flies north at 450 kt
/// and 20x (about 0.04° a second, so a load every 24 s) until `loads`
/// loads have been read, steered by UDP telemetry or (`udp` false) only by
/// what X-Plane reads. Returns the loads and the last fix.
fn fly(udp: bool, loads: usize) -> (Vec<Burst>, Option<xearthlayer::telemetry::Fix>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // ZL14, 4 textures a tile: the test takes seconds.
    let packages = create_grid(&dir.path().join("src"), 46..=51, -7..=-4, 14, 4).unwrap();
    let server = runtime
        .block_on(ImageryServer::start(ServerConfig {
            latency: Duration::from_millis(30),
            ..ServerConfig::default()
        }))
        .unwrap();
    let provider = Arc::new(TemplateProvider::custom(&server.url_template()).unwrap());
    let service = TextureService::new(provider, ServiceConfig::default()).unwrap();
    let mut sessions = Vec::new();
    let mut mounts: Vec<PathBuf> = Vec::new();
    let mut filesystems = Vec::new();
    for package in &packages {
        let fs = Arc::new(OverlayFs::new(package.root.clone(), service.clone()).unwrap());
        let mnt = dir
            .path()
            .join("mnt")
            .join(package.root.file_name().unwrap());
        let session = runtime
            .block_on(mount_shared(Arc::clone(&fs), &mnt, &MountConfig::default()))
            .unwrap();
        sessions.push(session);
        mounts.push(mnt);
        filesystems.push(fs);
    }
    let catalog = Arc::new(IndexCatalog::new(filesystems.iter().map(|fs| fs.index())));
    // 450 kt at 20x: about 0.04° a second, so the flight takes seconds.
    let plan = FlightPlan {
        start: (47.0, -5.5),
        track_deg: 0.0,
        speed_kt: 450.0,
        time_compression: 20.0,
        elevation_m: 9000.0,
    };
    // Standing at the start while X-Plane loads the start-up scenery.
    let parked = FlightPlan {
        speed_kt: 0.0,
        ..plan
    };
    let sim = runtime.block_on(SimXPlane::start(parked)).unwrap();
    let hub = Telemetry::new();
    let prefetcher = Prefetcher::new(
        service.clone(),
        catalog,
        hub.clone(),
        Some(InferredPosition::new(hub.clone())),
        PrefetchConfig {
            cycle: Duration::from_millis(250),
            ..PrefetchConfig::default()
        },
    );
    for fs in &filesystems {
        assert!(fs.set_observer(prefetcher.observer()));
    }
    let spec = if udp {
        TelemetrySpec::Udp(sim.udp_addr())
    } else {
        TelemetrySpec::Inferred
    };
    let (clients, task) =
        runtime.block_on(async { (telemetry::spawn(&spec, &hub), prefetcher.spawn()) });

    let mut flight = sim.flight();
    let mut loader = SceneryLoader::scan(&mounts, LoaderConfig::default()).unwrap();
    let mut bursts = Vec::new();
    // Until the aircraft has flown past the triggers and those loads are read.
    while bursts.len() < loads {
        let position = flight.position();
        assert!(
            position.0 < 47.5 + loads as f64,
            "no load {} by {position:?}",
            bursts.len() + 1
        );
        let due = loader.due(position);
        if due.is_empty() {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let before = prefetcher.status();
        let report = loader.load(&due, position).unwrap();
        let after = prefetcher.status();
        let reads = after.reads - before.reads;
        let hits = after.read_hits - before.read_hits;
        eprintln!(
            "load at {position:?}: {} tiles, {} textures, {hits}/{reads} reads ready, p99 {:?}",
            due.len(),
            report.textures.len(),
            report.percentile(99.0)
        );
        assert!(!report.textures.is_empty());
        bursts.push(Burst {
            tiles: due,
            reads,
            hits,
        });
        if bursts.len() == 1 {
            // X-Plane loads the start-up scenery before the flight begins.
            sim.fly(plan);
            flight = sim.flight();
        }
    }
    let fix = hub.fix();
    task.abort();
    clients.iter().for_each(|c| c.abort());
    for session in sessions {
        runtime.block_on(session.unmount()).unwrap();
    }
    (bursts, fix)
}

#[test]
fn the_band_ahead_is_built_before_x_plane_reads_it() {
    if !can_mount() {
        return;
    }
    let (bursts, _) = fly(true, 2);
    let (startup, band) = (&bursts[0], &bursts[1]);
    assert_eq!(startup.tiles.len(), 12, "3 x 4 at start: {startup:?}");
    assert!(
        startup.hits * 2 < startup.reads,
        "the start-up load cannot be predicted: {startup:?}"
    );
    assert!(
        band.tiles.iter().all(|t| (49..=51).contains(&t.0)),
        "{band:?}"
    );
    assert!(
        band.hits * 100 >= band.reads * 95,
        "at least 95% of the band's reads ready: {band:?}"
    );
}

/// No telemetry: the start-up load and the first in-flight load give the
/// inferred motion (north), from which the second in-flight load, row 51,
/// is predicted and built before X-Plane reads it.
#[test]
fn only_what_x_plane_reads_steers_the_second_band() {
    if !can_mount() {
        return;
    }
    let (bursts, fix) = fly(false, 3);
    let (startup, second) = (&bursts[0], &bursts[2]);
    assert!(
        startup.hits * 2 < startup.reads,
        "the start-up load cannot be predicted: {startup:?}"
    );
    assert!(
        second.tiles.iter().all(|t| t.0 == 51),
        "the second band is the row 3 ahead of 48.6: {second:?}"
    );
    let fix = fix.expect("an inferred position");
    assert_eq!(fix.source, SourceKind::Inferred);
    let motion = fix.motion.expect("inferred motion");
    assert!(
        motion.track_deg < 10.0 || motion.track_deg > 350.0,
        "{motion:?}"
    );
    assert!(
        second.hits * 100 >= second.reads * 95,
        "at least 95% of the second band's reads ready: {second:?}"
    );
}
