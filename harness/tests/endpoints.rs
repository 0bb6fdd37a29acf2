//! `faultline test --endpoints`: drive a cluster Faultline did not start. The test starts one
//! itself on loopback (three `faultline-raft` processes; one etcd member), outside any lab,
//! and kills exactly those processes at the end.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{describe, run_test};

/// Processes this test started; killed by PID when dropped, also when the test fails.
struct Started(Vec<Child>);

impl Drop for Started {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn raft_cluster(dir: &Path) -> (Started, String) {
    let server = Path::new(env!("CARGO_BIN_EXE_faultline")).with_file_name("faultline-raft");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let peers = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut children = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let mut cmd = Command::new(&server);
        cmd.args([
            "--id",
            &(i + 1).to_string(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--peers", &peers, "--data-dir"])
        .arg(dir.join(format!("n{}", i + 1)))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if i == 0 {
            cmd.arg("--init");
        }
        children.push(
            cmd.spawn()
                .expect("faultline-raft starts (cargo build --bins)"),
        );
    }
    let urls = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    (Started(children), urls)
}

#[test]
fn a_running_raft_cluster_is_driven_and_checked_without_a_lab() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_cluster, urls) = raft_cluster(dir.path());
    let results = dir.path().join("results");
    let out = run_test(
        &results,
        &["--endpoints", &urls, "--time-limit", "4", "--seed", "3"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("verdict: valid"), "{stdout}");
    assert!(stdout.contains("faults started: 0"), "{stdout}");
}

#[test]
#[ignore = "needs etcd (scripts/install-targets.sh): run by scripts/test.sh"]
fn a_running_etcd_member_is_driven_in_both_read_modes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (client, peer) = (free_port(), free_port());
    let etcd = Command::new("etcd")
        .args(["--name", "solo", "--data-dir"])
        .arg(dir.path().join("etcd"))
        .args([
            &format!("--listen-client-urls=http://127.0.0.1:{client}"),
            &format!("--advertise-client-urls=http://127.0.0.1:{client}"),
            &format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
            &format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
            &format!("--initial-cluster=solo=http://127.0.0.1:{peer}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd starts");
    let _started = Started(vec![etcd]);
    let url = format!("http://127.0.0.1:{client}");
    for mode in ["linearizable", "serializable"] {
        let out = run_test(
            &dir.path().join("results"),
            &[
                "--target",
                "etcd",
                "--endpoints",
                &url,
                "--read-mode",
                mode,
                "--time-limit",
                "3",
            ],
        );
        // One member: even local reads are up to date.
        assert_eq!(out.status.code(), Some(0), "{mode}: {}", describe(&out));
    }
}

#[test]
fn faults_and_planted_bugs_are_refused_against_a_running_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [
        &[
            "--endpoints",
            "http://127.0.0.1:9",
            "--nemesis",
            "partition",
        ][..],
        &[
            "--endpoints",
            "http://127.0.0.1:9",
            "--unsafe",
            "stale-reads",
        ][..],
        &["--endpoints", "ftp://127.0.0.1:9"][..],
    ] {
        let out = run_test(dir.path(), args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", describe(&out));
    }
}
