//! The simulated aircraft: a straight track at a chosen speed and time
//! compression, with the values X-Plane's datarefs would give.

use tokio::time::Instant;
use xearthlayer::telemetry::motion::destination;

/// Knots to metres per second.
pub const KT: f64 = 0.514_444;

/// What the aircraft flies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlightPlan {
    /// (lat, lon) at the start.
    pub start: (f64, f64),
    /// True track and heading (no wind), degrees.
    pub track_deg: f64,
    pub speed_kt: f64,
    /// X-Plane's time compression, 1 to 16: the aircraft covers that many
    /// times more ground per second than its ground speed says.
    pub time_compression: f64,
    pub elevation_m: f64,
}

impl Default for FlightPlan {
    fn default() -> Self {
        FlightPlan {
            start: (47.5, -5.5),
            track_deg: 0.0,
            speed_kt: 250.0,
            time_compression: 1.0,
            elevation_m: 3000.0,
        }
    }
}

/// A flight under way since `started`.
#[derive(Debug, Clone, Copy)]
pub struct Flight {
    pub plan: FlightPlan,
    started: Instant,
}

impl Flight {
    pub fn new(plan: FlightPlan) -> Self {
        Flight {
            plan,
            started: Instant::now(),
        }
    }

    /// Metres flown so far.
    pub fn flown_m(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * self.plan.speed_kt * KT * self.plan.time_compression
    }

    /// Where the aircraft is now.
    pub fn position(&self) -> (f64, f64) {
        destination(self.plan.start, self.plan.track_deg, self.flown_m())
    }

    /// The values of `dataref` now, as X-Plane would send them (0 for
    /// datarefs the simulation does not know, as X-Plane does for unknown
    /// names over UDP).
    pub fn dataref(&self, name: &str) -> f64 {
        let (lat, lon) = self.position();
        match name {
            "sim/flightmodel/position/latitude" => lat,
            "sim/flightmodel/position/longitude" => lon,
            "sim/flightmodel/position/elevation" => self.plan.elevation_m,
            "sim/flightmodel/position/true_psi" => self.plan.track_deg,
            // Ground speed does not include time compression.
            "sim/flightmodel/position/groundspeed" => self.plan.speed_kt * KT,
            _ => 0.0,
        }
    }
}

/// The datarefs the simulation knows, in the order of their ids.
pub const KNOWN_DATAREFS: [&str; 5] = xearthlayer::telemetry::DATAREFS;
