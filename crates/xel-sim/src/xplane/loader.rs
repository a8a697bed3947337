//! X-Plane's scenery loading, through a mount: which DSF tiles it loads
//! when, and how it reads them.
//!
//! The rule, as the peers measured it (DOMAIN.md): at start X-Plane loads
//! about 3° x 4° around the aircraft; in flight a load fires when the
//! aircraft is 0.6° into a tile in its direction of travel (from position
//! alone) and brings in the band ahead, 3 tiles deep and 5 wide. A load
//! opens each tile's DSF, then reads each of its textures: stat, a 64 KiB
//! header read, then the levels its distance needs, from many threads.
//! This is the simulated world's rule, written apart from the prefetcher's
//! model of it on purpose.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use xearthlayer::coord::TextureId;
use xearthlayer::dds::layout::{self, DdsFormat};
use xearthlayer::package::dsf_tile;
use xearthlayer::telemetry::motion::distance_m;

use crate::burst::read_range;

/// A 1° tile by its south-west corner.
pub type Tile = (i32, i32);

/// How the loader reads.
#[derive(Debug, Clone)]
pub struct LoaderConfig {
    /// Reader threads (X-Plane's loader threads).
    pub readers: usize,
    pub format: DdsFormat,
    /// Bytes per read call.
    pub read_size: usize,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            readers: 32,
            format: DdsFormat::Bc1,
            read_size: 256 << 10,
        }
    }
}

#[derive(Debug, Default, Clone)]
struct TileFiles {
    dsfs: Vec<PathBuf>,
    /// Texture paths in the mount with their centres.
    textures: Vec<(PathBuf, (f64, f64))>,
}

/// One texture as X-Plane read it.
#[derive(Debug, Clone)]
pub struct TextureLoad {
    pub path: PathBuf,
    /// The highest-resolution level read.
    pub level: u8,
    /// From its stat to its last byte.
    pub latency: Duration,
    pub bytes: u64,
}

/// One load burst.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub tiles: Vec<Tile>,
    pub textures: Vec<TextureLoad>,
    pub wall: Duration,
}

impl LoadReport {
    /// Latency percentile (0..=100) over textures.
    pub fn percentile(&self, p: f64) -> Duration {
        let mut l: Vec<Duration> = self.textures.iter().map(|r| r.latency).collect();
        l.sort();
        match l.len() {
            0 => Duration::ZERO,
            n => l[(((p / 100.0) * (n - 1) as f64).round() as usize).min(n - 1)],
        }
    }
}

/// The level X-Plane reads a texture from at `distance_m` from the aircraft.
pub fn level_for_distance(distance_m: f64) -> u8 {
    [6_000.0, 12_000.0, 25_000.0, 50_000.0]
        .iter()
        .position(|&limit| distance_m <= limit)
        .unwrap_or(4) as u8
}

/// What X-Plane has loaded and will load.
#[derive(Debug)]
pub struct SceneryLoader {
    tiles: HashMap<Tile, TileFiles>,
    loaded: HashSet<Tile>,
    last: Option<(f64, f64)>,
    config: LoaderConfig,
}

impl SceneryLoader {
    /// Finds the DSFs and textures of `mounts` (their `Earth nav data` and
    /// `textures/` listings).
    pub fn scan(mounts: &[PathBuf], config: LoaderConfig) -> io::Result<SceneryLoader> {
        let mut tiles: HashMap<Tile, TileFiles> = HashMap::new();
        for mount in mounts {
            let nav = mount.join("Earth nav data");
            if nav.is_dir() {
                for dir in std::fs::read_dir(&nav)? {
                    for dsf in std::fs::read_dir(dir?.path())? {
                        let path = dsf?.path();
                        let tile = path.file_name().and_then(|n| n.to_str()).and_then(dsf_tile);
                        if let Some(tile) = tile {
                            tiles.entry(tile).or_default().dsfs.push(path);
                        }
                    }
                }
            }
            for entry in std::fs::read_dir(mount.join("textures"))? {
                let path = entry?.path();
                let Some(id) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| TextureId::parse(n).ok())
                else {
                    continue;
                };
                let center = id.bounds().center();
                let tile = (center.0.floor() as i32, center.1.floor() as i32);
                tiles.entry(tile).or_default().textures.push((path, center));
            }
        }
        Ok(SceneryLoader {
            tiles,
            loaded: HashSet::new(),
            last: None,
            config,
        })
    }

    /// Tiles holding anything of the mounts.
    pub fn tiles(&self) -> Vec<Tile> {
        let mut tiles: Vec<Tile> = self.tiles.keys().copied().collect();
        tiles.sort_unstable();
        tiles
    }

    /// The textures of the mounts (for warming a cache).
    pub fn texture_count(&self) -> usize {
        self.tiles.values().map(|t| t.textures.len()).sum()
    }

    /// The tiles of the mounts that X-Plane loads now, with the aircraft at
    /// `position` (each tile once).
    pub fn due(&mut self, position: (f64, f64)) -> Vec<Tile> {
        let (lat, lon) = position;
        let (la, lo) = (lat.floor() as i32, lon.floor() as i32);
        let mut wanted: Vec<Tile> = Vec::new();
        match self.last {
            None => {
                let west = if lon - f64::from(lo) < 0.5 {
                    lo - 2
                } else {
                    lo - 1
                };
                for r in la - 1..=la + 1 {
                    wanted.extend((west..west + 4).map(|c| (r, c)));
                }
            }
            Some((lat0, lon0)) => {
                let (fy, fx) = (lat - f64::from(la), lon - f64::from(lo));
                let sign = |d: f64| {
                    if d > 1e-7 {
                        1
                    } else if d < -1e-7 {
                        -1
                    } else {
                        0
                    }
                };
                let (north, east) = (sign(lat - lat0), sign(lon - lon0));
                let fires = |s: i32, f: f64| (s == 1 && f >= 0.6) || (s == -1 && f <= 0.4);
                for d in 1..=3 {
                    if fires(north, fy) {
                        wanted.extend((lo - 2..=lo + 2).map(|c| (la + north * d, c)));
                    }
                    if fires(east, fx) {
                        wanted.extend((la - 2..=la + 2).map(|r| (r, lo + east * d)));
                    }
                }
            }
        }
        self.last = Some(position);
        wanted
            .into_iter()
            .map(|(r, c)| (r, (c + 180).rem_euclid(360) - 180))
            .filter(|t| self.loaded.insert(*t) && self.tiles.contains_key(t))
            .collect()
    }

    /// Loads `tiles` with the aircraft at `position`: opens their DSFs, then
    /// reads their textures. Fails on the first short read or I/O error.
    pub fn load(&self, tiles: &[Tile], position: (f64, f64)) -> io::Result<LoadReport> {
        let started = Instant::now();
        let mut textures: Vec<(PathBuf, u8)> = Vec::new();
        for tile in tiles {
            let Some(files) = self.tiles.get(tile) else {
                continue;
            };
            for dsf in &files.dsfs {
                let mut head = vec![0u8; 64 << 10];
                let n = File::open(dsf)?.read(&mut head)?;
                if n == 0 {
                    return Err(io::Error::other(format!("{}: empty DSF", dsf.display())));
                }
            }
            textures.extend(files.textures.iter().map(|(path, center)| {
                (
                    path.clone(),
                    level_for_distance(distance_m(position, *center)),
                )
            }));
        }
        let next = AtomicUsize::new(0);
        let done = Mutex::new(Vec::with_capacity(textures.len()));
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..self.config.readers.max(1))
                .map(|_| {
                    scope.spawn(|| -> io::Result<()> {
                        while let Some((path, level)) =
                            textures.get(next.fetch_add(1, Ordering::Relaxed))
                        {
                            let t = Instant::now();
                            let bytes = self.read_texture(path, *level)?;
                            done.lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(TextureLoad {
                                    path: path.clone(),
                                    level: *level,
                                    latency: t.elapsed(),
                                    bytes,
                                });
                        }
                        Ok(())
                    })
                })
                .collect();
            workers.into_iter().try_for_each(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(io::Error::other("reader thread panicked")))
            })
        })?;
        Ok(LoadReport {
            tiles: tiles.to_vec(),
            textures: done.into_inner().unwrap_or_else(|e| e.into_inner()),
            wall: started.elapsed(),
        })
    }

    fn read_texture(&self, path: &Path, level: u8) -> io::Result<u64> {
        let format = self.config.format;
        let size = layout::file_size(format);
        let len = std::fs::metadata(path)?.len();
        if len != size {
            return Err(io::Error::other(format!(
                "{}: size {len} before reading, expected {size}",
                path.display()
            )));
        }
        let file = File::open(path)?;
        let header = 64 << 10;
        let piece = self.config.read_size;
        let mut bytes = read_range(&file, path, 0, header, piece)?;
        let from = layout::level_offset(format, level).max(header);
        bytes += read_range(&file, path, from, size - from, piece)?;
        Ok(bytes)
    }
}
