//! `--chart FILE.svg`: busy lines and backlog over virtual time, one
//! curve per line count, drawn with plotters' SVG backend.

use std::path::Path;

use plotters::prelude::*;

use super::Forecast;

/// Writes the chart: busy lines above, backlog below, hours on the x axis.
pub fn write(forecast: &Forecast, path: &Path) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("chart {}: {e}", path.display());
    let root = SVGBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (top, bottom) = root.split_vertically(350);
    let hours = forecast
        .scenarios
        .iter()
        .map(|s| s.hours.len())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let busiest = forecast
        .scenarios
        .iter()
        .flat_map(|s| s.hours.iter().map(|h| h.busy_lines))
        .fold(1.0_f64, f64::max);
    let largest = forecast
        .scenarios
        .iter()
        .flat_map(|s| s.hours.iter().map(|h| h.backlog))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let panels = [
        (&top, "Busy lines (mean per hour)", busiest),
        (&bottom, "Backlog (unfinished contacts)", largest),
    ];
    for (panel, (area, title, high)) in panels.into_iter().enumerate() {
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..hours, 0.0..high * 1.05)
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc(format!(
                "hours from {}",
                forecast.start.format("%Y-%m-%d %H:%M UTC")
            ))
            .draw()
            .map_err(|e| fail(&e))?;
        for (i, s) in forecast.scenarios.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let points = s.hours.iter().enumerate().map(|(h, p)| {
                let y = if panel == 0 {
                    p.busy_lines
                } else {
                    p.backlog as f64
                };
                (h as f64 + 1.0, y)
            });
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| fail(&e))?
                .label(format!("{} lines", s.lines))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}
