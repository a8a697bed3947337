//! The package folder as a directory handle, and every path inside it
//! resolved from that handle one component at a time, none of them through
//! a symlink (`openat` with `O_NOFOLLOW`), never by joining strings.
//!
//! The mount shows a symlink of the package as a symlink: the kernel
//! follows it on the reader's side, with the reader's rights. So no path
//! the filesystem resolves itself needs to cross one, and one that does
//! was swapped in after the kernel looked the path up: a folder replaced by
//! a symlink out of the package, to read files elsewhere with this
//! process's rights (root, with `--allow-other`). Such a path fails with
//! `ELOOP` (or `ENOTDIR`) instead of being followed.

use std::ffi::CString;
use std::fs::{File, Metadata, ReadDir};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// An open handle on the package's root folder.
#[derive(Debug)]
pub struct PackageDir {
    root: OwnedFd,
}

impl PackageDir {
    /// Opens the folder at `path` (following symlinks to it: the user
    /// named it).
    pub fn open(path: &Path) -> io::Result<PackageDir> {
        let c_path = c_string(path.as_os_str().as_bytes())?;
        let root = open_at(libc::AT_FDCWD, &c_path, libc::O_PATH | libc::O_DIRECTORY)?;
        Ok(PackageDir { root })
    }

    /// `rel` opened with `flags` (plus `O_NOFOLLOW | O_CLOEXEC`), every
    /// folder on the way opened without following a symlink. `rel` is a
    /// plain relative path (no `..`); empty means the root.
    fn open_rel(&self, rel: &Path, flags: i32) -> io::Result<OwnedFd> {
        let mut parts = Vec::new();
        for part in rel.components() {
            match part {
                Component::Normal(name) => parts.push(c_string(name.as_bytes())?),
                Component::CurDir => {}
                _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
            }
        }
        let Some((last, folders)) = parts.split_last() else {
            return open_at(self.root.as_raw_fd(), c".", flags);
        };
        let mut dir: Option<OwnedFd> = None;
        for folder in folders {
            let at = dir
                .as_ref()
                .map_or(self.root.as_raw_fd(), |d| d.as_raw_fd());
            let opened = open_at(
                at,
                folder,
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            );
            dir = Some(opened.map_err(|e| symlink_is_eloop(e, at, folder))?);
        }
        let at = dir
            .as_ref()
            .map_or(self.root.as_raw_fd(), |d| d.as_raw_fd());
        open_at(at, last, flags | libc::O_NOFOLLOW)
    }

    /// Opens the regular file `rel` for reading; a symlink is refused.
    pub fn open_file(&self, rel: &Path) -> io::Result<File> {
        Ok(File::from(self.open_rel(rel, libc::O_RDONLY)?))
    }

    /// `lstat` of `rel`: a symlink's own attributes.
    pub fn symlink_metadata(&self, rel: &Path) -> io::Result<Metadata> {
        File::from(self.open_rel(rel, libc::O_PATH)?).metadata()
    }

    /// The entries of folder `rel` (each entry's metadata is taken from the
    /// listing's own handle, without following symlinks).
    pub fn read_dir(&self, rel: &Path) -> io::Result<ReadDir> {
        let dir = self.open_rel(rel, libc::O_RDONLY | libc::O_DIRECTORY)?;
        // std lists only by path: this path is our open folder itself.
        std::fs::read_dir(PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())))
    }

    /// The target of symlink `rel`.
    pub fn read_link(&self, rel: &Path) -> io::Result<PathBuf> {
        let link = self.open_rel(rel, libc::O_PATH)?;
        let mut buf = vec![0u8; libc::PATH_MAX as usize];
        // SAFETY: readlinkat of an O_PATH handle on the link itself (empty
        // path), into a buffer of the length given.
        let n = unsafe {
            libc::readlinkat(
                link.as_raw_fd(),
                c"".as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        buf.truncate(n as usize);
        Ok(PathBuf::from(
            <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(buf),
        ))
    }

    /// `statvfs` of the filesystem holding the package.
    pub fn statvfs(&self) -> io::Result<libc::statvfs> {
        let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: fstatvfs of a handle we own into a buffer of the right
        // type; it initialises the buffer when it returns 0.
        if unsafe { libc::fstatvfs(self.root.as_raw_fd(), st.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fstatvfs returned 0.
        Ok(unsafe { st.assume_init() })
    }
}

/// A folder on the way that is a symlink fails its open with `ENOTDIR`;
/// say `ELOOP` instead: a symlink was refused, which is worth a warning.
fn symlink_is_eloop(err: io::Error, dir: RawFd, name: &std::ffi::CStr) -> io::Error {
    if err.raw_os_error() != Some(libc::ENOTDIR) {
        return err;
    }
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstatat with a valid C string into a buffer of the right
    // type; read only when it returns 0.
    let is_link = unsafe {
        libc::fstatat(
            dir,
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        ) == 0
            && st.assume_init().st_mode & libc::S_IFMT == libc::S_IFLNK
    };
    if is_link {
        io::Error::from_raw_os_error(libc::ELOOP)
    } else {
        err
    }
}

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn open_at(dir: RawFd, name: &std::ffi::CStr, flags: i32) -> io::Result<OwnedFd> {
    // SAFETY: openat with a valid C string; a returned descriptor is ours.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
