//! Position and motion inferred from what X-Plane reads through the mounts.
//!
//! X-Plane opens a tile's DSF before it reads that tile's textures, and it
//! loads around (at start) or just ahead of the aircraft (in flight). The
//! centre of what one loading burst opens is therefore a usable estimate of
//! where the aircraft is, with no telemetry at all. A burst is the events
//! that follow each other within [`BURST_GAP`].
//!
//! Motion comes from successive *loads* (bursts that opened DSFs): the track
//! is the bearing from the previous load's DSF centre to the current one's,
//! the speed that distance over the time between the two loads' first
//! opens. What that displacement means depends on the loads:
//! - between two in-flight loads, each centre is the newly opened band (in
//!   steady flight, the far row), the same lead ahead of the aircraft, and
//!   each load fires one tile further on; so the centres move as the
//!   aircraft does, and track and speed are the aircraft's (time
//!   compression included);
//! - from the start-up load (centred on the aircraft) to the first in-flight
//!   load (whose new tiles lie 2-3° ahead), the displacement also holds that
//!   lead: the track is right, the speed too high until the next load
//!   corrects it (it only lengthens the prefetch horizon meanwhile).
//!
//! Texture reads move the position but never the motion: a lone re-read
//! between loads says nothing about where the aircraft goes. Two loads
//! further apart than [`MAX_STEP_M`] are a jump (a new flight, a teleport),
//! not motion.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::hub::{Sample, SourceKind, Telemetry};
use super::motion::{bearing_deg, distance_m, Motion};
use crate::coord::wrap_lon;

/// Events further apart than this belong to different loading bursts. While
/// X-Plane loads, its loader threads read without pause (reads finish one
/// by one, the oldest first, as the link and the CPU work through the
/// load, and each finished read frees a thread for the next); loads come at least
/// 20 s apart even at 16x time compression and 600 kt (1° of latitude).
const BURST_GAP: Duration = Duration::from_secs(10);
/// Successive loads' centres are 1-3° apart in flight; further is a jump.
const MAX_STEP_M: f64 = 500_000.0;

/// A running mean of (lat, lon) points. Longitudes are summed as wrapped
/// offsets from the first one, so tiles either side of the antimeridian
/// average to a point on it, not to the far side of the planet.
#[derive(Debug, Default, Clone, Copy)]
struct Centre {
    first_lon: f64,
    /// Latitudes, and longitudes less `first_lon`.
    sum: (f64, f64),
    count: u32,
}

impl Centre {
    fn add(&mut self, lat: f64, lon: f64) {
        if self.count == 0 {
            self.first_lon = lon;
        }
        self.sum.0 += lat;
        self.sum.1 += wrap_lon(lon - self.first_lon);
        self.count += 1;
    }

    fn get(&self) -> Option<(f64, f64)> {
        (self.count > 0).then(|| {
            let n = f64::from(self.count);
            (self.sum.0 / n, wrap_lon(self.first_lon + self.sum.1 / n))
        })
    }
}

#[derive(Debug, Default)]
struct Burst {
    started: Option<Instant>,
    last: Option<Instant>,
    /// Every event: the position.
    all: Centre,
    /// DSF opens only: the load's centre, for motion.
    dsfs: Centre,
}

#[derive(Debug, Default)]
struct State {
    burst: Burst,
    /// The last finished burst that opened DSFs: when it started, its centre.
    previous_load: Option<(Instant, (f64, f64))>,
    motion: Option<Motion>,
}

impl State {
    /// Closes the current burst if `now` is past its gap.
    fn roll(&mut self, now: Instant) {
        let ended = self
            .burst
            .last
            .is_some_and(|last| now.saturating_duration_since(last) > BURST_GAP);
        if ended {
            if let (Some(started), Some(centre)) = (self.burst.started, self.burst.dsfs.get()) {
                self.previous_load = Some((started, centre));
            }
            self.burst = Burst::default();
        }
        self.burst.started.get_or_insert(now);
        self.burst.last = Some(now);
    }

    /// The motion from the previous load to the current one, if both opened
    /// DSFs; else the last motion known.
    fn update_motion(&mut self) {
        let (Some((then, from)), Some(started), Some(to)) = (
            self.previous_load,
            self.burst.started,
            self.burst.dsfs.get(),
        ) else {
            return;
        };
        let elapsed = started.saturating_duration_since(then).as_secs_f64();
        let metres = distance_m(from, to);
        self.motion = if metres > MAX_STEP_M || elapsed <= 0.0 {
            None
        } else {
            Some(Motion {
                track_deg: bearing_deg(from, to),
                speed_mps: metres / elapsed,
            })
        };
    }
}

/// Feeds the inferred position into a [`Telemetry`] hub. Cheap to clone.
#[derive(Debug, Clone)]
pub struct InferredPosition {
    telemetry: Telemetry,
    state: Arc<Mutex<State>>,
}

impl InferredPosition {
    pub fn new(telemetry: Telemetry) -> Self {
        InferredPosition {
            telemetry,
            state: Arc::default(),
        }
    }

    /// X-Plane opened the DSF of the 1° tile whose south-west corner is
    /// (`lat`, `lon`).
    pub fn dsf_opened(&self, lat: i32, lon: i32) {
        self.point(f64::from(lat) + 0.5, f64::from(lon) + 0.5, true);
    }

    /// X-Plane started reading a texture centred at `center` (lat, lon).
    pub fn texture_opened(&self, center: (f64, f64)) {
        self.point(center.0, center.1, false);
    }

    fn point(&self, lat: f64, lon: f64, dsf: bool) {
        let now = Instant::now();
        let (position, motion) = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.roll(now);
            state.burst.all.add(lat, lon);
            if dsf {
                state.burst.dsfs.add(lat, lon);
                state.update_motion();
            }
            (state.burst.all.get(), state.motion)
        };
        let Some((lat, lon)) = position else { return };
        self.telemetry.report(
            SourceKind::Inferred,
            Sample {
                lat,
                lon,
                elevation_m: 0.0,
                heading_deg: motion.map_or(0.0, |m| m.track_deg),
                groundspeed_mps: motion.map_or(0.0, |m| m.speed_mps),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_across_the_antimeridian_is_centred_on_it() {
        let hub = Telemetry::new();
        let inferred = InferredPosition::new(hub.clone());
        for lon in [178, 179, -180, -179] {
            inferred.dsf_opened(10, lon);
        }
        let fix = hub.fix().expect("inferred");
        // Centres 178.5, 179.5, -179.5, -178.5: their middle is 180°.
        assert!(
            (fix.lat - 10.5).abs() < 1e-9 && (fix.lon.abs() - 180.0).abs() < 1e-9,
            "{fix:?}"
        );
        inferred.dsf_opened(10, -179);
        let fix = hub.fix().expect("inferred");
        // -178.5 twice: the mean is 0.3° east of the antimeridian.
        assert!((fix.lon + 179.7).abs() < 1e-9, "{fix:?}");
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

    /// The DSFs of the rows `rows` of a band five wide around -6.
    fn load(inferred: &InferredPosition, rows: std::ops::RangeInclusive<i32>) {
        for lat in rows {
            for lon in -8..=-4 {
                inferred.dsf_opened(lat, lon);
            }
        }
    }

    fn motion(hub: &Telemetry) -> Option<Motion> {
        hub.fix().expect("inferred").motion
    }

    #[tokio::test(start_paused = true)]
    async fn successive_loads_give_track_and_speed() {
        let hub = Telemetry::new();
        let inferred = InferredPosition::new(hub.clone());
        // Start-up: 3 x 5 around (47.5, -5.5). No motion from one load,
        // however its centre drifts as it fills.
        load(&inferred, 46..=48);
        tokio::time::advance(Duration::from_secs(2)).await;
        inferred.texture_opened((47.9, -5.0));
        assert_eq!(motion(&hub), None);
        // 30 s later the first in-flight load opens rows 49 and 50 (48 is
        // loaded): north, too fast by the band's lead.
        tokio::time::advance(Duration::from_secs(30)).await;
        load(&inferred, 49..=50);
        let first = motion(&hub).expect("moving");
        assert!(first.track_deg.abs() < 0.5, "{first:?}");
        let lead_included = distance_m((47.5, -5.5), (50.0, -5.5)) / 32.0;
        assert!((first.speed_mps - lead_included).abs() < 1.0, "{first:?}");
        // The next load, 24 s later, opens only row 51: one tile further on,
        // the aircraft's own speed.
        tokio::time::advance(Duration::from_secs(24)).await;
        load(&inferred, 51..=51);
        let steady = motion(&hub).expect("moving");
        let one_degree = distance_m((50.0, -5.5), (51.5, -5.5)) / 24.0;
        assert!((steady.speed_mps - one_degree).abs() < 1.0, "{steady:?}");
        assert!(steady.track_deg.abs() < 0.5, "{steady:?}");
        // Texture reads alone, later, move the position, not the motion.
        tokio::time::advance(Duration::from_secs(15)).await;
        inferred.texture_opened((51.2, -6.0));
        let fix = hub.fix().unwrap();
        assert_eq!(fix.motion, Some(steady));
        assert!((fix.lat - 51.2).abs() < 1e-9, "{fix:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn southwest_across_a_corner_and_a_jump_gives_no_motion() {
        let hub = Telemetry::new();
        let inferred = InferredPosition::new(hub.clone());
        inferred.dsf_opened(47, -6);
        tokio::time::advance(Duration::from_secs(20)).await;
        // Row 46 and column -7 (the band of a south-west track).
        for lon in -9..=-5 {
            inferred.dsf_opened(45, lon);
        }
        for lat in 44..=48 {
            inferred.dsf_opened(lat, -8);
        }
        let sw = motion(&hub).expect("moving");
        assert!((sw.track_deg - 225.0).abs() < 25.0, "{sw:?}");
        // A new start-up far away (a teleport): no motion.
        tokio::time::advance(Duration::from_secs(60)).await;
        inferred.dsf_opened(10, 100);
        assert_eq!(motion(&hub), None);
    }
}
