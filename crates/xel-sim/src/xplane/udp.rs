//! X-Plane's UDP interface as the simulation speaks it: `RREF` requests in,
//! `RREF` answers back to each subscriber's address at its frequency.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use xearthlayer::telemetry::udp::{encode_values, RrefRequest};

use super::flight::Flight;

/// Serves `socket` until aborted, keeping `subscribed` at the number of
/// live subscriptions.
pub async fn serve(socket: UdpSocket, flight: Arc<Mutex<Flight>>, subscribed: Arc<AtomicUsize>) {
    // (subscriber, its index) -> (dataref, frequency)
    let mut subscriptions: HashMap<(SocketAddr, i32), (String, i32)> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut ticks: u64 = 0;
    let mut buf = [0u8; 1024];
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let Ok((len, from)) = received else { continue };
                let Some(request) = RrefRequest::decode(&buf[..len]) else { continue };
                if request.frequency <= 0 {
                    subscriptions.remove(&(from, request.index));
                } else {
                    subscriptions.insert((from, request.index), (request.name, request.frequency));
                }
                subscribed.store(subscriptions.len(), Ordering::Relaxed);
            }
            _ = tick.tick() => {
                ticks += 1;
                let flight = *flight.lock().unwrap_or_else(|e| e.into_inner());
                let mut by_client: HashMap<SocketAddr, Vec<(i32, f32)>> = HashMap::new();
                for ((client, index), (name, frequency)) in &subscriptions {
                    // 20 ticks a second; each subscription at its own rate.
                    let every = (20 / (*frequency).clamp(1, 20)) as u64;
                    if ticks.is_multiple_of(every) {
                        by_client.entry(*client).or_default().push((*index, flight.dataref(name) as f32));
                    }
                }
                for (client, values) in by_client {
                    let _ = socket.send_to(&encode_values(&values), client).await;
                }
            }
        }
    }
}
