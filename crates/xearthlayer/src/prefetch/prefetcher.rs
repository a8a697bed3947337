//! The prefetcher: background work that builds what X-Plane will read next
//! and never hurts what it reads now.
//!
//! Every cycle (and at once when X-Plane opens a DSF) it plans: first the
//! textures of tiles X-Plane just opened (it reads them next, and once it
//! does, the tile is its own: it leaves the plan), then those
//! of the tiles [`predict`](super::predict) expects along the track that
//! X-Plane has not loaded yet, each
//! with only the ranges X-Plane will read ([`ranges`](super::ranges)),
//! skipping what is cached. Work is bounded: at most `max_in_flight`
//! textures at once (the slot is taken before the task is spawned), which
//! bounds the memory its work in progress holds; at most `max_queue`
//! planned; nothing new while a live burst is being served, and a burst
//! starts with X-Plane's DSF opens: the textures it reads right after them
//! are live work's, so a tile it opened is worked on only once X-Plane has
//! left it unread for a moment (opened, then busy elsewhere). What it built
//! is an ordinary entry of the memory cache, evicted least recently used
//! first and kept on disk, so a full memory cache never stops it (X-Plane
//! keeps what it has read, so the entries evicted first are ones it is done
//! with). Work on tiles that fell out of the plan (flown past, or nobody
//! flies) is cancelled.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use super::catalog::{tile_of, Catalog, Tile};
use super::predict;
use super::ranges;
use super::stats::{PrefetchStats, PrefetchStatus};
use crate::coord::TextureId;
use crate::fs::FsObserver;
use crate::package::dsf_tile;
use crate::telemetry::motion::distance_m;
use crate::telemetry::{InferredPosition, Telemetry};
use crate::texture::TextureService;

/// A DSF open or a read that missed the cache this recently means a live
/// burst is on.
const LIVE_QUIET: Duration = Duration::from_millis(500);
/// How often the pause is checked while paused.
const PAUSE_POLL: Duration = Duration::from_millis(50);
/// X-Plane keeps the tiles it loaded while the aircraft is within this
/// many tiles of them (its load area is about 3 around the aircraft, plus
/// the band ahead); farther ones may be unloaded and loaded again.
const LOADED_KEPT_TILES: i32 = 4;
/// However fast the aircraft moves, plan no farther ahead than this: a
/// position jump that slipped through as motion must not plan half the
/// planet.
const MAX_HORIZON_M: f64 = 500_000.0;

/// How the prefetcher runs.
#[derive(Debug, Clone)]
pub struct PrefetchConfig {
    /// Textures prefetched at once.
    pub max_in_flight: usize,
    /// Textures planned at once.
    pub max_queue: usize,
    /// Time between plans.
    pub cycle: Duration,
    /// How far ahead along the track to plan: at least this far...
    pub horizon_m: f64,
    /// ...and at least this long at the current speed.
    pub horizon_time: Duration,
    /// A DSF X-Plane opened stays in the plan this long.
    pub opened_for: Duration,
}

impl Default for PrefetchConfig {
    fn default() -> Self {
        PrefetchConfig {
            max_in_flight: 32,
            max_queue: 4096,
            cycle: Duration::from_secs(2),
            horizon_m: 150_000.0,
            horizon_time: Duration::from_secs(90),
            opened_for: Duration::from_secs(60),
        }
    }
}

/// One texture to prefetch.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: TextureId,
    pub tile: Tile,
    pub ranges: Vec<Range<u64>>,
}

struct Shared {
    service: TextureService,
    catalog: Arc<dyn Catalog>,
    telemetry: Telemetry,
    inferred: Option<InferredPosition>,
    config: PrefetchConfig,
    /// Tiles X-Plane opened and has not read from yet, and when.
    opened: Mutex<HashMap<Tile, Instant>>,
    /// Tiles X-Plane opened or read, while the aircraft is near them: never
    /// predicted again. Bounded by [`LOADED_KEPT_TILES`] around the fix,
    /// and by the mounted tiles.
    loaded: Mutex<HashSet<Tile>>,
    /// When X-Plane last opened a DSF or missed the cache on a read.
    last_live_load: Mutex<Option<Instant>>,
    wake: Notify,
    stats: PrefetchStats,
}

/// The prefetcher's handle: its mount observer, its status, its task.
#[derive(Clone)]
pub struct Prefetcher {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Prefetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefetcher").finish_non_exhaustive()
    }
}

impl Prefetcher {
    /// A prefetcher over `service` for the textures of `catalog`, steered by
    /// `telemetry`; with `inferred`, what the mounts see moves the inferred
    /// position too.
    pub fn new(
        service: TextureService,
        catalog: Arc<dyn Catalog>,
        telemetry: Telemetry,
        inferred: Option<InferredPosition>,
        config: PrefetchConfig,
    ) -> Self {
        Prefetcher {
            shared: Arc::new(Shared {
                service,
                catalog,
                telemetry,
                inferred,
                config,
                opened: Mutex::default(),
                loaded: Mutex::default(),
                last_live_load: Mutex::default(),
                wake: Notify::new(),
                stats: PrefetchStats::default(),
            }),
        }
    }

    /// The hook to give each mount ([`crate::fs::OverlayFs::set_observer`]).
    pub fn observer(&self) -> Arc<dyn FsObserver> {
        Arc::new(self.clone())
    }

    pub fn status(&self) -> PrefetchStatus {
        let shared = &self.shared;
        shared
            .stats
            .status(shared.telemetry.fix(), &shared.service.metrics().snapshot())
    }

    /// Runs until the task is aborted; aborting cancels the work in flight.
    pub fn spawn(&self) -> tokio::task::JoinHandle<()> {
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move { shared.run().await })
    }

    /// What the prefetcher would do now, best first (for tests and the
    /// `prefetch` command's estimate).
    pub fn plan(&self) -> Vec<Job> {
        self.shared.plan()
    }
}

impl FsObserver for Prefetcher {
    fn dsf_opened(&self, rel: &Path) {
        let Some(tile) = rel.file_name().and_then(|n| n.to_str()).and_then(dsf_tile) else {
            return;
        };
        let shared = &self.shared;
        shared.stats.dsf_opens.incr();
        let fresh = shared
            .opened
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tile, Instant::now())
            .is_none();
        shared.loaded().insert(tile);
        if let Some(inferred) = &shared.inferred {
            inferred.dsf_opened(tile.0, tile.1);
        }
        // X-Plane reads this tile's textures next, at once: starting them
        // here would put background work in front of its burst.
        shared.live_load_now();
        if fresh {
            shared.wake.notify_one();
        }
    }

    fn texture_read(&self, id: &TextureId, range: Range<u64>) {
        let shared = &self.shared;
        let center = id.bounds().center();
        if range.start == 0 {
            if let Some(inferred) = &shared.inferred {
                inferred.texture_opened(center);
            }
            // X-Plane reads this tile now, what it needs at the levels it
            // chose: prefetching more of it (at the planner's more generous
            // levels) would only compete with the band ahead.
            let tile = tile_of(center.0, center.1);
            shared
                .opened
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&tile);
            shared.loaded().insert(tile);
        }
        if !shared.service.is_cached(id, range) {
            shared.live_load_now();
        }
    }
}

/// How many tiles apart two tiles are (the larger of rows and columns,
/// across the antimeridian the short way).
fn tile_gap(a: Tile, b: Tile) -> i32 {
    let columns = (a.1 - b.1).rem_euclid(360);
    (a.0 - b.0).abs().max(columns.min(360 - columns))
}

impl Shared {
    fn loaded(&self) -> std::sync::MutexGuard<'_, HashSet<Tile>> {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn live_load_now(&self) {
        *self
            .last_live_load
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// Live reads are being served: X-Plane opened a DSF or missed the
    /// cache just now, or the engine is busy with nothing of ours in flight.
    fn live_busy(&self, ours_in_flight: usize) -> bool {
        let loading = self
            .last_live_load
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|at| at.elapsed() < LIVE_QUIET);
        loading || (ours_in_flight == 0 && self.service.live_busy())
    }

    fn plan(&self) -> Vec<Job> {
        let format = self.service.format();
        let fix = self.telemetry.fix();
        let mut jobs = Vec::new();
        let mut planned: HashSet<Tile> = HashSet::new();
        let mut add_tile = |tile: Tile, from: (f64, f64), jobs: &mut Vec<Job>| {
            if !planned.insert(tile) {
                return;
            }
            let mut textures: Vec<(f64, &TextureId)> = self
                .catalog
                .textures_in_tile(tile)
                .iter()
                .map(|t| (distance_m(from, t.center), &t.id))
                .collect();
            textures.sort_by(|a, b| a.0.total_cmp(&b.0));
            for (distance, id) in textures {
                let ranges: Vec<_> = ranges::ranges(format, distance)
                    .into_iter()
                    .filter(|r| !self.service.is_cached(id, r.clone()))
                    .collect();
                if !ranges.is_empty() {
                    jobs.push(Job {
                        id: id.clone(),
                        tile,
                        ranges,
                    });
                }
            }
        };
        // Tiles X-Plane opened: it reads their textures next.
        let opened: Vec<Tile> = {
            let mut opened = self.opened.lock().unwrap_or_else(|e| e.into_inner());
            opened.retain(|_, at| at.elapsed() < self.config.opened_for);
            let mut tiles: Vec<(Instant, Tile)> = opened.iter().map(|(t, at)| (*at, *t)).collect();
            tiles.sort_unstable();
            tiles.into_iter().map(|(_, t)| t).collect()
        };
        for tile in &opened {
            let from = fix.map_or((f64::from(tile.0) + 0.5, f64::from(tile.1) + 0.5), |f| {
                (f.lat, f.lon)
            });
            add_tile(*tile, from, &mut jobs);
        }
        // Tiles ahead along the track that X-Plane has not loaded, soonest first.
        if let Some(fix) = fix {
            let loaded: HashSet<Tile> = {
                let mut loaded = self.loaded();
                let here = tile_of(fix.lat, fix.lon);
                loaded.retain(|t| tile_gap(*t, here) <= LOADED_KEPT_TILES);
                loaded.clone()
            };
            if let Some(motion) = fix.motion {
                let horizon = self
                    .config
                    .horizon_m
                    .max(motion.speed_mps * self.config.horizon_time.as_secs_f64())
                    .min(MAX_HORIZON_M);
                for load in predict::next_loads((fix.lat, fix.lon), motion, horizon, &loaded) {
                    add_tile(load.tile, load.trigger, &mut jobs);
                    if jobs.len() >= self.config.max_queue {
                        break;
                    }
                }
            }
        }
        jobs.truncate(self.config.max_queue);
        jobs
    }

    async fn run(self: Arc<Self>) {
        let mut tasks: JoinSet<TextureId> = JoinSet::new();
        let mut in_flight: HashMap<TextureId, (Tile, AbortHandle)> = HashMap::new();
        loop {
            self.service
                .set_parked(self.telemetry.fix().is_some_and(|fix| fix.is_parked()));
            // Planning asks the caches about every texture ahead: not while
            // X-Plane's burst is using them, when nothing new would start.
            if self.live_busy(in_flight.len()) {
                tokio::select! {
                    done = tasks.join_next(), if !tasks.is_empty() => self.reap(done, &mut in_flight),
                    () = tokio::time::sleep(PAUSE_POLL) => {}
                }
                continue;
            }
            let plan = self.plan();
            let wanted: HashSet<Tile> = plan.iter().map(|j| j.tile).collect();
            in_flight.retain(|_, (tile, handle)| {
                let keep = wanted.contains(tile);
                if !keep {
                    handle.abort();
                    self.stats.dropped.incr();
                }
                keep
            });
            let mut pending: VecDeque<Job> = plan
                .into_iter()
                .filter(|j| !in_flight.contains_key(&j.id))
                .collect();
            let deadline = Instant::now() + self.config.cycle;
            loop {
                self.stats
                    .queued
                    .store(pending.len() as u64, Ordering::Relaxed);
                self.stats
                    .in_flight
                    .store(in_flight.len() as u64, Ordering::Relaxed);
                let can_start = !pending.is_empty()
                    && in_flight.len() < self.config.max_in_flight.max(1)
                    && !self.live_busy(in_flight.len());
                if can_start {
                    let Some(job) = pending.pop_front() else {
                        break;
                    };
                    let service = self.service.clone();
                    let id = job.id.clone();
                    let handle = tasks.spawn(async move {
                        let parts = job
                            .ranges
                            .iter()
                            .map(|r| service.prefetch(&job.id, r.clone()));
                        futures_util::future::join_all(parts).await;
                        job.id
                    });
                    in_flight.insert(id, (job.tile, handle));
                    continue;
                }
                let waiting_on_pause =
                    !pending.is_empty() && in_flight.len() < self.config.max_in_flight.max(1);
                tokio::select! {
                    done = tasks.join_next(), if !tasks.is_empty() => self.reap(done, &mut in_flight),
                    () = tokio::time::sleep(PAUSE_POLL), if waiting_on_pause => {}
                    () = tokio::time::sleep_until(deadline) => break,
                    () = self.wake.notified() => break,
                }
            }
        }
    }

    /// Frees the slot of a finished prefetch.
    fn reap(
        &self,
        done: Option<Result<TextureId, tokio::task::JoinError>>,
        in_flight: &mut HashMap<TextureId, (Tile, AbortHandle)>,
    ) {
        match done {
            Some(Ok(id)) => {
                in_flight.remove(&id);
                self.stats.built.incr();
            }
            Some(Err(err)) => {
                // Aborted ones were removed already; a panic frees its slot here.
                in_flight.retain(|_, (_, handle)| handle.id() != err.id());
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dds::layout::DdsFormat;
    use crate::prefetch::catalog::IndexCatalog;
    use crate::provider::TemplateProvider;
    use crate::telemetry::{Sample, SourceKind};
    use crate::texture::ServiceConfig;

    /// A service that could never download: planning needs none.
    fn service() -> TextureService {
        let provider = TemplateProvider::custom("http://127.0.0.1:9/{z}/{x}/{y}.jpg").unwrap();
        TextureService::new(Arc::new(provider), ServiceConfig::default()).unwrap()
    }

    /// Textures at ZL16 every 16 chunks along a meridian band around -5.5.
    fn catalog(lats: std::ops::Range<i32>) -> IndexCatalog {
        let ids = lats.flat_map(|lat| {
            [0.2, 0.5, 0.8].into_iter().map(move |f| {
                let chunk = crate::coord::chunk_at(16, f64::from(lat) + f, -5.5);
                TextureId::new(
                    u64::from(chunk.y / 16 * 16),
                    u64::from(chunk.x / 16 * 16),
                    16,
                    "BI",
                )
                .unwrap()
            })
        });
        IndexCatalog::from_ids(ids)
    }

    fn northbound(hub: &Telemetry, lat: f64) {
        hub.report(
            SourceKind::Udp,
            Sample {
                lat,
                lon: -5.5,
                elevation_m: 3000.0,
                heading_deg: 0.0,
                groundspeed_mps: 130.0,
            },
        );
    }

    #[tokio::test(start_paused = true)]
    async fn plans_opened_tiles_first_then_the_tiles_ahead_with_only_what_is_read() {
        let hub = Telemetry::new();
        let prefetcher = Prefetcher::new(
            service(),
            Arc::new(catalog(44..52)),
            hub.clone(),
            None,
            PrefetchConfig::default(),
        );
        assert!(prefetcher.plan().is_empty(), "nobody flies: nothing to do");
        northbound(&hub, 47.7);
        prefetcher.dsf_opened(Path::new("Earth nav data/+40-010/+45-006.dsf"));
        assert!(
            prefetcher.shared.live_busy(0),
            "X-Plane reads an opened tile at once: its burst goes first"
        );
        tokio::time::advance(LIVE_QUIET).await;
        assert!(
            !prefetcher.shared.live_busy(0),
            "left unread: ours to build"
        );
        let plan = prefetcher.plan();
        let tiles: Vec<Tile> = plan.iter().map(|j| j.tile).collect();
        assert_eq!(&tiles[..3], &[(45, -6); 3], "{tiles:?}");
        // Ahead: rows 48..50 (fired at 47.6), then 51 further on; never behind.
        let ahead: Vec<i32> = tiles[3..].iter().map(|t| t.0).collect();
        assert_eq!(ahead.first(), Some(&48));
        assert!(ahead.windows(2).all(|w| w[0] <= w[1]), "{ahead:?}");
        assert!(ahead.iter().all(|&lat| lat >= 48), "{ahead:?}");
        // Distant textures: the header read and the low levels only.
        let far = plan.iter().find(|j| j.tile.0 == 50).unwrap();
        assert_eq!(far.ranges, ranges::ranges(DdsFormat::Bc1, 200_000.0));
        // Once X-Plane reads the opened tile, it is X-Plane's: out of the plan.
        prefetcher.texture_read(&plan[0].id, 0..65_536);
        let after = prefetcher.plan();
        assert!(after.iter().all(|j| j.tile != (45, -6)), "{after:?}");
        assert_eq!(after.len(), plan.len() - 3);
    }

    #[tokio::test(start_paused = true)]
    async fn tiles_x_plane_loaded_are_not_planned_again_while_it_is_near() {
        let hub = Telemetry::new();
        let prefetcher = Prefetcher::new(
            service(),
            Arc::new(catalog(44..60)),
            hub.clone(),
            None,
            PrefetchConfig::default(),
        );
        northbound(&hub, 47.7);
        let rows = |plan: &[Job]| -> Vec<i32> {
            let mut rows: Vec<i32> = plan.iter().map(|j| j.tile.0).collect();
            rows.dedup();
            rows
        };
        assert_eq!(rows(&prefetcher.plan())[..3], [48, 49, 50]);
        // X-Plane loads the band: one read in each of its tiles.
        for row in 48..=50 {
            let id = prefetcher.shared.catalog.textures_in_tile((row, -6))[0]
                .id
                .clone();
            prefetcher.texture_read(&id, 0..65_536);
        }
        let plan = prefetcher.plan();
        assert!(plan.iter().all(|j| j.tile.0 > 50), "{:?}", rows(&plan));
        assert!(!plan.is_empty(), "the tiles beyond are still ahead");
        // Far beyond, X-Plane has let them go: loaded again if ahead.
        northbound(&hub, 43.7);
        assert_eq!(rows(&prefetcher.plan())[..1], [44]);
        northbound(&hub, 47.7);
        assert_eq!(rows(&prefetcher.plan())[..3], [48, 49, 50]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_that_misses_pauses_new_work_and_tells_the_position() {
        let hub = Telemetry::new();
        let svc = service();
        let prefetcher = Prefetcher::new(
            svc.clone(),
            Arc::new(catalog(47..48)),
            hub.clone(),
            Some(InferredPosition::new(hub.clone())),
            PrefetchConfig::default(),
        );
        let id = prefetcher.shared.catalog.textures_in_tile((47, -6))[0]
            .id
            .clone();
        prefetcher.texture_read(&id, 0..65_536);
        let status = prefetcher.status();
        assert!(prefetcher.shared.live_busy(0), "a live miss just now");
        // The read told where X-Plane loads: the inferred position.
        assert_eq!(status.fix.map(|f| f.source), Some(SourceKind::Inferred));
        tokio::time::advance(LIVE_QUIET).await;
        assert!(!prefetcher.shared.live_busy(0));
    }
}
