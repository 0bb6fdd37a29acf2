//! One module per subcommand; each owns its arguments and returns the verdict that becomes the
//! exit code (commands that check nothing return `Valid` on success).

pub mod bench;
pub mod check;
pub mod clean;
pub mod report;
pub mod serve;
pub mod synth;
pub mod test;

use faultline_checker::Verdict;

use crate::cli::Command;

pub fn run(command: Command) -> anyhow::Result<Verdict> {
    match command {
        Command::Test(args) => test::run(*args),
        Command::Check(args) => check::run(args),
        Command::Synth(args) => synth::run(args),
        Command::Report(args) => report::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Clean(args) => clean::run(args),
        Command::Bench(args) => bench::run(args),
    }
}
