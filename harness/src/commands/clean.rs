//! `faultline clean`: removes what killed runs left behind — lab network namespaces, the
//! root-namespace guard tables, node processes (checked by PID and start time, so a recycled
//! PID is never signalled) and state files; on remote hosts, over SSH, the run's faults, nodes
//! and files (see `hosts_state`) — and says what it removed. Runs still alive are left alone.

use anyhow::Context;
use faultline_checker::Verdict;

#[derive(Debug, clap::Args)]
pub struct CleanArgs {
    /// Print the report as JSON on stdout instead of one line per item.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: CleanArgs) -> anyhow::Result<Verdict> {
    let dir = faultline_nemesis::state_dir();
    let mut report = faultline_nemesis::clean()
        .with_context(|| format!("cleaning lab leftovers recorded in {}", dir.display()))?;
    crate::hosts_state::clean_abandoned_hosts(&mut report);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for line in &report.removed {
            println!("{line}");
        }
        for line in &report.left_alone {
            println!("left alone: {line}");
        }
        if report.removed.is_empty() {
            println!("nothing to clean (state files in {})", dir.display());
        }
    }
    if !report.failed.is_empty() {
        for line in &report.failed {
            eprintln!("could not clean {line}");
        }
        anyhow::bail!(
            "{} item(s) could not be cleaned (see the lines above): labs need root; hosts need the SSH access their run had, from the same network namespace",
            report.failed.len()
        );
    }
    Ok(Verdict::Valid)
}
