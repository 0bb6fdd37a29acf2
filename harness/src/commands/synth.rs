//! `faultline synth` (under construction in this branch).

use faultline_checker::Verdict;

#[derive(Debug, clap::Args)]
pub struct SynthArgs {}

pub fn run(_args: SynthArgs) -> anyhow::Result<Verdict> {
    anyhow::bail!("faultline synth is not built yet")
}
