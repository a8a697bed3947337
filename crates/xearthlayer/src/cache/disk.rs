//! The disk tier: one file per texture under
//! `<base>/<provider>/<format>/<zoom>/<row>_<col>.xel`, bounded by bytes.
//!
//! A texture is often built in parts (X-Plane reads most at low resolution
//! only), so a file holds the parts built so far: a 16-byte file header
//! naming the format, then records of (offset, length, CRC-32, bytes), each
//! appended with one write as its part is finished. A new file is created
//! under a temporary name and renamed into place, so a crash never leaves a
//! headless file under a real name; a torn or corrupt record fails its
//! checks on load and is cut off, so nothing half-written is ever served.
//! The index of what is on disk lives in memory, is built by one directory
//! scan at start (names and sizes, no reads), and drives least-recently-used
//! eviction on a background thread whenever the bound is exceeded. It also
//! knows which byte ranges each file holds once this process has written or
//! loaded it ([`Held`]); a file known only from the scan holds "unknown".
//!
//! Several processes may share the folder at once (two `start`s, a
//! `prefetch` beside a flight). Every access to a file holds an advisory
//! lock on it (`flock`): appends and the cutting of a damaged tail hold it
//! exclusively, loads hold it shared, and eviction skips a file someone
//! holds. So a load never sees a record half-written by another process, and
//! a tail is cut only when nobody can be writing it. A new file appears
//! under its real name by a link that fails if the name exists, so two
//! creators never replace each other's records.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::held::Held;
use super::TextureKey;
use crate::dds::layout::{self, DdsFormat};
use crate::log_limit::LogLimit;
use crate::metrics::Counter;

/// Tries of an append whose file is evicted under it each time.
const APPEND_ATTEMPTS: usize = 3;
/// Evict down to this share of the capacity, so eviction runs rarely.
const EVICT_TO: f64 = 0.9;
const TEMP_SUFFIX: &str = ".partial";
/// A temp file lives for the milliseconds its creator takes to write a
/// header and link it into place; one this old was left by a crash.
const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);
const FILE_MAGIC: &[u8; 8] = b"XELCACHE";
const FILE_VERSION: u8 = 1;
const FILE_HEADER_LEN: usize = 16;
const RECORD_MAGIC: &[u8; 4] = b"XSEG";
const RECORD_HEADER_LEN: usize = 20;

#[derive(Debug, Clone)]
struct Entry {
    size: u64,
    last_used: SystemTime,
    held: Held,
}

#[derive(Debug, Default)]
struct Index {
    entries: HashMap<TextureKey, Entry>,
    total: u64,
}

impl Index {
    fn insert(&mut self, key: TextureKey, entry: Entry) {
        let size = entry.size;
        if let Some(old) = self.entries.insert(key, entry) {
            self.total -= old.size;
        }
        self.total += size;
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
    /// One eviction at a time in this process (a background one and an
    /// asked-for one would each skip the files the other holds locked).
    eviction: Mutex<()>,
    /// Files read whole by [`DiskCache::load`] (each up to a texture's size).
    loads: Counter,
    write_warnings: LogLimit,
}

impl DiskCache {
    /// Opens (creating if needed) the cache for one provider and format and
    /// indexes what is there. Blocking: call from a blocking context.
    pub fn open(
        base: &Path,
        provider: &str,
        format: DdsFormat,
        capacity: u64,
    ) -> io::Result<Arc<Self>> {
        let dir = base.join(provider).join(format.name());
        fs::create_dir_all(&dir)?;
        let started = Instant::now();
        // A large cache takes seconds to list: on a runtime's worker
        // thread, let the runtime move its other tasks elsewhere meanwhile.
        let index = match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| scan(&dir))?
            }
            _ => scan(&dir)?,
        };
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
            eviction: Mutex::new(()),
            loads: Counter::default(),
            write_warnings: LogLimit::default(),
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
            .join(format!("{}_{}.xel", key.row, key.col))
    }

    /// Whether every byte of `range` past the DDS header (which is never
    /// stored) is known to be in the texture's file: the file was written
    /// or loaded by this process and its records cover the range. A file
    /// known only from the start-up scan holds nothing known.
    pub fn holds(&self, key: &TextureKey, range: Range<u64>) -> bool {
        let range = range.start.max(layout::HEADER_LEN)..range.end;
        self.lock()
            .entries
            .get(key)
            .is_some_and(|e| e.held.covers(range))
    }

    /// Files read by [`DiskCache::load`] so far.
    pub fn loads(&self) -> u64 {
        self.loads.get()
    }

    /// The parts of the texture stored so far, as (file offset, bytes).
    /// A file with a bad header is deleted; records after a bad one are cut
    /// off. `None` when nothing valid is stored.
    pub async fn load(self: &Arc<Self>, key: TextureKey) -> Option<Vec<(u64, Bytes)>> {
        if !self.lock().entries.contains_key(&key) {
            return None;
        }
        self.loads.incr();
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || this.load_checked(key))
            .await
            .ok()
            .flatten()
    }

    fn load_checked(&self, key: TextureKey) -> Option<Vec<(u64, Bytes)>> {
        let path = self.path(&key);
        let Ok(file) = fs::OpenOptions::new().read(true).write(true).open(&path) else {
            self.lock().remove(&key);
            return None;
        };
        let mut data = Vec::new();
        {
            let _shared = FileLock::shared(&file).ok()?;
            (&file).read_to_end(&mut data).ok()?;
        }
        let data = Bytes::from(data);
        let (records, good_len) = parse_records(&data, self.format);
        if good_len < data.len() {
            // Cut the damaged tail (or drop a file with nothing valid),
            // unless it grew meanwhile: a writer of another process was
            // appending when we read.
            if let Ok(_exclusive) = FileLock::exclusive(&file) {
                if file.metadata().is_ok_and(|m| m.len() == data.len() as u64) {
                    if records.is_empty() {
                        tracing::warn!(path = %path.display(), "dropping an invalid cache file");
                        let _ = fs::remove_file(&path);
                        self.lock().remove(&key);
                    } else {
                        tracing::warn!(path = %path.display(), good_len, "cutting a damaged cache file");
                        let _ = file.set_len(good_len as u64);
                    }
                }
            }
        }
        if records.is_empty() {
            return None;
        }
        let now = SystemTime::now();
        // Recency survives restarts through the file's mtime.
        let _ = file.set_modified(now);
        let held = Held::of(records.iter().map(|(o, b)| (*o, b.len() as u64)));
        self.lock().insert(
            key,
            Entry {
                size: good_len as u64,
                last_used: now,
                held,
            },
        );
        Some(records)
    }

    /// Appends finished parts of a texture. Errors are logged, never fatal:
    /// the cache is an optimisation.
    pub async fn append(self: &Arc<Self>, key: TextureKey, parts: Vec<(u64, Bytes)>) {
        let this = Arc::clone(self);
        let stored = tokio::task::spawn_blocking(move || this.append_records(key, &parts)).await;
        match stored {
            Ok(Ok(())) => self.evict_if_needed(),
            Ok(Err(e)) => {
                // A full disk fails every part: say it once in a while.
                if let Some(held_back) = self.write_warnings.check() {
                    tracing::warn!(error = %e, held_back, "could not write a texture to the disk cache");
                }
            }
            Err(e) => tracing::warn!(error = %e, "disk cache write task failed"),
        }
    }

    fn append_records(&self, key: TextureKey, parts: &[(u64, Bytes)]) -> io::Result<()> {
        let path = self.path(&key);
        // An eviction (here or in another process) may unlink the file
        // between our open and our lock: then start again on a new file.
        for _ in 0..APPEND_ATTEMPTS {
            let created = !path.exists() && self.create_file(&key, &path)?;
            let file = match fs::OpenOptions::new().append(true).open(&path) {
                Ok(file) => file,
                // Evicted since we looked.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if self.append_locked(key, &file, created, parts)? {
                return Ok(());
            }
        }
        Err(io::Error::other(
            "the cache file was evicted while being appended to, again and again",
        ))
    }

    /// Appends `parts` to `file` (the texture's file, opened for append)
    /// and indexes them; `false` if the file was evicted (unlinked) before
    /// the lock was taken, and nothing was written. Eviction unlinks only
    /// under the same lock, so once held, the file stays.
    fn append_locked(
        &self,
        key: TextureKey,
        file: &fs::File,
        created: bool,
        parts: &[(u64, Bytes)],
    ) -> io::Result<bool> {
        use std::os::unix::fs::MetadataExt as _;
        let size = {
            let _exclusive = FileLock::exclusive(file)?;
            if file.metadata()?.nlink() == 0 {
                return Ok(false);
            }
            for (offset, bytes) in parts {
                // The header, then the part's own buffer: no copy of it.
                (&*file).write_all(&record_header(*offset, bytes))?;
                (&*file).write_all(bytes)?;
            }
            file.metadata()?.len()
        };
        let added = parts.iter().map(|(o, b)| (*o, b.len() as u64));
        let mut index = self.lock();
        // A file this process created holds what it wrote; one it knew
        // holds that and more; one another process made (or only the scan
        // saw) holds records never read here.
        let held = if created {
            Held::of(added)
        } else {
            index.entries.get_mut(&key).map_or(Held::Unknown, |entry| {
                entry.held.add(added);
                std::mem::take(&mut entry.held)
            })
        };
        index.insert(
            key,
            Entry {
                size,
                last_used: SystemTime::now(),
                held,
            },
        );
        Ok(true)
    }

    /// A new file holding only the file header, renamed into place.
    /// `false` when another writer created it first (theirs is kept).
    fn create_file(&self, key: &TextureKey, path: &Path) -> io::Result<bool> {
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
            file.write_all(&file_header(self.format))?;
            // Another writer may have created it meanwhile: keep theirs.
            match fs::hard_link(&temp, path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            }
        })();
        let _ = fs::remove_file(&temp);
        result
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
    /// Blocking: call from a blocking context.
    pub fn evict(&self) {
        // Held across the file work on purpose: eviction runs on a
        // blocking thread, and nothing else takes this lock.
        let _one_at_a_time = self.eviction.lock().unwrap_or_else(|e| e.into_inner());
        let target = (self.capacity as f64 * EVICT_TO) as u64;
        let mut victims: Vec<(TextureKey, SystemTime)> = {
            let index = self.lock();
            if index.total <= self.capacity {
                return;
            }
            index
                .entries
                .iter()
                .map(|(k, e)| (*k, e.last_used))
                .collect()
        };
        victims.sort_by_key(|(_, last_used)| *last_used);
        let mut removed = 0usize;
        for (key, _) in victims {
            if self.lock().total <= target {
                break;
            }
            let path = self.path(&key);
            // A file someone is writing or reading now is not evicted.
            if let Ok(file) = fs::File::open(&path) {
                let Ok(_exclusive) = FileLock::try_exclusive(&file) else {
                    continue;
                };
                if let Err(e) = fs::remove_file(&path) {
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

fn file_header(format: DdsFormat) -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[..8].copy_from_slice(FILE_MAGIC);
    h[8] = FILE_VERSION;
    h[9] = match format {
        DdsFormat::Bc1 => 1,
        DdsFormat::Bc3 => 3,
    };
    h
}

fn record_header(offset: u64, bytes: &[u8]) -> [u8; RECORD_HEADER_LEN] {
    let mut header = [0u8; RECORD_HEADER_LEN];
    header[..4].copy_from_slice(RECORD_MAGIC);
    header[4..12].copy_from_slice(&offset.to_le_bytes());
    header[12..16].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
    header[16..].copy_from_slice(&crc32fast::hash(bytes).to_le_bytes());
    header
}

/// The valid records of a file and the length up to the last valid one.
/// A record must lie inside the texture's data; one that repeats bytes an
/// earlier record holds (two processes stored the same part) is skipped,
/// not taken for damage. The records share `data`'s one buffer (no copies).
fn parse_records(data: &Bytes, format: DdsFormat) -> (Vec<(u64, Bytes)>, usize) {
    if data.len() < FILE_HEADER_LEN || data[..FILE_HEADER_LEN] != file_header(format) {
        return (Vec::new(), 0);
    }
    let size = layout::file_size(format);
    let mut records: Vec<(u64, Bytes)> = Vec::new();
    let mut at = FILE_HEADER_LEN;
    while let Some(record) = parse_record(data, at, size) {
        let (offset, body, next) = record;
        let end = offset + body.len() as u64;
        let repeats = records
            .iter()
            .any(|(o, b)| offset < o + b.len() as u64 && *o < end);
        if !repeats {
            records.push((offset, body));
        }
        at = next;
    }
    (records, at)
}

/// The record at `at`: its file offset, its bytes and where the next record
/// starts, if it is whole, checked and inside a file of `size` bytes. All
/// arithmetic on what the file says is checked: a corrupt length is a bad
/// record, never a wrap-around.
fn parse_record(data: &Bytes, at: usize, size: u64) -> Option<(u64, Bytes, usize)> {
    let h = data.get(at..at.checked_add(RECORD_HEADER_LEN)?)?;
    if &h[..4] != RECORD_MAGIC {
        return None;
    }
    let offset = u64::from_le_bytes(h[4..12].try_into().ok()?);
    let len = u32::from_le_bytes(h[12..16].try_into().ok()?);
    let crc = u32::from_le_bytes(h[16..20].try_into().ok()?);
    let body_start = at + RECORD_HEADER_LEN;
    let body_end = body_start.checked_add(usize::try_from(len).ok()?)?;
    let body = data.get(body_start..body_end)?;
    let inside = offset >= layout::HEADER_LEN
        && offset
            .checked_add(u64::from(len))
            .is_some_and(|end| end <= size);
    (inside && crc32fast::hash(body) == crc)
        .then(|| (offset, data.slice(body_start..body_end), body_end))
}

/// An advisory lock on a whole file, released on drop.
struct FileLock<'a>(&'a fs::File);

impl<'a> FileLock<'a> {
    fn shared(file: &'a fs::File) -> io::Result<Self> {
        Self::take(file, libc::LOCK_SH)
    }

    fn exclusive(file: &'a fs::File) -> io::Result<Self> {
        Self::take(file, libc::LOCK_EX)
    }

    fn try_exclusive(file: &'a fs::File) -> io::Result<Self> {
        Self::take(file, libc::LOCK_EX | libc::LOCK_NB)
    }

    fn take(file: &'a fs::File, operation: i32) -> io::Result<Self> {
        // SAFETY: flock on a file descriptor this `File` owns.
        if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
            Ok(FileLock(file))
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        // SAFETY: as above; unlocking cannot fail in a way we could act on.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Builds the index from file names and metadata alone; deletes temp files
/// left behind by a crash. Other processes sharing the folder work on
/// meanwhile: a file (or a zoom folder) that vanishes under the scan was
/// evicted by one of them and is skipped, and a temp file is deleted only
/// once it is too old to be anyone's creation in progress.
fn scan(dir: &Path) -> io::Result<Index> {
    let mut index = Index::default();
    for zoom_dir in fs::read_dir(dir)? {
        let zoom_dir = zoom_dir?;
        let Some(zoom) = zoom_dir
            .file_name()
            .to_str()
            .and_then(|z| z.parse::<u8>().ok())
        else {
            continue;
        };
        match zoom_dir.file_type() {
            Ok(kind) if kind.is_dir() => {}
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
        match fs::read_dir(zoom_dir.path()) {
            Ok(files) => index_zoom_dir(&mut index, zoom, files, SystemTime::now())?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(index)
}

/// Indexes the files of one zoom folder (see [`scan`]); `now` dates the
/// temp files.
fn index_zoom_dir(
    index: &mut Index,
    zoom: u8,
    files: impl IntoIterator<Item = io::Result<fs::DirEntry>>,
    now: SystemTime,
) -> io::Result<()> {
    for file in files {
        let file = match file {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let name = file.file_name();
        let Some(name) = name.to_str() else { continue };
        let meta = match file.metadata() {
            Ok(meta) => meta,
            // Evicted by another process since the listing.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if name.ends_with(TEMP_SUFFIX) {
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok());
            if age.is_some_and(|age| age > STALE_TEMP_AGE) {
                let _ = fs::remove_file(file.path());
            }
            continue;
        }
        let Some((row, col)) = name
            .strip_suffix(".xel")
            .and_then(|stem| stem.split_once('_'))
            .and_then(|(r, c)| Some((r.parse().ok()?, c.parse().ok()?)))
        else {
            continue;
        };
        index.insert(
            TextureKey { zoom, row, col },
            Entry {
                size: meta.len(),
                last_used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                held: Held::Unknown,
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_record(offset: u64, bytes: &[u8]) -> Vec<u8> {
        [&record_header(offset, bytes)[..], bytes].concat()
    }

    fn parts(fill: u8) -> Vec<(u64, Bytes)> {
        vec![
            (128, Bytes::from(vec![fill; 5000])),
            (
                layout::level_offset(DdsFormat::Bc1, 4),
                Bytes::from(vec![fill; 300]),
            ),
        ]
    }

    fn key(row: u32) -> TextureKey {
        TextureKey {
            zoom: 16,
            row,
            col: 32,
        }
    }

    fn open(dir: &Path, capacity: u64) -> Arc<DiskCache> {
        DiskCache::open(dir, "custom", DdsFormat::Bc1, capacity).unwrap()
    }

    #[tokio::test]
    async fn round_trips_appends_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let cache = open(dir.path(), 1 << 30);
        assert!(cache.load(key(16)).await.is_none());
        let p = parts(7);
        cache.append(key(16), p[..1].to_vec()).await;
        cache.append(key(16), p[1..].to_vec()).await;
        assert_eq!(cache.load(key(16)).await.unwrap(), p);
        drop(cache);
        let reopened = open(dir.path(), 1 << 30);
        assert_eq!(reopened.stats().entries, 1);
        assert_eq!(reopened.load(key(16)).await.unwrap(), p);
        // A BC3 cache does not take BC1 files.
        let bc3 = DiskCache::open(dir.path(), "custom", DdsFormat::Bc3, 1 << 30).unwrap();
        assert!(bc3.load(key(16)).await.is_none());
    }

    #[tokio::test]
    async fn torn_and_corrupt_records_are_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let cache = open(dir.path(), 1 << 30);
        cache.append(key(0), parts(1)).await;
        cache.append(key(16), parts(1)).await;
        cache.append(key(32), parts(1)).await;
        // Torn second record: the first survives.
        let torn = cache.path(&key(0));
        let len = fs::metadata(&torn).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&torn)
            .unwrap()
            .set_len(len - 10)
            .unwrap();
        assert_eq!(cache.load(key(0)).await.unwrap(), parts(1)[..1].to_vec());
        // A flipped byte in the first record's data: nothing valid remains.
        let corrupt = cache.path(&key(16));
        let mut bytes = fs::read(&corrupt).unwrap();
        bytes[FILE_HEADER_LEN + RECORD_HEADER_LEN + 10] ^= 0xFF;
        fs::write(&corrupt, bytes).unwrap();
        assert!(cache.load(key(16)).await.is_none());
        assert!(!corrupt.exists());
        // A file truncated into its header.
        let short = cache.path(&key(32));
        fs::OpenOptions::new()
            .write(true)
            .open(&short)
            .unwrap()
            .set_len(8)
            .unwrap();
        assert!(cache.load(key(32)).await.is_none());
        assert_eq!(cache.stats().entries, 1);
    }

    #[tokio::test]
    async fn evicts_least_recently_used_beyond_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let one = (FILE_HEADER_LEN + 2 * RECORD_HEADER_LEN + 5300) as u64;
        let cache = open(dir.path(), 3 * one);
        for row in 0..3 {
            cache.append(key(row * 16), parts(0)).await;
        }
        // Touch the oldest so the second becomes least recently used.
        assert!(cache.load(key(0)).await.is_some());
        cache.append(key(48), parts(0)).await;
        cache.evict();
        let stats = cache.stats();
        assert!(stats.bytes <= 3 * one, "{stats:?}");
        assert!(cache.load(key(0)).await.is_some(), "recently used survives");
        assert!(
            cache.load(key(16)).await.is_none(),
            "least recently used goes"
        );
        assert!(cache.load(key(48)).await.is_some());
    }

    #[tokio::test]
    async fn knows_the_ranges_of_files_it_wrote_or_loaded_not_of_scanned_ones() {
        let dir = tempfile::tempdir().unwrap();
        let cache = open(dir.path(), 1 << 30);
        let p = parts(5);
        let low = layout::level_offset(DdsFormat::Bc1, 4);
        let header_read = 0..5128;
        let low_read = low..low + 300;
        assert!(!cache.holds(&key(0), header_read.clone()), "nothing yet");
        cache.append(key(0), p[..1].to_vec()).await;
        assert!(cache.holds(&key(0), header_read.clone()));
        assert!(!cache.holds(&key(0), 0..5129), "one byte past the record");
        assert!(!cache.holds(&key(0), low_read.clone()), "not written yet");
        cache.append(key(0), p[1..].to_vec()).await;
        assert!(cache.holds(&key(0), low_read.clone()));
        assert!(!cache.holds(&key(0), 128..low + 300), "the gap between");

        // After a restart the scan knows the file, not what it holds.
        drop(cache);
        let reopened = open(dir.path(), 1 << 30);
        assert!(!reopened.holds(&key(0), header_read.clone()));
        assert!(
            !reopened.holds(&key(0), 0..128),
            "unknown even for the header"
        );
        // Appending to a file only the scan saw keeps it unknown.
        reopened
            .append(key(0), vec![(20_000, Bytes::from(vec![1u8; 64]))])
            .await;
        assert!(!reopened.holds(&key(0), 20_000..20_064));
        // Loading it reads every record: then it is known.
        assert_eq!(reopened.load(key(0)).await.unwrap().len(), 3);
        assert!(reopened.holds(&key(0), header_read));
        assert!(reopened.holds(&key(0), low_read));
        assert!(reopened.holds(&key(0), 20_000..20_064));
        assert!(!reopened.holds(&key(0), 5128..20_000));
    }

    #[tokio::test]
    async fn a_file_another_process_created_is_unknown_until_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let first = open(dir.path(), 1 << 30);
        let second = open(dir.path(), 1 << 30);
        first.append(key(0), parts(1)[..1].to_vec()).await;
        // The second appends to a file it did not create nor read.
        second.append(key(0), parts(1)[1..].to_vec()).await;
        let low = layout::level_offset(DdsFormat::Bc1, 4);
        assert!(!second.holds(&key(0), low..low + 300));
        assert!(first.holds(&key(0), 0..5128));
        assert!(
            !first.holds(&key(0), low..low + 300),
            "the other's record is not known here"
        );
        assert!(second.load(key(0)).await.is_some());
        assert!(second.holds(&key(0), 0..5128) && second.holds(&key(0), low..low + 300));
    }

    #[tokio::test]
    async fn a_cut_tail_is_no_longer_held() {
        let dir = tempfile::tempdir().unwrap();
        let cache = open(dir.path(), 1 << 30);
        cache.append(key(0), parts(2)).await;
        let low = layout::level_offset(DdsFormat::Bc1, 4);
        assert!(cache.holds(&key(0), low..low + 300));
        let path = cache.path(&key(0));
        let len = fs::metadata(&path).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 10)
            .unwrap();
        assert_eq!(cache.load(key(0)).await.unwrap().len(), 1);
        assert!(!cache.holds(&key(0), low..low + 300));
        assert!(cache.holds(&key(0), 128..5128));
    }

    #[test]
    fn scan_skips_foreign_files_and_removes_stale_temp_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let zoom = dir.path().join("custom/bc1/16");
        fs::create_dir_all(&zoom).unwrap();
        fs::write(zoom.join("notes.txt"), b"x").unwrap();
        let crashed = zoom.join(format!(".1_2.3.4{TEMP_SUFFIX}"));
        fs::write(&crashed, b"x").unwrap();
        fs::File::options()
            .write(true)
            .open(&crashed)
            .unwrap()
            .set_modified(SystemTime::now() - 2 * STALE_TEMP_AGE)
            .unwrap();
        // Another process is creating this one right now.
        let live = zoom.join(format!(".1_3.5.6{TEMP_SUFFIX}"));
        fs::write(&live, b"x").unwrap();
        fs::write(zoom.join("16_32.xel"), b"x").unwrap();
        let cache = open(dir.path(), 1 << 30);
        assert_eq!(cache.stats().entries, 1);
        assert!(!crashed.exists(), "left by a crash");
        assert!(live.exists(), "another process's file in the making");
    }

    #[test]
    fn a_file_evicted_by_another_process_during_the_scan_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["16_32.xel", "32_32.xel", "48_32.xel"] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        // The listing is taken, then another process evicts a file.
        let listed: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        fs::remove_file(dir.path().join("32_32.xel")).unwrap();
        let mut index = Index::default();
        index_zoom_dir(&mut index, 16, listed, SystemTime::now()).unwrap();
        assert_eq!(index.entries.len(), 2);
        assert!(!index.entries.contains_key(&key(32)));
    }

    #[tokio::test]
    async fn a_repeated_record_does_not_cut_off_the_ones_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let cache = open(dir.path(), 1 << 30);
        let p = parts(3);
        cache.append(key(0), p[..1].to_vec()).await;
        // Another process stored the same part, then the next one.
        cache.append(key(0), p[..1].to_vec()).await;
        cache.append(key(0), p[1..].to_vec()).await;
        assert_eq!(cache.load(key(0)).await.unwrap(), p);
        let len = fs::metadata(cache.path(&key(0))).unwrap().len();
        assert_eq!(
            len as usize,
            FILE_HEADER_LEN + 3 * RECORD_HEADER_LEN + 2 * 5000 + 300,
            "nothing was cut"
        );
    }

    #[test]
    fn lengths_and_offsets_from_disk_are_checked() {
        let size = layout::file_size(DdsFormat::Bc1);
        let mut file = file_header(DdsFormat::Bc1).to_vec();
        let good = encode_record(128, &[1u8; 64]);
        file.extend_from_slice(&good);
        // An offset that would wrap past u64::MAX with its length.
        let mut wrapping = encode_record(u64::MAX - 10, &[2u8; 64]);
        file.extend_from_slice(&wrapping);
        let data = Bytes::from(file.clone());
        let (records, good_len) = parse_records(&data, DdsFormat::Bc1);
        assert_eq!(records.len(), 1);
        assert_eq!(good_len, FILE_HEADER_LEN + good.len());
        // A length far past the end of the file.
        wrapping[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        file.truncate(good_len);
        file.extend_from_slice(&wrapping);
        let (records, _) = parse_records(&Bytes::from(file), DdsFormat::Bc1);
        assert_eq!(records.len(), 1);
        // A record that ends past the texture.
        let past = encode_record(size - 10, &[3u8; 64]);
        assert!(parse_record(&Bytes::from(past), 0, size).is_none());
    }

    #[test]
    fn two_caches_on_one_folder_never_serve_torn_records() {
        // Two caches opened on one folder stand for two processes: the file
        // locks are per open file, so they exclude each other the same way.
        let dir = tempfile::tempdir().unwrap();
        let writer = open(dir.path(), 1 << 30);
        let reader = open(dir.path(), 1 << 30);
        // Big records make a torn read likely if the locks did not hold.
        let records: Vec<(u64, Bytes)> = (0..24u64)
            .map(|i| (128 + i * 200_000, Bytes::from(vec![i as u8 + 1; 200_000])))
            .collect();
        let expected = records.clone();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for record in records {
                    writer.append_records(key(0), &[record]).unwrap();
                }
            });
            scope.spawn(|| {
                for _ in 0..200 {
                    // The reader's index learns of the file from the writer's folder.
                    reader.lock().insert(
                        key(0),
                        Entry {
                            size: 0,
                            last_used: SystemTime::now(),
                            held: Held::Unknown,
                        },
                    );
                    if let Some(loaded) = reader.load_checked(key(0)) {
                        assert_eq!(
                            loaded[..],
                            expected[..loaded.len()],
                            "only whole records, in order"
                        );
                    }
                }
            });
        });
        assert_eq!(reader.load_checked(key(0)).unwrap(), expected);
    }

    #[test]
    fn an_append_never_writes_into_a_file_evicted_under_it() {
        let dir = tempfile::tempdir().unwrap();
        let cache = open(dir.path(), 1);
        cache.append_records(key(0), &parts(1)).unwrap();
        let path = cache.path(&key(0));
        // An appender opened the file, then an eviction took it before the
        // appender's lock.
        let opened = fs::OpenOptions::new().append(true).open(&path).unwrap();
        cache.evict();
        assert!(!path.exists());
        assert_eq!(cache.stats().entries, 0);
        let written = cache
            .append_locked(key(0), &opened, false, &parts(2))
            .unwrap();
        assert!(!written, "nothing goes into the unlinked file");
        assert_eq!(cache.stats().entries, 0, "nor is it indexed again");
        // The append as a whole starts again on a new file.
        cache.append_records(key(0), &parts(2)).unwrap();
        assert_eq!(cache.load_checked(key(0)).unwrap(), parts(2));
    }

    #[tokio::test]
    async fn a_write_failing_again_and_again_is_warned_of_once_in_a_while() {
        let dir = tempfile::tempdir().unwrap();
        let cache = open(dir.path(), 1 << 30);
        // The zoom folder cannot be made: every append fails.
        fs::write(cache.dir().join("16"), b"in the way").unwrap();
        let log = Arc::new(Mutex::new(Vec::<u8>::new()));
        let writer = {
            let log = Arc::clone(&log);
            move || LogTo(Arc::clone(&log))
        };
        let subscriber = tracing_subscriber::fmt()
            .with_writer(writer)
            .with_ansi(false)
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        for row in 0..50 {
            cache.append(key(row * 16), parts(1)).await;
        }
        let log = String::from_utf8(log.lock().unwrap().clone()).unwrap();
        assert_eq!(log.matches("could not write a texture").count(), 1, "{log}");
    }

    /// A log writer into a shared buffer.
    struct LogTo(Arc<Mutex<Vec<u8>>>);

    impl Write for LogTo {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn eviction_skips_a_file_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let cache = open(dir.path(), 1);
        cache.append_records(key(0), &parts(1)).unwrap();
        let path = cache.path(&key(0));
        let busy = fs::File::open(&path).unwrap();
        let held = FileLock::exclusive(&busy).unwrap();
        cache.evict();
        assert!(path.exists(), "a file being written is not evicted");
        drop(held);
        cache.evict();
        assert!(!path.exists());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Fuzz: any file contents, after a good header or not, give only
        /// checked records inside the texture, and a good length within
        /// the file.
        #[test]
        fn fuzz_cache_records(
            header in proptest::prelude::any::<bool>(),
            records in proptest::collection::vec(
                (proptest::prelude::any::<u64>(), proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), proptest::prelude::any::<bool>()),
                0..6,
            ),
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            let mut file = if header { file_header(DdsFormat::Bc1).to_vec() } else { Vec::new() };
            for (offset, body, valid) in &records {
                // Some offsets inside the texture, some anywhere.
                let offset = if *valid { 128 + offset % 11_000_000 } else { *offset };
                file.extend_from_slice(&encode_record(offset, body));
            }
            file.extend_from_slice(&tail);
            let data = Bytes::from(file);
            let (found, good_len) = parse_records(&data, DdsFormat::Bc1);
            proptest::prop_assert!(good_len <= data.len());
            let size = layout::file_size(DdsFormat::Bc1);
            for (offset, bytes) in found {
                proptest::prop_assert!(offset >= layout::HEADER_LEN);
                proptest::prop_assert!(offset + bytes.len() as u64 <= size);
            }
        }
    }
}
