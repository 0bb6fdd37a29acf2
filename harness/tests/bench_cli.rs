//! `faultline bench` prints figures; these check that each kind runs and says what it measured
//! (never how fast: these machines are shared).

use std::process::Command;

fn faultline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
}

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
