//! `faultline report` (under construction in this branch).

use faultline_checker::Verdict;

#[derive(Debug, clap::Args)]
pub struct ReportArgs {}

pub fn run(_args: ReportArgs) -> anyhow::Result<Verdict> {
    anyhow::bail!("faultline report is not built yet")
}
