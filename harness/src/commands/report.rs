//! `faultline report RUN_DIR`: regenerate a stored run's report.html and plots from its
//! history.jsonl and results.json; the history is checked again only when results.json is
//! missing or unreadable, or when asked (`--recheck`, `--model`).

use std::path::PathBuf;

use anyhow::Context;
use faultline_checker::{CheckOptions, CheckReport, Model, Verdict, load_history};

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// A run directory (`results/<target>-<workload>/<timestamp>`, or `results/latest`).
    pub run_dir: PathBuf,

    /// Check the history again with this sequential specification instead of using the
    /// stored results.json [default: the run's workload, when checking].
    #[arg(long)]
    pub model: Option<Model>,

    /// Check the history again even if results.json is there (and rewrite it).
    #[arg(long)]
    pub recheck: bool,
}

pub fn run(args: ReportArgs) -> anyhow::Result<Verdict> {
    let dir = &args.run_dir;
    if !dir.join("history.jsonl").is_file() {
        anyhow::bail!(
            "{} is not a run directory (no history.jsonl); give one of results/<target>-<workload>/<timestamp>",
            dir.display()
        );
    }
    let history = load_history(dir).with_context(|| format!("reading {}", dir.display()))?;
    crate::commands::check::warn_of_torn_tail(&history);
    let stored = if args.recheck || args.model.is_some() {
        None
    } else {
        stored_results(&dir.join("results.json"))
    };
    let report = match stored {
        Some(report) => report,
        None => {
            let options = CheckOptions {
                model: args.model.unwrap_or_else(|| model_of_run(dir)),
                ..CheckOptions::default()
            };
            let report = faultline_checker::check::check_events(&history.events, &options)
                .with_context(|| format!("checking {}", dir.display()))?;
            crate::commands::check::write_results(&dir.join("results.json"), &report)?;
            report
        }
    };
    let html = crate::commands::check::write_run_report(dir, &history, &report)?;
    crate::stdout::line(format!("{}: {}", html.display(), report.verdict()))?;
    Ok(report.verdict())
}

/// The run's stored verdict, if results.json is there and reads as one. A file that does not
/// parse is reported and replaced by a fresh check rather than failing the report.
fn stored_results(path: &std::path::Path) -> Option<CheckReport> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(report) => Some(report),
        Err(error) => {
            eprintln!(
                "{} does not read as results ({error}); checking the history again",
                path.display()
            );
            None
        }
    }
}

/// The model a run was checked with: `register` for the register workload, else cas-register.
fn model_of_run(dir: &std::path::Path) -> Model {
    let workload = std::fs::read(dir.join("test.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|t| {
            t["spec"]["workload"]["workload"]
                .as_str()
                .map(str::to_string)
        });
    match workload.as_deref() {
        Some("register") | Some("Register") => Model::Register,
        _ => Model::CasRegister,
    }
}
