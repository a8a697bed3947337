//! Sample scenery packages shaped like what Ortho4XP writes: what
//! XEarthLayer's filesystem overlays. A package holds
//!
//! - `Earth nav data/+40-010/+47-006.dsf`: the 1° tile of the spec's point
//!   (magic `XPLNEDSF`, then pseudo-random bytes), and its `.dsf.bak`;
//! - `Ortho4XP_+47-006.cfg` and `Data+47-006.mesh` at the root;
//! - `terrain/` with only `.ter` files: one per texture, naming
//!   `../textures/{row}_{col}_{code}{ZL}.dds`, plus water variants
//!   (`_water`, `_water_overlay`, `_sea`, `_sea_overlay`) with the bodies
//!   Ortho4XP writes for them;
//! - `textures/` with the real files Ortho4XP leaves there:
//!   `water_transition.png`, `water_normal_map.dds`, a mask PNG
//!   `{row}_{col}_ZL{zl}.png` per sea texture that names one, and
//!   optionally one real DDS. The other DDS files are what the service
//!   generates.
//!
//! Real-file bodies are opaque bytes behind the right magic, not decodable
//! images: they only have to pass through untouched.

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
/// Ortho4XP's default mask zoom: sea masks are drawn at ZL14 at most.
const MASK_ZOOM: u8 = 14;
/// Size of the one real DDS a package may hold; far from a generated
/// texture's size, so which one is served shows.
const REAL_DDS_BYTES: usize = 64 * 1024;

/// Provider codes a mixed package cycles through: the shapes Ortho4XP's
/// provider names take (letters, a digit, `@`, a trailing `_`, several
/// digits, `_NAIP`, an inner `_`).
pub const MIXED_CODES: [&str; 7] = ["BI", "GO2", "Arc@", "FR2010_", "DOP40", "CA_NAIP", "CH_ZH"];

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
    /// Provider code in the names, e.g. `BI` (unless `mixed`).
    pub map_type: String,
    /// Size of the DSF file.
    pub dsf_bytes: usize,
    /// Texture `i` takes code `MIXED_CODES[i % 7]` instead of `map_type`,
    /// and the water variants go round every kind Ortho4XP writes. Without
    /// it only the first texture gets a `_sea.ter`.
    pub mixed: bool,
    /// Put a real DDS for the first texture in `textures/`.
    pub real_dds: bool,
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
            mixed: false,
            real_dds: false,
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
    /// Every real file written other than `.ter` files and the DSF (masks,
    /// water textures, `.cfg`, `.mesh`, `.dsf.bak`, the real DDS), relative
    /// to `root`.
    pub real_files: Vec<PathBuf>,
    /// The real DDS in `textures/`, if the spec asked for one.
    pub real_dds: Option<TextureId>,
}

/// A water variant of a texture's `.ter`, and how its body ends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Water {
    /// `{stem}_water.ter` (v1.30): inland water.
    Inland,
    /// `{stem}_water_overlay.ter`.
    InlandOverlay,
    /// `{stem}_sea.ter` with the XP12 colour mask.
    SeaColourMask,
    /// `{stem}_sea.ter` with a mask PNG.
    SeaMaskPng,
    /// `{stem}_sea_overlay.ter` with a mask PNG.
    SeaOverlay,
}

/// The order a mixed package hands variants out in, texture by texture.
const WATER_CYCLE: [Option<Water>; 6] = [
    None,
    Some(Water::Inland),
    Some(Water::InlandOverlay),
    Some(Water::SeaColourMask),
    Some(Water::SeaMaskPng),
    Some(Water::SeaOverlay),
];

impl Water {
    fn suffix(self) -> &'static str {
        match self {
            Water::Inland => "_water",
            Water::InlandOverlay => "_water_overlay",
            Water::SeaColourMask | Water::SeaMaskPng => "_sea",
            Water::SeaOverlay => "_sea_overlay",
        }
    }

    fn is_overlay(self) -> bool {
        matches!(self, Water::InlandOverlay | Water::SeaOverlay)
    }

    fn uses_mask_png(self) -> bool {
        matches!(self, Water::SeaMaskPng | Water::SeaOverlay)
    }
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
    let water: Vec<Option<Water>> = (0..textures.len())
        .map(|i| match (spec.mixed, i) {
            (true, i) => WATER_CYCLE[i % WATER_CYCLE.len()],
            (false, 0) => Some(Water::SeaMaskPng),
            (false, _) => None,
        })
        .collect();
    let layout = Layout {
        textures: &textures,
        water: &water,
        dsf_bytes: spec.dsf_bytes,
        real_dds: spec.real_dds,
    };
    write_package(dir, spec.lat, spec.lon, &layout)
}

/// Writes a package with exactly these textures, its DSF tile being that of
/// the first texture's centre; the first texture gets a `_sea.ter`.
pub fn package_for_texture_names(dir: &Path, names: &[TextureId]) -> io::Result<SamplePackage> {
    let first = names
        .first()
        .ok_or_else(|| invalid("a package needs at least one texture".to_string()))?;
    let (lat, lon) = first.bounds().center();
    let water: Vec<Option<Water>> = (0..names.len())
        .map(|i| (i == 0).then_some(Water::SeaMaskPng))
        .collect();
    let layout = Layout {
        textures: names,
        water: &water,
        dsf_bytes: DEFAULT_DSF_BYTES,
        real_dds: false,
    };
    write_package(dir, lat, lon, &layout)
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
            let code = if spec.mixed {
                MIXED_CODES[i % MIXED_CODES.len()]
            } else {
                spec.map_type.as_str()
            };
            TextureId::new(row, col, u32::from(spec.zoom), code).map_err(|e| invalid(e.to_string()))
        })
        .collect()
}

/// `+47-006`: the signed, zero-padded degrees Ortho4XP names tiles by.
fn tile_name(lat: i64, lon: i64) -> String {
    format!("{lat:+03}{lon:+04}")
}

/// `{row}_{col}_ZL{zl}.png`: the sea mask covering a texture, at the mask
/// zoom (the texture's own when it is coarser).
fn mask_name(texture: &TextureId) -> String {
    let zoom = texture.zoom.min(MASK_ZOOM);
    let span = CHUNKS_PER_SIDE;
    let shift = texture.zoom - zoom;
    let (row, col) = (
        (texture.row >> shift) / span * span,
        (texture.col >> shift) / span * span,
    );
    format!("{row}_{col}_ZL{zoom}.png")
}

/// The `.ter` text X-Plane reads for a texture, or for one of its water
/// variants.
fn ter_text(texture: &TextureId, water: Option<Water>) -> String {
    let (lat, lon) = texture.bounds().center();
    // Width of the texture's 16 chunks at its centre latitude.
    let width_m = (EARTH_CIRCUMFERENCE_M * lat.to_radians().cos() * f64::from(CHUNKS_PER_SIDE)
        / f64::from(1u32 << texture.zoom))
    .round() as u64;
    let mut text = format!(
        "A\n800\nTERRAIN\n\nLOAD_CENTER {lat:.5} {lon:.5} {width_m} {TEXTURE_PIXELS}\n\
         BASE_TEX_NOWRAP ../textures/{}\n",
        texture.file_name()
    );
    let Some(water) = water else {
        text.push_str("NO_ALPHA\n");
        return text;
    };
    if !water.is_overlay() {
        let repeat = 1u32 << 17u8.saturating_sub(texture.zoom);
        text.push_str(&format!(
            "TEXTURE_NORMAL {repeat} ../textures/water_normal_map.dds\n"
        ));
    }
    match water {
        Water::Inland | Water::InlandOverlay => {
            text.push_str("BORDER_TEX ../textures/water_transition.png\n")
        }
        Water::SeaColourMask => text.push_str("WATER_COLOR_MASK\n"),
        Water::SeaMaskPng | Water::SeaOverlay => {
            let mask_pixels = TEXTURE_PIXELS >> (texture.zoom - texture.zoom.min(MASK_ZOOM));
            text.push_str(&format!(
                "LOAD_CENTER_BORDER {lat:.5} {lon:.5} {width_m} {mask_pixels}\n\
                 BORDER_TEX ../textures/{}\n",
                mask_name(texture)
            ));
        }
    }
    if !water.is_overlay() {
        text.push_str("WET\n");
    }
    text.push_str("NO_SHADOW\n");
    text
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

/// `magic` followed by noise, `len` bytes in all.
fn opaque_file(magic: &[u8], seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = magic.to_vec();
    bytes.extend(noise_bytes(seed, len.saturating_sub(magic.len())));
    bytes.truncate(len);
    bytes
}

/// What `write_package` writes: textures and the water variant of each.
struct Layout<'a> {
    textures: &'a [TextureId],
    water: &'a [Option<Water>],
    dsf_bytes: usize,
    real_dds: bool,
}

fn write_package(dir: &Path, lat: f64, lon: f64, layout: &Layout) -> io::Result<SamplePackage> {
    let (lat_deg, lon_deg) = (lat.floor() as i64, lon.floor() as i64);
    let tile = tile_name(lat_deg, lon_deg);
    let folder = tile_name(lat_deg.div_euclid(10) * 10, lon_deg.div_euclid(10) * 10);
    let dsf_dir = dir.join("Earth nav data").join(&folder);
    fs::create_dir_all(&dsf_dir)?;
    let dsf = dsf_dir.join(format!("{tile}.dsf"));
    let seed = ((lat_deg as u64) << 32) ^ lon_deg as u64;
    fs::write(&dsf, opaque_file(b"XPLNEDSF", seed, layout.dsf_bytes))?;

    // Written once per path: neighbouring sea textures share a mask.
    let mut real_files = Vec::new();
    let mut write_real = |relative: PathBuf, bytes: Vec<u8>| -> io::Result<()> {
        if !real_files.contains(&relative) {
            fs::write(dir.join(&relative), bytes)?;
            real_files.push(relative);
        }
        Ok(())
    };
    let dsf_rel = Path::new("Earth nav data").join(&folder);
    write_real(
        dsf_rel.join(format!("{tile}.dsf.bak")),
        opaque_file(b"XPLNEDSF", !seed, layout.dsf_bytes / 2),
    )?;
    write_real(
        PathBuf::from(format!("Ortho4XP_{tile}.cfg")),
        format!(
            "# Tile configuration written by xel-sim for XEarthLayer tests\n\
             default_website=BI\ndefault_zl=16\nmask_zl={MASK_ZOOM}\n\
             imprint_masks_to_dds=False\n"
        )
        .into_bytes(),
    )?;
    write_real(
        PathBuf::from(format!("Data{tile}.mesh")),
        opaque_file(b"MESH_VERSION 1.3\n", seed ^ 0x6D65_7368, 8192),
    )?;

    let terrain = dir.join("terrain");
    fs::create_dir_all(&terrain)?;
    fs::create_dir_all(dir.join("textures"))?;
    let textures_rel = Path::new("textures");
    write_real(
        textures_rel.join("water_transition.png"),
        opaque_file(b"\x89PNG\r\n\x1a\n", 0x7472_616E, 1024),
    )?;
    write_real(
        textures_rel.join("water_normal_map.dds"),
        opaque_file(b"DDS ", 0x6E6F_726D, 4096),
    )?;
    for (texture, water) in layout.textures.iter().zip(layout.water) {
        let name = texture.file_name();
        let stem = name.strip_suffix(".dds").unwrap_or(&name);
        fs::write(terrain.join(format!("{stem}.ter")), ter_text(texture, None))?;
        if let Some(water) = *water {
            let ter = format!("{stem}{}.ter", water.suffix());
            fs::write(terrain.join(ter), ter_text(texture, Some(water)))?;
            if water.uses_mask_png() {
                let seed = u64::from(texture.row) << 32 | u64::from(texture.col);
                write_real(
                    textures_rel.join(mask_name(texture)),
                    opaque_file(b"\x89PNG\r\n\x1a\n", seed, 2048),
                )?;
            }
        }
    }
    let real_dds = match layout.textures.first() {
        Some(first) if layout.real_dds => {
            write_real(
                textures_rel.join(first.file_name()),
                opaque_file(b"DDS ", 0x7265_616C, REAL_DDS_BYTES),
            )?;
            Some(first.clone())
        }
        _ => None,
    };

    Ok(SamplePackage {
        root: dir.to_path_buf(),
        textures: layout.textures.to_vec(),
        dsf,
        real_files,
        real_dds,
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

    /// Names of the entries of `dir`, sorted.
    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
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
        assert_eq!(
            names_in(&root),
            [
                "Data+47-006.mesh",
                "Earth nav data",
                "Ortho4XP_+47-006.cfg",
                "terrain",
                "textures"
            ]
        );
        assert_eq!(
            names_in(&root.join("Earth nav data/+40-010")),
            ["+47-006.dsf", "+47-006.dsf.bak"]
        );

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

        let terrain = names_in(&root.join("terrain"));
        assert!(terrain.iter().all(|n| n.ends_with(".ter")), "{terrain:?}");
        assert_eq!(terrain.len(), 7, "six textures and one _sea variant");
        for name in &terrain {
            let text = fs::read_to_string(root.join("terrain").join(name)).unwrap();
            let base = text
                .lines()
                .find_map(|l| l.strip_prefix("BASE_TEX_NOWRAP ../textures/"));
            let id = TextureId::parse(base.unwrap()).unwrap();
            assert!(package.textures.contains(&id), "{name}");
            assert_eq!((id.row % 16, id.col % 16, id.zoom), (0, 0, 16));
            assert_eq!(id.map_type, "BI");
        }

        // textures/ holds the water files and the first texture's sea mask,
        // and no DDS of a texture.
        let first = &package.textures[0];
        let mask = mask_name(first);
        let mut expected = vec![
            mask.clone(),
            "water_normal_map.dds".to_string(),
            "water_transition.png".to_string(),
        ];
        expected.sort();
        assert_eq!(names_in(&root.join("textures")), expected);
        assert_eq!(package.real_dds, None);
        let png = fs::read(root.join("textures").join(&mask)).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 1000);
        for file in &package.real_files {
            assert!(root.join(file).is_file(), "{}", file.display());
        }
        assert_eq!(package.real_files.len(), 6);

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

        // The sea variant: same texture, its ZL14 mask, wet, never NO_ALPHA.
        let sea = fs::read_to_string(tmp.path().join("terrain/25264_10368_BI16_sea.ter")).unwrap();
        let sea: Vec<&str> = sea.lines().collect();
        assert_eq!(sea[..6], lines[..6]);
        assert_eq!(
            sea[6..],
            [
                "TEXTURE_NORMAL 2 ../textures/water_normal_map.dds".to_string(),
                format!(
                    "LOAD_CENTER_BORDER {} {} {} 1024",
                    load[1], load[2], load[3]
                ),
                "BORDER_TEX ../textures/6304_2592_ZL14.png".to_string(),
                "WET".to_string(),
                "NO_SHADOW".to_string(),
            ]
        );
        assert!(tmp.path().join("textures/6304_2592_ZL14.png").is_file());
    }

    #[test]
    fn mixed_package_has_every_code_and_water_variant() {
        let tmp = tempfile::tempdir().unwrap();
        let spec = PackageSpec {
            textures: 14,
            mixed: true,
            real_dds: true,
            dsf_bytes: 4096,
            ..PackageSpec::default()
        };
        let package = create_package(tmp.path(), &spec).unwrap();
        let mut codes: Vec<&str> = package
            .textures
            .iter()
            .map(|t| t.map_type.as_str())
            .collect();
        codes.sort();
        codes.dedup();
        let mut all = MIXED_CODES.to_vec();
        all.sort();
        assert_eq!(codes, all);

        let terrain = names_in(&tmp.path().join("terrain"));
        for suffix in ["_water", "_water_overlay", "_sea", "_sea_overlay"] {
            let ters: Vec<&String> = terrain
                .iter()
                .filter(|n| {
                    let stem = n.strip_suffix(".ter").unwrap();
                    stem.strip_suffix(suffix)
                        .is_some_and(|base| TextureId::parse(&format!("{base}.dds")).is_ok())
                })
                .collect();
            assert!(!ters.is_empty(), "no {suffix}.ter in {terrain:?}");
            for ter in ters {
                let text = fs::read_to_string(tmp.path().join("terrain").join(ter)).unwrap();
                assert!(!text.contains("NO_ALPHA"), "{ter}:\n{text}");
                assert!(text.ends_with("NO_SHADOW\n"), "{ter}:\n{text}");
                let border = text.contains("BORDER_TEX ../textures/");
                let colour = text.contains("WATER_COLOR_MASK\n");
                assert!(border != colour, "{ter}:\n{text}");
                assert_eq!(
                    text.contains("WET\n"),
                    !suffix.ends_with("_overlay"),
                    "{ter}"
                );
            }
        }
        assert!(terrain
            .iter()
            .any(|n| fs::read_to_string(tmp.path().join("terrain").join(n))
                .unwrap()
                .contains("WATER_COLOR_MASK")));

        let real = package.real_dds.clone().unwrap();
        assert_eq!(real, package.textures[0]);
        let dds = fs::read(tmp.path().join("textures").join(real.file_name())).unwrap();
        assert_eq!((&dds[..4], dds.len()), (&b"DDS "[..], REAL_DDS_BYTES));
        assert!(package
            .real_files
            .contains(&Path::new("textures").join(real.file_name())));
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
