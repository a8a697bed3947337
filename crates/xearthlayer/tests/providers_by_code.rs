//! Textures come from the provider their name's code stands for: local
//! imagery servers stand in for the built-ins (their URLs replaced, as the
//! configuration allows), a configured code has its own server, a forced
//! provider serves everything, an unmapped code goes to the fallback, and
//! each source has its own disk-cache folder. A filler reply is no data:
//! the chunk gets the lower-zoom stand-in and the texture is not stored.

use std::collections::BTreeMap;
use std::sync::Arc;

use xearthlayer::coord::TextureId;
use xearthlayer::dds::layout::{self, DdsFormat};
use xearthlayer::provider::{
    CodeTarget, ProviderKind, ProviderSetup, Providers, TemplateProvider, TileProvider,
};
use xearthlayer::texture::plan::Unit;
use xearthlayer::texture::{ServiceConfig, TextureService};
use xel_sim::server::{Faults, ImageryServer, ServerConfig};
use xel_sim::verify::{decode_level, expected_level, psnr};

async fn server() -> ImageryServer {
    ImageryServer::start(ServerConfig::default()).await.unwrap()
}

/// Levels 4 and below: one chunk at zoom ZL-4.
async fn read_low(svc: &TextureService, id: &TextureId) {
    let entry = svc.entry(id);
    let low = layout::level_offset(DdsFormat::Bc1, 4)..layout::file_size(DdsFormat::Bc1);
    let bytes = svc.read(&entry, low.clone()).await;
    assert_eq!(bytes.len() as u64, low.end - low.start);
}

fn id(col: u64, code: &str) -> TextureId {
    TextureId::new(25264, col, 16, code).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_texture_comes_from_the_provider_its_code_maps_to() {
    let (bing, arc, naip, go2, dop) = (
        server().await,
        server().await,
        server().await,
        server().await,
        server().await,
    );
    let setup = ProviderSetup {
        urls: BTreeMap::from([
            (ProviderKind::Bing, bing.url_template()),
            (ProviderKind::Arcgis, arc.url_template()),
            (ProviderKind::Naip, naip.url_template()),
            (ProviderKind::Go2, go2.url_template()),
        ]),
        codes: BTreeMap::from([(
            "DOP40".to_string(),
            CodeTarget::Template(dop.url_template()),
        )]),
        ..ProviderSetup::default()
    };
    let cache = tempfile::tempdir().unwrap();
    let svc = TextureService::new(
        Providers::build(&setup).unwrap(),
        ServiceConfig {
            disk_cache: Some((cache.path().to_path_buf(), 1 << 30)),
            ..ServiceConfig::default()
        },
    )
    .unwrap();
    let textures = [
        (id(10368, "BI"), &bing),
        (id(10384, "GO2"), &go2),
        (id(10400, "ARC"), &arc),
        (id(10416, "CA_NAIP"), &naip),
        (id(10432, "DOP40"), &dop),
        // Nothing maps FR2010_: the fallback provider (Bing) serves it.
        (id(10448, "FR2010_"), &bing),
    ];
    for (id, _) in &textures {
        read_low(&svc, id).await;
    }
    for (id, server) in &textures {
        let low = id.chunks_at_level(4).next().unwrap();
        let stats = server.stats();
        assert!(stats.ok >= 1, "{id}: {stats:?}");
        assert_eq!(
            stats.by_zoom.keys().copied().collect::<Vec<_>>(),
            vec![low.zoom],
            "{id}"
        );
    }
    assert_eq!(bing.stats().requests, 2, "BI and the unmapped FR2010_");
    for server in [&arc, &naip, &go2, &dop] {
        assert_eq!(server.stats().requests, 1);
    }
    let unmapped = svc.providers().explain(&textures[5].0);
    assert!(
        unmapped.contains("no provider maps code 'FR2010_'"),
        "{unmapped}"
    );
    assert!(svc.providers().explain(&textures[4].0).contains("[codes]"));

    // Each source has its own disk-cache folder, named after its server.
    svc.flush().await;
    let folders: Vec<String> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for prefix in [
        "bing-127.0.0.1_",
        "arcgis-127.0.0.1_",
        "naip-127.0.0.1_",
        "DOP40-127.0.0.1_",
    ] {
        assert!(
            folders.iter().any(|f| f.starts_with(prefix)),
            "{prefix}: {folders:?}"
        );
    }
    let stored = |key: &str| {
        std::fs::read_dir(cache.path().join(key).join("bc1/16"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let bing_key = svc
        .providers()
        .for_texture(&textures[0].0)
        .cache_key()
        .to_string();
    let dop_key = svc
        .providers()
        .for_texture(&textures[4].0)
        .cache_key()
        .to_string();
    assert_eq!((stored(&bing_key), stored(&dop_key)), (2, 1));

    // Forced: one provider for every texture, whatever the code.
    let forced = ProviderSetup {
        forced: Some(ProviderKind::Arcgis),
        ..setup
    };
    arc.reset_stats();
    let svc =
        TextureService::new(Providers::build(&forced).unwrap(), ServiceConfig::default()).unwrap();
    for (id, _) in &textures {
        read_low(&svc, id).await;
    }
    assert_eq!(arc.stats().requests, textures.len() as u64);
    assert_eq!(bing.stats().requests, 2, "nothing more from the others");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filler_reply_is_replaced_by_the_lower_zoom() {
    let server = ImageryServer::start(ServerConfig {
        faults: Faults {
            filler_zooms: Faults::zooms([16]),
            ..Faults::default()
        },
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let provider: Arc<dyn TileProvider> =
        Arc::new(TemplateProvider::custom(&server.url_template()).unwrap());
    let svc = TextureService::new(
        Arc::clone(&provider),
        ServiceConfig {
            disk_cache: Some((cache.path().to_path_buf(), 1 << 30)),
            ..ServiceConfig::default()
        },
    )
    .unwrap();
    let id = id(10368, "BI");
    let t = svc.texture(&id).await;
    svc.flush().await;
    assert_eq!(t.bytes.len() as u64, layout::file_size(DdsFormat::Bc1));
    assert!(t.degraded);
    let m = svc.metrics().snapshot();
    assert_eq!(m.chunk_filler, 256, "{m:?}");
    assert_eq!(m.chunk_retries, 0, "no data is not retried");
    assert!(server.stats().by_zoom.get(&15).is_some_and(|&n| n > 0));
    // The stand-ins are the zoom-15 imagery upscaled: close to the real
    // picture, nothing like the filler's one colour.
    let level0 = decode_level(&t.bytes, DdsFormat::Bc1, 0);
    assert!(psnr(&expected_level(&id, 0), &level0) > 20.0);
    // Nothing with a filler reaches the disk cache: a new service finds
    // only the low levels there (real imagery, from the zoom-12 chunk) and
    // would build every level-0 strip again.
    let again = TextureService::new(
        provider,
        ServiceConfig {
            disk_cache: Some((cache.path().to_path_buf(), 1 << 30)),
            ..ServiceConfig::default()
        },
    )
    .unwrap();
    let missing = again
        .missing_units(&id, 0..layout::file_size(DdsFormat::Bc1))
        .await;
    assert!(!missing.contains(&Unit::Low), "{missing:?}");
    for strip in 0..16 {
        assert!(
            missing.contains(&Unit::Strip { level: 0, strip }),
            "{missing:?}"
        );
    }
}
