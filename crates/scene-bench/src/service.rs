//! The service under test: `xearthlayer start` (one package) or `run` (a
//! folder of packages) as a child process, so that
//! `/proc/<pid>` measures the service alone (not the benchmark's readers or
//! its imagery server).
//!
//! The child writes its counters to a stats file on each SIGUSR1 (then
//! starts new peak measurements) and on exit. A [`ServiceProcess`] always
//! cleans up: dropped (also on error or panic) it stops the child and
//! clears the mount; the child also gets SIGTERM if the benchmark dies.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::procfs;
use crate::BenchResult;

/// How long the service may take to mount (it indexes the package first).
const MOUNT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stats dump may take to appear.
const DUMP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a clean stop may take (it waits for disk cache writes).
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Between looks at the mount table, the stats file or the child.
const POLL: Duration = Duration::from_millis(10);

/// How to start the service.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// The `xearthlayer` binary.
    pub binary: PathBuf,
    pub mount: Mount,
    /// Imagery URL template (the local server).
    pub url: String,
    pub cache_dir: PathBuf,
    pub memory_cache_bytes: u64,
    /// `--max-builds`; `None` for the service's default.
    pub max_builds: Option<usize>,
    /// More arguments for `xearthlayer start` (`--service-arg`).
    pub extra_args: Vec<String>,
    /// Where the child's counters go.
    pub stats_file: PathBuf,
    /// The child's stdout and stderr.
    pub log: PathBuf,
    /// An empty configuration file, so a user's settings do not skew the
    /// numbers.
    pub config: PathBuf,
}

/// What the service mounts, and so which command it is. Mount points are
/// absolute, so they can be found in the mount table.
#[derive(Debug, Clone)]
pub enum Mount {
    /// `xearthlayer start --source SOURCE --mountpoint MOUNTPOINT`.
    One {
        source: PathBuf,
        mountpoint: PathBuf,
    },
    /// `xearthlayer run`: every package of `packages`, through the one
    /// union mount `custom_scenery/zzXEL_ortho_xel` or each at
    /// `custom_scenery/<name>_xel` (the `mountpoints`).
    All {
        packages: PathBuf,
        custom_scenery: PathBuf,
        mountpoints: Vec<PathBuf>,
        union: bool,
    },
}

impl Mount {
    pub fn mountpoints(&self) -> &[PathBuf] {
        match self {
            Mount::One { mountpoint, .. } => std::slice::from_ref(mountpoint),
            Mount::All { mountpoints, .. } => mountpoints,
        }
    }

    fn args(&self, command: &mut Command) {
        match self {
            Mount::One { source, mountpoint } => command
                .arg("start")
                .arg("--source")
                .arg(source)
                .arg("--mountpoint")
                .arg(mountpoint),
            Mount::All {
                packages,
                custom_scenery,
                union,
                ..
            } => command
                .arg("run")
                .arg("--mount")
                .arg(if *union { "union" } else { "per-package" })
                .arg("--no-tui")
                .arg("--packages")
                .arg(packages)
                .arg("--custom-scenery")
                .arg(custom_scenery),
        };
    }
}

/// The service's counters from one dump, by the names it writes.
#[derive(Debug, Clone, Default)]
pub struct Stats(BTreeMap<String, u64>);

impl Stats {
    fn parse(text: &str) -> Stats {
        Stats(
            text.lines()
                .filter_map(|l| l.split_once('='))
                .filter_map(|(k, v)| Some((k.trim().to_string(), v.trim().parse().ok()?)))
                .collect(),
        )
    }

    /// A value (a gauge or peak), 0 if absent.
    pub fn get(&self, key: &str) -> u64 {
        self.0.get(key).copied().unwrap_or(0)
    }

    /// How much a counter grew since `before`.
    pub fn since(&self, before: &Stats, key: &str) -> u64 {
        self.get(key).saturating_sub(before.get(key))
    }
}

/// A running, mounted service.
pub struct ServiceProcess {
    child: Option<Child>,
    spec: ServiceSpec,
    dumps: u64,
}

impl ServiceProcess {
    /// Starts the service and returns once its mount is up.
    pub fn start(spec: ServiceSpec) -> BenchResult<ServiceProcess> {
        if let Mount::One { mountpoint, .. } = &spec.mount {
            std::fs::create_dir_all(mountpoint)?;
        }
        std::fs::create_dir_all(&spec.cache_dir)?;
        let _ = std::fs::remove_file(&spec.stats_file);
        let log = File::create(&spec.log)?;
        if !spec.config.exists() {
            File::create(&spec.config)?;
        }
        let mut command = Command::new(&spec.binary);
        spec.mount.args(&mut command);
        command
            .arg("--url")
            .arg(&spec.url)
            .arg("--cache-dir")
            .arg(&spec.cache_dir)
            .arg("--memory-cache")
            .arg(spec.memory_cache_bytes.to_string())
            .arg("--stats-file")
            .arg(&spec.stats_file)
            .env("XEARTHLAYER_CONFIG", &spec.config)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        if let Some(n) = spec.max_builds {
            command.arg("--max-builds").arg(n.to_string());
        }
        command.args(&spec.extra_args);
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        // The signal follows the death of the thread that spawns: the main
        // thread, which lives as long as the benchmark.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", spec.binary.display()))?;
        let mut service = ServiceProcess {
            child: Some(child),
            spec,
            dumps: 0,
        };
        service.wait_for_mount()?;
        Ok(service)
    }

    fn child(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("the child is only taken when stopping")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn wait_for_mount(&mut self) -> BenchResult {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child().try_wait()? {
                return Err(self.failure(&format!("exited ({status}) before mounting")));
            }
            if self.mounted()? == self.spec.mount.mountpoints().len() {
                return Ok(());
            }
            if started.elapsed() > MOUNT_TIMEOUT {
                return Err(self.failure(&format!("did not mount within {MOUNT_TIMEOUT:?}")));
            }
            std::thread::sleep(POLL);
        }
    }

    /// The service's counters now; its peaks start again from here.
    pub fn dump(&mut self) -> BenchResult<Stats> {
        self.dumps += 1;
        self.signal(libc::SIGUSR1)?;
        let started = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&self.spec.stats_file) {
                let stats = Stats::parse(&text);
                if stats.get("dump") >= self.dumps {
                    return Ok(stats);
                }
            }
            if let Some(status) = self.child().try_wait()? {
                return Err(self.failure(&format!("exited ({status}) while serving")));
            }
            if started.elapsed() > DUMP_TIMEOUT {
                return Err(self.failure(
                    "wrote no stats after SIGUSR1 (does this xearthlayer have --stats-file?)",
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Stops the service as a user would (SIGTERM: unmount, flush the disk
    /// cache, exit 0) and checks that it did.
    pub fn stop(mut self) -> BenchResult {
        self.signal(libc::SIGTERM)?;
        let status = self.wait_exit(STOP_TIMEOUT)?;
        self.child = None;
        match status {
            Some(status) if status.success() => {}
            Some(status) => return Err(self.failure(&format!("exited with {status} on SIGTERM"))),
            None => {
                return Err(
                    self.failure(&format!("did not stop within {STOP_TIMEOUT:?} of SIGTERM"))
                )
            }
        }
        if self.mounted()? > 0 {
            return Err(self.failure("exited but left mounts behind"));
        }
        Ok(())
    }

    /// How many of its mount points are mounted now.
    fn mounted(&self) -> BenchResult<usize> {
        let mut mounted = 0;
        for mountpoint in self.spec.mount.mountpoints() {
            mounted += usize::from(procfs::is_mounted(mountpoint)?);
        }
        Ok(mounted)
    }

    fn signal(&mut self, signal: libc::c_int) -> BenchResult {
        let pid = libc::pid_t::try_from(self.pid())?;
        // SAFETY: kill only sends a signal to our own child.
        if unsafe { libc::kill(pid, signal) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(())
    }

    /// The exit status, or `None` if the child still runs after `timeout`.
    fn wait_exit(&mut self, timeout: Duration) -> BenchResult<Option<ExitStatus>> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child().try_wait()? {
                return Ok(Some(status));
            }
            if started.elapsed() > timeout {
                return Ok(None);
            }
            std::thread::sleep(POLL);
        }
    }

    /// An error naming what went wrong, with the end of the service's log.
    fn failure(&self, what: &str) -> Box<dyn std::error::Error> {
        let log = std::fs::read_to_string(&self.spec.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n  ");
        format!(
            "the service ({}) {what}; end of {}:\n  {tail}",
            self.spec.binary.display(),
            self.spec.log.display()
        )
        .into()
    }
}

impl Drop for ServiceProcess {
    /// Stops the child (SIGTERM, then SIGKILL) and clears its mount.
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.signal(libc::SIGTERM);
            if !matches!(self.wait_exit(Duration::from_secs(10)), Ok(Some(_))) {
                if let Some(child) = self.child.as_mut() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
            self.child = None;
        }
        for mountpoint in self.spec.mount.mountpoints() {
            if procfs::is_mounted(mountpoint).unwrap_or(false) {
                force_unmount(mountpoint);
            }
        }
    }
}

/// Detaches a mount whose process is gone: `umount2(MNT_DETACH)` as root,
/// else `fusermount3 -uz`.
fn force_unmount(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return;
    };
    // SAFETY: a valid C string; umount2 does not keep the pointer.
    if unsafe { libc::umount2(c_path.as_ptr(), libc::MNT_DETACH) } == 0 {
        return;
    }
    let cleared = Command::new("fusermount3")
        .arg("-uz")
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    if !cleared {
        eprintln!(
            "scene-bench: could not unmount {}; run `fusermount3 -uz {}`",
            path.display(),
            path.display()
        );
    }
}
