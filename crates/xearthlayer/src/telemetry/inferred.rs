//! Position inferred from what X-Plane reads through the mounts.
//!
//! X-Plane opens a tile's DSF before it reads that tile's textures, and it
//! loads around (at start) or just ahead of the aircraft (in flight). The
//! centre of what one loading burst opens is therefore a usable estimate of
//! where the aircraft is, with no telemetry at all. A burst is the events
//! that follow each other within [`BURST_GAP`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::hub::{Sample, SourceKind, Telemetry};

/// Events further apart than this belong to different loading bursts.
const BURST_GAP: Duration = Duration::from_secs(20);

#[derive(Debug, Default)]
struct Burst {
    last: Option<Instant>,
    sum: (f64, f64),
    count: u64,
}

/// Feeds the inferred position into a [`Telemetry`] hub. Cheap to clone.
#[derive(Debug, Clone)]
pub struct InferredPosition {
    telemetry: Telemetry,
    burst: Arc<Mutex<Burst>>,
}

impl InferredPosition {
    pub fn new(telemetry: Telemetry) -> Self {
        InferredPosition {
            telemetry,
            burst: Arc::default(),
        }
    }

    /// X-Plane opened the DSF of the 1° tile whose south-west corner is
    /// (`lat`, `lon`).
    pub fn dsf_opened(&self, lat: i32, lon: i32) {
        self.point(f64::from(lat) + 0.5, f64::from(lon) + 0.5);
    }

    /// X-Plane started reading a texture centred at `center` (lat, lon).
    pub fn texture_opened(&self, center: (f64, f64)) {
        self.point(center.0, center.1);
    }

    fn point(&self, lat: f64, lon: f64) {
        let now = Instant::now();
        let (lat, lon) = {
            let mut burst = self.burst.lock().unwrap_or_else(|e| e.into_inner());
            if burst
                .last
                .is_none_or(|last| now.saturating_duration_since(last) > BURST_GAP)
            {
                *burst = Burst::default();
            }
            burst.last = Some(now);
            burst.sum.0 += lat;
            burst.sum.1 += lon;
            burst.count += 1;
            let n = burst.count as f64;
            (burst.sum.0 / n, burst.sum.1 / n)
        };
        self.telemetry.report(
            SourceKind::Inferred,
            Sample {
                lat,
                lon,
                elevation_m: 0.0,
                heading_deg: 0.0,
                groundspeed_mps: 0.0,
            },
        );
    }
}

/// The tile of a DSF file name such as `+47-006.dsf`: (lat, lon) of its
/// south-west corner.
pub fn dsf_tile(file_name: &str) -> Option<(i32, i32)> {
    let stem = file_name.strip_suffix(".dsf")?;
    if stem.len() != 7 || !stem.is_ascii() {
        return None;
    }
    let (lat, lon) = stem.split_at(3);
    let signed = |s: &str| -> Option<i32> {
        let (sign, digits) = s.split_at(1);
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let value: i32 = digits.parse().ok()?;
        match sign {
            "+" => Some(value),
            "-" => Some(-value),
            _ => None,
        }
    };
    let (lat, lon) = (signed(lat)?, signed(lon)?);
    ((-90..90).contains(&lat) && (-180..180).contains(&lon)).then_some((lat, lon))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dsf_names() {
        assert_eq!(dsf_tile("+47-006.dsf"), Some((47, -6)));
        assert_eq!(dsf_tile("-34+151.dsf"), Some((-34, 151)));
        for bad in [
            "+47-006.ter",
            "47-006.dsf",
            "+47-06.dsf",
            "+95+000.dsf",
            "+4a-006.dsf",
        ] {
            assert_eq!(dsf_tile(bad), None, "{bad}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_centre_of_a_burst_is_the_position() {
        let hub = Telemetry::new();
        let inferred = InferredPosition::new(hub.clone());
        for lat in 46..=48 {
            for lon in -8..=-5 {
                inferred.dsf_opened(lat, lon);
            }
        }
        let fix = hub.fix().expect("inferred");
        assert_eq!(fix.source, SourceKind::Inferred);
        assert!(
            (fix.lat - 47.5).abs() < 1e-9 && (fix.lon + 6.0).abs() < 1e-9,
            "{fix:?}"
        );
        // The next burst, much later, starts a new centre.
        tokio::time::advance(Duration::from_secs(60)).await;
        inferred.dsf_opened(50, -6);
        let fix = hub.fix().expect("inferred");
        assert!((fix.lat - 50.5).abs() < 1e-9, "{fix:?}");
    }
}
