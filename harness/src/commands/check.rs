//! `faultline check` (under construction in this branch).

use faultline_checker::Verdict;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {}

pub fn run(_args: CheckArgs) -> anyhow::Result<Verdict> {
    anyhow::bail!("faultline check is not built yet")
}
