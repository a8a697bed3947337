//! The commands a user meets, run as an unprivileged user (uid and gid
//! 65534, `nobody`) the way X-Plane's user would run them: `start`, `run`
//! over two packages with `--update-scenery-packs`, `demo`, and `start`
//! after a SIGKILL left a dead mount. They mount through the setuid
//! `fusermount3`, serve that user (and not root: no `allow_other`), and
//! leave no mount behind. The test process is root and runs the binary and
//! the reads under that uid with `setpriv`, in a temporary HOME and folders
//! the user owns. Needs root, /dev/fuse, `setpriv` and `fusermount3`;
//! skips loudly otherwise, and fails under `XEL_REQUIRE_MOUNT=1`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use xel_sim::mounts::{
    can_mount_as_unprivileged, give_to_unprivileged, is_mounted, unprivileged_command,
    UNPRIVILEGED_ID,
};
use xel_sim::package::{create_package, PackageSpec, SamplePackage};
use xel_sim::server::{start_in_background, BackgroundServer, ServerConfig};

const BIN: &str = env!("CARGO_BIN_EXE_xearthlayer");

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

/// A folder tree owned by the unprivileged user, with a HOME in it.
struct UserDir {
    root: tempfile::TempDir,
}

impl UserDir {
    fn new() -> UserDir {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("home")).unwrap();
        UserDir { root }
    }

    fn path(&self) -> &Path {
        self.root.path()
    }

    fn home(&self) -> PathBuf {
        self.path().join("home")
    }

    /// Hands everything made so far to the user.
    fn give(&self) {
        give_to_unprivileged(self.path()).unwrap();
    }

    /// `program args...` as the user, in this HOME.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = unprivileged_command(program);
        command
            .env("HOME", self.home())
            .env("TMPDIR", self.path())
            .env_remove("XEARTHLAYER_CONFIG")
            .env_remove("XDG_CACHE_HOME");
        command
    }

    /// The first `len` bytes of `path` (at `offset`), read by the user.
    fn read(&self, path: &Path, offset: u64, len: usize) -> Output {
        self.command("dd")
            .arg(format!("if={}", path.display()))
            .args(["iflag=skip_bytes,count_bytes", "status=none"])
            .arg(format!("skip={offset}"))
            .arg(format!("count={len}"))
            .output()
            .unwrap()
    }
}

/// A process started as the user; its output lines are collected. Dropping
/// it kills the process and detaches (as root) any mount it left.
struct Running {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    mountpoints: Vec<PathBuf>,
}

impl Running {
    fn spawn(mut command: Command, mountpoints: Vec<PathBuf>) -> Running {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let pipes: [Box<dyn std::io::Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for pipe in pipes {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Running {
            child,
            lines,
            seen: Vec::new(),
            mountpoints,
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: signalling the child we started (setpriv execs, so this
        // is xearthlayer itself).
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Sends `sig`, then returns the exit status and all output.
    fn stop(&mut self, sig: i32) -> (std::process::ExitStatus, String) {
        self.signal(sig);
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "no exit within 30 s of {sig}");
            std::thread::sleep(Duration::from_millis(20));
        };
        // The pipes close with the process.
        self.seen.extend(self.lines.iter());
        (status, self.seen.join("\n"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// The mountinfo line of the mount at `path`.
fn mountinfo_line(path: &Path) -> Option<String> {
    let want = path.to_string_lossy().replace(' ', "\\040");
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(&*want))
        .map(str::to_string)
}

/// Nothing under `dir` is mounted any more.
fn nothing_mounted_under(dir: &Path) -> bool {
    !std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(&*dir.to_string_lossy())
}

struct StartWorld {
    server: BackgroundServer,
    dir: UserDir,
    package: SamplePackage,
    mnt: PathBuf,
}

impl StartWorld {
    fn new() -> StartWorld {
        let server = start_in_background(ServerConfig::default()).unwrap();
        let dir = UserDir::new();
        let package = create_package(
            &dir.path().join("zOrtho4XP_+47-006"),
            &PackageSpec {
                textures: 4,
                ..PackageSpec::default()
            },
        )
        .unwrap();
        dir.give();
        let mnt = dir.path().join("zOrtho4XP_+47-006_xel");
        StartWorld {
            server,
            dir,
            package,
            mnt,
        }
    }

    fn start(&self) -> Running {
        let mut command = self.dir.command(BIN);
        command
            .arg("start")
            .arg("--source")
            .arg(&self.package.root)
            .arg("--mountpoint")
            .arg(&self.mnt)
            .args(["--url", &self.server.url_template(), "--no-tui"]);
        Running::spawn(command, vec![self.mnt.clone()])
    }

    fn texture(&self, i: usize) -> PathBuf {
        self.mnt
            .join("textures")
            .join(self.package.textures[i].file_name())
    }
}

#[test]
fn start_as_a_user_serves_that_user_and_unmounts_on_sigint() {
    if !can_mount_as_unprivileged() {
        return;
    }
    let w = StartWorld::new();
    let mut run = w.start();
    assert!(
        wait_for(Duration::from_secs(20), || is_mounted(&w.mnt)),
        "never mounted"
    );
    let line = mountinfo_line(&w.mnt).unwrap();
    assert!(
        line.contains(&format!("user_id={UNPRIVILEGED_ID}")) && line.contains(" ro"),
        "a read-only mount of the user: {line}"
    );
    assert!(!line.contains("allow_other"), "{line}");

    // The user reads a texture's header and its real files.
    let header = w.dir.read(&w.texture(0), 0, 65536);
    assert!(header.status.success(), "{header:?}");
    assert_eq!(header.stdout.len(), 65536);
    assert!(header.stdout.starts_with(b"DDS "));
    let dsf = w
        .mnt
        .join(w.package.dsf.strip_prefix(&w.package.root).unwrap());
    let copy = w.dir.read(&dsf, 0, 1 << 20);
    assert_eq!(copy.stdout, std::fs::read(&w.package.dsf).unwrap());
    // Owner and modes that make sense for that user.
    let stat = w
        .dir
        .command("stat")
        .args(["-c", "%u %a"])
        .arg(w.texture(0))
        .arg(&w.mnt)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&stat.stdout),
        format!("{UNPRIVILEGED_ID} 444\n{UNPRIVILEGED_ID} 755\n")
    );
    // Without allow_other nobody else gets in, not even root.
    let err = std::fs::metadata(w.texture(0)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");

    let (status, output) = run.stop(libc::SIGINT);
    assert!(status.success(), "{status:?}\n{output}");
    assert!(output.contains("SIGINT: unmounting"), "{output}");
    assert!(!is_mounted(&w.mnt), "{output}");
    assert!(nothing_mounted_under(w.dir.path()));
}

#[test]
fn start_as_a_user_clears_its_own_mount_left_by_sigkill() {
    if !can_mount_as_unprivileged() {
        return;
    }
    let w = StartWorld::new();
    let mut first = w.start();
    assert!(wait_for(Duration::from_secs(20), || is_mounted(&w.mnt)));
    first.signal(libc::SIGKILL);
    first.child.wait().unwrap();
    assert!(is_mounted(&w.mnt), "SIGKILL leaves the dead mount behind");
    let dead = w.dir.command("stat").arg(w.texture(0)).output().unwrap();
    assert!(
        String::from_utf8_lossy(&dead.stderr).contains("not connected"),
        "{dead:?}"
    );

    let mut second = w.start();
    let served = || {
        let read = w.dir.read(&w.texture(1), 0, 128);
        read.status.success() && read.stdout.starts_with(b"DDS ")
    };
    assert!(
        wait_for(Duration::from_secs(20), served),
        "the dead mount was not replaced: {:?}",
        second.lines.try_iter().collect::<Vec<_>>()
    );
    let (status, output) = second.stop(libc::SIGTERM);
    assert!(status.success(), "{output}");
    assert!(output.to_lowercase().contains("stale"), "{output}");
    assert!(nothing_mounted_under(w.dir.path()), "{output}");
}

#[test]
fn run_as_a_user_serves_two_packages_and_edits_its_scenery_packs() {
    if !can_mount_as_unprivileged() {
        return;
    }
    let server = start_in_background(ServerConfig::default()).unwrap();
    let dir = UserDir::new();
    let home = dir.home();
    let custom_scenery = dir.path().join("X-Plane 12/Custom Scenery");
    std::fs::create_dir_all(&custom_scenery).unwrap();
    std::fs::create_dir_all(home.join(".x-plane")).unwrap();
    std::fs::write(
        home.join(".x-plane/x-plane_install_12.txt"),
        format!("{}/\n", dir.path().join("X-Plane 12").display()),
    )
    .unwrap();
    let packs_before = "I\n1000 Version\nSCENERY\n\nSCENERY_PACK *GLOBAL_AIRPORTS*\n";
    std::fs::write(custom_scenery.join("scenery_packs.ini"), packs_before).unwrap();
    let spec = PackageSpec {
        textures: 2,
        ..PackageSpec::default()
    };
    let packages_dir = home.join(".xearthlayer/packages");
    let packages = [
        create_package(&packages_dir.join("zzXEL_a"), &spec).unwrap(),
        create_package(
            &packages_dir.join("zzXEL_b"),
            &PackageSpec {
                lat: 48.5,
                ..spec.clone()
            },
        )
        .unwrap(),
    ];
    std::fs::write(
        home.join(".xearthlayer/config.ini"),
        format!(
            "[provider]\ntype = custom\nurl = {}\n",
            server.url_template()
        ),
    )
    .unwrap();
    dir.give();
    let mountpoints: Vec<PathBuf> = ["zzXEL_a_xel", "zzXEL_b_xel"]
        .map(|name| custom_scenery.join(name))
        .into();

    let mut command = dir.command(BIN);
    command.args([
        "run",
        "--mount",
        "per-package",
        "--update-scenery-packs",
        "--no-tui",
    ]);
    let mut run = Running::spawn(command, mountpoints.clone());
    let ini = custom_scenery.join("scenery_packs.ini");
    assert!(
        wait_for(Duration::from_secs(30), || std::fs::read_to_string(&ini)
            .is_ok_and(|t| t.contains("zzXEL_b_xel"))),
        "scenery_packs.ini never listed the mounts: {:?}",
        run.lines.try_iter().collect::<Vec<_>>()
    );
    for (package, mountpoint) in packages.iter().zip(&mountpoints) {
        assert!(is_mounted(mountpoint), "{}", mountpoint.display());
        let texture = mountpoint
            .join("textures")
            .join(package.textures[0].file_name());
        // The low mip levels, as X-Plane reads distant terrain.
        let low = dir.read(&texture, 11_174_016, 10_936);
        assert!(low.status.success(), "{low:?}");
        assert_eq!(low.stdout.len(), 10_936);
    }
    assert_eq!(
        std::fs::read_to_string(&ini).unwrap(),
        format!(
            "{packs_before}SCENERY_PACK Custom Scenery/zzXEL_a_xel/\nSCENERY_PACK Custom Scenery/zzXEL_b_xel/\n"
        )
    );
    // The disk cache went to the user's own cache folder.
    assert!(home.join(".cache/xearthlayer").is_dir());

    let (status, output) = run.stop(libc::SIGTERM);
    assert!(status.success(), "{status:?}\n{output}");
    for mountpoint in &mountpoints {
        assert!(
            output.contains(&format!("unmounted {}", mountpoint.display())),
            "{output}"
        );
    }
    assert!(nothing_mounted_under(dir.path()), "{output}");
}

#[test]
fn demo_as_a_user_leaves_its_preview_where_it_says() {
    if !can_mount_as_unprivileged() {
        return;
    }
    let dir = UserDir::new();
    dir.give();
    let out = dir
        .command(BIN)
        .args(["demo", "--textures", "8", "--latency-ms", "5"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let preview = dir.home().join(".xearthlayer/demo/preview.png");
    assert!(
        stdout.contains(&format!("preview: {}", preview.display())),
        "{stdout}"
    );
    let png = std::fs::read(&preview).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 100_000);
    assert!(nothing_mounted_under(dir.path()), "{stdout}");
    // The temporary working folder (under TMPDIR) is gone.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name.to_string_lossy().starts_with("xearthlayer-demo"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn allow_other_as_a_user_without_user_allow_other_names_the_line_and_file() {
    if !can_mount_as_unprivileged() {
        return;
    }
    let conf = xearthlayer::fuse::user_mount::FuseConf::read().unwrap();
    assert!(
        !conf.user_allow_other,
        "this test needs /etc/fuse.conf without user_allow_other"
    );
    let w = StartWorld::new();
    let out = w
        .dir
        .command(BIN)
        .arg("start")
        .arg("--source")
        .arg(&w.package.root)
        .arg("--mountpoint")
        .arg(&w.mnt)
        .args(["--url", &w.server.url_template(), "--allow-other"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the line `user_allow_other` in /etc/fuse.conf"),
        "{err}"
    );
    assert!(!is_mounted(&w.mnt));
}

#[test]
fn demo_as_a_user_stopped_by_sigint_mid_read_unmounts_and_exits() {
    if !can_mount_as_unprivileged() {
        return;
    }
    let dir = UserDir::new();
    dir.give();
    let mut command = dir.command(BIN);
    command.args(["demo", "--textures", "16", "--latency-ms", "100"]);
    let mut demo = Running::spawn(command, Vec::new());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !demo.seen.iter().any(|l| l.starts_with("4. reading")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match demo.lines.recv_timeout(left) {
            Ok(line) => demo.seen.push(line),
            Err(_) => panic!("the demo never started reading: {:?}", demo.seen),
        }
    }
    // Its own reader threads are mid-read: stopping must neither hang on
    // them nor leave the mount behind.
    let (status, output) = demo.stop(libc::SIGINT);
    assert!(!status.success(), "{output}");
    assert!(
        output.contains("SIGINT: letting this pass of reads finish"),
        "{output}"
    );
    assert!(nothing_mounted_under(dir.path()), "{output}");
}
