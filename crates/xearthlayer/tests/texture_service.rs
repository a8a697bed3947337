//! The texture engine against the local imagery server: correct pixels,
//! exact sizes, coalescing, concurrency, faults and the disk cache.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use xearthlayer::coord::TextureId;
use xearthlayer::dds::layout::{self, DdsFormat};
use xearthlayer::fetch::FetchConfig;
use xearthlayer::prefetch::ranges::HEADER_READ;
use xearthlayer::provider::TemplateProvider;
use xearthlayer::texture::{ServiceConfig, TextureService};
use xel_sim::server::{Faults, ImageryServer, ServerConfig};
use xel_sim::verify::{decode_level, expected_level, psnr};

fn texture(i: u32) -> TextureId {
    TextureId::new(25264, 10368 + 16 * u64::from(i), 16, "BI").unwrap()
}

fn service(server: &ImageryServer, config: ServiceConfig) -> TextureService {
    let provider = Arc::new(TemplateProvider::custom(&server.url_template()).unwrap());
    TextureService::new(provider, config).unwrap()
}

fn fast_retries() -> FetchConfig {
    FetchConfig {
        backoff: Duration::from_millis(5),
        first_byte_timeout: Duration::from_secs(2),
        ..FetchConfig::default()
    }
}

fn assert_valid(bytes: &[u8], format: DdsFormat) {
    assert_eq!(bytes.len() as u64, layout::file_size(format));
    assert_eq!(&bytes[..128], &layout::header(format));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pixels_match_the_served_imagery_at_every_level() {
    let server = ImageryServer::start(ServerConfig::default()).await.unwrap();
    let expected: Vec<(u8, Vec<u8>)> = [0u8, 1, 4, 8, 12]
        .into_iter()
        .map(|level| (level, expected_level(&texture(0), level)))
        .collect();
    for format in [DdsFormat::Bc1, DdsFormat::Bc3] {
        let svc = service(
            &server,
            ServiceConfig {
                format,
                ..ServiceConfig::default()
            },
        );
        let id = texture(0);
        let t = svc.texture(&id).await;
        assert!(!t.degraded);
        assert_valid(&t.bytes, format);
        for (level, want) in &expected {
            let got = decode_level(&t.bytes, format, *level);
            let db = psnr(want, &got);
            assert!(db >= 30.0, "{format} level {level}: {db:.1} dB");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_for_one_texture_share_one_build() {
    let server = ImageryServer::start(ServerConfig {
        latency: Duration::from_millis(20),
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let svc = service(&server, ServiceConfig::default());
    let id = texture(1);
    let results = join_all((0..32).map(|_| svc.texture(&id))).await;
    assert!(results.iter().all(|t| t.bytes == results[0].bytes));
    // 256 chunks at ZL, and the one at ZL-4 its low levels come from.
    assert_eq!(server.stats().requests, 257);
    assert_eq!(svc.metrics().snapshot().textures_touched, 1);
    // And once built, it comes from memory.
    svc.texture(&id).await;
    assert_eq!(server.stats().requests, 257);
    assert!(svc.metrics().snapshot().memory_hits >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_textures_download_concurrently() {
    let server = ImageryServer::start(ServerConfig {
        latency: Duration::from_millis(100),
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let svc = service(&server, ServiceConfig::default());
    let ids: Vec<_> = (0..64).map(texture).collect();
    // X-Plane's first read of each: the 64 KiB header (the top chunk row,
    // and the low levels' one chunk first).
    let reads = ids.iter().map(|id| {
        let entry = svc.entry(id);
        let svc = svc.clone();
        async move { svc.read(&entry, 0..65536).await }
    });
    let results = join_all(reads).await;
    for bytes in &results {
        assert_eq!(bytes.len(), 65536);
        assert_eq!(&bytes[..128], &layout::header(DdsFormat::Bc1));
    }
    // Every chunk once (a retry after a dropped connection on a loaded
    // machine is a second request for the same chunk, not a second build;
    // an attempt whose connection never got through is not seen at all).
    let retries = svc.metrics().snapshot().chunk_retries;
    let requests = server.stats().requests;
    assert!(
        (64 * 17..=64 * 17 + retries).contains(&requests),
        "{requests} requests, {retries} retries"
    );
    let peak = server.stats().peak_in_flight;
    assert!(peak > 128, "peak requests in flight {peak}");
    assert!(svc.metrics().snapshot().peak_generations_in_flight > 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_never_break_a_texture() {
    let server = ImageryServer::start(ServerConfig {
        faults: Faults {
            server_error: 0.20,
            corrupt: 0.05,
            not_found: 0.05,
            ..Faults::default()
        },
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let svc = service(
        &server,
        ServiceConfig {
            fetch: fast_retries(),
            ..ServiceConfig::default()
        },
    );
    let ids: Vec<_> = (0..6).map(texture).collect();
    let results = join_all(ids.iter().map(|id| svc.texture(id))).await;
    for t in &results {
        assert_valid(&t.bytes, DdsFormat::Bc1);
        // 404s are filled from the parent chunk: the texture is whole but
        // marked, so it is not stored as good.
        assert!(t.degraded);
    }
    let m = svc.metrics().snapshot();
    assert!(m.chunk_retries > 0 && m.chunks_filled > 0, "{m:?}");
    // Filled chunks come from lower-zoom imagery, so the picture is still close.
    let level0 = decode_level(&results[0].bytes, DdsFormat::Bc1, 0);
    assert!(psnr(&expected_level(&ids[0], 0), &level0) > 20.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_provider_costs_at_most_the_stall_window() {
    let server = ImageryServer::start(ServerConfig {
        faults: Faults {
            hang: 1.0,
            ..Faults::default()
        },
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let svc = service(
        &server,
        ServiceConfig {
            stall_window: Duration::from_millis(500),
            ..ServiceConfig::default()
        },
    );
    let started = Instant::now();
    let t = svc.texture(&texture(2)).await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_valid(&t.bytes, DdsFormat::Bc1);
    assert!(t.degraded);
}

// One thread: the reader gives up before the load's task first runs.
#[tokio::test]
async fn a_disk_load_outlives_a_read_that_stopped_waiting_and_is_not_repeated() {
    let server = ImageryServer::start(ServerConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let id = texture(5);
    let writer = service(
        &server,
        ServiceConfig {
            disk_cache: Some((dir.path().to_path_buf(), 1 << 30)),
            ..ServiceConfig::default()
        },
    );
    writer.texture(&id).await;
    writer.flush().await;
    drop(writer);

    server.reset_stats();
    // A cap so short that a read stops waiting while its disk load runs.
    let hasty = service(
        &server,
        ServiceConfig {
            disk_cache: Some((dir.path().to_path_buf(), 1 << 30)),
            max_wait: Duration::from_nanos(1),
            startup_max_wait: Duration::from_nanos(1),
            ..ServiceConfig::default()
        },
    );
    let entry = hasty.entry(&id);
    let bytes = hasty.read(&entry, 0..HEADER_READ).await;
    assert_eq!(bytes.len() as u64, HEADER_READ);
    assert_eq!(hasty.metrics().snapshot().reads_stood_in, 1);
    // The next use of the texture gets the bytes that load read.
    assert!(hasty.prefetch(&id, 0..hasty.file_size()).await);
    let disk = hasty.disk_cache().unwrap();
    assert_eq!(disk.loads(), 1, "the file was read once");
    assert_eq!(server.stats().requests, 0, "nothing downloaded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_cache_serves_a_new_service_and_rejects_bad_files() {
    let server = ImageryServer::start(ServerConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = || ServiceConfig {
        disk_cache: Some((dir.path().to_path_buf(), 1 << 30)),
        ..ServiceConfig::default()
    };
    let id = texture(3);
    let writer = service(&server, config());
    let first = writer.texture(&id).await;
    assert_eq!(writer.texture(&id).await.bytes, first.bytes);
    let counted = writer.metrics().snapshot();
    assert_eq!(
        (counted.reads, counted.reads_waited),
        (2, 1),
        "built once, then ready"
    );
    writer.flush().await;
    // The custom provider's folder is named after its server.
    let key = TemplateProvider::custom(&server.url_template()).unwrap();
    let key = xearthlayer::provider::TileProvider::cache_key(&key).to_string();
    assert!(key.starts_with("custom-127.0.0.1_"), "{key}");
    let path = dir.path().join(key).join("bc1/16/25264_10416.xel");
    assert!(path.exists());

    server.reset_stats();
    let second = service(&server, config());
    assert_eq!(second.texture(&id).await.bytes, first.bytes);
    assert_eq!(server.stats().requests, 0, "served from disk");
    let counted = second.metrics().snapshot();
    assert_eq!(counted.disk_hits, 1);
    assert_eq!(
        (counted.reads, counted.reads_waited),
        (1, 0),
        "ready on disk"
    );

    // Truncate the file: the next service notices, rebuilds and re-stores.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(4096)
        .unwrap();
    let third = service(&server, config());
    assert_eq!(third.texture(&id).await.bytes, first.bytes);
    assert_eq!(server.stats().requests, 257, "rebuilt from imagery");
    assert_eq!(third.metrics().snapshot().disk_hits, 0);
    third.flush().await;
    server.reset_stats();
    let fourth = service(&server, config());
    assert_eq!(fourth.texture(&id).await.bytes, first.bytes);
    assert_eq!(
        server.stats().requests,
        0,
        "the rebuilt texture was stored again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_cached_answers_per_range_and_not_for_files_only_the_scan_saw() {
    let server = ImageryServer::start(ServerConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A memory cache too small for any texture: only the disk tier answers.
    let config = || ServiceConfig {
        disk_cache: Some((dir.path().to_path_buf(), 1 << 30)),
        memory_cache_bytes: 1,
        ..ServiceConfig::default()
    };
    let id = texture(5);
    let format = DdsFormat::Bc1;
    let header = 0..HEADER_READ;
    let low = layout::level_offset(format, 4)..layout::file_size(format);

    let first = service(&server, config());
    assert!(first.prefetch(&id, header.clone()).await);
    first.flush().await;
    assert_eq!(first.work().live_entries, 0, "nothing of it in memory");
    assert!(first.is_cached(&id, header.clone()));
    assert!(
        !first.is_cached(&id, low.clone()),
        "the file holds the header read, not the low levels"
    );

    // A restart: the scan finds the file but reads nothing of it.
    server.reset_stats();
    let second = service(&server, config());
    assert!(!second.is_cached(&id, header.clone()), "unknown, not held");
    assert!(second.prefetch(&id, header.clone()).await);
    assert_eq!(
        server.stats().requests,
        0,
        "the prefetch loaded it from disk"
    );
    assert_eq!(second.work().live_entries, 0);
    assert!(second.is_cached(&id, header.clone()), "loaded: now known");
    assert!(!second.is_cached(&id, low.clone()));
    assert!(second.prefetch(&id, low.clone()).await);
    assert_eq!(
        server.stats().requests,
        1,
        "one chunk at ZL-4 for the low levels"
    );
    second.flush().await;
    assert!(second.is_cached(&id, low.clone()));
    assert!(
        !second.is_cached(&id, 0..layout::file_size(format)),
        "most of level 0 and levels 1..=3 are in no file"
    );
}
