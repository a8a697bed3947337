//! `xearthlayer start` as a process: clean shutdown on SIGTERM with reads in
//! flight and on SIGHUP (a closed terminal), a second SIGINT that stops
//! waiting, recovery after SIGKILL, and clear errors for bad sources and
//! busy mountpoints. Needs root and /dev/fuse; prints SKIPPED otherwise.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use xel_sim::mounts::{can_mount, is_mounted};

use xel_sim::package::{create_package, PackageSpec, SamplePackage};
use xel_sim::server::{start_in_background, BackgroundServer, ServerConfig};

/// Polls until `cond` holds, for at most `limit`.
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

struct Setup {
    server: BackgroundServer,
    package: SamplePackage,
    mnt: PathBuf,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

fn setup(latency: Duration) -> Setup {
    let server = start_in_background(ServerConfig {
        latency,
        ..ServerConfig::default()
    })
    .unwrap();
    let pkg = tempfile::tempdir().unwrap();
    let package = create_package(
        pkg.path(),
        &PackageSpec {
            textures: 8,
            ..PackageSpec::default()
        },
    )
    .unwrap();
    let mnt_dir = tempfile::tempdir().unwrap();
    let mnt = mnt_dir.path().join("pkg_xel");
    Setup {
        server,
        package,
        mnt,
        _dirs: (pkg, mnt_dir),
    }
}

fn start(s: &Setup) -> Child {
    start_with(s, &[])
}

fn start_with(s: &Setup, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_xearthlayer"))
        .arg("start")
        .arg("--source")
        .arg(&s.package.root)
        .arg("--mountpoint")
        .arg(&s.mnt)
        .arg("--url")
        .arg(s.server.url_template())
        .arg("--no-disk-cache")
        .args(args)
        .env("HOME", s._dirs.1.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill with a pid we own.
    unsafe { libc::kill(child.id() as i32, sig) };
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Kills the child and lazily detaches its mount if a test fails midway.
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

#[test]
fn sigterm_with_reads_in_flight_unmounts_and_exits_zero() {
    if !can_mount() {
        return;
    }
    let s = setup(Duration::from_millis(300));
    let mut child = start(&s);
    let mnt = s.mnt.clone();
    let guard = Cleanup(&mut child, &mnt);
    assert!(
        wait_for(Duration::from_secs(10), || is_mounted(&s.mnt)),
        "never mounted"
    );
    let paths: Vec<PathBuf> = s
        .package
        .textures
        .iter()
        .map(|t| s.mnt.join("textures").join(t.file_name()))
        .collect();
    // Full reads: slow at 300 ms per chunk request, so in flight at SIGTERM.
    // Plain threads, not scoped ones: a failing assertion must not wait for
    // readers stuck on a mount.
    let readers: Vec<_> = paths
        .into_iter()
        .map(|path| std::thread::spawn(move || std::fs::read(path).map(|b| b.len())))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    assert!(s.server.stats().in_flight > 0, "reads should be in flight");
    signal(guard.0, libc::SIGTERM);
    let status = wait_exit(guard.0, Duration::from_secs(10)).expect("exited within 10 s");
    assert!(status.success(), "{status:?}");
    // Every reader comes back (with its bytes, or an error once the mount is gone).
    assert!(
        wait_for(Duration::from_secs(10), || readers
            .iter()
            .all(|r| r.is_finished())),
        "readers hang after the service exited"
    );
    assert!(!is_mounted(&s.mnt));
}

/// The child's stdout lines as they come.
fn stdout_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    rx
}

#[test]
fn sighup_unmounts_and_exits_zero() {
    if !can_mount() {
        return;
    }
    let s = setup(Duration::ZERO);
    let mut child = start(&s);
    let mnt = s.mnt.clone();
    let guard = Cleanup(&mut child, &mnt);
    assert!(
        wait_for(Duration::from_secs(10), || is_mounted(&s.mnt)),
        "never mounted"
    );
    // What a closed terminal or a dropped SSH session sends.
    signal(guard.0, libc::SIGHUP);
    let status = wait_exit(guard.0, Duration::from_secs(10)).expect("exited within 10 s");
    assert!(status.success(), "{status:?}");
    assert!(!is_mounted(&s.mnt), "the mount was left behind");
}

#[test]
fn a_second_sigint_stops_waiting_for_busy_files_and_detaches() {
    if !can_mount() {
        return;
    }
    // Slow chunks and a long bound: a whole-texture read stays in flight,
    // so the orderly unmount finds the mount busy and waits.
    let s = setup(Duration::from_secs(2));
    let mut child = start_with(&s, &["--timeout", "60", "--no-tui"]);
    let lines = stdout_lines(&mut child);
    let mnt = s.mnt.clone();
    let guard = Cleanup(&mut child, &mnt);
    assert!(
        wait_for(Duration::from_secs(10), || is_mounted(&s.mnt)),
        "never mounted"
    );
    let texture = s
        .mnt
        .join("textures")
        .join(s.package.textures[0].file_name());
    let _reader = std::thread::spawn(move || std::fs::read(texture));
    assert!(
        wait_for(Duration::from_secs(10), || s.server.stats().in_flight > 0),
        "the read never reached the server"
    );
    signal(guard.0, libc::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(10);
    let said = std::iter::from_fn(|| {
        lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .ok()
    })
    .any(|line| line.contains("unmounting"));
    assert!(said, "the first SIGINT starts the orderly stop");
    let second = Instant::now();
    signal(guard.0, libc::SIGINT);
    let status = wait_exit(guard.0, Duration::from_secs(10)).expect("exited");
    let waited = second.elapsed();
    let rest: Vec<String> = lines.iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("SIGINT again")),
        "the second SIGINT is acted on: {rest:?}"
    );
    assert_eq!(status.code(), Some(1), "a forced stop is not a clean exit");
    assert!(
        waited < Duration::from_millis(900),
        "stopped waiting: {waited:?}"
    );
    assert!(!is_mounted(&s.mnt), "the mount was left behind");
}

#[test]
fn stats_file_counts_fuse_errors_by_errno() {
    if !can_mount() {
        return;
    }
    let s = setup(Duration::ZERO);
    let stats = s._dirs.1.path().join("stats.txt");
    let mut child = start_with(&s, &["--stats-file", stats.to_str().unwrap()]);
    let mnt = s.mnt.clone();
    let guard = Cleanup(&mut child, &mnt);
    assert!(
        wait_for(Duration::from_secs(10), || is_mounted(&s.mnt)),
        "never mounted"
    );
    for name in [
        "no-such-file",
        "terrain/no-such.ter",
        "textures/not-a-texture.dds",
    ] {
        let err = std::fs::metadata(s.mnt.join(name)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{name}");
    }
    signal(guard.0, libc::SIGTERM);
    let status = wait_exit(guard.0, Duration::from_secs(10)).expect("exited");
    assert!(status.success(), "{status:?}");
    let written = std::fs::read_to_string(&stats).unwrap();
    let count = |key: &str| -> u64 {
        written
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in:\n{written}"))
            .parse()
            .unwrap()
    };
    assert!(count("fuse_errors_enoent") >= 3, "{written}");
    assert_eq!(count("fuse_errors_eio"), 0, "{written}");
    // Routine errors are not warnings in the log.
    let log = std::fs::read_to_string(s._dirs.1.path().join(".xearthlayer/xearthlayer.log"))
        .unwrap_or_default();
    assert!(
        !log.lines()
            .any(|l| l.contains("WARN") && l.contains("fuse operation failed")),
        "{log}"
    );
}

#[test]
fn a_refused_provider_says_why_in_the_stats_file() {
    if !can_mount() {
        return;
    }
    let s = setup(Duration::ZERO);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stats = s._dirs.1.path().join("stats.txt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_xearthlayer"))
        .arg("start")
        .arg("--source")
        .arg(&s.package.root)
        .arg("--mountpoint")
        .arg(&s.mnt)
        .args([
            "--url",
            &format!("http://127.0.0.1:{port}/{{z}}/{{x}}/{{y}}.jpg"),
        ])
        .args(["--no-disk-cache", "--telemetry", "off", "--stats-file"])
        .arg(&stats)
        .env("HOME", s._dirs.1.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mnt = s.mnt.clone();
    let guard = Cleanup(&mut child, &mnt);
    assert!(
        wait_for(Duration::from_secs(10), || is_mounted(&s.mnt)),
        "never mounted"
    );
    let texture = s
        .mnt
        .join("textures")
        .join(s.package.textures[0].file_name());
    let bytes = std::fs::read(texture).unwrap();
    assert_eq!(bytes.len(), 11_184_952, "stand-ins, whole");
    signal(guard.0, libc::SIGTERM);
    let status = wait_exit(guard.0, Duration::from_secs(10)).expect("exited");
    assert!(status.success(), "{status:?}");
    let written = std::fs::read_to_string(&stats).unwrap();
    let key = format!("provider_custom_127_0_0_1_{port}");
    let value = |name: &str| {
        written
            .lines()
            .find(|l| l.starts_with(&key) && l.contains(&format!("_{name}=")))
            .and_then(|l| l.split_once('=').map(|(_, v)| v.to_string()))
            .unwrap_or_else(|| panic!("no {key}..._{name} in:\n{written}"))
    };
    assert_eq!(value("state"), "failing", "{written}");
    assert_eq!(value("last_failure"), "connection_refused", "{written}");
    assert!(value("failures").parse::<u64>().unwrap() > 0);
    assert!(value("failing_since").parse::<u64>().unwrap() > 0);
}

#[test]
fn start_recovers_a_mountpoint_left_by_sigkill() {
    if !can_mount() {
        return;
    }
    let s = setup(Duration::ZERO);
    let mut first = start(&s);
    assert!(wait_for(Duration::from_secs(10), || is_mounted(&s.mnt)));
    signal(&first, libc::SIGKILL);
    first.wait().unwrap();
    let err = std::fs::metadata(s.mnt.join("textures")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN), "{err}");

    let mut second = start(&s);
    let mnt = s.mnt.clone();
    let guard = Cleanup(&mut second, &mnt);
    let texture = s
        .mnt
        .join("textures")
        .join(s.package.textures[0].file_name());
    assert!(
        wait_for(Duration::from_secs(10), || std::fs::metadata(&texture)
            .is_ok()),
        "the stale mount was not replaced"
    );
    assert!(
        std::fs::read(&s.package.dsf).unwrap()
            == std::fs::read(
                s.mnt
                    .join(s.package.dsf.strip_prefix(&s.package.root).unwrap())
            )
            .unwrap()
    );
    signal(guard.0, libc::SIGTERM);
    let status = wait_exit(guard.0, Duration::from_secs(10)).expect("exits");
    assert!(status.success());
    let mut stdout = String::new();
    use std::io::Read;
    guard
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut stderr = String::new();
    guard
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        (stdout + &stderr).to_lowercase().contains("stale"),
        "the recovery is reported"
    );
}

#[test]
fn bad_sources_and_busy_mountpoints_are_clear_errors() {
    if !can_mount() {
        return;
    }
    let s = setup(Duration::ZERO);
    let out = Command::new(env!("CARGO_BIN_EXE_xearthlayer"))
        .args([
            "start",
            "--source",
            "/nonexistent/package",
            "--url",
            &s.server.url_template(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a directory"), "{err}");

    // A mountpoint already served by a live xearthlayer.
    let mut first = start(&s);
    let mnt = s.mnt.clone();
    let guard = Cleanup(&mut first, &mnt);
    assert!(wait_for(Duration::from_secs(10), || is_mounted(&s.mnt)));
    let out = Command::new(env!("CARGO_BIN_EXE_xearthlayer"))
        .arg("start")
        .arg("--source")
        .arg(&s.package.root)
        .arg("--mountpoint")
        .arg(&s.mnt)
        .args(["--url", &s.server.url_template(), "--no-disk-cache"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        err.contains("already mounted") || err.contains("in use"),
        "{err}"
    );
    assert!(is_mounted(&s.mnt), "the live mount is left alone");
    drop(guard);
}
