//! Replacing a file whole: the new contents are written beside it under a
//! temporary name, synced, then renamed over it, so a crash leaves the old
//! file or the new one, never half of either. An existing file keeps its
//! owner: we often run as root while the file (X-Plane's
//! `scenery_packs.ini`, a user's configuration) belongs to the user, and
//! X-Plane must be able to rewrite it.

use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Writes `contents` to `path` atomically. `mode`: the new file's
/// permission bits, or `None` to keep the existing file's (0644 for a new
/// one). A symlink is followed: its target is replaced.
pub fn replace(path: &Path, contents: &[u8], mode: Option<u32>) -> io::Result<()> {
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let existing = fs::metadata(&path).ok();
    let mode = mode
        .or(existing.as_ref().map(|md| md.permissions().mode() & 0o7777))
        .unwrap_or(0o644);
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir)?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )
    })?);
    tmp_name.push(".xel-tmp");
    let tmp = dir.join(tmp_name);
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // `mode` at creation is cut by the umask, and a leftover file keeps its old bits.
        file.set_permissions(Permissions::from_mode(mode))?;
        if let Some(md) = &existing {
            let own = file.metadata()?;
            if (own.uid(), own.gid()) != (md.uid(), md.gid()) {
                std::os::unix::fs::fchown(&file, Some(md.uid()), Some(md.gid()))?;
            }
        }
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, &path)?;
        // The rename is durable once the folder is synced.
        fs::File::open(&dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
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
