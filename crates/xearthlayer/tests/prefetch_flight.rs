//! A short flight through real mounts: the simulated X-Plane flies north
//! over a grid of packages, sends UDP telemetry and loads scenery by
//! X-Plane's rule; the prefetcher must have the band ahead built before
//! X-Plane reads it. The start-up load, which nothing can predict, is the
//! control: part of it waits for downloads. Without /dev/fuse or root the test prints SKIPPED
//! and passes, like the other mount tests.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use xearthlayer::fs::OverlayFs;
use xearthlayer::fuse::{mount_shared, MountConfig};
use xearthlayer::prefetch::{IndexCatalog, PrefetchConfig, Prefetcher};
use xearthlayer::provider::TemplateProvider;
use xearthlayer::telemetry::{self, InferredPosition, Telemetry, TelemetrySpec};
use xearthlayer::texture::{ServiceConfig, TextureService};
use xel_sim::grid::create_grid;
use xel_sim::mounts::can_mount;
use xel_sim::server::{ImageryServer, ServerConfig};
use xel_sim::xplane::loader::LoaderConfig;
use xel_sim::xplane::{FlightPlan, SceneryLoader, SimXPlane};

#[test]
fn the_band_ahead_is_built_before_x_plane_reads_it() {
    if !can_mount() {
        return;
    }
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
    let (clients, task) = runtime.block_on(async {
        (
            telemetry::spawn(&TelemetrySpec::Udp(sim.udp_addr()), &hub),
            prefetcher.spawn(),
        )
    });

    let mut flight = sim.flight();
    let mut loader = SceneryLoader::scan(&mounts, LoaderConfig::default()).unwrap();
    let mut bursts = Vec::new();
    // Until the aircraft has flown past the 47.6° trigger and that load is read.
    while bursts.len() < 2 {
        let position = flight.position();
        assert!(position.0 < 48.5, "no second load by {position:?}");
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
        bursts.push((due, reads, hits));
        if bursts.len() == 1 {
            // X-Plane loads the start-up scenery before the flight begins.
            sim.fly(plan);
            flight = sim.flight();
        }
    }
    let (startup, band) = (&bursts[0], &bursts[1]);
    assert_eq!(startup.0.len(), 12, "3 x 4 at start: {:?}", startup.0);
    assert!(
        startup.2 * 2 < startup.1,
        "the start-up load cannot be predicted: {startup:?}"
    );
    assert!(
        band.0.iter().all(|t| (49..=51).contains(&t.0)),
        "{:?}",
        band.0
    );
    assert!(
        band.2 * 100 >= band.1 * 95,
        "at least 95% of the band's reads ready: {band:?}"
    );

    task.abort();
    clients.iter().for_each(|c| c.abort());
    for session in sessions {
        runtime.block_on(session.unmount()).unwrap();
    }
}
