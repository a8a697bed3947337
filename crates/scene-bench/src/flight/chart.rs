//! The chart of the flight: the share of X-Plane's reads that were ready at
//! each load, against the distance flown, one line per telemetry source and
//! one panel per speed.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::RGBColor;

use super::{FlightResult, FlightSettings, Source};
use crate::chart::{canvas, save, FONT, HEIGHT, WIDTH};
use crate::BenchResult;

fn colour(source: Source) -> RGBColor {
    match source {
        Source::Udp => RGBColor(0x1f, 0x77, 0xb4),
        Source::WebApi => RGBColor(0x2c, 0xa0, 0x2c),
        Source::Inferred => RGBColor(0xff, 0x7f, 0x0e),
        Source::None => RGBColor(0x7f, 0x7f, 0x7f),
    }
}

/// Writes the chart of `results` to `path` (a PNG).
pub fn draw(path: &Path, settings: &FlightSettings, results: &[FlightResult]) -> BenchResult {
    let mut pixels = canvas()?;
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let title = format!(
            "XEarthLayer in flight: X-Plane's reads ready at each load ({}x time compression)",
            settings.time_compression
        );
        let root = root.titled(&title, (FONT, 22))?;
        let speeds = &settings.speeds_kt;
        let panels = root.split_evenly((1, speeds.len().max(1)));
        for (area, &speed) in panels.iter().zip(speeds) {
            let flights: Vec<&FlightResult> =
                results.iter().filter(|r| r.speed_kt == speed).collect();
            panel(
                area,
                &format!("{speed:.0} kt"),
                settings.distance_km,
                &flights,
            )?;
        }
        root.present()?;
    }
    save(path, &pixels)
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    distance_km: f64,
    flights: &[&FlightResult],
) -> BenchResult
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 18))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(-5.0..distance_km * 1.02, 0.0..105.0)?;
    chart
        .configure_mesh()
        .x_desc("km flown at the load (0: the start-up load, parked)")
        .y_desc("reads ready, %")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for flight in flights {
        let style = ShapeStyle::from(&colour(flight.source)).stroke_width(3);
        let points: Vec<(f64, f64)> = flight
            .loads
            .iter()
            .filter_map(|l| Some((l.flown_km, l.ready_share()? * 100.0)))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), style))?
            .label(flight.source.name())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 5, style.filled())),
        )?;
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
