//! The texture service: a texture name in, its finished DDS bytes out, for
//! hundreds of textures at once.
//!
//! Order of business for one texture: memory cache, then an in-flight
//! generation of the same texture (shared, never started twice), then the
//! disk cache, then a build. A build runs as its own task, so a reader that
//! goes away does not waste the work; its downloads all proceed at once
//! (bounded by the shared client), and each strip of chunks goes to the CPU
//! pool as soon as its own chunks are in. Every texture has a time budget:
//! when it runs out the texture is finished with what arrived and the rest
//! filled, so a reader is never left hanging. Nothing here fails: the worst
//! outcome is a valid texture of neutral colour.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::{join_all, FutureExt, Shared};
use tokio::time::timeout_at;
use tokio_util::task::TaskTracker;

use super::build::{self, ChunkInput, StripOutput};
use super::pool::CpuPool;
use crate::cache::memory::CachedTexture;
use crate::cache::{DiskCache, MemoryCache, TextureKey};
use crate::coord::{ChunkCoord, TextureId};
use crate::dds::layout::{self, DdsFormat};
use crate::fetch::{FetchConfig, FetchError, HttpClient};
use crate::image::looks_complete;
use crate::metrics::Metrics;
use crate::provider::TileProvider;

/// A texture with filled chunks is built again after this long.
const DEGRADED_RETRY: Duration = Duration::from_secs(60);
/// How many zoom levels up a missing chunk looks for stand-in imagery.
const FALLBACK_DEPTHS: u8 = 4;

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub format: DdsFormat,
    /// Time from the start of a build to serving it with whatever arrived.
    pub budget: Duration,
    /// Concurrent CPU jobs (decode, mips, encode); defaults to the cores.
    pub cpu_threads: usize,
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

/// A served texture.
#[derive(Debug, Clone)]
pub struct Texture {
    /// The whole DDS file.
    pub bytes: Bytes,
    /// Some chunks were filled in rather than downloaded.
    pub degraded: bool,
}

type SharedBuild = Shared<Pin<Box<dyn Future<Output = CachedTexture> + Send>>>;
type SharedChunk = Shared<Pin<Box<dyn Future<Output = Option<Bytes>> + Send>>>;

/// The texture engine. Cheap to clone; all clones share caches and limits.
#[derive(Debug, Clone)]
pub struct TextureService {
    inner: Arc<Inner>,
}

struct Inner {
    provider: Arc<dyn TileProvider>,
    http: HttpClient,
    config: ServiceConfig,
    cpu: CpuPool,
    memory: MemoryCache,
    disk: Option<Arc<DiskCache>>,
    // Held only to look up or insert, never across an await.
    in_flight: Mutex<HashMap<TextureKey, SharedBuild>>,
    placeholder: Bytes,
    metrics: Arc<Metrics>,
    /// Disk writes run in the background; shutdown waits for them.
    disk_writes: TaskTracker,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextureService")
            .field("provider", &self.provider.name())
            .field("format", &self.config.format)
            .finish_non_exhaustive()
    }
}

impl TextureService {
    /// Starts a service. Opening the disk cache scans its folder, so call
    /// this before serving (it is quick: names and sizes only).
    pub fn new(provider: Arc<dyn TileProvider>, config: ServiceConfig) -> Result<Self, ServiceError> {
        let metrics = Arc::new(Metrics::default());
        let http = HttpClient::new(config.fetch.clone(), Arc::clone(&metrics))?;
        let disk = match &config.disk_cache {
            Some((path, bytes)) => Some(
                DiskCache::open(path, provider.name(), config.format, *bytes).map_err(|source| {
                    ServiceError::DiskCache {
                        path: path.clone(),
                        source,
                    }
                })?,
            ),
            None => None,
        };
        Ok(TextureService {
            inner: Arc::new(Inner {
                cpu: CpuPool::new(config.cpu_threads),
                memory: MemoryCache::new(config.memory_cache_bytes),
                placeholder: Bytes::from(build::placeholder(config.format)),
                provider,
                http,
                disk,
                in_flight: Mutex::new(HashMap::new()),
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

    pub fn provider(&self) -> &Arc<dyn TileProvider> {
        &self.inner.provider
    }

    pub fn memory_cache(&self) -> &MemoryCache {
        &self.inner.memory
    }

    pub fn disk_cache(&self) -> Option<&Arc<DiskCache>> {
        self.inner.disk.as_ref()
    }

    /// The texture's whole DDS file. Never fails: on any problem the
    /// missing parts are filled, at worst with a neutral placeholder.
    pub async fn texture(&self, id: &TextureId) -> Texture {
        let key = TextureKey::from(id);
        if let Some(hit) = self.inner.memory.get(&key) {
            if !hit.degraded || hit.built_at.elapsed() < DEGRADED_RETRY {
                self.inner.metrics.memory_hits.incr();
                return Texture {
                    bytes: hit.bytes,
                    degraded: hit.degraded,
                };
            }
        }
        let build = self.shared_build(key, id);
        let done = build.await;
        Texture {
            bytes: done.bytes,
            degraded: done.degraded,
        }
    }

    /// Waits for the disk writes started so far (call before exiting).
    pub async fn flush(&self) {
        let writes = &self.inner.disk_writes;
        writes.close();
        writes.wait().await;
        writes.reopen();
    }

    /// The one build of `key` in flight, started if there is none.
    fn shared_build(&self, key: TextureKey, id: &TextureId) -> SharedBuild {
        let mut in_flight = self.inner.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(build) = in_flight.get(&key) {
            return build.clone();
        }
        let inner = Arc::clone(&self.inner);
        let task = tokio::spawn(Inner::produce(Arc::clone(&inner), key, id.clone()));
        let build: SharedBuild = async move {
            task.await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "texture build task failed; serving a placeholder");
                inner.in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
                CachedTexture {
                    bytes: inner.placeholder.clone(),
                    degraded: true,
                    built_at: Instant::now(),
                }
            })
        }
        .boxed()
        .shared();
        in_flight.insert(key, build.clone());
        build
    }
}

impl Inner {
    /// Disk cache or build; then memory cache, and disk if the texture is whole.
    async fn produce(self: Arc<Self>, key: TextureKey, id: TextureId) -> CachedTexture {
        let _generating = self.metrics.generations_in_flight.enter();
        let cached = match &self.disk {
            Some(disk) => disk.get(key).await,
            None => None,
        };
        let texture = match cached {
            Some(bytes) => {
                self.metrics.disk_hits.incr();
                CachedTexture {
                    bytes,
                    degraded: false,
                    built_at: Instant::now(),
                }
            }
            None => {
                self.metrics.cache_misses.incr();
                let texture = self.build(&id).await;
                self.metrics.textures_generated.incr();
                if texture.degraded {
                    self.metrics.textures_degraded.incr();
                } else if let Some(disk) = &self.disk {
                    let (disk, bytes) = (Arc::clone(disk), texture.bytes.clone());
                    self.disk_writes.spawn(async move { disk.put(key, bytes).await });
                }
                texture
            }
        };
        self.memory.insert(key, texture.clone());
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        texture
    }

    /// Builds all 13 levels from the texture's 256 chunks.
    async fn build(self: &Arc<Self>, id: &TextureId) -> CachedTexture {
        let deadline = tokio::time::Instant::now() + self.config.budget;
        let format = self.config.format;
        let ancestors = Arc::new(AncestorMemo::default());
        let chunks: Vec<ChunkCoord> = id.chunks().collect();
        let strips = chunks.chunks(build::chunks_per_side(0)).map(|row| {
            let ancestors = Arc::clone(&ancestors);
            async move {
                let inputs = self.strip_inputs(row, deadline, &ancestors).await;
                self.cpu
                    .run(move || build::build_strip(format, 0, &inputs))
                    .await
            }
        });
        let strips: Vec<StripOutput> = join_all(strips).await;
        let filled: u32 = strips.iter().map(|s| s.filled).sum();
        self.metrics.chunks_filled.add(u64::from(filled));
        let bytes = self
            .cpu
            .run(move || {
                let bands: Vec<Vec<u8>> = strips.iter().map(|s| s.band.clone()).collect();
                let tail = build::build_tail(format, 0, &bands);
                build::assemble_file(format, &strips, &tail)
            })
            .await;
        CachedTexture {
            bytes: Bytes::from(bytes),
            degraded: filled > 0,
            built_at: Instant::now(),
        }
    }

    /// Downloads one strip's chunks and finds stand-ins for those that fail.
    async fn strip_inputs(
        self: &Arc<Self>,
        row: &[ChunkCoord],
        deadline: tokio::time::Instant,
        ancestors: &Arc<AncestorMemo>,
    ) -> Vec<ChunkInput> {
        let downloads = row
            .iter()
            .map(|&chunk| async move { timeout_at(deadline, self.fetch_chunk(chunk)).await.ok().flatten() });
        let images = join_all(downloads).await;
        let inputs = row.iter().zip(images).map(|(&chunk, image)| async move {
            match image {
                Some(image) => ChunkInput::Image(image),
                None => self.stand_in(chunk, deadline, ancestors).await,
            }
        });
        join_all(inputs).await
    }

    /// A lower-zoom chunk containing `chunk`, fetched once per texture.
    async fn stand_in(
        self: &Arc<Self>,
        chunk: ChunkCoord,
        deadline: tokio::time::Instant,
        ancestors: &Arc<AncestorMemo>,
    ) -> ChunkInput {
        let max_zoom = self.provider.max_zoom();
        let first = chunk.zoom.saturating_sub(max_zoom).max(1);
        for depth in first..first + FALLBACK_DEPTHS {
            if depth > chunk.zoom || depth > 8 {
                break;
            }
            let parent = chunk.ancestor(depth);
            let fetch = ancestors.get(self, parent);
            // An ancestor already fetched is used even after the deadline:
            // the timeout polls the (ready) future first.
            if let Ok(Some(image)) = timeout_at(deadline, fetch).await {
                let mask = (1u32 << depth) - 1;
                return ChunkInput::Ancestor {
                    image,
                    depth,
                    x: chunk.x & mask,
                    y: chunk.y & mask,
                };
            }
        }
        ChunkInput::Missing
    }

    async fn fetch_chunk(&self, chunk: ChunkCoord) -> Option<Bytes> {
        if chunk.zoom > self.provider.max_zoom() {
            return None;
        }
        let url = self.provider.chunk_url(chunk);
        match self.http.get(&url, self.provider.referer(), looks_complete).await {
            Ok(body) => Some(body),
            Err(e) => {
                tracing::debug!(%chunk, error = %e, "chunk download failed");
                None
            }
        }
    }
}

/// Per-texture memo of stand-in downloads, so that the chunks sharing a
/// parent fetch it once.
#[derive(Default)]
struct AncestorMemo(Mutex<HashMap<ChunkCoord, SharedChunk>>);

impl AncestorMemo {
    fn get(&self, inner: &Arc<Inner>, chunk: ChunkCoord) -> SharedChunk {
        let mut memo = self.0.lock().unwrap_or_else(|e| e.into_inner());
        memo.entry(chunk)
            .or_insert_with(|| {
                let inner = Arc::clone(inner);
                async move { inner.fetch_chunk(chunk).await }.boxed().shared()
            })
            .clone()
    }
}
