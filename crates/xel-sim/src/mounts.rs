//! What tests that mount need to know about the machine's mounts: whether
//! they can mount at all, and whether a path is a mountpoint now.

use std::path::Path;

/// Whether this process can mount (root and /dev/fuse). When it cannot,
/// says so loudly: the calling test then returns without testing.
pub fn can_mount() -> bool {
    if !Path::new("/dev/fuse").exists() {
        eprintln!("SKIPPED: /dev/fuse absent");
        return false;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: mounting needs root");
        return false;
    }
    true
}

/// Whether `path` is a mountpoint in this process's mount namespace.
pub fn is_mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    // mountinfo escapes spaces in paths as \040.
    let want = path.to_string_lossy().replace(' ', "\\040");
    info.lines().any(|l| l.split(' ').nth(4) == Some(&*want))
}
