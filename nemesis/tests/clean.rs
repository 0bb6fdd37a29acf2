//! `clean` removes everything a run that was SIGKILLed left behind.

use std::io::BufRead;
use std::time::Duration;

use crate::common::*;

const HOLD: &str = "FAULTLINE_TEST_HOLD_LAB";

/// Builds a lab with a running node. Alone it tears down and checks nothing is left; as the
/// child of `clean_removes_what_a_sigkilled_run_left` (env HOLD set) it reports the lab and
/// then waits to be killed, so its teardown never runs.
#[tokio::test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn lab_holder_tears_down_or_waits_to_be_killed() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(2, dir.path()).await;
    let pid = lab
        .start_node("n1", echo_server(&lab, "n1", 7500, false))
        .await
        .unwrap();
    // Not paused: when the owner dies, the kernel sends SIGHUP+SIGCONT to a newly orphaned
    // process group that has stopped members (POSIX _exit), which would end the node for us.
    let (name, subnet) = (lab.name().to_string(), lab.subnet());
    if std::env::var_os(HOLD).is_some() {
        println!("READY {name} {pid}");
        tokio::time::sleep(Duration::from_secs(60)).await;
        panic!("was not killed within 60 s");
    }
    lab.teardown().await.unwrap();
    assert!(namespaces_of(&name).is_empty(), "{subnet}");
    assert!(!process_alive(pid));
}

#[test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
fn clean_removes_what_a_sigkilled_run_left() {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "clean::lab_holder_tears_down_or_waits_to_be_killed",
            "--ignored",
            "--nocapture",
        ])
        .env(HOLD, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let ready = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .take(100)
        .find(|line| line.starts_with("READY "))
        .expect("child reports its lab");
    let mut words = ready.split_whitespace().skip(1);
    let name = words.next().unwrap().to_string();
    let node_pid: u32 = words.next().unwrap().parse().unwrap();
    child.kill().unwrap(); // SIGKILL: no teardown, no Drop
    child.wait().unwrap();

    // What a killed run leaves: namespaces, guard table, a running node, the state file.
    let state = faultline_nemesis::state_dir().join(format!("{name}.json"));
    assert_eq!(namespaces_of(&name).len(), 4, "br, ctl, n1, n2 left behind");
    assert!(nft_tables().contains(&format!("{name}_guard")));
    assert!(process_alive(node_pid), "node outlives its run");
    assert!(state.exists());

    let report = faultline_nemesis::clean().unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    let removed = report.removed.join("\n");
    // Another clean running at the same moment (a concurrent test run) may have taken this
    // lab; cleans are serialised, so a report has all of a lab or none of it.
    if removed.contains(&name) {
        for line in [
            format!("killed process {node_pid} (node n1)"),
            format!("deleted network namespace {name}-br"),
            format!("deleted network namespace {name}-n1"),
            format!("deleted nft table inet {name}_guard"),
            format!("removed state file {}", state.display()),
        ] {
            assert!(removed.contains(&line), "missing {line:?} in:\n{removed}");
        }
    }
    assert!(namespaces_of(&name).is_empty());
    assert!(!nft_tables().contains(&format!("{name}_guard")));
    assert!(!state.exists());
    for _ in 0..100 {
        if !process_alive(node_pid) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!process_alive(node_pid), "node process killed");
}

#[tokio::test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn clean_leaves_labs_of_live_runs_alone() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(1, dir.path()).await;
    let report = faultline_nemesis::clean().unwrap();
    assert!(
        report.left_alone.iter().any(|l| l.starts_with(lab.name())),
        "{report:?}"
    );
    assert_eq!(namespaces_of(lab.name()).len(), 3);
    lab.teardown().await.unwrap();
}
