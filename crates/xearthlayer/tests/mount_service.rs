//! The real texture service through a real mount, with the local imagery
//! server counting requests by zoom: what X-Plane's reads cost and what
//! they get back.
//!
//! File I/O runs on plain threads, as X-Plane's loader does, while the mount
//! and the imagery server run on a runtime of the test's own. Without
//! /dev/fuse or root the tests print SKIPPED and pass.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use xel_sim::mounts::can_mount;

use xearthlayer::coord::TextureId;
use xearthlayer::dds::layout::{self, DdsFormat};
use xearthlayer::fs::OverlayFs;
use xearthlayer::fuse::{mount_shared, MountConfig, MountSession};
use xearthlayer::image::{decode_chunk, CHUNK_RGBA_LEN};
use xearthlayer::provider::TemplateProvider;
use xearthlayer::texture::{ServiceConfig, TextureService};
use xel_sim::burst::{read_texture, run_burst, BurstConfig, ReadKind};
use xel_sim::imagery::chunk_jpeg;
use xel_sim::package::{create_package, PackageSpec};
use xel_sim::server::{ImageryServer, ServerConfig};
use xel_sim::verify::{decode_level, expected_level, psnr};

const F: DdsFormat = DdsFormat::Bc1;

struct Scene {
    runtime: tokio::runtime::Runtime,
    session: Option<MountSession>,
    server: ImageryServer,
    service: TextureService,
    textures: Vec<TextureId>,
    mnt: PathBuf,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Scene {
    fn new(textures: usize, latency: Duration) -> Scene {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let pkg_dir = tempfile::tempdir().unwrap();
        let package = create_package(
            pkg_dir.path(),
            &PackageSpec {
                textures,
                ..PackageSpec::default()
            },
        )
        .unwrap();
        let server = runtime
            .block_on(ImageryServer::start(ServerConfig {
                latency,
                ..ServerConfig::default()
            }))
            .unwrap();
        let provider = Arc::new(TemplateProvider::custom(&server.url_template()).unwrap());
        let service = TextureService::new(provider, ServiceConfig::default()).unwrap();
        let fs = Arc::new(OverlayFs::new(package.root.clone(), service.clone()).unwrap());
        let mnt_dir = tempfile::tempdir().unwrap();
        let mnt = mnt_dir.path().join("scene_xel");
        let session = runtime
            .block_on(mount_shared(fs, &mnt, &MountConfig::default()))
            .unwrap();
        Scene {
            runtime,
            session: Some(session),
            server,
            service,
            textures: package.textures,
            mnt,
            _dirs: (pkg_dir, mnt_dir),
        }
    }

    fn texture_path(&self, i: usize) -> PathBuf {
        self.mnt.join("textures").join(self.textures[i].file_name())
    }

    fn requests_at(&self, zoom: u8) -> u64 {
        self.server.stats().by_zoom.get(&zoom).copied().unwrap_or(0)
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            if let Err(e) = self.runtime.block_on(session.unmount()) {
                eprintln!("unmount failed: {e}");
            }
        }
    }
}

fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let file = File::open(path).unwrap();
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let n = file
            .read_at(&mut buf[done..], offset + done as u64)
            .unwrap();
        assert!(n > 0, "short read at {}", offset + done as u64);
        done += n;
    }
    buf
}

#[test]
fn a_texture_reads_whole_and_decodes_to_the_imagery() {
    if !can_mount() {
        return;
    }
    let scene = Scene::new(2, Duration::ZERO);
    let path = scene.texture_path(0);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        layout::file_size(F)
    );
    assert_eq!(scene.server.stats().requests, 0, "stat builds nothing");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len() as u64, layout::file_size(F));
    assert_eq!(&bytes[..128], &layout::header(F));
    for level in [0u8, 2, 4, 12] {
        let db = psnr(
            &expected_level(&scene.textures[0], level),
            &decode_level(&bytes, F, level),
        );
        assert!(db >= 30.0, "level {level}: {db:.1} dB");
    }
    // The whole file costs its 256 chunks at ZL, and first the one chunk at
    // ZL-4 that its low levels come from (a stand-in's source, were the
    // provider to stall); levels 1 to 3 are derived.
    assert_eq!(scene.server.stats().requests, 257);
    assert_eq!(scene.requests_at(12), 1);

    // Reads at odd offsets spanning mip boundaries equal the same range.
    for (level, back, len) in [
        (1u8, 3usize, 100_000usize),
        (4, 77, 5000),
        (6, 1, 20_000),
        (12, 5, 5),
    ] {
        let start = layout::level_offset(F, level) - back as u64;
        let len = len.min((layout::file_size(F) - start) as usize);
        let got = read_at(&path, start, len);
        assert_eq!(
            got,
            bytes[start as usize..start as usize + len],
            "level {level}"
        );
    }
}

#[test]
fn reading_the_low_levels_fetches_one_low_zoom_chunk() {
    if !can_mount() {
        return;
    }
    let scene = Scene::new(1, Duration::ZERO);
    let path = scene.texture_path(0);
    let from = layout::level_offset(F, 4);
    let low = read_at(&path, from, (layout::file_size(F) - from) as usize);
    let stats = scene.server.stats();
    assert_eq!(stats.requests, 1, "{stats:?}");
    assert_eq!(scene.requests_at(12), 1);
    // Level 4 is exactly the one zoom-12 chunk.
    let id = &scene.textures[0];
    let chunk = id.chunks_at_level(4).next().unwrap();
    let mut want = vec![0u8; CHUNK_RGBA_LEN];
    decode_chunk(&chunk_jpeg(chunk.zoom, chunk.x, chunk.y), &mut want).unwrap();
    let level4 = &low[..layout::level_len(F, 4) as usize];
    let got = xel_sim::verify::decode_blocks(F, level4, 256, 256);
    assert!(psnr(&want, &got) >= 30.0);
}

#[test]
fn reading_level_two_fetches_its_sixteen_chunks() {
    if !can_mount() {
        return;
    }
    let scene = Scene::new(1, Duration::ZERO);
    let range = layout::level_range(F, 2);
    read_at(
        &scene.texture_path(0),
        range.start,
        (range.end - range.start) as usize,
    );
    // Its 16 chunks at ZL-2, and the low levels' one chunk at ZL-4 first.
    assert_eq!(scene.server.stats().requests, 17);
    assert_eq!(scene.requests_at(14), 16);
    assert_eq!(scene.requests_at(12), 1);
}

#[test]
fn a_header_read_fetches_the_top_chunk_row_at_most() {
    if !can_mount() {
        return;
    }
    let scene = Scene::new(1, Duration::ZERO);
    let header = read_at(&scene.texture_path(0), 0, 64 << 10);
    assert_eq!(&header[..128], &layout::header(F));
    let stats = scene.server.stats();
    assert!(stats.requests <= 17, "{stats:?}");
    assert_eq!(scene.requests_at(16) + 1, stats.requests);
    assert_eq!(scene.requests_at(12), 1, "the low levels' chunk");
}

#[test]
fn a_full_read_after_a_low_read_is_consistent() {
    if !can_mount() {
        return;
    }
    let scene = Scene::new(1, Duration::ZERO);
    let path = scene.texture_path(0);
    let from = layout::level_offset(F, 4);
    let low_first = read_at(&path, from, (layout::file_size(F) - from) as usize);
    let whole = std::fs::read(&path).unwrap();
    assert_eq!(
        &whole[from as usize..],
        &low_first[..],
        "levels already read never change"
    );
    let level0 = decode_level(&whole, F, 0);
    let mut side = 4096usize;
    let mut reference = level0;
    for level in 1..13u8 {
        let mut half = vec![0u8; (side / 2) * (side / 2) * 4];
        xearthlayer::image::resample::halve(&reference, side, side, &mut half);
        reference = half;
        side /= 2;
        let db = psnr(&reference, &decode_level(&whole, F, level));
        assert!(
            db >= 25.0,
            "level {level} vs a downscale of level 0: {db:.1} dB"
        );
    }
}

#[test]
fn piecewise_reads_build_the_same_file_as_one_read() {
    if !can_mount() {
        return;
    }
    let scene = Scene::new(1, Duration::ZERO);
    let path = scene.texture_path(0);
    // X-Plane's order for a close texture: header, then pieces of level 0
    // out of order, then the rest.
    let mut pieces = vec![read_at(&path, 0, 64 << 10)];
    let mid = 5 << 20;
    pieces.push(read_at(&path, mid, 1 << 20));
    let whole = std::fs::read(&path).unwrap();
    assert_eq!(&whole[..64 << 10], &pieces[0][..]);
    assert_eq!(
        &whole[mid as usize..mid as usize + (1 << 20)],
        &pieces[1][..]
    );

    let one_go = scene
        .runtime
        .block_on(async {
            let provider =
                Arc::new(TemplateProvider::custom(&scene.server.url_template()).unwrap());
            let fresh = TextureService::new(provider, ServiceConfig::default()).unwrap();
            fresh.texture(&scene.textures[0]).await
        })
        .bytes;
    assert!(whole == one_go, "piecewise and one-go builds differ");
}

#[test]
fn many_handles_on_one_texture_build_it_once() {
    if !can_mount() {
        return;
    }
    let scene = Scene::new(1, Duration::from_millis(20));
    let path = scene.texture_path(0);
    let reads: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| s.spawn(|| std::fs::read(&path).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(reads.iter().all(|r| *r == reads[0]));
    assert_eq!(scene.server.stats().requests, 257, "256 at ZL, 1 at ZL-4");
}

#[test]
fn thirty_two_textures_are_generated_concurrently() {
    if !can_mount() {
        return;
    }
    let scene = Scene::new(32, Duration::from_millis(100));
    let paths: Vec<PathBuf> = (0..32).map(|i| scene.texture_path(i)).collect();
    let report = run_burst(
        &paths,
        &BurstConfig {
            readers: 32,
            full_every: 0,
            ..BurstConfig::default()
        },
    )
    .unwrap();
    assert_eq!(report.reads.len(), 32);
    let m = scene.service.metrics().snapshot();
    assert!(m.peak_generations_in_flight >= 16, "{m:?}");
    assert!(
        scene.server.stats().peak_in_flight >= 64,
        "{:?}",
        scene.server.stats()
    );
    // And each read returned full length, as run_burst checks: a full one too.
    assert_eq!(
        read_texture(&paths[0], ReadKind::Full, &BurstConfig::default()).unwrap(),
        layout::file_size(F)
    );
}

#[test]
fn lookups_and_listings_are_answered_while_a_texture_builds() {
    if !can_mount() {
        return;
    }
    let scene = Scene::new(2, Duration::from_millis(500));
    let path = scene.texture_path(0);
    let reader = std::thread::spawn(move || std::fs::read(path).map(|b| b.len()));
    // Wait until the build is downloading (no fixed sleep: poll the server).
    while scene.server.stats().in_flight == 0 {
        assert!(
            !reader.is_finished(),
            "the read ended before it started downloading"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Meanwhile the filesystem answers everything else.
    assert_eq!(
        std::fs::metadata(scene.texture_path(1)).unwrap().len(),
        layout::file_size(F)
    );
    // Both textures, beside the real files Ortho4XP leaves in textures/.
    let listed: Vec<String> = std::fs::read_dir(scene.mnt.join("textures"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for texture in &scene.textures {
        assert!(listed.contains(&texture.file_name()), "{listed:?}");
    }
    assert!(
        listed.iter().any(|n| n == "water_transition.png"),
        "{listed:?}"
    );
    assert!(std::fs::metadata(scene.mnt.join("terrain"))
        .unwrap()
        .is_dir());
    assert!(
        scene.server.stats().in_flight > 0,
        "the answers came while chunks were still being downloaded"
    );
    assert_eq!(reader.join().unwrap().unwrap() as u64, layout::file_size(F));
}
