//! Unit tests of the filesystem core against a fake texture source and a
//! temporary package; no kernel involved.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

const TEX_A: &str = "25264_10368_BI16.dds";
const TEX_B: &str = "25264_10384_BI16.dds";
/// Parses as a texture but no .ter file names it.
const TEX_UNINDEXED: &str = "25280_10368_GO217.dds";

/// Deterministic texture bytes: byte at offset `o` is `o % 251`.
struct Fake {
    size: u64,
    opens: AtomicUsize,
    reads: AtomicUsize,
    /// Serve this many bytes fewer than asked (to test the contract guard).
    short_by: usize,
}

impl Fake {
    fn new(size: u64) -> Self {
        Fake {
            size,
            opens: AtomicUsize::new(0),
            reads: AtomicUsize::new(0),
            short_by: 0,
        }
    }
}

fn pattern(offset: u64, len: u64) -> Vec<u8> {
    (offset..offset + len).map(|o| (o % 251) as u8).collect()
}

impl TextureSource for Fake {
    type Handle = TextureId;

    fn texture_size(&self) -> u64 {
        self.size
    }

    fn open(&self, id: TextureId) -> TextureId {
        self.opens.fetch_add(1, Ordering::SeqCst);
        id
    }

    fn read(
        &self,
        _handle: &TextureId,
        offset: u64,
        len: u32,
    ) -> impl std::future::Future<Output = Bytes> + Send {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let end = offset.saturating_add(u64::from(len)).min(self.size);
        let start = offset.min(end);
        let mut bytes = pattern(start, end - start);
        bytes.truncate(bytes.len().saturating_sub(self.short_by));
        async move { Bytes::from(bytes) }
    }
}

const SIZE: u64 = 11_184_952;

struct Package {
    dir: tempfile::TempDir,
    dsf: Vec<u8>,
}

fn package(with_textures_dir: bool) -> Package {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("terrain")).unwrap();
    std::fs::create_dir_all(root.join("Earth nav data/+40-010")).unwrap();
    std::fs::write(
        root.join("terrain/25264_10368_BI16.ter"),
        format!(
            "A\n800\nTERRAIN\n\nLOAD_CENTER 47.50512 -5.62500 2443 4096\n\
             BASE_TEX_NOWRAP ../textures/{TEX_A}\nNO_ALPHA\n"
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("terrain/25264_10384_BI16_sea.ter"),
        format!("A\n800\nTERRAIN\n\nBASE_TEX ../textures/{TEX_B}\n"),
    )
    .unwrap();
    std::fs::write(root.join("terrain/water_mask.png"), b"\x89PNG fake").unwrap();
    let dsf: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(root.join("Earth nav data/+40-010/+47-006.dsf"), &dsf).unwrap();
    std::os::unix::fs::symlink("terrain/25264_10368_BI16.ter", root.join("link.ter")).unwrap();
    if with_textures_dir {
        std::fs::create_dir(root.join("textures")).unwrap();
        // A real file shadows the indexed texture of the same name.
        std::fs::write(root.join("textures").join(TEX_A), b"real dds").unwrap();
        std::fs::write(root.join("textures/readme.txt"), b"hello").unwrap();
    }
    Package { dir, dsf }
}

fn overlay(pkg: &Package) -> OverlayFs<Fake> {
    OverlayFs::new(pkg.dir.path().to_path_buf(), Fake::new(SIZE)).unwrap()
}

/// Looks up a path from the root, one component at a time.
async fn walk(fs: &OverlayFs<Fake>, path: &str) -> Result<Attr> {
    let mut attr = fs.getattr(ROOT_INO).await?;
    for part in path.split('/') {
        attr = fs.lookup(attr.ino, OsStr::new(part)).await?;
    }
    Ok(attr)
}

async fn list(fs: &OverlayFs<Fake>, ino: u64) -> BTreeMap<String, DirEntry> {
    let fh = fs.opendir(ino).await.unwrap();
    let entries = fs
        .readdir(ino, fh, 0)
        .unwrap()
        .map(|e| (e.name.to_string_lossy().into_owned(), e))
        .collect();
    fs.releasedir(fh).unwrap();
    entries
}

#[tokio::test]
async fn textures_dir_is_synthesised_and_lists_indexed_textures() {
    let pkg = package(false);
    let fs = overlay(&pkg);
    assert_eq!(fs.index().len(), 2);

    let root = list(&fs, ROOT_INO).await;
    let names: Vec<_> = root.keys().cloned().collect();
    assert_eq!(
        names,
        [
            ".",
            "..",
            "Earth nav data",
            "link.ter",
            "terrain",
            "textures"
        ]
    );
    assert_eq!(root["textures"].ino, TEXTURES_INO);
    assert_eq!(root["textures"].kind, FileKind::Directory);

    let textures = walk(&fs, "textures").await.unwrap();
    assert_eq!(textures.ino, TEXTURES_INO);
    assert!(textures.is_dir());
    assert_eq!(textures.perm, 0o555);

    let listing = list(&fs, TEXTURES_INO).await;
    let names: Vec<_> = listing.keys().cloned().collect();
    assert_eq!(names, [".", "..", TEX_A, TEX_B]);
    assert_eq!(listing[TEX_A].kind, FileKind::RegularFile);
    // The listed inode is the one lookup gives.
    let a = walk(&fs, &format!("textures/{TEX_A}")).await.unwrap();
    assert_eq!(listing[TEX_A].ino, a.ino);
}

#[tokio::test]
async fn real_files_win_over_virtual_ones() {
    let pkg = package(true);
    let fs = overlay(&pkg);
    let listing = list(&fs, TEXTURES_INO).await;
    let names: Vec<_> = listing.keys().cloned().collect();
    assert_eq!(names, [".", "..", TEX_A, TEX_B, "readme.txt"]);

    let a = walk(&fs, &format!("textures/{TEX_A}")).await.unwrap();
    assert_eq!(a.size, 8, "the real file, not the virtual texture");
    let fh = fs.open(a.ino, libc::O_RDONLY as u32).await.unwrap();
    assert!(!fh.direct_io);
    assert_eq!(
        &fs.read(a.ino, fh.fh, 0, 100).await.unwrap()[..],
        b"real dds"
    );
    fs.release(fh.fh).unwrap();
    assert_eq!(fs.texture_source().opens.load(Ordering::SeqCst), 0);

    let b = walk(&fs, &format!("textures/{TEX_B}")).await.unwrap();
    assert_eq!(b.size, SIZE);
}

#[tokio::test]
async fn any_texture_name_is_a_virtual_file_other_names_are_not() {
    let pkg = package(false);
    let fs = overlay(&pkg);
    let attr = walk(&fs, &format!("textures/{TEX_UNINDEXED}"))
        .await
        .unwrap();
    assert_eq!(attr.kind, FileKind::RegularFile);
    assert_eq!(attr.perm, 0o444);
    assert_eq!(attr.size, SIZE);
    assert_eq!(fs.getattr(attr.ino).await.unwrap(), attr);

    for bad in [
        "textures/readme.txt",
        "textures/25264_10368_BI16.png",
        "terrain/nothing",
    ] {
        assert!(
            matches!(walk(&fs, bad).await, Err(FsError::NotFound)),
            "{bad}"
        );
    }
    // Texture names are only virtual inside textures/.
    assert!(matches!(
        walk(&fs, &format!("terrain/{TEX_A}")).await,
        Err(FsError::NotFound)
    ));
    // Looking up inside a file.
    let png = walk(&fs, "terrain/water_mask.png").await.unwrap();
    assert!(matches!(
        fs.lookup(png.ino, OsStr::new("x")).await,
        Err(FsError::NotDir)
    ));
}

#[tokio::test]
async fn virtual_texture_reads_come_from_the_source() {
    let pkg = package(false);
    let fs = overlay(&pkg);
    let attr = walk(&fs, &format!("textures/{TEX_A}")).await.unwrap();
    let opened = fs.open(attr.ino, libc::O_RDONLY as u32).await.unwrap();
    assert!(opened.direct_io, "textures bypass the page cache");
    assert_eq!(fs.texture_source().opens.load(Ordering::SeqCst), 1);
    for (offset, size) in [
        (0u64, 128u32),
        (1, 4095),
        (11_141_248, 131_072),
        (SIZE - 10, 100),
    ] {
        let got = fs.read(attr.ino, opened.fh, offset, size).await.unwrap();
        let end = (offset + u64::from(size)).min(SIZE);
        assert_eq!(
            &got[..],
            &pattern(offset, end - offset)[..],
            "{offset}+{size}"
        );
    }
    assert!(fs
        .read(attr.ino, opened.fh, SIZE, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(fs
        .read(attr.ino, opened.fh, SIZE + 5, 10)
        .await
        .unwrap()
        .is_empty());
    // A handle is for its own inode only.
    let other = walk(&fs, &format!("textures/{TEX_B}")).await.unwrap();
    assert!(matches!(
        fs.read(other.ino, opened.fh, 0, 10).await,
        Err(FsError::BadHandle)
    ));
    fs.release(opened.fh).unwrap();
    assert!(matches!(fs.release(opened.fh), Err(FsError::BadHandle)));
    assert!(matches!(
        fs.read(attr.ino, opened.fh, 0, 10).await,
        Err(FsError::BadHandle)
    ));
    assert_eq!(fs.open_handles(), 0);
}

#[tokio::test]
async fn short_source_reads_are_padded_to_full_length() {
    let pkg = package(false);
    let mut fake = Fake::new(SIZE);
    fake.short_by = 7;
    let fs = OverlayFs::new(pkg.dir.path().to_path_buf(), fake).unwrap();
    let attr = fs.lookup(TEXTURES_INO, OsStr::new(TEX_A)).await.unwrap();
    let fh = fs.open(attr.ino, 0).await.unwrap().fh;
    let got = fs.read(attr.ino, fh, 1000, 4096).await.unwrap();
    assert_eq!(got.len(), 4096);
    assert_eq!(&got[..4089], &pattern(1000, 4089)[..]);
    assert!(got[4089..].iter().all(|&b| b == 0));
}

#[tokio::test]
async fn real_files_read_through_at_any_offset() {
    let pkg = package(false);
    let fs = overlay(&pkg);
    let attr = walk(&fs, "Earth nav data/+40-010/+47-006.dsf")
        .await
        .unwrap();
    assert_eq!(attr.size, pkg.dsf.len() as u64);
    let fh = fs.open(attr.ino, libc::O_RDONLY as u32).await.unwrap().fh;
    for (offset, size) in [(0u64, 4096u32), (1, 1), (12_345, 65_537), (299_990, 100)] {
        let got = fs.read(attr.ino, fh, offset, size).await.unwrap();
        let start = offset as usize;
        let end = (start + size as usize).min(pkg.dsf.len());
        assert_eq!(&got[..], &pkg.dsf[start..end], "{offset}+{size}");
    }
    assert!(fs.read(attr.ino, fh, 400_000, 10).await.unwrap().is_empty());
    fs.release(fh).unwrap();

    let md = std::fs::symlink_metadata(pkg.dir.path().join("terrain/water_mask.png")).unwrap();
    let png = walk(&fs, "terrain/water_mask.png").await.unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(png.size, md.size());
    assert_eq!(u32::from(png.perm), md.mode() & 0o7777);
    assert_eq!(png.mtime, md.modified().unwrap());
}

#[tokio::test]
async fn symlinks_are_symlinks() {
    let pkg = package(false);
    let fs = overlay(&pkg);
    let link = walk(&fs, "link.ter").await.unwrap();
    assert_eq!(link.kind, FileKind::Symlink);
    assert_eq!(
        fs.readlink(link.ino).await.unwrap(),
        OsStr::new("terrain/25264_10368_BI16.ter")
    );
    let dir = walk(&fs, "terrain").await.unwrap();
    assert_eq!(
        fs.readlink(dir.ino).await.unwrap_err().errno(),
        libc::EINVAL
    );
}

#[tokio::test]
async fn writes_and_directory_misuse_are_refused() {
    let pkg = package(false);
    let fs = overlay(&pkg);
    let a = walk(&fs, &format!("textures/{TEX_A}")).await.unwrap();
    for flags in [libc::O_WRONLY, libc::O_RDWR, libc::O_RDONLY | libc::O_TRUNC] {
        assert!(matches!(
            fs.open(a.ino, flags as u32).await,
            Err(FsError::ReadOnly)
        ));
    }
    assert!(matches!(
        fs.access(a.ino, libc::W_OK as u32),
        Err(FsError::ReadOnly)
    ));
    assert_eq!(
        fs.access(a.ino, libc::X_OK as u32).unwrap_err().errno(),
        libc::EACCES
    );
    fs.access(a.ino, libc::R_OK as u32).unwrap();
    assert!(matches!(
        fs.open(TEXTURES_INO, 0).await,
        Err(FsError::IsDir)
    ));
    assert!(matches!(fs.opendir(a.ino).await, Err(FsError::NotDir)));
    let fh = fs.opendir(ROOT_INO).await.unwrap();
    assert!(matches!(
        fs.read(ROOT_INO, fh, 0, 10).await,
        Err(FsError::IsDir)
    ));
    assert!(matches!(
        fs.readdir(TEXTURES_INO, fh, 0),
        Err(FsError::BadHandle)
    ));
    assert!(matches!(fs.release(fh), Err(FsError::BadHandle)));
    assert!(matches!(fs.getattr(999).await, Err(FsError::NotFound)));
}

#[tokio::test]
async fn lookups_are_counted_and_forgotten() {
    let pkg = package(false);
    let fs = overlay(&pkg);
    assert_eq!(fs.live_inodes(), 2);
    let terrain = walk(&fs, "terrain").await.unwrap();
    let ter = fs
        .lookup(terrain.ino, OsStr::new("25264_10368_BI16.ter"))
        .await
        .unwrap();
    let again = fs
        .lookup(terrain.ino, OsStr::new("25264_10368_BI16.ter"))
        .await
        .unwrap();
    assert_eq!(ter.ino, again.ino);
    let tex = walk(&fs, &format!("textures/{TEX_UNINDEXED}"))
        .await
        .unwrap();
    assert_eq!(fs.live_inodes(), 5);

    fs.forget(ter.ino, 1);
    assert_eq!(fs.getattr(ter.ino).await.unwrap().ino, ter.ino);
    fs.forget(ter.ino, 1);
    assert!(matches!(fs.getattr(ter.ino).await, Err(FsError::NotFound)));
    fs.forget(tex.ino, 1);
    fs.forget(terrain.ino, 1);
    fs.forget(TEXTURES_INO, 5);
    fs.forget(ROOT_INO, 5);
    assert_eq!(fs.live_inodes(), 2);

    // Same path, same inode, after the kernel forgot it.
    let back = walk(&fs, "terrain/25264_10368_BI16.ter").await.unwrap();
    assert_eq!(back.ino, ter.ino);
    let tex_back = walk(&fs, &format!("textures/{TEX_UNINDEXED}"))
        .await
        .unwrap();
    assert_eq!(tex_back.ino, tex.ino);
}

#[tokio::test]
async fn readdirplus_counts_only_entries_the_consumer_kept() {
    let pkg = package(false);
    let fs = overlay(&pkg);
    let fh = fs.opendir(TEXTURES_INO).await.unwrap();

    // The consumer pulls ".", "..", TEX_A and drops TEX_A (it did not fit).
    let pulled: Vec<_> = fs
        .readdirplus(TEXTURES_INO, fh, 0)
        .unwrap()
        .take(3)
        .collect();
    assert_eq!(pulled[2].entry.name, OsStr::new(TEX_A));
    assert_eq!(pulled[2].attr.size, SIZE);
    assert_eq!(pulled[2].attr.ino, pulled[2].entry.ino);
    assert_eq!(fs.inodes.lookups(pulled[2].entry.ino), 0);
    assert_eq!(fs.live_inodes(), 2);

    // The next call resumes at TEX_A and runs to the end: both counted once.
    let rest: Vec<_> = fs
        .readdirplus(TEXTURES_INO, fh, pulled[1].entry.next_offset)
        .unwrap()
        .collect();
    let names: Vec<_> = rest.iter().map(|e| e.entry.name.clone()).collect();
    assert_eq!(names, [OsStr::new(TEX_A), OsStr::new(TEX_B)]);
    for e in &rest {
        assert_eq!(fs.inodes.lookups(e.entry.ino), 1);
        assert_eq!(fs.getattr(e.entry.ino).await.unwrap(), e.attr);
    }
    // "." and ".." are never counted.
    assert_eq!(fs.inodes.lookups(TEXTURES_INO), 0);
    fs.releasedir(fh).unwrap();

    // The root listing counts real entries too, and offsets resume exactly.
    let fh = fs.opendir(ROOT_INO).await.unwrap();
    let all: Vec<_> = fs.readdirplus(ROOT_INO, fh, 0).unwrap().collect();
    let tail: Vec<_> = fs
        .readdir(ROOT_INO, fh, all[3].entry.next_offset)
        .unwrap()
        .collect();
    let expected: Vec<_> = all[4..].iter().map(|e| e.entry.clone()).collect();
    assert_eq!(tail, expected);
    let terrain = all.iter().find(|e| e.entry.name == "terrain").unwrap();
    assert_eq!(terrain.attr.kind, FileKind::Directory);
    assert_eq!(fs.inodes.lookups(terrain.entry.ino), 1);
    assert_eq!(
        fs.lookup(ROOT_INO, OsStr::new("terrain"))
            .await
            .unwrap()
            .ino,
        terrain.entry.ino
    );
    fs.releasedir(fh).unwrap();
}

#[tokio::test]
async fn statfs_reports_nothing_free() {
    let pkg = package(false);
    let fs = overlay(&pkg);
    let st = fs.statfs().await.unwrap();
    assert!(st.blocks > 0);
    assert_eq!(st.bfree, 0);
    assert!(st.namelen >= 255);
}

#[test]
fn source_must_be_a_directory() {
    let pkg = package(false);
    let file = pkg.dir.path().join("terrain/water_mask.png");
    let err = OverlayFs::new(file, Fake::new(SIZE)).err().unwrap();
    assert_eq!(err.errno(), libc::ENOTDIR);
    assert!(err.to_string().contains("not a directory"), "{err}");
    let err = OverlayFs::new(Path::new("/nonexistent/pkg").into(), Fake::new(SIZE))
        .err()
        .unwrap();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[test]
fn errors_map_to_errno() {
    assert_eq!(FsError::NotFound.errno(), libc::ENOENT);
    assert_eq!(FsError::ReadOnly.errno(), libc::EROFS);
    assert_eq!(FsError::NotDir.errno(), libc::ENOTDIR);
    assert_eq!(FsError::IsDir.errno(), libc::EISDIR);
    assert_eq!(FsError::BadHandle.errno(), libc::EBADF);
    assert_eq!(
        FsError::from(io::Error::from_raw_os_error(libc::EACCES)).errno(),
        libc::EACCES
    );
    assert_eq!(FsError::Io(io::Error::other("x")).errno(), libc::EIO);
    assert!(matches!(
        FsError::from(io::Error::from_raw_os_error(libc::ENOENT)),
        FsError::NotFound
    ));
}

#[tokio::test]
async fn a_folder_swapped_for_a_symlink_after_lookup_is_not_followed() {
    let pkg = package(false);
    let fs = overlay(&pkg);
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir(outside.path().join("terrain")).unwrap();
    std::fs::write(
        outside.path().join("terrain/25264_10368_BI16.ter"),
        "secret outside the package",
    )
    .unwrap();
    let dir = walk(&fs, "terrain").await.unwrap();
    let ter = walk(&fs, "terrain/25264_10368_BI16.ter").await.unwrap();
    // Between lookup and open, terrain/ becomes a symlink out of the package.
    let root = pkg.dir.path();
    std::fs::rename(root.join("terrain"), root.join("terrain.old")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("terrain"), root.join("terrain")).unwrap();

    let opened = fs.open(ter.ino, libc::O_RDONLY as u32).await;
    let err = opened.map(|o| o.fh).unwrap_err();
    assert_eq!(err.errno(), libc::ELOOP, "{err}");
    assert!(
        fs.getattr(ter.ino).await.is_err(),
        "no attributes from outside"
    );
    assert!(
        fs.opendir(dir.ino).await.is_err(),
        "no listing from outside"
    );
    // The symlink itself is what the mount shows now.
    let swapped = walk(&fs, "terrain").await.unwrap();
    assert_eq!(swapped.kind, FileKind::Symlink);
}

/// Offsets where reads of a texture or a file change character: the
/// start, each mip level's start and end, the end and past it.
fn read_offsets(size: u64) -> impl proptest::strategy::Strategy<Value = u64> {
    use proptest::prelude::*;
    let mut edges: Vec<u64> = vec![0, 1, 127, 128, 129, 4095, 4096, 65536];
    for level in 0..13 {
        let at = crate::dds::layout::level_offset(crate::dds::layout::DdsFormat::Bc1, level);
        edges.extend([at.saturating_sub(1), at, at + 1]);
    }
    edges.extend([size - 1, size, size + 1, u64::MAX - 1, u64::MAX]);
    prop_oneof![proptest::sample::select(edges), 0..size + 10]
}

fn read_sizes() -> impl proptest::strategy::Strategy<Value = u32> {
    use proptest::prelude::*;
    prop_oneof![
        proptest::sample::select(vec![0u32, 1, 127, 128, 4095, 4096, 65536, 131_072, 1 << 20]),
        0u32..(1 << 20),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Fuzz: a read of any offset and size, texture or real file, answers
    /// exactly the bytes that exist there (never short, never past the end,
    /// never a panic).
    #[test]
    fn fuzz_read_requests(offset in read_offsets(SIZE), size in read_sizes(), real in proptest::prelude::any::<bool>()) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let pkg = package(false);
        let fs = overlay(&pkg);
        let (path, len) = if real {
            ("Earth nav data/+40-010/+47-006.dsf".to_string(), pkg.dsf.len() as u64)
        } else {
            (format!("textures/{TEX_A}"), SIZE)
        };
        runtime.block_on(async {
            let node = walk(&fs, &path).await.unwrap();
            let fh = fs.open(node.ino, libc::O_RDONLY as u32).await.unwrap().fh;
            let bytes = fs.read(node.ino, fh, offset, size).await.unwrap();
            let want = len.saturating_sub(offset).min(u64::from(size));
            assert_eq!(bytes.len() as u64, want, "offset {offset} size {size}");
            if real && want > 0 {
                let start = offset as usize;
                assert_eq!(&bytes[..], &pkg.dsf[start..start + want as usize]);
            }
            fs.release(fh).unwrap();
        });
    }
}

/// A package holding `files` (path, bytes) and `.ter` files naming `textures`.
fn package_with(files: &[(&str, &[u8])], textures: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, bytes) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    std::fs::create_dir_all(dir.path().join("terrain")).unwrap();
    for texture in textures {
        std::fs::write(
            dir.path()
                .join("terrain")
                .join(texture.replace(".dds", ".ter")),
            format!("A\n800\nTERRAIN\n\nBASE_TEX_NOWRAP ../textures/{texture}\n"),
        )
        .unwrap();
    }
    dir
}

async fn read_whole(fs: &OverlayFs<Fake>, path: &str) -> Result<Vec<u8>> {
    let attr = walk(fs, path).await?;
    let fh = fs.open(attr.ino, libc::O_RDONLY as u32).await?.fh;
    let bytes = fs.read(attr.ino, fh, 0, 1 << 20).await?;
    fs.release(fh)?;
    Ok(bytes.to_vec())
}

#[tokio::test]
async fn a_union_serves_each_file_from_the_package_ranked_first() {
    let tile = "Earth nav data/+40-010/+47-006.dsf";
    let first = package_with(
        &[
            (tile, b"XPLNEDSF first"),
            ("Earth nav data/+40-010/+47-007.dsf", b"XPLNEDSF only first"),
            ("terrain/shared.ter", b"first's ter"),
        ],
        &[TEX_A],
    );
    let second = package_with(
        &[
            (tile, b"XPLNEDSF second"),
            (
                "Earth nav data/+40-010/+48-006.dsf",
                b"XPLNEDSF only second",
            ),
            ("Earth nav data/+50+000/+50+000.dsf", b"XPLNEDSF far"),
            ("terrain/shared.ter", b"second's ter"),
            ("textures/readme.txt", b"hello"),
        ],
        &[TEX_B],
    );
    let roots = vec![first.path().to_path_buf(), second.path().to_path_buf()];
    let fs = OverlayFs::union(roots.clone(), Fake::new(SIZE)).unwrap();

    // Answered before the textures are indexed.
    assert!(fs.index().is_empty());
    assert_eq!(read_whole(&fs, tile).await.unwrap(), b"XPLNEDSF first");
    assert_eq!(
        read_whole(&fs, "terrain/shared.ter").await.unwrap(),
        b"first's ter"
    );
    let texture = walk(&fs, &format!("textures/{TEX_B}")).await.unwrap();
    assert_eq!(texture.size, SIZE);
    // Each package's own files are there too; what neither has is not.
    assert_eq!(
        read_whole(&fs, "Earth nav data/+40-010/+48-006.dsf")
            .await
            .unwrap(),
        b"XPLNEDSF only second"
    );
    assert_eq!(
        read_whole(&fs, "Earth nav data/+50+000/+50+000.dsf")
            .await
            .unwrap(),
        b"XPLNEDSF far"
    );
    assert!(matches!(
        walk(&fs, "terrain/none.ter").await,
        Err(FsError::NotFound)
    ));

    let tiles = walk(&fs, "Earth nav data/+40-010").await.unwrap();
    let names: Vec<String> = list(&fs, tiles.ino).await.into_keys().collect();
    assert_eq!(
        names,
        ["+47-006.dsf", "+47-007.dsf", "+48-006.dsf", ".", ".."]
    );
    let textures: Vec<String> = list(&fs, TEXTURES_INO).await.into_keys().collect();
    assert_eq!(textures, [".", "..", TEX_A, TEX_B, "readme.txt"]);
    assert_eq!(fs.index().len(), 2);

    assert_eq!(
        shadowed_tiles(&roots),
        [ShadowedTile {
            path: tile.into(),
            winner: 0,
            losers: vec![1],
        }]
    );

    // The other ranking: the other package's copies.
    let reversed = OverlayFs::union(roots.into_iter().rev().collect(), Fake::new(SIZE)).unwrap();
    assert_eq!(
        read_whole(&reversed, tile).await.unwrap(),
        b"XPLNEDSF second"
    );
    assert_eq!(
        read_whole(&reversed, "terrain/shared.ter").await.unwrap(),
        b"second's ter"
    );
}
