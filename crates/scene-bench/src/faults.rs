//! The fault scenario: a burst while the provider misbehaves, then a
//! healthy burst in the same service, against the same healthy burst on a
//! fresh service. It answers what a user sees when a provider stalls: how
//! long the slowest texture waits, how much of the ground is stood in for,
//! and whether the service is back at full speed and quality afterwards.
//!
//! The faulty burst answers every request after 1 s (the imagery server's
//! latency), 404s 3% of the chunks and holds 1% of the requests open until
//! the end; the textures of the two bursts are disjoint halves of the
//! package, so the healthy burst gains nothing from the faulty one.

use std::fmt::Write as _;
use std::time::Duration;

use xel_sim::server::Faults;

use crate::measure::{measure, RunKind, RunResult};
use crate::service::Stats;
use crate::{Bench, BenchResult};

/// What the scenario measured.
#[derive(Debug)]
pub struct FaultRuns {
    pub faulty: RunResult,
    /// Chunks of the faulty burst filled from lower zoom or neutral.
    pub faulty_filled: u64,
    pub recovered: RunResult,
    pub recovered_filled: u64,
    pub fresh: RunResult,
}

impl Bench {
    pub fn fault_runs(&self, latency: Duration, jitter: Duration) -> BenchResult<FaultRuns> {
        let half = self.paths.len() / 2;
        let (faulty_paths, healthy_paths) = self.paths.split_at(half);

        let mut service = self.start("faulty", "cache-faulty", None)?;
        self.server
            .set_latency(Duration::from_secs(1), Duration::ZERO);
        self.server.set_faults(Faults {
            not_found: 0.03,
            hang: 0.01,
            ..Faults::default()
        });
        let before = service.dump()?;
        let faulty = self.measure_paths(RunKind::Cold, &mut service, faulty_paths)?;
        let after_faults = service.dump()?;

        self.server.set_latency(latency, jitter);
        self.server.set_faults(Faults::default());
        let recovered = self.measure_paths(RunKind::Cold, &mut service, healthy_paths)?;
        let after_recovery = service.dump()?;
        service.stop()?;

        let mut fresh_service = self.start("fresh", "cache-fresh", None)?;
        let fresh = self.measure_paths(RunKind::Cold, &mut fresh_service, healthy_paths)?;
        fresh_service.stop()?;

        let filled = |a: &Stats, b: &Stats| b.since(a, "chunks_filled");
        Ok(FaultRuns {
            faulty_filled: filled(&before, &after_faults),
            recovered_filled: filled(&after_faults, &after_recovery),
            faulty,
            recovered,
            fresh,
        })
    }

    fn measure_paths(
        &self,
        kind: RunKind,
        service: &mut crate::service::ServiceProcess,
        paths: &[std::path::PathBuf],
    ) -> BenchResult<RunResult> {
        let result = measure(kind, service, &self.server, paths, &self.burst, self.limit)?;
        eprintln!(
            "scene-bench: {} textures in {:.2} s",
            result.textures,
            result.wall.as_secs_f64()
        );
        Ok(result)
    }
}

/// The scenario's Markdown block.
pub fn markdown(command: &str, runs: &FaultRuns, stall_window: &str) -> String {
    let mut s = String::new();
    let ratio = runs.recovered.wall.as_secs_f64() / runs.fresh.wall.as_secs_f64().max(1e-9);
    let chunks = |r: &RunResult| r.chunk_requests.max(1) as f64;
    let _ = writeln!(
        s,
        "Run `{command}`: {} textures while the provider answers after 1 s, 404s 3% of chunks \
         and holds 1% of requests open; then {} other textures with the provider healthy, in \
         the same service and in a fresh one. Stall window: {stall_window}.\n",
        runs.faulty.textures, runs.recovered.textures
    );
    let _ = writeln!(s, "| burst | wall time | p50 | p99 | slowest texture | reads final / with stand-ins | chunk requests | chunks stood in | peak RSS |");
    let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|--:|");
    let row = |s: &mut String, name: &str, r: &RunResult, filled: Option<u64>| {
        let _ = writeln!(
            s,
            "| {name} | {:.2} s | {:.0} ms | {:.0} ms | {:.2} s | {} / {} ({:.1}%) | {} | {} | {:.0} MiB |",
            r.wall.as_secs_f64(),
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.slowest.as_secs_f64(),
            r.reads_final,
            r.reads_stood_in,
            100.0 * r.stand_in_share(),
            r.chunk_requests,
            filled.map_or(String::new(), |f| format!(
                "{f} ({:.1}%)",
                f as f64 * 100.0 / chunks(r)
            )),
            r.peak_rss_bytes as f64 / (1u64 << 20) as f64,
        );
    };
    row(
        &mut s,
        "faulty provider",
        &runs.faulty,
        Some(runs.faulty_filled),
    );
    row(
        &mut s,
        "healthy again, same service",
        &runs.recovered,
        Some(runs.recovered_filled),
    );
    row(&mut s, "healthy, fresh service", &runs.fresh, None);
    let _ = writeln!(
        s,
        "\nHealthy burst after the faults against a fresh service: {ratio:.2}x the time \
         (target at most 1.2x), {} chunks stood in (target 0).",
        runs.recovered_filled
    );
    s
}
