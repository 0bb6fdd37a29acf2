//! What the end-to-end tests of `faultline test` share: running the built binary and reading
//! the run directory it leaves.

#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn faultline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
}

/// `faultline test` with `args`, results under `results`.
pub fn run_test(results: &Path, args: &[&str]) -> Output {
    faultline()
        .arg("test")
        .args(args)
        .arg("--results")
        .arg(results)
        .env("CI", "1")
        .output()
        .expect("faultline runs")
}

pub fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr (tail):\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        tail(&String::from_utf8_lossy(&out.stderr), 40)
    )
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The run directories under `results` (one per run), oldest first.
pub fn run_dirs(results: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for name in std::fs::read_dir(results)
        .expect("results exists")
        .flatten()
    {
        if name.file_name() == "latest" || !name.path().is_dir() {
            continue;
        }
        for run in std::fs::read_dir(name.path()).expect("readable").flatten() {
            dirs.push(run.path());
        }
    }
    dirs.sort();
    dirs
}

pub fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
