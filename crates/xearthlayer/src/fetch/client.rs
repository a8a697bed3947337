//! [`ImageryClient`]: one chunk from one provider.
//!
//! Each attempt holds a permit of the [`Gate`] for as long as it talks to
//! the provider, never while it backs off; the permit goes back when the
//! attempt ends or its future is dropped. A request waits in line by the
//! age of the oldest read that wants it, and moves up when an older read
//! joins. Every attempt is bounded: the connection by `connect_timeout`,
//! the reply's headers by `first_byte_timeout`, the whole body by
//! `body_timeout` (a 1 byte/s drip ends there), its size by
//! `max_body_bytes`. The two time bounds stretch to a few times the
//! provider's typical answer time when that is longer: on a slow link
//! every answer is late, and none of them is a stall.
//!
//! Replies are sorted: 404/410/204 and fillers are "no data" (not retried:
//! a provider without imagery says so once), 400/401/403/451... permanent,
//! 429 and 503 throttling (`Retry-After` pauses the provider, the limit is
//! cut), 408/5xx, timeouts and broken connections retried with backoff and
//! jitter, and counted against the provider's health.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::StatusCode;
use tokio::sync::watch;
use tokio::time::{timeout_at, Instant};

use super::cause::Cause;
use super::gate::Motion;
use super::gate::{Gate, InFlight, Report};
use super::retry_after::retry_after;
use super::standing::{ProviderReport, Standings};
use super::{FetchConfig, FetchError, WorkClass};
use crate::coord::ChunkCoord;
use crate::metrics::Metrics;
use crate::provider::{TileProvider, Verdict};
use crate::sched::{acquire_ranked, Urgency};

/// The process-wide imagery client. Cheap to clone; clones share permits.
#[derive(Debug, Clone)]
pub struct ImageryClient {
    client: reqwest::Client,
    gate: Arc<Gate>,
    /// How each provider is doing, and why it fails.
    standings: Arc<Standings>,
    config: FetchConfig,
    metrics: Arc<Metrics>,
}

impl ImageryClient {
    pub fn new(config: FetchConfig, metrics: Arc<Metrics>) -> Result<Self, FetchError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!(
                "XEarthLayer/",
                env!("CARGO_PKG_VERSION"),
                " (+https://github.com/xearthlayer)"
            ))
            .connect_timeout(config.connect_timeout)
            .pool_max_idle_per_host(config.max_in_flight)
            .build()
            .map_err(|e| FetchError::Client(e.to_string()))?;
        Ok(ImageryClient {
            client,
            gate: Arc::new(Gate::new(&config)),
            standings: Arc::default(),
            config,
            metrics,
        })
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Permits held and live requests waiting, now.
    pub fn in_flight(&self) -> InFlight {
        self.gate.in_flight()
    }

    /// The provider's adaptive limit of requests in flight now.
    pub fn limit(&self, provider: &dyn TileProvider) -> usize {
        self.gate.limit(provider)
    }

    /// Whether the provider is failing fast now.
    pub fn is_failing(&self, provider: &dyn TileProvider) -> bool {
        self.gate.is_failing(provider)
    }

    /// Whether the provider is answering what it has in flight.
    pub fn motion(&self, provider: &dyn TileProvider) -> Motion {
        self.gate.motion(provider)
    }

    /// Every provider asked for something so far: its state (healthy,
    /// throttled, failing since when) and the cause of its last failures.
    pub fn provider_reports(&self) -> Vec<ProviderReport> {
        self.standings.reports(|p| self.gate.is_failing(p))
    }

    /// One chunk, for work of `class` asked for now. Cancel-safe: dropping
    /// the future gives back its permit at once.
    pub async fn fetch(
        &self,
        provider: &Arc<dyn TileProvider>,
        chunk: ChunkCoord,
        class: WorkClass,
    ) -> Result<Bytes, FetchError> {
        let urgency = match class {
            WorkClass::Live => Some(Instant::now()),
            WorkClass::Background => None,
        };
        let (_fixed, mut urgency) = watch::channel(urgency);
        self.fetch_for(provider, chunk, &mut urgency).await
    }

    /// One chunk, in line by `urgency` (who waits for it), which may
    /// change while the request waits for its permit. Cancel-safe.
    pub async fn fetch_for(
        &self,
        provider: &Arc<dyn TileProvider>,
        chunk: ChunkCoord,
        urgency: &mut watch::Receiver<Urgency>,
    ) -> Result<Bytes, FetchError> {
        if !provider.zoom_range().contains(&chunk.zoom) {
            return Err(FetchError::NoData {
                provider: provider.name().to_string(),
                why: format!("zoom {} is beyond what it serves", chunk.zoom),
            });
        }
        let mut attempt = 0;
        loop {
            let acquired =
                acquire_ranked(urgency, |rank| self.gate.acquire(provider.as_ref(), rank)).await;
            let permit = match acquired {
                Ok(permit) => permit,
                Err(e) => {
                    self.metrics.chunk_fast_failed.incr();
                    return Err(e);
                }
            };
            let result = {
                let _in_flight = self.metrics.requests_in_flight.enter();
                let _class = match permit.class() {
                    WorkClass::Live => self.metrics.requests_live.enter(),
                    WorkClass::Background => self.metrics.requests_background.enter(),
                };
                self.metrics.chunk_requests.incr();
                let (result, report) = self.attempt(provider.as_ref(), chunk).await;
                let was_failing = result.is_err() && self.gate.is_failing(provider.as_ref());
                permit.report(report);
                self.record(provider, &result, was_failing);
                result
            };
            let error = match result {
                Ok(body) => return Ok(body),
                Err(e) => e,
            };
            if error.is_no_data() {
                self.metrics.chunk_no_data.incr();
                return Err(error);
            }
            if !error.is_retryable() || attempt >= self.config.retries {
                self.metrics.chunk_failures.incr();
                return Err(error);
            }
            self.metrics.chunk_retries.incr();
            let base = self.config.backoff * 2u32.saturating_pow(attempt);
            tokio::time::sleep(base + base.mul_f64(fastrand::f64())).await;
            attempt += 1;
        }
    }

    /// `work`, or how long it waited when it ran out of patience: `base`
    /// after `since`, or more while the provider's answers are slow. The
    /// patience is asked again when it runs out, so a request sent before
    /// the link got busy is not cut by what was typical then.
    async fn patiently<T>(
        &self,
        provider: &dyn TileProvider,
        since: Instant,
        base: Duration,
        work: impl std::future::Future<Output = T>,
    ) -> Result<T, Duration> {
        let mut work = std::pin::pin!(work);
        let mut patience = self.gate.patience(provider, base);
        loop {
            if let Ok(done) = timeout_at(since + patience, &mut work).await {
                return Ok(done);
            }
            let now = self.gate.patience(provider, base);
            if now <= patience {
                return Err(patience);
            }
            patience = now;
        }
    }

    /// Notes an attempt's outcome in the provider's standing; says in the
    /// log, with the cause, when its failures make it fail fast.
    fn record(
        &self,
        provider: &Arc<dyn TileProvider>,
        result: &Result<Bytes, FetchError>,
        was_failing: bool,
    ) {
        let error = match result {
            Ok(_) => return self.standings.answered(provider),
            Err(e) => e,
        };
        let Some(cause) = Cause::of(error) else {
            return;
        };
        self.standings.failed(provider, cause);
        if !was_failing && self.gate.is_failing(provider.as_ref()) {
            let cause = self.standings.last_cause(provider);
            tracing::warn!(
                provider = provider.display_name(),
                cause = cause.as_ref().map(Cause::slug),
                "provider keeps failing ({}): requests fail fast until a probe succeeds; {}",
                cause
                    .as_ref()
                    .map_or("unknown cause".to_string(), Cause::to_string),
                cause.as_ref().map_or("", Cause::hint),
            );
        }
    }

    /// One request, and what it says about the provider.
    async fn attempt(
        &self,
        provider: &dyn TileProvider,
        chunk: ChunkCoord,
    ) -> (Result<Bytes, FetchError>, Report) {
        let failed = Report {
            failed: true,
            ..Report::default()
        };
        let stalled = Report {
            failed: true,
            cut: true,
            ..Report::default()
        };
        let sent = Instant::now();
        let answered = || Report {
            answered: true,
            took: Some(sent.elapsed()),
            ..Report::default()
        };
        let spec = provider.request(chunk);
        let mut request = self.client.get(&spec.url);
        for (name, value) in &spec.headers {
            request = request.header(*name, value);
        }
        let first_byte = self.config.first_byte_timeout;
        let mut response = match self
            .patiently(provider, sent, first_byte, request.send())
            .await
        {
            Err(waited) => {
                self.metrics.chunk_timeouts.incr();
                return (Err(FetchError::FirstByteTimeout(waited)), stalled);
            }
            Ok(Err(e)) => return (Err(e.into()), failed),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        let no_data = |why: String| FetchError::NoData {
            provider: provider.name().to_string(),
            why,
        };
        match status.as_u16() {
            200..=299 if status != StatusCode::NO_CONTENT => {}
            204 | 404 | 410 => return (Err(no_data(format!("HTTP {status}"))), answered()),
            429 | 503 => {
                self.metrics.chunk_throttled.incr();
                let pause = retry_after(response.headers());
                let report = Report {
                    cut: true,
                    failed: status == StatusCode::SERVICE_UNAVAILABLE,
                    pause,
                    ..Report::default()
                };
                let error = match status.as_u16() {
                    429 => FetchError::Throttled,
                    _ => FetchError::Status(status),
                };
                return (Err(error), report);
            }
            408 | 500..=599 => return (Err(FetchError::Status(status)), failed),
            _ => return (Err(FetchError::Permanent(status)), answered()),
        }
        let cap = self.config.max_body_bytes;
        if response.content_length().is_some_and(|n| n > cap as u64) {
            return (Err(FetchError::TooLarge(cap)), answered());
        }
        let headers_at = Instant::now();
        let expected = response
            .content_length()
            .unwrap_or(16 << 10)
            .min(cap as u64);
        let mut body = BytesMut::with_capacity(expected as usize);
        loop {
            let piece = response.chunk();
            match self
                .patiently(provider, headers_at, self.config.body_timeout, piece)
                .await
            {
                Err(waited) => {
                    self.metrics.chunk_timeouts.incr();
                    let error = FetchError::BodyTimeout(waited);
                    return (Err(error), stalled);
                }
                Ok(Err(e)) => return (Err(e.into()), failed),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(piece))) => {
                    if body.len() + piece.len() > cap {
                        return (Err(FetchError::TooLarge(cap)), answered());
                    }
                    body.extend_from_slice(&piece);
                }
            }
        }
        self.metrics.chunk_bytes.add(body.len() as u64);
        match provider.judge(response.headers(), &body) {
            Verdict::Imagery => (Ok(body.freeze()), answered()),
            Verdict::Filler(why) => {
                self.metrics.chunk_filler.incr();
                (Err(no_data(format!("filler reply ({why})"))), answered())
            }
            Verdict::Damaged => (Err(FetchError::Rejected), answered()),
        }
    }
}
