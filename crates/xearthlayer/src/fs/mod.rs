//! The filesystem core: what the mount shows, testable without a kernel.
//!
//! [`OverlayFs`] overlays a scenery package read-only. Real files and
//! directories pass through (attributes from `lstat`, positional reads of
//! the open file); `textures/` always exists and also lists every texture
//! the package's `.ter` files name (see [`crate::package`]); any
//! texture name looked up there that no real file claims is a virtual,
//! read-only file whose bytes come from a [`TextureSource`] (the texture
//! engine).
//!
//! Operations are plain async methods with typed results; errors are
//! [`FsError`]s, each with its errno. The `fuse` module is a thin adapter
//! from the kernel protocol onto these methods.
//!
//! Inside: `index` (the `.ter` scan), `inode` (inode numbers and lookup
//! counts), `handle` (open handles), `dir` (listings), `attr` (the plain
//! types returned), `errors` (each errno's log level and count),
//! `package_dir` (paths resolved from a handle on the package, never
//! through a symlink).

mod attr;
mod dir;
mod errors;
mod handle;
mod inode;
mod observer;
mod package_dir;
#[cfg(test)]
mod tests;

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};

use crate::coord::TextureId;
use crate::metrics::Counter;

pub use crate::package::{PackageIndex as TextureIndex, TEXTURES_DIR};
pub use attr::{Attr, DirEntry, DirEntryPlus, FileKind, Opened, StatFs};
pub use dir::{Readdir, ReaddirPlus};
pub use errors::{ErrorCounts, FsErrors};
pub use inode::{ROOT_INO, TEXTURES_INO};
pub use observer::FsObserver;
use package_dir::PackageDir;

use dir::{DirSnapshot, RealEntry, VirtualEntries};
use handle::{HandleTable, OpenNode};
use inode::{InodeTable, NodeKind};

/// What the filesystem needs from the texture engine.
pub trait TextureSource: Send + Sync + 'static {
    /// Per-open state (keeps what one open file has seen consistent).
    type Handle: Send + Sync + 'static;
    /// Final size of every texture file, known before generation.
    fn texture_size(&self) -> u64;
    /// Called on open of a virtual texture; cheap, no I/O.
    fn open(&self, id: TextureId) -> Self::Handle;
    /// Exactly min(len, size - offset) bytes of the texture (empty at/after EOF). Never fails:
    /// on any error the engine returns fallback bytes.
    fn read(
        &self,
        handle: &Self::Handle,
        offset: u64,
        len: u32,
    ) -> impl std::future::Future<Output = bytes::Bytes> + Send;
}

/// Why a filesystem operation failed; [`FsError::errno`] is what the kernel gets.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("read-only filesystem")]
    ReadOnly,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("bad file handle")]
    BadHandle,
    #[error(transparent)]
    Io(io::Error),
}

impl FsError {
    /// The errno this error is reported to the kernel as.
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::ReadOnly => libc::EROFS,
            FsError::NotDir => libc::ENOTDIR,
            FsError::IsDir => libc::EISDIR,
            FsError::BadHandle => libc::EBADF,
            FsError::Io(err) => err.raw_os_error().unwrap_or(match err.kind() {
                io::ErrorKind::NotFound => libc::ENOENT,
                io::ErrorKind::NotADirectory => libc::ENOTDIR,
                io::ErrorKind::IsADirectory => libc::EISDIR,
                io::ErrorKind::PermissionDenied => libc::EACCES,
                io::ErrorKind::ReadOnlyFilesystem => libc::EROFS,
                _ => libc::EIO,
            }),
        }
    }

    fn errno_io(errno: i32) -> Self {
        FsError::Io(io::Error::from_raw_os_error(errno))
    }
}

impl From<io::Error> for FsError {
    fn from(err: io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::NotFound => FsError::NotFound,
            io::ErrorKind::NotADirectory => FsError::NotDir,
            io::ErrorKind::IsADirectory => FsError::IsDir,
            io::ErrorKind::ReadOnlyFilesystem => FsError::ReadOnly,
            _ => FsError::Io(err),
        }
    }
}

pub type Result<T, E = FsError> = std::result::Result<T, E>;

/// Permission bits of a virtual texture.
const TEXTURE_PERM: u16 = 0o444;
/// Permission bits of a synthesised `textures/`.
const SYNTHETIC_DIR_PERM: u16 = 0o555;

/// The read-only overlay of one scenery package.
pub struct OverlayFs<S: TextureSource> {
    source: PathBuf,
    /// Every path of the package is resolved from this handle.
    package: Arc<PackageDir>,
    textures: S,
    index: TextureIndex,
    inodes: InodeTable,
    handles: HandleTable<OpenNode<S::Handle>>,
    /// Times of synthesised nodes.
    created: SystemTime,
    /// Owner of synthesised nodes: the package root's.
    owner: (u32, u32),
    texture_reads: Counter,
    texture_bytes: Counter,
    file_bytes: Counter,
    errors: FsErrors,
    /// Told of DSF opens and texture reads (the prefetcher), once set.
    observer: std::sync::OnceLock<Arc<dyn FsObserver>>,
}

/// What one mount has served, for the status view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsStats {
    pub texture_reads: u64,
    pub texture_bytes: u64,
    pub file_bytes: u64,
    pub open_handles: usize,
    /// Operations that failed, by errno.
    pub errors: ErrorCounts,
}

impl<S: TextureSource> OverlayFs<S> {
    /// Indexes the package at `source_dir` (see [`TextureIndex`]). Blocking:
    /// from async code call it in `spawn_blocking`.
    pub fn new(source_dir: PathBuf, textures: S) -> Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let not_dir = || {
            FsError::Io(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!(
                    "scenery package {} is not a directory",
                    source_dir.display()
                ),
            ))
        };
        let md = std::fs::metadata(&source_dir).map_err(|err| match err.kind() {
            io::ErrorKind::NotFound => FsError::Io(io::Error::new(
                io::ErrorKind::NotFound,
                format!("scenery package {} does not exist", source_dir.display()),
            )),
            _ => FsError::Io(err),
        })?;
        if !md.is_dir() {
            return Err(not_dir());
        }
        let package = Arc::new(PackageDir::open(&source_dir)?);
        let index = TextureIndex::build(&source_dir)?;
        tracing::info!(
            package = %source_dir.display(),
            textures = index.len(),
            ter_files = index.ter_files(),
            skipped = index.skipped(),
            unreadable = index.unreadable(),
            elapsed_ms = index.elapsed().as_millis() as u64,
            "indexed {} textures from {} .ter files",
            index.len(),
            index.ter_files(),
        );
        if let Ok(md) = std::fs::symlink_metadata(source_dir.join(TEXTURES_DIR)) {
            if !md.is_dir() {
                tracing::warn!(
                    package = %source_dir.display(),
                    "the package's textures entry is not a directory; the mount shows its own textures/ instead"
                );
            }
        }
        Ok(OverlayFs {
            owner: (md.uid(), md.gid()),
            texture_reads: Counter::default(),
            texture_bytes: Counter::default(),
            file_bytes: Counter::default(),
            errors: FsErrors::default(),
            observer: std::sync::OnceLock::new(),
            source: source_dir,
            package,
            textures,
            index,
            inodes: InodeTable::new(),
            handles: HandleTable::new(),
            created: SystemTime::now(),
        })
    }

    /// What this mount has served so far.
    pub fn stats(&self) -> FsStats {
        FsStats {
            texture_reads: self.texture_reads.get(),
            texture_bytes: self.texture_bytes.get(),
            file_bytes: self.file_bytes.get(),
            open_handles: self.open_handles(),
            errors: self.errors.snapshot(),
        }
    }

    /// Where failed operations are logged and counted (the FUSE adapter
    /// sends every error there).
    pub fn errors(&self) -> &FsErrors {
        &self.errors
    }

    pub fn source_dir(&self) -> &Path {
        &self.source
    }

    pub fn index(&self) -> &TextureIndex {
        &self.index
    }

    /// Tells `observer` of what X-Plane reads from now on; only the first
    /// observer set is kept (returns false for later ones).
    pub fn set_observer(&self, observer: Arc<dyn FsObserver>) -> bool {
        self.observer.set(observer).is_ok()
    }

    pub fn texture_source(&self) -> &S {
        &self.textures
    }

    /// Nodes the kernel currently holds (the root and `textures/` included).
    pub fn live_inodes(&self) -> usize {
        self.inodes.len()
    }

    /// Open file and directory handles.
    pub fn open_handles(&self) -> usize {
        self.handles.len()
    }

    /// Looks `name` up in directory `parent`, counting one kernel lookup.
    pub async fn lookup(&self, parent: u64, name: &OsStr) -> Result<Attr> {
        let dir = self.inodes.get(parent).ok_or(FsError::NotFound)?;
        if !dir.kind.is_dir() {
            return Err(FsError::NotDir);
        }
        let rel = match name.as_bytes() {
            b"." => dir.rel.to_path_buf(),
            b".." => dir.rel.parent().unwrap_or(Path::new("")).to_path_buf(),
            b"" => return Err(FsError::NotFound),
            bytes if bytes.contains(&b'/') => return Err(FsError::NotFound),
            _ => dir.rel.join(name),
        };
        let (kind, attr) = self.resolve(&rel).await?;
        let ino = self.inodes.remember(&rel, kind);
        Ok(Attr { ino, ..attr })
    }

    /// Attributes of `ino`.
    pub async fn getattr(&self, ino: u64) -> Result<Attr> {
        let node = self.inodes.get(ino).ok_or(FsError::NotFound)?;
        let attr = match node.kind {
            NodeKind::Texture(_) => self.texture_attr(),
            NodeKind::TexturesDir => self.textures_dir_attr().await,
            NodeKind::Dir | NodeKind::Real => self.lstat(&node.rel).await?,
        };
        Ok(Attr { ino, ..attr })
    }

    /// The kernel dropped `nlookup` lookups of `ino`.
    pub fn forget(&self, ino: u64, nlookup: u64) {
        self.inodes.forget(ino, nlookup);
    }

    /// Opens directory `ino`, taking a snapshot of its listing.
    pub async fn opendir(&self, ino: u64) -> Result<u64> {
        let node = self.inodes.get(ino).ok_or(FsError::NotFound)?;
        if !node.kind.is_dir() {
            return Err(FsError::NotDir);
        }
        let attr = Attr {
            ino,
            ..self.getattr(ino).await?
        };
        let is_textures = node.kind == NodeKind::TexturesDir;
        let (package, rel) = (Arc::clone(&self.package), node.rel.clone());
        let mut real = blocking(
            move || match package.read_dir(&rel).and_then(read_entries) {
                // A package without textures/ still has ours.
                Err(err) if is_textures && err.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
                other => other,
            },
        )
        .await?;
        if ino == ROOT_INO {
            real.retain(|entry| entry.name != TEXTURES_DIR);
            real.insert(
                0,
                RealEntry {
                    name: TEXTURES_DIR.into(),
                    kind: NodeKind::TexturesDir,
                    attr: self.textures_dir_attr().await,
                },
            );
        }
        let virtuals = is_textures.then(|| VirtualEntries {
            names: self.index.names().clone(),
            shadowed: real
                .iter()
                .filter(|entry| entry.name.to_str().is_some_and(|n| self.index.contains(n)))
                .map(|entry| entry.name.clone())
                .collect(),
            attr: self.texture_attr(),
        });
        let parent_ino = match node.rel.parent() {
            Some(parent) => self.inodes.ino_for(parent),
            None => ROOT_INO,
        };
        let snapshot = DirSnapshot {
            ino,
            parent_ino,
            rel: node.rel,
            attr,
            real,
            virtuals,
        };
        Ok(self.handles.insert(OpenNode::Dir(Arc::new(snapshot))))
    }

    /// Entries of open directory `fh` from `offset` on.
    pub fn readdir(&self, ino: u64, fh: u64, offset: u64) -> Result<Readdir<'_>> {
        Ok(Readdir::new(
            &self.inodes,
            self.dir_handle(ino, fh)?,
            offset,
        ))
    }

    /// Entries with attributes of open directory `fh` from `offset` on; each
    /// entry the consumer keeps counts as a kernel lookup (see [`ReaddirPlus`]).
    pub fn readdirplus(&self, ino: u64, fh: u64, offset: u64) -> Result<ReaddirPlus<'_>> {
        Ok(ReaddirPlus::new(
            &self.inodes,
            self.dir_handle(ino, fh)?,
            offset,
        ))
    }

    pub fn releasedir(&self, fh: u64) -> Result<()> {
        match self.handles.remove(fh).as_deref() {
            Some(OpenNode::Dir(_)) => Ok(()),
            _ => Err(FsError::BadHandle),
        }
    }

    /// Opens file `ino` for reading (`flags` as `open(2)` got them).
    pub async fn open(&self, ino: u64, flags: u32) -> Result<Opened> {
        let flags = flags as i32;
        if flags & libc::O_ACCMODE != libc::O_RDONLY || flags & (libc::O_TRUNC | libc::O_CREAT) != 0
        {
            return Err(FsError::ReadOnly);
        }
        let node = self.inodes.get(ino).ok_or(FsError::NotFound)?;
        match node.kind {
            NodeKind::Dir | NodeKind::TexturesDir => Err(FsError::IsDir),
            NodeKind::Texture(id) => {
                let handle = self.textures.open(id);
                let fh = self.handles.insert(OpenNode::Texture { ino, handle });
                Ok(Opened {
                    fh,
                    direct_io: true,
                })
            }
            NodeKind::Real => {
                if let Some(observer) = self.observer.get() {
                    if node.rel.extension() == Some(OsStr::new("dsf")) {
                        observer.dsf_opened(&node.rel);
                    }
                }
                let (package, rel) = (Arc::clone(&self.package), node.rel.clone());
                let file = blocking(move || package.open_file(&rel)).await?;
                let fh = self.handles.insert(OpenNode::Real { ino, file });
                Ok(Opened {
                    fh,
                    direct_io: false,
                })
            }
        }
    }

    /// Reads `size` bytes at `offset` of open file `fh` (fewer only at the end
    /// of the file).
    pub async fn read(&self, ino: u64, fh: u64, offset: u64, size: u32) -> Result<Bytes> {
        let open = self.handles.get(fh).ok_or(FsError::BadHandle)?;
        match &*open {
            OpenNode::Real { ino: open_ino, .. } if *open_ino == ino => {
                let bytes = blocking(move || match &*open {
                    OpenNode::Real { file, .. } => read_at(file, offset, size),
                    _ => unreachable!("checked above"),
                })
                .await?;
                self.file_bytes.add(bytes.len() as u64);
                Ok(bytes)
            }
            OpenNode::Texture {
                ino: open_ino,
                handle,
            } if *open_ino == ino => {
                let size_of_file = self.textures.texture_size();
                let want = size_of_file.saturating_sub(offset).min(u64::from(size)) as usize;
                if let Some(observer) = self.observer.get() {
                    if let Some(NodeKind::Texture(id)) = self.inodes.get(ino).map(|n| n.kind) {
                        observer.texture_read(&id, offset..offset + want as u64);
                    }
                }
                let bytes = self.textures.read(handle, offset, size).await;
                self.texture_reads.incr();
                self.texture_bytes.add(want as u64);
                Ok(exact_len(bytes, want, offset))
            }
            OpenNode::Dir(_) => Err(FsError::IsDir),
            _ => Err(FsError::BadHandle),
        }
    }

    pub fn release(&self, fh: u64) -> Result<()> {
        match self.handles.remove(fh).as_deref() {
            Some(OpenNode::Real { .. } | OpenNode::Texture { .. }) => Ok(()),
            _ => Err(FsError::BadHandle),
        }
    }

    /// Target of symlink `ino`.
    pub async fn readlink(&self, ino: u64) -> Result<OsString> {
        let node = self.inodes.get(ino).ok_or(FsError::NotFound)?;
        if node.kind != NodeKind::Real {
            return Err(FsError::errno_io(libc::EINVAL));
        }
        let (package, rel) = (Arc::clone(&self.package), node.rel.clone());
        let target = blocking(move || package.read_link(&rel)).await?;
        Ok(target.into_os_string())
    }

    /// Statistics of the package's filesystem, with nothing free (read-only).
    pub async fn statfs(&self) -> Result<StatFs> {
        let package = Arc::clone(&self.package);
        let st = blocking(move || package.statvfs()).await?;
        Ok(StatFs {
            blocks: st.f_blocks,
            bfree: 0,
            bavail: 0,
            files: st.f_files,
            ffree: 0,
            bsize: st.f_bsize as u32,
            namelen: st.f_namemax as u32,
            frsize: st.f_frsize as u32,
        })
    }

    /// `access(2)`: writing is never allowed; virtual textures are not executable.
    pub fn access(&self, ino: u64, mask: u32) -> Result<()> {
        let node = self.inodes.get(ino).ok_or(FsError::NotFound)?;
        let mask = mask as i32;
        if mask & libc::W_OK != 0 {
            return Err(FsError::ReadOnly);
        }
        if matches!(node.kind, NodeKind::Texture(_)) && mask & libc::X_OK != 0 {
            return Err(FsError::errno_io(libc::EACCES));
        }
        Ok(())
    }

    /// What `rel` is now, with its attributes (`ino` not yet set).
    async fn resolve(&self, rel: &Path) -> Result<(NodeKind, Attr)> {
        if rel.as_os_str().is_empty() {
            return Ok((NodeKind::Dir, self.lstat(rel).await?));
        }
        if rel == Path::new(TEXTURES_DIR) {
            return Ok((NodeKind::TexturesDir, self.textures_dir_attr().await));
        }
        match self.lstat(rel).await {
            Ok(attr) if attr.is_dir() => Ok((NodeKind::Dir, attr)),
            Ok(attr) => Ok((NodeKind::Real, attr)),
            Err(FsError::NotFound | FsError::NotDir) => {
                // A real file always wins; otherwise any texture name in textures/.
                let in_textures = rel.parent() == Some(Path::new(TEXTURES_DIR));
                let id = rel
                    .file_name()
                    .and_then(OsStr::to_str)
                    .and_then(|name| TextureId::parse(name).ok());
                match id {
                    Some(id) if in_textures => Ok((NodeKind::Texture(id), self.texture_attr())),
                    _ => Err(FsError::NotFound),
                }
            }
            Err(err) => Err(err),
        }
    }

    async fn lstat(&self, rel: &Path) -> Result<Attr> {
        let (package, rel) = (Arc::clone(&self.package), rel.to_path_buf());
        let md = blocking(move || package.symlink_metadata(&rel)).await?;
        Ok(Attr::from_metadata(0, &md))
    }

    /// The real `textures/` if the package has one, else a synthesised one.
    async fn textures_dir_attr(&self) -> Attr {
        match self.lstat(Path::new(TEXTURES_DIR)).await {
            Ok(attr) if attr.is_dir() => Attr {
                ino: TEXTURES_INO,
                ..attr
            },
            _ => Attr {
                ino: TEXTURES_INO,
                kind: FileKind::Directory,
                size: 4096,
                blocks: 8,
                perm: SYNTHETIC_DIR_PERM,
                nlink: 2,
                ..self.synthetic_attr()
            },
        }
    }

    fn texture_attr(&self) -> Attr {
        let size = self.textures.texture_size();
        Attr {
            kind: FileKind::RegularFile,
            size,
            blocks: size.div_ceil(512),
            perm: TEXTURE_PERM,
            ..self.synthetic_attr()
        }
    }

    fn synthetic_attr(&self) -> Attr {
        Attr {
            ino: 0,
            kind: FileKind::RegularFile,
            size: 0,
            blocks: 0,
            atime: self.created,
            mtime: self.created,
            ctime: self.created,
            perm: TEXTURE_PERM,
            nlink: 1,
            uid: self.owner.0,
            gid: self.owner.1,
            rdev: 0,
            blksize: 4096,
        }
    }

    fn dir_handle(&self, ino: u64, fh: u64) -> Result<Arc<DirSnapshot>> {
        let open = self.handles.get(fh).ok_or(FsError::BadHandle)?;
        match &*open {
            OpenNode::Dir(snapshot) if snapshot.ino == ino => Ok(snapshot.clone()),
            OpenNode::Dir(_) => Err(FsError::BadHandle),
            _ => Err(FsError::NotDir),
        }
    }
}

/// Runs blocking file-system work off the async threads.
async fn blocking<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(FsError::from),
        Err(err) => Err(FsError::Io(io::Error::other(err))),
    }
}

/// Reads up to `size` bytes at `offset`, short only at end of file.
fn read_at(file: &std::fs::File, offset: u64, size: u32) -> io::Result<Bytes> {
    // Past any file's end (and past what pread takes: a signed offset).
    if offset
        .checked_add(u64::from(size))
        .is_none_or(|end| end > i64::MAX as u64)
    {
        return Ok(Bytes::new());
    }
    let mut buf = BytesMut::zeroed(size as usize);
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    buf.truncate(filled);
    Ok(buf.freeze())
}

/// Holds the engine to its contract: exactly `want` bytes. A short answer
/// would crash X-Plane, so it is padded (zero BCn blocks are valid black).
fn exact_len(bytes: Bytes, want: usize, offset: u64) -> Bytes {
    use std::cmp::Ordering;
    match bytes.len().cmp(&want) {
        Ordering::Equal => bytes,
        Ordering::Greater => {
            tracing::warn!(
                offset,
                want,
                got = bytes.len(),
                "texture source returned too many bytes"
            );
            bytes.slice(..want)
        }
        Ordering::Less => {
            tracing::error!(
                offset,
                want,
                got = bytes.len(),
                "texture source returned a short read; padding"
            );
            let mut padded = BytesMut::zeroed(want);
            padded[..bytes.len()].copy_from_slice(&bytes);
            padded.freeze()
        }
    }
}

/// Real entries of a directory listing with their `lstat`.
fn read_entries(listing: std::fs::ReadDir) -> io::Result<Vec<RealEntry>> {
    let mut entries = Vec::new();
    for entry in listing {
        let entry = entry?;
        // Vanished since the listing started: skip it.
        let Ok(md) = entry.metadata() else { continue };
        let attr = Attr::from_metadata(0, &md);
        let kind = if attr.is_dir() {
            NodeKind::Dir
        } else {
            NodeKind::Real
        };
        entries.push(RealEntry {
            name: entry.file_name(),
            kind,
            attr,
        });
    }
    entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}
