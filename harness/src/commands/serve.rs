//! `faultline serve` (under construction in this branch).

use faultline_checker::Verdict;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {}

pub fn run(_args: ServeArgs) -> anyhow::Result<Verdict> {
    anyhow::bail!("faultline serve is not built yet")
}
