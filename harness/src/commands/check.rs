//! `faultline check`: verdicts for recorded histories.

use std::io::ErrorKind;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use faultline_checker::search::CANCELLED;
use faultline_checker::{
    CheckOptions, CheckReport, Error as CheckerError, Format, LoadedHistory, Model, Verdict,
    load_history_as,
};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// History files (history.jsonl) or run directories; a run directory also gets its
    /// results.json and report rewritten.
    #[arg(required = true)]
    pub histories: Vec<PathBuf>,

    /// The sequential specification: register, cas-register, kv (Porcupine's; implied by
    /// appends), mutex (Knossos's lock; implied by acquires and releases) or multi-register
    /// (Knossos's; implied by transactions).
    #[arg(long, default_value = "cas-register")]
    pub model: Model,

    /// Wall-clock budget per history, in seconds; keys past it are `unknown`.
    #[arg(long, default_value_t = 60.0)]
    pub time_limit: f64,

    /// Threads that check keys in parallel; a key with crashed writes races its two search
    /// orders on one left free [default: one per core].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,

    /// Print results as JSON (one results.json object per history, in a JSON array).
    #[arg(long)]
    pub json: bool,

    /// The history format [default: detected from the content].
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    pub format: FormatArg,

    /// Also write report.html and the plots here (one history only). Run directories get
    /// their report anyway.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,

    /// The register's value before any write: `nil` (absent) or an integer [default: per
    /// format: nil, Knossos EDN 0].
    #[arg(long, value_name = "nil|N")]
    pub initial: Option<InitialArg>,

    /// What a failed CAS tells: `mismatch` (it saw another value than it expected, as in
    /// Porcupine's etcd logs) or `marked` (only one failed with `error: mismatch` did; any
    /// other failure did nothing) [default: per format].
    #[arg(long, value_enum, value_name = "mismatch|marked")]
    pub failed_cas: Option<FailedCasArg>,

    /// Whether a read of nil says the register was absent (`absent`) or constrains nothing
    /// (`unconstrained`, as in Knossos) [default: per format].
    #[arg(long, value_enum, value_name = "absent|unconstrained")]
    pub nil_reads: Option<NilReadsArg>,
}

/// `--initial`: `nil` or an integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitialArg(Option<i64>);

impl std::str::FromStr for InitialArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "nil" | "null" => Ok(InitialArg(None)),
            n => n
                .parse()
                .map(|v| InitialArg(Some(v)))
                .map_err(|_| format!("`{n}`: give `nil` (absent) or an integer, e.g. --initial 0")),
        }
    }
}

/// `--failed-cas`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FailedCasArg {
    Mismatch,
    Marked,
}

/// `--nil-reads`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum NilReadsArg {
    Absent,
    Unconstrained,
}

/// `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    Auto,
    Jsonl,
    Edn,
    JepsenLog,
}

impl FormatArg {
    fn format(self) -> Option<Format> {
        match self {
            FormatArg::Auto => None,
            FormatArg::Jsonl => Some(Format::Jsonl),
            FormatArg::Edn => Some(Format::Edn),
            FormatArg::JepsenLog => Some(Format::JepsenLog),
        }
    }
}

/// Says that a history's cut-off last line was left out (`LoadedHistory::torn_tail`).
pub fn warn_of_torn_tail(history: &LoadedHistory) {
    if let Some(line) = history.torn_tail {
        tracing::warn!(
            "{}: line {line} is cut off (no newline after it, and not whole JSON: its writer stopped mid-line); it is left out and the lines before it are checked",
            history.file.display()
        );
    }
}

pub fn run(args: CheckArgs) -> anyhow::Result<Verdict> {
    let time_limit = Duration::try_from_secs_f64(args.time_limit)
        .ok()
        .filter(|d| !d.is_zero())
        .context("--time-limit must be a positive number of seconds")?;
    let options = CheckOptions {
        model: args.model,
        time_limit,
        jobs: args.jobs.map(usize::from),
        ..CheckOptions::default()
    };
    if args.report.is_some() && args.histories.len() > 1 {
        anyhow::bail!("--report DIR takes one history; run directories get their own report");
    }
    let mut worst = Verdict::Valid;
    let mut reports = Vec::new();
    for path in &args.histories {
        let history = load_history_as(path, args.format.format()).map_err(|e| {
            // Advice about formats only helps a file that was read.
            let advice = match &e {
                CheckerError::Io { source, .. } if source.kind() == ErrorKind::NotFound => {
                    "cannot check this history (give a history file or a run directory)"
                }
                CheckerError::Io { .. } => "cannot check this history",
                _ => "cannot check this history (fix it, or name its format with --format)",
            };
            anyhow::Error::new(e).context(advice)
        })?;
        warn_of_torn_tail(&history);
        let mut semantics = history.format.semantics();
        if let Some(InitialArg(v)) = args.initial {
            semantics.initial = v;
        }
        if let Some(f) = args.failed_cas {
            semantics.fail_cas_is_mismatch = f == FailedCasArg::Mismatch;
        }
        if let Some(n) = args.nil_reads {
            semantics.nil_read_unconstrained = n == NilReadsArg::Unconstrained;
        }
        let options = CheckOptions {
            semantics,
            ..options.clone()
        };
        let report = faultline_checker::check::check_events(&history.events, &options)
            .with_context(|| {
                format!(
                    "checking {}: fix the history or pass the right --model",
                    path.display()
                )
            })?;
        if path.is_dir() {
            let results = path.join("results.json");
            write_results(&results, &report)
                .with_context(|| format!("writing {}", results.display()))?;
            write_run_report(path, &history, &report)?;
        } else if let Some(dir) = &args.report {
            let files = faultline_checker::report::write_report(dir, &history, &report, None)?;
            eprintln!("report: {}", files.html.display());
        }
        worst = worst.worst(report.verdict());
        if args.json {
            reports.push(serde_json::to_value(&report)?);
        } else {
            crate::stdout::line(summary_line(path, &report))?;
        }
    }
    if args.json {
        crate::stdout::line(serde_json::to_string_pretty(&reports)?)?;
    } else if args.histories.len() > 1 {
        crate::stdout::line(format!("{} histories: {worst}", args.histories.len()))?;
    }
    Ok(worst)
}

/// Write the report of a run directory into it, with the run's test.json when present.
pub fn write_run_report(
    dir: &std::path::Path,
    history: &faultline_checker::LoadedHistory,
    report: &CheckReport,
) -> anyhow::Result<std::path::PathBuf> {
    let test_json: Option<serde_json::Value> = std::fs::read(dir.join("test.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let files = faultline_checker::report::write_report(dir, history, report, test_json.as_ref())
        .with_context(|| format!("writing the report of {}", dir.display()))?;
    Ok(files.html)
}

/// Write results.json next to the history, replacing any older one atomically.
pub fn write_results(path: &std::path::Path, report: &CheckReport) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(report)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn summary_line(path: &std::path::Path, report: &CheckReport) -> String {
    let s = &report.stats;
    let mut line = format!(
        "{}: {} ({} ops on {} key{}: {} ok, {} fail, {} info; checked in {:.1} ms)",
        path.display(),
        report.verdict(),
        s.ops,
        s.keys,
        if s.keys == 1 { "" } else { "s" },
        s.ok,
        s.fail,
        s.info,
        s.elapsed_ms
    );
    for c in &report.counterexamples {
        line.push_str(&format!("\n  {}", c.headline()));
    }
    let mut stopped = 0;
    for (key, k) in &report.keys {
        match (k.valid, &k.reason) {
            (Verdict::Unknown, Some(why)) if why == CANCELLED => stopped += 1,
            // A history of one register (or of transactions) has no key name.
            (Verdict::Unknown, Some(why)) if key.is_empty() => {
                line.push_str(&format!("\n  unknown: {why}"))
            }
            (Verdict::Unknown, Some(why)) => {
                line.push_str(&format!("\n  key {key}: unknown: {why}"))
            }
            _ => {}
        }
    }
    if stopped > 0 {
        line.push_str(&format!(
            "\n  {stopped} other keys not decided: their search stopped at the first violation"
        ));
    }
    line
}
