//! The filesystem core: what the mount shows, testable without a kernel.
//!
//! [`OverlayFs`] overlays a scenery package, or several as one union (see
//! [`Layers`]), read-only. Real files and directories pass through (attributes from `lstat`, positional reads of
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
//! Inside: `layers` (which package folder each path comes from), `inode`
//! (inode numbers and lookup counts), `handle` (open handles), `dir`
//! (listings), `attr` (the plain types returned), `errors` (each errno's
//! log level and count), `package_dir` (paths resolved from a handle on a
//! package folder, never through a symlink); the `.ter` scan is
//! [`crate::package`].

mod attr;
mod dir;
mod errors;
mod handle;
mod inode;
mod layers;
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
pub use layers::{shadowed_tiles, Layers, ShadowedTile};
pub use observer::FsObserver;
use package_dir::PackageDir;

use dir::{DirSnapshot, RealEntry, VirtualEntries};
use handle::{HandleTable, OpenNode};
use inode::{texture_id, InodeTable, NodeKind};

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

/// The read-only overlay of one scenery package, or of several as one.
pub struct OverlayFs<S: TextureSource> {
    layers: Layers,
    textures: S,
    /// Built at once for one package; for a union, in the background
    /// ([`OverlayFs::indexed`]): lookups never need it, listings of
    /// `textures/` wait for it.
    index: tokio::sync::OnceCell<TextureIndex>,
    /// Where a union keeps its index between runs, if anywhere.
    index_file: Option<PathBuf>,
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
        let owner = package_owner(&source_dir)?;
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
        Ok(OverlayFs::with(
            Layers::single(source_dir),
            textures,
            tokio::sync::OnceCell::new_with(Some(index)),
            owner,
        ))
    }

    /// The packages at `source_dirs` (highest precedence first) as one
    /// filesystem, at once: nothing is read but each folder's attributes.
    /// Their textures are indexed on first need or by [`OverlayFs::indexed`].
    pub fn union(source_dirs: Vec<PathBuf>, textures: S) -> Result<Self> {
        let first = source_dirs.first().ok_or(FsError::NotFound)?;
        let owner = package_owner(first)?;
        for dir in &source_dirs[1..] {
            package_owner(dir)?;
        }
        Ok(OverlayFs::with(
            Layers::union(source_dirs),
            textures,
            tokio::sync::OnceCell::new(),
            owner,
        ))
    }

    fn with(
        layers: Layers,
        textures: S,
        index: tokio::sync::OnceCell<TextureIndex>,
        owner: (u32, u32),
    ) -> Self {
        OverlayFs {
            owner,
            texture_reads: Counter::default(),
            texture_bytes: Counter::default(),
            file_bytes: Counter::default(),
            errors: FsErrors::default(),
            observer: std::sync::OnceLock::new(),
            layers,
            textures,
            index,
            index_file: None,
            inodes: InodeTable::new(),
            handles: HandleTable::new(),
            created: SystemTime::now(),
        }
    }

    /// Keeps a union's index in `file` between runs: packages unchanged
    /// since are not read again (see `PackageIndex::build_union_stored`).
    pub fn with_index_file(mut self, file: PathBuf) -> Self {
        self.index_file = Some(file);
        self
    }

    /// The textures of every package, indexing them first if that is not
    /// done yet (in the blocking pool; one build however many wait).
    pub async fn indexed(&self) -> &TextureIndex {
        self.index
            .get_or_init(|| {
                let roots = self.layers.roots().to_vec();
                let file = self.index_file.clone();
                async move {
                    let built =
                        tokio::task::spawn_blocking(move || index_all(&roots, file.as_deref()))
                            .await;
                    built.unwrap_or_else(|err| {
                        tracing::error!(%err, "indexing the packages failed; textures/ lists only real files");
                        TextureIndex::default()
                    })
                }
            })
            .await
    }
}

/// The owner of package folder `dir`, which must be a directory.
fn package_owner(dir: &Path) -> Result<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(dir).map_err(|err| match err.kind() {
        io::ErrorKind::NotFound => FsError::Io(io::Error::new(
            io::ErrorKind::NotFound,
            format!("scenery package {} does not exist", dir.display()),
        )),
        _ => FsError::Io(err),
    })?;
    if !md.is_dir() {
        return Err(FsError::Io(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("scenery package {} is not a directory", dir.display()),
        )));
    }
    Ok((md.uid(), md.gid()))
}

/// The union of the textures of `roots`; a package that cannot be read
/// adds none (and says so).
fn index_all(roots: &[PathBuf], file: Option<&Path>) -> TextureIndex {
    let index = match file {
        Some(file) => TextureIndex::build_union_stored(roots, file),
        None => TextureIndex::build_union(roots),
    };
    tracing::info!(
        packages = roots.len(),
        textures = index.len(),
        ter_files = index.ter_files(),
        elapsed_ms = index.elapsed().as_millis() as u64,
        "indexed {} textures of {} packages",
        index.len(),
        roots.len(),
    );
    index
}

impl<S: TextureSource> OverlayFs<S> {
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

    /// The package folder (a union's first).
    pub fn source_dir(&self) -> &Path {
        self.layers.primary()
    }

    /// The package folders shown, highest precedence first.
    pub fn source_dirs(&self) -> &[PathBuf] {
        self.layers.roots()
    }

    /// The textures indexed: every one for a single package; for a union,
    /// none until [`OverlayFs::indexed`] has returned.
    pub fn index(&self) -> &TextureIndex {
        static NONE_YET: std::sync::OnceLock<TextureIndex> = std::sync::OnceLock::new();
        self.index
            .get()
            .unwrap_or_else(|| NONE_YET.get_or_init(TextureIndex::default))
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
            NodeKind::Texture => self.texture_attr(),
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
        let listed = match self.layers.list(&node.rel).await {
            // A package without textures/ still has ours.
            Err(err) if is_textures && err.kind() == io::ErrorKind::NotFound => Vec::new(),
            other => other?,
        };
        let mut listed_in = Vec::with_capacity(listed.len());
        for (name, layer) in listed {
            listed_in.push((name, self.layers.dir(layer)?));
        }
        let rel = node.rel.clone();
        let mut real = blocking(move || Ok(with_attributes(&rel, listed_in))).await?;
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
        let virtuals = if is_textures {
            let index = self.indexed().await;
            Some(VirtualEntries {
                index: index.clone(),
                shadowed: real
                    .iter()
                    .filter(|entry| entry.name.to_str().is_some_and(|n| index.contains(n)))
                    .map(|entry| entry.name.clone())
                    .collect(),
                attr: self.texture_attr(),
            })
        } else {
            None
        };
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
            NodeKind::Texture => {
                let id = texture_id(&node.rel).ok_or(FsError::NotFound)?;
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
                let (package, rel) = (self.package_of(&node.rel).await?, node.rel.clone());
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
                    let id = self
                        .inodes
                        .get(ino)
                        .filter(|node| node.kind == NodeKind::Texture)
                        .and_then(|node| texture_id(&node.rel));
                    if let Some(id) = id {
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
        let (package, rel) = (self.package_of(&node.rel).await?, node.rel.clone());
        let target = blocking(move || package.read_link(&rel)).await?;
        Ok(target.into_os_string())
    }

    /// Statistics of the package's filesystem, with nothing free (read-only).
    pub async fn statfs(&self) -> Result<StatFs> {
        let package = self.layers.dir(0)?;
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
        if node.kind == NodeKind::Texture && mask & libc::X_OK != 0 {
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
                if in_textures && texture_id(rel).is_some() {
                    Ok((NodeKind::Texture, self.texture_attr()))
                } else {
                    Err(FsError::NotFound)
                }
            }
            Err(err) => Err(err),
        }
    }

    /// The package folder the mount's `rel` comes from.
    async fn package_of(&self, rel: &Path) -> Result<Arc<PackageDir>> {
        let layer = self.layers.locate(rel).await?.ok_or(FsError::NotFound)?;
        Ok(self.layers.dir(layer)?)
    }

    async fn lstat(&self, rel: &Path) -> Result<Attr> {
        let (package, rel) = (self.package_of(rel).await?, rel.to_path_buf());
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

/// The real entries of directory `rel` (each name with the package folder
/// it comes from) with their `lstat`, in the order given.
fn with_attributes(rel: &Path, listed: Vec<(OsString, Arc<PackageDir>)>) -> Vec<RealEntry> {
    let mut entries = Vec::with_capacity(listed.len());
    for (name, package) in listed {
        // Vanished since the listing: skip it.
        let Ok(md) = package.symlink_metadata(&rel.join(&name)) else {
            continue;
        };
        let attr = Attr::from_metadata(0, &md);
        let kind = if attr.is_dir() {
            NodeKind::Dir
        } else {
            NodeKind::Real
        };
        entries.push(RealEntry { name, kind, attr });
    }
    entries
}
