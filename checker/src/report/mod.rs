//! The report of a checked history: `report.html` plus three plots, each as PNG and SVG
//! (`latency-raw`, `latency-quantiles`, `rate`), written next to each other so the page works
//! offline and can be copied as one directory.
//!
//! # Layout
//! - [`timeline`]: operations as intervals and faults as bands, extracted from the history.
//! - [`plots`]: the three plots (plotters, with a compiled-in font).
//! - [`page`]: the HTML page (askama template `templates/report.html`).
//! - [`embed`]: `data:` URIs, which put the plots inside the page.
//!
//! # Never
//! Nothing from the history reaches the page unescaped: keys, values, node names and error
//! strings are untrusted input.

pub mod embed;
pub mod page;
pub mod plots;
pub mod timeline;

use std::path::{Path, PathBuf};

use crate::check::{CheckReport, Format, LoadedHistory};
use crate::error::Error;
pub use timeline::{
    DrawnOp, FaultInterval, TimeUnit, Timeline, faults_from_edn, faults_from_jsonl,
};

/// What [`write_report`] wrote.
#[derive(Clone, Debug)]
pub struct ReportFiles {
    pub html: PathBuf,
    /// PNG and SVG of each plot; empty for histories without times (Jepsen text logs).
    pub plots: Vec<PathBuf>,
}

/// Write `report.html` and the plots for `history` (checked as `report`) into `dir`.
/// `test_json` is the run's `test.json`, shown as the test's settings when given.
pub fn write_report(
    dir: &Path,
    history: &LoadedHistory,
    report: &CheckReport,
    test_json: Option<&serde_json::Value>,
) -> Result<ReportFiles, Error> {
    let failed = |reason: String| Error::Report {
        dir: dir.to_path_buf(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| failed(e.to_string()))?;
    let (unit, faults) = match (history.timed, history.format) {
        (true, Format::Jsonl) => (TimeUnit::Seconds, faults_from_jsonl(&history.text)),
        (true, Format::Edn) => (TimeUnit::Seconds, faults_from_edn(&history.text)),
        (true, Format::JepsenLog) => (TimeUnit::Seconds, Vec::new()),
        // Without times a fault has no place on the time axis.
        (false, _) => (TimeUnit::Events, Vec::new()),
    };
    let timeline = Timeline::new(&history.events, faults, unit);
    let mut plots = Vec::new();
    let mut views = Vec::new();
    if history.timed {
        for (draw, alt) in [
            (
                plots::latency_raw as plots::Draw,
                "latency of every operation over time",
            ),
            (plots::latency_quantiles, "latency quantiles over time"),
            (plots::rate, "throughput by outcome over time"),
        ] {
            let files = draw(dir, &timeline).map_err(failed)?;
            // The page carries the PNG itself; the files stay beside it for other uses.
            let png = std::fs::read(&files.png)
                .map_err(|e| failed(format!("reading {}: {e}", files.png.display())))?;
            views.push(page::PlotView {
                alt,
                png_data_uri: embed::data_uri("image/png", &png),
                png_file: file_name(&files.png),
                svg_file: file_name(&files.svg),
            });
            plots.push(files.png);
            plots.push(files.svg);
        }
    }
    let title = test_json
        .and_then(|t| {
            let spec = &t["spec"];
            Some(format!(
                "{} {} (seed {})",
                spec["target"].as_str()?,
                spec["workload"]["workload"].as_str().unwrap_or("register"),
                t["seed"]
            ))
        })
        .unwrap_or_else(|| history.file.display().to_string());
    let html = page::render(&title, &timeline, report, test_json, &views)
        .map_err(|e| failed(e.to_string()))?;
    let path = dir.join("report.html");
    std::fs::write(&path, html).map_err(|e| failed(e.to_string()))?;
    Ok(ReportFiles { html: path, plots })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
