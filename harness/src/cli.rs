//! The command line (clap derive). Each subcommand's arguments live beside the code that runs
//! it, in `commands/`, and are turned into typed specs there before any work starts.

use clap::{Parser, Subcommand};

use crate::commands::{bench, check, clean, report, serve, synth, test};

/// Jepsen-style linearizability testing for etcd, Consul and the bundled Raft store.
///
/// Exit codes: 0 valid, 1 invalid (a linearizability violation), 2 unknown (the checker ran out
/// of budget), 3 error (setup, bad input, unreachable target).
#[derive(Debug, Parser)]
#[command(name = "faultline", version, about, long_about)]
pub struct Cli {
    /// More log output on stderr (-v debug, -vv trace). `RUST_LOG` overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a cluster, run a workload under faults, check the history and write a report.
    Test(Box<test::TestArgs>),
    /// Check recorded histories (ours, Jepsen's, Porcupine's) for linearizability.
    Check(check::CheckArgs),
    /// Write a seeded synthetic history, for benchmarks and tests.
    Synth(synth::SynthArgs),
    /// Regenerate the report of a stored run.
    Report(report::ReportArgs),
    /// Browse stored runs over HTTP (read-only).
    Serve(serve::ServeArgs),
    /// Remove what a killed run left behind: namespaces, nft rules, processes; on remote hosts
    /// (over SSH) its faults, nodes and files.
    Clean(clean::CleanArgs),
    /// Print speed figures: the harness's recording rate, the checker, the report.
    Bench(bench::BenchArgs),
}

/// Logs go to stderr; stdout carries results only. Colour only on a terminal (and not under
/// `NO_COLOR`): CI log files and `2>file` get plain lines, not escape codes.
pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(colour_on_stderr())
        .init();
}

fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
