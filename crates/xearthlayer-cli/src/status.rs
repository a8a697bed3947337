//! Plain-text status: a periodic line while serving and a summary on exit;
//! for benchmarks, the counters as `key=value` lines in a file.
//!
//! In a terminal the status is a live block redrawn in place (see
//! [`crate::screen`]); every line is cut to the terminal's width, read anew
//! at each redraw (a resize takes effect within a second), so that none
//! wraps.

use std::fmt::Write as _;
use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xearthlayer::fetch::ProviderState;
use xearthlayer::fs::{ErrorCounts, OverlayFs};
use xearthlayer::metrics::MetricsSnapshot;
use xearthlayer::texture::TextureService;

use crate::screen::{terminal_width, SCREEN};

/// One mount as the status view shows it.
pub struct MountView {
    pub mountpoint: PathBuf,
    pub fs: Arc<OverlayFs<TextureService>>,
}

/// More status lines from outside the service (prefetch), asked each time.
pub type ExtraLines = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// The status reporter of a serving command.
pub struct Reporter {
    task: tokio::task::JoinHandle<()>,
}

impl Reporter {
    /// Stops reporting; a live block stays on screen as it was last drawn,
    /// and later output goes below it.
    pub fn stop(self) {
        self.task.abort();
        SCREEN.release();
    }
}

/// Reports until stopped: in a terminal a live block redrawn every second,
/// otherwise (or with `--no-tui`) a log line every 10 s; `extra` lines
/// (prefetch) follow the service's.
pub fn spawn_reporter(
    service: TextureService,
    mounts: Vec<MountView>,
    live: bool,
    extra: ExtraLines,
) -> Reporter {
    let live = live && io::stdout().is_terminal();
    let every = Duration::from_secs(if live { 1 } else { 10 });
    let task = tokio::spawn(async move {
        let mut last = (Instant::now(), service.metrics().snapshot());
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = (Instant::now(), service.metrics().snapshot());
            let secs = now.0.duration_since(last.0).as_secs_f64().max(1e-9);
            if live {
                let width = terminal_width();
                let mut block = live_block(&last.1, &now.1, secs, &service, &mounts);
                for more in extra() {
                    let _ = writeln!(block, " {more}");
                }
                SCREEN.draw(&fit(&block, width), width);
            } else {
                tracing::info!("{}", line(&last.1, &now.1, secs, &service, &mounts));
                for provider in provider_lines(&service) {
                    tracing::info!("{provider}");
                }
                for more in extra() {
                    tracing::info!("{more}");
                }
            }
            last = now;
        }
    });
    Reporter { task }
}

/// Cuts every line of `block` to fewer than `width` columns (the last
/// column is left free: some terminals wrap as soon as it is written).
fn fit(block: &str, width: usize) -> String {
    let room = width.saturating_sub(1).max(1);
    let mut out = String::with_capacity(block.len());
    for line in block.lines() {
        out.push_str(&console::truncate_str(line, room, "…"));
        out.push('\n');
    }
    out
}

/// The live view: service-wide rates, the read-path economy, each mount.
/// Short lines, most telling first, so that 80 columns show what matters.
fn live_block(
    before: &MetricsSnapshot,
    now: &MetricsSnapshot,
    secs: f64,
    service: &TextureService,
    mounts: &[MountView],
) -> String {
    let rate = |a: u64, b: u64| (b - a) as f64 / secs;
    let hits = |a: u64, b: u64| b - a;
    let mut block = String::new();
    let _ = writeln!(
        block,
        "── XEarthLayer ── {} · {}",
        service.providers().describe(),
        service.format()
    );
    let _ = writeln!(
        block,
        " textures {:>5} in flight {:>7.1} parts/s   peak {}, {} seen",
        now.generations_in_flight,
        rate(before.units_built, now.units_built),
        now.peak_generations_in_flight,
        now.textures_touched
    );
    let work = service.work();
    let _ = writeln!(
        block,
        " work     {:>3} live +{:<3} waiting {:>3} background  reads: {} final, {} stand-ins ({:.1}%)",
        work.live_builds,
        work.live_builds_waiting,
        work.background_builds + work.background_builds_waiting,
        now.reads_final,
        now.reads_stood_in,
        stand_in_share(now)
    );
    let _ = writeln!(
        block,
        " chunks   {:>5} in flight {:>7.0} /s  {:>5.1} errors/s  {:.1} per texture",
        now.requests_in_flight,
        rate(before.chunk_requests, now.chunk_requests),
        rate(failures(before), failures(now)),
        now.chunk_requests as f64 / now.textures_touched.max(1) as f64
    );
    let _ = writeln!(
        block,
        " cache    {:>5.0} memory/s {:>5.0} disk/s hits   memory {} MiB, process {} MiB",
        hits(before.memory_hits, now.memory_hits) as f64 / secs,
        hits(before.disk_hits, now.disk_hits) as f64 / secs,
        service.memory_bytes() >> 20,
        resident_mib()
    );
    let levels: Vec<String> = now
        .reads_by_level
        .iter()
        .enumerate()
        .filter(|(_, &n)| n > 0)
        .map(|(l, n)| format!("{l}:{n}"))
        .collect();
    let _ = writeln!(
        block,
        " economy  built {} MiB for {} MiB read; reads by mip {}",
        now.bytes_produced >> 20,
        now.bytes_read >> 20,
        if levels.is_empty() {
            "-".to_string()
        } else {
            levels.join(" ")
        }
    );
    for provider in provider_lines(service) {
        let _ = writeln!(block, " {provider}");
    }
    let _ = writeln!(block, " fuse     errors {}", fuse_errors(mounts));
    for mount in mounts {
        let st = mount.fs.stats();
        // Counts first, then the name: a cut line loses the name's end.
        let name = mount.mountpoint.file_name().unwrap_or_default();
        let _ = writeln!(
            block,
            " mount {:>4} open {:>6} reads {:>5} MiB tex {:>4} MiB files  {}",
            st.open_handles,
            st.texture_reads,
            st.texture_bytes >> 20,
            st.file_bytes >> 20,
            name.to_string_lossy()
        );
    }
    block
}

/// Chunk requests that failed, after their retries or at once (the
/// provider failing fast).
fn failures(m: &MetricsSnapshot) -> u64 {
    m.chunk_failures + m.chunk_fast_failed
}

/// One line per provider asked so far: its state and, unless healthy, the
/// cause of its last failures and what to check.
fn provider_lines(service: &TextureService) -> Vec<String> {
    service
        .client()
        .provider_reports()
        .iter()
        .map(|r| {
            let state = match &r.state {
                ProviderState::Failing { since, fast } => format!(
                    "failing for {} s ({} failures{})",
                    since.elapsed().map_or(0, |d| d.as_secs()),
                    r.failures,
                    if *fast { ", failing fast" } else { "" }
                ),
                other => other.name().to_string(),
            };
            // State and cause first, the long name and the hint after: a
            // line cut to the terminal's width keeps what matters.
            match (&r.state, &r.last_cause) {
                (ProviderState::Healthy, _) | (_, None) => {
                    format!("provider {state} · {}", r.name)
                }
                (_, Some(cause)) => {
                    format!("provider {state}: {cause} · {} · {}", r.name, cause.hint())
                }
            }
        })
        .collect()
}

/// Failed operations of every mount, by errno.
fn fuse_errors(mounts: &[MountView]) -> ErrorCounts {
    mounts
        .iter()
        .map(|m| m.fs.stats().errors)
        .fold(ErrorCounts::default(), |a, b| a + b)
}

/// Resident memory of this process, from /proc.
fn resident_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib >> 10)
}

/// The share of reads answered with stand-ins, in percent.
fn stand_in_share(m: &MetricsSnapshot) -> f64 {
    let answered = m.reads_final + m.reads_stood_in;
    100.0 * m.reads_stood_in as f64 / answered.max(1) as f64
}

fn line(
    before: &MetricsSnapshot,
    now: &MetricsSnapshot,
    secs: f64,
    service: &TextureService,
    mounts: &[MountView],
) -> String {
    let rate = |a: u64, b: u64| (b - a) as f64 / secs;
    let work = service.work();
    format!(
        "work: {} live, {} background | reads: {} final, {} stand-ins ({:.1}%) | textures: {} in flight, {:.1} parts built/s | chunks: {:.0}/s, {:.1} errors/s, {} in flight | cache: {} memory hits, {} disk hits | memory {} MiB, process {} MiB | built {} MiB for {} MiB read | fuse errors: {}",
        work.live_builds + work.live_builds_waiting,
        work.background_builds + work.background_builds_waiting,
        now.reads_final,
        now.reads_stood_in,
        stand_in_share(now),
        now.generations_in_flight,
        rate(before.units_built, now.units_built),
        rate(before.chunk_requests, now.chunk_requests),
        rate(failures(before), failures(now)),
        now.requests_in_flight,
        now.memory_hits - before.memory_hits,
        now.disk_hits - before.disk_hits,
        service.memory_bytes() >> 20,
        resident_mib(),
        now.bytes_produced >> 20,
        now.bytes_read >> 20,
        fuse_errors(mounts),
    )
}

/// One paragraph on what the service did.
pub fn summary(service: &TextureService) -> String {
    let m = service.metrics().snapshot();
    format!(
        "served {} MiB of {} textures; built {} MiB in {} parts ({} textures with filled chunks); \
         {} disk hits, {} memory hits; {} chunk requests ({} retried, {} failed), \
         peak {} textures and {} requests in flight",
        m.bytes_read >> 20,
        m.textures_touched,
        m.bytes_produced >> 20,
        m.units_built,
        m.textures_degraded,
        m.disk_hits,
        m.memory_hits,
        m.chunk_requests,
        m.chunk_retries,
        m.chunk_failures,
        m.peak_generations_in_flight,
        m.peak_requests_in_flight
    )
}

/// `--stats-file`, for `start` and `run`.
#[derive(clap::Args, Debug, Clone)]
pub struct StatsFileArg {
    /// Write the service's counters to this file as key=value lines on each
    /// SIGUSR1 (which then starts new peak measurements) and on exit; for
    /// benchmarks.
    #[arg(long)]
    pub stats_file: Option<PathBuf>,
}

impl StatsFileArg {
    /// Starts answering SIGUSR1, if a file was named.
    pub fn start(&self, service: &TextureService) -> io::Result<Option<StatsFile>> {
        self.stats_file
            .clone()
            .map(|path| StatsFile::on_sigusr1(service.clone(), path))
            .transpose()
    }
}

/// The counters as `key=value` lines in a file (`--stats-file`), rewritten
/// whole on each SIGUSR1 and when asked. `dump` numbers the writes so a
/// reader can tell its own.
#[derive(Clone)]
pub struct StatsFile {
    service: TextureService,
    path: PathBuf,
    dumps: Arc<AtomicU64>,
    /// More `key=value` pairs from outside the service (prefetch), once set.
    extra: Arc<std::sync::OnceLock<ExtraPairs>>,
    /// The mounts, for their error counts, once mounted.
    mounts: Arc<std::sync::OnceLock<Vec<Arc<OverlayFs<TextureService>>>>>,
}

/// More `key=value` pairs for the stats file, asked at each write.
pub type ExtraPairs = Box<dyn Fn() -> Vec<(&'static str, String)> + Send + Sync>;

impl StatsFile {
    /// From now on each SIGUSR1 writes the file, then starts new peak
    /// measurements (textures and requests in flight).
    pub fn on_sigusr1(service: TextureService, path: PathBuf) -> io::Result<StatsFile> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut signals = signal(SignalKind::user_defined1())?;
        let stats = StatsFile {
            service,
            path,
            dumps: Arc::default(),
            extra: Arc::default(),
            mounts: Arc::default(),
        };
        let writer = stats.clone();
        tokio::spawn(async move {
            while signals.recv().await.is_some() {
                if let Err(e) = writer.write().await {
                    tracing::warn!(path = %writer.path.display(), error = %e, "cannot write the stats file");
                }
                let m = writer.service.metrics();
                m.requests_in_flight.reset_peak();
                m.generations_in_flight.reset_peak();
            }
        });
        Ok(stats)
    }

    /// Adds `pairs` to every later write (only the first call counts).
    pub fn set_extra(&self, pairs: ExtraPairs) {
        let _ = self.extra.set(pairs);
    }

    /// Adds the mounts' `fuse_errors_*` counts to every later write (only
    /// the first call counts).
    pub fn set_mounts(&self, mounts: Vec<Arc<OverlayFs<TextureService>>>) {
        let _ = self.mounts.set(mounts);
    }

    /// Writes the counters now, replacing the file at once.
    pub async fn write(&self) -> io::Result<()> {
        let dump = self.dumps.fetch_add(1, Ordering::Relaxed) + 1;
        let mut text = stats_lines(
            dump,
            &self.service.metrics().snapshot(),
            self.service.memory_bytes(),
        );
        for r in self.service.client().provider_reports() {
            let key = slug(&r.key);
            let _ = writeln!(text, "provider_{key}_state={}", r.state.name());
            let _ = writeln!(text, "provider_{key}_failures={}", r.failures);
            if let ProviderState::Failing { since, .. } = r.state {
                let unix = since
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                let _ = writeln!(text, "provider_{key}_failing_since={}", unix.as_secs());
            }
            if let Some(cause) = &r.last_cause {
                let _ = writeln!(text, "provider_{key}_last_failure={}", cause.slug());
            }
        }
        if let Some(disk) = self.service.disk_cache() {
            let _ = writeln!(text, "disk_loads={}", disk.loads());
        }
        for (key, value) in self.extra.get().map(|f| f()).unwrap_or_default() {
            let _ = writeln!(text, "{key}={value}");
        }
        let errors = self
            .mounts
            .get()
            .into_iter()
            .flatten()
            .map(|fs| fs.stats().errors)
            .fold(ErrorCounts::default(), |a, b| a + b);
        for (key, value) in errors.pairs() {
            let _ = writeln!(text, "{key}={value}");
        }
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        tokio::fs::write(&tmp, text).await?;
        tokio::fs::rename(&tmp, &self.path).await
    }
}

/// A provider's cache key as a stats-file key: lower-case letters, digits
/// and `_`.
fn slug(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn stats_lines(dump: u64, m: &MetricsSnapshot, memory_bytes: u64) -> String {
    let mut s = String::new();
    let mut put = |key: &str, value: u64| {
        let _ = writeln!(s, "{key}={value}");
    };
    put("dump", dump);
    put("chunk_requests", m.chunk_requests);
    put("chunk_retries", m.chunk_retries);
    put("chunk_failures", m.chunk_failures);
    put("chunk_bytes", m.chunk_bytes);
    put("requests_in_flight", m.requests_in_flight);
    put("peak_requests_in_flight", m.peak_requests_in_flight);
    put("textures_touched", m.textures_touched);
    put("textures_degraded", m.textures_degraded);
    put("chunks_filled", m.chunks_filled);
    put("generations_in_flight", m.generations_in_flight);
    put("peak_generations_in_flight", m.peak_generations_in_flight);
    put("memory_hits", m.memory_hits);
    put("disk_hits", m.disk_hits);
    put("cache_misses", m.cache_misses);
    put("bytes_read", m.bytes_read);
    put("bytes_produced", m.bytes_produced);
    put("units_built", m.units_built);
    put("reads", m.reads);
    put("reads_waited", m.reads_waited);
    put("reads_final", m.reads_final);
    put("reads_stood_in", m.reads_stood_in);
    put("reads_stalled", m.reads_stalled);
    put("reads_past_cap", m.reads_past_cap);
    put("units_cut_by_deadline", m.units_cut_by_deadline);
    put("builds_failed", m.builds_failed);
    put("background_builds_in_flight", m.background_builds_in_flight);
    put("background_discarded", m.background_discarded);
    put("prefetches", m.prefetches);
    put("disk_writes_dropped", m.disk_writes_dropped);
    for (level, reads) in m.reads_by_level.iter().enumerate() {
        put(&format!("reads_by_level_{level}"), *reads);
    }
    put("memory_cache_bytes", memory_bytes);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_fits_the_terminal() {
        let block = "── XEarthLayer ── Bing · BC1\n economy  built 1 MiB; reads by mip 0:1 1:2 2:3 3:4 4:5\nshort\n";
        for width in [20, 40, 80, 120] {
            let fitted = fit(block, width);
            assert_eq!(fitted.lines().count(), 3);
            for line in fitted.lines() {
                assert!(
                    console::measure_text_width(line) < width,
                    "{line:?} at {width}"
                );
            }
        }
        assert!(fit(block, 20).contains('…'));
        assert_eq!(fit(block, 120), block, "lines that fit are kept whole");
    }
}
