//! The `--telemetry` option: `auto`, `off`, `inferred`, `udp://HOST:PORT`
//! or `http://HOST:PORT`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;

/// Which telemetry clients run. The inferred position is used with every
/// choice but `off`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TelemetrySpec {
    /// Web API on 127.0.0.1:8086 and UDP on 127.0.0.1:49000.
    #[default]
    Auto,
    /// No telemetry, nor inferred position: no prefetch while flying.
    Off,
    /// No telemetry client: only the position inferred from what X-Plane
    /// reads through the mounts (for a simulator that sends nothing, or
    /// whose ports are someone else's).
    Inferred,
    Udp(SocketAddr),
    WebApi(SocketAddr),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TelemetryError {
    #[error("telemetry {0:?}: expected auto, off, inferred, udp://HOST:PORT or http://HOST:PORT")]
    BadSpec(String),
    #[error("telemetry {0:?}: cannot resolve the address")]
    BadAddress(String),
}

impl TelemetrySpec {
    /// Whether the positions inferred from the mounts' reads are used.
    pub fn uses_inferred(&self) -> bool {
        *self != TelemetrySpec::Off
    }
}

impl FromStr for TelemetrySpec {
    type Err = TelemetryError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        match text.to_ascii_lowercase().as_str() {
            "auto" => return Ok(TelemetrySpec::Auto),
            "off" | "none" => return Ok(TelemetrySpec::Off),
            "inferred" => return Ok(TelemetrySpec::Inferred),
            _ => {}
        }
        let bad = || TelemetryError::BadSpec(text.to_string());
        let (scheme, rest) = text.split_once("://").ok_or_else(bad)?;
        let host_port = rest.strip_suffix('/').unwrap_or(rest);
        if host_port.is_empty() || host_port.contains('/') || !host_port.contains(':') {
            return Err(bad());
        }
        let addr = host_port
            .to_socket_addrs()
            .ok()
            .and_then(preferred_address)
            .ok_or_else(|| TelemetryError::BadAddress(text.to_string()))?;
        match scheme.to_ascii_lowercase().as_str() {
            "udp" => Ok(TelemetrySpec::Udp(addr)),
            "http" => Ok(TelemetrySpec::WebApi(addr)),
            _ => Err(bad()),
        }
    }
}

/// The address to use of those a host name resolves to: the first IPv4
/// one, else the first. `localhost` often resolves to `[::1]` first, while
/// X-Plane listens on IPv4 only.
fn preferred_address(addrs: impl IntoIterator<Item = SocketAddr>) -> Option<SocketAddr> {
    let mut first = None;
    for addr in addrs {
        if addr.is_ipv4() {
            return Some(addr);
        }
        first = first.or(Some(addr));
    }
    first
}

impl std::fmt::Display for TelemetrySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TelemetrySpec::Auto => f.write_str("auto"),
            TelemetrySpec::Off => f.write_str("off"),
            TelemetrySpec::Inferred => f.write_str("inferred"),
            TelemetrySpec::Udp(addr) => write!(f, "udp://{addr}"),
            TelemetrySpec::WebApi(addr) => write!(f, "http://{addr}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!("auto".parse(), Ok(TelemetrySpec::Auto));
        assert_eq!("OFF".parse(), Ok(TelemetrySpec::Off));
        assert_eq!(" Inferred ".parse(), Ok(TelemetrySpec::Inferred));
        assert_eq!(TelemetrySpec::Inferred.to_string(), "inferred");
        assert!(TelemetrySpec::Inferred.uses_inferred());
        assert!(!TelemetrySpec::Off.uses_inferred());
        assert_eq!(
            "udp://127.0.0.1:49000".parse(),
            Ok(TelemetrySpec::Udp("127.0.0.1:49000".parse().unwrap()))
        );
        assert_eq!(
            "http://127.0.0.1:8086/".parse(),
            Ok(TelemetrySpec::WebApi("127.0.0.1:8086".parse().unwrap()))
        );
        let spec: TelemetrySpec = "http://127.0.0.1:8086".parse().unwrap();
        assert_eq!(spec.to_string().parse(), Ok(spec));
    }

    #[test]
    fn a_host_with_several_addresses_gets_its_ipv4_one() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            preferred_address([addr("[::1]:49000"), addr("127.0.0.1:49000")]),
            Some(addr("127.0.0.1:49000"))
        );
        assert_eq!(
            preferred_address([addr("10.0.0.2:1"), addr("[::1]:1"), addr("10.0.0.3:1")]),
            Some(addr("10.0.0.2:1"))
        );
        // IPv6 only: still usable.
        assert_eq!(
            preferred_address([addr("[::1]:8086"), addr("[fe80::1]:8086")]),
            Some(addr("[::1]:8086"))
        );
        assert_eq!(preferred_address([]), None);
    }

    #[test]
    fn rejects_what_it_cannot_use() {
        for bad in [
            "",
            "udp",
            "udp://",
            "ftp://1.2.3.4:5",
            "http://127.0.0.1",
            "http://h:1/api",
            "inferred://127.0.0.1:1",
        ] {
            assert!(bad.parse::<TelemetrySpec>().is_err(), "{bad}");
        }
    }
}
