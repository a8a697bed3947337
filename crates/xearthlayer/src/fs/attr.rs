//! What the filesystem reports about a node: kinds, attributes, directory
//! entries and filesystem statistics, in plain types the FUSE adapter maps
//! one to one onto the kernel's.

use std::ffi::OsString;
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The kind of a node, as `st_mode & S_IFMT` would say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    Directory,
    RegularFile,
    Symlink,
    NamedPipe,
    CharDevice,
    BlockDevice,
    Socket,
}

impl FileKind {
    pub(crate) fn of(file_type: std::fs::FileType) -> Self {
        if file_type.is_dir() {
            FileKind::Directory
        } else if file_type.is_symlink() {
            FileKind::Symlink
        } else if file_type.is_fifo() {
            FileKind::NamedPipe
        } else if file_type.is_char_device() {
            FileKind::CharDevice
        } else if file_type.is_block_device() {
            FileKind::BlockDevice
        } else if file_type.is_socket() {
            FileKind::Socket
        } else {
            FileKind::RegularFile
        }
    }
}

/// Attributes of one node, with the inode number the kernel knows it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub kind: FileKind,
    pub size: u64,
    /// 512-byte blocks.
    pub blocks: u64,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    /// Permission bits (`mode & 0o7777`).
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub blksize: u32,
}

impl Attr {
    /// Attributes of a real file from its `lstat`, under our inode number.
    pub(crate) fn from_metadata(ino: u64, md: &Metadata) -> Self {
        Attr {
            ino,
            kind: FileKind::of(md.file_type()),
            size: md.size(),
            blocks: md.blocks(),
            atime: time(md.atime(), md.atime_nsec()),
            mtime: time(md.mtime(), md.mtime_nsec()),
            ctime: time(md.ctime(), md.ctime_nsec()),
            perm: (md.mode() & 0o7777) as u16,
            nlink: u32::try_from(md.nlink()).unwrap_or(u32::MAX),
            uid: md.uid(),
            gid: md.gid(),
            rdev: md.rdev() as u32,
            blksize: u32::try_from(md.blksize()).unwrap_or(4096),
        }
    }

    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Directory
    }
}

fn time(secs: i64, nsec: i64) -> SystemTime {
    let nsec = nsec.clamp(0, 999_999_999) as u32;
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsec)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
            + Duration::from_nanos(u64::from(nsec))
    }
}

/// One directory entry as `readdir` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: u64,
    pub kind: FileKind,
    pub name: OsString,
    /// Offset to pass to the next `readdir` to continue after this entry.
    pub next_offset: u64,
}

/// One directory entry with its attributes, as `readdirplus` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntryPlus {
    pub entry: DirEntry,
    pub attr: Attr,
}

/// How a file was opened: the handle and the kernel caching it should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    pub fh: u64,
    /// Bypass the page cache: reads arrive with their exact offset and
    /// length. Set for textures: the engine builds only the ranges read
    /// (page-aligned, readahead-widened reads would pull in neighbouring mip
    /// levels), and stand-in bytes served after a failure must not stay in
    /// the page cache when the real imagery arrives later.
    pub direct_io: bool,
}

/// Filesystem statistics (`statfs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatFs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
    pub frsize: u32,
}
