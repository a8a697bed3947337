//! `xearthlayer run` as a process, over three packages: two in the packages
//! folder and one in Custom Scenery lacking its textures, X-Plane found
//! from `~/.x-plane/x-plane_install_12.txt` in a temporary HOME, imagery
//! from the local test server. Checks, with one mount per package, that
//! every package mounts, that one texture service serves them all, that
//! `scenery_packs.ini` is edited keeping every other line, that SIGTERM
//! unmounts everything, and that a package that cannot mount leaves the
//! others serving; and, through the union mount, that the package
//! `scenery_packs.ini` ranks first serves a DSF tile two packages hold. Needs root and
//! /dev/fuse; prints SKIPPED otherwise. A guard kills the process and
//! detaches its mounts if a test fails midway.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};
use xel_sim::mounts::{can_mount, is_mounted};

use xel_sim::package::{create_package, PackageSpec, SamplePackage};
use xel_sim::server::{start_in_background, BackgroundServer, ServerConfig};

/// Mip levels 5 to 12 of a BC1 texture: built from one low-zoom chunk.
const LOW_LEVELS: (u64, usize) = (11_174_016, 10_936);
const SOURCE_LINE: &str = "SCENERY_PACK Custom Scenery/zOrtho4XP_+47-006/";
const PACKS_BEFORE: &str = "I\n1000 Version\nSCENERY\n\n\
    SCENERY_PACK Custom Scenery/KSEA Demo Area/\n\
    SCENERY_PACK *GLOBAL_AIRPORTS*\n\
    SCENERY_PACK Custom Scenery/zOrtho4XP_+47-006/\n\
    SCENERY_PACK /opt/mesh/zzMesh/\n";

/// A temporary HOME with X-Plane 12, packages and a configuration.
struct World {
    server: BackgroundServer,
    home: PathBuf,
    custom_scenery: PathBuf,
    /// The packages, in the order `run` mounts them: packages folder first.
    packages: Vec<SamplePackage>,
    _root: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let server = start_in_background(ServerConfig::default()).unwrap();
        let root = tempfile::tempdir().unwrap();
        let home = root.path().join("home");
        let xplane = root.path().join("X-Plane 12");
        let custom_scenery = xplane.join("Custom Scenery");
        std::fs::create_dir_all(&custom_scenery).unwrap();
        std::fs::create_dir_all(home.join(".x-plane")).unwrap();
        std::fs::write(
            home.join(".x-plane/x-plane_install_12.txt"),
            format!("{}/\n", xplane.display()),
        )
        .unwrap();
        std::fs::write(custom_scenery.join("scenery_packs.ini"), PACKS_BEFORE).unwrap();
        std::fs::create_dir_all(custom_scenery.join("KSEA Demo Area")).unwrap();
        let brittany = PackageSpec {
            textures: 2,
            ..PackageSpec::default()
        };
        let elsewhere = PackageSpec {
            lat: 48.5,
            ..brittany.clone()
        };
        let packages_dir = home.join(".xearthlayer/packages");
        let packages = vec![
            create_package(&packages_dir.join("zzXEL_a"), &brittany).unwrap(),
            create_package(&packages_dir.join("zzXEL_b"), &elsewhere).unwrap(),
            // The same textures as zzXEL_a: shared, they are built once.
            create_package(&custom_scenery.join("zOrtho4XP_+47-006"), &brittany).unwrap(),
        ];
        std::fs::write(
            home.join(".xearthlayer/config.ini"),
            format!(
                "[provider]\ntype = custom\nurl = {}\n\n[cache]\nenabled = false\n",
                server.url_template()
            ),
        )
        .unwrap();
        World {
            server,
            home,
            custom_scenery,
            packages,
            _root: root,
        }
    }

    fn mountpoint(&self, package: &SamplePackage) -> PathBuf {
        let name = package.root.file_name().unwrap().to_string_lossy();
        self.custom_scenery.join(format!("{name}_xel"))
    }

    fn union_mountpoint(&self) -> PathBuf {
        self.custom_scenery.join("zzXEL_ortho_xel")
    }

    /// `run` with one mount per package.
    fn start(&self, args: &[&str]) -> Running {
        let mountpoints = self.packages.iter().map(|p| self.mountpoint(p)).collect();
        self.spawn(&[&["--mount", "per-package"], args].concat(), mountpoints)
    }

    /// `run` with every package through the union mount.
    fn start_union(&self, args: &[&str]) -> Running {
        self.spawn(
            &[&["--mount", "union"], args].concat(),
            vec![self.union_mountpoint()],
        )
    }

    fn spawn(&self, args: &[&str], mountpoints: Vec<PathBuf>) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_xearthlayer"))
            .arg("run")
            // These tests count downloads per read; prefetch (which builds a
            // tile's textures once its DSF is opened) would blur the counts.
            .args(["--telemetry", "off"])
            .args(args)
            .env("HOME", &self.home)
            .env_remove("XEARTHLAYER_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (line_tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for (pipe, tx) in [
            (
                Box::new(stdout) as Box<dyn std::io::Read + Send>,
                line_tx.clone(),
            ),
            (Box::new(stderr), line_tx),
        ] {
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let pid = child.id() as i32;
        let (exit_tx, exit) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = exit_tx.send(child.wait().unwrap());
        });
        Running {
            pid,
            exit,
            exited: None,
            lines,
            seen: Vec::new(),
            mountpoints,
        }
    }
}

/// The `run` process. Dropping it kills the process and detaches mounts left.
struct Running {
    pid: i32,
    exit: Receiver<ExitStatus>,
    exited: Option<ExitStatus>,
    lines: Receiver<String>,
    seen: Vec<String>,
    mountpoints: Vec<PathBuf>,
}

impl Running {
    /// Waits for an output line containing `text`; panics with the output
    /// so far if none comes within `limit`.
    fn expect_line(&mut self, text: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    panic!("no line with '{text}'; output:\n{}", self.seen.join("\n"))
                }
            }
        }
    }

    /// SIGTERM, then the exit status and all output.
    fn terminate(&mut self) -> (ExitStatus, String) {
        // SAFETY: signalling the child we started.
        unsafe { libc::kill(self.pid, libc::SIGTERM) };
        let status = self
            .exit
            .recv_timeout(Duration::from_secs(30))
            .expect("run exits within 30 s of SIGTERM");
        self.exited = Some(status);
        // The pipes close with the process.
        self.seen.extend(self.lines.iter());
        (status, self.seen.join("\n"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.exited.is_none() {
            // SAFETY: killing the child we started.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = self.exit.recv_timeout(Duration::from_secs(10));
        }
        for mountpoint in &self.mountpoints {
            if is_mounted(mountpoint) {
                let path =
                    std::ffi::CString::new(mountpoint.as_os_str().as_encoded_bytes()).unwrap();
                // SAFETY: a valid C string; detaching our own test mount.
                unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
}

/// Reads the low mip levels of `package`'s first texture through `mountpoint`.
fn read_low_levels(mountpoint: &Path, package: &SamplePackage) -> Vec<u8> {
    let path = mountpoint
        .join("textures")
        .join(package.textures[0].file_name());
    let file = std::fs::File::open(&path).unwrap();
    let mut bytes = vec![0; LOW_LEVELS.1];
    file.read_exact_at(&mut bytes, LOW_LEVELS.0).unwrap();
    bytes
}

#[test]
fn run_mounts_three_packages_over_one_service_and_unmounts_them_all() {
    if !can_mount() {
        return;
    }
    let world = World::new();
    let mut run = world.start(&["--update-scenery-packs"]);
    run.expect_line("serving 3 packages", Duration::from_secs(60));
    let [a, b, source] = [0, 1, 2].map(|i| world.mountpoint(&world.packages[i]));
    for mountpoint in [&a, &b, &source] {
        assert!(
            is_mounted(mountpoint),
            "{} not mounted:\n{}",
            mountpoint.display(),
            run.seen.join("\n")
        );
    }

    // Real files pass through; textures are served.
    let dsf = world.packages[1]
        .dsf
        .strip_prefix(&world.packages[1].root)
        .unwrap();
    assert_eq!(
        std::fs::read(b.join(dsf)).unwrap(),
        std::fs::read(&world.packages[1].dsf).unwrap()
    );
    let first = read_low_levels(&a, &world.packages[0]);
    let requests = world.server.stats().requests;
    assert!(requests > 0);
    read_low_levels(&b, &world.packages[1]);
    assert!(
        world.server.stats().requests > requests,
        "zzXEL_b has textures of its own"
    );

    // The same texture through another mount: the one shared cache answers.
    let requests = world.server.stats().requests;
    assert_eq!(read_low_levels(&source, &world.packages[2]), first);
    assert_eq!(
        world.server.stats().requests,
        requests,
        "a second service would have downloaded again"
    );

    // scenery_packs.ini: the source disabled with its mount in its place,
    // the other mounts added at the end, every other line kept, a backup.
    let packs = std::fs::read_to_string(world.custom_scenery.join("scenery_packs.ini")).unwrap();
    let expected = PACKS_BEFORE.replace(
        SOURCE_LINE,
        "SCENERY_PACK Custom Scenery/zOrtho4XP_+47-006_xel/\nSCENERY_PACK_DISABLED Custom Scenery/zOrtho4XP_+47-006/",
    ) + "SCENERY_PACK Custom Scenery/zzXEL_a_xel/\nSCENERY_PACK Custom Scenery/zzXEL_b_xel/\n";
    assert_eq!(packs, expected);
    let backup = world.custom_scenery.join("scenery_packs.ini.xel-backup");
    assert_eq!(std::fs::read_to_string(backup).unwrap(), PACKS_BEFORE);

    let (status, output) = run.terminate();
    assert!(status.success(), "{status:?}\n{output}");
    for mountpoint in [&a, &b, &source] {
        assert!(
            !is_mounted(mountpoint),
            "{} still mounted",
            mountpoint.display()
        );
        assert!(
            output.contains(&format!("unmounted {}", mountpoint.display())),
            "{output}"
        );
    }
}

#[test]
fn a_package_that_cannot_mount_leaves_the_others_serving() {
    if !can_mount() {
        return;
    }
    let world = World::new();
    // zzXEL_b's mountpoint is taken by a file: it cannot mount there.
    let blocked = world.mountpoint(&world.packages[1]);
    std::fs::write(&blocked, "not a folder").unwrap();
    let mut run = world.start(&[]);
    let failure = run.expect_line("FAILED", Duration::from_secs(60));
    assert!(
        failure.contains("zzXEL_b") && failure.contains("not a directory"),
        "{failure}"
    );
    run.expect_line("serving 2 packages", Duration::from_secs(60));
    // Without --update-scenery-packs the file is left alone and the lines printed.
    assert_eq!(
        std::fs::read_to_string(world.custom_scenery.join("scenery_packs.ini")).unwrap(),
        PACKS_BEFORE
    );
    assert!(run
        .seen
        .iter()
        .any(|l| l.contains("disabled SCENERY_PACK Custom Scenery/zOrtho4XP_+47-006/")));
    assert!(
        !run.seen.iter().any(|l| l.contains("zzXEL_b_xel/")),
        "no line for the failed mount"
    );

    let a = world.mountpoint(&world.packages[0]);
    let source = world.mountpoint(&world.packages[2]);
    assert_eq!(read_low_levels(&a, &world.packages[0]).len(), LOW_LEVELS.1);
    assert_eq!(
        read_low_levels(&source, &world.packages[2]).len(),
        LOW_LEVELS.1
    );

    let (status, output) = run.terminate();
    assert!(
        !status.success(),
        "a failed mount is reported in the exit status:\n{output}"
    );
    assert!(
        output.contains("1 of 3 packages could not be mounted"),
        "{output}"
    );
    assert!(!is_mounted(&a) && !is_mounted(&source));
    assert_eq!(std::fs::read_to_string(&blocked).unwrap(), "not a folder");
}

#[test]
fn the_union_serves_a_shared_tile_from_the_package_scenery_packs_ranks_first() {
    if !can_mount() {
        return;
    }
    let world = World::new();
    // zzXEL_a and the Custom Scenery package hold the same tile; only the
    // latter is listed in scenery_packs.ini, so it ranks first.
    let listed = &world.packages[2];
    std::fs::write(&listed.dsf, b"XPLNEDSF the listed package's tile").unwrap();
    let tile = listed.dsf.strip_prefix(&listed.root).unwrap().to_path_buf();
    assert!(world.packages[0].root.join(&tile).is_file());

    let mut run = world.start_union(&["--update-scenery-packs"]);
    let note = run.expect_line("serves it", Duration::from_secs(60));
    assert!(
        note.contains(&tile.display().to_string())
            && note.contains("zOrtho4XP_+47-006 serves it")
            && note.contains("not zzXEL_a"),
        "{note}"
    );
    run.expect_line(
        "serving 3 packages through 1 mounts",
        Duration::from_secs(60),
    );
    let union = world.union_mountpoint();
    assert!(is_mounted(&union), "{}", run.seen.join("\n"));

    assert_eq!(
        std::fs::read(union.join(&tile)).unwrap(),
        b"XPLNEDSF the listed package's tile"
    );
    let other = &world.packages[1];
    assert_eq!(
        std::fs::read(union.join(other.dsf.strip_prefix(&other.root).unwrap())).unwrap(),
        std::fs::read(&other.dsf).unwrap()
    );
    assert_eq!(read_low_levels(&union, other).len(), LOW_LEVELS.1);

    // One line for the union, in the listed source's place; every source
    // in Custom Scenery disabled.
    let packs = std::fs::read_to_string(world.custom_scenery.join("scenery_packs.ini")).unwrap();
    let expected = PACKS_BEFORE.replace(
        SOURCE_LINE,
        "SCENERY_PACK Custom Scenery/zzXEL_ortho_xel/\nSCENERY_PACK_DISABLED Custom Scenery/zOrtho4XP_+47-006/",
    );
    assert_eq!(packs, expected);

    let (status, output) = run.terminate();
    assert!(status.success(), "{status:?}\n{output}");
    assert!(!is_mounted(&union), "the union is still mounted");
    assert!(
        output.contains(&format!("unmounted {}", union.display())),
        "{output}"
    );
}
