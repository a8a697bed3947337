//! Why a provider's requests fail, in words a user can act on: a
//! [`FetchError`] sorted into a [`Cause`] (connection refused, DNS, TLS,
//! an HTTP status, a stall...), each with a hint of what to check. The
//! status view, `--stats-file`, the log and `doctor` all say the same.

use std::error::Error as _;
use std::fmt;
use std::time::Duration;

use super::FetchError;

/// Why a request to a provider failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// Nothing listens at the address (TCP reset on connect).
    ConnectionRefused,
    /// The host name did not resolve.
    Dns,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// The connection broke or could not be made for another reason.
    Connection(String),
    /// No reply, or no whole body, in time.
    Stalled(Duration),
    /// 401 or 403: the provider refuses these requests.
    Refused(u16),
    /// 404, 410, 204 or a filler: no imagery there.
    NoCoverage,
    /// 429 (or 503 with `Retry-After`): too many requests.
    Throttled,
    /// Any other HTTP status.
    Http(u16),
    /// The reply was not an image, or too large.
    BadReply,
}

impl Cause {
    /// The cause of `err`; `None` for a request that failed fast (the
    /// provider was already failing: the cause is an earlier one).
    pub fn of(err: &FetchError) -> Option<Cause> {
        Some(match err {
            FetchError::Unavailable { .. } | FetchError::Client(_) => return None,
            FetchError::NoData { .. } => Cause::NoCoverage,
            FetchError::Permanent(status) | FetchError::Status(status) => match status.as_u16() {
                401 | 403 => Cause::Refused(status.as_u16()),
                404 | 410 => Cause::NoCoverage,
                503 => Cause::Throttled,
                code => Cause::Http(code),
            },
            FetchError::Throttled => Cause::Throttled,
            FetchError::FirstByteTimeout(d) | FetchError::BodyTimeout(d) => Cause::Stalled(*d),
            FetchError::Rejected | FetchError::TooLarge(_) => Cause::BadReply,
            FetchError::Transport(e) => transport(e),
        })
    }

    /// A short name for files and logs: `connection_refused`, `http_403`...
    pub fn slug(&self) -> String {
        match self {
            Cause::ConnectionRefused => "connection_refused".into(),
            Cause::Dns => "dns".into(),
            Cause::Tls => "tls".into(),
            Cause::Connection(_) => "connection".into(),
            Cause::Stalled(_) => "stalled".into(),
            Cause::Refused(code) | Cause::Http(code) => format!("http_{code}"),
            Cause::NoCoverage => "no_coverage".into(),
            Cause::Throttled => "throttled".into(),
            Cause::BadReply => "bad_reply".into(),
        }
    }

    /// What to check or do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            Cause::ConnectionRefused => {
                "nothing listens at the provider's address: check its URL (host and port), a proxy or a firewall"
            }
            Cause::Dns => "the host name does not resolve: check the URL's host and the network's DNS",
            Cause::Tls => {
                "check the system clock, a proxy that intercepts HTTPS, and that the URL's scheme (http or https) is right"
            }
            Cause::Connection(_) => "check the network connection and the provider's URL",
            Cause::Stalled(_) => "the provider or the link is overloaded or down; it is probed again later",
            Cause::Refused(_) => {
                "the provider refuses these requests: an access token or key may be missing, wrong or expired (e.g. provider.mapbox_token, or the token in a URL template), or it blocks this client"
            }
            Cause::NoCoverage => "no imagery at this place and zoom: lower-zoom imagery stands in",
            Cause::Throttled => "the provider limits the request rate: fewer requests are sent (lower --max-requests to send fewer still)",
            Cause::Http(_) => "the provider has trouble; it is probed again later",
            Cause::BadReply => "the replies are not images: check that the URL names an imagery tile server",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::ConnectionRefused => write!(f, "connection refused"),
            Cause::Dns => write!(f, "DNS lookup failed"),
            Cause::Tls => write!(f, "TLS handshake failed"),
            Cause::Connection(why) => write!(f, "connection failed ({why})"),
            Cause::Stalled(d) => write!(f, "no reply within {} s", d.as_secs_f64()),
            Cause::Refused(code) => write!(f, "HTTP {code} (refused)"),
            Cause::NoCoverage => write!(f, "HTTP 404 or filler: no imagery"),
            Cause::Throttled => write!(f, "throttled (HTTP 429/503)"),
            Cause::Http(code) => write!(f, "HTTP {code}"),
            Cause::BadReply => write!(f, "reply is not an image"),
        }
    }
}

/// Sorts a transport error by what its chain of sources says.
fn transport(err: &reqwest::Error) -> Cause {
    if err.is_timeout() {
        return Cause::Stalled(Duration::ZERO);
    }
    let mut words = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = err.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return Cause::ConnectionRefused;
            }
        }
        words.push(e.to_string());
        source = e.source();
    }
    let said = words.join(": ").to_lowercase();
    if said.contains("dns error") || said.contains("failed to lookup address") {
        Cause::Dns
    } else if said.contains("certificate") || said.contains("tls") || said.contains("handshake") {
        Cause::Tls
    } else if said.contains("connection refused") {
        Cause::ConnectionRefused
    } else {
        Cause::Connection(words.last().cloned().unwrap_or_else(|| err.to_string()))
    }
}
