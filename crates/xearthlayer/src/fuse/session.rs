//! Mounting: checks before, the read-only FUSE mount, and unmounting.
//!
//! Before mounting, [`mount`] makes sure the mount can work and says what to
//! do when it cannot: `/dev/fuse` present, the package a directory, the
//! mountpoint created if missing, a stale mount left by a killed process
//! (`ENOTCONN`, "Transport endpoint is not connected") cleared, a live mount
//! or a non-empty directory refused, and the mountpoint neither hiding nor
//! inside the package. As root it mounts with mount(2) itself; as anyone
//! else through `fusermount3` (see [`user_mount`](super::user_mount)), and
//! every unmount, stale-mount clearing and last-moment detach goes the same
//! way the mount came. The session itself runs on the connection runtime
//! (see [`connections`](super::connections)), never on the caller's.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fuse3::raw::{MountHandle, Session};
use fuse3::MountOptions;

use crate::fs::{OverlayFs, TextureSource};

use super::connections::{self, RootSessionSlot, MAX_ROOT_SESSIONS};
use super::user_mount::{self, FuseConf, FUSE_CONF};
use super::FuseAdapter;

/// The filesystem name the mount shows (`/proc/mounts`, `df`).
pub const FS_NAME: &str = "xearthlayer";

/// How long an unmount waits for the session to wind down.
const UNMOUNT_WAIT: Duration = Duration::from_secs(10);
/// With files still open (readers mid-texture), the session would only end
/// when they close: give their reads a moment, then stop serving.
const BUSY_UNMOUNT_WAIT: Duration = Duration::from_secs(1);

/// How to mount.
#[derive(Debug, Clone)]
pub struct MountConfig {
    /// Let other users (X-Plane run as another user) read the mount. Not
    /// needed when X-Plane runs as the user who mounts; as a user it needs
    /// `user_allow_other` in `/etc/fuse.conf`.
    pub allow_other: bool,
    /// How long the kernel may cache attributes and names.
    pub ttl: Duration,
    /// Background requests (readahead, async reads) the kernel keeps in
    /// flight; its default of 12 serialises texture reads.
    pub max_background: u16,
    /// Background requests above which the kernel starts throttling.
    pub congestion_threshold: u16,
}

impl Default for MountConfig {
    fn default() -> Self {
        MountConfig {
            allow_other: false,
            ttl: Duration::from_secs(1),
            max_background: 256,
            congestion_threshold: 192,
        }
    }
}

/// Why mounting or unmounting failed, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("/dev/fuse is missing: load the FUSE kernel module (`modprobe fuse`) or install fuse3 (`apt install fuse3`)")]
    NoFuseDevice,
    #[error("the FUSE filesystem type is not available in this kernel ({0}): load the module with `modprobe fuse`")]
    NoFuseKernel(io::Error),
    #[error("scenery package {0} is not a directory: point the source at the package folder (the one holding `Earth nav data/` and `terrain/`)")]
    SourceNotDir(PathBuf),
    #[error("mountpoint {0} exists but is not a directory: choose a directory (an empty one, or a path that does not exist yet)")]
    MountpointNotDir(PathBuf),
    #[error("cannot create mountpoint {path}: {source}")]
    CreateMountpoint { path: PathBuf, source: io::Error },
    #[error("cannot use mountpoint {path}: {source}")]
    Mountpoint { path: PathBuf, source: io::Error },
    #[error("{path} is already mounted ({fstype} from {device}): unmount it first (`fusermount3 -u {path}` or `umount {path}`), or choose another mountpoint")]
    AlreadyMounted {
        path: PathBuf,
        fstype: String,
        device: String,
    },
    #[error("{0} is a FUSE mount whose process does not answer: stop that process, or run `fusermount3 -uz {0}`")]
    NotResponding(PathBuf),
    #[error("mountpoint {0} is not empty: mount on an empty directory (the mount would hide its contents)")]
    NotEmpty(PathBuf),
    #[error("mountpoint {mountpoint} overlaps the scenery package {source_dir}: mount the package somewhere outside it, e.g. Custom Scenery/zzXEL_<name>")]
    Overlaps {
        mountpoint: PathBuf,
        source_dir: PathBuf,
    },
    #[error("{path} is a stale mount (Transport endpoint is not connected) that could not be cleared: {detail}; run `fusermount3 -uz {path}` (or `umount -l {path}` as root)")]
    StaleMount { path: PathBuf, detail: String },
    #[error("not permitted to mount at {path} ({source}): as root this is a mount(2) of our own; check that no security policy (a container without CAP_SYS_ADMIN) forbids it, or run as your own user to mount through fusermount3")]
    NotPermitted { path: PathBuf, source: io::Error },
    #[error("/dev/fuse cannot be opened by this user ({0}), and fusermount3 opens it with the user's rights: make it usable with `sudo chmod 0666 /dev/fuse` (a desktop's udev rules make it 0666; a container may leave it 0600), or run as root")]
    FuseDeviceDenied(io::Error),
    #[error("mounting as a user needs fusermount3, which is not installed: install the fuse3 package (`sudo apt install fuse3`)")]
    NoFusermount,
    #[error("fusermount3 at {0} is not setuid root, so it cannot mount for a user: reinstall it (`sudo apt install --reinstall fuse3`) or `sudo chmod u+s {0}`")]
    FusermountNotSetuid(PathBuf),
    #[error("--allow-other as a user needs the line `user_allow_other` in {FUSE_CONF}: add it (`echo user_allow_other | sudo tee -a {FUSE_CONF}`), or leave --allow-other out (X-Plane running as you reads the mount without it)")]
    AllowOtherNotEnabled,
    #[error("fusermount3 could not mount at {path} ({source}; its own message, if any, is above): run `xearthlayer doctor` to check the FUSE set-up")]
    UserMount { path: PathBuf, source: io::Error },
    #[error("mounting at {path} failed: {source}")]
    Mount { path: PathBuf, source: io::Error },
    #[error("unmounting {path} failed: {source}; close the programs using it (`fuser -vm {path}`) or run `fusermount3 -uz {path}`")]
    Unmount { path: PathBuf, source: io::Error },
    #[error("the FUSE session at {path} ended with an error: {source}")]
    Session { path: PathBuf, source: io::Error },
    #[error("cannot mount {0}: {MAX_ROOT_SESSIONS} mounts are already served as root, each with a thread of its own; serve many packages through one union mount (`run --mount union`), or run as the user who runs X-Plane")]
    TooManyRootSessions(PathBuf),
}

/// A live mount. Dropping it detaches the mount (lazily) so that no stale
/// mount is left behind; [`MountSession::unmount`] is the orderly way.
pub struct MountSession {
    mountpoint: PathBuf,
    /// Mounted through `fusermount3`, so unmounted through it too.
    as_user: bool,
    /// `None` once the session ended or was unmounted.
    handle: Option<MountHandle>,
    /// A root mount's reader thread, given back when the session is gone.
    _slot: Option<RootSessionSlot>,
}

/// Mounts `fs` read-only at `mountpoint`.
pub async fn mount<S: TextureSource>(
    fs: OverlayFs<S>,
    mountpoint: &Path,
    opts: &MountConfig,
) -> Result<MountSession, MountError> {
    mount_shared(Arc::new(fs), mountpoint, opts).await
}

/// [`mount`], keeping a handle on the filesystem (for its counters).
pub async fn mount_shared<S: TextureSource>(
    fs: Arc<OverlayFs<S>>,
    mountpoint: &Path,
    opts: &MountConfig,
) -> Result<MountSession, MountError> {
    if !Path::new("/dev/fuse").exists() {
        return Err(MountError::NoFuseDevice);
    }
    let as_user = user_mount::mounts_as_user();
    if as_user {
        check_user_mount(opts)?;
    }
    let source = fs.source_dir().to_path_buf();
    let requested = mountpoint.to_path_buf();
    let mountpoint = tokio::task::spawn_blocking(move || prepare(&requested, &source))
        .await
        .map_err(|err| MountError::Mountpoint {
            path: mountpoint.to_path_buf(),
            source: io::Error::other(err),
        })??;

    let mut options = MountOptions::default();
    options
        .fs_name(FS_NAME)
        .read_only(true)
        .allow_other(opts.allow_other)
        // The kernel checks permissions against our attributes (0444 textures).
        .default_permissions(true);
    let slot = if as_user {
        None
    } else {
        Some(
            RootSessionSlot::claim()
                .ok_or_else(|| MountError::TooManyRootSessions(mountpoint.clone()))?,
        )
    };
    // The operations run here, on the caller's runtime; the session (its
    // reads of /dev/fuse and the replies) on the connection runtime.
    let adapter = FuseAdapter::new(fs, opts, tokio::runtime::Handle::current());
    let session = Session::new(options);
    let target = mountpoint.clone();
    let connections = connections::handle().map_err(|source| MountError::Mountpoint {
        path: mountpoint.clone(),
        source,
    })?;
    let mounted = connections
        .spawn(async move {
            if as_user {
                session.mount_with_unprivileged(adapter, &target).await
            } else {
                session.mount(adapter, &target).await
            }
        })
        .await
        .unwrap_or_else(|err| Err(io::Error::other(err)));
    let handle = mounted.map_err(|source| {
        if as_user {
            MountError::UserMount {
                path: mountpoint.clone(),
                source,
            }
        } else {
            mount_error(&mountpoint, source)
        }
    })?;
    tracing::info!(mountpoint = %mountpoint.display(), through = if as_user { "fusermount3" } else { "mount(2)" }, "mounted");
    Ok(MountSession {
        mountpoint,
        as_user,
        handle: Some(handle),
        _slot: slot,
    })
}

impl MountSession {
    /// Where the filesystem is mounted (canonical path).
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Waits until the session ends: unmounted from outside (`umount`,
    /// `fusermount3 -u`) or the connection aborted.
    pub async fn wait(&mut self) -> Result<(), MountError> {
        let Some(handle) = self.handle.as_mut() else {
            return Ok(());
        };
        let result = handle.await;
        self.handle = None;
        tracing::info!(mountpoint = %self.mountpoint.display(), "fuse session ended");
        result.map_err(|source| MountError::Session {
            path: self.mountpoint.clone(),
            source,
        })
    }

    /// Unmounts and waits for the session to end. If the mount is busy
    /// (files open), it is detached lazily: it disappears at once and the
    /// session serves the open files until they are closed or the wait
    /// times out.
    pub async fn unmount(mut self) -> Result<(), MountError> {
        let Some(handle) = self.handle.take() else {
            return Ok(());
        };
        let path = self.mountpoint.clone();
        let as_user = self.as_user;
        let unmounted = tokio::task::spawn_blocking(move || {
            if !is_ours(&path) {
                // Unmounted from outside already: nothing to do.
                return Ok(UNMOUNT_WAIT);
            }
            if as_user {
                return user_mount::unmount(&path).map(|lazily| {
                    if lazily {
                        BUSY_UNMOUNT_WAIT
                    } else {
                        UNMOUNT_WAIT
                    }
                });
            }
            match umount(&path, 0) {
                Err(err) if err.raw_os_error() == Some(libc::EBUSY) => {
                    tracing::warn!(mountpoint = %path.display(), "mount busy; detaching it lazily");
                    umount(&path, libc::MNT_DETACH).map(|()| BUSY_UNMOUNT_WAIT)
                }
                // Already gone (unmounted from outside): nothing to do.
                Err(err) if err.raw_os_error() == Some(libc::EINVAL) => Ok(UNMOUNT_WAIT),
                other => other.map(|()| UNMOUNT_WAIT),
            }
        })
        .await
        .unwrap_or_else(|err| Err(io::Error::other(err)));
        let wait = match unmounted {
            Ok(wait) => wait,
            Err(source) => {
                // Put the handle back so that drop detaches the mount.
                self.handle = Some(handle);
                return Err(MountError::Unmount {
                    path: self.mountpoint.clone(),
                    source,
                });
            }
        };
        match tokio::time::timeout(wait, handle).await {
            Ok(Ok(())) => {
                tracing::info!(mountpoint = %self.mountpoint.display(), "unmounted");
                Ok(())
            }
            Ok(Err(source)) => Err(MountError::Session {
                path: self.mountpoint.clone(),
                source,
            }),
            Err(_) => {
                // Dropping the handle stops the session; files still open
                // through the detached mount get ENOTCONN.
                tracing::warn!(mountpoint = %self.mountpoint.display(), "files still open after unmount; stopping the session");
                Ok(())
            }
        }
    }
}

impl Drop for MountSession {
    fn drop(&mut self) {
        let Some(handle) = self.handle.take() else {
            return;
        };
        if is_ours(&self.mountpoint) {
            // A last-moment cleanup (a failed start, a panic): detach at
            // once, in place, since the process may be about to exit.
            let detached = if self.as_user {
                user_mount::detach(&self.mountpoint)
            } else {
                umount(&self.mountpoint, libc::MNT_DETACH)
            };
            if let Err(err) = detached {
                tracing::warn!(mountpoint = %self.mountpoint.display(), %err, "could not detach the mount");
            }
        }
        // fuse3 stops its session task from a spawned task on drop; the
        // connection runtime exists, since it mounted this session.
        if let Ok(connections) = connections::handle() {
            let _runtime = connections.enter();
            drop(handle);
        }
    }
}

/// Detaches the xearthlayer mount at `mountpoint` at once, lazily (files
/// open through it fail once this process exits), the way the mount was
/// made: for a forced exit that cannot wait for [`MountSession::unmount`].
/// Nothing to do if it is not an xearthlayer mount (any more).
pub fn detach_now(mountpoint: &Path) -> io::Result<()> {
    // The mountinfo path is canonical; the mountpoint itself is not looked
    // at (a hung mount would hang the lookup).
    let path = match (mountpoint.parent(), mountpoint.file_name()) {
        (Some(parent), Some(name)) => parent.canonicalize()?.join(name),
        _ => mountpoint.to_path_buf(),
    };
    if !is_ours(&path) {
        return Ok(());
    }
    if user_mount::mounts_as_user() {
        user_mount::detach(&path)
    } else {
        umount(&path, libc::MNT_DETACH)
    }
}

/// What a user mount needs before `fusermount3` is asked: `/dev/fuse` open
/// to the user, the helper installed and setuid root, and `user_allow_other` if `allow_other` is
/// asked for (`fusermount3` would refuse it with a terse message).
fn check_user_mount(opts: &MountConfig) -> Result<(), MountError> {
    user_mount::can_open_device(Path::new("/dev/fuse")).map_err(MountError::FuseDeviceDenied)?;
    let binary = user_mount::fusermount3().ok_or(MountError::NoFusermount)?;
    if !user_mount::is_setuid_root(&binary) {
        return Err(MountError::FusermountNotSetuid(binary));
    }
    if opts.allow_other {
        // An unreadable fuse.conf is fusermount3's to report.
        let conf = FuseConf::read().unwrap_or_default();
        if !conf.user_allow_other {
            return Err(MountError::AllowOtherNotEnabled);
        }
    }
    Ok(())
}

/// Checks and prepares the mountpoint; returns its canonical path.
fn prepare(mountpoint: &Path, source: &Path) -> Result<PathBuf, MountError> {
    let path = || mountpoint.to_path_buf();
    if !source.is_dir() {
        return Err(MountError::SourceNotDir(source.to_path_buf()));
    }
    let source_dir = source
        .canonicalize()
        .unwrap_or_else(|_| source.to_path_buf());
    let overlaps = |mountpoint: &Path| {
        source_dir.starts_with(mountpoint) || mountpoint.starts_with(&source_dir)
    };
    // Checked before creating anything, on the path as given...
    if let Ok(absolute) = std::path::absolute(mountpoint) {
        if overlaps(&absolute) {
            return Err(MountError::Overlaps {
                mountpoint: absolute,
                source_dir,
            });
        }
    }
    let mut cleared = false;
    let canonical = loop {
        match probe(mountpoint) {
            Ok(canonical) => break canonical,
            Err(Probe::Stale) if !cleared => {
                tracing::warn!(
                    mountpoint = %mountpoint.display(),
                    "stale mount found (Transport endpoint is not connected): a previous run was killed; clearing it"
                );
                clear_stale(mountpoint)?;
                cleared = true;
            }
            Err(Probe::Stale) => {
                return Err(MountError::StaleMount {
                    path: path(),
                    detail: "still not connected after clearing".into(),
                })
            }
            Err(Probe::Fail(err)) => return Err(err),
        }
    };
    // ... and again with symlinks resolved.
    if overlaps(&canonical) {
        return Err(MountError::Overlaps {
            mountpoint: canonical,
            source_dir,
        });
    }
    let mut entries = std::fs::read_dir(&canonical).map_err(|source| MountError::Mountpoint {
        path: path(),
        source,
    })?;
    if entries.next().is_some() {
        return Err(MountError::NotEmpty(canonical));
    }
    Ok(canonical)
}

enum Probe {
    /// A dead FUSE mount (its process was killed).
    Stale,
    Fail(MountError),
}

fn is_stale(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ENOTCONN | libc::ECONNABORTED)
    )
}

/// The mountpoint's canonical path once it is a usable directory: created
/// if missing, refused if it is not a directory or already mounted.
fn probe(mountpoint: &Path) -> Result<PathBuf, Probe> {
    let path = || mountpoint.to_path_buf();
    let fail = |source: io::Error| {
        if is_stale(&source) {
            Probe::Stale
        } else {
            Probe::Fail(MountError::Mountpoint {
                path: path(),
                source,
            })
        }
    };
    match std::fs::metadata(mountpoint) {
        Ok(md) if !md.is_dir() => return Err(Probe::Fail(MountError::MountpointNotDir(path()))),
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(mountpoint).map_err(|source| {
                Probe::Fail(MountError::CreateMountpoint {
                    path: path(),
                    source,
                })
            })?;
            tracing::info!(mountpoint = %mountpoint.display(), "created mountpoint");
        }
        Err(err) => return Err(fail(err)),
    }
    let canonical = mountpoint.canonicalize().map_err(fail)?;
    if let Some((fstype, device)) = mounted_at(&canonical) {
        // The kernel may answer stat from its cache for a while after the
        // process died; statfs always asks the process.
        if fstype == "fuse" || fstype.starts_with("fuse.") {
            match statfs_with_timeout(&canonical, Duration::from_secs(2)) {
                Some(Err(err)) if is_stale(&err) => return Err(Probe::Stale),
                None => {
                    return Err(Probe::Fail(MountError::NotResponding(canonical)));
                }
                _ => {}
            }
        }
        return Err(Probe::Fail(MountError::AlreadyMounted {
            path: canonical,
            fstype,
            device,
        }));
    }
    Ok(canonical)
}

/// `statvfs(path)`, or `None` if it did not answer within `timeout` (a hung
/// FUSE process; the probing thread is left behind).
fn statfs_with_timeout(path: &Path, timeout: Duration) -> Option<io::Result<()>> {
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: valid C string and a buffer of the right type.
        let result = if unsafe { libc::statvfs(c_path.as_ptr(), st.as_mut_ptr()) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        };
        let _ = tx.send(result);
    });
    rx.recv_timeout(timeout).ok()
}

/// Clears a stale mount: `umount2(MNT_DETACH)` as root, else `fusermount3
/// -uz` (which clears only mounts of the same user).
fn clear_stale(mountpoint: &Path) -> Result<(), MountError> {
    let detached = if user_mount::mounts_as_user() {
        user_mount::detach(mountpoint)
    } else {
        umount(mountpoint, libc::MNT_DETACH)
            .map_err(|err| io::Error::other(format!("umount2: {err}")))
    };
    detached.map_err(|err| MountError::StaleMount {
        path: mountpoint.to_path_buf(),
        detail: err.to_string(),
    })
}

fn umount(path: &Path, flags: i32) -> io::Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `c_path` is a valid NUL-terminated string.
    if unsafe { libc::umount2(c_path.as_ptr(), flags) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn mount_error(path: &Path, err: io::Error) -> MountError {
    let path = path.to_path_buf();
    match err.raw_os_error() {
        Some(libc::ENOENT) if !Path::new("/dev/fuse").exists() => MountError::NoFuseDevice,
        Some(libc::ENODEV) => MountError::NoFuseKernel(err),
        Some(libc::EPERM | libc::EACCES) => MountError::NotPermitted { path, source: err },
        _ => MountError::Mount { path, source: err },
    }
}

/// Whether the topmost mount at `path` is an xearthlayer mount (so that
/// unmounting never takes down something mounted there since).
fn is_ours(path: &Path) -> bool {
    mounted_at(path).is_some_and(|(fstype, device)| fstype == "fuse" && device == FS_NAME)
}

/// The filesystem type and device of the topmost mount at `path`, from
/// `/proc/self/mountinfo`.
fn mounted_at(path: &Path) -> Option<(String, String)> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    find_mount(&mountinfo, path.as_os_str().as_bytes())
}

fn find_mount(mountinfo: &str, path: &[u8]) -> Option<(String, String)> {
    mountinfo
        .lines()
        .rev()
        .filter_map(mount_line)
        .find(|(mount_point, ..)| mount_point == path)
        .map(|(_, fstype, device)| (fstype, device))
}

/// The mountpoint, filesystem type and device of one mountinfo line.
fn mount_line(line: &str) -> Option<(Vec<u8>, String, String)> {
    // id parent major:minor root mountpoint options [optional...] - fstype device superopts
    let mut fields = line.split(' ');
    let mount_point = fields.nth(4)?;
    let mut rest = fields.skip_while(|f| *f != "-").skip(1);
    let fstype = rest.next()?;
    let device = rest.next().unwrap_or("");
    Some((
        unescape(mount_point),
        unescape_str(fstype),
        unescape_str(device),
    ))
}

/// How a mount found in the mount table is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountHealth {
    /// Its process answers.
    Serving,
    /// Its process is gone ("Transport endpoint is not connected").
    Stale,
    /// Its process did not answer within two seconds.
    NotResponding,
}

/// Every xearthlayer mount in this mount namespace and how it is doing,
/// for diagnostics (`xearthlayer doctor`).
pub fn xearthlayer_mounts() -> Vec<(PathBuf, MountHealth)> {
    use std::os::unix::ffi::OsStringExt;
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    mountinfo
        .lines()
        .filter_map(mount_line)
        .filter(|(_, fstype, device)| fstype == "fuse" && device == FS_NAME)
        .map(|(mount_point, ..)| {
            let path = PathBuf::from(std::ffi::OsString::from_vec(mount_point));
            let health = match statfs_with_timeout(&path, Duration::from_secs(2)) {
                None => MountHealth::NotResponding,
                Some(Err(err)) if is_stale(&err) => MountHealth::Stale,
                Some(_) => MountHealth::Serving,
            };
            (path, health)
        })
        .collect()
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

fn unescape_str(field: &str) -> String {
    String::from_utf8_lossy(&unescape(field)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 0:21 / /proc rw,nosuid - proc proc rw
40 22 0:35 / /mnt/x\\040y rw,relatime shared:1 - fuse xearthlayer rw,user_id=0
41 22 0:36 / /mnt/x\\040y rw,relatime - tmpfs tmpfs rw
";

    #[test]
    fn finds_the_topmost_mount_with_escapes() {
        assert_eq!(
            find_mount(MOUNTINFO, b"/mnt/x y"),
            Some(("tmpfs".into(), "tmpfs".into()))
        );
        assert_eq!(find_mount(MOUNTINFO, b"/mnt/x"), None);
        assert_eq!(
            find_mount(MOUNTINFO, b"/proc"),
            Some(("proc".into(), "proc".into()))
        );
    }

    #[test]
    fn refuses_bad_mountpoints_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("pkg");
        std::fs::create_dir(&source).unwrap();
        std::fs::write(source.join("a.ter"), "x").unwrap();

        let file = source.join("a.ter");
        let err = prepare(&dir.path().join("mnt"), &file).unwrap_err();
        assert!(matches!(err, MountError::SourceNotDir(_)), "{err}");

        let outside = dir.path().join("file");
        std::fs::write(&outside, "x").unwrap();
        let err = prepare(&outside, &source).unwrap_err();
        assert!(matches!(err, MountError::MountpointNotDir(_)), "{err}");

        let err = prepare(&source, &source).unwrap_err();
        assert!(matches!(err, MountError::Overlaps { .. }), "{err}");
        let err = prepare(&source.join("sub"), &source).unwrap_err();
        assert!(matches!(err, MountError::Overlaps { .. }), "{err}");

        let busy = dir.path().join("busy");
        std::fs::create_dir(&busy).unwrap();
        std::fs::write(busy.join("f"), "x").unwrap();
        let err = prepare(&busy, &source).unwrap_err();
        assert!(matches!(err, MountError::NotEmpty(_)), "{err}");
        assert!(err.to_string().contains("empty directory"));

        let err = prepare(Path::new("/proc"), &source).unwrap_err();
        assert!(matches!(err, MountError::AlreadyMounted { .. }), "{err}");
        assert!(err.to_string().contains("unmount it first"));

        // A missing mountpoint is created.
        let fresh = dir.path().join("a/b/mnt");
        assert_eq!(
            prepare(&fresh, &source).unwrap(),
            fresh.canonicalize().unwrap()
        );
    }
}
