//! The disk tier: one DDS file per texture under
//! `<base>/<provider>/<format>/<zoom>/<row>_<col>.dds`, bounded by bytes.
//!
//! Writes go to a temporary file that is renamed into place, so a crash never
//! leaves a half file under a real name. Every read checks the size and the
//! header; a bad file is deleted and reported as a miss so the texture is
//! built again. The index of what is on disk lives in memory, is built by one
//! directory scan at start (no per-file reads), and drives least-recently-used
//! eviction on a background thread whenever the bound is exceeded.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use bytes::Bytes;

use super::TextureKey;
use crate::dds::layout::{self, DdsFormat};

/// Evict down to this share of the capacity, so eviction runs rarely.
const EVICT_TO: f64 = 0.9;
const TEMP_SUFFIX: &str = ".partial";

#[derive(Debug, Clone, Copy)]
struct Entry {
    size: u64,
    last_used: SystemTime,
}

#[derive(Debug, Default)]
struct Index {
    entries: HashMap<TextureKey, Entry>,
    total: u64,
}

impl Index {
    fn insert(&mut self, key: TextureKey, entry: Entry) {
        if let Some(old) = self.entries.insert(key, entry) {
            self.total -= old.size;
        }
        self.total += entry.size;
    }

    fn remove(&mut self, key: &TextureKey) {
        if let Some(old) = self.entries.remove(key) {
            self.total -= old.size;
        }
    }
}

/// What a scan of the cache folder found.
#[derive(Debug, Clone, Copy)]
pub struct DiskCacheStats {
    pub entries: usize,
    pub bytes: u64,
    pub capacity: u64,
}

/// Finished textures on disk. Shared behind an `Arc`.
#[derive(Debug)]
pub struct DiskCache {
    dir: PathBuf,
    format: DdsFormat,
    capacity: u64,
    // Held only for map updates, never across I/O or an await.
    index: Mutex<Index>,
    evicting: AtomicBool,
}

impl DiskCache {
    /// Opens (creating if needed) the cache for one provider and format and
    /// indexes what is there. Blocking: call from a blocking context.
    pub fn open(base: &Path, provider: &str, format: DdsFormat, capacity: u64) -> io::Result<Arc<Self>> {
        let dir = base.join(provider).join(format.name());
        fs::create_dir_all(&dir)?;
        let started = Instant::now();
        let index = scan(&dir)?;
        tracing::info!(
            dir = %dir.display(),
            entries = index.entries.len(),
            bytes = index.total,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "disk cache indexed"
        );
        let cache = Arc::new(DiskCache {
            dir,
            format,
            capacity,
            index: Mutex::new(index),
            evicting: AtomicBool::new(false),
        });
        cache.evict_if_needed();
        Ok(cache)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn stats(&self) -> DiskCacheStats {
        let index = self.lock();
        DiskCacheStats {
            entries: index.entries.len(),
            bytes: index.total,
            capacity: self.capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        // A panic while holding the lock cannot leave the map inconsistent
        // beyond a stale total, so keep serving.
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn path(&self, key: &TextureKey) -> PathBuf {
        self.dir
            .join(key.zoom.to_string())
            .join(format!("{}_{}.dds", key.row, key.col))
    }

    /// The texture, if a valid file is cached. A file that fails the checks
    /// is deleted and reported as a miss.
    pub async fn get(self: &Arc<Self>, key: TextureKey) -> Option<Bytes> {
        if !self.lock().entries.contains_key(&key) {
            return None;
        }
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || this.read_checked(key))
            .await
            .ok()
            .flatten()
    }

    fn read_checked(&self, key: TextureKey) -> Option<Bytes> {
        let path = self.path(&key);
        let valid = fs::read(&path).ok().filter(|bytes| {
            bytes.len() as u64 == layout::file_size(self.format)
                && bytes[..layout::HEADER_LEN as usize] == layout::header(self.format)
        });
        match valid {
            Some(bytes) => {
                let now = SystemTime::now();
                // Recency survives restarts through the file's mtime.
                if let Ok(file) = fs::File::options().write(true).open(&path) {
                    let _ = file.set_modified(now);
                }
                if let Some(entry) = self.lock().entries.get_mut(&key) {
                    entry.last_used = now;
                }
                Some(Bytes::from(bytes))
            }
            None => {
                tracing::warn!(path = %path.display(), "dropping an invalid cache file");
                let _ = fs::remove_file(&path);
                self.lock().remove(&key);
                None
            }
        }
    }

    /// Stores a finished texture. Errors are logged, never fatal: the cache
    /// is an optimisation.
    pub async fn put(self: &Arc<Self>, key: TextureKey, bytes: Bytes) {
        let this = Arc::clone(self);
        let stored = tokio::task::spawn_blocking(move || this.write_atomic(key, &bytes)).await;
        match stored {
            Ok(Ok(())) => self.evict_if_needed(),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not write a texture to the disk cache"),
            Err(e) => tracing::warn!(error = %e, "disk cache write task failed"),
        }
    }

    fn write_atomic(&self, key: TextureKey, bytes: &[u8]) -> io::Result<()> {
        let path = self.path(&key);
        let parent = path.parent().expect("cache paths have a parent");
        fs::create_dir_all(parent)?;
        let temp = parent.join(format!(
            ".{}_{}.{}.{}{TEMP_SUFFIX}",
            key.row,
            key.col,
            std::process::id(),
            fastrand::u64(..)
        ));
        let result = (|| {
            let mut file = fs::File::create(&temp)?;
            file.write_all(bytes)?;
            fs::rename(&temp, &path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result?;
        self.lock().insert(
            key,
            Entry {
                size: bytes.len() as u64,
                last_used: SystemTime::now(),
            },
        );
        Ok(())
    }

    /// Starts a background eviction when over capacity (one at a time).
    fn evict_if_needed(self: &Arc<Self>) {
        if self.lock().total <= self.capacity || self.evicting.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = Arc::clone(self);
        let run = move || {
            this.evict();
            this.evicting.store(false, Ordering::Release);
        };
        // Inside a runtime the blocking pool does it; at open time, a thread.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn_blocking(run)),
            Err(_) => drop(std::thread::spawn(run)),
        }
    }

    /// Deletes least-recently-used files until under [`EVICT_TO`] of capacity.
    pub fn evict(&self) {
        let target = (self.capacity as f64 * EVICT_TO) as u64;
        let mut victims: Vec<(TextureKey, Entry)> = {
            let index = self.lock();
            if index.total <= self.capacity {
                return;
            }
            index.entries.iter().map(|(k, e)| (*k, *e)).collect()
        };
        victims.sort_by_key(|(_, e)| e.last_used);
        let mut removed = 0usize;
        for (key, _) in victims {
            if self.lock().total <= target {
                break;
            }
            match fs::remove_file(self.path(&key)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not evict a cache file");
                    continue;
                }
            }
            self.lock().remove(&key);
            removed += 1;
        }
        tracing::info!(removed, bytes = self.lock().total, "disk cache evicted");
    }

    /// Deletes every cached texture of this provider and format, calling
    /// `progress(done, total)` as it goes.
    pub fn clear(&self, mut progress: impl FnMut(usize, usize)) -> io::Result<()> {
        let keys: Vec<TextureKey> = self.lock().entries.keys().copied().collect();
        for (done, key) in keys.iter().enumerate() {
            match fs::remove_file(self.path(key)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            self.lock().remove(key);
            progress(done + 1, keys.len());
        }
        Ok(())
    }
}

/// Builds the index from file names and metadata alone; deletes temp files
/// left behind by a crash.
fn scan(dir: &Path) -> io::Result<Index> {
    let mut index = Index::default();
    for zoom_dir in fs::read_dir(dir)? {
        let zoom_dir = zoom_dir?;
        let Some(zoom) = zoom_dir.file_name().to_str().and_then(|z| z.parse::<u8>().ok()) else {
            continue;
        };
        if !zoom_dir.file_type()?.is_dir() {
            continue;
        }
        for file in fs::read_dir(zoom_dir.path())? {
            let file = file?;
            let name = file.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(TEMP_SUFFIX) {
                let _ = fs::remove_file(file.path());
                continue;
            }
            let Some((row, col)) = name
                .strip_suffix(".dds")
                .and_then(|stem| stem.split_once('_'))
                .and_then(|(r, c)| Some((r.parse().ok()?, c.parse().ok()?)))
            else {
                continue;
            };
            let meta = file.metadata()?;
            index.insert(
                TextureKey { zoom, row, col },
                Entry {
                    size: meta.len(),
                    last_used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                },
            );
        }
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_texture(format: DdsFormat, fill: u8) -> Bytes {
        let mut bytes = vec![fill; layout::file_size(format) as usize];
        bytes[..128].copy_from_slice(&layout::header(format));
        Bytes::from(bytes)
    }

    fn key(row: u32) -> TextureKey {
        TextureKey { zoom: 16, row, col: 32 }
    }

    #[tokio::test]
    async fn round_trips_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::open(dir.path(), "custom", DdsFormat::Bc1, 1 << 30).unwrap();
        assert!(cache.get(key(16)).await.is_none());
        let texture = valid_texture(DdsFormat::Bc1, 7);
        cache.put(key(16), texture.clone()).await;
        assert_eq!(cache.get(key(16)).await.unwrap(), texture);
        drop(cache);
        let reopened = DiskCache::open(dir.path(), "custom", DdsFormat::Bc1, 1 << 30).unwrap();
        assert_eq!(reopened.stats().entries, 1);
        assert_eq!(reopened.get(key(16)).await.unwrap(), texture);
    }

    #[tokio::test]
    async fn truncated_or_corrupt_files_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::open(dir.path(), "custom", DdsFormat::Bc1, 1 << 30).unwrap();
        cache.put(key(0), valid_texture(DdsFormat::Bc1, 1)).await;
        cache.put(key(16), valid_texture(DdsFormat::Bc1, 1)).await;
        let truncated = cache.path(&key(0));
        let file = fs::OpenOptions::new().write(true).open(&truncated).unwrap();
        file.set_len(1000).unwrap();
        let corrupt = cache.path(&key(16));
        let mut bytes = fs::read(&corrupt).unwrap();
        bytes[84..88].copy_from_slice(b"XXXX");
        fs::write(&corrupt, bytes).unwrap();

        assert!(cache.get(key(0)).await.is_none());
        assert!(cache.get(key(16)).await.is_none());
        assert!(!truncated.exists() && !corrupt.exists());
        assert_eq!(cache.stats().entries, 0);
    }

    #[tokio::test]
    async fn evicts_least_recently_used_beyond_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let size = layout::file_size(DdsFormat::Bc1);
        let cache = DiskCache::open(dir.path(), "custom", DdsFormat::Bc1, 3 * size).unwrap();
        for row in 0..3 {
            cache.put(key(row * 16), valid_texture(DdsFormat::Bc1, 0)).await;
        }
        // Touch the oldest so the second becomes least recently used.
        assert!(cache.get(key(0)).await.is_some());
        cache.put(key(48), valid_texture(DdsFormat::Bc1, 0)).await;
        cache.evict();
        let stats = cache.stats();
        assert!(stats.bytes <= 3 * size, "{stats:?}");
        assert!(cache.get(key(0)).await.is_some(), "recently used survives");
        assert!(cache.get(key(16)).await.is_none(), "least recently used goes");
        assert!(cache.get(key(48)).await.is_some());
    }

    #[test]
    fn scan_skips_foreign_files_and_removes_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let zoom = dir.path().join("custom/bc1/16");
        fs::create_dir_all(&zoom).unwrap();
        fs::write(zoom.join("notes.txt"), b"x").unwrap();
        fs::write(zoom.join(format!(".1_2.3.4{TEMP_SUFFIX}")), b"x").unwrap();
        fs::write(zoom.join("16_32.dds"), b"x").unwrap();
        let cache = DiskCache::open(dir.path(), "custom", DdsFormat::Bc1, 1 << 30).unwrap();
        assert_eq!(cache.stats().entries, 1);
        assert!(!zoom.join(format!(".1_2.3.4{TEMP_SUFFIX}")).exists());
    }
}
