//! The three plots of a run, each as PNG and SVG, with every fault interval shaded and labelled:
//! latency of every operation (`latency-raw`), latency quantiles per time window
//! (`latency-quantiles`) and completions per second by outcome (`rate`).
//!
//! Text is drawn with the DejaVu Sans font compiled into the binary (ab_glyph), so plots render
//! the same on a machine without system fonts.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::timeline::{DrawnOp, FaultInterval, Timeline};
use crate::history::{Completion, Function};

/// DejaVu Sans (Bitstream Vera licence, `assets/DejaVuSans-LICENSE`).
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// Size of every plot, in pixels.
pub const WIDTH: u32 = 1200;
pub const HEIGHT: u32 = 480;

/// Beyond this many operations the raw latency plot draws an even sample (and says so): a
/// million markers make a PNG no one can read and an SVG no browser can open.
pub const MAX_POINTS: usize = 20_000;

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in: if it did not parse, every plot would lack text, which
        // the plot tests would catch.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

fn color_of(f: Function) -> RGBColor {
    match f {
        Function::Read => RGBColor(31, 119, 180),
        Function::Write => RGBColor(255, 127, 14),
        Function::Cas | Function::Append => RGBColor(44, 160, 44),
        Function::Acquire => RGBColor(148, 103, 189),
        Function::Release => RGBColor(140, 86, 75),
        Function::Txn => RGBColor(23, 190, 207),
    }
}

fn outcome_color(c: Completion) -> RGBColor {
    match c {
        Completion::Ok => RGBColor(44, 160, 44),
        Completion::Fail => RGBColor(214, 39, 40),
        Completion::Info => RGBColor(255, 127, 14),
    }
}

fn fault_color(kind: &str) -> RGBAColor {
    let (r, g, b) = match kind {
        "partition" => (214, 39, 40),
        "kill" => (148, 103, 189),
        "pause" => (127, 127, 127),
        "clock" => (188, 189, 34),
        _ => (23, 190, 207),
    };
    RGBColor(r, g, b).mix(0.15)
}

/// The files one plot was written to.
#[derive(Clone, Debug)]
pub struct PlotFiles {
    pub png: PathBuf,
    pub svg: PathBuf,
}

type DrawResult = Result<(), String>;

/// The signature every plot has: draw `timeline` into `dir`, as PNG and SVG.
pub type Draw = fn(&Path, &Timeline) -> Result<PlotFiles, String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// The legend's column right of the chart: inside the chart it covered data and fault labels.
const LEGEND_WIDTH: i32 = 170;

/// How a series looks, as its legend entry draws it.
#[derive(Clone, Copy)]
enum Swatch {
    Dot(RGBColor),
    Cross(RGBColor),
    Triangle(RGBColor),
    Line(RGBColor),
}

/// A plot's chart area and its legend column.
type Frame<DB> = (DrawingArea<DB, Shift>, DrawingArea<DB, Shift>);

/// The title over the whole image, then the chart's area and the legend's column.
fn frame<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    caption: &str,
) -> Result<Frame<DB>, String> {
    let body = root
        .margin(8, 0, 0, 0)
        .titled(caption, (FAMILY, 20))
        .map_err(err)?;
    let width = body.dim_in_pixel().0 as i32;
    Ok(body.split_horizontally((width - LEGEND_WIDTH).max(0)))
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(Swatch, &str)],
) -> DrawResult {
    let font = (FAMILY, 13).into_font().color(&BLACK.mix(0.85));
    for (i, (swatch, label)) in entries.iter().enumerate() {
        // Level with the top of the chart's plotting area (its margin is 12 px).
        let (x, y) = (10, 22 + 20 * i as i32);
        let at = EmptyElement::at((x, y));
        match *swatch {
            Swatch::Dot(c) => area.draw(&(at + Circle::new((0, 0), 4, c.filled()))),
            Swatch::Cross(c) => area.draw(&(at + Cross::new((0, 0), 3, c.stroke_width(1)))),
            Swatch::Triangle(c) => area.draw(&(at + TriangleMarker::new((0, 0), 4, c.filled()))),
            Swatch::Line(c) => {
                area.draw(&(at + PathElement::new(vec![(-6, 0), (10, 0)], c.stroke_width(2))))
            }
        }
        .map_err(err)?;
        area.draw(&Text::new(label.to_string(), (x + 18, y - 7), font.clone()))
            .map_err(err)?;
    }
    Ok(())
}

/// An axis label: `10`, not `10.0`; `0.05`, not `0.1`.
fn tick_label(v: f64) -> String {
    let decimals = if v.abs() >= 1.0 || v == 0.0 {
        1
    } else {
        ((-v.abs().log10()).ceil() as usize + 1).min(9)
    };
    let text = format!("{v:.decimals$}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

/// The labelled and the light grid values of a log axis over `lo..hi`: 1, 2 and 5 of each
/// decade over a few decades, decades alone over more, a light line at every other multiple.
/// (plotters' own log key points crowd ten labels into the top decade.)
fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let first = lo.log10().floor() as i32;
    let last = hi.log10().ceil() as i32;
    let labelled: &[u32] = if last - first <= 3 { &[1, 2, 5] } else { &[1] };
    let (mut bold, mut light) = (Vec::new(), Vec::new());
    for exponent in first..=last {
        for multiple in 1..10u32 {
            // Built from text so 0.3 is 0.3, not 0.30000000000000004, on the axis.
            let v: f64 = format!("{multiple}e{exponent}").parse().unwrap_or(f64::NAN);
            if !(lo..=hi).contains(&v) {
                continue;
            }
            if labelled.contains(&multiple) {
                bold.push(v);
            } else {
                light.push(v);
            }
        }
    }
    (bold, light)
}

type LogAxis =
    plotters::coord::combinators::WithKeyPoints<plotters::coord::combinators::LogCoord<f64>>;

fn log_axis(lo: f64, hi: f64) -> LogAxis {
    let (bold, light) = log_ticks(lo, hi);
    (lo..hi)
        .log_scale()
        .with_key_points(bold)
        .with_light_points(light)
}

/// A label that fits: longer ones are cut with an ellipsis.
fn shorten(label: &str, chars: usize) -> String {
    if label.chars().count() > chars {
        format!("{}…", label.chars().take(chars - 1).collect::<String>())
    } else {
        label.to_string()
    }
}

/// Shade and label every fault on a chart whose y axis spans `y0..y1`.
fn draw_faults<DB: DrawingBackend, Y>(
    chart: &mut ChartContext<DB, Cartesian2d<RangedCoordf64, Y>>,
    faults: &[FaultInterval],
    end: f64,
    y0: Y::ValueType,
    y1: Y::ValueType,
) -> DrawResult
where
    Y: Ranged,
    Y::ValueType: Clone + 'static,
{
    chart
        .draw_series(faults.iter().map(|f| {
            Rectangle::new(
                [(f.start, y0.clone()), (f.end.unwrap_or(end), y1.clone())],
                fault_color(&f.kind).filled(),
            )
        }))
        .map_err(err)?;
    let font = (FAMILY, 12).into_font().color(&BLACK.mix(0.8));
    let (pixels_x, _) = chart.plotting_area().get_pixel_range();
    let mut labels = Vec::with_capacity(faults.len());
    for (i, f) in faults.iter().enumerate() {
        let text = shorten(&f.label, 48);
        let width = chart
            .plotting_area()
            .estimate_text_size(&text, &font)
            .map_or(0, |(w, _)| w as i32);
        let left = chart.backend_coord(&(f.start, y1.clone())).0;
        // A label that would run off the right edge ends at it instead.
        let x = (left + 3)
            .min(pixels_x.end - width - 3)
            .max(pixels_x.start + 3);
        // Labels stagger over three rows so neighbouring faults do not overwrite each other.
        labels.push((f.start, x - left, 4 + 14 * (i % 3) as i32, text));
    }
    chart
        .draw_series(labels.into_iter().map(|(start, dx, dy, text)| {
            EmptyElement::at((start, y1.clone())) + Text::new(text, (dx, dy), font.clone())
        }))
        .map_err(err)?;
    Ok(())
}

/// The chart each plot draws on `area`: time along x up to `end`, `y` up, labelled grid lines,
/// and every fault shaded and labelled.
fn chart_on<'a, DB, Y>(
    area: &'a DrawingArea<DB, Shift>,
    y: Y,
    y_desc: &str,
    end: f64,
    faults: &[FaultInterval],
) -> Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>, String>
where
    DB: DrawingBackend,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let y_range = y.range();
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..end, y)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc(y_desc)
        .x_label_formatter(&|v| tick_label(*v))
        .y_label_formatter(&|v| tick_label(*v))
        .label_style((FAMILY, 13))
        .draw()
        .map_err(err)?;
    draw_faults(&mut chart, faults, end, y_range.start, y_range.end)?;
    Ok(chart)
}

/// The y range both latency plots use: the lowest of `latencies` (ms) ÷ 1.5 to the highest
/// × 3; as if they spanned 0.1 to 1000 ms when none is above 0 (nothing was measured).
fn latency_axis(latencies: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::MAX, 0.0f64);
    for l in latencies {
        lo = lo.min(l);
        hi = hi.max(l);
    }
    if hi == 0.0 {
        (lo, hi) = (0.1, 1000.0);
    }
    (lo / 1.5, hi * 3.0)
}

/// Latency of every operation over time, log scale: colour by function, marker by outcome.
pub fn latency_raw(dir: &Path, timeline: &Timeline) -> Result<PlotFiles, String> {
    let measured: Vec<&DrawnOp> = timeline
        .ops
        .iter()
        .filter(|op| op.latency_ms().is_some())
        .collect();
    let stride = measured.len().div_ceil(MAX_POINTS).max(1);
    let sample: Vec<&DrawnOp> = measured.iter().step_by(stride).copied().collect();
    let y = latency_axis(
        sample
            .iter()
            .map(|op| op.latency_ms().unwrap_or(1.0).max(0.01)),
    );
    let caption = if stride > 1 {
        format!(
            "Latency of every operation ({} of {} drawn)",
            sample.len(),
            measured.len()
        )
    } else {
        "Latency of every operation".to_string()
    };
    let plot = RawLatency {
        caption,
        sample,
        y,
        end: timeline.end.max(1e-3),
        faults: &timeline.faults,
    };
    write_plots(dir, "latency-raw", &plot)
}

struct RawLatency<'a> {
    caption: String,
    sample: Vec<&'a DrawnOp>,
    y: (f64, f64),
    end: f64,
    faults: &'a [FaultInterval],
}

impl Plot for RawLatency<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let (y0, y1) = self.y;
        let (area, legend) = frame(root, &self.caption)?;
        let mut chart = chart_on(
            &area,
            log_axis(y0, y1),
            "latency (ms)",
            self.end,
            self.faults,
        )?;
        // Only the functions the history has get markers and a legend entry.
        let functions: Vec<Function> = Function::ALL
            .into_iter()
            .filter(|&f| self.sample.iter().any(|op| op.f == f))
            .collect();
        for &f in &functions {
            let color = color_of(f);
            let points = self
                .sample
                .iter()
                .filter(|op| op.f == f)
                .filter_map(|op| Some((op.start, op.latency_ms()?.max(y0), op.completion)));
            chart
                .draw_series(points.map(|(x, y, c)| -> DynElement<_, _> {
                    match c {
                        Completion::Ok => Circle::new((x, y), 2, color.filled()).into_dyn(),
                        Completion::Fail => Cross::new((x, y), 3, color.stroke_width(1)).into_dyn(),
                        Completion::Info => {
                            TriangleMarker::new((x, y), 4, color.filled()).into_dyn()
                        }
                    }
                }))
                .map_err(err)?;
        }
        // The marker shapes have entries of their own, so the plot reads without the page.
        let grey = RGBColor(100, 100, 100);
        let entries: Vec<(Swatch, &str)> = functions
            .iter()
            .map(|&f| (Swatch::Dot(color_of(f)), f.name()))
            .chain([
                (Swatch::Dot(grey), "ok"),
                (Swatch::Cross(grey), "fail"),
                (Swatch::Triangle(grey), "info (indeterminate)"),
            ])
            .collect();
        draw_legend(&legend, &entries)
    }
}

/// A plot that draws itself alike on any backend, so one description gives the PNG and the SVG.
trait Plot {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult;
}

fn write_plots(dir: &Path, name: &str, plot: &impl Plot) -> Result<PlotFiles, String> {
    register_font();
    let png_path = dir.join(format!("{name}.png"));
    let svg_path = dir.join(format!("{name}.svg"));
    {
        let root = BitMapBackend::new(&png_path, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        plot.draw(&root)?;
        root.present().map_err(err)?;
    }
    {
        let root = SVGBackend::new(&svg_path, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        plot.draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(PlotFiles {
        png: png_path,
        svg: svg_path,
    })
}

/// Windows for aggregate plots: about 200 over the run, at least 100 ms wide.
fn windows(end: f64) -> (usize, f64) {
    let width = (end / 200.0).max(0.1);
    ((end / width).ceil().max(1.0) as usize, width)
}

const QUANTILES: [(&str, f64); 4] = [("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0)];

/// One line per quantile, each as its runs of consecutive windows that had ok operations: a
/// window without any (no leader, say) breaks the line instead of bridging the gap.
fn quantile_lines(timeline: &Timeline, count: usize, width: f64) -> Vec<Vec<Vec<(f64, f64)>>> {
    let mut buckets: Vec<Vec<f64>> = vec![Vec::new(); count];
    for op in &timeline.ops {
        if op.completion != Completion::Ok {
            continue;
        }
        if let Some(l) = op.latency_ms() {
            let i = ((op.start / width) as usize).min(count - 1);
            buckets[i].push(l.max(0.01));
        }
    }
    let mut lines: Vec<Vec<Vec<(f64, f64)>>> = vec![vec![Vec::new()]; QUANTILES.len()];
    for (i, bucket) in buckets.iter_mut().enumerate() {
        if bucket.is_empty() {
            for line in &mut lines {
                if line.last().is_some_and(|run| !run.is_empty()) {
                    line.push(Vec::new());
                }
            }
            continue;
        }
        bucket.sort_by(|a, b| a.total_cmp(b));
        let x = (i as f64 + 0.5) * width;
        for (line, (_, q)) in lines.iter_mut().zip(QUANTILES) {
            let v = bucket[((bucket.len() - 1) as f64 * q).round() as usize];
            line.last_mut().expect("a line has a run").push((x, v));
        }
    }
    for line in &mut lines {
        line.retain(|run| !run.is_empty());
    }
    lines
}

/// p50 / p95 / p99 / max latency of ok operations per time window.
pub fn latency_quantiles(dir: &Path, timeline: &Timeline) -> Result<PlotFiles, String> {
    let end = timeline.end.max(1e-3);
    let (count, width) = windows(end);
    let lines = quantile_lines(timeline, count, width);
    let y = latency_axis(lines.iter().flatten().flatten().map(|&(_, v)| v));
    let plot = Quantiles {
        caption: format!("Latency quantiles of ok operations ({width:.1} s windows)"),
        lines,
        y,
        end,
        faults: &timeline.faults,
    };
    write_plots(dir, "latency-quantiles", &plot)
}

struct Quantiles<'a> {
    caption: String,
    lines: Vec<Vec<Vec<(f64, f64)>>>,
    y: (f64, f64),
    end: f64,
    faults: &'a [FaultInterval],
}

const QUANTILE_COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(214, 39, 40),
];

impl Plot for Quantiles<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let (y0, y1) = self.y;
        let (area, legend) = frame(root, &self.caption)?;
        let mut chart = chart_on(
            &area,
            log_axis(y0, y1),
            "latency (ms)",
            self.end,
            self.faults,
        )?;
        for (line, color) in self.lines.iter().zip(QUANTILE_COLORS) {
            for run in line {
                chart
                    .draw_series(LineSeries::new(run.iter().copied(), color.stroke_width(2)))
                    .map_err(err)?;
            }
        }
        let entries: Vec<(Swatch, &str)> = QUANTILES
            .iter()
            .zip(QUANTILE_COLORS)
            .map(|((name, _), color)| (Swatch::Line(color), *name))
            .collect();
        draw_legend(&legend, &entries)
    }
}

const OUTCOMES: [Completion; 3] = [Completion::Ok, Completion::Fail, Completion::Info];

/// Completions per second, one line per outcome.
pub fn rate(dir: &Path, timeline: &Timeline) -> Result<PlotFiles, String> {
    let end = timeline.end.max(1e-3);
    let (count, width) = windows(end);
    let mut counts = vec![[0u64; 3]; count];
    for op in &timeline.ops {
        let Some(t) = op.end else { continue };
        let i = ((t / width) as usize).min(count - 1);
        let o = OUTCOMES
            .iter()
            .position(|c| *c == op.completion)
            .unwrap_or(2);
        counts[i][o] += 1;
    }
    let series: Vec<Vec<(f64, f64)>> = (0..3)
        .map(|o| {
            counts
                .iter()
                .enumerate()
                .map(|(i, c)| ((i as f64 + 0.5) * width, c[o] as f64 / width))
                .collect()
        })
        .collect();
    let hi = series
        .iter()
        .flatten()
        .map(|(_, y)| *y)
        .fold(1.0f64, f64::max)
        * 1.25;
    let plot = Rate {
        series,
        hi,
        end,
        faults: &timeline.faults,
    };
    write_plots(dir, "rate", &plot)
}

struct Rate<'a> {
    series: Vec<Vec<(f64, f64)>>,
    hi: f64,
    end: f64,
    faults: &'a [FaultInterval],
}

impl Plot for Rate<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let (area, legend) = frame(root, "Throughput: completions per second by outcome")?;
        let mut chart = chart_on(
            &area,
            RangedCoordf64::from(0f64..self.hi),
            "operations / s",
            self.end,
            self.faults,
        )?;
        for (line, outcome) in self.series.iter().zip(OUTCOMES) {
            chart
                .draw_series(LineSeries::new(
                    line.iter().copied(),
                    outcome_color(outcome).stroke_width(2),
                ))
                .map_err(err)?;
        }
        draw_legend(
            &legend,
            &[
                (Swatch::Line(outcome_color(Completion::Ok)), "ok"),
                (Swatch::Line(outcome_color(Completion::Fail)), "fail"),
                (Swatch::Line(outcome_color(Completion::Info)), "info"),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::timeline::TimeUnit;

    fn op(start: f64, end: Option<f64>, completion: Completion) -> DrawnOp {
        DrawnOp {
            index: 0,
            process: 0,
            f: Function::Write,
            completion,
            key: None,
            label: "write 1".into(),
            node: None,
            start,
            end,
        }
    }

    /// Degenerate runs (nothing completed, everything at time 0, a completion before its
    /// invoke from a broken clock) still draw every plot instead of failing or panicking.
    #[test]
    fn degenerate_timelines_still_draw() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fault = FaultInterval {
            kind: "kill".into(),
            label: "kill n1".into(),
            start: 0.0,
            end: None,
        };
        for (ops, end) in [
            (vec![], 0.0),
            (vec![op(0.0, None, Completion::Info)], 0.0),
            (vec![op(0.0, Some(0.0), Completion::Ok)], 0.0),
            (vec![op(2.0, Some(1.0), Completion::Fail)], 2.0),
        ] {
            let timeline = Timeline {
                ops,
                faults: vec![fault.clone()],
                unit: TimeUnit::Seconds,
                end,
            };
            for draw in [latency_raw as Draw, latency_quantiles, rate] {
                let files = draw(dir.path(), &timeline).expect("draws");
                let svg = std::fs::read_to_string(files.svg).expect("svg");
                assert!(svg.contains("kill n1"), "the fault is labelled");
            }
        }
    }

    #[test]
    fn axis_labels_carry_no_needless_decimals() {
        for (v, text) in [
            (0.0, "0"),
            (10.0, "10"),
            (1000.0, "1000"),
            (2.5, "2.5"),
            (0.3, "0.3"),
            (0.05, "0.05"),
            (0.002, "0.002"),
        ] {
            assert_eq!(tick_label(v), text, "{v}");
        }
    }

    #[test]
    fn log_axes_label_one_two_five_over_few_decades_and_decades_over_many() {
        let (bold, light) = log_ticks(3.0, 150.0);
        assert_eq!(bold, [5.0, 10.0, 20.0, 50.0, 100.0]);
        assert_eq!(light[..3], [3.0, 4.0, 6.0]);
        assert!(light.iter().all(|v| (3.0..=150.0).contains(v)));
        let (bold, _) = log_ticks(0.2, 5000.0);
        assert_eq!(bold, [1.0, 10.0, 100.0, 1000.0]);
        let (bold, _) = log_ticks(0.02, 0.9);
        assert_eq!(bold, [0.02, 0.05, 0.1, 0.2, 0.5]);
    }

    #[test]
    fn a_stretch_without_ok_operations_breaks_the_quantile_lines() {
        // An ok op every 50 ms (two per 100 ms window) over 0–1 s and 3–4 s; a failure between.
        let ops = (0..20)
            .chain(60..80)
            .map(|i| {
                let t = f64::from(i) * 0.05 + 0.01;
                op(t, Some(t + 0.01), Completion::Ok)
            })
            .chain([op(1.5, Some(2.5), Completion::Fail)])
            .collect();
        let timeline = Timeline {
            ops,
            faults: vec![],
            unit: TimeUnit::Seconds,
            end: 4.0,
        };
        let (count, width) = windows(timeline.end);
        let lines = quantile_lines(&timeline, count, width);
        assert_eq!(lines.len(), QUANTILES.len());
        for line in &lines {
            let runs: Vec<usize> = line.iter().map(Vec::len).collect();
            assert_eq!(runs, [10, 10], "one run before the gap, one after");
        }
    }

    /// A fault that starts just before the end keeps its whole label inside the chart, left of
    /// the legend, instead of running off the image.
    #[test]
    fn a_late_faults_label_stays_inside_the_chart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let label = "halves: minority n4,n5 | majority n1,n2,n3";
        let timeline = Timeline {
            ops: vec![op(1.0, Some(1.01), Completion::Ok)],
            faults: vec![FaultInterval {
                kind: "partition".into(),
                label: label.into(),
                start: 59.0,
                end: Some(60.0),
            }],
            unit: TimeUnit::Seconds,
            end: 60.0,
        };
        for draw in [latency_raw as Draw, latency_quantiles, rate] {
            let files = draw(dir.path(), &timeline).expect("draws");
            let svg = std::fs::read_to_string(files.svg).expect("svg");
            let at = svg.find(label).expect("the label is drawn whole");
            let tag = &svg[svg[..at].rfind("<text").expect("in a text element")..at];
            let x: i32 = tag
                .split("x=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .and_then(|x| x.parse().ok())
                .expect("the text has an x");
            // DejaVu Sans at this size is wider than 5 px a character.
            let right = WIDTH as i32 - LEGEND_WIDTH;
            assert!(
                x + 5 * label.len() as i32 <= right,
                "label at x = {x} runs past the chart's right edge at {right}"
            );
        }
    }

    #[test]
    fn aggregate_windows_cover_the_run_and_are_at_least_100_ms() {
        assert_eq!(windows(0.001), (1, 0.1));
        let (count, width) = windows(60.0);
        assert_eq!(count, 200);
        assert!((width - 0.3).abs() < 1e-9);
        assert!(count as f64 * width >= 60.0);
    }
}
