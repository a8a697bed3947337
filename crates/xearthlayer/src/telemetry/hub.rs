//! The one place every source reports to and the prefetcher reads from.
//!
//! Each source keeps its own last values and motion history; [`Telemetry::fix`]
//! answers with the freshest trusted one (Web API, then UDP, then what the
//! reads inferred). A source whose values are older than its staleness limit
//! is ignored until it reports again, so a restarted X-Plane falls back to
//! the inferred position by itself. An inferred position older than the
//! telemetry that went quiet is no fix: X-Plane quit or stopped loading,
//! and nobody flies.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::motion::{Motion, MotionTracker};
use super::STALE_AFTER;

/// The values X-Plane's datarefs give, in [`DATAREFS`](super::DATAREFS) order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub lat: f64,
    pub lon: f64,
    pub elevation_m: f64,
    /// True heading, degrees.
    pub heading_deg: f64,
    /// Ground speed as X-Plane reports it (without time compression), m/s.
    /// The inferred source gives its derived track and speed in these two.
    pub groundspeed_mps: f64,
}

impl Sample {
    /// The motion the sample states, if it moves.
    fn motion(&self) -> Option<Motion> {
        (self.groundspeed_mps >= 1.0).then(|| Motion {
            track_deg: self.heading_deg.rem_euclid(360.0),
            speed_mps: self.groundspeed_mps,
        })
    }
}

/// Where a fix came from, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceKind {
    WebApi,
    Udp,
    /// From the DSF tiles and textures X-Plane read through the mounts.
    Inferred,
}

impl SourceKind {
    const ALL: [SourceKind; 3] = [SourceKind::WebApi, SourceKind::Udp, SourceKind::Inferred];

    pub fn name(self) -> &'static str {
        match self {
            SourceKind::WebApi => "web api",
            SourceKind::Udp => "udp",
            SourceKind::Inferred => "inferred",
        }
    }

    /// How long a fix of this source stays usable: X-Plane's loads come
    /// minutes apart, so an inferred position lasts longer than telemetry.
    fn stale_after(self) -> Duration {
        match self {
            SourceKind::Inferred => Duration::from_secs(300),
            _ => STALE_AFTER,
        }
    }
}

/// Where the aircraft is now, as best known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fix {
    pub source: SourceKind,
    pub lat: f64,
    pub lon: f64,
    /// Measured from successive positions, else X-Plane's heading and ground
    /// speed; for the inferred source, from successive loads. None when
    /// standing or unknown.
    pub motion: Option<Motion>,
    pub age: Duration,
}

impl Fix {
    /// X-Plane says the aircraft stands still: parked before the flight,
    /// or the simulation paused. (A position inferred from reads says
    /// nothing of that.)
    pub fn is_parked(&self) -> bool {
        self.source != SourceKind::Inferred && self.motion.is_none()
    }
}

#[derive(Debug, Default)]
struct SourceState {
    last: Option<(Instant, Sample)>,
    tracker: MotionTracker,
    /// Times this source came back after going stale.
    reconnects: u64,
}

/// The shared hub. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Telemetry {
    sources: Arc<Mutex<[SourceState; 3]>>,
}

impl Telemetry {
    pub fn new() -> Self {
        Self::default()
    }

    /// A source's new values.
    pub fn report(&self, source: SourceKind, sample: Sample) {
        // 0,0 is the datarefs' value before a flight is loaded: no position.
        let unset = sample.lat == 0.0 && sample.lon == 0.0;
        if unset || !sample.lat.is_finite() || !sample.lon.is_finite() || sample.lat.abs() > 90.0 {
            return;
        }
        let now = Instant::now();
        let mut sources = self.lock();
        let state = &mut sources[source as usize];
        if let Some((at, _)) = state.last {
            if now.saturating_duration_since(at) > source.stale_after() {
                // Back after a gap: old positions say nothing about motion now.
                state.tracker.clear();
                state.reconnects += 1;
            }
        }
        state.tracker.push(now, sample.lat, sample.lon);
        state.last = Some((now, sample));
    }

    /// The freshest trusted fix, if any source is live.
    pub fn fix(&self) -> Option<Fix> {
        let now = Instant::now();
        let sources = self.lock();
        let telemetry_last = [SourceKind::WebApi, SourceKind::Udp]
            .into_iter()
            .filter_map(|kind| sources[kind as usize].last.map(|(at, _)| at))
            .max();
        SourceKind::ALL.into_iter().find_map(|kind| {
            let state = &sources[kind as usize];
            let (at, sample) = state.last?;
            let age = now.saturating_duration_since(at);
            // Reached only once telemetry is quiet (or never was).
            let outlived = kind == SourceKind::Inferred && telemetry_last.is_some_and(|t| t >= at);
            (age <= kind.stale_after() && !outlived).then(|| Fix {
                source: kind,
                lat: sample.lat,
                lon: sample.lon,
                motion: match kind {
                    // Derived by the source from successive loads; its
                    // positions drift within a burst as it fills, which
                    // is no motion.
                    SourceKind::Inferred => sample.motion(),
                    _ => state.tracker.motion().or_else(|| sample.motion()),
                },
                age,
            })
        })
    }

    /// Times `source` came back after going stale.
    pub fn reconnects(&self, source: SourceKind) -> u64 {
        self.lock()[source as usize].reconnects
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, [SourceState; 3]> {
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(lat: f64, lon: f64) -> Sample {
        Sample {
            lat,
            lon,
            elevation_m: 3000.0,
            heading_deg: 90.0,
            groundspeed_mps: 120.0,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn prefers_fresh_telemetry_and_falls_back_when_it_stops() {
        let hub = Telemetry::new();
        hub.report(SourceKind::Inferred, sample(47.5, -5.5));
        hub.report(SourceKind::Udp, sample(47.2, -6.2));
        assert_eq!(hub.fix().map(|f| f.source), Some(SourceKind::Udp));
        // Ground speed stands in until positions span long enough.
        assert_eq!(
            hub.fix().and_then(|f| f.motion).map(|m| m.speed_mps),
            Some(120.0)
        );
        tokio::time::advance(STALE_AFTER + Duration::from_millis(1)).await;
        // X-Plane went quiet, and has loaded nothing since: nobody flies.
        assert_eq!(hub.fix(), None);
        // It loads scenery (restarted): the reads tell where.
        hub.report(SourceKind::Inferred, sample(47.5, -5.5));
        let fix = hub.fix().expect("inferred");
        assert_eq!((fix.source, fix.lat), (SourceKind::Inferred, 47.5));
        hub.report(SourceKind::Udp, sample(47.3, -6.2));
        assert_eq!(hub.fix().map(|f| f.source), Some(SourceKind::Udp));
        assert_eq!(hub.reconnects(SourceKind::Udp), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn only_x_plane_itself_says_the_aircraft_is_parked() {
        let hub = Telemetry::new();
        let parked = Sample {
            groundspeed_mps: 0.0,
            ..sample(47.5, -5.5)
        };
        hub.report(SourceKind::Inferred, parked);
        assert_eq!(hub.fix().map(|f| f.is_parked()), Some(false));
        hub.report(SourceKind::Udp, parked);
        assert_eq!(hub.fix().map(|f| f.is_parked()), Some(true));
        hub.report(SourceKind::Udp, sample(47.5, -5.5));
        assert_eq!(hub.fix().map(|f| f.is_parked()), Some(false), "rolling");
    }

    #[tokio::test(start_paused = true)]
    async fn ignores_impossible_positions() {
        let hub = Telemetry::new();
        hub.report(SourceKind::Udp, sample(f64::NAN, 0.0));
        hub.report(SourceKind::Udp, sample(91.0, 0.0));
        hub.report(SourceKind::Udp, sample(0.0, 0.0));
        assert_eq!(hub.fix(), None);
    }
}
