//! Mounts the overlay for real, through the kernel, over a temporary package
//! with a fake texture source (deterministic bytes, counted calls).
//!
//! Each test mounts on its own temporary mountpoint from a runtime of its
//! own and does its file I/O from the test thread, the way X-Plane would.
//! A guard unmounts on drop, panics included. Without /dev/fuse (or root)
//! the tests print SKIPPED and pass. Recovery from a SIGKILLed mount is
//! tested with the real binary in the CLI's tests.

use std::collections::BTreeSet;
use std::future::Future;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xel_sim::mounts::can_mount;

use bytes::Bytes;
use xearthlayer::coord::TextureId;
use xearthlayer::fs::{OverlayFs, TextureSource};
use xearthlayer::fuse::{mount_shared, MountConfig, MountSession};

const SIZE: u64 = 11_184_952;
const TEX_A: &str = "25264_10368_BI16.dds";
const TEX_B: &str = "25264_10384_BI16.dds";

#[derive(Default)]
struct Counters {
    opens: AtomicUsize,
    reads: AtomicUsize,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

/// Byte at offset `o` of every texture is `o % 251`; each read may sleep.
struct Fake {
    delay: Duration,
    counters: Arc<Counters>,
}

fn pattern(offset: u64, len: u64) -> Vec<u8> {
    (offset..offset + len).map(|o| (o % 251) as u8).collect()
}

impl TextureSource for Fake {
    type Handle = TextureId;

    fn texture_size(&self) -> u64 {
        SIZE
    }

    fn open(&self, id: TextureId) -> TextureId {
        self.counters.opens.fetch_add(1, Ordering::SeqCst);
        id
    }

    fn read(
        &self,
        _handle: &TextureId,
        offset: u64,
        len: u32,
    ) -> impl Future<Output = Bytes> + Send {
        let counters = self.counters.clone();
        let delay = self.delay;
        async move {
            let now = counters.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            counters.peak.fetch_max(now, Ordering::SeqCst);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            counters.in_flight.fetch_sub(1, Ordering::SeqCst);
            counters.reads.fetch_add(1, Ordering::SeqCst);
            let end = (offset + u64::from(len)).min(SIZE);
            let start = offset.min(end);
            Bytes::from(pattern(start, end - start))
        }
    }
}

/// A package: two textures named by .ter files, a binary DSF, a nested
/// directory, a symlink, and a real textures/ holding one non-texture file.
fn make_package(root: &Path) -> Vec<u8> {
    std::fs::create_dir_all(root.join("terrain")).unwrap();
    std::fs::create_dir_all(root.join("Earth nav data/+40-010")).unwrap();
    std::fs::create_dir_all(root.join("textures")).unwrap();
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
    std::fs::write(root.join("textures/water_mask.png"), b"\x89PNG not really").unwrap();
    let dsf: Vec<u8> = (0..1_000_003u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(root.join("Earth nav data/+40-010/+47-006.dsf"), &dsf).unwrap();
    std::os::unix::fs::symlink("terrain/25264_10368_BI16.ter", root.join("link.ter")).unwrap();
    dsf
}

/// A live mount; unmounts on drop.
struct Mounted {
    runtime: tokio::runtime::Runtime,
    session: Option<MountSession>,
    fs: Arc<OverlayFs<Fake>>,
    counters: Arc<Counters>,
    mnt: PathBuf,
    dsf: Vec<u8>,
    _mnt_dir: tempfile::TempDir,
    pkg: tempfile::TempDir,
}

impl Mounted {
    fn new(delay: Duration) -> Mounted {
        let pkg = tempfile::tempdir().unwrap();
        let dsf = make_package(pkg.path());
        let mnt_dir = tempfile::tempdir().unwrap();
        let mnt = mnt_dir.path().join("zzXEL_test");
        Self::mount_at(pkg, dsf, mnt_dir, mnt, delay)
    }

    fn mount_at(
        pkg: tempfile::TempDir,
        dsf: Vec<u8>,
        mnt_dir: tempfile::TempDir,
        mnt: PathBuf,
        delay: Duration,
    ) -> Mounted {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        let counters = Arc::new(Counters::default());
        let fake = Fake {
            delay,
            counters: counters.clone(),
        };
        let fs = Arc::new(OverlayFs::new(pkg.path().to_path_buf(), fake).unwrap());
        let session = runtime
            .block_on(mount_shared(fs.clone(), &mnt, &MountConfig::default()))
            .unwrap();
        Mounted {
            runtime,
            session: Some(session),
            fs,
            counters,
            mnt,
            dsf,
            _mnt_dir: mnt_dir,
            pkg,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            if let Err(err) = self.runtime.block_on(session.unmount()) {
                eprintln!("unmount failed: {err}");
            }
        }
    }
}

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn errno(err: &std::io::Error) -> i32 {
    err.raw_os_error().unwrap_or(0)
}

#[test]
fn real_files_read_back_identical() {
    if !can_mount() {
        return;
    }
    let m = Mounted::new(Duration::ZERO);
    let dsf_path = m.path("Earth nav data/+40-010/+47-006.dsf");
    assert_eq!(std::fs::read(&dsf_path).unwrap(), m.dsf);
    let through = std::fs::File::open(&dsf_path).unwrap();
    let direct =
        std::fs::File::open(m.pkg.path().join("Earth nav data/+40-010/+47-006.dsf")).unwrap();
    for (offset, len) in [(1u64, 1usize), (4095, 3), (77_777, 200_001), (999_999, 100)] {
        let mut a = vec![0; len];
        let mut b = vec![0; len];
        let na = through.read_at(&mut a, offset).unwrap();
        let nb = direct.read_at(&mut b, offset).unwrap();
        assert_eq!(&a[..na], &b[..nb], "{offset}+{len}");
    }
    let ter = std::fs::read_to_string(m.path("terrain/25264_10368_BI16.ter")).unwrap();
    assert!(ter.contains(TEX_A));

    // Attributes pass through.
    let real = std::fs::metadata(m.pkg.path().join("Earth nav data/+40-010/+47-006.dsf")).unwrap();
    let seen = std::fs::metadata(&dsf_path).unwrap();
    assert_eq!(seen.len(), real.len());
    assert_eq!(seen.modified().unwrap(), real.modified().unwrap());

    // Symlinks are symlinks; following them works.
    let link = m.path("link.ter");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("terrain/25264_10368_BI16.ter")
    );
    assert_eq!(std::fs::read_to_string(&link).unwrap(), ter);
}

#[test]
fn listings_show_real_and_virtual_entries() {
    if !can_mount() {
        return;
    }
    let m = Mounted::new(Duration::ZERO);
    assert_eq!(
        names(&m.mnt),
        ["Earth nav data", "link.ter", "terrain", "textures"]
            .map(String::from)
            .into()
    );
    assert_eq!(
        names(&m.path("Earth nav data")),
        ["+40-010".to_string()].into()
    );
    assert_eq!(
        names(&m.path("textures")),
        [TEX_A, TEX_B, "water_mask.png"].map(String::from).into()
    );
    // `ls -l` style: every listed entry stats (through readdirplus attributes).
    for entry in std::fs::read_dir(m.path("textures")).unwrap() {
        let entry = entry.unwrap();
        let md = entry.metadata().unwrap();
        if entry.file_name().to_string_lossy().ends_with(".dds") {
            assert_eq!(md.len(), SIZE);
        }
    }
    assert_eq!(m.counters.reads.load(Ordering::SeqCst), 0);
}

#[test]
fn textures_dir_exists_without_a_real_one() {
    if !can_mount() {
        return;
    }
    let pkg = tempfile::tempdir().unwrap();
    let dsf = make_package(pkg.path());
    std::fs::remove_dir_all(pkg.path().join("textures")).unwrap();
    let mnt_dir = tempfile::tempdir().unwrap();
    let mnt = mnt_dir.path().join("mnt");
    let m = Mounted::mount_at(pkg, dsf, mnt_dir, mnt, Duration::ZERO);
    assert!(std::fs::metadata(m.path("textures")).unwrap().is_dir());
    assert_eq!(
        names(&m.path("textures")),
        [TEX_A, TEX_B].map(String::from).into()
    );
}

#[test]
fn non_texture_names_in_textures_are_enoent() {
    if !can_mount() {
        return;
    }
    let m = Mounted::new(Duration::ZERO);
    for name in [
        "readme.txt",
        "25264_10368_BI16.png",
        "25264_10368_BI.dds",
        "x.dds",
    ] {
        let err = std::fs::metadata(m.path("textures").join(name)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{name}");
    }
    let err = std::fs::metadata(m.path("terrain").join(TEX_A)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn writes_are_refused_with_erofs() {
    if !can_mount() {
        return;
    }
    let m = Mounted::new(Duration::ZERO);
    let erofs = |result: std::io::Result<()>, what: &str| {
        let err = result.expect_err(what);
        assert_eq!(errno(&err), libc::EROFS, "{what}: {err}");
    };
    erofs(std::fs::write(m.path("new.txt"), b"x"), "create");
    erofs(
        std::fs::OpenOptions::new()
            .write(true)
            .open(m.path("terrain/25264_10368_BI16.ter"))
            .map(drop),
        "open for writing",
    );
    erofs(
        std::fs::OpenOptions::new()
            .write(true)
            .open(m.path("textures").join(TEX_A))
            .map(drop),
        "open a texture for writing",
    );
    erofs(std::fs::create_dir(m.path("newdir")), "mkdir");
    erofs(std::fs::remove_file(m.path("link.ter")), "unlink");
    erofs(
        std::fs::rename(m.path("link.ter"), m.path("link2.ter")),
        "rename",
    );
    assert!(m.pkg.path().join("link.ter").exists());
}

#[test]
fn texture_size_is_exact_before_any_read() {
    if !can_mount() {
        return;
    }
    let m = Mounted::new(Duration::ZERO);
    let md = std::fs::metadata(m.path("textures").join(TEX_A)).unwrap();
    assert_eq!(md.len(), SIZE);
    assert!(md.is_file());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(md.permissions().mode() & 0o777, 0o444);
    // Not indexed, but a texture name: served all the same.
    let md = std::fs::metadata(m.path("textures/25280_10368_GO217.dds")).unwrap();
    assert_eq!(md.len(), SIZE);
    assert_eq!(m.counters.reads.load(Ordering::SeqCst), 0);
    assert_eq!(m.counters.opens.load(Ordering::SeqCst), 0);
}

#[test]
fn texture_reads_return_the_source_bytes_at_any_offset() {
    if !can_mount() {
        return;
    }
    let m = Mounted::new(Duration::ZERO);
    let file = std::fs::File::open(m.path("textures").join(TEX_A)).unwrap();
    for (offset, len) in [
        (0u64, 128usize),
        (1, 1),
        (4097, 65_539),
        (11_141_248 + 7, 33_000),
        (SIZE - 100, 1000),
    ] {
        let mut buf = vec![0; len];
        let n = file.read_at(&mut buf, offset).unwrap();
        let want = (SIZE - offset).min(len as u64);
        assert_eq!(n as u64, want, "{offset}+{len}");
        assert_eq!(&buf[..n], &pattern(offset, want)[..], "{offset}+{len}");
    }
    let mut all = Vec::new();
    std::fs::File::open(m.path("textures").join(TEX_B))
        .unwrap()
        .read_to_end(&mut all)
        .unwrap();
    assert_eq!(all.len() as u64, SIZE);
    assert!(all == pattern(0, SIZE), "whole texture differs");
    assert!(m.counters.opens.load(Ordering::SeqCst) >= 2);
}

#[test]
fn concurrent_texture_reads_are_all_served_in_parallel() {
    if !can_mount() {
        return;
    }
    let m = Mounted::new(Duration::from_millis(100));
    let textures = m.path("textures");
    let started = Instant::now();
    std::thread::scope(|scope| {
        for i in 0..32u32 {
            let path = textures.join(format!("25264_{}_BI16.dds", 10368 + 16 * i));
            scope.spawn(move || {
                let file = std::fs::File::open(&path).unwrap();
                let offset = 11_141_248 + u64::from(i);
                let mut buf = vec![0; 4096];
                let n = file.read_at(&mut buf, offset).unwrap();
                assert_eq!(n, 4096);
                assert_eq!(buf, pattern(offset, 4096));
            });
        }
    });
    let elapsed = started.elapsed();
    let peak = m.counters.peak.load(Ordering::SeqCst);
    eprintln!(
        "32 readers: {elapsed:?}, peak in-flight source reads {peak}, {} reads",
        m.counters.reads.load(Ordering::SeqCst)
    );
    // All 32 reads wait in the source at once: none is queued behind another.
    assert_eq!(peak, 32, "reads were serialised (peak {peak})");
}

#[test]
fn unmount_leaves_the_mountpoint_usable() {
    if !can_mount() {
        return;
    }
    let mut m = Mounted::new(Duration::ZERO);
    let file = std::fs::File::open(m.path("terrain/25264_10368_BI16.ter")).unwrap();
    // Busy: detached lazily; the open file keeps working until closed.
    let session = m.session.take().unwrap();
    let mnt = m.mnt.clone();
    let unmounting = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(session.unmount())
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut buf = [0u8; 5];
    assert_eq!(file.read_at(&mut buf, 0).unwrap(), 5);
    assert_eq!(&buf, b"A\n800");
    drop(file);
    unmounting.join().unwrap().unwrap();
    assert!(
        names(&mnt).is_empty(),
        "mountpoint should be plain and empty again"
    );
}

/// The kernel's forgets bring the inode table back to its baseline. Drops
/// the machine's dentry caches (`echo 2 > /proc/sys/vm/drop_caches`) to make
/// the kernel forget: harmless, only slower for a moment.
#[test]
fn kernel_forgets_empty_the_inode_table() {
    if !can_mount() {
        return;
    }
    // 500 more indexed textures: listings span several readdirplus replies.
    let pkg = tempfile::tempdir().unwrap();
    let dsf = make_package(pkg.path());
    for i in 0..500u32 {
        let name = format!("25296_{}_BI16.dds", 10368 + 16 * i);
        std::fs::write(
            pkg.path().join(format!("terrain/extra_{i}.ter")),
            format!("BASE_TEX ../textures/{name}\n"),
        )
        .unwrap();
    }
    let mnt_dir = tempfile::tempdir().unwrap();
    let mnt = mnt_dir.path().join("mnt");
    let m = Mounted::mount_at(pkg, dsf, mnt_dir, mnt, Duration::ZERO);
    let textures = m.path("textures");
    for i in 0..200u32 {
        let md = std::fs::metadata(textures.join(format!("25264_{}_BI16.dds", 10368 + 16 * i)));
        assert_eq!(md.unwrap().len(), SIZE);
    }
    let stat_all = |dir: &Path| {
        for entry in std::fs::read_dir(dir).unwrap() {
            entry.unwrap().metadata().unwrap();
        }
    };
    stat_all(&m.mnt);
    stat_all(&m.path("terrain"));
    stat_all(&textures);
    // Past the attribute TTL the kernel asks again: nothing was dropped early.
    std::thread::sleep(Duration::from_millis(1100));
    stat_all(&m.path("terrain"));
    stat_all(&textures);
    let before = m.fs.live_inodes();
    assert!(before > 200, "{before}");
    std::fs::write("/proc/sys/vm/drop_caches", "2").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while m.fs.live_inodes() > 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(m.fs.live_inodes(), 2, "from {before}");
    // And everything still resolves afterwards.
    assert_eq!(names(&textures).len(), 503);
    assert_eq!(std::fs::metadata(textures.join(TEX_A)).unwrap().len(), SIZE);
}

#[test]
fn dropping_a_session_detaches_the_mount() {
    if !can_mount() {
        return;
    }
    let mut m = Mounted::new(Duration::ZERO);
    assert!(names(&m.mnt).contains("textures"));
    drop(m.session.take());
    assert!(names(&m.mnt).is_empty(), "the mount should be gone");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mnt = m.mnt.to_string_lossy().into_owned();
    assert!(!mountinfo
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(&*mnt)));
}
