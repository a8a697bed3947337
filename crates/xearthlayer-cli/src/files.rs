//! Replacing a file whole: the new contents are written beside it under a
//! temporary name, synced, then renamed over it, so a crash leaves the old
//! file or the new one, never half of either. The temporary name is random
//! and created exclusively: we may run as root in a folder a user owns,
//! and a fixed name would let that user plant a symlink there that root
//! then writes through. An existing file keeps its
//! owner: we often run as root while the file (X-Plane's
//! `scenery_packs.ini`, a user's configuration) belongs to the user, and
//! X-Plane must be able to rewrite it.

use std::fs::{self, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Writes `contents` to `path` atomically. `mode`: the new file's
/// permission bits, or `None` to keep the existing file's (0644 for a new
/// one). A symlink is followed: its target is replaced; but as root, only
/// a symlink owned by root or by its target's owner (the kernel's
/// `protected_symlinks` rule), so that a user cannot point root at a file
/// of someone else's.
pub fn replace(path: &Path, contents: &[u8], mode: Option<u32>) -> io::Result<()> {
    let target = follow(path)?;
    let existing = fs::metadata(&target).ok();
    let mode = mode
        .or(existing.as_ref().map(|md| md.permissions().mode() & 0o7777))
        .unwrap_or(0o644);
    let owner = existing.as_ref().map(|md| (md.uid(), md.gid()));
    write_in_place_of(&target, contents, mode, owner)
}

/// `path`, or the file it names if it is a symlink this process may follow
/// (see [`replace`]).
fn follow(path: &Path) -> io::Result<PathBuf> {
    let link = match fs::symlink_metadata(path) {
        Ok(md) if md.file_type().is_symlink() => md,
        _ => return Ok(path.to_path_buf()),
    };
    let target = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root && link.uid() != 0 {
        let target_owner = fs::metadata(&target).map(|md| md.uid()).ok();
        if target_owner != Some(link.uid()) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} is a symlink of uid {} to a file it does not own; as root it is not followed",
                    path.display(),
                    link.uid()
                ),
            ));
        }
    }
    Ok(target)
}

/// Puts a file holding `contents` (permission bits `mode`, owned by
/// `owner` if given) at `path`, replacing whatever entry is there (a
/// symlink itself, not its target). The new file is made beside it under a
/// random name that nobody else can have made (`O_EXCL`, as `tempfile`
/// creates), synced, then renamed into place.
pub fn write_in_place_of(
    path: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir)?;
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )
    })?;
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    let mut file = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".xel-tmp")
        .tempfile_in(&dir)?;
    // Created 0600 whatever the umask: set the bits asked for.
    file.as_file()
        .set_permissions(Permissions::from_mode(mode))?;
    if let Some((uid, gid)) = owner {
        let own = file.as_file().metadata()?;
        if (own.uid(), own.gid()) != (uid, gid) {
            std::os::unix::fs::fchown(file.as_file(), Some(uid), Some(gid))?;
        }
    }
    file.write_all(contents)?;
    file.as_file().sync_all()?;
    // On failure the temporary file is deleted when `file` drops.
    file.persist(path).map_err(|e| e.error)?;
    // The rename is durable once the folder is synced.
    fs::File::open(&dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_keeping_or_setting_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b.ini");
        replace(&path, b"one", Some(0o600)).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::set_permissions(&path, Permissions::from_mode(0o640)).unwrap();
        replace(&path, b"two", None).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        // Nothing left beside it.
        assert_eq!(fs::read_dir(dir.path().join("a")).unwrap().count(), 1);
    }

    #[test]
    fn a_symlink_planted_beside_the_file_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        fs::set_permissions(&victim, Permissions::from_mode(0o600)).unwrap();
        let path = dir.path().join("b.ini");
        // Where a fixed temporary name would be.
        std::os::unix::fs::symlink(&victim, dir.path().join(".b.ini.xel-tmp")).unwrap();
        replace(&path, b"new", Some(0o644)).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert_eq!(
            fs::metadata(&victim).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn write_in_place_of_replaces_a_symlink_itself() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let link = dir.path().join("backup");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        write_in_place_of(&link, b"copy", 0o644, None).unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().is_file());
        assert_eq!(fs::read(&link).unwrap(), b"copy");
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
    }

    #[test]
    fn as_root_a_users_symlink_to_a_file_it_does_not_own_is_refused() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let link = dir.path().join("scenery_packs.ini");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
        assert!(replace(&link, b"new", None).is_err());
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
    }

    #[test]
    fn follows_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.ini");
        fs::write(&target, "old").unwrap();
        let link = dir.path().join("link.ini");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        replace(&link, b"new", None).unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(&target).unwrap(), b"new");
    }
}
