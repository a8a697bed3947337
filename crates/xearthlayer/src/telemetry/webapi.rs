//! X-Plane's local Web API (12.1.1 and later): REST look-up of dataref ids,
//! then a WebSocket subscription to their values.
//!
//! The dataref calls are the same in v1 (X-Plane 12.1.1 to 12.1.3) and v2
//! (12.1.4 on, which later versions keep serving): the client asks v2 first
//! and speaks v1 to a simulator that has no v2 routes.
//!
//! Ids are valid for one simulator session, so every (re)connection looks
//! them up again. X-Plane sends only values that changed: when nothing
//! arrives for [`STALE_AFTER`] the client asks one value over REST; if
//! X-Plane answers, it is paused and the last position still holds,
//! otherwise the session ends and the client starts over.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::hub::{Sample, SourceKind, Telemetry};
use super::{DATAREFS, STALE_AFTER};

/// X-Plane's default Web API port.
pub const DEFAULT_PORT: u16 = 8086;
/// Bound on every REST call and on the WebSocket handshake.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// The API versions spoken, preferred first.
const VERSIONS: [&str; 2] = ["v2", "v1"];

#[derive(Debug, thiserror::Error)]
pub enum WebApiError {
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("websocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("unexpected answer: {0}")]
    Protocol(String),
    #[error("timed out")]
    Timeout,
}

/// Looks up [`DATAREFS`] and streams their values into `telemetry` until
/// aborted, starting over whenever X-Plane goes away.
pub async fn run(xplane: SocketAddr, telemetry: Telemetry) {
    // Its own small client: these calls go to the local simulator, not to an
    // imagery provider, and must not count as (or wait behind) downloads.
    let http = match reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        .no_proxy()
        .build()
    {
        Ok(http) => http,
        Err(err) => {
            tracing::warn!(%err, "web api telemetry disabled");
            return;
        }
    };
    let mut failures = 0u32;
    loop {
        match session(&http, xplane, &telemetry).await {
            Ok(()) => failures = 0,
            Err(err) => {
                failures += 1;
                if failures == 1 {
                    tracing::debug!(%xplane, %err, "web api telemetry unavailable; will retry");
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The API version X-Plane speaks and the ids of [`DATAREFS`] in this
/// simulator session.
pub async fn lookup_ids(
    http: &reqwest::Client,
    xplane: SocketAddr,
) -> Result<(&'static str, Vec<u64>), WebApiError> {
    for version in VERSIONS {
        match lookup_ids_in(http, xplane, version).await {
            // No such route: an older X-Plane.
            Err(WebApiError::Http(err)) if err.status() == Some(StatusCode::NOT_FOUND) => continue,
            found => return found.map(|ids| (version, ids)),
        }
    }
    Err(WebApiError::Protocol(format!(
        "no dataref look-up in API versions {VERSIONS:?}"
    )))
}

async fn lookup_ids_in(
    http: &reqwest::Client,
    xplane: SocketAddr,
    version: &str,
) -> Result<Vec<u64>, WebApiError> {
    let mut ids = Vec::with_capacity(DATAREFS.len());
    for name in DATAREFS {
        let url = format!("http://{xplane}/api/{version}/datarefs?filter[name]={name}");
        let answer: Value = get_json(http, &url).await?;
        let id = answer["data"]
            .as_array()
            .and_then(|found| found.iter().find(|d| d["name"] == name))
            .and_then(|d| d["id"].as_u64())
            .ok_or_else(|| WebApiError::Protocol(format!("no dataref {name}")))?;
        ids.push(id);
    }
    Ok(ids)
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, WebApiError> {
    let response = http.get(url).send().await?.error_for_status()?;
    let body = response.bytes().await?;
    serde_json::from_slice(&body).map_err(|err| WebApiError::Protocol(err.to_string()))
}

/// One connection: ends when X-Plane stops answering.
async fn session(
    http: &reqwest::Client,
    xplane: SocketAddr,
    telemetry: &Telemetry,
) -> Result<(), WebApiError> {
    let (version, ids) = lookup_ids(http, xplane).await?;
    let (mut socket, _) = tokio::time::timeout(
        CALL_TIMEOUT,
        tokio_tungstenite::connect_async(format!("ws://{xplane}/api/{version}")),
    )
    .await
    .map_err(|_| WebApiError::Timeout)??;
    let subscribe = json!({
        "req_id": 1,
        "type": "dataref_subscribe_values",
        "params": { "datarefs": ids.iter().map(|id| json!({ "id": id })).collect::<Vec<_>>() },
    });
    socket.send(Message::text(subscribe.to_string())).await?;
    let slot_of: HashMap<String, usize> = ids
        .iter()
        .enumerate()
        .map(|(slot, id)| (id.to_string(), slot))
        .collect();
    let mut values = [None::<f64>; DATAREFS.len()];
    let mut connected = false;
    loop {
        let message = match tokio::time::timeout(STALE_AFTER, socket.next()).await {
            Ok(Some(message)) => message?,
            Ok(None) => return Ok(()),
            Err(_) => {
                // Nothing changed, or nobody is there: ask once.
                let url = format!("http://{xplane}/api/{version}/datarefs/{}/value", ids[0]);
                if get_json(http, &url).await.is_err() {
                    tracing::info!(%xplane, "web api telemetry stopped; reconnecting");
                    return Ok(());
                }
                if let Some(sample) = sample_of(&values) {
                    telemetry.report(SourceKind::WebApi, sample);
                }
                continue;
            }
        };
        let Message::Text(text) = message else {
            continue;
        };
        read_update(&text, &slot_of, &mut values).map_err(WebApiError::Protocol)?;
        if let Some(sample) = sample_of(&values) {
            if !connected {
                tracing::info!(%xplane, version, "web api telemetry connected");
                connected = true;
            }
            telemetry.report(SourceKind::WebApi, sample);
        }
    }
}

/// Notes in `values` what one message from X-Plane's WebSocket says (its
/// text comes from outside: anything that is not an update is skipped);
/// an error (the message) only when X-Plane refused the subscription.
fn read_update(
    text: &str,
    slot_of: &HashMap<String, usize>,
    values: &mut [Option<f64>; DATAREFS.len()],
) -> Result<(), String> {
    let Ok(update) = serde_json::from_str::<Value>(text) else {
        return Ok(());
    };
    match update["type"].as_str() {
        Some("result") if update["success"] == false => {
            return Err(text.to_string());
        }
        Some("dataref_update_values") => {}
        _ => return Ok(()),
    }
    let Some(data) = update["data"].as_object() else {
        return Ok(());
    };
    for (id, value) in data {
        if let (Some(&slot), Some(value)) = (slot_of.get(id), value.as_f64()) {
            if let Some(held) = values.get_mut(slot) {
                *held = Some(value);
            }
        }
    }
    Ok(())
}

fn sample_of(values: &[Option<f64>; DATAREFS.len()]) -> Option<Sample> {
    let [Some(lat), Some(lon), Some(elevation_m), Some(heading_deg), Some(groundspeed_mps)] =
        *values
    else {
        return None;
    };
    Some(Sample {
        lat,
        lon,
        elevation_m,
        heading_deg,
        groundspeed_mps,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn slots() -> HashMap<String, usize> {
        (0..DATAREFS.len())
            .map(|i| ((100 + i).to_string(), i))
            .collect()
    }

    #[test]
    fn an_update_fills_its_slots_and_a_refusal_stops() {
        let mut values = [None; DATAREFS.len()];
        let update = r#"{"type":"dataref_update_values","data":{"100":47.5,"101":-5.6,"999":1}}"#;
        read_update(update, &slots(), &mut values).unwrap();
        assert_eq!(values[..2], [Some(47.5), Some(-5.6)]);
        let refused = r#"{"type":"result","req_id":1,"success":false}"#;
        assert!(read_update(refused, &slots(), &mut values).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Fuzz: whatever X-Plane's socket sends, nothing panics.
        #[test]
        fn fuzz_updates_from_outside(
            text in prop_oneof![
                "\\PC{0,200}",
                // Near-valid updates: the right shape, odd values.
                ("[0-9]{1,4}", "\\PC{0,12}").prop_map(|(id, v)| format!(
                    r#"{{"type":"dataref_update_values","data":{{"{id}":{v}}}}}"#
                )),
            ]
        ) {
            let mut values = [None; DATAREFS.len()];
            let _ = read_update(&text, &slots(), &mut values);
        }
    }
}
