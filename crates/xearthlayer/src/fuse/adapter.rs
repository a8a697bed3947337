//! `fuse3::raw::Filesystem` over [`OverlayFs`]: each operation calls the
//! core and maps its result; every error goes through `FuseAdapter::fail`,
//! which has the core log and count it (see [`FsErrors`](crate::fs::FsErrors))
//! and answers its errno. Mutating operations answer `EROFS`.
//!
//! fuse3 calls these methods on the connection runtime (see
//! `connections`); the ones that wait on files or textures run on the
//! service's runtime instead ([`FuseAdapter::on_service`]), where the
//! texture engine and its blocking pool live.

use std::ffi::OsStr;
use std::future::Future;
use std::num::NonZeroU32;
use std::os::unix::ffi::OsStringExt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fuse3::raw::prelude::*;
use fuse3::{Errno, Inode, Result};
use futures_util::stream::{self, Stream};

use crate::fs::{self, Attr, FileKind, FsError, OverlayFs, TextureSource};

use super::MountConfig;

/// `FOPEN_DIRECT_IO` of the kernel ABI (fuse_kernel.h); fuse3 0.10
/// does not export it.
const FOPEN_DIRECT_IO: u32 = 1 << 0;

/// Largest write the kernel may send; sizes fuse3's request buffer. Nothing
/// is ever written, but setxattr and friends travel in the same buffer.
const MAX_WRITE: u32 = 128 * 1024;

/// The fuse3 filesystem: a shared [`OverlayFs`] plus the kernel tuning.
pub struct FuseAdapter<S: TextureSource> {
    fs: Arc<OverlayFs<S>>,
    ttl: Duration,
    max_background: u16,
    congestion_threshold: u16,
    /// The runtime the operations run on (the one that mounted).
    service: tokio::runtime::Handle,
}

impl<S: TextureSource> FuseAdapter<S> {
    pub fn new(
        fs: Arc<OverlayFs<S>>,
        config: &MountConfig,
        service: tokio::runtime::Handle,
    ) -> Self {
        FuseAdapter {
            fs,
            service,
            ttl: config.ttl,
            max_background: config.max_background,
            congestion_threshold: config.congestion_threshold.min(config.max_background),
        }
    }

    /// The one error path: logged and counted by errno, then answered.
    fn fail(&self, op: &'static str, err: FsError) -> Errno {
        Errno::from(self.fs.errors().record(op, &err))
    }

    fn read_only<T>(&self, op: &'static str) -> Result<T> {
        Err(self.fail(op, FsError::ReadOnly))
    }

    /// Runs `op` of the core on the service's runtime and maps its error.
    async fn on_service<T, F>(
        &self,
        name: &'static str,
        op: impl FnOnce(Arc<OverlayFs<S>>) -> F,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = fs::Result<T>> + Send + 'static,
    {
        match self.service.spawn(op(Arc::clone(&self.fs))).await {
            Ok(result) => result.map_err(|e| self.fail(name, e)),
            Err(err) => {
                tracing::error!(op = name, %err, "filesystem operation did not complete");
                Err(Errno::from(libc::EIO))
            }
        }
    }

    fn entry(&self, attr: &Attr) -> ReplyEntry {
        ReplyEntry {
            ttl: self.ttl,
            attr: file_attr(attr),
            generation: 0,
        }
    }
}

fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::Directory => FileType::Directory,
        FileKind::RegularFile => FileType::RegularFile,
        FileKind::Symlink => FileType::Symlink,
        FileKind::NamedPipe => FileType::NamedPipe,
        FileKind::CharDevice => FileType::CharDevice,
        FileKind::BlockDevice => FileType::BlockDevice,
        FileKind::Socket => FileType::Socket,
    }
}

fn file_attr(attr: &Attr) -> FileAttr {
    FileAttr {
        ino: attr.ino,
        size: attr.size,
        blocks: attr.blocks,
        atime: attr.atime.into(),
        mtime: attr.mtime.into(),
        ctime: attr.ctime.into(),
        kind: file_type(attr.kind),
        perm: attr.perm,
        nlink: attr.nlink,
        uid: attr.uid,
        gid: attr.gid,
        rdev: attr.rdev,
        blksize: attr.blksize,
    }
}

impl<S: TextureSource> Filesystem for FuseAdapter<S> {
    async fn init(&self, _req: Request) -> Result<ReplyInit> {
        let mut reply = ReplyInit::new(NonZeroU32::new(MAX_WRITE).expect("non-zero"));
        // The kernel defaults (12 / 9) throttle concurrent reads and readahead.
        reply.max_background = Some(self.max_background);
        reply.congestion_threshold = Some(self.congestion_threshold);
        tracing::debug!(
            max_background = self.max_background,
            congestion_threshold = self.congestion_threshold,
            "fuse session initialised"
        );
        Ok(reply)
    }

    async fn destroy(&self, _req: Request) {
        tracing::debug!("fuse session destroyed");
    }

    async fn lookup(&self, _req: Request, parent: Inode, name: &OsStr) -> Result<ReplyEntry> {
        let name = name.to_os_string();
        let attr = self
            .on_service(
                "lookup",
                move |fs| async move { fs.lookup(parent, &name).await },
            )
            .await?;
        Ok(self.entry(&attr))
    }

    async fn forget(&self, _req: Request, inode: Inode, nlookup: u64) {
        self.fs.forget(inode, nlookup);
    }

    async fn batch_forget(&self, _req: Request, inodes: &[(Inode, u64)]) {
        for &(inode, nlookup) in inodes {
            self.fs.forget(inode, nlookup);
        }
    }

    async fn getattr(
        &self,
        _req: Request,
        inode: Inode,
        _fh: Option<u64>,
        _flags: u32,
    ) -> Result<ReplyAttr> {
        let attr = self
            .on_service("getattr", move |fs| async move { fs.getattr(inode).await })
            .await?;
        Ok(ReplyAttr {
            ttl: self.ttl,
            attr: file_attr(&attr),
        })
    }

    async fn setattr(
        &self,
        _req: Request,
        _inode: Inode,
        _fh: Option<u64>,
        _set_attr: SetAttr,
    ) -> Result<ReplyAttr> {
        self.read_only("setattr")
    }

    async fn readlink(&self, _req: Request, inode: Inode) -> Result<ReplyData> {
        let target = self
            .on_service(
                "readlink",
                move |fs| async move { fs.readlink(inode).await },
            )
            .await?;
        Ok(ReplyData {
            data: Bytes::from(target.into_vec()),
        })
    }

    async fn symlink(
        &self,
        _req: Request,
        _parent: Inode,
        _name: &OsStr,
        _link: &OsStr,
    ) -> Result<ReplyEntry> {
        self.read_only("symlink")
    }

    async fn mknod(
        &self,
        _req: Request,
        _parent: Inode,
        _name: &OsStr,
        _mode: u32,
        _rdev: u32,
    ) -> Result<ReplyEntry> {
        self.read_only("mknod")
    }

    async fn mkdir(
        &self,
        _req: Request,
        _parent: Inode,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
    ) -> Result<ReplyEntry> {
        self.read_only("mkdir")
    }

    async fn unlink(&self, _req: Request, _parent: Inode, _name: &OsStr) -> Result<()> {
        self.read_only("unlink")
    }

    async fn rmdir(&self, _req: Request, _parent: Inode, _name: &OsStr) -> Result<()> {
        self.read_only("rmdir")
    }

    async fn rename(
        &self,
        _req: Request,
        _parent: Inode,
        _name: &OsStr,
        _new_parent: Inode,
        _new_name: &OsStr,
    ) -> Result<()> {
        self.read_only("rename")
    }

    async fn rename2(
        &self,
        _req: Request,
        _parent: Inode,
        _name: &OsStr,
        _new_parent: Inode,
        _new_name: &OsStr,
        _flags: u32,
    ) -> Result<()> {
        self.read_only("rename2")
    }

    async fn link(
        &self,
        _req: Request,
        _inode: Inode,
        _new_parent: Inode,
        _new_name: &OsStr,
    ) -> Result<ReplyEntry> {
        self.read_only("link")
    }

    async fn open(&self, _req: Request, inode: Inode, flags: u32) -> Result<ReplyOpen> {
        let opened = self
            .on_service("open", move |fs| async move { fs.open(inode, flags).await })
            .await?;
        let flags = if opened.direct_io { FOPEN_DIRECT_IO } else { 0 };
        Ok(ReplyOpen {
            fh: opened.fh,
            flags,
        })
    }

    async fn read(
        &self,
        _req: Request,
        inode: Inode,
        fh: u64,
        offset: u64,
        size: u32,
    ) -> Result<ReplyData> {
        let data = self
            .on_service("read", move |fs| async move {
                fs.read(inode, fh, offset, size).await
            })
            .await?;
        Ok(ReplyData { data })
    }

    #[allow(clippy::too_many_arguments)]
    async fn write(
        &self,
        _req: Request,
        _inode: Inode,
        _fh: u64,
        _offset: u64,
        _data: &[u8],
        _write_flags: u32,
        _flags: u32,
    ) -> Result<ReplyWrite> {
        self.read_only("write")
    }

    async fn statfs(&self, _req: Request, _inode: Inode) -> Result<ReplyStatFs> {
        let st = self
            .on_service("statfs", |fs| async move { fs.statfs().await })
            .await?;
        Ok(ReplyStatFs {
            blocks: st.blocks,
            bfree: st.bfree,
            bavail: st.bavail,
            files: st.files,
            ffree: st.ffree,
            bsize: st.bsize,
            namelen: st.namelen,
            frsize: st.frsize,
        })
    }

    async fn release(
        &self,
        _req: Request,
        _inode: Inode,
        fh: u64,
        _flags: u32,
        _lock_owner: u64,
        _flush: bool,
    ) -> Result<()> {
        self.fs.release(fh).map_err(|e| self.fail("release", e))
    }

    async fn fsync(&self, _req: Request, _inode: Inode, _fh: u64, _datasync: bool) -> Result<()> {
        Ok(())
    }

    async fn setxattr(
        &self,
        _req: Request,
        _inode: Inode,
        _name: &OsStr,
        _value: &[u8],
        _flags: u32,
        _position: u32,
    ) -> Result<()> {
        self.read_only("setxattr")
    }

    async fn getxattr(
        &self,
        _req: Request,
        _inode: Inode,
        _name: &OsStr,
        _size: u32,
    ) -> Result<ReplyXAttr> {
        // No node has extended attributes.
        Err(Errno::from(libc::ENODATA))
    }

    async fn listxattr(&self, _req: Request, _inode: Inode, size: u32) -> Result<ReplyXAttr> {
        Ok(if size == 0 {
            ReplyXAttr::Size(0)
        } else {
            ReplyXAttr::Data(Bytes::new())
        })
    }

    async fn removexattr(&self, _req: Request, _inode: Inode, _name: &OsStr) -> Result<()> {
        self.read_only("removexattr")
    }

    async fn flush(&self, _req: Request, _inode: Inode, _fh: u64, _lock_owner: u64) -> Result<()> {
        Ok(())
    }

    async fn opendir(&self, _req: Request, inode: Inode, _flags: u32) -> Result<ReplyOpen> {
        let fh = self
            .on_service("opendir", move |fs| async move { fs.opendir(inode).await })
            .await?;
        Ok(ReplyOpen { fh, flags: 0 })
    }

    async fn readdir<'a>(
        &'a self,
        _req: Request,
        parent: Inode,
        fh: u64,
        offset: i64,
    ) -> Result<ReplyDirectory<impl Stream<Item = Result<DirectoryEntry>> + Send + 'a>> {
        let entries = self
            .fs
            .readdir(parent, fh, offset.max(0) as u64)
            .map_err(|e| self.fail("readdir", e))?;
        Ok(ReplyDirectory {
            entries: stream::iter(entries.map(|e| {
                Ok(DirectoryEntry {
                    inode: e.ino,
                    kind: file_type(e.kind),
                    name: e.name,
                    offset: e.next_offset as i64,
                })
            })),
        })
    }

    async fn readdirplus<'a>(
        &'a self,
        _req: Request,
        parent: Inode,
        fh: u64,
        offset: u64,
        _lock_owner: u64,
    ) -> Result<ReplyDirectoryPlus<impl Stream<Item = Result<DirectoryEntryPlus>> + Send + 'a>>
    {
        let entries = self
            .fs
            .readdirplus(parent, fh, offset)
            .map_err(|e| self.fail("readdirplus", e))?;
        let ttl = self.ttl;
        // Lazy: the core counts an entry's lookup once fuse3 pulls the next.
        Ok(ReplyDirectoryPlus {
            entries: stream::iter(entries.map(move |e| {
                Ok(DirectoryEntryPlus {
                    inode: e.entry.ino,
                    generation: 0,
                    kind: file_type(e.entry.kind),
                    name: e.entry.name,
                    offset: e.entry.next_offset as i64,
                    attr: file_attr(&e.attr),
                    entry_ttl: ttl,
                    attr_ttl: ttl,
                })
            })),
        })
    }

    async fn releasedir(&self, _req: Request, _inode: Inode, fh: u64, _flags: u32) -> Result<()> {
        self.fs
            .releasedir(fh)
            .map_err(|e| self.fail("releasedir", e))
    }

    async fn fsyncdir(
        &self,
        _req: Request,
        _inode: Inode,
        _fh: u64,
        _datasync: bool,
    ) -> Result<()> {
        Ok(())
    }

    async fn access(&self, _req: Request, inode: Inode, mask: u32) -> Result<()> {
        self.fs
            .access(inode, mask)
            .map_err(|e| self.fail("access", e))
    }

    async fn create(
        &self,
        _req: Request,
        _parent: Inode,
        _name: &OsStr,
        _mode: u32,
        _flags: u32,
    ) -> Result<ReplyCreated> {
        self.read_only("create")
    }

    async fn fallocate(
        &self,
        _req: Request,
        _inode: Inode,
        _fh: u64,
        _offset: u64,
        _length: u64,
        _mode: u32,
    ) -> Result<()> {
        self.read_only("fallocate")
    }

    #[allow(clippy::too_many_arguments)]
    async fn copy_file_range(
        &self,
        _req: Request,
        _inode: Inode,
        _fh_in: u64,
        _off_in: u64,
        _inode_out: Inode,
        _fh_out: u64,
        _off_out: u64,
        _length: u64,
        _flags: u64,
    ) -> Result<ReplyCopyFileRange> {
        self.read_only("copy_file_range")
    }
}
