//! What the end-to-end tests of `faultline test` share: running the built binary and reading
//! the run directory it leaves.

#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
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

/// `--time-limit` and `--nemesis-interval` (in seconds) and `--seed`, then `args`. The three
/// fix which faults a run draws and when they come, so a failing run can be re-run as it was.
pub fn timed<'a>(
    time_limit: &'a str,
    nemesis_interval: &'a str,
    seed: &'a str,
    args: &[&'a str],
) -> Vec<&'a str> {
    let mut all = vec![
        "--time-limit",
        time_limit,
        "--nemesis-interval",
        nemesis_interval,
        "--seed",
        seed,
    ];
    all.extend_from_slice(args);
    all
}

/// `out` exited with `code`; the message shows its output.
pub fn assert_exits(out: &Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "{}", describe(out));
}

/// `out` exited with `code` and printed `verdict: <verdict>` on stdout.
pub fn assert_verdict(out: &Output, code: i32, verdict: &str) {
    assert_exits(out, code);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("verdict: {verdict}")), "{stdout}");
}

/// The records of the run directory's `history.jsonl`; a line that is not JSON fails the test.
pub fn history(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("history.jsonl"))
        .expect("history")
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect()
}

/// `faultline check` re-reads the history the run left in `dir` and finds it valid.
pub fn assert_history_checks_valid(dir: &Path) {
    let check = faultline()
        .arg("check")
        .arg(dir)
        .output()
        .expect("check runs");
    assert_exits(&check, 0);
}

/// Polls `ready` every `poll` until it gives a value; fails with `failure` if none came within
/// `limit`.
pub fn wait_for<T>(
    limit: Duration,
    poll: Duration,
    failure: &str,
    mut ready: impl FnMut() -> Option<T>,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = ready() {
            return value;
        }
        assert!(started.elapsed() < limit, "{failure}");
        std::thread::sleep(poll);
    }
}

/// Sends `signal` to a run when dropped unless disarmed by [`SignalOnDrop::send`], so that a
/// test failing before it signals the run itself does not leave the run (and its lab) behind.
pub struct SignalOnDrop {
    pid: Pid,
    signal: Signal,
    armed: bool,
}

impl SignalOnDrop {
    pub fn new(pid: u32, signal: Signal) -> SignalOnDrop {
        SignalOnDrop {
            pid: Pid::from_raw(pid as i32),
            signal,
            armed: true,
        }
    }

    /// Sends `signal` now (the test's own), and nothing more when dropped.
    pub fn send(mut self, signal: Signal) {
        self.armed = false;
        nix::sys::signal::kill(self.pid, signal)
            .unwrap_or_else(|e| panic!("sending {signal} to the run: {e}"));
    }
}

impl Drop for SignalOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let _ = nix::sys::signal::kill(self.pid, self.signal);
        }
    }
}

/// The name of the lab whose state file says it runs under `results`.
pub fn lab_under(results: &Path) -> Option<String> {
    let needle = results.to_str()?;
    for entry in std::fs::read_dir("/run/faultline").ok()?.flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        if text.contains(needle) {
            let state: Value = serde_json::from_str(&text).ok()?;
            return state["lab"].as_str().map(str::to_string);
        }
    }
    None
}

/// What `ip netns list` shows now.
pub fn namespaces() -> String {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes `script` to `path` and makes it executable: a stand-in server for start failures.
pub fn write_script(path: &Path, script: &str) {
    std::fs::write(path, script).expect("write the script");
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("make the script executable");
}
