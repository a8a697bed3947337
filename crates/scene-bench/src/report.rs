//! The results as Markdown: the machine, the settings, one table row per
//! run, where the chunks and bytes went, and the design's targets. The
//! block is written into `BENCHMARKS.md` between markers named by a label
//! (`<!-- scene-bench:default:start -->` ... `end -->`), so other sections
//! of the file, and text written under the block, are left alone.

use std::fmt::Write as _;
use std::path::Path;

use crate::measure::{RunKind, RunResult};
use crate::procfs::Machine;

/// The section heading the blocks live under.
pub const HEADING: &str = "## Scene-load benchmark (scene-bench)";

/// What the run was asked to do, for the record.
#[derive(Debug, Clone)]
pub struct Settings {
    pub label: String,
    pub command: String,
    pub textures: usize,
    pub zoom: u8,
    pub readers: usize,
    pub latency_ms: u64,
    pub jitter_ms: u64,
    /// Bytes per second, 0 for none.
    pub bandwidth: u64,
    pub pattern: String,
    /// Share of textures read fully.
    pub full_share: f64,
    pub memory_cache_bytes: u64,
    pub binary: String,
    /// The source's git commit, if known.
    pub source: Option<String>,
    /// Chunks the imagery server encoded in the rehearsal, and its time.
    pub warmup: (u64, std::time::Duration),
}

const MIB: f64 = (1u64 << 20) as f64;

fn ms(d: std::time::Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e3)
}

fn pct(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

fn find(runs: &[RunResult], kind: RunKind) -> Option<&RunResult> {
    runs.iter().find(|r| r.kind == kind)
}

/// The generated block, without markers.
pub fn markdown(machine: &Machine, settings: &Settings, runs: &[RunResult], chart: &str) -> String {
    let mut s = String::new();
    let s_ = &mut s;
    let _ = writeln!(
        s_,
        "Run `{}` ({}). Machine: {} cores ({}), {:.1} GiB memory, Linux {}.",
        settings.command,
        settings.label,
        machine.cores,
        machine.cpu_model,
        machine.memory_bytes as f64 / (1u64 << 30) as f64,
        machine.kernel
    );
    let bandwidth = if settings.bandwidth == 0 {
        "no bandwidth cap".to_string()
    } else {
        format!("a {:.1} Mbit/s link", settings.bandwidth as f64 * 8.0 / 1e6)
    };
    let reads = if settings.full_share >= 1.0 {
        "every texture: stat, 64 KiB header, then the whole file".to_string()
    } else {
        format!(
            "each texture: stat, 64 KiB header, then the whole file ({} of textures) or mips 4..12 (the rest)",
            pct(settings.full_share)
        )
    };
    let _ = writeln!(
        s_,
        "\n{} textures at ZL{}, {} readers, imagery {} ms ± {} ms, {bandwidth}; pattern `{}`: {reads}; \
         BC1; memory cache {} MiB; service `{}`{}.",
        settings.textures,
        settings.zoom,
        settings.readers,
        settings.latency_ms,
        settings.jitter_ms,
        settings.pattern,
        settings.memory_cache_bytes >> 20,
        settings.binary,
        settings
            .source
            .as_ref()
            .map_or_else(String::new, |c| format!(" (source tree at {c})")),
    );
    let _ = writeln!(
        s_,
        "\nBefore the runs, an unmeasured rehearsal burst (no latency) had the imagery server encode the {} chunks \
         the burst asks for ({:.1} s), so the runs spend no CPU on JPEG encoding, a remote provider's work. \
         Runs: cold (empty caches); disk-warm (the service restarted on the cold run's disk cache); hot (the same \
         burst again in that process); cold, serialized (empty caches, `--max-builds 1`: one texture part built at a time).",
        settings.warmup.0,
        settings.warmup.1.as_secs_f64()
    );
    let _ = writeln!(
        s_,
        "\n| run | wall s | textures/s | p50 / p95 / p99 ms | peak textures building | peak chunk requests in flight | \
         chunk requests | service CPU, mean (busiest 1 s) | machine CPU (other processes) | peak RSS MiB | MiB built / served |"
    );
    let _ = writeln!(s_, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for r in runs {
        let peak = r.service_cpu_peak.map_or_else(|| "–".to_string(), pct);
        let _ = writeln!(
            s_,
            "| {} | {:.2} | {:.1} | {} / {} / {} | {} | {} | {} | {} ({peak}) | {} ({}) | {:.0} | {:.1} / {:.1} |",
            r.kind.label(),
            r.wall.as_secs_f64(),
            r.textures_per_second(),
            ms(r.p50),
            ms(r.p95),
            ms(r.p99),
            r.peak_generations,
            r.peak_requests_in_flight,
            r.chunk_requests,
            pct(r.service_cpu_share),
            pct(r.machine_cpu_share),
            pct(r.other_cpu_share),
            r.peak_rss_bytes as f64 / MIB,
            r.bytes_produced as f64 / MIB,
            r.bytes_read as f64 / MIB,
        );
    }
    let _ = writeln!(
        s_,
        "\nCPU is a share of all {} cores. Where the work went:\n\n\
         | run | service CPU s | benchmark CPU s (imagery server, readers) | units built | memory / disk hits | server requests by zoom |\n\
         |---|--:|--:|--:|--:|---|",
        machine.cores
    );
    for r in runs {
        let zooms: Vec<String> = r
            .server_by_zoom
            .iter()
            .map(|(z, n)| format!("ZL{z}: {n}"))
            .collect();
        let _ = writeln!(
            s_,
            "| {} | {:.2} | {:.2} | {} | {} / {} | {} |",
            r.kind.label(),
            r.service_cpu_seconds,
            r.bench_cpu_seconds,
            r.units_built,
            r.memory_hits,
            r.disk_hits,
            if zooms.is_empty() {
                "–".to_string()
            } else {
                zooms.join(", ")
            },
        );
    }
    reads_and_link(s_, settings, runs);
    targets(s_, settings, runs);
    let _ = writeln!(
        s_,
        "\n![Textures completed over time: the cold burst against its serialized run; the disk-warm and hot runs]({chart})"
    );
    s
}

/// Reads answered with final imagery against stand-ins, and, over a
/// capped link, the run's wall time against the link's own time for the
/// bytes it carried.
fn reads_and_link(s: &mut String, settings: &Settings, runs: &[RunResult]) {
    let _ = writeln!(
        s,
        "\nReads answered with final imagery and with stand-ins (the service's counters), and the \
         link: the bytes the imagery server sent, and the least time they take on it.\n\n\
         | run | reads final | reads with stand-ins | stand-in share | MiB downloaded | link floor s | wall / floor |\n\
         |---|--:|--:|--:|--:|--:|--:|"
    );
    for r in runs {
        let (floor, ratio) = if settings.bandwidth == 0 || r.bytes_downloaded == 0 {
            ("–".to_string(), "–".to_string())
        } else {
            let floor = r.bytes_downloaded as f64 / settings.bandwidth as f64;
            (
                format!("{floor:.1}"),
                format!("{:.2}x", r.wall.as_secs_f64() / floor.max(1e-9)),
            )
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.2}% | {:.1} | {floor} | {ratio} |",
            r.kind.label(),
            r.reads_final,
            r.reads_stood_in,
            100.0 * r.stand_in_share(),
            r.bytes_downloaded as f64 / MIB,
        );
    }
}

/// The design's targets, measured (not asserted).
fn targets(s: &mut String, settings: &Settings, runs: &[RunResult]) {
    let verdict = |met: bool| if met { "met" } else { "**not met**" };
    let _ = writeln!(s, "\n| target | measured | |\n|---|---|---|");
    if let (Some(cold), Some(serial)) = (find(runs, RunKind::Cold), find(runs, RunKind::Serialized))
    {
        let ratio = serial.wall.as_secs_f64() / cold.wall.as_secs_f64().max(1e-9);
        let _ = writeln!(
            s,
            "| cold burst ≥ 10× faster than serialized | {ratio:.1}× ({:.2} s against {:.2} s) | {} |",
            cold.wall.as_secs_f64(),
            serial.wall.as_secs_f64(),
            verdict(ratio >= 10.0)
        );
        let busiest = cold.service_cpu_peak.unwrap_or(cold.service_cpu_share);
        let _ = writeln!(
            s,
            "| service CPU ≥ 90% of all cores while CPU-bound | cold: busiest second {}, mean {} (machine {}, other processes {}) | {} |",
            pct(busiest),
            pct(cold.service_cpu_share),
            pct(cold.machine_cpu_share),
            pct(cold.other_cpu_share),
            verdict(busiest >= 0.9)
        );
    }
    if let Some(hot) = find(runs, RunKind::Hot) {
        let applies = settings.textures >= 200 && settings.pattern == "default";
        let _ = writeln!(
            s,
            "| hot burst of 200 textures (default pattern) < 2 s | {} textures in {:.2} s | {} |",
            hot.textures,
            hot.wall.as_secs_f64(),
            if applies {
                verdict(hot.wall.as_secs_f64() < 2.0)
            } else {
                "n/a (fewer textures or another pattern)"
            }
        );
    }
    if let Some(top) = runs.iter().max_by_key(|r| r.peak_rss_bytes) {
        let budget = settings.memory_cache_bytes + (256 << 20);
        let _ = writeln!(
            s,
            "| peak RSS ≤ memory cache + 256 MiB ({} MiB) | {:.0} MiB ({}) | {} |",
            budget >> 20,
            top.peak_rss_bytes as f64 / MIB,
            top.kind.label(),
            verdict(top.peak_rss_bytes <= budget)
        );
    }
}

/// Puts `block` into `file` between this label's markers: replacing the
/// previous block of the same label, else after the last scene-bench block,
/// else under the heading (added at the end if absent).
pub fn write_block(file: &Path, label: &str, block: &str) -> std::io::Result<()> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "# Benchmarks\n".to_string(),
        Err(e) => return Err(e),
    };
    std::fs::write(file, splice(&text, label, block))
}

fn splice(text: &str, label: &str, block: &str) -> String {
    let start = format!("<!-- scene-bench:{label}:start -->");
    let end = format!("<!-- scene-bench:{label}:end -->");
    let marked = format!("{start}\n{block}{end}");
    if let (Some(a), Some(b)) = (text.find(&start), text.find(&end)) {
        if a < b {
            return format!("{}{marked}{}", &text[..a], &text[b + end.len()..]);
        }
    }
    let any_end = last_block_end(text);
    let at = match (any_end, text.find(HEADING)) {
        (Some(at), _) => Some(at),
        (None, Some(h)) => Some(h + HEADING.len()),
        (None, None) => None,
    };
    match at {
        Some(at) => format!("{}\n\n{marked}{}", &text[..at], &text[at..]),
        None => format!("{}\n\n{HEADING}\n\n{marked}\n", text.trim_end()),
    }
}

/// Just past the last `<!-- scene-bench:...:end -->` marker.
fn last_block_end(text: &str) -> Option<usize> {
    let mut found = None;
    let mut from = 0;
    while let Some(i) = text[from..].find("<!-- scene-bench:") {
        let at = from + i;
        let close = text[at..].find("-->")? + at + 3;
        if text[at..close].ends_with(":end -->") {
            found = Some(close);
        }
        from = close;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_added_then_replaced_leaving_the_rest() {
        let first = splice("# Benchmarks\n\nother text\n", "default", "one\n");
        assert!(first.starts_with("# Benchmarks\n\nother text\n\n## Scene-load"));
        assert!(first
            .contains("<!-- scene-bench:default:start -->\none\n<!-- scene-bench:default:end -->"));

        let notes = format!("{first}\nmy reading\n\n## Later section\n");
        let quick = splice(&notes, "quick", "q\n");
        let default_end = quick.find("default:end").unwrap();
        let quick_start = quick.find("quick:start").unwrap();
        assert!(default_end < quick_start && quick_start < quick.find("my reading").unwrap());

        let again = splice(&quick, "default", "two\n");
        assert!(again.contains("default:start -->\ntwo\n<!-- scene-bench:default:end"));
        assert!(!again.contains("one\n"));
        assert!(
            again.contains("q\n")
                && again.contains("my reading")
                && again.ends_with("## Later section\n")
        );
    }

    #[test]
    fn a_heading_without_blocks_gets_the_block_under_it() {
        let text = format!("# B\n\n{HEADING}\n\nnotes\n");
        let out = splice(&text, "default", "x\n");
        let heading = out.find(HEADING).unwrap();
        assert!(heading < out.find("default:start").unwrap());
        assert!(out.find("default:end").unwrap() < out.find("notes").unwrap());
    }
}
