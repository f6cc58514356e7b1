//! The occupancy heatmap of one item as a PNG: frames t across, label positions u up, colour
//! log10 γ(t,u), the best path drawn over it, and a colour bar.
//!
//! Text is rendered with DejaVu Sans compiled into the binary (registered with plotters'
//! `ab_glyph` font table), so pictures need no system fonts or font libraries.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Context};
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;
use plotters::style::{register_font, FontStyle};
use rnnt::Alignment;

/// Occupancies at or below 10^FLOOR share the darkest colour.
const LOG10_FLOOR: f64 = -6.0;
/// Pixels per frame and per label position, before the plot area is clamped to its bounds.
const CELL: u32 = 48;
/// Plot area bounds in pixels: (min, max) width and (min, max) height.
const PLOT_WIDTH: (u32, u32) = (360, 1200);
const PLOT_HEIGHT: (u32, u32) = (240, 800);
/// Pixels around the plot area: axes, caption and colour bar.
const EXTRA_WIDTH: u32 = 240;
const EXTRA_HEIGHT: u32 = 110;
const COLOUR_BAR_WIDTH: u32 = 120;
const PATH_COLOUR: RGBColor = RGBColor(230, 25, 45);
const FONT: &str = "sans-serif";

/// The picture's size for a lattice of `frames` × `positions` nodes: `CELL` pixels per node,
/// the plot area clamped to `PLOT_WIDTH` × `PLOT_HEIGHT`, plus the axes and colour bar.
pub fn image_size(frames: usize, positions: usize) -> (u32, u32) {
    let side = |count: usize, (lo, hi): (u32, u32)| {
        u32::try_from(count)
            .unwrap_or(u32::MAX)
            .saturating_mul(CELL)
            .clamp(lo, hi)
    };
    (
        side(frames, PLOT_WIDTH) + EXTRA_WIDTH,
        side(positions, PLOT_HEIGHT) + EXTRA_HEIGHT,
    )
}

/// Draws `alignment` into the PNG `path` under `title`; returns the image size.
pub fn draw(path: &Path, alignment: &Alignment, title: &str) -> anyhow::Result<(u32, u32)> {
    register_embedded_font()?;
    let (frames, positions) = alignment.occupancy.dim();
    let size = image_size(frames, positions);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    let (main, bar) = root.split_horizontally(size.0 - COLOUR_BAR_WIDTH);
    draw_heatmap(&main, alignment, title)?;
    draw_colour_bar(&bar)?;
    root.present()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(size)
}

fn register_embedded_font() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let registered = *REGISTERED
        .get_or_init(|| register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok());
    if registered {
        Ok(())
    } else {
        Err(anyhow!("the embedded DejaVu Sans font could not be loaded"))
    }
}

/// Heatmap cells, the best path, the axes. Node (t, u) is the unit square centred on (t, u).
fn draw_heatmap<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    alignment: &Alignment,
    title: &str,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let (frames, positions) = alignment.occupancy.dim();
    let labels = &alignment.labels;
    let (t_max, u_max) = (frames as f64 - 0.5, positions as f64 - 0.5);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 17))
        .margin(10)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5..t_max, -0.5..u_max)?;
    let y_tick = |y: &f64| match whole(*y) {
        Some(0) => "0 (start)".to_string(),
        Some(u) if u <= labels.len() => format!("{u} ({})", labels[u - 1]),
        _ => String::new(),
    };
    let x_tick = |x: &f64| whole(*x).map_or(String::new(), |t| t.to_string());
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(frames.min(12))
        .y_labels(positions.min(12))
        .x_label_formatter(&x_tick)
        .y_label_formatter(&y_tick)
        .x_desc("frame t")
        .y_desc("labels emitted u (last label id)")
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()?;
    chart.draw_series(alignment.occupancy.indexed_iter().map(|((t, u), &gamma)| {
        let (t, u) = (t as f64, u as f64);
        Rectangle::new(
            [(t - 0.5, u - 0.5), (t + 0.5, u + 0.5)],
            colour(gamma).filled(),
        )
    }))?;
    if let Some(path) = &alignment.best_path {
        // The nodes, then the final blank leaving the last node to the right edge.
        let points: Vec<(f64, f64)> = path
            .nodes
            .iter()
            .map(|&(t, u)| (t as f64, u as f64))
            .chain(std::iter::once((t_max, u_max - 0.5)))
            .collect();
        let (width, height) = area.dim_in_pixel();
        let cell = (width as f64 / frames as f64).min(height as f64 / positions as f64);
        let line = (cell / 12.0).clamp(1.0, 3.0) as u32;
        chart.draw_series(LineSeries::new(
            points.iter().copied(),
            WHITE.stroke_width(line + 2),
        ))?;
        chart.draw_series(LineSeries::new(
            points.iter().copied(),
            PATH_COLOUR.stroke_width(line),
        ))?;
        if cell >= 8.0 {
            let radius = (cell / 8.0).min(5.0) as i32;
            chart.draw_series(
                points[..path.nodes.len()]
                    .iter()
                    .map(|&p| Circle::new(p, radius, PATH_COLOUR.filled())),
            )?;
        }
    }
    Ok(())
}

/// A vertical bar from 10^FLOOR (bottom) to 1 (top), labelled in powers of ten.
fn draw_colour_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let mut bar = ChartBuilder::on(area)
        .margin_top(37)
        .margin_bottom(55)
        .margin_left(10)
        .margin_right(5)
        .right_y_label_area_size(80)
        .build_cartesian_2d(0.0..1.0, LOG10_FLOOR..0.0)?;
    let tick = |y: &f64| match whole(-*y) {
        Some(0) => "1".to_string(),
        Some(power) => format!("1e-{power}"),
        None => String::new(),
    };
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(7)
        .y_label_formatter(&tick)
        .y_desc("occupancy γ")
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .draw()?;
    let steps = 120;
    bar.draw_series((0..steps).map(|i| {
        let lo = LOG10_FLOOR * (1.0 - i as f64 / steps as f64);
        let hi = LOG10_FLOOR * (1.0 - (i + 1) as f64 / steps as f64);
        Rectangle::new([(0.0, lo), (1.0, hi)], colour(10f64.powf(lo)).filled())
    }))?;
    Ok(())
}

/// The colour of occupancy `gamma` on the log scale.
fn colour(gamma: f64) -> RGBColor {
    let level = if gamma > 0.0 {
        ((gamma.log10() - LOG10_FLOOR) / -LOG10_FLOOR).clamp(0.0, 1.0)
    } else {
        0.0
    };
    ViridisRGB::get_color(level as f32)
}

/// `value` as a whole number ≥ 0, if it is one.
fn whole(value: f64) -> Option<usize> {
    (value >= -1e-9 && (value - value.round()).abs() < 1e-9).then(|| value.round() as usize)
}
