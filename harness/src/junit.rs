//! `--junit FILE`: one test case per run, failed when the history is not linearizable.

use std::path::Path;

use anyhow::Context;
use faultline_checker::Verdict;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::run::RunSummary;

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
        suite.add_test_case(case);
    }
    let mut report = Report::new("faultline");
    report.add_test_suite(suite);
    let xml = report.to_string().context("serialising the JUnit report")?;
    std::fs::write(path, xml).with_context(|| format!("writing --junit {}", path.display()))
}
