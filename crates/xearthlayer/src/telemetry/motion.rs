//! Track and speed from successive positions.
//!
//! X-Plane's ground speed and heading datarefs describe the aircraft, not
//! how fast the scenery under it changes: with time compression (up to 16x)
//! the position moves many times faster than `groundspeed` says, and with
//! wind the track differs from the heading. So motion is measured from the
//! positions themselves over a short window.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::coord::wrap_lon;

/// Mean Earth radius, metres.
pub const EARTH_RADIUS_M: f64 = 6_371_000.0;
/// Positions older than this are not used for motion.
const WINDOW: Duration = Duration::from_secs(10);
/// Shortest span of positions that gives a usable track.
const MIN_SPAN: Duration = Duration::from_millis(900);
/// Positions kept (about 10 s at X-Plane's rates).
const MAX_POINTS: usize = 256;
/// Below this the aircraft is taken as standing: no track.
const MIN_SPEED_MPS: f64 = 1.0;
/// Faster than any aircraft at X-Plane's 16x time compression (Mach 1.5
/// is about 500 m/s): a measured speed above it is a jump, not motion.
const MAX_SPEED_MPS: f64 = 10_000.0;
/// One step this long between two positions is a jump (a reposition or a
/// new flight): positions before it say nothing about motion after it.
/// At 16x and 600 kt the aircraft moves 5 km a second; telemetry comes
/// several times a second and goes stale after 3 s.
const JUMP_M: f64 = 25_000.0;

/// Motion over the ground.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Motion {
    /// True track, degrees from north, 0..360.
    pub track_deg: f64,
    /// Speed over the ground as the position moves (time compression included).
    pub speed_mps: f64,
}

/// Recent positions of one source.
#[derive(Debug, Default)]
pub struct MotionTracker {
    points: VecDeque<(Instant, f64, f64)>,
}

impl MotionTracker {
    pub fn push(&mut self, at: Instant, lat: f64, lon: f64) {
        if self
            .points
            .back()
            .is_some_and(|&(_, la, lo)| distance_m((la, lo), (lat, lon)) > JUMP_M)
        {
            self.points.clear();
        }
        while self
            .points
            .front()
            .is_some_and(|&(t, ..)| at.saturating_duration_since(t) > WINDOW)
            || self.points.len() >= MAX_POINTS
        {
            self.points.pop_front();
        }
        self.points.push_back((at, lat, lon));
    }

    /// Forgets the history (the simulator restarted or the aircraft jumped).
    pub fn clear(&mut self) {
        self.points.clear();
    }

    /// Motion between the oldest and newest position of the window, if they
    /// span long enough and the aircraft moves.
    pub fn motion(&self) -> Option<Motion> {
        let (&(t0, lat0, lon0), &(t1, lat1, lon1)) = (self.points.front()?, self.points.back()?);
        let span = t1.saturating_duration_since(t0);
        if span < MIN_SPAN {
            return None;
        }
        let metres = distance_m((lat0, lon0), (lat1, lon1));
        let speed_mps = metres / span.as_secs_f64();
        (MIN_SPEED_MPS..=MAX_SPEED_MPS)
            .contains(&speed_mps)
            .then(|| Motion {
                track_deg: bearing_deg((lat0, lon0), (lat1, lon1)),
                speed_mps,
            })
    }
}

/// Great-circle distance in metres between two (lat, lon) points.
pub fn distance_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, la2) = (a.0.to_radians(), b.0.to_radians());
    let dlat = la2 - la1;
    let dlon = (b.1 - a.1).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

/// Initial true bearing from `a` to `b`, degrees 0..360.
pub fn bearing_deg(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, la2) = (a.0.to_radians(), b.0.to_radians());
    let dlon = (b.1 - a.1).to_radians();
    let y = dlon.sin() * la2.cos();
    let x = la1.cos() * la2.sin() - la1.sin() * la2.cos() * dlon.cos();
    y.atan2(x).to_degrees().rem_euclid(360.0)
}

/// The point `metres` from `from` along true bearing `bearing` (degrees).
pub fn destination(from: (f64, f64), bearing: f64, metres: f64) -> (f64, f64) {
    let d = metres / EARTH_RADIUS_M;
    let (lat1, lon1, th) = (
        from.0.to_radians(),
        from.1.to_radians(),
        bearing.to_radians(),
    );
    let lat2 = (lat1.sin() * d.cos() + lat1.cos() * d.sin() * th.cos()).asin();
    let lon2 = lon1 + (th.sin() * d.sin() * lat1.cos()).atan2(d.cos() - lat1.sin() * lat2.sin());
    (lat2.to_degrees(), wrap_lon(lon2.to_degrees()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_compression_shows_in_the_derived_speed() {
        // 250 kt (128.6 m/s) at 4x compression: the position moves 514 m/s.
        let start = Instant::now();
        let mut tracker = MotionTracker::default();
        for i in 0..=20u64 {
            let at = start + Duration::from_millis(100 * i);
            let (lat, lon) = destination((47.0, -6.0), 60.0, 514.4 * i as f64 / 10.0);
            tracker.push(at, lat, lon);
        }
        let motion = tracker.motion().expect("moving");
        assert!((motion.speed_mps - 514.4).abs() < 2.0, "{motion:?}");
        assert!((motion.track_deg - 60.0).abs() < 0.1, "{motion:?}");
    }

    #[test]
    fn too_short_a_span_or_standing_gives_no_motion() {
        let start = Instant::now();
        let mut tracker = MotionTracker::default();
        tracker.push(start, 47.0, -6.0);
        tracker.push(start + Duration::from_millis(300), 47.001, -6.0);
        assert_eq!(tracker.motion(), None);
        tracker.clear();
        tracker.push(start, 47.0, -6.0);
        tracker.push(start + Duration::from_secs(2), 47.0, -6.0);
        assert_eq!(tracker.motion(), None);
    }

    #[test]
    fn a_jump_starts_the_track_afresh_and_no_speed_is_beyond_an_aircraft() {
        let start = Instant::now();
        let mut tracker = MotionTracker::default();
        let at = |ms: u64| start + Duration::from_millis(ms);
        // Northbound, then repositioned 300 km east: the track after the
        // jump is the new one's, not the jump's.
        tracker.push(at(0), 47.0, -6.0);
        tracker.push(at(1000), 47.01, -6.0);
        tracker.push(at(1100), 47.0, -2.0);
        tracker.push(at(2100), 47.0, -1.99);
        let motion = tracker.motion().expect("moving east");
        assert!((motion.track_deg - 90.0).abs() < 0.5, "{motion:?}");
        assert!(motion.speed_mps < 1000.0, "{motion:?}");
        // Steps under the jump length but far too fast for any aircraft.
        tracker.clear();
        for i in 0..=10u64 {
            let (lat, lon) = destination((47.0, -6.0), 0.0, 20_000.0 * i as f64);
            tracker.push(at(100 * i), lat, lon);
        }
        assert_eq!(tracker.motion(), None, "200 km/s is no aircraft");
    }

    #[test]
    fn bearing_and_destination_agree_across_the_antimeridian() {
        let to = destination((10.0, 179.9), 90.0, 50_000.0);
        assert!(to.1 < -179.0, "{to:?}");
        assert!((bearing_deg((10.0, 179.9), to) - 90.0).abs() < 0.1);
        assert!((distance_m((10.0, 179.9), to) - 50_000.0).abs() < 1.0);
    }
}
