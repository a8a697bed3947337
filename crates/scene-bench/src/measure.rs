//! One measured run: an X-Plane-like burst through the mount, bracketed by
//! dumps of the service's counters, while a sampler thread records the
//! service's and the machine's CPU time. A watchdog kills the service if
//! the burst overruns its time limit, so a stuck run fails instead of
//! hanging (the readers then get I/O errors).

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use xel_sim::burst::{run_burst, BurstConfig};
use xel_sim::BackgroundServer;

use crate::procfs::{self, MachineCpu};
use crate::service::ServiceProcess;
use crate::BenchResult;

/// Between CPU samples.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// The window of the peak CPU figure.
const PEAK_WINDOW: f64 = 1.0;

/// Which of the benchmark's runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// Empty caches.
    Cold,
    /// A restarted service with the disk cache of the cold run.
    DiskWarm,
    /// The same burst again in that service: its memory cache.
    Hot,
    /// Cold, with one texture part built at a time (`--max-builds 1`).
    Serialized,
}

impl RunKind {
    pub fn label(self) -> &'static str {
        match self {
            RunKind::Cold => "cold",
            RunKind::DiskWarm => "disk-warm",
            RunKind::Hot => "hot",
            RunKind::Serialized => "cold, serialized",
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub kind: RunKind,
    pub textures: usize,
    pub wall: Duration,
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
    /// The slowest texture, stat to last byte.
    pub slowest: Duration,
    /// Seconds from the start at which each texture was done, sorted.
    pub completions: Vec<f64>,
    pub peak_generations: u64,
    pub peak_requests_in_flight: u64,
    pub chunk_requests: u64,
    /// Requests the imagery server saw, by zoom.
    pub server_by_zoom: Vec<(u8, u64)>,
    /// CPU seconds of the service process.
    pub service_cpu_seconds: f64,
    /// CPU seconds of the benchmark process: readers and imagery server.
    pub bench_cpu_seconds: f64,
    /// Service CPU as a share of all cores, over the run.
    pub service_cpu_share: f64,
    /// The busiest second of the service, as a share of all cores; `None`
    /// when the run was shorter than a second.
    pub service_cpu_peak: Option<f64>,
    /// The whole machine's CPU as a share of all cores, over the run.
    pub machine_cpu_share: f64,
    /// The part of it neither the service nor the benchmark used: other
    /// processes, which skew the run.
    pub other_cpu_share: f64,
    pub peak_rss_bytes: u64,
    /// Texture bytes the service built, and the bytes it served.
    pub bytes_produced: u64,
    pub bytes_read: u64,
    pub units_built: u64,
    pub memory_hits: u64,
    pub disk_hits: u64,
    /// Reads answered with final imagery, and with stand-ins.
    pub reads_final: u64,
    pub reads_stood_in: u64,
    /// Bytes the imagery server sent: divided by the link's bandwidth,
    /// the least time the run could take.
    pub bytes_downloaded: u64,
}

impl RunResult {
    /// The share of reads answered with stand-ins.
    pub fn stand_in_share(&self) -> f64 {
        self.reads_stood_in as f64 / (self.reads_final + self.reads_stood_in).max(1) as f64
    }

    pub fn textures_per_second(&self) -> f64 {
        self.textures as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// One CPU sample.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    service: f64,
    bench: f64,
    machine: MachineCpu,
}

fn sample(pid: u32) -> io::Result<Sample> {
    Ok(Sample {
        at: Instant::now(),
        service: procfs::process_cpu_seconds(pid)?,
        bench: procfs::process_cpu_seconds(std::process::id())?,
        machine: procfs::machine_cpu()?,
    })
}

/// Reads `paths` through the service's mount the X-Plane way and measures.
pub fn measure(
    kind: RunKind,
    service: &mut ServiceProcess,
    server: &BackgroundServer,
    paths: &[PathBuf],
    config: &BurstConfig,
    limit: Duration,
) -> BenchResult<RunResult> {
    let pid = service.pid();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let before = service.dump()?;
    server.reset_stats();
    procfs::reset_peak_rss(pid)?;

    let sampling = AtomicBool::new(true);
    let (done, watchdog) = mpsc::channel::<()>();
    let (burst, samples) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| -> io::Result<Vec<Sample>> {
            let mut samples = vec![sample(pid)?];
            while sampling.load(Ordering::Relaxed) {
                std::thread::sleep(SAMPLE_EVERY);
                samples.push(sample(pid)?);
            }
            Ok(samples)
        });
        scope.spawn(move || {
            if watchdog.recv_timeout(limit) == Err(mpsc::RecvTimeoutError::Timeout) {
                eprintln!(
                    "scene-bench: the {} run overran {limit:?}; killing the service",
                    kind.label()
                );
                // SAFETY: kill only sends a signal to our own child.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
        });
        let burst = run_burst(paths, config);
        drop(done);
        sampling.store(false, Ordering::Relaxed);
        let samples = sampler
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the CPU sampler panicked")));
        (burst, samples)
    });
    let burst = burst.map_err(|e| format!("the {} burst failed: {e}", kind.label()))?;
    let samples = samples?;
    let peak_rss_bytes = procfs::peak_rss_bytes(pid)?;
    let after = service.dump()?;
    let server_stats = server.stats();

    let (first, last) = (samples[0], samples[samples.len() - 1]);
    let span = last.at.duration_since(first.at).as_secs_f64().max(1e-9);
    let service_cpu_seconds = last.service - first.service;
    let bench_cpu_seconds = last.bench - first.bench;
    let machine_cpu_share = first.machine.busy_share_until(&last.machine);
    Ok(RunResult {
        kind,
        textures: burst.reads.len(),
        wall: burst.wall,
        p50: burst.percentile(50.0),
        p95: burst.percentile(95.0),
        p99: burst.percentile(99.0),
        slowest: burst
            .reads
            .iter()
            .map(|r| r.latency)
            .max()
            .unwrap_or_default(),
        completions: burst.completion_times(),
        peak_generations: after.get("peak_generations_in_flight"),
        peak_requests_in_flight: after.get("peak_requests_in_flight"),
        chunk_requests: after.since(&before, "chunk_requests"),
        server_by_zoom: server_stats.by_zoom.into_iter().collect(),
        service_cpu_seconds,
        bench_cpu_seconds,
        service_cpu_share: service_cpu_seconds / span / cores,
        service_cpu_peak: peak_share(&samples, cores),
        machine_cpu_share,
        other_cpu_share: (machine_cpu_share
            - (service_cpu_seconds + bench_cpu_seconds) / span / cores)
            .max(0.0),
        peak_rss_bytes,
        bytes_produced: after.since(&before, "bytes_produced"),
        bytes_read: after.since(&before, "bytes_read"),
        units_built: after.since(&before, "units_built"),
        memory_hits: after.since(&before, "memory_hits"),
        disk_hits: after.since(&before, "disk_hits"),
        reads_final: after.since(&before, "reads_final"),
        reads_stood_in: after.since(&before, "reads_stood_in"),
        bytes_downloaded: server_stats.bytes_sent,
    })
}

/// Waits until the machine is quiet (under 15% busy over a second) so other
/// processes do not skew the next run, for at most `limit`. Returns whether
/// it became quiet.
pub fn wait_for_quiet_machine(limit: Duration) -> io::Result<bool> {
    let started = Instant::now();
    loop {
        let before = procfs::machine_cpu()?;
        std::thread::sleep(Duration::from_secs(1));
        if before.busy_share_until(&procfs::machine_cpu()?) < 0.15 {
            return Ok(true);
        }
        if started.elapsed() >= limit {
            return Ok(false);
        }
    }
}

/// The service's highest CPU share over any window of about a second.
fn peak_share(samples: &[Sample], cores: f64) -> Option<f64> {
    samples
        .iter()
        .enumerate()
        .filter_map(|(i, a)| {
            let b = samples[i..]
                .iter()
                .find(|b| b.at.duration_since(a.at).as_secs_f64() >= PEAK_WINDOW)?;
            let secs = b.at.duration_since(a.at).as_secs_f64();
            Some((b.service - a.service) / secs / cores)
        })
        .max_by(f64::total_cmp)
}
