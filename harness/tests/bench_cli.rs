//! `faultline bench` prints figures; these check that each kind runs and says what it measured
//! (never how fast: these machines are shared).

mod common;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{SignalOnDrop, faultline, wait_for};
use nix::sys::signal::Signal;

fn stdout_of(args: &[&str]) -> String {
    let out = faultline().args(args).output().expect("faultline runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn checker_bench_names_its_history_and_verdict() {
    let line = stdout_of(&[
        "bench", "checker", "--ops", "2000", "--procs", "4", "--keys", "2",
    ]);
    assert!(line.contains("2000 ops, 4 processes, 2 keys"), "{line}");
    assert!(line.contains(": valid (peak memory"), "{line}");
    let line = stdout_of(&[
        "bench",
        "checker",
        "--ops",
        "2000",
        "--stale-read",
        "--register",
    ]);
    assert!(
        line.contains("reads and writes only, one stale read"),
        "{line}"
    );
    assert!(line.contains(": invalid ("), "{line}");
}

#[test]
fn datasets_bench_compares_each_verdict_with_the_manifest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"write","key":"a","value":1}
{"index":1,"time":1,"process":0,"type":"ok","f":"write","key":"a","value":1}"#;
    std::fs::write(dir.path().join("good.jsonl"), good).expect("write");
    std::fs::write(
        dir.path().join("MANIFEST.tsv"),
        "# a comment\nfile\tsource\tformat\tops\tinfo\texpected_linearizable\texpected_from\n\
         good.jsonl\there\tjsonl\t1\t0\ttrue\ta test\n",
    )
    .expect("write manifest");
    let out = stdout_of(&["bench", "datasets", dir.path().to_str().expect("utf-8")]);
    assert!(
        out.contains("good.jsonl\tjsonl\tvalid\texpected valid"),
        "{out}"
    );
    assert!(
        out.contains("1 histories, 1 with the expected verdict"),
        "{out}"
    );
}

#[test]
fn harness_bench_records_operations() {
    let line = stdout_of(&["bench", "harness", "--clients", "4", "--seconds", "1"]);
    assert!(line.contains("operations recorded"), "{line}");
    assert!(line.contains("by 4 clients"), "{line}");
}

#[test]
fn raft_bench_drives_a_real_cluster_and_prints_a_row_per_workload_and_client_count() {
    let out = stdout_of(&[
        "bench",
        "raft",
        "--nodes",
        "3",
        "--clients",
        "1,2",
        "--seconds",
        "1",
        "--mix",
        "writes,1:1:1",
    ]);
    assert!(out.contains("raft: 3 nodes on loopback"), "{out}");
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() == 12 && (f[0] == "writes" || f[0] == "1:1:1"))
        .collect();
    let shape: Vec<(&str, &str)> = rows.iter().map(|f| (f[0], f[1])).collect();
    assert_eq!(
        shape,
        [
            ("writes", "1"),
            ("writes", "2"),
            ("1:1:1", "1"),
            ("1:1:1", "2")
        ],
        "{out}"
    );
    for row in &rows {
        let ops: u64 = row[2].parse().expect("ops is a number");
        let ok: u64 = row[4].parse().expect("ok is a number");
        assert!(ok > 0 && ok <= ops, "a healthy cluster answers: {row:?}");
        assert_eq!(row[6], "0", "nothing refused on a healthy cluster: {row:?}");
    }
    // Writes never mismatch; they are all ok on a healthy cluster.
    assert_eq!(rows[0][2], rows[0][4], "{out}");
}

#[test]
#[ignore = "needs root, nftables: run by scripts/test.sh"]
fn lab_bench_times_every_step_and_leaves_no_lab_behind() {
    let out = faultline()
        .args(["bench", "lab", "--nodes", "3", "--runs", "2"])
        .output()
        .expect("faultline runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("lab: 3 nodes in network namespaces, runs: 2"),
        "{stdout}"
    );
    let steps: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_suffix(" ms"))
        .map(|l| {
            let (step, figures) = l.trim().split_once("  ").expect("a step and its figures");
            let figures: Vec<f64> = figures
                .split('/')
                .map(|f| f.trim().parse().expect("milliseconds"))
                .collect();
            assert!(
                figures.len() == 3 && figures[0] <= figures[1] && figures[1] <= figures[2],
                "min, median, max: {l}"
            );
            step
        })
        .collect();
    assert_eq!(
        steps,
        [
            "build the lab",
            "start a process on every node",
            "partition (halves)",
            "heal the partition",
            "kill every node",
            "restart every node",
            "pause every node",
            "resume every node",
            "tear the lab down",
        ],
        "{stdout}"
    );
    // Each run's lab really was built (and the faults taken), and none is left.
    assert_eq!(labs_built_and_gone(&stderr), 2, "{stderr}");
    assert_eq!(stderr.matches("fault started").count(), 6, "{stderr}");
}

/// Ctrl-C ends the bench once the run in progress has torn its lab down, with the figures of
/// the runs that ended.
#[test]
#[ignore = "needs root, nftables: run by scripts/test.sh"]
fn ctrl_c_ends_the_lab_bench_after_the_run_in_progress_and_leaves_no_lab() {
    let (stdout, stderr) = interrupted(&["lab", "--nodes", "3", "--runs", "1000"], |_, log| {
        log.contains("lab ready").then_some(())
    });
    let runs: usize = stdout
        .split("runs: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .expect("the runs that ended are counted");
    assert!((1..1000).contains(&runs), "{stdout}");
    assert_eq!(labs_built_and_gone(&stderr), runs, "{stderr}");
}

/// Ctrl-C in the middle of a row stops its clients, its servers and its lab, prints no
/// figures for the cut-short row and removes the bench's data directory.
#[test]
fn ctrl_c_stops_the_raft_bench_row_in_progress_and_its_servers() {
    // Should this test fail with the servers left running, they are killed by their PIDs.
    let servers = KillOnDrop::default();
    let (stdout, _) = interrupted(
        &[
            "raft",
            "--nodes",
            "3",
            "--clients",
            "2",
            "--seconds",
            "120",
            "--mix",
            "writes",
        ],
        |bench, _| {
            let found = children(bench);
            let ready = found.len() == 3;
            *servers.0.lock().expect("not poisoned") = found;
            ready.then_some(())
        },
    );
    assert!(stdout.contains("interrupted by a signal"), "{stdout}");
    assert!(!stdout.contains("writes         2"), "no row: {stdout}");
    for &server in servers.0.lock().expect("not poisoned").iter() {
        assert!(
            !std::path::Path::new(&format!("/proc/{server}")).exists(),
            "server {server} still runs"
        );
    }
    let data = stdout
        .split("data in ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .expect("the header names the data directory");
    assert!(!std::path::Path::new(data).exists(), "{data} left");
}

/// Runs `faultline bench <args>` until `ready` (given its PID and its log so far) says so,
/// then sends it SIGINT; it must end by itself, successfully, saying it caught the signal.
/// Its stdout and stderr.
fn interrupted<T>(
    args: &[&str],
    mut ready: impl FnMut(u32, &str) -> Option<T>,
) -> (String, String) {
    let mut child = faultline()
        .arg("bench")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("faultline starts");
    // Stopped the same way if this test fails before it does.
    let bench = SignalOnDrop::new(child.id(), Signal::SIGTERM);
    let stderr = Arc::new(Mutex::new(String::new()));
    let reader = {
        let (pipe, stderr) = (child.stderr.take().expect("piped"), stderr.clone());
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = stderr.lock().expect("not poisoned");
                text.push_str(&line);
                text.push('\n');
            }
        })
    };
    let pid = child.id();
    wait_for(
        Duration::from_secs(60),
        Duration::from_millis(20),
        &format!("bench {args:?} ready to be interrupted"),
        || ready(pid, &stderr.lock().expect("not poisoned")),
    );
    bench.send(Signal::SIGINT);
    let out = child.wait_with_output().expect("the bench ends");
    reader.join().expect("stderr read");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr.lock().expect("not poisoned").clone(),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("SIGINT: stopping"), "{stderr}");
    (stdout, stderr)
}

/// Processes this test's bench started, SIGKILLed when the test ends if they still run.
#[derive(Default)]
struct KillOnDrop(Mutex<Vec<u32>>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let pids = self.0.lock().map(|p| p.clone()).unwrap_or_default();
        for pid in pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

/// The PIDs of `pid`'s child processes, from /proc.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
                .flat_map(|c| {
                    c.split_whitespace()
                        .filter_map(|p| p.parse().ok())
                        .collect::<Vec<u32>>()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// How many labs the bench's log says it built; each must be gone from `ip netns`.
fn labs_built_and_gone(stderr: &str) -> usize {
    let labs: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("lab ready"))
        .filter_map(|l| l.split("lab=").nth(1)?.split_whitespace().next())
        .collect();
    let netns = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip runs");
    let netns = String::from_utf8_lossy(&netns.stdout);
    for lab in &labs {
        assert!(!netns.contains(lab), "{lab} left: {netns}");
    }
    labs.len()
}
