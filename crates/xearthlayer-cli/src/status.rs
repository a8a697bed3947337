//! Plain-text status: a periodic line while serving and a summary on exit;
//! for benchmarks, the counters as `key=value` lines in a file.

use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xearthlayer::fs::OverlayFs;
use xearthlayer::metrics::MetricsSnapshot;
use xearthlayer::texture::TextureService;

/// One mount as the status view shows it.
pub struct MountView {
    pub mountpoint: PathBuf,
    pub fs: Arc<OverlayFs<TextureService>>,
}

/// Reports until aborted: in a terminal a live block redrawn every second,
/// otherwise (or with `--no-tui`) a log line every 10 s.
pub fn spawn_reporter(
    service: TextureService,
    mounts: Vec<MountView>,
    live: bool,
) -> tokio::task::JoinHandle<()> {
    let live = live && io::stdout().is_terminal();
    let every = Duration::from_secs(if live { 1 } else { 10 });
    tokio::spawn(async move {
        let mut last = (Instant::now(), service.metrics().snapshot());
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        let mut drawn = 0;
        loop {
            tick.tick().await;
            let now = (Instant::now(), service.metrics().snapshot());
            let secs = now.0.duration_since(last.0).as_secs_f64().max(1e-9);
            if live {
                let block = live_block(&last.1, &now.1, secs, &service, &mounts);
                // Move up over the previous block and clear it, then redraw.
                let mut out = io::stdout().lock();
                if drawn > 0 {
                    let _ = write!(out, "\x1b[{drawn}A\x1b[J");
                }
                let _ = write!(out, "{block}");
                let _ = out.flush();
                drawn = block.lines().count();
            } else {
                tracing::info!("{}", line(&last.1, &now.1, secs, &service));
            }
            last = now;
        }
    })
}

/// The live view: service-wide rates, the read-path economy, each mount.
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
        " textures  {:>4} in flight  {:>6.1} parts built/s   peak {} in flight, {} seen",
        now.generations_in_flight,
        rate(before.units_built, now.units_built),
        now.peak_generations_in_flight,
        now.textures_touched
    );
    let _ = writeln!(
        block,
        " chunks    {:>4} in flight  {:>6.0} /s  {:>5.1} errors/s  {:.1} per texture seen",
        now.requests_in_flight,
        rate(before.chunk_requests, now.chunk_requests),
        rate(before.chunk_failures, now.chunk_failures),
        now.chunk_requests as f64 / now.textures_touched.max(1) as f64
    );
    let _ = writeln!(
        block,
        " cache     {:>6.0} memory hits/s {:>6.0} disk hits/s   memory {} MiB, process {} MiB",
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
        " economy   built {} MiB for {} MiB read; reads by mip {}",
        now.bytes_produced >> 20,
        now.bytes_read >> 20,
        if levels.is_empty() {
            "-".to_string()
        } else {
            levels.join(" ")
        }
    );
    for mount in mounts {
        let st = mount.fs.stats();
        let _ = writeln!(
            block,
            " mount     {}  {} open, {} texture reads, {} MiB textures, {} MiB files",
            mount.mountpoint.display(),
            st.open_handles,
            st.texture_reads,
            st.texture_bytes >> 20,
            st.file_bytes >> 20
        );
    }
    block
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

fn line(
    before: &MetricsSnapshot,
    now: &MetricsSnapshot,
    secs: f64,
    service: &TextureService,
) -> String {
    let rate = |a: u64, b: u64| (b - a) as f64 / secs;
    format!(
        "textures: {} in flight, {:.1} parts built/s | chunks: {:.0}/s, {:.1} errors/s, {} in flight | cache: {} memory hits, {} disk hits | memory {} MiB, process {} MiB | built {} MiB for {} MiB read",
        now.generations_in_flight,
        rate(before.units_built, now.units_built),
        rate(before.chunk_requests, now.chunk_requests),
        rate(before.chunk_failures, now.chunk_failures),
        now.requests_in_flight,
        now.memory_hits - before.memory_hits,
        now.disk_hits - before.disk_hits,
        service.memory_bytes() >> 20,
        resident_mib(),
        now.bytes_produced >> 20,
        now.bytes_read >> 20,
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

/// The counters as `key=value` lines in a file (`--stats-file`), rewritten
/// whole on each SIGUSR1 and when asked. `dump` numbers the writes so a
/// reader can tell its own.
#[derive(Clone)]
pub struct StatsFile {
    service: TextureService,
    path: PathBuf,
    dumps: Arc<AtomicU64>,
}

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

    /// Writes the counters now, replacing the file at once.
    pub async fn write(&self) -> io::Result<()> {
        let dump = self.dumps.fetch_add(1, Ordering::Relaxed) + 1;
        let text = stats_lines(
            dump,
            &self.service.metrics().snapshot(),
            self.service.memory_bytes(),
        );
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        tokio::fs::write(&tmp, text).await?;
        tokio::fs::rename(&tmp, &self.path).await
    }
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
    for (level, reads) in m.reads_by_level.iter().enumerate() {
        put(&format!("reads_by_level_{level}"), *reads);
    }
    put("memory_cache_bytes", memory_bytes);
    s
}
