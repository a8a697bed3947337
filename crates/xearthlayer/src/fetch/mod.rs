//! The one shared HTTP client for imagery downloads.
//!
//! - [`client`]: [`ImageryClient`]: one chunk from one provider, with
//!   connect, first-byte and whole-body timeouts, retries with backoff and
//!   jitter, `Retry-After` honoured, fillers recognised as no data.
//! - [`gate`]: the download permits: a global bound, a bounded share for
//!   background work that never takes a permit while live work waits, and
//!   per provider an adaptive limit (halved when it throttles or stalls,
//!   grown again as it answers) and its health.
//! - [`health`]: the circuit breaker of one provider: after repeated
//!   failures requests fail fast, and it is probed again later.
//! - [`cause`]: why a provider's requests fail ([`Cause`]: connection
//!   refused, DNS, TLS, an HTTP status, a stall), with a hint for the user.
//! - [`standing`]: how each provider is doing (healthy, throttled, failing
//!   since when) and the cause of its last failures, as the client saw it.
//! - [`retry_after`]: reading the `Retry-After` header.
//! - [`error`]: [`FetchError`], which says whether a chunk has no data (use
//!   a lower zoom) or its provider is unavailable (failed fast).

pub mod cause;
pub mod client;
pub mod error;
pub mod gate;
pub mod health;
pub mod retry_after;
pub mod standing;

use std::time::Duration;

pub use cause::Cause;
pub use client::ImageryClient;
pub use error::FetchError;
pub use standing::{ProviderReport, ProviderState};

/// Whether a reader waits for the work now (one notion for downloads,
/// builds and CPU).
pub use crate::sched::WorkClass;

/// Limits of the shared client.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// Time to open a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Time from sending a request to its reply's headers, connecting
    /// included: a hung provider ends here.
    pub first_byte_timeout: Duration,
    /// Time from the headers to the last body byte: a drip ends here.
    pub body_timeout: Duration,
    /// Attempts after the first.
    pub retries: u32,
    /// First backoff; doubles per retry, plus up to 100% jitter.
    pub backoff: Duration,
    /// Longest `Retry-After` waited out; a provider asking for longer is
    /// unavailable (failed fast) until then.
    pub max_retry_after: Duration,
    /// Largest accepted body; chunks are about 13 KB.
    pub max_body_bytes: usize,
    /// Requests in flight across the whole process.
    pub max_in_flight: usize,
    /// Of those, at most this many for background work.
    pub max_background: usize,
    /// Failed attempts in a row, over at least `failing_for`, after which
    /// a provider fails fast.
    pub failures_to_trip: u32,
    pub failing_for: Duration,
    /// How long it then fails fast before one probe; doubles while probes
    /// fail, up to `max_probe_after`.
    pub probe_after: Duration,
    pub max_probe_after: Duration,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            connect_timeout: Duration::from_secs(3),
            first_byte_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(5),
            retries: 3,
            backoff: Duration::from_millis(100),
            max_retry_after: Duration::from_secs(30),
            max_body_bytes: 4 << 20,
            max_in_flight: 256,
            max_background: 64,
            failures_to_trip: 8,
            failing_for: Duration::from_secs(2),
            probe_after: Duration::from_secs(2),
            max_probe_after: Duration::from_secs(60),
        }
    }
}
