//! X-Plane's side of a flight: the start-up load with the aircraft parked,
//! then the loads the flight fires, one at a time, until it has flown far
//! enough. The caller reads the loads (and whatever it measures around
//! each), so tests, the flight benchmark and the demo share one loop.

use std::time::{Duration, Instant};

use super::flight::FlightPlan;
use super::loader::{SceneryLoader, Tile};
use super::SimXPlane;

/// How often the position is looked at between loads (X-Plane checks its
/// scenery every frame or so; this is fine enough at any speed simulated).
const POLL: Duration = Duration::from_millis(20);

/// One load that is due now.
#[derive(Debug, Clone)]
pub struct DueLoad {
    /// The new tiles, in the loader's order.
    pub tiles: Vec<Tile>,
    /// Where the aircraft is.
    pub position: (f64, f64),
    /// Metres flown since take-off (0 for the start-up load).
    pub flown_m: f64,
    /// Since the flight began (zero for the start-up load).
    pub elapsed: Duration,
}

/// A flight through the loader's scenery: see the module documentation.
pub struct Trip<'a> {
    sim: &'a SimXPlane,
    plan: FlightPlan,
    distance_m: f64,
    /// When the aircraft took off; `None` while parked for the start-up load.
    airborne: Option<Instant>,
    /// Whether the start-up load was handed out.
    started: bool,
}

impl<'a> Trip<'a> {
    /// The aircraft parks at `plan.start` (telemetry reports it standing).
    pub fn new(sim: &'a SimXPlane, plan: FlightPlan, distance_m: f64) -> Self {
        sim.fly(FlightPlan {
            speed_kt: 0.0,
            ..plan
        });
        Trip {
            sim,
            plan,
            distance_m,
            airborne: None,
            started: false,
        }
    }

    /// Waits for the next load: the start-up load first, then, once the
    /// caller has read it and asks again, the aircraft takes off and each
    /// load its flight fires comes in turn. `None` once `distance_m` is
    /// flown.
    pub fn next_due(&mut self, loader: &mut SceneryLoader) -> Option<DueLoad> {
        if !self.started {
            self.started = true;
            let position = self.sim.position();
            return Some(DueLoad {
                tiles: loader.due(position),
                position,
                flown_m: 0.0,
                elapsed: Duration::ZERO,
            });
        }
        let took_off = *self.airborne.get_or_insert_with(|| {
            self.sim.fly(self.plan);
            Instant::now()
        });
        loop {
            let flight = self.sim.flight();
            let flown_m = flight.flown_m();
            if flown_m >= self.distance_m {
                return None;
            }
            let position = flight.position();
            let tiles = loader.due(position);
            if !tiles.is_empty() {
                return Some(DueLoad {
                    tiles,
                    position,
                    flown_m,
                    elapsed: took_off.elapsed(),
                });
            }
            std::thread::sleep(POLL);
        }
    }
}
