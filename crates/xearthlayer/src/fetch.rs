//! The one shared HTTP client for imagery downloads.
//!
//! Connection reuse, a timeout on every attempt, a cap on body size, a
//! global bound on requests in flight, and retries with exponential backoff
//! and jitter for answers that may succeed later (408, 429, 5xx, connection
//! errors). Permanent answers (400, 401, 403, 404, 410, 451, ...) are not
//! retried: a provider that has no imagery for a chunk says so once.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::StatusCode;

use crate::metrics::Metrics;
use crate::sched::{ClassedPermits, WorkClass};

/// Limits of the shared client.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// Timeout of one attempt, connection to last byte.
    pub request_timeout: Duration,
    /// Attempts after the first.
    pub retries: u32,
    /// First backoff; doubles per retry, plus up to 100% jitter.
    pub backoff: Duration,
    /// Largest accepted body; chunks are about 13 KB.
    pub max_body_bytes: usize,
    /// Requests in flight across the whole process.
    pub max_in_flight: usize,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            request_timeout: Duration::from_secs(10),
            retries: 3,
            backoff: Duration::from_millis(100),
            max_body_bytes: 4 << 20,
            max_in_flight: 256,
        }
    }
}

/// Why a download gave no body.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("HTTP {0} (not retried)")]
    Permanent(StatusCode),
    #[error("HTTP {0} after all retries")]
    Status(StatusCode),
    #[error("response is not a whole image")]
    Rejected,
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    #[error("request failed: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("HTTP client could not be built: {0}")]
    Client(String),
}

/// The process-wide imagery client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    permits: ClassedPermits,
    config: FetchConfig,
    metrics: Arc<Metrics>,
}

impl HttpClient {
    pub fn new(config: FetchConfig, metrics: Arc<Metrics>) -> Result<Self, FetchError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!(
                "XEarthLayer/",
                env!("CARGO_PKG_VERSION"),
                " (+https://github.com/xearthlayer)"
            ))
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(5)))
            .pool_max_idle_per_host(config.max_in_flight)
            .build()
            .map_err(|e| FetchError::Client(e.to_string()))?;
        Ok(HttpClient {
            client,
            // Background downloads (prefetch) hold at most a quarter.
            permits: ClassedPermits::new(config.max_in_flight, config.max_in_flight / 4),
            config,
            metrics,
        })
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Downloads `url`, retrying what may succeed later. A body that
    /// `accept` refuses (a truncated image) is retried like a 5xx.
    pub async fn get(
        &self,
        url: &str,
        referer: Option<&str>,
        class: WorkClass,
        accept: impl Fn(&[u8]) -> bool,
    ) -> Result<Bytes, FetchError> {
        let mut attempt = 0;
        loop {
            let result = match self.attempt(url, referer, class).await {
                Ok(body) if !accept(&body) => Err(FetchError::Rejected),
                other => other,
            };
            let retryable = match &result {
                Ok(_) => return result,
                Err(FetchError::Status(_) | FetchError::Rejected) => true,
                Err(FetchError::Transport(e)) => !e.is_builder(),
                Err(_) => false,
            };
            if !retryable || attempt >= self.config.retries {
                self.metrics.chunk_failures.incr();
                return result;
            }
            self.metrics.chunk_retries.incr();
            let base = self.config.backoff * 2u32.pow(attempt);
            let jitter = base.mul_f64(fastrand::f64());
            tokio::time::sleep(base + jitter).await;
            attempt += 1;
        }
    }

    async fn attempt(
        &self,
        url: &str,
        referer: Option<&str>,
        class: WorkClass,
    ) -> Result<Bytes, FetchError> {
        // The permit is released as soon as the body is read, also on error.
        let _permit = self.permits.acquire(class).await;
        let _in_flight = self.metrics.requests_in_flight.enter();
        self.metrics.chunk_requests.incr();
        let mut request = self.client.get(url);
        if let Some(referer) = referer {
            request = request.header(reqwest::header::REFERER, referer);
        }
        let mut response = request.send().await?;
        let status = response.status();
        if !status.is_success() {
            let retry = status == StatusCode::REQUEST_TIMEOUT
                || status == StatusCode::TOO_MANY_REQUESTS
                || status.is_server_error();
            return Err(if retry {
                FetchError::Status(status)
            } else {
                FetchError::Permanent(status)
            });
        }
        let cap = self.config.max_body_bytes;
        if response.content_length().is_some_and(|n| n > cap as u64) {
            return Err(FetchError::TooLarge(cap));
        }
        let mut body =
            BytesMut::with_capacity(response.content_length().unwrap_or(16 << 10) as usize);
        while let Some(piece) = response.chunk().await? {
            if body.len() + piece.len() > cap {
                return Err(FetchError::TooLarge(cap));
            }
            body.extend_from_slice(&piece);
        }
        self.metrics.chunk_bytes.add(body.len() as u64);
        Ok(body.freeze())
    }
}
