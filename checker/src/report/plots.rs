//! The three plots of a run, each as PNG and SVG, with every fault interval shaded and labelled:
//! latency of every operation (`latency-raw`), latency quantiles per time window
//! (`latency-quantiles`) and completions per second by outcome (`rate`).
//!
//! Text is drawn with the DejaVu Sans font compiled into the binary (ab_glyph), so plots render
//! the same on a machine without system fonts.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
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

/// The legend box every plot draws in its upper right corner.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> DrawResult {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font((FAMILY, 13))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)
}

/// Shade and label every fault on a chart whose y axis spans `y0..y1`.
fn draw_faults<DB: DrawingBackend, Y>(
    chart: &mut ChartContext<DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
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
    // Labels stagger over three rows so neighbouring faults do not overwrite each other.
    chart
        .draw_series(faults.iter().enumerate().map(|(i, f)| {
            let text = if f.label.chars().count() > 48 {
                format!("{}…", f.label.chars().take(47).collect::<String>())
            } else {
                f.label.clone()
            };
            EmptyElement::at((f.start, y1.clone()))
                + Text::new(
                    text,
                    (3, 4 + 14 * (i % 3) as i32),
                    (FAMILY, 12).into_font().color(&BLACK.mix(0.8)),
                )
        }))
        .map_err(err)?;
    Ok(())
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
    let (mut lo, mut hi) = (f64::MAX, 0.0f64);
    for op in &sample {
        let l = op.latency_ms().unwrap_or(1.0).max(0.01);
        lo = lo.min(l);
        hi = hi.max(l);
    }
    if sample.is_empty() {
        (lo, hi) = (0.1, 1000.0);
    }
    let (y0, y1) = (lo.max(0.01) / 1.5, hi * 3.0);
    let end = timeline.end.max(1e-3);
    let caption = if stride > 1 {
        format!(
            "Latency of every operation ({} of {} drawn)",
            sample.len(),
            measured.len()
        )
    } else {
        "Latency of every operation".to_string()
    };
    macro_rules! body {
        ($root:expr) => {{
            let root = $root;
            let mut chart = ChartBuilder::on(root)
                .caption(&caption, (FAMILY, 20))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d(0f64..end, (y0..y1).log_scale())
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc("time (s)")
                .y_desc("latency (ms)")
                .label_style((FAMILY, 13))
                .draw()
                .map_err(err)?;
            draw_faults(&mut chart, &timeline.faults, end, y0, y1)?;
            for f in [Function::Read, Function::Write, Function::Cas] {
                let color = color_of(f);
                let points = || {
                    sample
                        .iter()
                        .filter(move |op| op.f == f)
                        .filter_map(|op| Some((op.start, op.latency_ms()?.max(y0), op.completion)))
                };
                chart
                    .draw_series(points().map(|(x, y, c)| -> DynElement<_, _> {
                        match c {
                            Completion::Ok => Circle::new((x, y), 2, color.filled()).into_dyn(),
                            Completion::Fail => {
                                Cross::new((x, y), 3, color.stroke_width(1)).into_dyn()
                            }
                            Completion::Info => {
                                TriangleMarker::new((x, y), 4, color.filled()).into_dyn()
                            }
                        }
                    }))
                    .map_err(err)?
                    .label(format!("{f:?}").to_lowercase())
                    .legend(move |(x, y)| Circle::new((x, y), 4, color.filled()));
            }
            // The marker shapes get legend entries of their own (drawing nothing), so the
            // plot reads without the page around it.
            let grey = BLACK.mix(0.6);
            chart
                .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                .map_err(err)?
                .label("ok")
                .legend(move |(x, y)| Circle::new((x, y), 3, grey.filled()));
            chart
                .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                .map_err(err)?
                .label("fail")
                .legend(move |(x, y)| Cross::new((x, y), 3, grey.stroke_width(1)));
            chart
                .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                .map_err(err)?
                .label("info (indeterminate)")
                .legend(move |(x, y)| TriangleMarker::new((x, y), 4, grey.filled()));
            draw_legend(&mut chart)
        }};
    }
    write_plots(dir, "latency-raw", |root| body!(root), |root| body!(root))
}

fn write_plots(
    dir: &Path,
    name: &str,
    png: impl Fn(&DrawingArea<BitMapBackend, Shift>) -> DrawResult,
    svg: impl Fn(&DrawingArea<SVGBackend, Shift>) -> DrawResult,
) -> Result<PlotFiles, String> {
    register_font();
    let png_path = dir.join(format!("{name}.png"));
    let svg_path = dir.join(format!("{name}.svg"));
    {
        let root = BitMapBackend::new(&png_path, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        png(&root)?;
        root.present().map_err(err)?;
    }
    {
        let root = SVGBackend::new(&svg_path, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        svg(&root)?;
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

/// p50 / p95 / p99 / max latency of ok operations per time window.
pub fn latency_quantiles(dir: &Path, timeline: &Timeline) -> Result<PlotFiles, String> {
    let end = timeline.end.max(1e-3);
    let (count, width) = windows(end);
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
    let quantiles = [("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0)];
    let mut series: Vec<Vec<(f64, f64)>> = vec![Vec::new(); quantiles.len()];
    let (mut lo, mut hi) = (f64::MAX, 0.0f64);
    for (i, bucket) in buckets.iter_mut().enumerate() {
        if bucket.is_empty() {
            continue;
        }
        bucket.sort_by(|a, b| a.total_cmp(b));
        let x = (i as f64 + 0.5) * width;
        for (s, (_, q)) in quantiles.iter().enumerate() {
            let v = bucket[((bucket.len() - 1) as f64 * q).round() as usize];
            lo = lo.min(v);
            hi = hi.max(v);
            series[s].push((x, v));
        }
    }
    if hi == 0.0 {
        (lo, hi) = (0.1, 1000.0);
    }
    let (y0, y1) = (lo / 1.5, hi * 3.0);
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
        RGBColor(214, 39, 40),
    ];
    macro_rules! body {
        ($root:expr) => {{
            let mut chart = ChartBuilder::on($root)
                .caption(
                    format!("Latency quantiles of ok operations ({width:.1} s windows)"),
                    (FAMILY, 20),
                )
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d(0f64..end, (y0..y1).log_scale())
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc("time (s)")
                .y_desc("latency (ms)")
                .label_style((FAMILY, 13))
                .draw()
                .map_err(err)?;
            draw_faults(&mut chart, &timeline.faults, end, y0, y1)?;
            for (s, (name, _)) in quantiles.iter().enumerate() {
                let color = colors[s];
                chart
                    .draw_series(LineSeries::new(
                        series[s].iter().copied(),
                        color.stroke_width(2),
                    ))
                    .map_err(err)?
                    .label(*name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                    });
            }
            draw_legend(&mut chart)
        }};
    }
    write_plots(
        dir,
        "latency-quantiles",
        |root| body!(root),
        |root| body!(root),
    )
}

/// Completions per second, one line per outcome.
pub fn rate(dir: &Path, timeline: &Timeline) -> Result<PlotFiles, String> {
    let end = timeline.end.max(1e-3);
    let (count, width) = windows(end);
    let outcomes = [Completion::Ok, Completion::Fail, Completion::Info];
    let mut counts = vec![[0u64; 3]; count];
    for op in &timeline.ops {
        let Some(t) = op.end else { continue };
        let i = ((t / width) as usize).min(count - 1);
        let o = outcomes
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
    macro_rules! body {
        ($root:expr) => {{
            let mut chart = ChartBuilder::on($root)
                .caption(
                    "Throughput: completions per second by outcome",
                    (FAMILY, 20),
                )
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d(0f64..end, 0f64..hi)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc("time (s)")
                .y_desc("operations / s")
                .label_style((FAMILY, 13))
                .draw()
                .map_err(err)?;
            draw_faults(&mut chart, &timeline.faults, end, 0.0, hi)?;
            for (o, outcome) in outcomes.iter().enumerate() {
                let color = outcome_color(*outcome);
                chart
                    .draw_series(LineSeries::new(
                        series[o].iter().copied(),
                        color.stroke_width(2),
                    ))
                    .map_err(err)?
                    .label(format!("{outcome:?}").to_lowercase())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                    });
            }
            draw_legend(&mut chart)
        }};
    }
    write_plots(dir, "rate", |root| body!(root), |root| body!(root))
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
    fn aggregate_windows_cover_the_run_and_are_at_least_100_ms() {
        assert_eq!(windows(0.001), (1, 0.1));
        let (count, width) = windows(60.0);
        assert_eq!(count, 200);
        assert!((width - 0.3).abs() < 1e-9);
        assert!(count as f64 * width >= 60.0);
    }
}
