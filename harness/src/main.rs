//! `faultline`: Jepsen-style linearizability testing from one command.
//!
//! The harness owns the command line, the test spec, run orchestration (lab, cluster, workers,
//! nemesis, history, check, report), the results store and `faultline serve`. Everything below
//! it sees typed specs, never raw flags.

mod cli;
mod commands;
mod error_text;
mod history;
mod hosts;
mod hosts_state;
mod junit;
mod run;
mod spec;
mod stdout;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Bad flags are an error (exit 3, DESIGN.md), not clap's 2, which means "unknown" here.
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 3 } else { 0 });
        }
    };
    cli::init_logging(cli.verbose);
    match commands::run(cli.command) {
        Ok(verdict) => ExitCode::from(verdict.exit_code()),
        Err(error) => {
            eprintln!("error: {}", error_text::error_text(&error));
            ExitCode::from(3)
        }
    }
}
