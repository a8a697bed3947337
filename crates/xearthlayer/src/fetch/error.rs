//! Why a chunk download gave no body, and what the engine should do next.

use std::time::Duration;

use reqwest::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The provider has no imagery for this chunk (404, 410, 204, a filler
    /// tile, beyond its zoom range).
    #[error("no imagery from {provider}: {why}")]
    NoData { provider: String, why: String },
    /// The provider keeps failing or asked for a long pause: failed fast.
    #[error("{provider} is unavailable: {why}")]
    Unavailable { provider: String, why: &'static str },
    #[error("HTTP {0} (not retried)")]
    Permanent(StatusCode),
    #[error("HTTP {0} after all retries")]
    Status(StatusCode),
    #[error("throttled (HTTP 429) after all retries")]
    Throttled,
    #[error("no reply within {0:?}")]
    FirstByteTimeout(Duration),
    #[error("body not complete within {0:?}")]
    BodyTimeout(Duration),
    #[error("response is not a whole image")]
    Rejected,
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    #[error("request failed: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("HTTP client could not be built: {0}")]
    Client(String),
}

impl FetchError {
    /// The chunk has no imagery at this zoom: use a lower zoom, don't retry soon.
    pub fn is_no_data(&self) -> bool {
        matches!(self, FetchError::NoData { .. })
    }

    /// The provider is failing or paused: this request failed fast.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, FetchError::Unavailable { .. })
    }

    /// Worth another attempt (after a backoff).
    pub(super) fn is_retryable(&self) -> bool {
        match self {
            FetchError::Status(_)
            | FetchError::Throttled
            | FetchError::FirstByteTimeout(_)
            | FetchError::BodyTimeout(_)
            | FetchError::Rejected => true,
            FetchError::Transport(e) => !e.is_builder(),
            _ => false,
        }
    }
}
