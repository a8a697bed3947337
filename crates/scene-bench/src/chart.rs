//! The chart: textures completed over time for each run, as a PNG. Left,
//! the cold burst against its serialized run (the model this design
//! replaces); right, on its own time scale, the warm runs: disk-warm and
//! hot.
//!
//! Drawn with `plotters` into a memory buffer and encoded with `png`; the
//! text uses DejaVu Sans embedded from the `dejavu` crate, so no system
//! font is needed.

use std::io::BufWriter;
use std::path::Path;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle, RGBColor};

use crate::measure::{RunKind, RunResult};
use crate::BenchResult;

pub const WIDTH: u32 = 1400;
pub const HEIGHT: u32 = 560;
pub const FONT: &str = "sans-serif";

fn colour(kind: RunKind) -> RGBColor {
    match kind {
        RunKind::Cold => RGBColor(0x1f, 0x77, 0xb4),
        RunKind::DiskWarm => RGBColor(0x2c, 0xa0, 0x2c),
        RunKind::Hot => RGBColor(0xd6, 0x27, 0x28),
        RunKind::Serialized => RGBColor(0x7f, 0x7f, 0x7f),
    }
}

/// Writes the chart of `runs` to `path` (a PNG).
pub fn draw(path: &Path, title: &str, runs: &[RunResult]) -> BenchResult {
    let mut pixels = canvas()?;
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, (FONT, 22))?;
        let panels = root.split_evenly((1, 2));
        let serial: Vec<&RunResult> = runs
            .iter()
            .filter(|r| matches!(r.kind, RunKind::Cold | RunKind::Serialized))
            .collect();
        let warm: Vec<&RunResult> = runs
            .iter()
            .filter(|r| matches!(r.kind, RunKind::DiskWarm | RunKind::Hot))
            .collect();
        panel(&panels[0], "Cold: concurrent against serialized", &serial)?;
        panel(
            &panels[1],
            "Warm: a restart on the disk cache, then memory",
            &warm,
        )?;
        root.present()?;
    }
    save(path, &pixels)
}

/// A blank RGB canvas of the charts' size, with the embedded font registered.
pub fn canvas() -> BenchResult<Vec<u8>> {
    register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| "the embedded DejaVu font did not load")?;
    Ok(vec![0u8; (WIDTH * HEIGHT * 3) as usize])
}

/// Writes a canvas to `path` as a PNG, creating its folder.
pub fn save(path: &Path, pixels: &[u8]) -> BenchResult {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut encoder =
        png::Encoder::new(BufWriter::new(std::fs::File::create(path)?), WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(pixels)?;
    Ok(())
}

/// One panel: a step line of completed textures against seconds per run.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    runs: &[&RunResult],
) -> BenchResult
where
    DB::ErrorType: 'static,
{
    let x_max = runs
        .iter()
        .map(|r| r.wall.as_secs_f64())
        .fold(0.0, f64::max)
        .max(1e-3)
        * 1.05;
    let y_max = runs.iter().map(|r| r.textures).max().unwrap_or(1).max(1) as f64 * 1.05;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 18))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds from the start of the burst")
        .y_desc("textures completed")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for run in runs {
        let style = ShapeStyle::from(&colour(run.kind)).stroke_width(3);
        let mut points = vec![(0.0, 0.0)];
        for (i, &t) in run.completions.iter().enumerate() {
            points.push((t, i as f64));
            points.push((t, (i + 1) as f64));
        }
        let label = format!("{} ({:.2} s)", run.kind.label(), run.wall.as_secs_f64());
        chart
            .draw_series(LineSeries::new(points, style))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}
