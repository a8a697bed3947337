//! The memory scenario: several bursts of fresh textures in one service, as
//! a long flight loads new scenery again and again. It answers whether
//! resident memory stays within the memory cache plus a fixed margin however
//! long the flight: after each burst (once the service has settled) it
//! records resident memory, the peak during the burst and the memory cache's
//! own bytes, so memory held beyond the cache shows as the difference.
//!
//! The package holds every burst's textures, disjoint slices of it, so each
//! burst is all cache misses (the rehearsal before it ran in another service
//! on other caches).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::measure::{measure, RunKind, RunResult};
use crate::procfs;
use crate::service::ServiceProcess;
use crate::{Bench, BenchResult};

/// After a burst, resident memory is read once this long has passed (the
/// service's read-ahead, disk writes and heap trim are done by then)...
const SETTLE_AT_LEAST: Duration = Duration::from_secs(3);
/// ...and it moves less than this over one [`SETTLE_STEP`]...
const SETTLED_WITHIN: u64 = 2 << 20;
const SETTLE_STEP: Duration = Duration::from_millis(500);
/// ...or once this long has passed.
const SETTLE_LIMIT: Duration = Duration::from_secs(15);

const MIB: f64 = (1u64 << 20) as f64;

/// One burst of the scenario.
#[derive(Debug)]
pub struct Burst {
    pub run: RunResult,
    /// Resident memory once settled after the burst.
    pub settled_rss_bytes: u64,
    /// The highest resident memory from the burst's start until settled.
    pub peak_rss_bytes: u64,
    /// The memory cache's bytes by its own count, once settled.
    pub cache_bytes: u64,
    /// How long settling took.
    pub settle: Duration,
}

impl Bench {
    /// `bursts` bursts of `per_burst` textures each, in one service.
    pub fn memory_runs(&self, bursts: usize, per_burst: usize) -> BenchResult<Vec<Burst>> {
        let mut service = self.start("memory", "cache-memory", None)?;
        let mut out = Vec::with_capacity(bursts);
        for (i, paths) in self.paths.chunks(per_burst).take(bursts).enumerate() {
            let burst = self.memory_burst(&mut service, paths)?;
            eprintln!(
                "scene-bench: burst {}: {} textures in {:.2} s; RSS {:.0} MiB settled (in {:.1} s), {:.0} MiB peak; memory cache {:.0} MiB",
                i + 1,
                burst.run.textures,
                burst.run.wall.as_secs_f64(),
                burst.settled_rss_bytes as f64 / MIB,
                burst.settle.as_secs_f64(),
                burst.peak_rss_bytes as f64 / MIB,
                burst.cache_bytes as f64 / MIB,
            );
            out.push(burst);
        }
        service.stop()?;
        Ok(out)
    }

    fn memory_burst(&self, service: &mut ServiceProcess, paths: &[PathBuf]) -> BenchResult<Burst> {
        let run = measure(
            RunKind::Cold,
            service,
            &self.server,
            paths,
            &self.burst,
            self.limit,
        )?;
        let pid = service.pid();
        let started = Instant::now();
        let mut rss = procfs::rss_bytes(pid)?;
        loop {
            std::thread::sleep(SETTLE_STEP);
            let now = procfs::rss_bytes(pid)?;
            let settled =
                now.abs_diff(rss) < SETTLED_WITHIN && started.elapsed() >= SETTLE_AT_LEAST;
            rss = now;
            if settled || started.elapsed() >= SETTLE_LIMIT {
                break;
            }
        }
        // `measure` started a new peak measurement at the burst's start.
        let peak_rss_bytes = procfs::peak_rss_bytes(pid)?;
        let stats = service.dump()?;
        Ok(Burst {
            run,
            settled_rss_bytes: rss,
            peak_rss_bytes,
            cache_bytes: stats.get("memory_cache_bytes"),
            settle: started.elapsed(),
        })
    }
}

/// The scenario's Markdown block.
pub fn markdown(command: &str, bursts: &[Burst], memory_cache_bytes: u64) -> String {
    let mut s = String::new();
    let per_burst = bursts.first().map_or(0, |b| b.run.textures);
    let budget = memory_cache_bytes + (256 << 20);
    let _ = writeln!(
        s,
        "Run `{command}`: {} bursts of {per_burst} fresh textures each in one service, memory \
         cache {} MiB. RSS is the service's resident memory once it settled after each burst \
         (at least {} s after it, then moving less than {} MiB in {} ms, at most {} s); peak is \
         its highest from the burst's start until then; the memory cache's bytes are its own \
         count.\n",
        bursts.len(),
        memory_cache_bytes >> 20,
        SETTLE_AT_LEAST.as_secs(),
        SETTLED_WITHIN >> 20,
        SETTLE_STEP.as_millis(),
        SETTLE_LIMIT.as_secs(),
    );
    let _ = writeln!(
        s,
        "| burst | wall s | slowest texture s | reads final / with stand-ins | chunk requests | MiB built | memory cache MiB | RSS MiB | RSS beyond the cache MiB | peak RSS MiB |"
    );
    let _ = writeln!(s, "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for (i, b) in bursts.iter().enumerate() {
        let _ = writeln!(
            s,
            "| {} | {:.2} | {:.2} | {} / {} ({:.1}%) | {} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} |",
            i + 1,
            b.run.wall.as_secs_f64(),
            b.run.slowest.as_secs_f64(),
            b.run.reads_final,
            b.run.reads_stood_in,
            100.0 * b.run.stand_in_share(),
            b.run.chunk_requests,
            b.run.bytes_produced as f64 / MIB,
            b.cache_bytes as f64 / MIB,
            b.settled_rss_bytes as f64 / MIB,
            b.settled_rss_bytes.saturating_sub(b.cache_bytes) as f64 / MIB,
            b.peak_rss_bytes as f64 / MIB,
        );
    }
    if let Some(top) = bursts.iter().map(|b| b.peak_rss_bytes).max() {
        let _ = writeln!(
            s,
            "\nPeak RSS {:.0} MiB against the budget of memory cache + 256 MiB ({} MiB): {}.",
            top as f64 / MIB,
            budget >> 20,
            if top <= budget { "met" } else { "**not met**" }
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn burst(rss_mib: u64, peak_mib: u64, cache_mib: u64) -> Burst {
        Burst {
            run: RunResult {
                kind: RunKind::Cold,
                textures: 200,
                wall: Duration::from_secs(4),
                p50: Duration::ZERO,
                p95: Duration::ZERO,
                p99: Duration::ZERO,
                slowest: Duration::from_secs(2),
                completions: Vec::new(),
                peak_generations: 0,
                peak_requests_in_flight: 0,
                chunk_requests: 5790,
                server_by_zoom: Vec::new(),
                service_cpu_seconds: 0.0,
                bench_cpu_seconds: 0.0,
                service_cpu_share: 0.0,
                service_cpu_peak: None,
                machine_cpu_share: 0.0,
                other_cpu_share: 0.0,
                peak_rss_bytes: peak_mib << 20,
                bytes_produced: 240 << 20,
                bytes_read: 0,
                units_built: 0,
                memory_hits: 0,
                disk_hits: 0,
                reads_final: 0,
                reads_stood_in: 0,
                bytes_downloaded: 0,
            },
            settled_rss_bytes: rss_mib << 20,
            peak_rss_bytes: peak_mib << 20,
            cache_bytes: cache_mib << 20,
            settle: Duration::ZERO,
        }
    }

    #[test]
    fn the_block_judges_the_highest_peak_against_the_budget() {
        let within = markdown("x", &[burst(300, 350, 200), burst(900, 1200, 800)], 1 << 30);
        assert!(within.contains("Peak RSS 1200 MiB") && within.contains("(1280 MiB): met"));
        assert!(within.contains("| 2 | "), "one row per burst");
        assert!(within.contains("| 800 | 900 | 100 | 1200 |"), "{within}");
        assert!(within.contains("| 0 / 0 (0.0%) |"), "{within}");
        let over = markdown("x", &[burst(1100, 1300, 1000)], 1 << 30);
        assert!(over.contains("**not met**"), "{over}");
    }
}
