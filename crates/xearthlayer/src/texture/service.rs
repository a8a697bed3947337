//! The texture service: a texture name and a byte range in, exactly those
//! bytes out, for hundreds of textures at once.
//!
//! Each texture has one shared entry (in the memory cache) holding what is
//! built of it ([`TextureState`]). A read builds only the units its range
//! needs ([`plan`](super::plan)): a header read the top strip, a distant
//! texture's read the one low-zoom chunk. Each unit is built once however
//! many readers want it, as its own task so a reader that goes away does not
//! waste the work: its chunks download at once (bounded by the shared
//! client), then the CPU pool decodes, mips and encodes them. Every unit has
//! a time budget: when it runs out the unit is finished with what arrived and
//! the rest filled from lower-zoom imagery or a neutral colour, so a reader
//! is never left hanging. Nothing here fails: the worst outcome is valid
//! bytes of neutral colour.

use std::collections::HashMap;
use std::future::Future;
use std::ops::Range;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{join_all, FutureExt, Shared};
use tokio::sync::OnceCell;
use tokio::time::timeout_at;
use tokio_util::task::TaskTracker;

use super::build::{self, ChunkInput, StripOutput};
use super::plan::{self, Unit, LOW_LEVEL};
use super::pool::CpuPool;
use super::state::{LowPart, TextureState};
use crate::cache::{DiskCache, MemoryCache, TextureKey};
use crate::coord::{ChunkCoord, TextureId};
use crate::dds::layout::{self, DdsFormat};
use crate::fetch::{FetchConfig, FetchError, ImageryClient, WorkClass};
use crate::metrics::Metrics;
use crate::provider::{Providers, TileProvider};

/// A texture with filled chunks is built again (for new opens) after this long.
const DEGRADED_RETRY: Duration = Duration::from_secs(60);
/// How many zoom levels up a missing chunk looks for stand-in imagery.
const FALLBACK_DEPTHS: u8 = 4;
/// Build rounds one read may take (see [`Inner::ensure`]).
const MAX_ROUNDS: usize = 8;

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub format: DdsFormat,
    /// Time from the start of a unit's build to finishing it with whatever arrived.
    pub budget: Duration,
    /// Concurrent CPU jobs (decode, mips, encode); defaults to the cores.
    pub cpu_threads: usize,
    /// Units (strips, low levels) being built at once, downloads included.
    /// 1 reproduces the one-texture-at-a-time model this design replaces.
    pub max_builds: usize,
    /// Build the whole texture on any read: the behaviour before reads
    /// built only what they touch, kept as a baseline for benchmarks.
    pub whole_textures: bool,
    pub memory_cache_bytes: u64,
    /// Disk cache folder and bound, or none.
    pub disk_cache: Option<(PathBuf, u64)>,
    pub fetch: FetchConfig,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            format: DdsFormat::Bc1,
            budget: Duration::from_secs(20),
            cpu_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_builds: 256,
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

type SharedUnit = Shared<Pin<Box<dyn Future<Output = ()> + Send>>>;
type SharedChunk = Shared<Pin<Box<dyn Future<Output = Option<Bytes>> + Send>>>;

/// One texture's shared entry: its built bytes and the work under way.
pub struct TextureEntry {
    id: TextureId,
    /// Where its imagery comes from (by its name's code, or forced).
    provider: Arc<dyn TileProvider>,
    key: TextureKey,
    state: TextureState,
    /// Units being built, each shared by every reader that needs it.
    building: Mutex<HashMap<Unit, SharedUnit>>,
    /// Stand-in chunks fetched for this texture, shared by its units.
    ancestors: Mutex<HashMap<ChunkCoord, SharedChunk>>,
    /// Units building now, to count textures in flight.
    active_units: AtomicUsize,
    disk_loaded: OnceCell<()>,
}

impl std::fmt::Debug for TextureEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextureEntry")
            .field("id", &self.id)
            .field("bytes_held", &self.state.bytes_held())
            .finish_non_exhaustive()
    }
}

impl TextureEntry {
    pub fn id(&self) -> &TextureId {
        &self.id
    }

    pub fn state(&self) -> &TextureState {
        &self.state
    }

    /// Memory the entry holds: built bytes and stand-in chunks kept.
    fn weight(&self) -> u64 {
        let memo: u64 = self
            .ancestors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter_map(|chunk| chunk.peek().cloned().flatten())
            .map(|b| b.len() as u64)
            .sum();
        self.state.bytes_held() + memo
    }
}

/// The texture engine. Cheap to clone; all clones share caches and limits.
#[derive(Debug, Clone)]
pub struct TextureService {
    inner: Arc<Inner>,
}

struct Inner {
    providers: Providers,
    http: ImageryClient,
    config: ServiceConfig,
    cpu: CpuPool,
    /// Working memory of the CPU jobs, reused (see [`build::Scratch`]).
    scratch: Arc<Mutex<Vec<build::Scratch>>>,
    builds: tokio::sync::Semaphore,
    memory: MemoryCache<Arc<TextureEntry>>,
    // Serialises finding-or-creating entries; held for cache calls only.
    entry_lock: Mutex<()>,
    /// One disk cache per provider, by its cache key.
    disks: HashMap<String, Arc<DiskCache>>,
    placeholder: Bytes,
    metrics: Arc<Metrics>,
    /// Disk writes run in the background; shutdown waits for them.
    disk_writes: TaskTracker,
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
        let http = ImageryClient::new(config.fetch.clone(), Arc::clone(&metrics))?;
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
        Ok(TextureService {
            inner: Arc::new(Inner {
                cpu: CpuPool::new(config.cpu_threads),
                scratch: Arc::default(),
                builds: tokio::sync::Semaphore::new(config.max_builds.max(1)),
                memory: MemoryCache::new(config.memory_cache_bytes),
                entry_lock: Mutex::new(()),
                placeholder: Bytes::from(build::placeholder(config.format)),
                providers,
                http,
                disks,
                metrics,
                config,
                disk_writes: TaskTracker::new(),
            }),
        })
    }

    pub fn format(&self) -> DdsFormat {
        self.inner.config.format
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
        &self.inner.http
    }

    /// Bytes of texture data held in memory.
    pub fn memory_bytes(&self) -> u64 {
        self.inner.memory.weight()
    }

    /// The disk cache of [`TextureService::provider`].
    pub fn disk_cache(&self) -> Option<&Arc<DiskCache>> {
        self.inner.disks.get(self.provider().cache_key())
    }

    /// The shared entry of a texture: cheap, no I/O. A degraded entry older
    /// than the retry interval is replaced, so failures do not stick; open
    /// files keep the entry they got.
    pub fn entry(&self, id: &TextureId) -> Arc<TextureEntry> {
        let key = TextureKey::from(id);
        let _serial = self
            .inner
            .entry_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = self.inner.memory.get(&key) {
            if !entry.state.is_degraded() || entry.state.age() < DEGRADED_RETRY {
                return entry;
            }
        }
        let entry = Arc::new(TextureEntry {
            id: id.clone(),
            provider: self.inner.providers.for_texture(id),
            key,
            state: TextureState::new(self.inner.config.format),
            building: Mutex::new(HashMap::new()),
            ancestors: Mutex::new(HashMap::new()),
            active_units: AtomicUsize::new(0),
            disk_loaded: OnceCell::new(),
        });
        self.inner.memory.insert(key, Arc::clone(&entry), 0);
        self.inner.metrics.textures_touched.incr();
        entry
    }

    /// Exactly the bytes of `range` of the texture (clamped to its size),
    /// building what is missing first. Never fails.
    pub async fn read(&self, entry: &Arc<TextureEntry>, range: Range<u64>) -> Bytes {
        let m = &self.inner.metrics;
        for level in layout::levels_touched(self.format(), range.clone()) {
            m.reads_by_level[level as usize].incr();
        }
        let needed = if self.inner.config.whole_textures {
            0..self.file_size()
        } else {
            range.clone()
        };
        self.inner.ensure(entry, needed).await;
        let bytes = entry.state.read(range, &self.inner.placeholder);
        m.bytes_read.add(bytes.len() as u64);
        bytes
    }

    /// The texture's whole DDS file.
    pub async fn texture(&self, id: &TextureId) -> Texture {
        let entry = self.entry(id);
        let bytes = self.read(&entry, 0..self.file_size()).await;
        Texture {
            bytes,
            degraded: entry.state.is_degraded(),
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

impl Inner {
    /// Builds whatever of `range` is not built yet, top levels first: a
    /// level-0 strip also makes the rows below it, so lower levels are
    /// planned again after each round.
    async fn ensure(self: &Arc<Self>, entry: &Arc<TextureEntry>, range: Range<u64>) {
        let format = self.config.format;
        if entry.state.is_built(range.clone()) {
            self.metrics.memory_hits.incr();
            return;
        }
        self.load_from_disk(entry).await;
        // Normally at most one round per level from 0 to 3 and one for the
        // low levels; the bound only matters if a build died without its
        // bytes (a bug), and then the reader gets stand-in bytes, not a hang.
        for _ in 0..MAX_ROUNDS {
            let needed: Vec<Unit> = plan::units_touching(format, range.clone())
                .into_iter()
                .filter(|u| {
                    let r = u.range(format);
                    !entry
                        .state
                        .is_built(r.start.max(range.start)..r.end.min(range.end))
                })
                .collect();
            let Some(top) = needed.iter().map(|u| u.top()).min() else {
                return;
            };
            // Levels 4..=12 come free with the last level-0 strip; fetch
            // their chunk only when no level-0 strip is being built.
            let round: Vec<Unit> = needed
                .into_iter()
                .filter(|u| u.top() == top || (*u == Unit::Low && top > 0))
                .collect();
            self.read_ahead(entry, &round);
            join_all(round.into_iter().map(|u| self.unit(entry, u))).await;
        }
    }

    /// A read past the first strip of a level is a read of the whole level
    /// (X-Plane reads a close texture front to back in pieces): start the
    /// level's later strips now instead of one piece at a time. Header reads
    /// (strip 0 only) start nothing.
    fn read_ahead(self: &Arc<Self>, entry: &Arc<TextureEntry>, round: &[Unit]) {
        let format = self.config.format;
        let Some((level, last)) = round
            .iter()
            .filter_map(|u| match *u {
                Unit::Strip { level, strip } => Some((level, strip)),
                Unit::Low => None,
            })
            .max_by_key(|&(_, strip)| strip)
        else {
            return;
        };
        if last == 0 {
            return;
        }
        let strips = (16u8 >> level) as usize;
        for strip in last + 1..strips as u8 {
            let unit = Unit::Strip { level, strip };
            if !entry.state.is_built(unit.range(format)) {
                // The build runs as its own task; nobody needs to wait here.
                drop(self.unit(entry, unit));
            }
        }
    }

    /// Fills a new entry from the disk cache, once.
    async fn load_from_disk(self: &Arc<Self>, entry: &Arc<TextureEntry>) {
        let Some(disk) = self.disks.get(entry.provider.cache_key()) else {
            return;
        };
        entry
            .disk_loaded
            .get_or_init(|| async {
                if let Some(segments) = disk.load(entry.key).await {
                    self.metrics.disk_hits.incr();
                    for (offset, bytes) in segments {
                        entry.state.insert(offset, bytes);
                    }
                    self.reweigh(entry);
                } else {
                    self.metrics.cache_misses.incr();
                }
            })
            .await;
    }

    /// The one build of `unit` for this entry, started if not under way.
    fn unit(self: &Arc<Self>, entry: &Arc<TextureEntry>, unit: Unit) -> SharedUnit {
        let mut building = entry.building.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(build) = building.get(&unit) {
            return build.clone();
        }
        // Built since the caller looked (a unit adds its bytes before it
        // leaves this map): nothing to do.
        if entry.state.is_built(unit.range(self.config.format)) {
            return futures_util::future::ready(()).boxed().shared();
        }
        let task = tokio::spawn(Arc::clone(self).build_unit(Arc::clone(entry), unit));
        let build: SharedUnit = async move {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "texture build task failed; serving placeholder bytes");
            }
        }
        .boxed()
        .shared();
        building.insert(unit, build.clone());
        build
    }

    async fn build_unit(self: Arc<Self>, entry: Arc<TextureEntry>, unit: Unit) {
        let _slot = self
            .builds
            .acquire()
            .await
            .expect("the build semaphore is never closed");
        if entry.active_units.fetch_add(1, Ordering::Relaxed) == 0 {
            self.metrics.generations_in_flight.raise();
        }
        let format = self.config.format;
        let deadline = tokio::time::Instant::now() + self.config.budget;
        let inputs = self.strip_inputs(&entry, unit, deadline).await;
        let top = unit.top();
        let scratch = Arc::clone(&self.scratch);
        let out: StripOutput = self
            .cpu
            .run(move || {
                // One scratch per CPU job at most: the pool bounds them.
                let mut mine = scratch
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .pop()
                    .unwrap_or_default();
                let out = build::build_strip(format, top, &inputs, &mut mine);
                scratch.lock().unwrap_or_else(|e| e.into_inner()).push(mine);
                out
            })
            .await;
        let degraded = out.filled > 0;
        if degraded {
            if !entry.state.is_degraded() {
                self.metrics.textures_degraded.incr();
            }
            entry.state.mark_degraded();
            self.metrics.chunks_filled.add(u64::from(out.filled));
        }
        let mut segments = Vec::new();
        match unit {
            Unit::Strip { level, strip } => {
                segments.push((unit.range(format).start, Bytes::from(out.levels[0].clone())));
                for below in level + 1..LOW_LEVEL {
                    let j = (below - level) as usize;
                    let at = plan::derived_range(format, level, strip, below).start;
                    segments.push((at, Bytes::from(out.levels[j].clone())));
                }
                if level == 0 {
                    let part = LowPart {
                        rows: out.levels[4..7]
                            .iter()
                            .map(|r| Bytes::from(r.clone()))
                            .collect(),
                        band: out.band,
                    };
                    if let Some(parts) = entry.state.add_low_part(strip as usize, part) {
                        segments.push((Unit::Low.range(format).start, derive_low(format, &parts)));
                    }
                }
            }
            Unit::Low => {
                let tail = build::build_tail(format, LOW_LEVEL, &[out.band]);
                let low: Vec<u8> = out.levels.into_iter().chain(tail).flatten().collect();
                segments.push((unit.range(format).start, Bytes::from(low)));
            }
        }
        let added: Vec<(u64, Bytes)> = segments
            .into_iter()
            .flat_map(|(at, bytes)| entry.state.insert(at, bytes))
            .collect();
        self.metrics.units_built.incr();
        self.metrics
            .bytes_produced
            .add(added.iter().map(|(_, b)| b.len() as u64).sum());
        self.reweigh(&entry);
        if !degraded && !added.is_empty() {
            if let Some(disk) = self.disks.get(entry.provider.cache_key()) {
                let (disk, key) = (Arc::clone(disk), entry.key);
                self.disk_writes
                    .spawn(async move { disk.append(key, added).await });
            }
        }
        entry
            .building
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&unit);
        if entry.active_units.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.metrics.generations_in_flight.lower();
        }
    }

    /// Tells the memory cache how much the entry holds now (if it still
    /// holds this entry).
    fn reweigh(&self, entry: &Arc<TextureEntry>) {
        let _serial = self.entry_lock.lock().unwrap_or_else(|e| e.into_inner());
        if self
            .memory
            .get(&entry.key)
            .is_some_and(|cached| Arc::ptr_eq(&cached, entry))
        {
            self.memory
                .insert(entry.key, Arc::clone(entry), entry.weight());
        }
    }

    /// Downloads a unit's chunks and finds stand-ins for those that fail.
    /// The low unit's chunk is kept for the texture: it is the stand-in of
    /// first resort for every chunk above it.
    async fn strip_inputs(
        self: &Arc<Self>,
        entry: &Arc<TextureEntry>,
        unit: Unit,
        deadline: tokio::time::Instant,
    ) -> Vec<ChunkInput> {
        let row = unit.chunks(&entry.id);
        let downloads = row.iter().map(|&chunk| async move {
            let download = if unit == Unit::Low {
                self.ancestor(entry, chunk).left_future()
            } else {
                self.fetch_chunk(&entry.provider, chunk).right_future()
            };
            timeout_at(deadline, download).await.ok().flatten()
        });
        let images = join_all(downloads).await;
        let inputs = row.iter().zip(images).map(|(&chunk, image)| async move {
            match image {
                Some(image) => ChunkInput::Image(image),
                None => self.stand_in(entry, chunk, deadline).await,
            }
        });
        join_all(inputs).await
    }

    /// Imagery for a chunk that could not be had: a lower-zoom chunk that
    /// contains it, preferring one already fetched for this texture, then
    /// fetching the parent (and so on up), within the budget.
    async fn stand_in(
        self: &Arc<Self>,
        entry: &Arc<TextureEntry>,
        chunk: ChunkCoord,
        deadline: tokio::time::Instant,
    ) -> ChunkInput {
        let first = chunk.zoom.saturating_sub(entry.provider.max_zoom()).max(1);
        let depths: Vec<u8> = (first..first + FALLBACK_DEPTHS)
            .filter(|&d| d <= chunk.zoom && d <= 8)
            .collect();
        let stand_in = |image, depth: u8| {
            let mask = (1u32 << depth) - 1;
            ChunkInput::Ancestor {
                image,
                depth,
                x: chunk.x & mask,
                y: chunk.y & mask,
            }
        };
        for &depth in &depths {
            let fetched = entry
                .ancestors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&chunk.ancestor(depth))
                .and_then(|f| f.peek().cloned().flatten());
            if let Some(image) = fetched {
                return stand_in(image, depth);
            }
        }
        for depth in depths {
            let fetch = self.ancestor(entry, chunk.ancestor(depth));
            // A fetch already done is used even after the deadline: the
            // timeout polls the (ready) future first.
            if let Ok(Some(image)) = timeout_at(deadline, fetch).await {
                return stand_in(image, depth);
            }
        }
        ChunkInput::Missing
    }

    /// A stand-in chunk, fetched once per texture.
    fn ancestor(self: &Arc<Self>, entry: &Arc<TextureEntry>, chunk: ChunkCoord) -> SharedChunk {
        let mut memo = entry.ancestors.lock().unwrap_or_else(|e| e.into_inner());
        memo.entry(chunk)
            .or_insert_with(|| {
                let inner = Arc::clone(self);
                let provider = Arc::clone(&entry.provider);
                async move { inner.fetch_chunk(&provider, chunk).await }
                    .boxed()
                    .shared()
            })
            .clone()
    }

    async fn fetch_chunk(
        &self,
        provider: &Arc<dyn TileProvider>,
        chunk: ChunkCoord,
    ) -> Option<Bytes> {
        match self.http.fetch(provider, chunk, WorkClass::Live).await {
            Ok(body) => Some(body),
            Err(e) => {
                tracing::debug!(%chunk, error = %e, "chunk download failed");
                None
            }
        }
    }
}

/// Levels 4..=12 from the 16 level-0 strips' parts: their rows of levels 4
/// to 6 in order, then the tail from their bands.
fn derive_low(format: DdsFormat, parts: &[LowPart]) -> Bytes {
    let mut low = Vec::with_capacity(
        (layout::file_size(format) - layout::level_offset(format, LOW_LEVEL)) as usize,
    );
    for level in 0..3 {
        for part in parts {
            low.extend_from_slice(&part.rows[level]);
        }
    }
    let bands: Vec<Vec<u8>> = parts.iter().map(|p| p.band.clone()).collect();
    for level in build::build_tail(format, 0, &bands) {
        low.extend_from_slice(&level);
    }
    Bytes::from(low)
}
