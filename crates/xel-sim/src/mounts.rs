//! What tests that mount need to know about the machine: whether they can
//! mount at all (and the skip policy when they cannot), whether a path is a
//! mountpoint now, and how to run a command as an unprivileged user.
//!
//! The skip policy: with `XEL_REQUIRE_MOUNT=1` (which `.ci/run` sets) a
//! test that cannot mount fails, so a CI machine without FUSE cannot pass
//! green. Without it the test returns early and says so on the terminal
//! itself, past the test runner's output capture, so that a skip is seen.

use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use xearthlayer::fuse::user_mount;

/// The environment variable that turns a skipped mount test into a failure.
pub const REQUIRE_MOUNT_VAR: &str = "XEL_REQUIRE_MOUNT";
/// The unprivileged user the "as a user" tests run as (`nobody` on Debian).
pub const UNPRIVILEGED_ID: u32 = 65534;

/// Whether this process can mount: `/dev/fuse` present, and root or a
/// setuid `fusermount3` for a user mount. When it cannot, fails the test
/// under `XEL_REQUIRE_MOUNT=1`, else says loudly that it skips.
pub fn can_mount() -> bool {
    match mount_blocker() {
        None => true,
        Some(reason) => skip(&reason),
    }
}

/// Whether this process can run commands as [`UNPRIVILEGED_ID`] that mount
/// through `fusermount3`: it must be root (to switch user with `setpriv`),
/// and `setpriv` and a setuid `fusermount3` must be installed. Same skip
/// policy as [`can_mount`].
pub fn can_mount_as_unprivileged() -> bool {
    let blocker = mount_blocker().or_else(|| {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            Some("switching to an unprivileged user needs root".to_string())
        } else if !on_path("setpriv") {
            Some("setpriv is not installed (util-linux)".to_string())
        } else {
            user_mount_blocker()
        }
    });
    match blocker {
        None => true,
        Some(reason) => skip(&reason),
    }
}

fn mount_blocker() -> Option<String> {
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse is absent".into());
    }
    if user_mount::mounts_as_user() {
        return user_mount_blocker();
    }
    None
}

fn user_mount_blocker() -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata("/dev/fuse").map_or(0, |md| md.permissions().mode());
    if mode & 0o006 != 0o006 {
        return Some(format!(
            "/dev/fuse is {:o}, not open to other users, and fusermount3 opens it with the user's rights (`chmod 0666 /dev/fuse`, as desktops have it; .ci/run does)",
            mode & 0o777
        ));
    }
    match user_mount::fusermount3() {
        None => Some("fusermount3 is not installed (package fuse3)".into()),
        Some(path) if !user_mount::is_setuid_root(&path) => {
            Some(format!("{} is not setuid root", path.display()))
        }
        Some(_) => None,
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Fails under `XEL_REQUIRE_MOUNT=1`; otherwise writes the skip straight to
/// the process's stderr (the test runner captures only `eprintln!`) and
/// returns `false`.
fn skip(reason: &str) -> bool {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a mount test");
    let required = std::env::var_os(REQUIRE_MOUNT_VAR).is_some_and(|v| v != "0" && !v.is_empty());
    assert!(
        !required,
        "{test} cannot mount ({reason}) and {REQUIRE_MOUNT_VAR} is set: this machine must be able to mount"
    );
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED, NOT TESTED: {test}: {reason} (set {REQUIRE_MOUNT_VAR}=1 to make this a failure) ***"
    );
    false
}

/// Whether `path` is a mountpoint in this process's mount namespace.
pub fn is_mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    // mountinfo escapes spaces in paths as \040.
    let want = path.to_string_lossy().replace(' ', "\\040");
    info.lines().any(|l| l.split(' ').nth(4) == Some(&*want))
}

/// A command that runs `program` as [`UNPRIVILEGED_ID`] (user and group,
/// no supplementary groups), through `setpriv`; the caller must be root.
/// Give it a HOME and folders that user owns ([`give_to_unprivileged`]).
pub fn unprivileged_command(program: impl AsRef<OsStr>) -> Command {
    let id = UNPRIVILEGED_ID;
    let mut command = Command::new("setpriv");
    command
        .arg(format!("--reuid={id}"))
        .arg(format!("--regid={id}"))
        .arg("--clear-groups")
        .arg("--")
        .arg(program);
    command
}

/// Hands `path` and everything under it to [`UNPRIVILEGED_ID`], as if that
/// user had made it.
pub fn give_to_unprivileged(path: &Path) -> std::io::Result<()> {
    let id = Some(UNPRIVILEGED_ID);
    std::os::unix::fs::lchown(path, id, id)?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            give_to_unprivileged(&entry?.path())?;
        }
    }
    Ok(())
}
