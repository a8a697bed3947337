//! `xearthlayer start --telemetry udp://…` against the simulated X-Plane:
//! the stats file shows the telemetry source, the position and X-Plane's
//! reads; `--telemetry off` shows none. Needs root and /dev/fuse; prints
//! SKIPPED otherwise.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use xel_sim::mounts::{can_mount, is_mounted};
use xel_sim::package::{create_package, PackageSpec};
use xel_sim::server::{start_in_background, ServerConfig};
use xel_sim::xplane::{FlightPlan, SimXPlane};

fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill with a pid we own.
    unsafe { libc::kill(child.id() as i32, sig) };
}

/// Kills the child and detaches its mount if a test fails midway.
struct Cleanup<'a>(&'a mut Child, &'a Path);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if is_mounted(self.1) {
            let path = std::ffi::CString::new(self.1.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: a valid C string; detaching our own test mount.
            unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Starts the service, reads one texture header through the mount and
/// returns the stats file once it names `source` (any file if `None`).
fn stats_after_a_read(telemetry: &str, source: Option<&str>) -> String {
    let server = start_in_background(ServerConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let package = create_package(
        &dir.path().join("pkg"),
        &PackageSpec {
            textures: 4,
            ..PackageSpec::default()
        },
    )
    .unwrap();
    let mnt = dir.path().join("pkg_xel");
    let stats = dir.path().join("stats.txt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_xearthlayer"))
        .arg("start")
        .arg("--source")
        .arg(&package.root)
        .arg("--mountpoint")
        .arg(&mnt)
        .args([
            "--url",
            &server.url_template(),
            "--no-disk-cache",
            "--no-tui",
        ])
        .args(["--telemetry", telemetry])
        .arg("--stats-file")
        .arg(&stats)
        .env("HOME", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = Cleanup(&mut child, &mnt);
    assert!(
        wait_for(Duration::from_secs(10), || is_mounted(&mnt)),
        "never mounted"
    );
    let texture = mnt.join("textures").join(package.textures[0].file_name());
    let mut head = vec![0u8; 65_536];
    use std::os::unix::fs::FileExt;
    std::fs::File::open(&texture)
        .unwrap()
        .read_exact_at(&mut head, 0)
        .unwrap();
    // Ask for the file until it shows the telemetry (a few updates away).
    let mut text = String::new();
    let shown = wait_for(Duration::from_secs(10), || {
        signal(guard.0, libc::SIGUSR1);
        std::thread::sleep(Duration::from_millis(50));
        text = std::fs::read_to_string(&stats).unwrap_or_default();
        !text.is_empty() && source.is_none_or(|s| value(&text, "prefetch_source") == Some(s))
    });
    signal(guard.0, libc::SIGTERM);
    assert!(shown, "stats never showed {source:?}: {text}");
    text
}

fn value<'a>(stats: &'a str, key: &str) -> Option<&'a str> {
    stats
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

#[test]
fn telemetry_and_reads_show_in_the_stats_file() {
    if !can_mount() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sim = runtime
        .block_on(SimXPlane::start(FlightPlan {
            start: (47.5, -5.6),
            ..FlightPlan::default()
        }))
        .unwrap();
    let addr = format!("udp://{}", sim.udp_addr());
    let stats = stats_after_a_read(&addr, Some("udp"));
    assert_eq!(value(&stats, "prefetch_source"), Some("udp"), "{stats}");
    let lat: f64 = value(&stats, "prefetch_lat").unwrap().parse().unwrap();
    assert!((lat - sim.position().0).abs() < 0.1, "{stats}");
    assert_eq!(value(&stats, "prefetch_reads"), Some("1"), "{stats}");
    assert_eq!(value(&stats, "prefetch_read_hits"), Some("0"), "{stats}");

    // No telemetry client: the header read alone places the aircraft.
    let inferred = stats_after_a_read("inferred", Some("inferred"));
    let lat: f64 = value(&inferred, "prefetch_lat").unwrap().parse().unwrap();
    assert!((lat - 47.5).abs() < 1.0, "{inferred}");

    let off = stats_after_a_read("off", None);
    assert_eq!(value(&off, "prefetch_source"), None, "{off}");
}
