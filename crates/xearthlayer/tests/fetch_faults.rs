//! The download client against the local imagery server's faults: every
//! attempt ends within its timeouts, `Retry-After` is honoured, the
//! per-provider limit adapts, a failing provider fails fast and is probed
//! later, fillers are no data, and permits always come back.
//!
//! These talk real HTTP over loopback, so they run on the real clock with
//! short timeouts (tokio's paused clock would fire timeouts while a reply
//! is on its way); the pure timing rules are tested with paused time in
//! `fetch::gate` and `fetch::health`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use xearthlayer::coord::ChunkCoord;
use xearthlayer::fetch::gate::InFlight;
use xearthlayer::fetch::{FetchConfig, FetchError, ImageryClient, WorkClass};
use xearthlayer::metrics::Metrics;
use xearthlayer::provider::{ProviderKind, ProviderSettings, TemplateProvider, TileProvider};
use xel_sim::server::{Faults, ImageryServer, ServerConfig};

const CHUNK: ChunkCoord = ChunkCoord {
    zoom: 16,
    x: 10368,
    y: 25264,
};

fn chunk(i: u32) -> ChunkCoord {
    ChunkCoord {
        x: CHUNK.x + i,
        ..CHUNK
    }
}

async fn server(faults: Faults) -> ImageryServer {
    ImageryServer::start(ServerConfig {
        faults,
        ..ServerConfig::default()
    })
    .await
    .unwrap()
}

fn provider(server: &ImageryServer, ceiling: usize) -> Arc<dyn TileProvider> {
    Arc::new(
        TemplateProvider::custom(&server.url_template())
            .unwrap()
            .with_max_in_flight(ceiling),
    )
}

fn client(config: FetchConfig) -> ImageryClient {
    ImageryClient::new(config, Arc::new(Metrics::default())).unwrap()
}

fn quick() -> FetchConfig {
    FetchConfig {
        first_byte_timeout: Duration::from_millis(300),
        body_timeout: Duration::from_millis(300),
        backoff: Duration::from_millis(5),
        retries: 0,
        ..FetchConfig::default()
    }
}

fn assert_idle(client: &ImageryClient) {
    assert_eq!(client.in_flight(), InFlight::default());
    assert_eq!(client.metrics().requests_in_flight.get(), 0);
    assert_eq!(client.metrics().requests_live.get(), 0);
    assert_eq!(client.metrics().requests_background.get(), 0);
}

#[tokio::test]
async fn a_drip_is_ended_by_the_body_timeout() {
    let server = server(Faults {
        drip: 1.0,
        drip_interval: Duration::from_millis(20),
        ..Faults::default()
    })
    .await;
    let client = client(quick());
    let err = client
        .fetch(&provider(&server, 8), CHUNK, WorkClass::Live)
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::BodyTimeout(_)), "{err}");
    assert_eq!(client.metrics().chunk_timeouts.get(), 1);
    assert_idle(&client);
}

#[tokio::test]
async fn a_hang_is_ended_by_the_first_byte_timeout() {
    let server = server(Faults {
        hang: 1.0,
        ..Faults::default()
    })
    .await;
    let client = client(quick());
    let err = client
        .fetch(&provider(&server, 8), CHUNK, WorkClass::Live)
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::FirstByteTimeout(_)), "{err}");
    assert_idle(&client);
}

#[tokio::test]
async fn retry_after_is_waited_out_then_the_chunk_comes() {
    let server = server(Faults {
        retry_after_secs: 1,
        ..Faults::default()
    })
    .await;
    server.answer_next(1, 429);
    let client = client(FetchConfig {
        retries: 2,
        ..quick()
    });
    let started = Instant::now();
    let body = client
        .fetch(&provider(&server, 8), CHUNK, WorkClass::Live)
        .await
        .unwrap();
    assert!(!body.is_empty());
    // The backoff alone is milliseconds: the second request waited for
    // the second the provider asked for.
    assert!(started.elapsed() >= Duration::from_secs(1));
    let stats = server.stats();
    assert_eq!((stats.requests, stats.throttled, stats.ok), (2, 1, 1));
    assert_eq!(client.metrics().chunk_throttled.get(), 1);
}

#[tokio::test]
async fn in_flight_goes_down_under_throttling_and_back_up() {
    let server = server(Faults::default()).await;
    let provider = provider(&server, 16);
    let client = client(quick());
    assert_eq!(client.limit(provider.as_ref()), 16);
    server.answer_next(16, 429);
    let throttled = join_all((0..16).map(|i| client.fetch(&provider, chunk(i), WorkClass::Live)));
    assert!(throttled.await.iter().all(|r| r.is_err()));
    assert_eq!(
        client.limit(provider.as_ref()),
        8,
        "one cut per window of replies"
    );
    // Under the cut limit, the server sees at most 8 at once.
    server.reset_stats();
    server.set_latency(Duration::from_millis(20), Duration::ZERO);
    let answered = join_all((0..8).map(|i| client.fetch(&provider, chunk(i), WorkClass::Live)));
    assert!(answered.await.iter().all(|r| r.is_ok()));
    assert!(server.stats().peak_in_flight <= 8);
    // Answers grow it back to its ceiling.
    for i in 0..8 {
        client
            .fetch(&provider, chunk(i), WorkClass::Live)
            .await
            .unwrap();
    }
    assert_eq!(client.limit(provider.as_ref()), 16);
    // Cuts closer than a second apart count once; this is a new episode.
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.answer_next(16, 503);
    let unavailable = join_all((0..16).map(|i| client.fetch(&provider, chunk(i), WorkClass::Live)));
    assert!(unavailable.await.iter().all(|r| r.is_err()));
    assert!(
        client.limit(provider.as_ref()) < 16,
        "503 bursts cut it too"
    );
    assert_idle(&client);
}

#[tokio::test]
async fn a_failing_provider_fails_fast_and_is_probed_later() {
    let server = server(Faults {
        reset: 1.0,
        ..Faults::default()
    })
    .await;
    let provider = provider(&server, 8);
    let client = client(FetchConfig {
        failures_to_trip: 3,
        failing_for: Duration::ZERO,
        probe_after: Duration::from_millis(200),
        ..quick()
    });
    for i in 0..3 {
        let err = client
            .fetch(&provider, chunk(i), WorkClass::Live)
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::Transport(_)), "{err}");
    }
    let asked = server.stats().requests;
    let err = client
        .fetch(&provider, chunk(9), WorkClass::Live)
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert_eq!(
        server.stats().requests,
        asked,
        "failed fast, without a request"
    );
    assert!(client.is_failing(provider.as_ref()));
    // Healthy again: after the probe interval one request probes, and its
    // success opens the way for everything.
    server.set_faults(Faults::default());
    tokio::time::sleep(Duration::from_millis(250)).await;
    client
        .fetch(&provider, chunk(0), WorkClass::Live)
        .await
        .unwrap();
    assert!(!client.is_failing(provider.as_ref()));
    let all = join_all((0..8).map(|i| client.fetch(&provider, chunk(i), WorkClass::Live)));
    assert!(all.await.iter().all(|r| r.is_ok()));
    assert_eq!(client.metrics().chunk_fast_failed.get(), 1);
    assert_idle(&client);
}

#[tokio::test]
async fn resets_and_server_errors_are_retried() {
    let server = server(Faults {
        reset: 0.2,
        server_error: 0.2,
        ..Faults::default()
    })
    .await;
    let provider = provider(&server, 8);
    let client = client(FetchConfig {
        retries: 8,
        failures_to_trip: 1000,
        ..quick()
    });
    let all = join_all((0..8).map(|i| client.fetch(&provider, chunk(i), WorkClass::Live)));
    for result in all.await {
        result.unwrap();
    }
    assert!(client.metrics().chunk_retries.get() > 0);
}

#[tokio::test]
async fn cancelled_downloads_give_their_permits_back_at_once() {
    let server = server(Faults {
        hang: 1.0,
        ..Faults::default()
    })
    .await;
    let provider = provider(&server, 8);
    let client = client(FetchConfig {
        first_byte_timeout: Duration::from_secs(60),
        ..quick()
    });
    let all = join_all((0..20).map(|i| client.fetch(&provider, chunk(i), WorkClass::Live)));
    assert!(tokio::time::timeout(Duration::from_millis(200), all)
        .await
        .is_err());
    assert_idle(&client);
    // The freed permits serve the next requests at once.
    server.set_faults(Faults::default());
    client
        .fetch(&provider, CHUNK, WorkClass::Live)
        .await
        .unwrap();
}

#[tokio::test]
async fn background_never_takes_a_permit_while_live_work_waits() {
    let server = ImageryServer::start(ServerConfig {
        latency: Duration::from_millis(100),
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let provider = provider(&server, 64);
    let client = client(FetchConfig {
        max_in_flight: 1,
        max_background: 1,
        ..quick()
    });
    let order = Mutex::new(Vec::new());
    let run = |i: u32, class: WorkClass, head_start: u64| {
        let (client, provider, order) = (&client, &provider, &order);
        async move {
            tokio::time::sleep(Duration::from_millis(head_start)).await;
            client.fetch(provider, chunk(i), class).await.unwrap();
            order.lock().unwrap().push((i, class));
        }
    };
    // A live request holds the only permit; then a background request
    // queues, then a live one: the live one goes first.
    join_all([
        run(0, WorkClass::Live, 0),
        run(2, WorkClass::Background, 20),
        run(3, WorkClass::Live, 40),
    ])
    .await;
    let order = order.into_inner().unwrap();
    let pos = |i| order.iter().position(|&(j, _)| j == i).unwrap();
    assert!(pos(3) < pos(2), "{order:?}");
    assert_idle(&client);
}

#[tokio::test]
async fn missing_imagery_and_fillers_are_no_data_and_not_retried() {
    let server = server(Faults {
        not_found_zooms: Faults::zooms([17]),
        ..Faults::default()
    })
    .await;
    let client = client(FetchConfig {
        retries: 3,
        ..quick()
    });
    let custom = provider(&server, 8);
    let deep = ChunkCoord {
        zoom: 17,
        x: 2 * CHUNK.x,
        y: 2 * CHUNK.y,
    };
    let err = client
        .fetch(&custom, deep, WorkClass::Live)
        .await
        .unwrap_err();
    assert!(err.is_no_data(), "{err}");
    assert_eq!(server.stats().requests, 1, "not retried");
    client.fetch(&custom, CHUNK, WorkClass::Live).await.unwrap();

    // A tile of one colour, from any provider.
    server.set_faults(Faults {
        filler_uniform: 1.0,
        ..Faults::default()
    });
    let err = client
        .fetch(&custom, CHUNK, WorkClass::Live)
        .await
        .unwrap_err();
    assert!(err.is_no_data(), "{err}");
    // A "no imagery" picture marked the way Bing marks it: no data from
    // the Bing provider, imagery from one that knows no such marker.
    server.set_faults(Faults {
        filler_marked: 1.0,
        ..Faults::default()
    });
    let bing: Arc<dyn TileProvider> = Arc::new(
        TemplateProvider::built_in(
            ProviderKind::Bing,
            &ProviderSettings::default(),
            Some(&server.url_template()),
        )
        .unwrap(),
    );
    let err = client
        .fetch(&bing, CHUNK, WorkClass::Live)
        .await
        .unwrap_err();
    assert!(err.is_no_data(), "{err}");
    client.fetch(&custom, CHUNK, WorkClass::Live).await.unwrap();
    assert_eq!(client.metrics().chunk_filler.get(), 2);
    // Beyond the provider's zooms: no data without asking.
    let usgs: Arc<dyn TileProvider> = Arc::new(
        TemplateProvider::built_in(
            ProviderKind::Usgs,
            &ProviderSettings::default(),
            Some(&server.url_template()),
        )
        .unwrap(),
    );
    let asked = server.stats().requests;
    assert!(client
        .fetch(&usgs, deep, WorkClass::Live)
        .await
        .unwrap_err()
        .is_no_data());
    assert_eq!(server.stats().requests, asked);
    assert_idle(&client);
}

/// A URL template of a loopback port where nothing listens.
fn refused_template() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}/{{z}}/{{x}}/{{y}}.jpg")
}

/// A server that answers every request with `status` and no body.
async fn answering(status: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    format!("http://127.0.0.1:{port}/{{z}}/{{x}}/{{y}}.jpg")
}

#[tokio::test]
async fn a_failing_provider_says_why_and_since_when() {
    use xearthlayer::fetch::{Cause, ProviderState};
    let refused: Arc<dyn TileProvider> =
        Arc::new(TemplateProvider::custom(&refused_template()).unwrap());
    let client = client(FetchConfig {
        failures_to_trip: 3,
        failing_for: Duration::ZERO,
        probe_after: Duration::from_secs(60),
        ..quick()
    });
    assert!(client.provider_reports().is_empty(), "nothing asked yet");
    let before = std::time::SystemTime::now();
    for i in 0..4 {
        assert!(client
            .fetch(&refused, chunk(i), WorkClass::Live)
            .await
            .is_err());
    }
    let reports = client.provider_reports();
    assert_eq!(reports.len(), 1);
    let report = &reports[0];
    assert_eq!(report.last_cause, Some(Cause::ConnectionRefused));
    assert_eq!(report.failures, 3, "the fast failure is not an attempt");
    match report.state {
        ProviderState::Failing { since, fast } => assert!(since >= before && fast),
        ref other => panic!("{other:?}"),
    }
    assert!(Cause::ConnectionRefused.hint().contains("address"));

    // A provider that refuses the requests themselves: a hint about tokens.
    let forbidden: Arc<dyn TileProvider> =
        Arc::new(TemplateProvider::custom(&answering("403 Forbidden").await).unwrap());
    let err = client
        .fetch(&forbidden, chunk(0), WorkClass::Live)
        .await
        .unwrap_err();
    assert_eq!(Cause::of(&err), Some(Cause::Refused(403)));
    let report = client
        .provider_reports()
        .into_iter()
        .find(|r| r.key == forbidden.cache_key())
        .unwrap();
    assert_eq!(report.last_cause, Some(Cause::Refused(403)));
    assert!(report.last_cause.unwrap().hint().contains("token"));
    assert!(
        matches!(report.state, ProviderState::Failing { fast: false, .. }),
        "failing, though not failing fast (retrying will not help): {:?}",
        report.state
    );
}
