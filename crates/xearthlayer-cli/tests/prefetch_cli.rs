//! `xearthlayer prefetch` end to end: a sample package, the local imagery
//! server and a disk cache in a temporary folder. Along a flight plan it
//! fills the cache; run again, it downloads nothing (resumable); around an
//! airport of a made-up X-Plane install it finds what the route already
//! fetched; bad input fails with a message naming the file and line. Around
//! a point, then a service started on the same cache serves X-Plane's load
//! of the area with no download; along a flight plan, the same. A failing
//! provider fails the run, and a run again fetches only what is missing;
//! the size limit counts only that.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use xel_sim::mounts::{can_mount, is_mounted};
use xel_sim::package::{create_package, PackageSpec};
use xel_sim::server::{start_in_background, BackgroundServer, Faults, ServerConfig};
use xel_sim::xplane::loader::{LoaderConfig, SceneryLoader};

fn xearthlayer(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xearthlayer"))
        .args(args)
        .env("HOME", home)
        .env_remove("XEARTHLAYER_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts that the run's output says `what`.
fn says(out: &Output, what: &str) {
    assert!(text(out).contains(what), "no {what:?} in {}", text(out));
}

/// The count in `done: N chunks downloaded`.
fn downloaded(out: &Output) -> u64 {
    let all = text(out);
    let after = all
        .split("done: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no summary in {all}"));
    after.split_whitespace().next().unwrap().parse().unwrap()
}

/// The count in `N textures could not be fetched`, if the run says so.
fn failed(out: &Output) -> Option<u64> {
    let all = text(out);
    let before = all.split(" textures could not be fetched").next()?;
    if before.len() == all.len() {
        return None;
    }
    before.split_whitespace().last()?.parse().ok()
}

/// A temporary home with a sample package of four textures (around 47.5N
/// 5.6W), an empty disk cache and the local imagery server.
struct Sample {
    server: BackgroundServer,
    home: tempfile::TempDir,
    package: PathBuf,
    cache: PathBuf,
}

impl Sample {
    fn new(server: ServerConfig) -> Sample {
        let home = tempfile::tempdir().unwrap();
        let package = create_package(
            &home.path().join("pkg"),
            &PackageSpec {
                textures: 4,
                ..PackageSpec::default()
            },
        )
        .unwrap();
        Sample {
            server: start_in_background(server).unwrap(),
            package: package.root,
            cache: home.path().join("cache"),
            home,
        }
    }

    fn home(&self) -> &Path {
        self.home.path()
    }

    /// `xearthlayer prefetch` of the package with `args` (the place and
    /// options), on this server and cache.
    fn prefetch(&self, args: &[&str]) -> Output {
        let url = self.server.url_template();
        let mut all = vec!["prefetch", "--source", self.package.to_str().unwrap()];
        all.extend(args);
        all.extend(["--url", &url, "--cache-dir", self.cache.to_str().unwrap()]);
        xearthlayer(self.home(), &all)
    }
}

/// Brest to a point west of the sample package, across it: the package's
/// four textures (around 47.5N 5.6W) are all within 20 km of the second leg.
fn flight_plan(dir: &Path) -> PathBuf {
    let plan = dir.join("LFRB-sea.fms");
    std::fs::write(
        &plan,
        "I\n1100 Version\nCYCLE 2313\nADEP LFRB\nNUMENR 3\n\
         1 LFRB ADEP 325.000000 48.447911 -4.418539\n\
         28 +47.500_-005.000 DRCT 9000.000000 47.500000 -5.000000\n\
         28 +47.500_-006.500 DRCT 9000.000000 47.500000 -6.500000\n",
    )
    .unwrap();
    plan
}

#[test]
fn along_a_flight_plan_then_again_with_nothing_to_download() {
    let sample = Sample::new(ServerConfig::default());
    let server = &sample.server;
    let plan = flight_plan(sample.home());
    let along = ["--fms", plan.to_str().unwrap()];
    let first = sample.prefetch(&along);
    assert!(first.status.success(), "{}", text(&first));
    says(&first, "4 textures within 20 km of the 2 legs");
    let fetched = server.stats().requests;
    assert!(
        fetched > 0 && downloaded(&first) == fetched,
        "{} vs {fetched}",
        text(&first)
    );

    let second = sample.prefetch(&along);
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(downloaded(&second), 0, "{}", text(&second));
    assert_eq!(
        server.stats().requests,
        fetched,
        "the second run downloaded"
    );

    // An airport of a made-up X-Plane 12 at the package: all on disk already.
    let xplane = sample.home().join("X-Plane 12");
    let nav = xplane.join("Global Scenery/Global Airports/Earth nav data");
    std::fs::create_dir_all(xplane.join("Custom Scenery")).unwrap();
    std::fs::create_dir_all(&nav).unwrap();
    std::fs::write(
        nav.join("apt.dat"),
        "I\n1200 Version\n1 10 0 0 XSEA Sea base\n1302 datum_lat 47.5\n1302 datum_lon -5.6\n99\n",
    )
    .unwrap();
    let scenery = xplane.join("Custom Scenery");
    let mut at_airport = [
        "--airport",
        "xsea",
        "--radius",
        "10",
        "--custom-scenery",
        scenery.to_str().unwrap(),
    ];
    let near = sample.prefetch(&at_airport);
    assert!(near.status.success(), "{}", text(&near));
    says(&near, "of XSEA (47.5000,-5.6000)");
    assert_eq!(downloaded(&near), 0, "{}", text(&near));

    at_airport[1] = "EGLL";
    let missing = sample.prefetch(&at_airport);
    assert!(!missing.status.success());
    says(&missing, "airport \"EGLL\" is not in");

    std::fs::write(
        &plan,
        "I\n1100 Version\nNUMENR 1\n1 LFRB ADEP 0 48.4 west\n",
    )
    .unwrap();
    let bad = sample.prefetch(&along);
    assert!(!bad.status.success());
    says(&bad, &format!("{}:4: ", plan.display()));
    assert_eq!(server.stats().requests, fetched);
}

#[test]
fn a_failing_provider_fails_the_run_and_a_rerun_fetches_only_the_rest() {
    // No imagery at zoom 12 (ZL16 - 4): each texture's low levels fail,
    // its header strip is built and stored.
    let sample = Sample::new(ServerConfig {
        faults: Faults {
            not_found_zooms: Faults::zooms([12]),
            ..Faults::default()
        },
        ..ServerConfig::default()
    });
    let server = &sample.server;
    // 75 km away: read at mip 4 and below, the header strip (zoom 16) and
    // the low chunk (zoom 12).
    let far = ["--around", "47.5,-4.6", "--radius", "200"];
    let first = sample.prefetch(&far);
    assert!(!first.status.success(), "{}", text(&first));
    assert_eq!(failed(&first), Some(4), "{}", text(&first));
    says(&first, "run again to retry");
    assert_eq!(server.stats().by_zoom.get(&12), Some(&4));

    // The provider is back: only the four low-level chunks are missing.
    server.set_faults(Faults::default());
    server.reset_stats();
    let second = sample.prefetch(&far);
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(failed(&second), None, "{}", text(&second));
    says(&second, "at most 4 chunks");
    assert_eq!(downloaded(&second), 4, "{}", text(&second));
    assert_eq!(server.stats().requests, 4);

    let third = sample.prefetch(&far);
    assert!(third.status.success(), "{}", text(&third));
    says(&third, "4 already cached, 0 to fetch");
    assert_eq!(server.stats().requests, 4);
}

#[test]
fn the_size_limit_counts_what_is_missing_so_a_rerun_extends_the_cache() {
    let sample = Sample::new(ServerConfig::default());
    // Far enough that every texture is read at mip 4 and below: the header
    // strip (16 chunks) and the low chunk, 17 chunks of 14 KiB each; 600
    // KiB holds two textures.
    let limited = [
        "--around",
        "47.5,-4.6",
        "--radius",
        "200",
        "--max-size",
        "600KiB",
    ];
    let first = sample.prefetch(&limited);
    assert!(first.status.success(), "{}", text(&first));
    says(&first, "2 more left out by --max-size");
    assert_eq!(downloaded(&first), 34, "{}", text(&first));

    // Same limit again: the two cached textures cost nothing, the other two
    // are fetched now.
    let second = sample.prefetch(&limited);
    assert!(second.status.success(), "{}", text(&second));
    says(&second, "2 already cached, 2 to fetch");
    assert_eq!(downloaded(&second), 34, "{}", text(&second));
    assert_eq!(sample.server.stats().requests, 68);
}

/// Stops `start` and detaches its mount, also when the test fails midway.
struct Service(Child, PathBuf);

impl Drop for Service {
    fn drop(&mut self) {
        // SAFETY: kill with a pid we own; SIGTERM unmounts.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
        if is_mounted(&self.1) {
            let path = std::ffi::CString::new(self.1.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: a valid C string; detaching our own test mount.
            unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

#[test]
fn around_a_point_then_a_restarted_service_loads_the_area_with_no_download() {
    prefetch_then_load_through_a_fresh_service(|_| vec!["--around".into(), "47.5,-5.6".into()]);
}

#[test]
fn along_a_flight_plan_then_a_restarted_service_loads_it_with_no_download() {
    prefetch_then_load_through_a_fresh_service(|home| {
        vec!["--fms".into(), flight_plan(home).display().to_string()]
    });
}

/// `prefetch` of the sample package at the place `place` names (given the
/// home folder), then [`a_fresh_service_loads_the_area_with_no_download`].
fn prefetch_then_load_through_a_fresh_service(place: impl FnOnce(&Path) -> Vec<String>) {
    if !can_mount() {
        return;
    }
    let sample = Sample::new(ServerConfig::default());
    let place = place(sample.home());
    let args: Vec<&str> = place.iter().map(String::as_str).collect();
    let prefetch = sample.prefetch(&args);
    assert!(prefetch.status.success(), "{}", text(&prefetch));
    assert!(downloaded(&prefetch) > 0, "{}", text(&prefetch));
    a_fresh_service_loads_the_area_with_no_download(&sample);
}

/// A new process on the sample's cache, without telemetry (no prefetch of
/// its own): X-Plane at 47.5N 5.6W loads the package's area through the
/// mount, and the imagery server sees no request.
fn a_fresh_service_loads_the_area_with_no_download(sample: &Sample) {
    let server = &sample.server;
    server.reset_stats();
    let url = server.url_template();
    let mnt = sample.home().join("pkg_xel");
    let child = Command::new(env!("CARGO_BIN_EXE_xearthlayer"))
        .arg("start")
        .arg("--source")
        .arg(&sample.package)
        .arg("--mountpoint")
        .arg(&mnt)
        .args(["--url", &url, "--cache-dir"])
        .arg(&sample.cache)
        .args(["--telemetry", "off", "--no-tui"])
        .env("HOME", sample.home())
        .env_remove("XEARTHLAYER_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let service = Service(child, mnt.clone());
    let start = Instant::now();
    while !is_mounted(&mnt) {
        assert!(start.elapsed() < Duration::from_secs(10), "never mounted");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut loader =
        SceneryLoader::scan(std::slice::from_ref(&mnt), LoaderConfig::default()).unwrap();
    let position = (47.5, -5.6);
    let tiles = loader.due(position);
    let load = loader.load(&tiles, position).unwrap();
    assert_eq!(load.textures.len(), 4, "{:?}", load.tiles);
    assert!(
        load.textures.iter().any(|t| t.level == 0),
        "nothing read in full: {:?}",
        load.textures
    );
    assert_eq!(server.stats().requests, 0, "the load downloaded");
    drop(service);
}
