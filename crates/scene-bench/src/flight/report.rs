//! The flight results as Markdown: the set-up, one summary row per flight
//! (its in-flight loads: the start-up load cannot be predicted), then one
//! row per load.

use std::fmt::Write as _;
use std::time::Duration;

use super::{percentile, FlightResult, FlightSettings, Source, COLUMNS, ROWS, START, ZL17_TILE};
use crate::procfs::Machine;

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e3)
}

fn pct(share: Option<f64>) -> String {
    share.map_or("-".to_string(), |s| format!("{:.1}%", s * 100.0))
}

/// The baseline flight (prefetch off) at the same speed.
fn baseline(results: &[FlightResult], speed_kt: f64) -> Option<&FlightResult> {
    results
        .iter()
        .find(|r| r.source == Source::None && r.speed_kt == speed_kt)
}

/// The generated block, without markers.
pub fn markdown(
    settings: &FlightSettings,
    results: &[FlightResult],
    command: &str,
    chart: &str,
) -> String {
    let machine = Machine::this();
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(
        w,
        "Run `{command}`. Machine: {} cores ({}), {:.1} GiB memory, Linux {}.",
        machine.cores,
        machine.cpu_model,
        machine.memory_bytes as f64 / (1u64 << 30) as f64,
        machine.kernel
    );
    let tiles = ROWS.count() * COLUMNS.count();
    let _ = writeln!(
        w,
        "\nGrid: {tiles} DSF tiles (one package each; {} rows, {} columns around the track), {} \
         textures each at ZL16, tile {:+03}{:+04} at ZL17. Imagery: {} ms ± {} ms per chunk, {}. \
         X-Plane: {} loader threads; parked at {:.2}°N {:.2}°E for the start-up load, then north \
         for {:.0} km at {}x time compression. `xearthlayer run` with a {} MiB memory cache and a \
         fresh disk cache for each flight.",
        ROWS.count(),
        COLUMNS.count(),
        settings.per_tile,
        ZL17_TILE.0,
        ZL17_TILE.1,
        settings.latency.as_millis(),
        settings.jitter.as_millis(),
        match settings.bandwidth {
            0 => "no bandwidth cap".to_string(),
            b => format!("{:.0} Mbit/s shared", b as f64 * 8.0 / 1e6),
        },
        settings.readers,
        START.0,
        START.1,
        settings.distance_km,
        settings.time_compression,
        settings.memory_cache_bytes >> 20,
    );
    let _ = writeln!(
        w,
        "\nIn-flight loads (the start-up load, which nothing can predict, is in the table below). \
         *Ready*: reads whose range was built or on disk when X-Plane asked (no download or \
         build wait). *Waste*: chunks fetched beyond those of the same flight with prefetch off.\n"
    );
    let _ = writeln!(
        w,
        "| speed | telemetry | loads | reads ready | p50 ms | p99 ms | p99 against off | chunks | waste | prefetched | dropped |"
    );
    let _ = writeln!(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        let base = baseline(results, r.speed_kt);
        let p99 = r.in_flight_percentile(99.0);
        let against = base
            .map(|b| b.in_flight_percentile(99.0))
            .filter(|b| !b.is_zero())
            .map_or("-".to_string(), |b| {
                format!("{:.2}x", p99.as_secs_f64() / b.as_secs_f64())
            });
        let waste = base.filter(|b| b.chunks > 0).map_or("-".to_string(), |b| {
            let extra = r.chunks as i64 - b.chunks as i64;
            format!(
                "{extra:+} ({:+.0}%)",
                extra as f64 * 100.0 / b.chunks as f64
            )
        });
        let _ = writeln!(
            w,
            "| {:.0} kt | {} | {} | {} | {} | {} | {against} | {} | {waste} | {} | {} |",
            r.speed_kt,
            r.source.name(),
            r.loads.iter().filter(|l| !l.startup).count(),
            pct(r.ready_share()),
            ms(r.in_flight_percentile(50.0)),
            ms(p99),
            r.chunks,
            r.prefetch_built,
            r.prefetch_dropped,
        );
    }
    let _ = writeln!(w, "\nEvery load:\n");
    let _ = writeln!(
        w,
        "| speed | telemetry | load | at km | at s | tiles | textures | load s | reads ready | p50 ms | p99 ms | max ms | stood in | chunks during |"
    );
    let _ = writeln!(
        w,
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in results {
        for (i, l) in r.loads.iter().enumerate() {
            let _ = writeln!(
                w,
                "| {:.0} kt | {} | {} | {:.0} | {:.0} | {} | {} | {:.1} | {} | {} | {} | {} | {} | {} |",
                r.speed_kt,
                r.source.name(),
                if l.startup {
                    "start-up".to_string()
                } else {
                    format!("{i}")
                },
                l.flown_km,
                l.at.as_secs_f64(),
                l.tiles,
                l.textures,
                l.wall.as_secs_f64(),
                pct(l.ready_share()),
                ms(percentile(&l.latencies, 50.0)),
                ms(percentile(&l.latencies, 99.0)),
                ms(l.latencies.last().copied().unwrap_or_default()),
                l.stood_in,
                l.chunks,
            );
        }
    }
    let _ = writeln!(w, "\n![Reads ready along the flight]({chart})");
    s
}
