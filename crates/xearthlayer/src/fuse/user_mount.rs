//! Mounting as an ordinary user: what `fusermount3` (the setuid helper of
//! the `fuse3` package) needs and allows, and unmounting through it.
//!
//! A process that is not root cannot call mount(2) for FUSE; it asks
//! `fusermount3` to mount for it, and only `fusermount3` may unmount that
//! mount again (`-u`, or `-uz` to detach a busy one lazily). What a user
//! may ask for is set in `/etc/fuse.conf`: `user_allow_other` lets a user
//! mount with `allow_other`, `mount_max` caps the user mounts (1000 when
//! unset). `fusermount3` opens `/dev/fuse` with the user's own rights, so
//! the device must be open to that user (`0666`, as desktops' udev rules
//! make it). Both `doctor` and [`mount`](super::mount) check all this here.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where `fusermount3` reads its settings.
pub const FUSE_CONF: &str = "/etc/fuse.conf";
/// `fusermount3`'s limit on user mounts when `/etc/fuse.conf` sets none.
pub const DEFAULT_MOUNT_MAX: u32 = 1000;

/// What `/etc/fuse.conf` allows user mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FuseConf {
    /// `user_allow_other`: users may mount with `allow_other`.
    pub user_allow_other: bool,
    /// `mount_max = N`: at most N user FUSE mounts at once.
    pub mount_max: u32,
}

impl Default for FuseConf {
    fn default() -> Self {
        FuseConf {
            user_allow_other: false,
            mount_max: DEFAULT_MOUNT_MAX,
        }
    }
}

impl FuseConf {
    /// Reads [`FUSE_CONF`]; a missing file means the defaults, as for
    /// `fusermount3`.
    pub fn read() -> io::Result<FuseConf> {
        match std::fs::read_to_string(FUSE_CONF) {
            Ok(text) => Ok(FuseConf::parse(&text)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(FuseConf::default()),
            Err(err) => Err(err),
        }
    }

    /// Parses the file as `fusermount3` does: `#` starts a comment, one
    /// setting per line, surrounding blanks ignored.
    pub fn parse(text: &str) -> FuseConf {
        let mut conf = FuseConf::default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line == "user_allow_other" {
                conf.user_allow_other = true;
            } else if let Some(value) = line
                .strip_prefix("mount_max")
                .and_then(|rest| rest.trim_start().strip_prefix('='))
            {
                if let Ok(max) = value.trim().parse() {
                    conf.mount_max = max;
                }
            }
        }
        conf
    }
}

/// Whether this process mounts through `fusermount3` (it is not root).
pub fn mounts_as_user() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() != 0 }
}

/// `fusermount3` on `PATH`, if installed.
pub fn fusermount3() -> Option<PathBuf> {
    which::which("fusermount3").ok()
}

/// Whether this user can open the FUSE device at `path` for reading and
/// writing. `fusermount3` opens it with the user's rights, not root's:
/// desktops make it `0666` (udev), some containers leave it `0600`.
pub fn can_open_device(path: &Path) -> io::Result<()> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map(drop)
}

/// Whether the file at `path` is owned by root and setuid, as
/// `fusermount3` must be to mount for a user.
pub fn is_setuid_root(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).is_ok_and(|md| md.uid() == 0 && md.mode() & 0o4000 != 0)
}

/// Unmounts a user mount: `fusermount3 -u`, and if that fails (busy: files
/// still open) `fusermount3 -uz`, which detaches it at once and lets it go
/// when the last file closes. Returns whether it had to detach lazily.
pub fn unmount(path: &Path) -> io::Result<bool> {
    match run_fusermount3("-u", path) {
        Ok(()) => Ok(false),
        Err(first) => {
            tracing::warn!(mountpoint = %path.display(), error = %first, "unmount failed (busy?); detaching lazily");
            run_fusermount3("-uz", path).map(|()| true)
        }
    }
}

/// Detaches a user mount at once (`fusermount3 -uz`): for a dead mount
/// left by a killed process, and for a last-moment cleanup.
pub fn detach(path: &Path) -> io::Result<()> {
    run_fusermount3("-uz", path)
}

fn run_fusermount3(flags: &str, path: &Path) -> io::Result<()> {
    let binary = fusermount3().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "fusermount3 is not installed (`apt install fuse3`)",
        )
    })?;
    let out = Command::new(binary).arg(flags).arg(path).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "fusermount3 {flags}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fuse_conf_as_fusermount3_does() {
        assert_eq!(FuseConf::parse(""), FuseConf::default());
        let conf = FuseConf::parse(
            "# mount_max = 5\n#user_allow_other\n  user_allow_other  \nmount_max=7 # seven\n",
        );
        assert_eq!(
            conf,
            FuseConf {
                user_allow_other: true,
                mount_max: 7
            }
        );
        let commented = FuseConf::parse("#user_allow_other\nmount_max = x\n");
        assert!(!commented.user_allow_other);
        assert_eq!(commented.mount_max, DEFAULT_MOUNT_MAX);
        assert!(!FuseConf::parse("user_allow_other_too\n").user_allow_other);
    }

    #[test]
    fn setuid_root_is_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        assert!(!is_setuid_root(&file));
        assert!(!is_setuid_root(&dir.path().join("missing")));
    }
}
