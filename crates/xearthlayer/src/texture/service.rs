//! The texture service: a texture name and a byte range in, exactly those
//! bytes out, for hundreds of textures at once, within a time bound.
//!
//! This file is the front: configuration, the shared parts, and the calls
//! the filesystem and the prefetcher make. Where each decision lives:
//! - which entry is a texture's: [`registry`](super::registry);
//! - which units a read needs, read-ahead, when it gives up: [`reader`](super::reader);
//! - how patient reads are, and a visit's start: [`patience`](super::patience);
//! - one unit's downloads and CPU work: [`unit_build`](super::unit_build);
//! - chunk downloads shared across textures: [`downloads`](super::downloads);
//! - what stands in for what is late or missing: [`fallback`](super::fallback);
//! - live work before background work, the oldest read first: [`crate::sched`].
//!
//! Nothing here fails: the worst outcome is valid bytes of neutral colour.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::build;
use super::downloads::Downloads;
use super::entry::{EntryKey, TextureEntry};
use super::memory_budget::MemoryBudget;
use super::patience::{ReadNeed, StartupPatience};
use super::plan::{self, Unit};
use super::pool::CpuPool;
use super::registry::{Found, Registry};
use crate::cache::{DiskCache, TextureKey};
use crate::coord::TextureId;
use crate::dds::layout::{self, DdsFormat};
use crate::fetch::{FetchConfig, FetchError, ImageryClient};
use crate::metrics::Metrics;
use crate::provider::{Providers, TileProvider};
use crate::sched::ClassedPermits;

/// Bytes of parts waiting to be written to the disk cache at once; past
/// this, parts are not stored (they are built again if read again after
/// eviction). A burst of 200 textures builds about 240 MiB in 4 s, which a
/// disk writes in well under a second: 64 MiB only fills when the disk
/// cannot keep up.
const MAX_PENDING_WRITE_BYTES: u64 = 64 << 20;

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub format: DdsFormat,
    /// How long the provider may leave the requests it has in flight
    /// unanswered before the reads that wait for it give up and are
    /// answered with stand-ins. A read waits as long as its work moves.
    pub stall_window: Duration,
    /// The longest a read waits however its work moves, counted from the
    /// first read of its visit (a texture read in several pieces is one
    /// visit).
    pub max_wait: Duration,
    /// The same while X-Plane's first scenery load runs (its loading
    /// screen is up, and stand-ins at the departure airport would stay for
    /// the whole flight).
    pub startup_max_wait: Duration,
    /// How long background work (read-ahead, prefetch) downloads a unit.
    pub background_budget: Duration,
    /// A texture served with stand-ins is built again for new opens once
    /// this long has passed (a short back-off, so failures do not stick).
    pub retry_degraded_after: Duration,
    /// Concurrent CPU jobs (decode, mips, encode); defaults to the cores.
    pub cpu_threads: usize,
    /// Units (strips, low levels) being built at once, downloads included.
    /// 1 reproduces the one-texture-at-a-time model this design replaces.
    pub max_builds: usize,
    /// Of those, how many background work may hold.
    pub max_background_builds: usize,
    /// Build the whole texture on any read: the behaviour before reads
    /// built only what they touch, kept as a baseline for benchmarks.
    pub whole_textures: bool,
    pub memory_cache_bytes: u64,
    /// Disk cache folder and bound, or none.
    pub disk_cache: Option<(PathBuf, u64)>,
    pub fetch: FetchConfig,
}

/// The default stall window: the client's own first-byte timeout is 5 s,
/// so a provider whose requests all go 4 s without any answer has stopped
/// answering, not slowed down (a busy link still answers several requests
/// a second).
pub const DEFAULT_STALL_WINDOW: Duration = Duration::from_secs(4);
/// The default cap of a read in flight. With X-Plane's 64 loader threads
/// outstanding, a read waits about 64 reads' bytes over the link (Little's
/// law): about 5 s at 25 Mbit/s, 13 s at 10 Mbit/s. A minute lets links
/// down to about 2 Mbit/s serve final imagery, and is twice the 30 s the
/// patient peer waits; a stalled provider is caught by the stall window
/// long before.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(60);
/// The default cap during X-Plane's first load: its loading screen waits
/// for the scenery anyway, and the first load is the biggest (thousands of
/// textures, minutes of a home link).
pub const DEFAULT_STARTUP_MAX_WAIT: Duration = Duration::from_secs(600);

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            format: DdsFormat::Bc1,
            stall_window: DEFAULT_STALL_WINDOW,
            max_wait: DEFAULT_MAX_WAIT,
            startup_max_wait: DEFAULT_STARTUP_MAX_WAIT,
            background_budget: Duration::from_secs(30),
            retry_degraded_after: Duration::from_secs(10),
            cpu_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_builds: 256,
            max_background_builds: 64,
            whole_textures: false,
            memory_cache_bytes: 1 << 30,
            disk_cache: None,
            fetch: FetchConfig::default(),
        }
    }
}

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("cannot use the disk cache at {path}: {source}")]
    DiskCache {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A whole served texture.
#[derive(Debug, Clone)]
pub struct Texture {
    /// The whole DDS file.
    pub bytes: Bytes,
    /// Some chunks were filled in rather than downloaded.
    pub degraded: bool,
}

/// The texture engine. Cheap to clone; all clones share caches and limits.
#[derive(Debug, Clone)]
pub struct TextureService {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) config: ServiceConfig,
    pub(super) providers: Providers,
    pub(super) downloads: Downloads,
    pub(super) cpu: CpuPool,
    /// Working memory of the CPU jobs, reused (see [`build::Scratch`]).
    pub(super) scratch: Arc<Mutex<Vec<build::Scratch>>>,
    pub(super) builds: ClassedPermits,
    pub(super) registry: Registry,
    /// One disk cache per provider, by its cache key.
    pub(super) disks: HashMap<String, Arc<DiskCache>>,
    pub(super) placeholder: Bytes,
    pub(super) metrics: Arc<Metrics>,
    /// Disk writes run in the background; shutdown waits for them.
    pub(super) disk_writes: TaskTracker,
    pub(super) pending_writes: MemoryBudget,
    pub(super) startup: StartupPatience,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextureService")
            .field("providers", &self.providers)
            .field("format", &self.config.format)
            .finish_non_exhaustive()
    }
}

impl TextureService {
    /// Starts a service. Opening the disk cache scans its folder, so call
    /// this before serving (it is quick: names and sizes only).
    pub fn new(
        providers: impl Into<Providers>,
        config: ServiceConfig,
    ) -> Result<Self, ServiceError> {
        let providers = providers.into();
        let metrics = Arc::new(Metrics::default());
        let client = ImageryClient::new(config.fetch.clone(), Arc::clone(&metrics))?;
        let mut disks = HashMap::new();
        if let Some((path, bytes)) = &config.disk_cache {
            for provider in providers.all() {
                let key = provider.cache_key().to_string();
                let disk =
                    DiskCache::open(path, &key, config.format, *bytes).map_err(|source| {
                        ServiceError::DiskCache {
                            path: path.clone(),
                            source,
                        }
                    })?;
                disks.insert(key, disk);
            }
        }
        let max_builds = config.max_builds.max(1);
        Ok(TextureService {
            inner: Arc::new(Inner {
                cpu: CpuPool::new(config.cpu_threads),
                scratch: Arc::default(),
                builds: ClassedPermits::new(
                    max_builds,
                    config.max_background_builds.min(max_builds),
                ),
                registry: Registry::new(config.memory_cache_bytes, config.retry_degraded_after),
                placeholder: Bytes::from(build::placeholder(config.format)),
                downloads: Downloads::new(client),
                providers,
                disks,
                metrics,
                config,
                disk_writes: TaskTracker::new(),
                pending_writes: MemoryBudget::new(MAX_PENDING_WRITE_BYTES),
                startup: StartupPatience::default(),
            }),
        })
    }

    pub fn format(&self) -> DdsFormat {
        self.inner.config.format
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.inner.config
    }

    /// Final size of every texture file, before anything is generated.
    pub fn file_size(&self) -> u64 {
        layout::file_size(self.inner.config.format)
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The forced provider, or the fallback of codes nothing maps.
    pub fn provider(&self) -> &Arc<dyn TileProvider> {
        self.inner.providers.primary()
    }

    pub fn providers(&self) -> &Providers {
        &self.inner.providers
    }

    /// The shared download client (permits, provider limits and health).
    pub fn client(&self) -> &ImageryClient {
        self.inner.downloads.client()
    }

    /// Bytes of texture data held by the memory cache.
    pub fn memory_bytes(&self) -> u64 {
        self.inner.registry.memory_bytes()
    }

    /// The disk cache of [`TextureService::provider`].
    pub fn disk_cache(&self) -> Option<&Arc<DiskCache>> {
        self.inner.disks.get(self.provider().cache_key())
    }

    /// Work in progress now, live and background.
    pub fn work(&self) -> WorkCounts {
        let builds = self.inner.builds.counts();
        let cpu = self.inner.cpu.counts();
        WorkCounts {
            live_builds: builds.live_held,
            live_builds_waiting: builds.live_waiting,
            background_builds: builds.background_held,
            background_builds_waiting: builds.background_waiting,
            cpu_live: cpu.live_held,
            cpu_background: cpu.background_held,
            downloads: self.inner.downloads.in_flight(),
            live_entries: self.inner.registry.live_entries(),
            pending_write_bytes: self.inner.pending_writes.held(),
        }
    }

    /// The shared entry of a texture: cheap, no I/O. A degraded entry older
    /// than the retry interval is replaced, so failures do not stick; open
    /// files keep the entry they got.
    pub fn entry(&self, id: &TextureId) -> Arc<TextureEntry> {
        let provider = self.inner.providers.for_texture(id);
        let key = EntryKey {
            source: Arc::from(provider.cache_key()),
            texture: TextureKey::from(id),
        };
        let format = self.inner.config.format;
        let disk = self.inner.disks.get(provider.cache_key()).cloned();
        match self.inner.registry.entry(key, || {
            TextureEntry::new(id.clone(), provider, disk, format)
        }) {
            Found::Existing(entry) => entry,
            Found::New(entry) => {
                self.inner.metrics.textures_touched.incr();
                entry
            }
        }
    }

    /// Exactly the bytes of `range` of the texture (clamped to its size),
    /// building what is missing first; a visit of its own. Never fails.
    pub async fn read(&self, entry: &Arc<TextureEntry>, range: Range<u64>) -> Bytes {
        self.read_checked(entry, range, Instant::now()).await.0
    }

    /// [`read`](Self::read) as part of a visit that started at `visit`
    /// (the first read of an open file, see [`Visit`](super::patience::Visit)):
    /// the read waits in line by that age, and at most the visit's cap.
    pub async fn read_in_visit(
        &self,
        entry: &Arc<TextureEntry>,
        range: Range<u64>,
        visit: Instant,
    ) -> Bytes {
        self.read_checked(entry, range, visit).await.0
    }

    /// A read, and whether every byte is final imagery: built for this
    /// texture from real imagery, no stand-ins.
    async fn read_checked(
        &self,
        entry: &Arc<TextureEntry>,
        range: Range<u64>,
        visit: Instant,
    ) -> (Bytes, bool) {
        let inner = &self.inner;
        let m = &inner.metrics;
        let _reading = inner.startup.read_started();
        let need = ReadNeed {
            since: visit,
            cap: visit + inner.max_wait(),
        };
        m.reads.incr();
        for level in layout::levels_touched(self.format(), range.clone()) {
            m.reads_by_level[level as usize].incr();
        }
        let needed = if inner.config.whole_textures {
            0..self.file_size()
        } else {
            range.clone()
        };
        let complete = inner.ensure(entry, needed, Some(need)).await;
        let bytes = if complete {
            entry.state.read(range, &inner.placeholder)
        } else {
            super::fallback::read_with_stand_ins(&entry.state, range, &inner.placeholder)
        };
        let is_final = complete && !entry.state.is_degraded();
        if is_final {
            m.reads_final.incr();
        } else {
            m.reads_stood_in.incr();
        }
        m.bytes_read.add(bytes.len() as u64);
        (bytes, is_final)
    }

    /// Builds `range` of the texture as background work: after live work,
    /// in its own share of builds, downloads and CPU. Dropping the future
    /// cancels what nobody else waits for. Returns whether the range is
    /// built from real imagery now.
    pub async fn prefetch(&self, id: &TextureId, range: Range<u64>) -> bool {
        let entry = self.entry(id);
        self.inner.metrics.prefetches.incr();
        self.inner.ensure(&entry, range, None).await && !entry.state.is_degraded()
    }

    /// The units of `range` that a [`prefetch`](Self::prefetch) of it would
    /// still build: those neither in memory nor in the texture's disk cache
    /// file, which is read to find out (once, as a prefetch would: the
    /// entry keeps what it loaded, in the memory cache's bound).
    pub async fn missing_units(&self, id: &TextureId, range: Range<u64>) -> Vec<Unit> {
        let entry = self.entry(id);
        self.inner.load_from_disk(&entry).await;
        let format = self.format();
        plan::units_touching(format, range.clone())
            .into_iter()
            .filter(|u| {
                let r = u.range(format);
                !entry
                    .state
                    .is_built(r.start.max(range.start)..r.end.min(range.end))
            })
            .collect()
    }

    /// `range` of the texture is in memory, or known to be in its disk
    /// cache file: a read would not wait for a download. A file this
    /// process has not written or loaded yet (known only from the start-up
    /// scan) does not count, so a prefetch of it loads it from disk and
    /// builds only what is missing.
    pub fn is_cached(&self, id: &TextureId, range: Range<u64>) -> bool {
        let provider = self.inner.providers.for_texture(id);
        let texture = TextureKey::from(id);
        let key = EntryKey {
            source: Arc::from(provider.cache_key()),
            texture,
        };
        if let Some(entry) = self.inner.registry.find(&key) {
            if entry.state.is_built(range.clone()) {
                return true;
            }
        }
        self.inner
            .disks
            .get(provider.cache_key())
            .is_some_and(|d| d.holds(&texture, range))
    }

    /// Whether X-Plane's first scenery load is over (reads are then capped
    /// at `max_wait`, before at `startup_max_wait`).
    pub fn startup_done(&self) -> bool {
        self.inner.startup.is_done()
    }

    /// Telemetry says the aircraft stands still (parked, or the simulation
    /// paused): reads wait up to `startup_max_wait`, as during the first
    /// load. Stand-ins at the airport where the user sits would stay for
    /// the whole flight.
    pub fn set_parked(&self, parked: bool) {
        self.inner.startup.set_parked(parked);
    }

    /// Live reads are waiting for builds now (a burst is being served).
    pub fn live_busy(&self) -> bool {
        let builds = self.inner.builds.counts();
        builds.live_held + builds.live_waiting > 0
    }

    /// The texture's whole DDS file.
    pub async fn texture(&self, id: &TextureId) -> Texture {
        let entry = self.entry(id);
        let (bytes, is_final) = self
            .read_checked(&entry, 0..self.file_size(), Instant::now())
            .await;
        Texture {
            bytes,
            degraded: !is_final,
        }
    }

    /// Waits for the disk writes started so far (call before exiting).
    pub async fn flush(&self) {
        let writes = &self.inner.disk_writes;
        writes.close();
        writes.wait().await;
        writes.reopen();
    }
}

/// Work in progress, by class (for the status view and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WorkCounts {
    pub live_builds: usize,
    pub live_builds_waiting: usize,
    pub background_builds: usize,
    pub background_builds_waiting: usize,
    pub cpu_live: usize,
    pub cpu_background: usize,
    /// Chunk downloads in flight or waiting for a permit.
    pub downloads: usize,
    /// Texture entries alive (memory cache, open files, builds).
    pub live_entries: usize,
    /// Bytes of parts waiting to be written to the disk cache.
    pub pending_write_bytes: u64,
}

impl WorkCounts {
    pub fn idle(&self) -> bool {
        self.live_builds + self.background_builds + self.downloads == 0
    }
}
