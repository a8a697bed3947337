//! A grid of scenery packages, one per DSF tile, as Ortho4XP makes them
//! (`zOrtho4XP_+47-006`, ...): what a flight crosses.

use std::io;
use std::path::Path;

use crate::package::{create_package, PackageSpec, SamplePackage};

/// One package per tile of `lats` x `lons` under `dir`, each with
/// `per_tile` textures at `zoom` around the tile's centre.
pub fn create_grid(
    dir: &Path,
    lats: std::ops::RangeInclusive<i32>,
    lons: std::ops::RangeInclusive<i32>,
    zoom: u8,
    per_tile: usize,
) -> io::Result<Vec<SamplePackage>> {
    create_grid_zoned(dir, lats, lons, per_tile, |_| zoom)
}

/// [`create_grid`] with each tile's zoom level chosen by `zoom_of(lat, lon)`
/// of its south-west corner (Ortho4XP users raise the zoom near airports).
pub fn create_grid_zoned(
    dir: &Path,
    lats: std::ops::RangeInclusive<i32>,
    lons: std::ops::RangeInclusive<i32>,
    per_tile: usize,
    zoom_of: impl Fn((i32, i32)) -> u8,
) -> io::Result<Vec<SamplePackage>> {
    let mut packages = Vec::new();
    for lat in lats {
        for lon in lons.clone() {
            let name = format!("zOrtho4XP_{lat:+03}{lon:+04}");
            packages.push(create_package(
                &dir.join(name),
                &PackageSpec {
                    lat: f64::from(lat) + 0.5,
                    lon: f64::from(lon) + 0.5,
                    zoom: zoom_of((lat, lon)),
                    textures: per_tile,
                    ..PackageSpec::default()
                },
            )?);
        }
    }
    Ok(packages)
}
