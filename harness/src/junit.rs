//! `--junit FILE`: one test case per run, failed when the history is not linearizable, with
//! the run's summary as its output.

use std::path::Path;

use anyhow::Context;
use faultline_checker::Verdict;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::run::RunSummary;

/// Before any run: make `path`'s directory and check the file can be written, so a bad
/// `--junit` path fails at once instead of after the runs.
pub fn prepare(path: &Path) -> anyhow::Result<()> {
    let cannot = || {
        format!(
            "--junit {}: cannot write the file there; give a path in a writable directory",
            path.display()
        )
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(cannot)?;
    }
    let existed = path.exists();
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(cannot)?;
    // A run that then fails writes no report: leave no empty file for CI to choke on.
    if !existed {
        std::fs::remove_file(path).with_context(cannot)?;
    }
    Ok(())
}

pub fn write(path: &Path, runs: &[RunSummary]) -> anyhow::Result<()> {
    let mut suite = TestSuite::new("faultline test");
    for run in runs {
        let status = match run.verdict {
            Verdict::Valid => TestCaseStatus::success(),
            verdict => {
                let kind = if verdict == Verdict::Invalid {
                    NonSuccessKind::Failure
                } else {
                    NonSuccessKind::Error
                };
                let mut status = TestCaseStatus::non_success(kind);
                status.set_message(format!("{verdict}: {}", run.headline()));
                status.set_type(verdict.to_string());
                status
            }
        };
        let mut case = TestCase::new(format!("{} seed {}", run.name, run.seed), status);
        case.set_classname(run.name.clone());
        case.set_time(run.elapsed);
        // What the terminal showed (ops, latency, verdict, run and report paths): CI pages
        // show a case's output beside it.
        case.set_system_out(run.render());
        suite.add_test_case(case);
    }
    let mut report = Report::new("faultline");
    report.add_test_suite(suite);
    let xml = report.to_string().context("serialising the JUnit report")?;
    std::fs::write(path, xml).with_context(|| format!("writing --junit {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_makes_the_directory_and_refuses_what_cannot_be_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nested = dir.path().join("ci/reports/faultline.xml");
        prepare(&nested).expect("directories made");
        assert!(nested.parent().expect("has one").is_dir());
        assert!(!nested.exists(), "no empty report is left behind");
        let file = dir.path().join("a-file");
        std::fs::write(&file, "").expect("write");
        let under_a_file = file.join("junit.xml");
        let error = format!("{:#}", prepare(&under_a_file).unwrap_err());
        assert!(
            error.contains("give a path in a writable directory"),
            "{error}"
        );
    }
}
