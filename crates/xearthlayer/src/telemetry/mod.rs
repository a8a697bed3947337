//! Where the aircraft is: X-Plane's telemetry and what its reads tell.
//!
//! Three sources, each optional, feed one [`Telemetry`] hub:
//! - [`udp`]: the legacy UDP interface (RREF subscriptions, X-Plane 11/12);
//! - [`webapi`]: the local Web API (REST look-up of dataref ids, then a
//!   WebSocket subscription, X-Plane 12.1.1+);
//! - [`inferred`]: the DSF tiles and textures X-Plane reads through our
//!   mounts, with no telemetry at all.
//!
//! Each client runs as its own task, notices when values stop (X-Plane
//! paused, quit or restarted: [`STALE_AFTER`]) and reconnects without a
//! restart of ours. [`motion`] derives track and speed from successive
//! positions, since time compression makes the ground-speed dataref lie;
//! the inferred source derives its own from successive loads.
//! [`spec`] parses the `--telemetry` option.

pub mod hub;
pub mod inferred;
pub mod motion;
pub mod spec;
pub mod udp;
pub mod webapi;

use std::time::Duration;

pub use hub::{Fix, Sample, SourceKind, Telemetry};
pub use inferred::InferredPosition;
pub use motion::Motion;
pub use spec::{TelemetryError, TelemetrySpec};

/// Values older than this mean the simulator went away (X-Plane sends 10-20
/// updates a second while it runs).
pub const STALE_AFTER: Duration = Duration::from_secs(3);

/// The datarefs every client subscribes to, in [`Sample`] field order.
pub const DATAREFS: [&str; 5] = [
    "sim/flightmodel/position/latitude",
    "sim/flightmodel/position/longitude",
    "sim/flightmodel/position/elevation",
    "sim/flightmodel/position/true_psi",
    "sim/flightmodel/position/groundspeed",
];

/// Runs the clients `spec` asks for, feeding `hub`, until the returned
/// handles are aborted (or dropped with the runtime).
pub fn spawn(spec: &TelemetrySpec, hub: &Telemetry) -> Vec<tokio::task::JoinHandle<()>> {
    use std::net::{Ipv4Addr, SocketAddr};
    let local = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    match spec {
        // No client: the mounts' reads alone place the aircraft.
        TelemetrySpec::Off | TelemetrySpec::Inferred => Vec::new(),
        TelemetrySpec::Udp(addr) => vec![tokio::spawn(udp::run(*addr, hub.clone()))],
        TelemetrySpec::WebApi(addr) => vec![tokio::spawn(webapi::run(*addr, hub.clone()))],
        // Both listen; the hub prefers the Web API while it is fresh.
        TelemetrySpec::Auto => vec![
            tokio::spawn(webapi::run(local(webapi::DEFAULT_PORT), hub.clone())),
            tokio::spawn(udp::run(local(udp::DEFAULT_PORT), hub.clone())),
        ],
    }
}
