//! The filesystem over a package shaped like what Ortho4XP writes (every
//! provider-code shape, every water `.ter` variant, masks and water files in
//! `textures/`, `.cfg`, `.mesh`, `.dsf.bak`, one real DDS), with a fake
//! texture source; no kernel involved.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use xearthlayer::coord::TextureId;
use xearthlayer::fs::{Attr, FileKind, OverlayFs, TextureSource, ROOT_INO, TEXTURES_INO};
use xel_sim::package::{create_package, PackageSpec, SamplePackage, MIXED_CODES};

/// Size of a generated texture (4096 px DXT1 with mipmaps).
const SIZE: u64 = 11_184_952;

/// Serves zeros of the full size, counting opens and reads.
#[derive(Default)]
struct Counting {
    opens: AtomicUsize,
    reads: AtomicUsize,
}

impl TextureSource for Counting {
    type Handle = ();

    fn texture_size(&self) -> u64 {
        SIZE
    }

    fn open(&self, _id: TextureId) {
        self.opens.fetch_add(1, Ordering::SeqCst);
    }

    fn read(
        &self,
        _: &(),
        offset: u64,
        len: u32,
    ) -> impl std::future::Future<Output = Bytes> + Send {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let len = (u64::from(len)).min(SIZE.saturating_sub(offset));
        async move { Bytes::from(vec![0u8; len as usize]) }
    }
}

fn mixed_package(dir: &Path) -> SamplePackage {
    let spec = PackageSpec {
        textures: 14,
        mixed: true,
        real_dds: true,
        dsf_bytes: 300_000,
        ..PackageSpec::default()
    };
    create_package(dir, &spec).unwrap()
}

async fn walk(fs: &OverlayFs<Counting>, path: &Path) -> Attr {
    let mut attr = fs.getattr(ROOT_INO).await.unwrap();
    for part in path.iter() {
        attr = fs
            .lookup(attr.ino, part)
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
    }
    attr
}

/// The whole file through open and read, in 128 KiB reads.
async fn read_all(fs: &OverlayFs<Counting>, attr: &Attr) -> Vec<u8> {
    let opened = fs.open(attr.ino, libc::O_RDONLY as u32).await.unwrap();
    let mut bytes = Vec::new();
    loop {
        let part = fs
            .read(attr.ino, opened.fh, bytes.len() as u64, 128 * 1024)
            .await
            .unwrap();
        if part.is_empty() {
            break;
        }
        bytes.extend_from_slice(&part);
    }
    fs.release(opened.fh).unwrap();
    bytes
}

#[tokio::test]
async fn every_texture_of_every_code_is_listed_at_full_size_before_any_read() {
    let tmp = tempfile::tempdir().unwrap();
    let package = mixed_package(tmp.path());
    let fs = OverlayFs::new(package.root.clone(), Counting::default()).unwrap();
    assert_eq!(fs.index().len(), package.textures.len());

    let fh = fs.opendir(TEXTURES_INO).await.unwrap();
    let listed: BTreeSet<String> = fs
        .readdir(TEXTURES_INO, fh, 0)
        .unwrap()
        .map(|e| e.name.to_string_lossy().into_owned())
        .filter(|n| n != "." && n != "..")
        .collect();
    fs.releasedir(fh).unwrap();
    let mut expected: BTreeSet<String> = package.textures.iter().map(|t| t.file_name()).collect();
    for real in &package.real_files {
        if let Ok(name) = real.strip_prefix("textures") {
            expected.insert(name.to_string_lossy().into_owned());
        }
    }
    assert_eq!(listed, expected, "textures/ lists each name once");

    let codes: BTreeSet<&str> = package
        .textures
        .iter()
        .map(|t| t.map_type.as_str())
        .collect();
    assert_eq!(codes, MIXED_CODES.into_iter().collect());
    let real_dds = package.real_dds.clone().unwrap();
    for texture in &package.textures {
        let attr = walk(&fs, &Path::new("textures").join(texture.file_name())).await;
        assert_eq!(attr.kind, FileKind::RegularFile);
        if *texture != real_dds {
            assert_eq!(attr.size, SIZE, "{}", texture.file_name());
        }
    }
    let source = fs.texture_source();
    assert_eq!(source.opens.load(Ordering::SeqCst), 0);
    assert_eq!(source.reads.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn real_files_pass_through_and_the_real_dds_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let package = mixed_package(tmp.path());
    let fs = OverlayFs::new(package.root.clone(), Counting::default()).unwrap();

    let dsf = package
        .dsf
        .strip_prefix(&package.root)
        .unwrap()
        .to_path_buf();
    let kinds: BTreeSet<String> = package
        .real_files
        .iter()
        .chain([&dsf])
        .map(|p| p.extension().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        kinds,
        ["bak", "cfg", "dds", "dsf", "mesh", "png"]
            .map(String::from)
            .into()
    );
    for relative in package.real_files.iter().chain([&dsf]) {
        let on_disk = std::fs::read(package.root.join(relative)).unwrap();
        let attr = walk(&fs, relative).await;
        assert_eq!(attr.size, on_disk.len() as u64, "{}", relative.display());
        assert!(
            read_all(&fs, &attr).await == on_disk,
            "{}",
            relative.display()
        );
    }
    for ter in std::fs::read_dir(package.root.join("terrain")).unwrap() {
        let ter = ter.unwrap();
        let relative = Path::new("terrain").join(ter.file_name());
        let attr = walk(&fs, &relative).await;
        assert_eq!(
            read_all(&fs, &attr).await,
            std::fs::read(ter.path()).unwrap()
        );
    }

    // The real DDS was read above from disk, never generated.
    let real = package.real_dds.clone().unwrap();
    let attr = walk(&fs, &Path::new("textures").join(real.file_name())).await;
    assert_ne!(attr.size, SIZE);
    let source = fs.texture_source();
    assert_eq!(source.opens.load(Ordering::SeqCst), 0);
    assert_eq!(source.reads.load(Ordering::SeqCst), 0);

    // A generated one is served by the source.
    let generated = walk(
        &fs,
        &Path::new("textures").join(package.textures[1].file_name()),
    )
    .await;
    assert_eq!(read_all(&fs, &generated).await.len() as u64, SIZE);
    assert_eq!(source.opens.load(Ordering::SeqCst), 1);
}
