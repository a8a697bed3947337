//! Reads over a slow but healthy link wait for final imagery; reads whose
//! provider stops answering get stand-ins at the stall window, from the
//! texture's own low levels (blurry, not grey); reads finish the oldest
//! first; and two visits of one texture get the same bytes.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::time::Instant;
use xearthlayer::coord::TextureId;
use xearthlayer::dds::layout::{self, DdsFormat};
use xearthlayer::fetch::FetchConfig;
use xearthlayer::fs::TextureSource;
use xearthlayer::provider::TemplateProvider;
use xearthlayer::texture::{ServiceConfig, TextureService};
use xel_sim::server::{Faults, ImageryServer, ServerConfig};
use xel_sim::verify::{decode_level, expected_level, psnr};

const F: DdsFormat = DdsFormat::Bc1;
/// X-Plane's first read of a texture.
const HEADER: std::ops::Range<u64> = 0..65536;

fn texture(i: u32) -> TextureId {
    TextureId::new(25264, 10368 + 16 * u64::from(i), 16, "BI").unwrap()
}

fn service(server: &ImageryServer, provider_limit: usize, config: ServiceConfig) -> TextureService {
    let provider = TemplateProvider::custom(&server.url_template())
        .unwrap()
        .with_max_in_flight(provider_limit);
    TextureService::new(Arc::new(provider), config).unwrap()
}

/// The imagery server, its answers `latency_ms` late and, with a rate,
/// queued on one shared link of that many Mbit/s.
async fn server(latency_ms: u64, link_mbit: Option<f64>) -> ImageryServer {
    let server = ImageryServer::start(ServerConfig {
        latency: Duration::from_millis(latency_ms),
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    if let Some(mbit) = link_mbit {
        server.set_bandwidth((mbit * 1e6 / 8.0) as u64);
    }
    server
}

/// The low levels, which X-Plane reads after the header.
fn low() -> std::ops::Range<u64> {
    layout::level_offset(F, 4)..layout::file_size(F)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_but_healthy_link_gets_no_stand_ins() {
    // One shared 1 Mbit/s link: three textures' headers and low levels are
    // about 0.7 MB, six seconds of it, answered a chunk at a time. Every
    // request waits longer than the client's 5 s first-byte timeout and
    // every read longer than the stall window.
    let server = server(60, Some(1.0)).await;
    let stall_window = Duration::from_secs(1);
    let svc = service(
        &server,
        256,
        ServiceConfig {
            stall_window,
            ..ServiceConfig::default()
        },
    );
    let started = Instant::now();
    let reads = (0..3).map(|i| {
        let (svc, entry) = (svc.clone(), svc.entry(&texture(i)));
        async move {
            let header = svc.read(&entry, HEADER).await;
            let low = svc.read(&entry, low()).await;
            (header, low)
        }
    });
    let answers = join_all(reads).await;
    let waited = started.elapsed();
    assert!(
        waited > stall_window * 3,
        "the link is slow enough to matter: {waited:?}"
    );
    let m = svc.metrics().snapshot();
    assert_eq!((m.reads_final, m.reads_stood_in), (6, 0), "{m:?}");
    assert_eq!(m.chunk_timeouts, 0, "a slow answer is not a stall: {m:?}");
    for (i, (header, low)) in answers.iter().enumerate() {
        assert_eq!(header.len() as u64, HEADER.end);
        let id = texture(i as u32);
        let mut file = vec![0; layout::file_size(F) as usize];
        file[..header.len()].copy_from_slice(header);
        file[layout::level_offset(F, 4) as usize..].copy_from_slice(low);
        let db = psnr(&expected_level(&id, 4), &decode_level(&file, F, 4));
        assert!(db >= 30.0, "texture {i} level 4: {db:.1} dB");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_stops_answering_mid_read_gets_blurry_stand_ins_at_the_stall_window() {
    let server = server(30, None).await;
    let stall_window = Duration::from_secs(1);
    // Four requests at a time, so most of the texture is still to ask for
    // when the provider stops answering.
    let svc = service(
        &server,
        4,
        ServiceConfig {
            stall_window,
            ..ServiceConfig::default()
        },
    );
    let id = texture(0);
    let entry = svc.entry(&id);
    let whole = {
        let (svc, entry) = (svc.clone(), Arc::clone(&entry));
        tokio::spawn(async move { svc.read(&entry, 0..layout::file_size(F)).await })
    };
    while server.stats().ok < 24 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.set_faults(Faults {
        hang: 1.0,
        ..Faults::default()
    });
    let stopped = Instant::now();
    let bytes = whole.await.unwrap();
    let waited = stopped.elapsed();
    assert!(
        waited <= stall_window + Duration::from_secs(1),
        "stand-ins within the stall window and a second: {waited:?}"
    );
    assert_eq!(bytes.len() as u64, layout::file_size(F));
    let m = svc.metrics().snapshot();
    assert_eq!((m.reads_stood_in, m.reads_stalled), (1, 1), "{m:?}");
    // The low levels came first, from their one chunk: the stand-ins are
    // that imagery scaled up, close to the real picture; neutral fill
    // would be about 9 dB.
    let level0 = decode_level(&bytes, F, 0);
    let db = psnr(&expected_level(&id, 0), &level0);
    assert!(
        db > 15.0,
        "level 0 stood in from the low levels: {db:.1} dB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_finish_the_oldest_first() {
    let server = server(20, Some(8.0)).await;
    // Few requests in flight: the rest wait in line at the gate.
    let svc = service(
        &server,
        256,
        ServiceConfig {
            fetch: FetchConfig {
                max_in_flight: 8,
                ..FetchConfig::default()
            },
            ..ServiceConfig::default()
        },
    );
    // Asked in one order, with visits that started in the reverse order
    // (the last asked is the oldest read).
    let now = Instant::now();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let reads = (0..6u32).map(|i| {
        let (svc, entry, order) = (svc.clone(), svc.entry(&texture(i)), Arc::clone(&order));
        let visit = now - Duration::from_secs(u64::from(i));
        async move {
            svc.read_in_visit(&entry, HEADER, visit).await;
            order.lock().unwrap().push(i);
        }
    });
    join_all(reads).await;
    assert_eq!(*order.lock().unwrap(), [5, 4, 3, 2, 1, 0]);
    assert_eq!(svc.metrics().snapshot().reads_stood_in, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_simultaneous_visits_of_one_texture_read_the_same_bytes() {
    let server = server(20, Some(16.0)).await;
    let svc = service(
        &server,
        256,
        ServiceConfig {
            stall_window: Duration::from_secs(1),
            ..ServiceConfig::default()
        },
    );
    let size = layout::file_size(F);
    // X-Plane reads a close texture whole in pieces of a MiB or more, one
    // visit header first, the other from the end.
    let visit = |backwards: bool| {
        let svc = svc.clone();
        async move {
            let open = svc.open(texture(0));
            let mut pieces: Vec<u64> = (0..size).step_by(1 << 20).collect();
            if backwards {
                pieces.reverse();
            }
            let mut file = vec![0u8; size as usize];
            for at in pieces {
                let len = (size - at).min(1 << 20) as u32;
                let piece = TextureSource::read(&svc, &open, at, len).await;
                file[at as usize..][..piece.len()].copy_from_slice(&piece);
            }
            file
        }
    };
    let (forwards, backwards) = tokio::join!(visit(false), visit(true));
    assert!(forwards == backwards, "one texture, one set of bytes");
    let m = svc.metrics().snapshot();
    assert_eq!(m.reads_stood_in, 0, "{m:?}");
    let db = psnr(
        &expected_level(&texture(0), 0),
        &decode_level(&forwards, F, 0),
    );
    assert!(db >= 30.0, "{db:.1} dB");
}
