//! `faultline test` (under construction in this branch).

use faultline_checker::Verdict;

#[derive(Debug, clap::Args)]
pub struct TestArgs {}

pub fn run(_args: TestArgs) -> anyhow::Result<Verdict> {
    anyhow::bail!("faultline test is not built yet")
}
