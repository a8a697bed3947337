//! Which textures lie along a route, and in what order to fetch them: those
//! whose centre is within a radius of the route's legs, in the order the
//! route passes them, each with its distance from the route (which decides
//! how many of its levels X-Plane will read). A route of one point is an
//! area around it, nearest first.

use xearthlayer::coord::{wrap_lon, TextureId};
use xearthlayer::prefetch::CatalogTexture;
use xearthlayer::telemetry::motion::distance_m;

/// Metres per degree of latitude, for the bounding box.
const METRES_PER_DEGREE: f64 = 111_320.0;

/// Points along the route, no more than `step_m` apart, with the distance
/// flown to each: legs are cut into equal steps (straight in latitude and
/// longitude, which is close to the great circle over legs this short, and
/// the short way round: a leg from 179°E to 179°W crosses the antimeridian).
fn samples(route: &[(f64, f64)], step_m: f64) -> Vec<((f64, f64), f64)> {
    let mut out = Vec::new();
    let mut flown = 0.0;
    if let Some(&first) = route.first() {
        out.push((first, 0.0));
    }
    for leg in route.windows(2) {
        let (a, b) = (leg[0], leg[1]);
        let length = distance_m(a, b);
        let steps = (length / step_m).ceil().max(1.0) as usize;
        let lon_step = wrap_lon(b.1 - a.1);
        for i in 1..=steps {
            let f = i as f64 / steps as f64;
            let point = (a.0 + (b.0 - a.0) * f, wrap_lon(a.1 + lon_step * f));
            out.push((point, flown + length * f));
        }
        flown += length;
    }
    out
}

/// The textures within `radius_m` of the route, in route order (ties:
/// nearest first), each with its distance from the route.
pub fn textures_along<'a>(
    route: &[(f64, f64)],
    radius_m: f64,
    textures: impl IntoIterator<Item = &'a CatalogTexture>,
) -> Vec<(f64, TextureId)> {
    // Steps of a quarter radius put every point of a leg within radius/8 of
    // a sample: a distance is overstated by under 1% of the radius.
    let samples = samples(route, (radius_m / 4.0).max(100.0));
    let margin_lat = radius_m / METRES_PER_DEGREE;
    let (lat_lo, lat_hi) = route.iter().fold((90.0f64, -90.0f64), |(lo, hi), p| {
        (lo.min(p.0 - margin_lat), hi.max(p.0 + margin_lat))
    });
    let mut found: Vec<(f64, f64, TextureId)> = textures
        .into_iter()
        .filter(|t| (lat_lo..=lat_hi).contains(&t.center.0))
        .filter_map(|t| {
            let (flown, distance) = samples
                .iter()
                .map(|(p, flown)| (*flown, distance_m(*p, t.center)))
                .min_by(|a, b| a.1.total_cmp(&b.1))?;
            (distance <= radius_m).then_some((flown, distance, t.id.clone()))
        })
        .collect();
    found.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    found.into_iter().map(|(_, d, id)| (d, id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use xearthlayer::prefetch::{Catalog, IndexCatalog};

    /// ZL16 textures (16 chunks, about 9.6 km at 48°N) on a 6x6 block
    /// around 48°N, 3°W.
    fn catalog() -> IndexCatalog {
        let (x0, y0) = (32220u32 / 16 * 16, 22500u32 / 16 * 16);
        IndexCatalog::from_ids((0..6).flat_map(move |row| {
            (0..6).map(move |col| {
                TextureId::parse(&format!("{}_{}_BI16.dds", y0 + row * 16, x0 + col * 16)).unwrap()
            })
        }))
    }

    fn all(catalog: &IndexCatalog) -> Vec<CatalogTexture> {
        catalog
            .tiles()
            .into_iter()
            .flat_map(|t| catalog.textures_in_tile(t).to_vec())
            .collect()
    }

    #[test]
    fn a_transpacific_leg_crosses_the_antimeridian() {
        // 179°E to 179°W on the equator: 222 km across the date line.
        let route = [(0.0, 179.0), (0.0, -179.0)];
        let points = samples(&route, 10_000.0);
        for pair in points.windows(2) {
            let ((a, _), (b, _)) = (pair[0], pair[1]);
            assert!(distance_m(a, b) < 10_001.0, "{a:?} to {b:?}");
            assert!(
                (-180.0..180.0).contains(&b.1) && b.1.abs() >= 179.0 - 1e-9,
                "{b:?}"
            );
        }
        let on_the_line = TextureId::parse("32768_65520_BI16.dds").unwrap();
        let far_side = TextureId::parse("32768_32768_BI16.dds").unwrap();
        let catalog = IndexCatalog::from_ids([on_the_line.clone(), far_side]);
        let along = textures_along(&route, 5_000.0, &all(&catalog));
        assert_eq!(
            along.iter().map(|(_, id)| id).collect::<Vec<_>>(),
            [&on_the_line]
        );
    }

    #[test]
    fn along_a_route_in_route_order() {
        let textures = all(&catalog());
        let lons: Vec<f64> = textures.iter().map(|t| t.center.1).collect();
        let lats: Vec<f64> = textures.iter().map(|t| t.center.0).collect();
        let (west, east) = (
            lons.iter().cloned().fold(f64::MAX, f64::min),
            lons.iter().cloned().fold(f64::MIN, f64::max),
        );
        let middle = (
            lats.iter().sum::<f64>() / lats.len() as f64,
            (west + east) / 2.0,
        );
        // West to east through the middle of the block, 6 km either side.
        let route = [(middle.0, west - 0.2), middle, (middle.0, east + 0.2)];
        let along = textures_along(&route, 6_000.0, &textures);
        assert!(
            !along.is_empty() && along.len() < textures.len(),
            "{}",
            along.len()
        );
        for (distance, id) in &along {
            let t = textures.iter().find(|t| t.id == *id).unwrap();
            assert!(*distance <= 6_000.0);
            assert!((distance_m(t.center, (middle.0, t.center.1)) - distance).abs() < 1_000.0);
        }
        let order: Vec<f64> = along
            .iter()
            .map(|(_, id)| textures.iter().find(|t| t.id == *id).unwrap().center.1)
            .collect();
        assert!(
            order.windows(2).all(|w| w[0] <= w[1]),
            "not west to east: {order:?}"
        );
        // Every texture left out is farther than the radius from the line.
        for t in &textures {
            if !along.iter().any(|(_, id)| *id == t.id) {
                assert!(distance_m(t.center, (middle.0, t.center.1)) > 6_000.0);
            }
        }
        // The same route reversed takes the same textures, east to west.
        let reversed: Vec<(f64, f64)> = route.iter().rev().copied().collect();
        let back = textures_along(&reversed, 6_000.0, &textures);
        assert_eq!(back.len(), along.len());
        assert!(
            textures
                .iter()
                .find(|t| t.id == back[0].1)
                .unwrap()
                .center
                .1
                > middle.1
        );
    }

    #[test]
    fn one_point_is_an_area_nearest_first() {
        let textures = all(&catalog());
        let centre = textures[7].center;
        let around = textures_along(&[centre], 15_000.0, &textures);
        assert_eq!(around[0], (0.0, textures[7].id.clone()));
        assert!(around.windows(2).all(|w| w[0].0 <= w[1].0));
        let expected = textures
            .iter()
            .filter(|t| distance_m(centre, t.center) <= 15_000.0)
            .count();
        assert_eq!(around.len(), expected);
        assert!(expected > 1 && expected < textures.len());
    }
}
