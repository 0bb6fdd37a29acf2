//! `faultline clean` (under construction in this branch).

use faultline_checker::Verdict;

#[derive(Debug, clap::Args)]
pub struct CleanArgs {}

pub fn run(_args: CleanArgs) -> anyhow::Result<Verdict> {
    anyhow::bail!("faultline clean is not built yet")
}
