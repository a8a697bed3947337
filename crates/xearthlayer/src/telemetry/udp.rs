//! X-Plane's legacy UDP interface: RREF subscriptions.
//!
//! A client sends one `RREF` request per dataref (frequency in Hz, its own
//! index, the NUL-padded name) to X-Plane's port; X-Plane then sends
//! `RREF` + one byte + (index, f32 value) pairs back to the sender's address
//! at that rate, until asked for frequency 0. Subscriptions die with the
//! simulator, so the client subscribes again whenever values stop coming;
//! a subscription it gives up (values stopped, or the client stops) is
//! cancelled, so an X-Plane that only froze for a while does not go on
//! sending to a port nobody reads.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

use super::hub::{Sample, SourceKind, Telemetry};
use super::{DATAREFS, STALE_AFTER};

/// X-Plane's default UDP port.
pub const DEFAULT_PORT: u16 = 49000;
/// Updates a second asked for.
pub const FREQUENCY_HZ: i32 = 10;
/// Bytes of the dataref name field of a request.
const NAME_LEN: usize = 400;
/// Length of a request: `RREF\0`, frequency, index, name.
pub const REQUEST_LEN: usize = 5 + 4 + 4 + NAME_LEN;

/// One subscription request (frequency 0 unsubscribes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RrefRequest {
    pub frequency: i32,
    pub index: i32,
    pub name: String,
}

impl RrefRequest {
    pub fn encode(&self) -> Vec<u8> {
        let mut packet = Vec::with_capacity(REQUEST_LEN);
        packet.extend_from_slice(b"RREF\0");
        packet.extend_from_slice(&self.frequency.to_le_bytes());
        packet.extend_from_slice(&self.index.to_le_bytes());
        let name = self.name.as_bytes();
        packet.extend_from_slice(&name[..name.len().min(NAME_LEN - 1)]);
        packet.resize(REQUEST_LEN, 0);
        packet
    }

    /// Reads a request as X-Plane does; `None` for anything else.
    pub fn decode(packet: &[u8]) -> Option<RrefRequest> {
        if packet.len() != REQUEST_LEN || !packet.starts_with(b"RREF\0") {
            return None;
        }
        let int = |at: usize| i32::from_le_bytes(packet[at..at + 4].try_into().unwrap_or([0; 4]));
        let name = &packet[13..];
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        Some(RrefRequest {
            frequency: int(5),
            index: int(9),
            name: std::str::from_utf8(&name[..end]).ok()?.to_string(),
        })
    }
}

/// X-Plane's answer: `RREF` + one byte + (index, value) pairs.
pub fn encode_values(values: &[(i32, f32)]) -> Vec<u8> {
    let mut packet = Vec::with_capacity(5 + values.len() * 8);
    packet.extend_from_slice(b"RREF,");
    for (index, value) in values {
        packet.extend_from_slice(&index.to_le_bytes());
        packet.extend_from_slice(&value.to_le_bytes());
    }
    packet
}

/// The (index, value) pairs of an answer; `None` if it is not one.
pub fn decode_values(packet: &[u8]) -> Option<Vec<(i32, f32)>> {
    let body = packet.strip_prefix(b"RREF")?.get(1..)?;
    if body.len() % 8 != 0 {
        return None;
    }
    Some(
        body.chunks_exact(8)
            .map(|pair| {
                let (i, v) = pair.split_at(4);
                (
                    i32::from_le_bytes(i.try_into().unwrap_or([0; 4])),
                    f32::from_le_bytes(v.try_into().unwrap_or([0; 4])),
                )
            })
            .collect(),
    )
}

/// Subscribes to [`DATAREFS`] at `xplane` and reports to `telemetry` until
/// aborted, subscribing again whenever values stop for [`STALE_AFTER`].
pub async fn run(xplane: SocketAddr, telemetry: Telemetry) {
    let mut attempt = 0u32;
    loop {
        match session(xplane, &telemetry).await {
            Ok(()) => attempt = 0,
            Err(err) => {
                attempt += 1;
                if attempt == 1 {
                    tracing::debug!(%xplane, %err, "udp telemetry unavailable; will retry");
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One subscription: ends (`Ok`) when values stop.
async fn session(xplane: SocketAddr, telemetry: &Telemetry) -> std::io::Result<()> {
    let bind: SocketAddr = if xplane.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let socket = UdpSocket::bind(bind).await?;
    socket.connect(xplane).await?;
    let subscription = Subscription(socket);
    for request in requests(FREQUENCY_HZ) {
        subscription.0.send(&request).await?;
    }
    let socket = &subscription.0;
    let mut values = [None::<f64>; DATAREFS.len()];
    let mut buf = [0u8; 2048];
    let mut reported = false;
    loop {
        let len = match tokio::time::timeout(STALE_AFTER, socket.recv(&mut buf)).await {
            Ok(result) => result?,
            Err(_) => {
                if reported {
                    tracing::info!(%xplane, "udp telemetry stopped; subscribing again");
                }
                return Ok(());
            }
        };
        let Some(pairs) = decode_values(&buf[..len]) else {
            continue;
        };
        for (index, value) in pairs {
            if let Some(slot) = usize::try_from(index).ok().and_then(|i| values.get_mut(i)) {
                *slot = Some(f64::from(value));
            }
        }
        if let [Some(lat), Some(lon), Some(elevation_m), Some(heading_deg), Some(groundspeed_mps)] =
            values
        {
            if !reported {
                tracing::info!(%xplane, "udp telemetry connected");
                reported = true;
            }
            telemetry.report(
                SourceKind::Udp,
                Sample {
                    lat,
                    lon,
                    elevation_m,
                    heading_deg,
                    groundspeed_mps,
                },
            );
        }
    }
}

/// The requests for every one of [`DATAREFS`] at `frequency`.
fn requests(frequency: i32) -> impl Iterator<Item = Vec<u8>> {
    DATAREFS.iter().enumerate().map(move |(index, name)| {
        RrefRequest {
            frequency,
            index: index as i32,
            name: (*name).to_string(),
        }
        .encode()
    })
}

/// A socket subscribed at X-Plane; dropping it (the session ended or the
/// task was aborted) unsubscribes.
struct Subscription(UdpSocket);

impl Drop for Subscription {
    fn drop(&mut self) {
        // A UDP send does not block: safe here, and best effort (X-Plane
        // may be gone).
        for request in requests(0) {
            let _ = self.0.try_send(&request);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes X-Plane expects, written out by hand from its protocol
    /// (DOMAIN.md), not from this module's encoder: a layout bug shared by
    /// the encoder and the simulated X-Plane (which uses it) fails here.
    #[test]
    fn a_request_is_exactly_x_planes_413_bytes() {
        let name = "sim/flightmodel/position/latitude";
        let mut golden: Vec<u8> = b"RREF\0".to_vec();
        golden.extend([0x0a, 0x00, 0x00, 0x00]); // 10 Hz, int32 LE
        golden.extend([0x02, 0x01, 0x00, 0x00]); // index 258, int32 LE
        golden.extend(name.bytes());
        golden.extend(std::iter::repeat_n(0u8, 400 - name.len()));
        assert_eq!(golden.len(), 413);
        let request = RrefRequest {
            frequency: 10,
            index: 258,
            name: name.to_string(),
        };
        assert_eq!(request.encode(), golden);
        assert_eq!(RrefRequest::decode(&golden), Some(request));
    }

    #[test]
    fn an_answer_built_by_hand_decodes() {
        let mut answer: Vec<u8> = b"RREF,".to_vec();
        answer.extend([0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3d, 0x42]); // 0: 47.25
        answer.extend([0x02, 0x01, 0x00, 0x00, 0x00, 0x00, 0xd0, 0xc0]); // 258: -6.5
        assert_eq!(decode_values(&answer), Some(vec![(0, 47.25), (258, -6.5)]));
        // The byte after "RREF" is not part of the values, whatever it is.
        answer[4] = b'O';
        assert_eq!(decode_values(&answer), Some(vec![(0, 47.25), (258, -6.5)]));
        answer[4] = b',';
        assert_eq!(encode_values(&[(0, 47.25), (258, -6.5)]), answer);
    }

    #[test]
    fn requests_and_answers_round_trip() {
        let request = RrefRequest {
            frequency: 10,
            index: 3,
            name: DATAREFS[3].to_string(),
        };
        let packet = request.encode();
        assert_eq!(packet.len(), 413);
        assert_eq!(&packet[..5], b"RREF\0");
        assert_eq!(RrefRequest::decode(&packet), Some(request));
        let answer = encode_values(&[(0, 47.25), (1, -6.5)]);
        assert_eq!(decode_values(&answer), Some(vec![(0, 47.25), (1, -6.5)]));
        assert_eq!(decode_values(b"RREF,\x01\x00"), None);
        assert_eq!(decode_values(b"DATA,"), None);
        assert_eq!(RrefRequest::decode(&packet[..100]), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]

        /// Fuzz: any datagram, of either kind, decodes or is refused.
        #[test]
        fn fuzz_rref_packets(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            prefix in proptest::prop_oneof![
                proptest::strategy::Just(b"RREF\0".to_vec()),
                proptest::strategy::Just(b"RREF,".to_vec()),
                proptest::strategy::Just(Vec::new()),
            ],
        ) {
            let packet = [prefix, body].concat();
            let _ = RrefRequest::decode(&packet);
            if let Some(values) = decode_values(&packet) {
                proptest::prop_assert_eq!(values.len(), (packet.len() - 5) / 8);
            }
        }
    }
}
