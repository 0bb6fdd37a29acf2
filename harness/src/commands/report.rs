//! `faultline report RUN_DIR`: re-check a stored run and regenerate its results.json,
//! report.html and plots.

use std::path::PathBuf;

use anyhow::Context;
use faultline_checker::{CheckOptions, Model, Verdict, load_history};

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// A run directory (`results/<target>-<workload>/<timestamp>`, or `results/latest`).
    pub run_dir: PathBuf,

    /// The sequential specification to check against [default: the run's workload].
    #[arg(long)]
    pub model: Option<Model>,
}

pub fn run(args: ReportArgs) -> anyhow::Result<Verdict> {
    let dir = &args.run_dir;
    if !dir.join("history.jsonl").is_file() {
        anyhow::bail!(
            "{} is not a run directory (no history.jsonl); give one of results/<target>-<workload>/<timestamp>",
            dir.display()
        );
    }
    let model = args.model.unwrap_or_else(|| model_of_run(dir));
    let history = load_history(dir).with_context(|| format!("reading {}", dir.display()))?;
    let options = CheckOptions {
        model,
        ..CheckOptions::default()
    };
    let report = faultline_checker::check::check_events(&history.events, &options)
        .with_context(|| format!("checking {}", dir.display()))?;
    crate::commands::check::write_results(&dir.join("results.json"), &report)?;
    let html = crate::commands::check::write_run_report(dir, &history, &report)?;
    println!("{}: {}", html.display(), report.verdict());
    Ok(report.verdict())
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
