//! `faultline bench`: figures for the speed goals, printed, never asserted (these machines are
//! shared and noisy).
//!
//! - `harness`: how many operations per second the harness itself records — the real client
//!   workers, generator and history writer — against a stand-in server on loopback that
//!   answers every request at once, so the harness is all that is measured.
//! - `checker`: how long the checker takes, and how much memory it holds, on synthetic
//!   histories of a given size, concurrency and crash rate.
//! - `report`: how long writing the report of such a history takes.
//! - `raft`: throughput and latency of a bundled Raft cluster (fsync on) under a number of
//!   clients, for writes and for a read/write/CAS mix.
//! - `lab`: building and tearing down the namespace lab, and putting each fault on and off.
//!
//! # Layout
//! - `checker`: `checker`, `checker-grid`, `checker-goals`, `datasets`, `report`.
//! - `raft`: `raft` and `raft-startup`.
//! - `harness`: `harness`.
//! - `lab`: `lab`.

mod checker;
mod harness;
mod lab;
mod raft;

use anyhow::Context;
use faultline_checker::Verdict;
use faultline_checker::synth::SynthSpec;

use self::checker::{checker, checker_goals, checker_grid, datasets, report};
use self::harness::harness;
use self::lab::lab;
use self::raft::{BenchMix, RaftBench, raft_startup, raft_throughput};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchKind,
}

#[derive(Debug, clap::Subcommand)]
pub enum BenchKind {
    /// Recorded operations per second of the harness against a no-op server on loopback.
    Harness {
        #[arg(long, default_value_t = 100)]
        clients: usize,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// Checker time on synthetic histories.
    Checker {
        #[arg(long, default_value_t = 1_000_000)]
        ops: u64,
        #[arg(long, default_value_t = 10)]
        procs: u32,
        #[arg(long, default_value_t = 8)]
        keys: u32,
        /// Probability that an operation crashes (ends `info`).
        #[arg(long, default_value_t = 0.0)]
        crash: f64,
        /// Plant a stale read, so the checker must refute the history.
        #[arg(long)]
        stale_read: bool,
        /// Reads and writes only, no compare-and-set.
        #[arg(long)]
        register: bool,
    },
    /// Time to write the report (plots and page) of a synthetic history.
    Report {
        #[arg(long, default_value_t = 1_000_000)]
        ops: u64,
    },
    /// The grid of the checker's speed goals: 1e4, 1e5 and 1e6 ops at 5 and 20 clients, one
    /// key and eight, each row in a fresh process so its peak memory is its own.
    CheckerGrid {
        /// Reads and writes only, no compare-and-set.
        #[arg(long)]
        register: bool,
        /// Seconds each row may take before it is cut off.
        #[arg(long, default_value_t = 120)]
        row_timeout: u64,
    },
    /// Every speed goal of the checker, measured on this machine and printed beside its goal:
    /// Porcupine's etcd logs and kv c50-ok (from the data set directory), and synthetic
    /// histories of 1e4 ops at 20 clients, 3e3 crashed ops with a stale read, 1e6 ops, and 1e6
    /// ops of repeated values ending in a read only a crashed write explains.
    CheckerGoals {
        /// The data set directory (like ../shared/datasets).
        datasets: std::path::PathBuf,
    },
    /// Check every history of a data set directory (with its MANIFEST.tsv, like
    /// ../shared/datasets): ops, verdict, expected verdict and time per file.
    Datasets {
        /// The data set directory holding MANIFEST.tsv.
        dir: std::path::PathBuf,
    },
    /// Throughput and latency of a bundled Raft cluster (loopback lab, every write fsynced on a
    /// quorum): one row per workload and client count, each on a fresh cluster.
    Raft {
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        /// Client counts, one row each; clients are spread round-robin over the nodes.
        #[arg(long, value_delimiter = ',', default_value = "10,50")]
        clients: Vec<usize>,
        /// Seconds of load per row.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Workloads, one row each: `writes` (writes only) or weights `read:write:cas`.
        #[arg(long, value_delimiter = ',', default_value = "writes,2:1:1")]
        mix: Vec<BenchMix>,
        /// Keys in use at once.
        #[arg(long, default_value_t = 8)]
        keys: usize,
        /// Where the nodes keep their logs (default: a fresh directory under the temp dir).
        /// fsync on tmpfs costs nothing, so put it on the disk you want to measure.
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
        /// Start the nodes under libfaketime, as `faultline test` does when clock faults are
        /// among its faults (libfaketime re-reads a file on every clock call).
        #[arg(long)]
        faketime: bool,
    },
    /// Time from starting a bundled Raft cluster to its first elected leader (loopback lab).
    RaftStartup {
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Time to build and tear down the namespace lab, and to put each fault (partition, kill,
    /// pause) on every node and take it off (without root, in a user namespace, as `faultline
    /// test` runs).
    Lab {
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
}

pub fn run(args: BenchArgs) -> anyhow::Result<Verdict> {
    if matches!(args.what, BenchKind::Lab { .. }) {
        // Before any thread starts: without root this re-executes in a user namespace.
        faultline_nemesis::ensure_root_or_reexec()?;
    }
    match args.what {
        BenchKind::Harness { clients, seconds } => harness(clients.max(1), seconds),
        BenchKind::Checker {
            ops,
            procs,
            keys,
            crash,
            stale_read,
            register,
        } => checker(&SynthSpec {
            ops,
            procs,
            keys,
            crash,
            unique: true,
            stale_read,
            register_only: register,
            seed: 1,
        }),
        BenchKind::Report { ops } => report(ops),
        BenchKind::Raft {
            nodes,
            clients,
            seconds,
            mix,
            keys,
            data_dir,
            faketime,
        } => raft_throughput(&RaftBench {
            nodes: nodes.max(1),
            clients,
            seconds,
            mixes: mix,
            keys: keys.max(1),
            data_dir,
            faketime,
        }),
        BenchKind::RaftStartup { nodes, runs } => raft_startup(nodes.max(1), runs.max(1)),
        BenchKind::Lab { nodes, runs } => lab(nodes, runs.max(1)),
        BenchKind::CheckerGrid {
            register,
            row_timeout,
        } => checker_grid(register, row_timeout),
        BenchKind::Datasets { dir } => datasets(&dir),
        BenchKind::CheckerGoals { datasets } => checker_goals(&datasets),
    }?;
    Ok(Verdict::Valid)
}

/// A flag that SIGINT, SIGTERM or SIGHUP sets, for the benches that start labs and servers:
/// they end the run in progress, stop its servers and tear its lab down, instead of dying
/// and leaving them behind.
fn stop_on_signal(
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    let stopped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let signal = runtime.block_on(async { faultline_nemesis::shutdown_signal() })?;
    let on_signal = stopped.clone();
    runtime.spawn(async move {
        signal.await;
        on_signal.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    Ok(stopped)
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("faultline-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Peak resident memory of this process so far, from /proc (kB → MiB).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
