//! `xearthlayer run` in a real terminal: a tmux pane 100 columns wide, the
//! command typed into an interactive shell as a user would. Closing the
//! terminal (tmux closes the pane's pty, the kernel hangs it up) must
//! leave no mount behind. Needs root or fusermount3, and tmux; prints
//! SKIPPED otherwise (fails instead under `XEL_REQUIRE_MOUNT=1`, as in CI).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use xel_sim::mounts::{can_mount, is_mounted, REQUIRE_MOUNT_VAR};
use xel_sim::package::{create_package, PackageSpec};
use xel_sim::server::{start_in_background, BackgroundServer, ServerConfig};

/// Polls until `cond` holds, for at most `limit`.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// Whether tmux can be used; when not, fails under `XEL_REQUIRE_MOUNT=1`
/// (CI installs it) or says loudly that the test skips.
fn have_tmux() -> bool {
    if Command::new("tmux").arg("-V").output().is_ok() {
        return true;
    }
    let required = std::env::var_os(REQUIRE_MOUNT_VAR).is_some_and(|v| v != "0" && !v.is_empty());
    assert!(
        !required,
        "tmux is not installed and {REQUIRE_MOUNT_VAR} is set"
    );
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED, NOT TESTED: tmux is not installed (apt install tmux) ***"
    );
    false
}

/// A tmux server of its own (its own socket) with one pane running an
/// interactive shell; dropping it kills the server.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(width: u16, height: u16) -> Tmux {
        let tmux = Tmux {
            socket: format!("xel-test-{}-{}", std::process::id(), now_nanos()),
        };
        tmux.run(&[
            "new-session",
            "-d",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            "bash --norc --noprofile",
        ]);
        tmux
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "tmux {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `line` and Enter into the shell.
    fn type_line(&self, line: &str) {
        self.run(&["send-keys", "-l", line]);
        self.run(&["send-keys", "Enter"]);
    }

    /// What the pane shows now, one string per row.
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p"])
    }

    /// The pane's whole history and screen.
    fn history(&self) -> String {
        self.run(&["capture-pane", "-p", "-S", "-"])
    }

    /// Closes the terminal: the pane's pty goes, its processes get SIGHUP.
    fn close(&self) {
        self.run(&["kill-server"]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

fn now_nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

/// One package in a packages folder, an empty Custom Scenery, a HOME, the
/// local imagery server.
struct World {
    server: BackgroundServer,
    home: PathBuf,
    packages: PathBuf,
    custom_scenery: PathBuf,
    mountpoint: PathBuf,
    _root: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let server = start_in_background(ServerConfig::default()).unwrap();
        let root = tempfile::tempdir().unwrap();
        let home = root.path().join("home");
        let packages = root.path().join("packages");
        let custom_scenery = root.path().join("Custom Scenery");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&custom_scenery).unwrap();
        std::fs::write(
            custom_scenery.join("scenery_packs.ini"),
            "I\n1000 Version\nSCENERY\n\n",
        )
        .unwrap();
        let spec = PackageSpec {
            textures: 2,
            ..PackageSpec::default()
        };
        create_package(&packages.join("zzXEL_a"), &spec).unwrap();
        // `run` serves every package through its one union mount.
        let mountpoint = custom_scenery.join("zzXEL_ortho_xel");
        World {
            server,
            home,
            packages,
            custom_scenery,
            mountpoint,
            _root: root,
        }
    }

    /// The shell line that starts `run` over this world.
    fn run_line(&self) -> String {
        let quote = |p: &Path| format!("'{}'", p.display());
        format!(
            "HOME={} {} run --custom-scenery {} --packages {} --url '{}' --no-disk-cache --telemetry off",
            quote(&self.home),
            env!("CARGO_BIN_EXE_xearthlayer"),
            quote(&self.custom_scenery),
            quote(&self.packages),
            self.server.url_template()
        )
    }
}

/// Detaches the test's mount if a test fails midway.
struct Unmount<'a>(&'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        if is_mounted(self.0) {
            let path = std::ffi::CString::new(self.0.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: a valid C string; detaching our own test mount.
            unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

#[test]
fn closing_the_terminal_of_run_leaves_no_mount_behind() {
    if !can_mount() || !have_tmux() {
        return;
    }
    let world = World::new();
    let _unmount = Unmount(&world.mountpoint);
    let tmux = Tmux::new(100, 30);
    tmux.type_line(&world.run_line());
    assert!(
        wait_for(Duration::from_secs(30), || is_mounted(&world.mountpoint)),
        "never mounted; the pane shows:\n{}",
        tmux.screen()
    );
    tmux.close();
    assert!(
        wait_for(Duration::from_secs(20), || !is_mounted(&world.mountpoint)),
        "the mount outlived its terminal"
    );
}

#[test]
fn log_lines_go_above_the_live_view_and_leave_no_stale_copy() {
    if !can_mount() || !have_tmux() {
        return;
    }
    let world = World::new();
    let _unmount = Unmount(&world.mountpoint);
    let tmux = Tmux::new(100, 40);
    // A provider that refuses every connection: reads get stand-ins and
    // the log warns on stderr while the block is live.
    tmux.type_line(&world.run_line().replace(
        &world.server.url_template(),
        "http://127.0.0.1:1/{z}/{x}/{y}.jpg",
    ));
    let header = "── XEarthLayer ──";
    assert!(
        wait_for(Duration::from_secs(30), || tmux.screen().contains(header)),
        "no live view; the pane shows:\n{}",
        tmux.screen()
    );
    let textures = world.mountpoint.join("textures");
    let readers: Vec<_> = std::fs::read_dir(&textures)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            std::thread::spawn(move || std::fs::read(path).map(|b| b.len()))
        })
        .collect();
    for reader in readers {
        assert!(reader.join().unwrap().is_ok(), "reads get stand-ins");
    }
    // The redraws after the warnings: the block is drawn every second.
    assert!(
        wait_for(Duration::from_secs(10), || tmux
            .history()
            .contains("reads: 0 final, ")
            && tmux.history().contains(" stand-ins (100.0%)")),
        "the block was not redrawn:\n{}",
        tmux.history()
    );
    std::thread::sleep(Duration::from_millis(2500));
    let screen = tmux.history();
    assert_eq!(
        screen.matches(header).count(),
        1,
        "a stale copy of the block:\n{screen}"
    );
    assert!(
        screen.contains("WARN"),
        "the warnings stay readable:\n{screen}"
    );
    let warning = screen.find("WARN").unwrap();
    assert!(
        warning < screen.find(header).unwrap(),
        "log lines go above the block:\n{screen}"
    );
    // The live view says why the provider fails.
    assert!(
        screen.contains("failing for") && screen.contains("connection refused"),
        "{screen}"
    );
    tmux.close();
}
