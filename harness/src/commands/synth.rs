//! `faultline synth OUT`: write a seeded synthetic history (linearizable by construction, or
//! with one planted stale read), for benchmarks of the checker and the report.

use std::io::BufWriter;
use std::path::PathBuf;

use anyhow::Context;
use faultline_checker::Verdict;
use faultline_checker::synth::{SynthSpec, write_history};

#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// Where to write the history (JSONL).
    pub out: PathBuf,
    /// Operations in all.
    #[arg(long, default_value_t = 100_000)]
    pub ops: u64,
    /// Concurrent processes.
    #[arg(long, default_value_t = 10)]
    pub procs: u32,
    /// Keys (independent registers).
    #[arg(long, default_value_t = 8)]
    pub keys: u32,
    /// Probability that an operation crashes (ends `info`, may or may not take effect).
    #[arg(long, default_value_t = 0.0)]
    pub crash: f64,
    /// Write unique values per key (as `faultline test` does).
    #[arg(long)]
    pub unique: bool,
    /// Plant one stale read at the end, making the history not linearizable (an error when
    /// no value is certainly stale: with repeated values, every one may have a crashed writer).
    #[arg(long)]
    pub stale_read: bool,
    /// Reads and writes only, no compare-and-set (the register workload).
    #[arg(long)]
    pub register: bool,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub fn run(args: SynthArgs) -> anyhow::Result<Verdict> {
    if !(0.0..=1.0).contains(&args.crash) {
        anyhow::bail!(
            "--crash is a probability between 0 and 1, not {}",
            args.crash
        );
    }
    let spec = SynthSpec {
        ops: args.ops,
        procs: args.procs.max(1),
        keys: args.keys.max(1),
        crash: args.crash,
        unique: args.unique,
        stale_read: args.stale_read,
        register_only: args.register,
        seed: args.seed,
    };
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let written = write_history(&spec, &mut BufWriter::new(file))
        .with_context(|| format!("writing {}", args.out.display()))?;
    match (args.stale_read, written.stale_read) {
        (_, Some(read)) => println!(
            "{}: {} lines, ending in a stale read of {} (value {})",
            args.out.display(),
            written.lines,
            read.key,
            read.value
        ),
        (true, None) => anyhow::bail!(
            "no stale read could be planted in {}: every value written was also written by a \
             crashed operation (which may have taken effect last) or never overwritten, so the \
             history written is linearizable; use --unique, a lower --crash, or fewer --ops",
            args.out.display()
        ),
        (false, None) => println!("{}: {} lines", args.out.display(), written.lines),
    }
    Ok(Verdict::Valid)
}
