//! Which DSF tiles X-Plane loads next, and in which order.
//!
//! X-Plane's rule as the peers measured it (see DOMAIN.md): a load fires
//! when the aircraft is [`TRIGGER_INTO`] of a degree into a tile in its
//! direction of travel, and brings in the band ahead, [`DEPTH`] tiles deep
//! and [`WIDTH`] wide, centred on the aircraft. (Its start-up load, about
//! 3° x 4° around the aircraft, comes before any telemetry could predict
//! it; `xearthlayer prefetch` is for that.) The prediction walks the track
//! ahead, applies that rule at each step and lists each tile once, at the
//! first step that would load it.

use std::collections::HashSet;

use super::catalog::{tile_of, Tile};
use crate::coord::wrap_lon;
use crate::telemetry::motion::{destination, Motion};

/// How far into a tile (in degrees, along the direction of travel) a load fires.
pub const TRIGGER_INTO: f64 = 0.6;
/// Tiles deep a load reaches ahead of the aircraft's tile.
pub const DEPTH: i32 = 3;
/// Tiles wide a load is (odd: centred on the aircraft's tile).
pub const WIDTH: i32 = 5;
/// Step of the walk along the track, metres (about 0.05°).
const STEP_M: f64 = 5_000.0;

/// One tile X-Plane is expected to load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictedLoad {
    pub tile: Tile,
    /// Where the aircraft will be when the load fires.
    pub trigger: (f64, f64),
}

/// The tiles a load fired at (`lat`, `lon`) brings in, for a direction of
/// travel whose north and east components have the given signs (0: none).
pub fn band(lat: f64, lon: f64, north: i32, east: i32) -> Vec<Tile> {
    let (la, lo) = tile_of(lat, lon);
    let (fy, fx) = (lat - f64::from(la), lon - f64::from(lo));
    let half = WIDTH / 2;
    let mut tiles = Vec::new();
    let fired = |sign: i32, frac: f64| match sign {
        1 => frac >= TRIGGER_INTO,
        -1 => frac <= 1.0 - TRIGGER_INTO,
        _ => false,
    };
    if fired(north, fy) {
        for d in 1..=DEPTH {
            tiles.extend((lo - half..=lo + half).map(|c| (la + north * d, c)));
        }
    }
    if fired(east, fx) {
        for d in 1..=DEPTH {
            tiles.extend((la - half..=la + half).map(|r| (r, lo + east * d)));
        }
    }
    // Longitudes wrap at the antimeridian; there is nothing past the poles.
    tiles
        .into_iter()
        .filter(|&(r, _)| (-90..90).contains(&r))
        .map(|(r, c)| (r, (c + 180).rem_euclid(360) - 180))
        .collect()
}

/// The signs of the north and east components of a track: any motion
/// along an axis counts, as X-Plane reacts to position alone.
fn components(track_deg: f64) -> (i32, i32) {
    let sign = |v: f64| {
        if v > 1e-3 {
            1
        } else if v < -1e-3 {
            -1
        } else {
            0
        }
    };
    let t = track_deg.to_radians();
    (sign(t.cos()), sign(t.sin()))
}

/// The loads ahead within `horizon_m` along the track, soonest first,
/// without the tiles in `loaded`.
pub fn next_loads(
    position: (f64, f64),
    motion: Motion,
    horizon_m: f64,
    loaded: &HashSet<Tile>,
) -> Vec<PredictedLoad> {
    let (north, east) = components(motion.track_deg);
    let mut seen: HashSet<Tile> = loaded.clone();
    let mut loads = Vec::new();
    let steps = (horizon_m / STEP_M).ceil() as u32;
    for step in 0..=steps {
        let point = destination(position, motion.track_deg, f64::from(step) * STEP_M);
        let mut fresh: Vec<Tile> = band(point.0, point.1, north, east)
            .into_iter()
            .filter(|tile| seen.insert(*tile))
            .collect();
        // Within one load, nearer tiles first (the short way round in longitude).
        let distance = |t: &Tile| {
            let dy = f64::from(t.0) + 0.5 - point.0;
            let dx = wrap_lon(f64::from(t.1) + 0.5 - point.1);
            dy * dy + dx * dx
        };
        fresh.sort_by(|a, b| distance(a).total_cmp(&distance(b)));
        loads.extend(fresh.into_iter().map(|tile| PredictedLoad {
            tile,
            trigger: point,
        }));
    }
    loads
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::motion::distance_m;

    fn motion(track_deg: f64) -> Motion {
        Motion {
            track_deg,
            speed_mps: 128.0,
        }
    }

    fn tiles(loads: &[PredictedLoad]) -> Vec<Tile> {
        loads.iter().map(|l| l.tile).collect()
    }

    #[test]
    fn northbound_loads_the_next_row_band_when_0_6_into_the_tile() {
        // At 47.3N nothing fires yet; the first load fires at 47.6N and
        // brings rows 48..50, five wide around -6.
        let loads = next_loads((47.3, -5.5), motion(0.0), 50_000.0, &HashSet::new());
        assert!(!loads.is_empty());
        let first = loads[0];
        assert!((first.trigger.0 - 47.6).abs() < 0.05, "{first:?}");
        assert_eq!(first.tile, (48, -6));
        let mut got = tiles(&loads);
        got.sort_unstable();
        let mut want: Vec<Tile> = (48..=50)
            .flat_map(|r| (-8..=-4).map(move |c| (r, c)))
            .collect();
        want.sort_unstable();
        assert_eq!(got, want);
        let ahead = |l: &PredictedLoad| distance_m((47.3, -5.5), l.trigger);
        assert!(loads.windows(2).all(|w| ahead(&w[0]) <= ahead(&w[1])));
    }

    #[test]
    fn tiles_already_loaded_are_not_predicted_again() {
        let loaded: HashSet<Tile> = (48..=49)
            .flat_map(|r| (-8..=-4).map(move |c| (r, c)))
            .collect();
        let loads = next_loads((47.7, -5.5), motion(0.0), 10_000.0, &loaded);
        let mut got = tiles(&loads);
        got.sort_unstable();
        assert_eq!(got, (-8..=-4).map(|c| (50, c)).collect::<Vec<_>>());
        assert!(
            distance_m(loads[0].trigger, (47.7, -5.5)) < 1.0,
            "fires where the aircraft is"
        );
    }

    #[test]
    fn a_diagonal_across_a_tile_corner_loads_row_and_column_bands_in_order() {
        // South-west bound just before the corner of tile (47, -6):
        // 0.4 from the south and west edges both fire at the same point.
        let loads = next_loads((47.45, -5.55), motion(225.0), 30_000.0, &HashSet::new());
        let got = tiles(&loads);
        assert!(
            got.contains(&(46, -6)) && got.contains(&(44, -6)),
            "{got:?}"
        );
        assert!(
            got.contains(&(47, -7)) && got.contains(&(47, -9)),
            "{got:?}"
        );
        // The corner tile comes before the far ends of the bands.
        let at = |t: Tile| got.iter().position(|&g| g == t).unwrap();
        assert!(at((46, -7)) < at((44, -8)));
        assert!(at((46, -7)) < at((49, -9)));
        // Each tile once.
        let unique: HashSet<_> = got.iter().collect();
        assert_eq!(unique.len(), got.len());
    }

    #[test]
    fn eastbound_across_the_antimeridian() {
        let loads = next_loads((10.5, 179.5), motion(90.0), 80_000.0, &HashSet::new());
        let got = tiles(&loads);
        assert!(
            got.contains(&(10, -180)) && got.contains(&(10, -178)),
            "{got:?}"
        );
        assert!(
            got.iter().all(|&(_, c)| (-180..180).contains(&c)),
            "{got:?}"
        );
        // The first load's nearest tile is just across the antimeridian.
        assert_eq!(got[0], (10, -180), "{got:?}");
    }
}
