//! The PNG plots, drawn with plotters' bitmap backend and an embedded DejaVu Sans Mono
//! (Bitstream Vera license, see assets/) so no system font library is needed. Models are
//! grouped: one colour family per [`ModelGroup`] (Python warm, Rust std brown, readiness
//! APIs blue, async runtimes green, the C reference black, the user's targets purple), and
//! the legend lists them group by group with the group's tag.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{LabError, Result};
use crate::model::ModelGroup;
use crate::results::{BenchResults, Cell};

const FONT: &[u8] = include_bytes!("../../assets/DejaVuSansMono.ttf");
const FAMILY: &str = "sans-serif";
const SIZE: (u32, u32) = (1000, 620);

fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(LabError::Plot {
            path: "assets/DejaVuSansMono.ttf".into(),
            message: "embedded font cannot be parsed".into(),
        })
    }
}

fn plot_err(path: &Path) -> impl Fn(String) -> LabError + '_ {
    move |message| LabError::Plot {
        path: path.to_path_buf(),
        message,
    }
}

/// Measured closed-loop cells grouped by model.
fn closed_by_model(data: &BenchResults) -> BTreeMap<&str, Vec<&Cell>> {
    let mut m: BTreeMap<&str, Vec<&Cell>> = BTreeMap::new();
    for c in data
        .cells
        .iter()
        .filter(|c| c.mode == "closed" && c.skipped.is_none())
    {
        m.entry(c.model.as_str()).or_default().push(c);
    }
    for v in m.values_mut() {
        v.sort_by_key(|c| c.conns);
    }
    m
}

/// (x, y) points of one line.
type Points = Vec<(f64, f64)>;

/// One series per model of `value` against the connection count, over the closed-loop
/// cells where it was measured (positive).
fn per_connection_count(data: &BenchResults, value: impl Fn(&Cell) -> f64) -> Vec<Series> {
    grouped(
        closed_by_model(data)
            .into_iter()
            .map(|(m, cells)| {
                let points = cells
                    .iter()
                    .map(|c| (c.conns as f64, value(c)))
                    .filter(|&(_, v)| v > 0.0)
                    .collect();
                (m, points)
            })
            .collect(),
    )
}

/// One line of a chart.
struct Series {
    label: String,
    color: RGBColor,
    points: Points,
}

fn group_palette(g: ModelGroup) -> &'static [RGBColor] {
    const PY: [RGBColor; 8] = [
        RGBColor(214, 39, 40),
        RGBColor(255, 127, 14),
        RGBColor(227, 119, 194),
        RGBColor(197, 90, 17),
        RGBColor(255, 152, 150),
        RGBColor(240, 80, 120),
        RGBColor(150, 40, 40),
        RGBColor(250, 190, 60),
    ];
    const STD: [RGBColor; 5] = [
        RGBColor(140, 86, 75),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(100, 100, 60),
        RGBColor(170, 130, 110),
    ];
    const API: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(23, 190, 207),
        RGBColor(57, 59, 121),
        RGBColor(107, 174, 214),
        RGBColor(82, 84, 163),
        RGBColor(0, 90, 140),
    ];
    const ASYNC: [RGBColor; 2] = [RGBColor(44, 160, 44), RGBColor(116, 196, 118)];
    const C: [RGBColor; 1] = [RGBColor(0, 0, 0)];
    const YOURS: [RGBColor; 3] = [
        RGBColor(148, 103, 189),
        RGBColor(197, 176, 213),
        RGBColor(110, 50, 150),
    ];
    match g {
        ModelGroup::PythonCourse => &PY,
        ModelGroup::RustStd => &STD,
        ModelGroup::Readiness => &API,
        ModelGroup::AsyncRuntime => &ASYNC,
        ModelGroup::CReference => &C,
        ModelGroup::Target => &YOURS,
    }
}

/// Turns per-model points into series ordered group by group (models in teaching
/// order), coloured by group.
fn grouped(points: Vec<(&str, Points)>) -> Vec<Series> {
    let teaching = |n: &str| {
        crate::models()
            .iter()
            .position(|m| m.name() == n)
            .unwrap_or(usize::MAX)
    };
    let mut rows: Vec<(ModelGroup, &str, Points)> = points
        .into_iter()
        .map(|(n, p)| (ModelGroup::of_row(n), n, p))
        .collect();
    rows.sort_by_key(|(g, n, _)| (*g, teaching(n)));
    let mut out = Vec::new();
    let mut in_group = 0;
    let mut last = None;
    for (g, name, points) in rows {
        if last != Some(g) {
            in_group = 0;
            last = Some(g);
        }
        let palette = group_palette(g);
        out.push(Series {
            label: format!("{}: {name}", g.tag()),
            color: palette[in_group % palette.len()],
            points,
        });
        in_group += 1;
    }
    out
}

/// Draws one log-log line chart: a series per model of (x, y) points.
fn line_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<()> {
    ensure_font()?;
    let e = plot_err(path);
    let pts = series.iter().flat_map(|s| &s.points);
    let (mut xmax, mut ymin, mut ymax) = (1.0f64, f64::MAX, 0.0f64);
    for &(x, y) in pts {
        xmax = xmax.max(x);
        ymin = ymin.min(y);
        ymax = ymax.max(y);
    }
    if ymax <= 0.0 {
        ymin = 0.1;
        ymax = 1.0;
    }
    let ymin = (ymin * 0.5).max(1e-3);
    let ymax = ymax * 2.0;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FAMILY, 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d((0.8f64..xmax * 1.5).log_scale(), (ymin..ymax).log_scale())
        .map_err(|x| e(x.to_string()))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((FAMILY, 15))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| {
            if *y >= 1.0 {
                format!("{y:.0}")
            } else {
                format!("{y:.2}")
            }
        })
        .draw()
        .map_err(|x| e(x.to_string()))?;
    for s in series {
        let c = s.color;
        let points = &s.points;
        chart
            .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(3)))
            .map_err(|x| e(x.to_string()))?
            .label(s.label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, c.filled())))
            .map_err(|x| e(x.to_string()))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FAMILY, 15))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|x| e(x.to_string()))?;
    root.present().map_err(|x| e(x.to_string()))?;
    Ok(())
}

/// The one connection count every series was measured at, when only one ran.
fn single_count(series: &[Series]) -> Option<f64> {
    let mut xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let first = xs.next()?;
    xs.all(|x| x == first).then_some(first)
}

/// Draws a chart of `value` against the connection count: lines on log-log axes, or, when
/// only one count ran (a line of one point per model says nothing), one horizontal bar
/// per model, named on a categorical axis.
fn per_count_chart(path: &Path, title: &str, y_desc: &str, series: &[Series]) -> Result<()> {
    match single_count(series) {
        Some(n) => bar_chart(
            path,
            &format!("{title}, {n:.0} connections"),
            y_desc,
            series,
        ),
        None => line_chart(path, title, "concurrent connections", y_desc, series),
    }
}

/// Draws one horizontal bar per series (its single value), labelled with the series' name.
fn bar_chart(path: &Path, title: &str, x_desc: &str, series: &[Series]) -> Result<()> {
    ensure_font()?;
    let e = plot_err(path);
    let values: Vec<f64> = series
        .iter()
        .map(|s| s.points.first().map_or(0.0, |p| p.1))
        .collect();
    let xmax = values.iter().copied().fold(0.0f64, f64::max).max(1e-3) * 1.15;
    let rows = series.len().max(1) as u32;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
    let labels: Vec<&str> = series.iter().map(|s| s.label.as_str()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FAMILY, 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(260)
        .build_cartesian_2d(0f64..xmax, (0u32..rows.max(2) - 1).into_segmented())
        .map_err(|x| e(x.to_string()))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(WHITE)
        .x_desc(x_desc)
        .label_style((FAMILY, 15))
        .y_labels(labels.len())
        .y_label_formatter(&|v| match v {
            // Row 0 is drawn at the bottom: the first series goes on top.
            SegmentValue::CenterOf(i) => (rows - 1)
                .checked_sub(*i)
                .and_then(|k| labels.get(k as usize))
                .copied()
                .unwrap_or("")
                .into(),
            _ => String::new(),
        })
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(|x| e(x.to_string()))?;
    chart
        .draw_series(series.iter().zip(&values).enumerate().map(|(i, (s, &v))| {
            let i = rows - 1 - i as u32;
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (v, SegmentValue::Exact(i + 1)),
                ],
                s.color.filled(),
            );
            bar.set_margin(3, 3, 0, 0);
            bar
        }))
        .map_err(|x| e(x.to_string()))?;
    root.present().map_err(|x| e(x.to_string()))?;
    Ok(())
}

/// Requests per second against connections, one line per model.
///
/// # Errors
/// [`LabError::Plot`] when drawing or writing fails.
pub fn throughput(data: &BenchResults, path: &Path) -> Result<()> {
    let series = per_connection_count(data, |c| c.rps);
    per_count_chart(
        path,
        &format!("Throughput, closed loop, {} B echo", data.size),
        "requests / s",
        &series,
    )
}

/// Latency percentiles per model (x: percentile, y: µs), at the connection count where
/// most models were measured (preferring 100).
///
/// # Errors
/// [`LabError::Plot`] when drawing or writing fails.
pub fn latency(data: &BenchResults, path: &Path) -> Result<()> {
    let by_model = closed_by_model(data);
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    for cells in by_model.values() {
        for c in cells {
            *counts.entry(c.conns).or_default() += 1;
        }
    }
    let best = counts.values().copied().max().unwrap_or(0);
    let n = if counts.get(&100) == Some(&best) {
        100
    } else {
        counts
            .iter()
            .filter(|(_, &v)| v == best)
            .map(|(&k, _)| k)
            .next_back()
            .unwrap_or(1)
    };
    // x positions: p50=50%, p90=90%, p99, p99.9 as "nines" 1,2,3,4 → plotted at 10^k.
    let series = grouped(
        by_model
            .into_iter()
            .filter_map(|(m, cells)| {
                let c = cells.iter().find(|c| c.conns == n && c.requests > 0)?;
                let l = &c.latency;
                Some((
                    m,
                    vec![
                        (2.0, l.p50_us.max(1e-3)),
                        (10.0, l.p90_us.max(1e-3)),
                        (100.0, l.p99_us.max(1e-3)),
                        (1000.0, l.p999_us.max(1e-3)),
                    ],
                ))
            })
            .collect(),
    );
    line_chart(
        path,
        &format!("Latency at {n} connections (x: 2=p50, 10=p90, 100=p99, 1000=p99.9)"),
        "1 / (1 - percentile)",
        "latency µs",
        &series,
    )
}

/// Server memory per open connection (KiB) against connections.
///
/// # Errors
/// [`LabError::Plot`] when drawing or writing fails.
pub fn memory(data: &BenchResults, path: &Path) -> Result<()> {
    let series = per_connection_count(data, |c| c.kib_per_conn);
    per_count_chart(
        path,
        "Server memory per connection (PSS delta / connections)",
        "KiB per connection",
        &series,
    )
}
