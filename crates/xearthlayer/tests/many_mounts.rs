//! More mounts than the mounting runtime has blocking threads, all served.
//!
//! A root mount's session reads `/dev/fuse` with a blocking read for as
//! long as it lives; were that read on the caller's blocking pool, mount
//! number `pool + 1` (whose set-up needs that pool) and every passthrough
//! read would wait forever. Here the caller's pool has 3 threads and 12
//! packages are mounted, then each mount is listed and read (a real file
//! passed through, a texture generated). Everything runs under a watchdog:
//! a hang fails the test (detaching the mounts) instead of hanging it.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use xearthlayer::coord::TextureId;
use xearthlayer::fs::{OverlayFs, TextureSource};
use xearthlayer::fuse::{mount, MountConfig, MountSession};
use xel_sim::mounts::can_mount;

const PACKAGES: usize = 12;
const BLOCKING_THREADS: usize = 3;
const SIZE: u64 = 11_184_952;
const TEXTURE: &str = "25264_10368_BI16.dds";
/// Far more than any of these steps takes when nothing is starved.
const WATCHDOG: Duration = Duration::from_secs(60);

/// Byte at offset `o` of every texture is `o % 251`.
struct Pattern;

impl TextureSource for Pattern {
    type Handle = ();

    fn texture_size(&self) -> u64 {
        SIZE
    }

    fn open(&self, _id: TextureId) {}

    fn read(&self, _handle: &(), offset: u64, len: u32) -> impl Future<Output = Bytes> + Send {
        let end = (offset + u64::from(len)).min(SIZE);
        let bytes: Vec<u8> = (offset.min(end)..end).map(|o| (o % 251) as u8).collect();
        std::future::ready(Bytes::from(bytes))
    }
}

/// Package `i`: one `.ter` naming the texture, and a DSF whose bytes say `i`.
fn make_package(root: &Path, i: usize) {
    std::fs::create_dir_all(root.join("terrain")).unwrap();
    std::fs::create_dir_all(root.join("Earth nav data/+40-010")).unwrap();
    std::fs::write(
        root.join("terrain/25264_10368_BI16.ter"),
        format!("A\n800\nTERRAIN\n\nBASE_TEX_NOWRAP ../textures/{TEXTURE}\n"),
    )
    .unwrap();
    std::fs::write(dsf_path(root), dsf_bytes(i)).unwrap();
}

fn dsf_path(root: &Path) -> PathBuf {
    root.join("Earth nav data/+40-010/+47-006.dsf")
}

fn dsf_bytes(i: usize) -> Vec<u8> {
    format!("XPLNEDSF package {i}").into_bytes()
}

/// Runs `work` on its own thread; `None` if it did not finish in time.
fn within<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(work());
    });
    rx.recv_timeout(WATCHDOG).ok()
}

/// A hang: detach whatever got mounted so that nothing is left behind, and fail.
fn give_up(mountpoints: &[PathBuf], runtime: Arc<tokio::runtime::Runtime>, what: &str) -> ! {
    for mnt in mountpoints {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(mnt)
            .status();
    }
    if let Ok(runtime) = Arc::try_unwrap(runtime) {
        runtime.shutdown_background();
    }
    panic!("{what} did not finish within {WATCHDOG:?}: the mounts starve the blocking pool");
}

#[test]
fn more_mounts_than_blocking_threads_all_serve() {
    if !can_mount() {
        return;
    }
    let runtime = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(BLOCKING_THREADS)
            .enable_all()
            .build()
            .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let packages: Vec<PathBuf> = (0..PACKAGES)
        .map(|i| {
            let root = dir.path().join(format!("zOrtho4XP_{i:02}"));
            make_package(&root, i);
            root
        })
        .collect();
    let mountpoints: Vec<PathBuf> = (0..PACKAGES)
        .map(|i| dir.path().join(format!("zOrtho4XP_{i:02}_xel")))
        .collect();

    let mounting = {
        let (runtime, packages, mountpoints) =
            (runtime.clone(), packages.clone(), mountpoints.clone());
        within(move || {
            runtime.block_on(async {
                let mut sessions: Vec<MountSession> = Vec::new();
                for (package, mnt) in packages.iter().zip(&mountpoints) {
                    let fs = OverlayFs::new(package.clone(), Pattern).unwrap();
                    sessions.push(mount(fs, mnt, &MountConfig::default()).await.unwrap());
                }
                sessions
            })
        })
    };
    let Some(sessions) = mounting else {
        give_up(&mountpoints, runtime, "mounting 12 packages")
    };
    assert_eq!(sessions.len(), PACKAGES);

    let reading = {
        let mountpoints = mountpoints.clone();
        within(move || {
            mountpoints
                .iter()
                .map(|mnt| {
                    let listed: Vec<String> = std::fs::read_dir(mnt.join("textures"))
                        .unwrap()
                        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                        .collect();
                    let dsf = std::fs::read(dsf_path(mnt)).unwrap();
                    let texture = std::fs::read(mnt.join("textures").join(TEXTURE)).unwrap();
                    (listed, dsf, texture)
                })
                .collect::<Vec<_>>()
        })
    };
    let Some(read) = reading else {
        give_up(&mountpoints, runtime, "reading through 12 mounts")
    };
    for (i, (listed, dsf, texture)) in read.into_iter().enumerate() {
        assert_eq!(listed, vec![TEXTURE.to_string()], "mount {i}");
        assert_eq!(dsf, dsf_bytes(i), "mount {i} passes its own DSF through");
        assert_eq!(texture.len() as u64, SIZE, "mount {i}");
        assert!(
            texture
                .iter()
                .enumerate()
                .all(|(o, b)| *b == (o % 251) as u8),
            "mount {i} serves the texture's bytes"
        );
    }

    let unmounting = {
        let runtime = runtime.clone();
        within(move || {
            runtime.block_on(async {
                for session in sessions {
                    session.unmount().await.unwrap();
                }
            })
        })
    };
    if unmounting.is_none() {
        give_up(&mountpoints, runtime, "unmounting 12 packages");
    }
    for mnt in &mountpoints {
        assert!(
            !xel_sim::mounts::is_mounted(mnt),
            "{} left mounted",
            mnt.display()
        );
    }
}
