//! Sample Ortho4XP-style scenery packages: what XEarthLayer's filesystem
//! overlays. A package holds
//!
//! - `Earth nav data/+40-010/+47-006.dsf`: the 1° tile of the spec's point
//!   (magic `XPLNEDSF`, then pseudo-random bytes);
//! - `terrain/{row}_{col}_{MAPTYPE}{ZL}.ter`, one per texture, naming
//!   `../textures/{row}_{col}_{MAPTYPE}{ZL}.dds`, and a `_sea.ter` variant of
//!   the first texture naming the same DDS, as Ortho4XP writes for tiles on a
//!   coast;
//! - real files that must pass through untouched: `terrain/water_mask.png`
//!   (opaque bytes, not a decodable image), `README.txt`, and the relative
//!   symlink `terrain/link_to_readme -> ../README.txt`;
//! - no `textures/` folder: the DDS files are what the service generates.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use xearthlayer::coord::{chunk_at, TextureId, CHUNKS_PER_SIDE, MAX_LATITUDE};

use crate::imagery::hash64;

/// DSF size when none is given: small, but more than one read.
const DEFAULT_DSF_BYTES: usize = 256 * 1024;
/// Equatorial circumference in metres (WGS84), for texture widths.
const EARTH_CIRCUMFERENCE_M: f64 = 40_075_016.686;
/// Pixels along one side of a texture, the last number of `LOAD_CENTER`.
const TEXTURE_PIXELS: u32 = 4096;

/// What to put in a package.
#[derive(Debug, Clone, PartialEq)]
pub struct PackageSpec {
    /// Centre of the texture block; also picks the DSF tile.
    pub lat: f64,
    pub lon: f64,
    /// Chunk zoom of the textures (the ZL in their names).
    pub zoom: u8,
    /// How many textures, laid out in a square-ish block around the point.
    pub textures: usize,
    /// Provider code in the names, e.g. `BI`.
    pub map_type: String,
    /// Size of the DSF file.
    pub dsf_bytes: usize,
}

impl Default for PackageSpec {
    /// 16 ZL16 Bing textures off Brittany, in `+47-006.dsf`.
    fn default() -> Self {
        PackageSpec {
            lat: 47.5,
            lon: -5.6,
            zoom: 16,
            textures: 16,
            map_type: "BI".to_string(),
            dsf_bytes: DEFAULT_DSF_BYTES,
        }
    }
}

/// A package written to disk.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplePackage {
    pub root: PathBuf,
    /// One entry per texture, in the order their `.ter` files were written.
    pub textures: Vec<TextureId>,
    pub dsf: PathBuf,
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// Writes a package under `dir`, which becomes its root (created if needed;
/// files already there are overwritten).
pub fn create_package(dir: &Path, spec: &PackageSpec) -> io::Result<SamplePackage> {
    if !(-MAX_LATITUDE..=MAX_LATITUDE).contains(&spec.lat) || !(-180.0..180.0).contains(&spec.lon) {
        return Err(invalid(format!("no map at {}, {}", spec.lat, spec.lon)));
    }
    let textures = texture_block(spec)?;
    write_package(dir, spec.lat, spec.lon, &textures, spec.dsf_bytes)
}

/// Writes a package with exactly these textures, its DSF tile being that of
/// the first texture's centre.
pub fn package_for_texture_names(dir: &Path, names: &[TextureId]) -> io::Result<SamplePackage> {
    let first = names
        .first()
        .ok_or_else(|| invalid("a package needs at least one texture".to_string()))?;
    let (lat, lon) = first.bounds().center();
    write_package(dir, lat, lon, names, DEFAULT_DSF_BYTES)
}

/// `spec.textures` textures in rows of ceil(sqrt(n)), the texture holding the
/// point near the middle of the block.
fn texture_block(spec: &PackageSpec) -> io::Result<Vec<TextureId>> {
    let centre = chunk_at(spec.zoom, spec.lat, spec.lon);
    let span = i64::from(CHUNKS_PER_SIDE);
    let (row0, col0) = (
        i64::from(centre.y) / span * span,
        i64::from(centre.x) / span * span,
    );
    let side = (1..).find(|s: &usize| s * s >= spec.textures).unwrap_or(1);
    let half = (side / 2) as i64;
    (0..spec.textures)
        .map(|i| {
            let row = row0 + ((i / side) as i64 - half) * span;
            let col = col0 + ((i % side) as i64 - half) * span;
            let (row, col) = (u64::try_from(row), u64::try_from(col));
            let (Ok(row), Ok(col)) = (row, col) else {
                return Err(invalid(format!("texture block runs off the map at {i}")));
            };
            TextureId::new(row, col, u32::from(spec.zoom), &spec.map_type)
                .map_err(|e| invalid(e.to_string()))
        })
        .collect()
}

/// `+47-006`: the signed, zero-padded degrees Ortho4XP names tiles by.
fn tile_name(lat: i64, lon: i64) -> String {
    format!("{lat:+03}{lon:+04}")
}

/// The `.ter` text X-Plane reads for a texture.
fn ter_text(texture: &TextureId) -> String {
    let (lat, lon) = texture.bounds().center();
    // Width of the texture's 16 chunks at its centre latitude.
    let width_m = EARTH_CIRCUMFERENCE_M * lat.to_radians().cos() * f64::from(CHUNKS_PER_SIDE)
        / f64::from(1u32 << texture.zoom);
    format!(
        "A\n800\nTERRAIN\n\nLOAD_CENTER {lat:.5} {lon:.5} {} {TEXTURE_PIXELS}\n\
         BASE_TEX_NOWRAP ../textures/{}\nNO_ALPHA\n",
        width_m.round() as u64,
        texture.file_name()
    )
}

/// `len` deterministic pseudo-random bytes.
fn noise_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0u64..)
        .take(len.div_ceil(8))
        .flat_map(|i| hash64(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_le_bytes())
        .collect();
    bytes.truncate(len);
    bytes
}

fn write_package(
    dir: &Path,
    lat: f64,
    lon: f64,
    textures: &[TextureId],
    dsf_bytes: usize,
) -> io::Result<SamplePackage> {
    let (lat_deg, lon_deg) = (lat.floor() as i64, lon.floor() as i64);
    let folder = tile_name(lat_deg.div_euclid(10) * 10, lon_deg.div_euclid(10) * 10);
    let dsf_dir = dir.join("Earth nav data").join(folder);
    fs::create_dir_all(&dsf_dir)?;
    let dsf = dsf_dir.join(format!("{}.dsf", tile_name(lat_deg, lon_deg)));
    let mut dsf_data = b"XPLNEDSF".to_vec();
    let seed = ((lat_deg as u64) << 32) ^ lon_deg as u64;
    dsf_data.extend(noise_bytes(seed, dsf_bytes.saturating_sub(dsf_data.len())));
    dsf_data.truncate(dsf_bytes);
    fs::write(&dsf, dsf_data)?;

    let terrain = dir.join("terrain");
    fs::create_dir_all(&terrain)?;
    for texture in textures {
        let name = texture.file_name();
        let stem = name.strip_suffix(".dds").unwrap_or(&name);
        fs::write(terrain.join(format!("{stem}.ter")), ter_text(texture))?;
    }
    if let Some(first) = textures.first() {
        let name = first.file_name();
        let stem = name.strip_suffix(".dds").unwrap_or(&name);
        fs::write(terrain.join(format!("{stem}_sea.ter")), ter_text(first))?;
    }
    let mut mask = b"\x89PNG\r\n\x1a\n".to_vec();
    mask.extend(noise_bytes(0x6D61_736B, 2048));
    fs::write(terrain.join("water_mask.png"), mask)?;

    fs::write(
        dir.join("README.txt"),
        format!(
            "Sample scenery package written by xel-sim for XEarthLayer tests.\n\
             {} textures; their DDS files are generated on demand.\n",
            textures.len()
        ),
    )?;
    let link = terrain.join("link_to_readme");
    if link.symlink_metadata().is_ok() {
        fs::remove_file(&link)?;
    }
    std::os::unix::fs::symlink("../README.txt", &link)?;

    Ok(SamplePackage {
        root: dir.to_path_buf(),
        textures: textures.to_vec(),
        dsf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_names_are_signed_and_padded() {
        assert_eq!(tile_name(47, -6), "+47-006");
        assert_eq!(tile_name(40, -10), "+40-010");
        assert_eq!(tile_name(-1, 0), "-01+000");
        assert_eq!(tile_name(-10, 170), "-10+170");
    }

    #[test]
    fn writes_an_ortho4xp_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("zOrtho4XP_+47-006");
        let spec = PackageSpec {
            textures: 6,
            dsf_bytes: 10_000,
            ..PackageSpec::default()
        };
        let package = create_package(&root, &spec).unwrap();

        assert_eq!(package.dsf, root.join("Earth nav data/+40-010/+47-006.dsf"));
        let dsf = fs::read(&package.dsf).unwrap();
        assert_eq!((&dsf[..8], dsf.len()), (&b"XPLNEDSF"[..], 10_000));
        assert!(!root.join("textures").exists());

        // Six textures in a 3-wide block of distinct multiples of 16, one
        // of them holding the spec's point.
        assert_eq!(package.textures.len(), 6);
        let mut unique = package.textures.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 6);
        let point = chunk_at(16, spec.lat, spec.lon);
        assert!(package.textures.iter().any(|t| {
            (t.col..t.col + 16).contains(&point.x) && (t.row..t.row + 16).contains(&point.y)
        }));

        let mut ter_files = 0;
        for entry in fs::read_dir(root.join("terrain")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "ter") {
                ter_files += 1;
                let text = fs::read_to_string(&path).unwrap();
                let base = text
                    .lines()
                    .find_map(|l| l.strip_prefix("BASE_TEX_NOWRAP ../textures/"));
                let id = TextureId::parse(base.unwrap()).unwrap();
                assert!(package.textures.contains(&id), "{}", path.display());
                assert_eq!((id.row % 16, id.col % 16, id.zoom), (0, 0, 16));
                assert_eq!(id.map_type, "BI");
            }
        }
        assert_eq!(ter_files, 7, "six textures and one _sea variant");

        let link = root.join("terrain/link_to_readme");
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("../README.txt"));
        assert_eq!(
            fs::read(&link).unwrap(),
            fs::read(root.join("README.txt")).unwrap()
        );
        assert!(
            fs::metadata(root.join("terrain/water_mask.png"))
                .unwrap()
                .len()
                > 1000
        );

        // Writing again over the same directory works.
        create_package(&root, &spec).unwrap();
    }

    #[test]
    fn ter_text_matches_ortho4xp() {
        let tmp = tempfile::tempdir().unwrap();
        let id = TextureId::parse("25264_10368_BI16.dds").unwrap();
        let package = package_for_texture_names(tmp.path(), std::slice::from_ref(&id)).unwrap();
        assert_eq!(package.textures, vec![id.clone()]);
        let text = fs::read_to_string(tmp.path().join("terrain/25264_10368_BI16.ter")).unwrap();
        let (lat, lon) = id.bounds().center();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[..4], ["A", "800", "TERRAIN", ""]);
        let load: Vec<&str> = lines[4].split(' ').collect();
        assert_eq!(load[0], "LOAD_CENTER");
        assert_eq!(load[1], format!("{lat:.5}"));
        assert_eq!(load[2], format!("{lon:.5}"));
        let width: f64 = load[3].parse().unwrap();
        assert!((7000.0..8000.0).contains(&width), "{width} m");
        assert_eq!(load[4], "4096");
        assert_eq!(
            lines[5..],
            [
                "BASE_TEX_NOWRAP ../textures/25264_10368_BI16.dds",
                "NO_ALPHA"
            ]
        );
        assert!(text.ends_with("NO_ALPHA\n"));
    }

    #[test]
    fn rejects_impossible_specs() {
        let tmp = tempfile::tempdir().unwrap();
        let far_north = PackageSpec {
            lat: 89.0,
            ..PackageSpec::default()
        };
        assert!(create_package(tmp.path(), &far_north).is_err());
        let off_edge = PackageSpec {
            lon: -179.99,
            textures: 9,
            ..PackageSpec::default()
        };
        assert!(create_package(tmp.path(), &off_edge).is_err());
        assert!(package_for_texture_names(tmp.path(), &[]).is_err());
    }
}
