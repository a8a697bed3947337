//! The telemetry clients against the simulated X-Plane (xel-sim): subscribe,
//! values, motion under time compression, X-Plane going away and coming
//! back with new dataref ids.

use std::time::Duration;

use xearthlayer::telemetry::{self, SourceKind, Telemetry, TelemetrySpec};
use xel_sim::xplane::flight::KT;
use xel_sim::xplane::{FlightPlan, SimXPlane, WebApiVersion};

/// Polls `check` until it holds, failing after `within`.
async fn until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn plan() -> FlightPlan {
    FlightPlan {
        start: (47.5, -5.5),
        track_deg: 30.0,
        speed_kt: 250.0,
        time_compression: 4.0,
        elevation_m: 3000.0,
    }
}

async fn values_and_motion(hub: &Telemetry, sim: &SimXPlane, source: SourceKind) {
    until("a fix", Duration::from_secs(5), || {
        hub.fix().is_some_and(|f| f.source == source)
    })
    .await;
    let fix = hub.fix().unwrap();
    let now = sim.position();
    // f32 over UDP and 100 ms between updates: within a few hundred metres.
    assert!(
        (fix.lat - now.0).abs() < 0.01 && (fix.lon - now.1).abs() < 0.01,
        "{fix:?} vs {now:?}"
    );
    // Motion measured from positions shows the time compression that the
    // ground-speed dataref hides.
    until("measured motion", Duration::from_secs(5), || {
        hub.fix()
            .and_then(|f| f.motion)
            .is_some_and(|m| m.speed_mps > 2.0 * 250.0 * KT)
    })
    .await;
    let motion = hub.fix().unwrap().motion.unwrap();
    assert!(
        (motion.speed_mps - 4.0 * 250.0 * KT).abs() < 0.15 * 4.0 * 250.0 * KT,
        "{motion:?}"
    );
    assert!((motion.track_deg - 30.0).abs() < 3.0, "{motion:?}");
}

async fn goes_away_and_comes_back(hub: &Telemetry, sim: &mut SimXPlane, source: SourceKind) {
    sim.go_away();
    until("the fix to go stale", Duration::from_secs(8), || {
        hub.fix().is_none()
    })
    .await;
    sim.come_back().await.unwrap();
    until("the fix to come back", Duration::from_secs(8), || {
        hub.fix().is_some_and(|f| f.source == source)
    })
    .await;
    assert_eq!(hub.reconnects(source), 1);
    let (fix, now) = (hub.fix().unwrap(), sim.position());
    assert!((fix.lat - now.0).abs() < 0.01, "{fix:?} vs {now:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_subscribes_follows_and_survives_a_restart() {
    let mut sim = SimXPlane::start(plan()).await.unwrap();
    let hub = Telemetry::new();
    let spec = TelemetrySpec::Udp(sim.udp_addr());
    let clients = telemetry::spawn(&spec, &hub);
    values_and_motion(&hub, &sim, SourceKind::Udp).await;
    goes_away_and_comes_back(&hub, &mut sim, SourceKind::Udp).await;
    assert_eq!(sim.udp_subscriptions(), telemetry::DATAREFS.len());
    // A client that stops cancels its subscriptions: X-Plane stops sending.
    clients.iter().for_each(|c| c.abort());
    until(
        "the subscriptions cancelled",
        Duration::from_secs(5),
        || sim.udp_subscriptions() == 0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_api_looks_up_subscribes_and_survives_a_restart_with_new_ids() {
    let mut sim = SimXPlane::start(plan()).await.unwrap();
    let hub = Telemetry::new();
    let spec = TelemetrySpec::WebApi(sim.web_addr());
    let clients = telemetry::spawn(&spec, &hub);
    values_and_motion(&hub, &sim, SourceKind::WebApi).await;
    let http = reqwest::Client::new();
    let (version, before) = telemetry::webapi::lookup_ids(&http, sim.web_addr())
        .await
        .unwrap();
    assert_eq!(version, "v2");
    goes_away_and_comes_back(&hub, &mut sim, SourceKind::WebApi).await;
    let (_, after) = telemetry::webapi::lookup_ids(&http, sim.web_addr())
        .await
        .unwrap();
    assert_ne!(before, after, "a restarted X-Plane has new dataref ids");
    clients.iter().for_each(|c| c.abort());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_api_v1_of_x_plane_12_1_1_is_spoken_too() {
    let sim = SimXPlane::start_with_web_api(plan(), WebApiVersion::V1)
        .await
        .unwrap();
    let hub = Telemetry::new();
    let clients = telemetry::spawn(&TelemetrySpec::WebApi(sim.web_addr()), &hub);
    values_and_motion(&hub, &sim, SourceKind::WebApi).await;
    let http = reqwest::Client::new();
    let (version, _) = telemetry::webapi::lookup_ids(&http, sim.web_addr())
        .await
        .unwrap();
    assert_eq!(version, "v1");
    // That X-Plane has no v2 routes, and no root endpoint.
    for path in [
        "api",
        "api/v2/datarefs?filter[name]=sim/flightmodel/position/latitude",
    ] {
        let url = format!("http://{}/{path}", sim.web_addr());
        let status = http.get(url).send().await.unwrap().status();
        assert_eq!(status, 404, "{path}");
    }
    clients.iter().for_each(|c| c.abort());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_api_rest_answers_as_x_plane_does() {
    let sim = SimXPlane::start(plan()).await.unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://{}", sim.web_addr());
    let get = |url: String| {
        let http = http.clone();
        async move {
            let response = http.get(url).send().await.unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value =
                serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
            (status, body)
        }
    };
    let (status, found) = get(format!(
        "{base}/api/v2/datarefs?filter[name]=sim/flightmodel/position/latitude"
    ))
    .await;
    assert_eq!(status, 200);
    let id = found["data"][0]["id"].as_u64().unwrap();
    assert_eq!(
        found["data"][0]["name"],
        "sim/flightmodel/position/latitude"
    );
    let (status, value) = get(format!("{base}/api/v2/datarefs/{id}/value")).await;
    assert_eq!(status, 200);
    assert!((value["data"].as_f64().unwrap() - sim.position().0).abs() < 0.01);
    let (_, none) = get(format!("{base}/api/v2/datarefs?filter[name]=sim/no/such")).await;
    assert_eq!(none["data"].as_array().map(Vec::len), Some(0));
    let (status, _) = get(format!("{base}/api/v2/datarefs/999999/value")).await;
    assert_eq!(status, 404);
}
