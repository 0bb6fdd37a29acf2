//! `faultline synth OUT`: write a seeded synthetic history (linearizable by construction, or
//! with one planted stale read), for benchmarks of the checker and the report; with `--lock`,
//! a history of locks (the `mutex` model), optionally with a planted double acquire; with
//! `--txn`, a history of transactions over several registers (the `multi-register` model).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use faultline_checker::Verdict;
use faultline_checker::synth::{
    LockSpec, SynthSpec, TxnSpec, write_history, write_lock_history, write_txn_history,
};

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
    /// Keys (independent registers); with --lock, locks; with --txn, the registers the
    /// transactions share.
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
    /// A history of locks instead (acquire, release; one lock per key): --crash is then the
    /// probability that an acquire crashes.
    #[arg(long, conflicts_with_all = ["unique", "stale_read", "register"])]
    pub lock: bool,
    /// With --lock: end with two acquires of lock l0 that both succeed, one after the other,
    /// with no release between (not linearizable).
    #[arg(long, requires = "lock")]
    pub double_acquire: bool,
    /// A history of transactions instead (one to three reads and writes each, over --keys
    /// registers): --unique and --stale-read apply; without --unique, values 1 to 5 repeat.
    #[arg(long, conflicts_with_all = ["lock", "register"])]
    pub txn: bool,
    /// With --txn: end with a transaction that reads r0 as a running transaction wrote it
    /// and r1 as it was before (a torn read; not linearizable). Needs --keys 2 or more.
    #[arg(long, requires = "txn", conflicts_with = "stale_read")]
    pub torn_read: bool,
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
    if args.lock {
        return synth_locks(&args);
    }
    if args.txn {
        return synth_transactions(&args);
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
    let written = write_file(&args.out, |out| write_history(&spec, out))?;
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

fn synth_locks(args: &SynthArgs) -> anyhow::Result<Verdict> {
    let spec = LockSpec {
        ops: args.ops,
        procs: args.procs.max(1),
        locks: args.keys.max(1),
        crash: args.crash,
        double_acquire: args.double_acquire,
        seed: args.seed,
    };
    let written = write_file(&args.out, |out| write_lock_history(&spec, out))?;
    let ending = if args.double_acquire {
        ", ending in a double acquire of l0"
    } else {
        ""
    };
    println!(
        "{}: {} lines, {} acquires succeeded{ending}",
        args.out.display(),
        written.lines,
        written.acquired
    );
    Ok(Verdict::Valid)
}

fn synth_transactions(args: &SynthArgs) -> anyhow::Result<Verdict> {
    let spec = TxnSpec {
        ops: args.ops,
        procs: args.procs.max(1),
        registers: args.keys.max(1),
        crash: args.crash,
        unique: args.unique,
        stale_read: args.stale_read,
        torn_read: args.torn_read,
        seed: args.seed,
    };
    if args.torn_read && spec.registers < 2 {
        anyhow::bail!(
            "--torn-read reads two registers: give --keys 2 or more (it is {})",
            args.keys
        );
    }
    let lines = write_file(&args.out, |out| write_txn_history(&spec, out))?;
    let ending = if args.stale_read {
        ", ending in a stale read of r0"
    } else if args.torn_read {
        ", ending in a torn read of r0 and r1"
    } else {
        ""
    };
    println!("{}: {lines} lines{ending}", args.out.display());
    Ok(Verdict::Valid)
}

/// Create `path` and write it through a buffer, flushed here so that a full disk is an error
/// rather than a short file.
pub(crate) fn write_file<T>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<std::fs::File>) -> std::io::Result<T>,
) -> anyhow::Result<T> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::new(file);
    write(&mut out)
        .and_then(|written| out.flush().map(|()| written))
        .with_context(|| format!("writing {}", path.display()))
}
