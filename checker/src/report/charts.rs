//! The report's three charts, drawn with plotters into PNG files.
//!
//! - `latency-raw.png`: every attempt's latency against its start time on a log scale,
//!   coloured by outcome (ok / fail / info), marker shape by function.
//! - `latency-quantiles.png`: p50, p95, p99 and max latency per time window; a line
//!   breaks where a window saw no completion rather than bridging the gap.
//! - `rate.png`: completions per second by outcome.
//!
//! Every chart shades the intervals when a fault was active and draws a vertical line
//! at each nemesis action, as Jepsen's reports do; a scenario's sets get a labelled
//! line. Text is drawn with a font compiled into the binary (a DejaVu Sans subset under
//! `assets/`), registered with plotters' `ab_glyph` backend, so charts render on
//! machines with no system fonts.
//!
//! A million-operation run would make a raw scatter of millions of markers (slow, and
//! unreadable anyway), so each series is downsampled to at most [`MAX_POINTS`]: time is
//! cut into buckets and each bucket keeps its slowest and its fastest point, which
//! preserves the outliers a person is looking for.

use super::faults::{classify, FaultKind, FaultSpan};
use super::scan::{LatencyPoint, NemesisAction, Scan, FUNCTIONS};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

/// Chart size in pixels.
pub const SIZE: (u32, u32) = (1280, 520);

/// Room at the right of each chart for its legend.
const LEGEND_WIDTH: u32 = 150;

/// Most markers drawn in the raw latency chart, over all series.
pub const MAX_POINTS: usize = 16_000;

/// Series with fewer points than this get bigger markers.
const SPARSE_POINTS: usize = 200;

/// Fewest markers a non-empty series may be cut down to.
const MIN_SHARE: usize = 600;

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans-subset.ttf");

const OUTCOMES: [(&str, RGBColor); 3] = [
    ("ok", RGBColor(0, 140, 60)),
    ("fail", RGBColor(210, 30, 30)),
    ("info", RGBColor(230, 150, 0)),
];

type ChartResult = Result<(), String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Registers the embedded font under the family names plotters asks for (once).
fn register_fonts() -> ChartResult {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        for family in ["sans-serif", "serif", "monospace"] {
            plotters::style::register_font(family, FontStyle::Normal, FONT)
                .map_err(|_| "the embedded font could not be loaded".to_string())?;
        }
        Ok(())
    })
    .clone()
}

/// What every chart shares: the time axis and the faults.
pub struct Frame<'a> {
    pub end_s: f64,
    pub spans: &'a [FaultSpan],
    pub actions: &'a [NemesisAction],
    /// The time axis's label: a simulated run's time is virtual.
    pub x_desc: &'static str,
}

impl Frame<'_> {
    pub fn new<'a>(scan: &Scan, spans: &'a [FaultSpan], actions: &'a [NemesisAction]) -> Frame<'a> {
        Frame {
            end_s: (scan.end_ns as f64 / 1e9).max(1e-3),
            spans,
            actions,
            x_desc: "time since start (s)",
        }
    }

    /// The same frame on a simulated run's virtual time.
    pub fn on_virtual_time(mut self, simulated: bool) -> Self {
        if simulated {
            self.x_desc = "virtual time since start (s), simulated";
        }
        self
    }
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn fault_color(kind: FaultKind) -> RGBColor {
    let (r, g, b) = kind.rgb();
    RGBColor(r, g, b)
}

/// Shades fault intervals and marks nemesis actions between `y.0` and `y.1`.
fn draw_faults<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    frame: &Frame<'_>,
    y: (f64, f64),
    legend: &mut Legend,
) -> ChartResult {
    for kind in FaultKind::ALL {
        let of_kind = frame.spans.iter().filter(|s| s.kind == kind);
        let (instants, spans): (Vec<&FaultSpan>, Vec<&FaultSpan>) =
            of_kind.partition(|s| s.is_instant());
        let color = fault_color(kind);
        if spans.is_empty() {
            // A clock jump or a failed fsync has no length: its action line shows it.
            if !instants.is_empty() {
                legend.push(kind.label(), Swatch::Line, color);
            }
            continue;
        }
        chart
            .draw_series(spans.iter().map(|s| {
                Rectangle::new(
                    [(secs(s.start_ns), y.0), (secs(s.end_ns), y.1)],
                    color.mix(0.13).filled(),
                )
            }))
            .map_err(err)?;
        legend.push(kind.label(), Swatch::Band, color);
    }
    let lines = frame.actions.iter().filter(|a| a.f != "set").map(|a| {
        let kind = classify(&a.f).map_or(FaultKind::Other, |k| k.0);
        let t = secs(a.time_ns);
        // An instant fault is only its line: draw it bolder.
        let width = if matches!(kind, FaultKind::Clock | FaultKind::Disk) {
            2
        } else {
            1
        };
        PathElement::new(
            vec![(t, y.0), (t, y.1)],
            fault_color(kind).mix(0.55).stroke_width(width),
        )
    });
    chart.draw_series(lines).map_err(err)?;
    draw_sets(chart, frame, y, legend)
}

/// A scenario's sets: a dark line at each set's start, labelled with its number.
fn draw_sets<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    frame: &Frame<'_>,
    y: (f64, f64),
    legend: &mut Legend,
) -> ChartResult {
    let sets: Vec<(f64, String)> = frame
        .actions
        .iter()
        .filter(|a| a.f == "set")
        .map(|a| (secs(a.time_ns), set_label(&a.value)))
        .collect();
    if sets.is_empty() {
        return Ok(());
    }
    let ink = RGBColor(40, 40, 40);
    chart
        .draw_series(sets.iter().map(|(t, _)| {
            PathElement::new(vec![(*t, y.0), (*t, y.1)], ink.mix(0.8).stroke_width(2))
        }))
        .map_err(err)?;
    let font = ("sans-serif", 14).into_font().color(&ink);
    chart
        .draw_series(sets.iter().map(|(t, label)| {
            EmptyElement::at((*t, y.1)) + Text::new(label.clone(), (4, 4), font.clone())
        }))
        .map_err(err)?;
    legend.push("scenario set", Swatch::Line, ink);
    Ok(())
}

/// `set 3` from a `set` action's value.
fn set_label(raw: &str) -> String {
    serde_json::from_str::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| v.get("set").and_then(serde_json::Value::as_u64))
        .map_or_else(|| "set".to_string(), |n| format!("set {n}"))
}

/// How a legend entry is drawn.
#[derive(Clone, Copy)]
enum Swatch {
    Band,
    Line,
    Marker(usize),
    Ring,
}

/// Legend entries, drawn in a strip right of the plot so they never hide data.
#[derive(Default)]
struct Legend(Vec<(String, Swatch, RGBColor)>);

impl Legend {
    fn push(&mut self, label: &str, swatch: Swatch, color: RGBColor) {
        self.0.push((label.to_string(), swatch, color));
    }

    fn draw(&self, area: &DrawingArea<BitMapBackend<'_>, Shift>) -> ChartResult {
        let font = ("sans-serif", 14).into_font().color(&BLACK);
        for (i, (label, swatch, color)) in self.0.iter().enumerate() {
            let (x, y) = (8, 60 + 20 * i as i32);
            match *swatch {
                Swatch::Band => area.draw(&Rectangle::new(
                    [(x, y - 6), (x + 16, y + 6)],
                    color.mix(0.35).filled(),
                )),
                Swatch::Line => area.draw(&PathElement::new(
                    vec![(x, y), (x + 16, y)],
                    color.stroke_width(2),
                )),
                Swatch::Marker(f) => draw_marker(area, f, (x + 8, y), *color),
                Swatch::Ring => area.draw(&Circle::new((x + 8, y), 6, color.stroke_width(2))),
            }
            .map_err(err)?;
            area.draw(&Text::new(label.as_str(), (x + 24, y - 8), font.clone()))
                .map_err(err)?;
        }
        Ok(())
    }
}

fn draw_marker(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    f: usize,
    at: (i32, i32),
    color: RGBColor,
) -> Result<(), DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>> {
    let style = color.mix(0.75).filled();
    match f {
        0 => area.draw(&Circle::new(at, 4, style)),
        1 => area.draw(&TriangleMarker::new(at, 5, style)),
        2 => area.draw(&Cross::new(at, 5, color.stroke_width(2))),
        _ => area.draw(&Rectangle::new(
            [(at.0 - 3, at.1 - 3), (at.0 + 3, at.1 + 3)],
            style,
        )),
    }
}

/// A white PNG canvas, split into the plot and the legend strip.
type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

fn canvas(path: &Path) -> Result<(Area<'_>, Area<'_>, Area<'_>), String> {
    register_fonts()?;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (plot, legend) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);
    Ok((root, plot, legend))
}

/// Keeps at most `cap` points of one series: half as the slowest and fastest point
/// of each time bucket (the outliers a person looks for), half as an even sample
/// (so the bulk keeps its shape).
pub fn downsample(points: &[LatencyPoint], cap: usize, end_ns: u64) -> Vec<LatencyPoint> {
    if points.len() <= cap {
        return points.to_vec();
    }
    let buckets = (cap / 4).max(1);
    let width = (end_ns / buckets as u64).max(1);
    let mut keep: Vec<Option<(usize, usize)>> = vec![None; buckets];
    for (i, p) in points.iter().enumerate() {
        let b = ((p.start_ns / width) as usize).min(buckets - 1);
        let slot = keep[b].get_or_insert((i, i));
        if p.latency_ns > points[slot.0].latency_ns {
            slot.0 = i;
        }
        if p.latency_ns < points[slot.1].latency_ns {
            slot.1 = i;
        }
    }
    let mut chosen: Vec<usize> = keep
        .into_iter()
        .flatten()
        .flat_map(|(hi, lo)| [hi, lo])
        .collect();
    let stride = points.len().div_ceil(cap / 2).max(1);
    chosen.extend((0..points.len()).step_by(stride));
    chosen.sort_unstable();
    chosen.dedup();
    chosen.into_iter().map(|i| points[i]).collect()
}

/// Splits [`MAX_POINTS`] among series by their size, with a floor so rare outcomes
/// (timeouts, failures) stay visible.
fn share(len: usize, total: usize) -> usize {
    (MAX_POINTS as u128 * len as u128 / total.max(1) as u128).max(MIN_SHARE as u128) as usize
}

fn ms(p: &LatencyPoint) -> f64 {
    (p.latency_ns as f64 / 1e6).max(1e-3)
}

/// Latency range in ms for a log axis.
fn latency_range(points: &[LatencyPoint]) -> (f64, f64) {
    let (lo, hi) = points.iter().fold((f64::MAX, 0f64), |(lo, hi), p| {
        (lo.min(ms(p)), hi.max(ms(p)))
    });
    if points.is_empty() || hi <= lo {
        return (1e-3, 1.0_f64.max(hi * 2.0));
    }
    (lo / 1.3, hi * 1.3)
}

/// `latency-raw.png`.
pub fn latency_raw(path: &Path, scan: &Scan, frame: &Frame<'_>) -> ChartResult {
    let (root, plot, legend_area) = canvas(path)?;
    let mut legend = Legend::default();
    let (lo, hi) = latency_range(&scan.points);
    let mut chart = ChartBuilder::on(&plot)
        .caption("Latency of every operation (log scale)", ("sans-serif", 22))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(0f64..frame.end_s, (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(frame.x_desc)
        .y_desc("latency (ms)")
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    draw_faults(&mut chart, frame, (lo, hi), &mut legend)?;
    for (o, (outcome, color)) in OUTCOMES.iter().enumerate() {
        for (f, name) in FUNCTIONS.iter().enumerate() {
            let series: Vec<LatencyPoint> = scan
                .points
                .iter()
                .filter(|p| p.outcome as usize == o && p.f as usize == f)
                .copied()
                .collect();
            if series.is_empty() {
                continue;
            }
            let series = downsample(&series, share(series.len(), scan.points.len()), scan.end_ns);
            draw_points(&mut chart, &series, f, *color)?;
            legend.push(&format!("{name} {outcome}"), Swatch::Marker(f), *color);
        }
    }
    draw_flagged(&mut chart, scan, &mut legend)?;
    legend.draw(&legend_area)?;
    root.present().map_err(err)
}

/// Rings around the operations an anomaly cites (all of them: a check stores at most a
/// few hundred), so the eye finds them among thousands.
fn draw_flagged<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    scan: &Scan,
    legend: &mut Legend,
) -> ChartResult {
    let flagged: Vec<&LatencyPoint> = scan.points.iter().filter(|p| p.flagged).collect();
    if flagged.is_empty() {
        return Ok(());
    }
    let ink = RGBColor(0, 0, 0);
    chart
        .draw_series(
            flagged
                .iter()
                .map(|p| Circle::new((secs(p.start_ns), ms(p)), 7, ink.stroke_width(2))),
        )
        .map_err(err)?;
    legend.push("flagged by a check", Swatch::Ring, ink);
    Ok(())
}

/// One series with the marker shape of function `f`.
fn draw_points<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    points: &[LatencyPoint],
    f: usize,
    color: RGBColor,
) -> ChartResult {
    let style = color.mix(0.75).filled();
    let xy = |p: &LatencyPoint| (secs(p.start_ns), ms(p));
    // A scenario's few dozen operations would be specks at the size that keeps a
    // campaign's thousands apart.
    let grow = if points.len() < SPARSE_POINTS { 2 } else { 1 };
    match f {
        0 => chart.draw_series(points.iter().map(|p| Circle::new(xy(p), 2 * grow, style))),
        1 => chart.draw_series(
            points
                .iter()
                .map(|p| TriangleMarker::new(xy(p), 4 * grow, style)),
        ),
        2 => chart.draw_series(
            points
                .iter()
                .map(|p| Cross::new(xy(p), 4 * grow, color.stroke_width(1))),
        ),
        _ => chart.draw_series(
            points
                .iter()
                .map(|p| Rectangle::new([xy(p), xy(p)], color.stroke_width(2))),
        ),
    }
    .map_err(err)?;
    Ok(())
}

/// Completed-attempt latencies per window, for the quantile chart.
fn windows(scan: &Scan, count: usize) -> Vec<Vec<u64>> {
    let width = (scan.end_ns / count as u64).max(1);
    let mut out = vec![Vec::new(); count];
    for p in scan.points.iter().filter(|p| p.outcome != 2) {
        out[((p.start_ns / width) as usize).min(count - 1)].push(p.latency_ns);
    }
    out
}

/// The value at quantile `q` of `v` (reorders `v`).
fn quantile(v: &mut [u64], q: f64) -> u64 {
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    *v.select_nth_unstable(i).1
}

/// How many time windows the quantile chart cuts a run into: about fifty completions
/// a window on long runs, but never fewer than a dozen windows when there are a dozen
/// points (a scenario's few dozen operations would otherwise make one window: a single
/// point per line, which draws nothing).
fn window_count(points: usize) -> usize {
    (points / 50).max(points.min(12)).clamp(1, 120)
}

/// Splits a quantile line at windows with no data (`None`), so no line is drawn across
/// a stretch when nothing completed (every replica down, say).
fn runs_of(line: &[Option<(f64, f64)>]) -> Vec<Vec<(f64, f64)>> {
    line.split(Option::is_none)
        .filter(|run| !run.is_empty())
        .map(|run| run.iter().flatten().copied().collect())
        .collect()
}

/// `latency-quantiles.png`.
pub fn latency_quantiles(path: &Path, scan: &Scan, frame: &Frame<'_>) -> ChartResult {
    let count = window_count(scan.points.len());
    let width_s = frame.end_s / count as f64;
    let qs: [(&str, f64, RGBColor); 4] = [
        ("p50", 0.5, RGBColor(31, 119, 180)),
        ("p95", 0.95, RGBColor(44, 160, 44)),
        ("p99", 0.99, RGBColor(255, 127, 14)),
        ("max", 1.0, RGBColor(214, 39, 40)),
    ];
    let mut lines: Vec<Vec<Option<(f64, f64)>>> = vec![Vec::new(); qs.len()];
    for (w, mut lat) in windows(scan, count).into_iter().enumerate() {
        let x = (w as f64 + 0.5) * width_s;
        for (line, (_, q, _)) in lines.iter_mut().zip(qs) {
            line.push(
                (!lat.is_empty()).then(|| (x, (quantile(&mut lat, q) as f64 / 1e6).max(1e-3))),
            );
        }
    }
    let all: Vec<f64> = lines.iter().flatten().flatten().map(|p| p.1).collect();
    let lo = all.iter().copied().fold(f64::MAX, f64::min).min(1.0) / 1.3;
    let hi = all.iter().copied().fold(1e-3, f64::max) * 1.3;
    let (root, plot, legend_area) = canvas(path)?;
    let mut legend = Legend::default();
    let mut chart = ChartBuilder::on(&plot)
        .caption(
            "Latency quantiles per time window (ok and fail)",
            ("sans-serif", 22),
        )
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(0f64..frame.end_s, (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(frame.x_desc)
        .y_desc("latency (ms)")
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    draw_faults(&mut chart, frame, (lo, hi), &mut legend)?;
    for (line, (name, _, color)) in lines.into_iter().zip(qs) {
        for run in runs_of(&line) {
            // Markers too, so a window with data on both sides empty still shows.
            chart
                .draw_series(LineSeries::new(run, color.stroke_width(2)).point_size(2))
                .map_err(err)?;
        }
        legend.push(name, Swatch::Line, color);
    }
    legend.draw(&legend_area)?;
    root.present().map_err(err)
}

/// `rate.png`.
pub fn rate(path: &Path, scan: &Scan, frame: &Frame<'_>) -> ChartResult {
    // About a hundred buckets, each scaled to a per-second rate.
    let bucket_s = (frame.end_s / 100.0).max(1e-3);
    let count = ((frame.end_s / bucket_s).ceil() as usize).max(1);
    let mut counts = vec![[0u64; 3]; count];
    for p in &scan.points {
        let t = secs(p.start_ns + p.latency_ns);
        counts[((t / bucket_s) as usize).min(count - 1)][p.outcome as usize] += 1;
    }
    let series: Vec<Vec<(f64, f64)>> = (0..3)
        .map(|o| {
            counts
                .iter()
                .enumerate()
                .map(|(i, c)| ((i as f64 + 0.5) * bucket_s, c[o] as f64 / bucket_s))
                .collect()
        })
        .collect();
    let hi = series.iter().flatten().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let (root, plot, legend_area) = canvas(path)?;
    let mut legend = Legend::default();
    let mut chart = ChartBuilder::on(&plot)
        .caption("Completions per second by outcome", ("sans-serif", 22))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(0f64..frame.end_s, 0f64..hi)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(frame.x_desc)
        .y_desc("operations / s")
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    draw_faults(&mut chart, frame, (0.0, hi), &mut legend)?;
    for (line, (name, color)) in series.into_iter().zip(OUTCOMES) {
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(2)))
            .map_err(err)?;
        legend.push(name, Swatch::Line, color);
    }
    legend.draw(&legend_area)?;
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_lines_break_where_no_window_has_data() {
        let line = [
            Some((0.5, 1.0)),
            Some((1.5, 2.0)),
            None,
            None,
            Some((4.5, 3.0)),
        ];
        assert_eq!(
            runs_of(&line),
            vec![vec![(0.5, 1.0), (1.5, 2.0)], vec![(4.5, 3.0)]]
        );
        assert!(runs_of(&[None, None]).is_empty());
    }

    #[test]
    fn a_few_points_still_make_several_windows() {
        assert_eq!(window_count(0), 1);
        assert_eq!(window_count(30), 12);
        assert_eq!(window_count(5_000), 100);
        assert_eq!(window_count(1_000_000), 120);
    }
}
