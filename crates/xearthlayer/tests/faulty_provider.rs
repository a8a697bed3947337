//! The engine against a provider that misbehaves: every read answered in
//! full (at the stall window at worst), no download capacity lost to hung requests, full
//! quality back once the provider is, coalescing that does not depend on
//! the memory cache, and live reads ahead of background work.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use xearthlayer::coord::TextureId;
use xearthlayer::dds::layout::{self, DdsFormat};
use xearthlayer::fetch::FetchConfig;
use xearthlayer::provider::TemplateProvider;
use xearthlayer::texture::{ServiceConfig, TextureService};
use xel_sim::server::{Faults, ImageryServer, ServerConfig};
use xel_sim::verify::{decode_level, expected_level, psnr};

const F: DdsFormat = DdsFormat::Bc1;

fn texture(i: u32) -> TextureId {
    TextureId::new(25264, 10368 + 16 * u64::from(i), 16, "BI").unwrap()
}

fn service(server: &ImageryServer, config: ServiceConfig) -> TextureService {
    let provider = Arc::new(TemplateProvider::custom(&server.url_template()).unwrap());
    TextureService::new(provider, config).unwrap()
}

/// A small download pool, so that a leak of even a few permits shows.
fn small_pool(stall_window: Duration) -> ServiceConfig {
    ServiceConfig {
        stall_window,
        retry_degraded_after: Duration::from_millis(200),
        fetch: FetchConfig {
            max_in_flight: 16,
            backoff: Duration::from_millis(5),
            first_byte_timeout: Duration::from_secs(30),
            ..FetchConfig::default()
        },
        ..ServiceConfig::default()
    }
}

fn level0_psnr(id: &TextureId, bytes: &[u8]) -> f64 {
    psnr(&expected_level(id, 0), &decode_level(bytes, F, 0))
}

/// Reads that wait for a provider that never answers come back at the
/// stall window, full length, and take no capacity with them: the next
/// burst, once the provider answers again, is complete real imagery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_provider_leaves_no_lasting_harm() {
    let server = ImageryServer::start(ServerConfig {
        latency: Duration::from_millis(5),
        faults: Faults {
            hang: 1.0,
            ..Faults::default()
        },
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let bound = Duration::from_secs(2);
    let svc = service(&server, small_pool(bound));
    let hung: Vec<TextureId> = (0..6).map(texture).collect();
    let started = tokio::time::Instant::now();
    let answers = join_all(hung.iter().map(|id| svc.texture(id))).await;
    let waited = started.elapsed();
    for t in &answers {
        assert_eq!(t.bytes.len() as u64, layout::file_size(F));
        assert_eq!(&t.bytes[..128], &layout::header(F));
        assert!(t.degraded);
    }
    // The stall window, plus what answering with stand-ins costs on a
    // loaded machine; without it these reads would wait out the 30 s
    // request timeout.
    assert!(waited < bound + Duration::from_millis(2500), "{waited:?}");
    // Nobody waits for the hung downloads any more: they were cancelled.
    let idle = async {
        while svc.metrics().requests_in_flight.get() > 0 || svc.work().downloads > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), idle)
        .await
        .expect("the hung downloads gave their permits back");

    server.set_faults(Faults::default());
    server.reset_stats();
    let stood_in = svc.metrics().snapshot().reads_stood_in;
    // What X-Plane reads first of each texture: the header, then the low levels.
    let fresh: Vec<TextureId> = (10..14).map(texture).collect();
    let low = layout::level_offset(F, 4)..layout::file_size(F);
    let reads = fresh.iter().map(|id| {
        let (svc, entry, low) = (svc.clone(), svc.entry(id), low.clone());
        async move {
            let header = svc.read(&entry, 0..65536).await;
            let low = svc.read(&entry, low).await;
            (entry, header, low)
        }
    });
    for (entry, header, low) in join_all(reads).await {
        assert_eq!(
            (header.len(), low.len() as u64),
            (65536, layout::file_size(F) - layout::level_offset(F, 4))
        );
        assert!(
            !entry.state().is_degraded(),
            "{}: the provider answers again",
            entry.id()
        );
    }
    assert_eq!(
        svc.metrics().snapshot().reads_stood_in,
        stood_in,
        "no stand-ins once healthy"
    );
    assert_eq!(
        server.stats().requests,
        4 * 17,
        "16 chunks for each header, 1 for its low levels"
    );
}

/// A texture served with stand-ins is built again from real imagery when
/// read after the back-off, and only then reaches the disk cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stand_ins_are_replaced_by_real_imagery_after_the_back_off() {
    let server = ImageryServer::start(ServerConfig {
        faults: Faults {
            not_found: 0.2,
            ..Faults::default()
        },
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = ServiceConfig {
        disk_cache: Some((dir.path().to_path_buf(), 1 << 30)),
        ..small_pool(Duration::from_secs(60))
    };
    let svc = service(&server, config);
    let id = texture(0);
    let open_file = svc.entry(&id);
    let first = svc.texture(&id).await;
    assert!(first.degraded);
    svc.flush().await;
    assert!(
        !svc.is_cached(&TextureId::new(0, 0, 16, "BI").unwrap(), 128..129),
        "sanity: an unknown texture is not cached"
    );
    let disk = svc.disk_cache().unwrap();
    assert_eq!(disk.stats().entries, 0, "nothing with stand-ins is stored");

    server.set_faults(Faults::default());
    // A file opened before keeps the bytes it was served: they never change.
    let whole = 0..layout::file_size(F);
    assert!(svc.read(&open_file, whole).await == first.bytes);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let second = svc.texture(&id).await;
    assert!(!second.degraded);
    assert!(level0_psnr(&id, &second.bytes) > level0_psnr(&id, &first.bytes));
    svc.flush().await;
    assert_eq!(disk.stats().entries, 1, "real imagery is stored");
}

/// Eviction from the memory cache never starts a second build of what is
/// being built: every reader of a texture shares one set of downloads even
/// when the cache can hold nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalescing_does_not_depend_on_the_memory_cache() {
    let server = ImageryServer::start(ServerConfig {
        latency: Duration::from_millis(30),
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let svc = service(
        &server,
        ServiceConfig {
            memory_cache_bytes: 1,
            ..small_pool(Duration::from_secs(120))
        },
    );
    // Other textures pass through the tiny cache meanwhile.
    let other_ids: Vec<TextureId> = (20..24).map(texture).collect();
    let others = join_all(other_ids.iter().map(|id| svc.texture_header(id)));
    let id = texture(1);
    let readers = join_all((0..8).map(|_| svc.texture(&id)));
    let (_, results) = tokio::join!(others, readers);
    assert!(results
        .iter()
        .all(|t| t.bytes == results[0].bytes && !t.degraded));
    let by_zoom = server.stats().by_zoom;
    assert_eq!(by_zoom.get(&16), Some(&(256 + 4 * 16)), "{by_zoom:?}");
}

/// Live reads go before background work: with the build slots full of
/// prefetches, a reader's header read still finishes first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_reads_go_before_background_work() {
    let server = ImageryServer::start(ServerConfig {
        latency: Duration::from_millis(40),
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let svc = service(
        &server,
        ServiceConfig {
            max_builds: 4,
            max_background_builds: 2,
            ..small_pool(Duration::from_secs(120))
        },
    );
    let whole = 0..layout::file_size(F);
    let prefetches: Vec<_> = (0..8)
        .map(|i| {
            let (svc, whole) = (svc.clone(), whole.clone());
            tokio::spawn(async move { svc.prefetch(&texture(i), whole).await })
        })
        .collect();
    while svc.work().background_builds < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let live = svc.texture_header(&texture(30)).await;
    assert_eq!(live.len(), 65536);
    let work = svc.work();
    assert!(work.background_builds <= 2, "{work:?}");
    assert!(
        prefetches.iter().any(|p| !p.is_finished()),
        "the live read did not wait for the background work"
    );
    for p in prefetches {
        assert!(p.await.unwrap(), "prefetched from real imagery");
    }
    assert!(svc.is_cached(&texture(0), whole));
    assert_eq!(svc.metrics().snapshot().prefetches, 8);
}

/// The first 64 KiB of a texture, as X-Plane reads it first.
trait HeaderRead {
    async fn texture_header(&self, id: &TextureId) -> bytes::Bytes;
}

impl HeaderRead for TextureService {
    async fn texture_header(&self, id: &TextureId) -> bytes::Bytes {
        let entry = self.entry(id);
        self.read(&entry, 0..65536).await
    }
}
