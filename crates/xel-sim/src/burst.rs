//! Reading textures the way X-Plane does, through a real mount: stat, a
//! 64 KiB header read at offset 0, then either the low mip levels only
//! (distant terrain, most textures) or the whole file, from many threads at
//! once. Used by the demo, the scene-load benchmark and the mount tests.
//!
//! Plain blocking file I/O on OS threads, as X-Plane's loader threads do; a
//! short read or an I/O error is reported, never hidden.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use xearthlayer::dds::layout::{self, DdsFormat};

/// What one reader does with one texture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    /// Header read, then mip 4 and below.
    Low,
    /// Header read, then the whole file.
    Full,
}

/// A burst: which textures, how many readers, what share read fully.
#[derive(Debug, Clone)]
pub struct BurstConfig {
    pub readers: usize,
    /// Every n-th texture (by position) is read fully; 0 means none.
    pub full_every: usize,
    pub format: DdsFormat,
    /// Bytes per read call, as X-Plane's loader reads in pieces.
    pub read_size: usize,
}

impl Default for BurstConfig {
    fn default() -> Self {
        BurstConfig {
            readers: 64,
            full_every: 20,
            format: DdsFormat::Bc1,
            read_size: 1 << 20,
        }
    }
}

/// One texture's outcome.
#[derive(Debug, Clone)]
pub struct TextureRead {
    pub path: PathBuf,
    pub kind: ReadKind,
    /// From the start of the burst to this texture's first byte request.
    pub started: Duration,
    /// From its stat to its last byte.
    pub latency: Duration,
    pub bytes: u64,
}

/// The whole burst's outcome.
#[derive(Debug, Clone)]
pub struct BurstReport {
    pub wall: Duration,
    pub reads: Vec<TextureRead>,
}

impl BurstReport {
    /// Latency percentile (0..=100) over textures.
    pub fn percentile(&self, p: f64) -> Duration {
        let mut l: Vec<Duration> = self.reads.iter().map(|r| r.latency).collect();
        l.sort();
        if l.is_empty() {
            return Duration::ZERO;
        }
        let i = ((p / 100.0) * (l.len() - 1) as f64).round() as usize;
        l[i.min(l.len() - 1)]
    }

    pub fn bytes(&self) -> u64 {
        self.reads.iter().map(|r| r.bytes).sum()
    }

    /// Seconds from the start at which each texture finished, sorted.
    pub fn completion_times(&self) -> Vec<f64> {
        let mut t: Vec<f64> = self
            .reads
            .iter()
            .map(|r| (r.started + r.latency).as_secs_f64())
            .collect();
        t.sort_by(f64::total_cmp);
        t
    }
}

/// Reads `paths` the X-Plane way with `config.readers` threads. Fails on the
/// first short read, size mismatch or I/O error.
pub fn run_burst(paths: &[PathBuf], config: &BurstConfig) -> io::Result<BurstReport> {
    run_burst_with(paths, config, |_| {})
}

/// [`run_burst`], calling `on_read` as each texture is done (for progress).
pub fn run_burst_with(
    paths: &[PathBuf],
    config: &BurstConfig,
    on_read: impl Fn(&TextureRead) + Sync,
) -> io::Result<BurstReport> {
    let next = AtomicUsize::new(0);
    let reads = Mutex::new(Vec::with_capacity(paths.len()));
    let start = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..config.readers.max(1))
            .map(|_| {
                scope.spawn(|| -> io::Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = paths.get(i) else {
                            return Ok(());
                        };
                        let kind = if config.full_every > 0 && i.is_multiple_of(config.full_every) {
                            ReadKind::Full
                        } else {
                            ReadKind::Low
                        };
                        let started = start.elapsed();
                        let t = Instant::now();
                        let bytes = read_texture(path, kind, config)?;
                        let read = TextureRead {
                            path: path.clone(),
                            kind,
                            started,
                            latency: t.elapsed(),
                            bytes,
                        };
                        on_read(&read);
                        reads.lock().unwrap_or_else(|e| e.into_inner()).push(read);
                    }
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join()
                .unwrap_or_else(|_| Err(io::Error::other("reader thread panicked")))
        })
    })?;
    Ok(BurstReport {
        wall: start.elapsed(),
        reads: reads.into_inner().unwrap_or_else(|e| e.into_inner()),
    })
}

/// One texture: stat, header, then its levels. Returns bytes read.
pub fn read_texture(path: &Path, kind: ReadKind, config: &BurstConfig) -> io::Result<u64> {
    let size = layout::file_size(config.format);
    let meta = std::fs::metadata(path)?;
    if meta.len() != size {
        return Err(io::Error::other(format!(
            "{}: size {} before reading, expected {size}",
            path.display(),
            meta.len()
        )));
    }
    let file = File::open(path)?;
    let header_len = 64 << 10;
    let mut bytes = read_range(&file, path, 0, header_len, config.read_size)?;
    let from = match kind {
        ReadKind::Low => layout::level_offset(config.format, 4),
        ReadKind::Full => header_len,
    };
    bytes += read_range(&file, path, from, size - from, config.read_size)?;
    Ok(bytes)
}

/// Reads `len` bytes at `offset` in pieces, insisting on full lengths.
pub fn read_range(
    file: &File,
    path: &Path,
    offset: u64,
    len: u64,
    piece: usize,
) -> io::Result<u64> {
    let mut buf = vec![0u8; piece];
    let mut done = 0u64;
    while done < len {
        let want = (len - done).min(piece as u64) as usize;
        let got = file.read_at(&mut buf[..want], offset + done)?;
        if got != want {
            return Err(io::Error::other(format!(
                "{}: short read of {got} bytes at offset {} (asked {want})",
                path.display(),
                offset + done
            )));
        }
        done += got as u64;
    }
    Ok(done)
}
