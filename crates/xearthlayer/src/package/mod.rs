//! What an Ortho4XP package holds and where: the textures its `.ter` files
//! name, each with its position (the `.ter`'s `LOAD_CENTER`, else the
//! centre its name gives), and how its DSF tiles are named.
//!
//! Built once at mount time. Every `*.ter` file of the package (anywhere,
//! typically `terrain/`) is read, its `BASE_TEX` / `BASE_TEX_NOWRAP` lines
//! resolved relative to the `.ter` file the way X-Plane does, and the names
//! that land directly in `<package>/textures/` and parse as a
//! [`TextureId`] are the package's textures. The filesystem lists them as
//! virtual files in `textures/` (a lookup of any texture name succeeds
//! whether indexed or not); the prefetcher's catalog groups them by DSF
//! tile. Names that are not textures are skipped, each with a debug line,
//! and counted ([`PackageIndex::skipped`]).

use std::ffi::OsStr;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::coord::TextureId;

mod stored;

/// One texture of the package.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedTexture {
    pub id: TextureId,
    /// The file name, exactly as the `.ter` file spells it.
    pub name: Box<str>,
    /// (lat, lon) in degrees: the `.ter`'s `LOAD_CENTER`, else the centre
    /// of the texture's bounds.
    pub center: (f64, f64),
}

/// Name of the directory the virtual textures live in.
pub const TEXTURES_DIR: &str = "textures";
/// Name of the directory the DSF tiles live in (`+40-010/+47-006.dsf`).
pub const DSF_DIR: &str = "Earth nav data";

/// What a package holds.
#[derive(Debug, Clone, Default)]
pub struct PackageIndex {
    /// Sorted by name, without duplicates, named exactly as spelled in the
    /// `.ter` files.
    textures: Arc<[IndexedTexture]>,
    ter_files: usize,
    /// `BASE_TEX` lines naming something outside `textures/` or not a texture.
    skipped: usize,
    /// `.ter` files that could not be read.
    unreadable: usize,
    elapsed: Duration,
}

impl PackageIndex {
    /// Walks `root` for `.ter` files and collects the textures they name.
    pub fn build(root: &Path) -> io::Result<PackageIndex> {
        let started = Instant::now();
        let (scan, ter_files) = scan_package(root)?;
        Ok(PackageIndex::from_scan(scan, ter_files, started))
    }

    /// One index of the textures of every package of `roots`, each name
    /// once (from the first package naming it). A package that cannot be
    /// read adds none, with a warning.
    pub fn build_union(roots: &[PathBuf]) -> PackageIndex {
        let started = Instant::now();
        let mut all = Scan::default();
        let mut ter_files = 0;
        for root in roots {
            match scan_package(root) {
                Ok((scan, files)) => {
                    all.found.extend(scan.found);
                    all.skipped += scan.skipped;
                    all.unreadable += scan.unreadable;
                    ter_files += files;
                }
                Err(err) => {
                    tracing::warn!(package = %root.display(), %err, "cannot index the package's textures")
                }
            }
        }
        PackageIndex::from_scan(all, ter_files, started)
    }

    fn from_scan(mut all: Scan, ter_files: usize, started: Instant) -> PackageIndex {
        // Stable: of equal names, the first package's stays.
        all.found.sort_by(|a, b| a.name.cmp(&b.name));
        all.found.dedup_by(|a, b| a.name == b.name);
        PackageIndex {
            textures: all.found.into(),
            ter_files,
            skipped: all.skipped,
            unreadable: all.unreadable,
            elapsed: started.elapsed(),
        }
    }

    /// Texture file names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.textures.iter().map(|t| &*t.name)
    }

    /// The `i`th name in sorted order.
    pub fn name_at(&self, i: usize) -> Option<&str> {
        self.textures.get(i).map(|t| &*t.name)
    }

    pub fn len(&self) -> usize {
        self.textures.len()
    }

    pub fn is_empty(&self) -> bool {
        self.textures.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.textures
            .binary_search_by(|t| (*t.name).cmp(name))
            .is_ok()
    }

    /// The textures, sorted by name.
    pub fn textures(&self) -> impl Iterator<Item = &IndexedTexture> + '_ {
        self.textures.iter()
    }

    /// Number of `.ter` files read.
    pub fn ter_files(&self) -> usize {
        self.ter_files
    }

    /// `BASE_TEX` lines that named nothing servable (outside `textures/`, or
    /// not a texture name).
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// `.ter` files that could not be read.
    pub fn unreadable(&self) -> usize {
        self.unreadable
    }

    /// How long building the index took.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
}

/// Reads every `.ter` file of the package at `root` (on a few threads:
/// reading is I/O-bound); returns what they name and how many there were.
fn scan_package(root: &Path) -> io::Result<(Scan, usize)> {
    let ter_files = find_ter_files(root)?;
    let results = Mutex::new(Vec::new());
    let next = AtomicUsize::new(0);
    // Reading is I/O-bound: a few threads more than cores helps on cold caches.
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get() * 2)
        .clamp(2, 8)
        .min(ter_files.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut local = Scan::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(rel) = ter_files.get(i) else { break };
                    match std::fs::read(root.join(rel)) {
                        Ok(text) => local.scan_ter(rel, &text),
                        Err(err) => {
                            tracing::debug!(path = %rel.display(), %err, "unreadable .ter file");
                            local.unreadable += 1;
                        }
                    }
                }
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(local);
            });
        }
    });
    let mut all = Scan::default();
    for scan in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
        all.found.extend(scan.found);
        all.skipped += scan.skipped;
        all.unreadable += scan.unreadable;
    }
    Ok((all, ter_files.len()))
}

#[derive(Default)]
struct Scan {
    found: Vec<IndexedTexture>,
    skipped: usize,
    unreadable: usize,
}

impl Scan {
    /// Collects the textures one `.ter` file (at `rel`, relative to the
    /// package root) names.
    fn scan_ter(&mut self, rel: &Path, text: &[u8]) {
        let dir = rel.parent().unwrap_or(Path::new(""));
        let mut center = None;
        let mut named = Vec::new();
        for line in text.split(|&b| b == b'\n') {
            let Ok(line) = std::str::from_utf8(line) else {
                continue;
            };
            let line = line.trim();
            let Some((keyword, rest)) = line.split_once(char::is_whitespace) else {
                continue;
            };
            if keyword == "LOAD_CENTER" {
                let mut numbers = rest.split_whitespace().map(str::parse::<f64>);
                if let (Some(Ok(lat)), Some(Ok(lon))) = (numbers.next(), numbers.next()) {
                    if lat.is_finite() && lon.is_finite() {
                        center = Some((lat, lon));
                    }
                }
                continue;
            }
            if keyword != "BASE_TEX" && keyword != "BASE_TEX_NOWRAP" {
                continue;
            }
            match texture_name(dir, rest.trim()) {
                Some((name, id)) => named.push((name, id)),
                None => {
                    tracing::debug!(ter = %rel.display(), texture = rest.trim(), "BASE_TEX outside textures/ or not a texture name");
                    self.skipped += 1;
                }
            }
        }
        for (name, id) in named {
            let center = center.unwrap_or_else(|| id.bounds().center());
            self.found.push(IndexedTexture {
                id,
                name: name.into(),
                center,
            });
        }
    }
}

/// The tile of a DSF file name such as `+47-006.dsf`: (lat, lon) of its
/// south-west corner.
pub fn dsf_tile(file_name: &str) -> Option<(i32, i32)> {
    let stem = file_name.strip_suffix(".dsf")?;
    if stem.len() != 7 || !stem.is_ascii() {
        return None;
    }
    let (lat, lon) = stem.split_at(3);
    let signed = |s: &str| -> Option<i32> {
        let (sign, digits) = s.split_at(1);
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let value: i32 = digits.parse().ok()?;
        match sign {
            "+" => Some(value),
            "-" => Some(-value),
            _ => None,
        }
    };
    let (lat, lon) = (signed(lat)?, signed(lon)?);
    ((-90..90).contains(&lat) && (-180..180).contains(&lon)).then_some((lat, lon))
}

/// The texture file name `reference` (as written in a `.ter` file in `dir`,
/// both relative to the package root) resolves to, if it lands directly in
/// `textures/` and is a texture name.
fn texture_name(dir: &Path, reference: &str) -> Option<(String, TextureId)> {
    let reference = reference.replace('\\', "/");
    let resolved = normalize(&dir.join(&reference))?;
    let mut parts = resolved.components();
    let (Some(Component::Normal(first)), Some(Component::Normal(name)), None) =
        (parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if first != OsStr::new(TEXTURES_DIR) {
        return None;
    }
    let name = name.to_str()?;
    let id = TextureId::parse(name).ok()?;
    Some((name.to_string(), id))
}

/// Resolves `.` and `..` lexically; `None` if the path is absolute or climbs
/// above the package root.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Every `*.ter` file under `root`, relative to it. Symlinked directories are
/// not followed (they could loop); symlinked `.ter` files are read.
fn find_ter_files(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut dirs = vec![PathBuf::new()];
    while let Some(rel) = dirs.pop() {
        let entries = match std::fs::read_dir(root.join(&rel)) {
            Ok(entries) => entries,
            // The root itself must be readable; a subdirectory may not be.
            Err(err) if rel.as_os_str().is_empty() => return Err(err),
            Err(err) => {
                tracing::warn!(dir = %rel.display(), %err, "skipping unreadable directory");
                continue;
            }
        };
        for entry in entries {
            let Ok(entry) = entry else { continue };
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            let name = entry.file_name();
            if file_type.is_dir() {
                dirs.push(rel.join(name));
            } else if Path::new(&name).extension() == Some(OsStr::new("ter")) {
                found.push(rel.join(name));
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_to_the_ter_file() {
        let terrain = Path::new("terrain");
        assert_eq!(
            texture_name(terrain, "../textures/25264_10368_BI16.dds").map(|t| t.0),
            Some("25264_10368_BI16.dds".to_string())
        );
        assert_eq!(
            texture_name(terrain, "..\\textures\\25264_10368_BI16.dds").map(|t| t.0),
            Some("25264_10368_BI16.dds".to_string())
        );
        assert_eq!(
            texture_name(Path::new(""), "./textures/25264_10368_BI16.dds").map(|t| t.0),
            Some("25264_10368_BI16.dds".to_string())
        );
        // Lands elsewhere, climbs out, absolute, nested, not a texture.
        assert_eq!(texture_name(terrain, "textures/25264_10368_BI16.dds"), None);
        assert_eq!(
            texture_name(terrain, "../../textures/25264_10368_BI16.dds"),
            None
        );
        assert_eq!(
            texture_name(terrain, "/textures/25264_10368_BI16.dds"),
            None
        );
        assert_eq!(
            texture_name(terrain, "../textures/a/25264_10368_BI16.dds"),
            None
        );
        assert_eq!(texture_name(terrain, "../textures/water_mask.png"), None);
    }

    #[test]
    fn scans_base_tex_lines_only() {
        let mut scan = Scan::default();
        let ter = b"A\r\n800\r\nTERRAIN\r\n\r\nLOAD_CENTER 47.5 -5.6 2443 4096\r\n\
            BASE_TEX_NOWRAP ../textures/25264_10368_BI16.dds\r\n\
            BASE_TEX ../textures/25264_10384_BI16.dds\r\n\
            NORMAL_TEX ../textures/25264_10400_BI16.dds\r\n\
            BASE_TEX ../textures/not_a_texture.png\r\nNO_ALPHA\r\n";
        scan.scan_ter(Path::new("terrain/x.ter"), ter);
        let names: Vec<&str> = scan.found.iter().map(|t| &*t.name).collect();
        assert_eq!(names, vec!["25264_10368_BI16.dds", "25264_10384_BI16.dds"]);
        assert_eq!(scan.found[0].center, (47.5, -5.6));
        assert_eq!(scan.skipped, 1);
    }

    #[test]
    fn reads_dsf_names() {
        assert_eq!(dsf_tile("+47-006.dsf"), Some((47, -6)));
        assert_eq!(dsf_tile("-34+151.dsf"), Some((-34, 151)));
        for bad in [
            "+47-006.ter",
            "+47-006.dsf.bak",
            "47-006.dsf",
            "+47-06.dsf",
            "+95+000.dsf",
            "+4a-006.dsf",
        ] {
            assert_eq!(dsf_tile(bad), None, "{bad}");
        }
    }

    #[test]
    fn textures_with_their_positions() {
        let dir = tempfile::tempdir().unwrap();
        let terrain = dir.path().join("terrain");
        std::fs::create_dir(&terrain).unwrap();
        // With LOAD_CENTER, and without (the name's centre decides).
        std::fs::write(
            terrain.join("a.ter"),
            "A\n800\nTERRAIN\n\nLOAD_CENTER 47.50512 -5.62500 2443 4096\n\
             BASE_TEX_NOWRAP ../textures/22896_31680_DOP4016.dds\n",
        )
        .unwrap();
        let id = TextureId::parse("45808_63392_Arc@17.dds").unwrap();
        std::fs::write(
            terrain.join("b.ter"),
            "BASE_TEX_NOWRAP ../textures/45808_63392_Arc@17.dds\n",
        )
        .unwrap();
        let index = PackageIndex::build(dir.path()).unwrap();
        let centers: Vec<(&str, (f64, f64))> =
            index.textures().map(|t| (&*t.name, t.center)).collect();
        assert_eq!(
            centers,
            vec![
                ("22896_31680_DOP4016.dds", (47.50512, -5.625)),
                ("45808_63392_Arc@17.dds", id.bounds().center()),
            ]
        );
    }

    #[test]
    fn indexes_ten_thousand_ter_files_quickly() {
        let dir = tempfile::tempdir().unwrap();
        let terrain = dir.path().join("terrain");
        std::fs::create_dir(&terrain).unwrap();
        std::fs::create_dir_all(dir.path().join("Earth nav data/+40-010")).unwrap();
        let n = 10_000u32;
        for i in 0..n {
            let (row, col) = (25_000 + (i / 100) * 16, 10_000 + (i % 100) * 16);
            std::fs::write(
                terrain.join(format!("{row}_{col}_BI16.ter")),
                format!(
                    "A\n800\nTERRAIN\n\nLOAD_CENTER 47.5 -5.6 2443 4096\n\
                     BASE_TEX_NOWRAP ../textures/{row}_{col}_BI16.dds\nNO_ALPHA\n"
                ),
            )
            .unwrap();
        }
        // Two .ter files naming the same texture count once.
        std::fs::write(
            terrain.join("dup_water.ter"),
            "BASE_TEX ../textures/25000_10000_BI16.dds\n",
        )
        .unwrap();
        let index = PackageIndex::build(dir.path()).unwrap();
        assert_eq!(index.len(), n as usize);
        assert_eq!(index.ter_files(), n as usize + 1);
        assert!(index.contains("25000_10000_BI16.dds"));
        assert!(!index.contains("25000_10000_BI17.dds"));
        eprintln!(
            "indexed {} .ter files in {:?}",
            index.ter_files(),
            index.elapsed()
        );
        // About a second is the target in release; debug builds get slack.
        assert!(index.elapsed() < Duration::from_secs(10));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Fuzz: any `.ter` bytes, random or near-valid, are scanned without
        /// a panic, and every texture found is one of `textures/`.
        #[test]
        fn fuzz_ter_files(
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            lines in proptest::collection::vec(
                proptest::prop_oneof![
                    "BASE_TEX(_NOWRAP)? \\PC{0,60}",
                    "BASE_TEX_NOWRAP (\\.\\./)*(textures/)?[0-9]{0,6}_[0-9]{0,6}_[A-Z]{0,3}[0-9]{0,3}\\.dds",
                    "LOAD_CENTER [-+0-9.eE]{0,12} [-+0-9.eEnaif]{0,12} \\PC{0,10}",
                ],
                0..8,
            ),
        ) {
            let mut text = lines.join("\n").into_bytes();
            text.extend_from_slice(&noise);
            let mut scan = Scan::default();
            scan.scan_ter(Path::new("terrain/x.ter"), &text);
            for found in &scan.found {
                proptest::prop_assert!(found.center.0.is_finite() && found.center.1.is_finite());
            }
        }
    }
}
