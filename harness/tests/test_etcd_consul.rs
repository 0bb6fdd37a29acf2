//! `faultline test` end to end against etcd and Consul in a real lab: each system's safe read
//! mode gives a valid history under faults, and its local read mode is caught serving stale
//! values. These need root, nftables, etcd and Consul (`scripts/install-targets.sh`), so they
//! are ignored by default and run by scripts/test.sh.

mod common;

use std::process::Output;

use common::{
    assert_exits, assert_verdict, describe, lab_under, namespaces, run_test, timed, write_script,
};

/// A 15-second run on `target` with `args`, its faults drawn from seed 1.
fn run_on(target: &str, args: &[&str]) -> Output {
    let results = tempfile::tempdir().expect("tempdir");
    let mut all = vec!["--target", target];
    all.extend_from_slice(args);
    run_test(results.path(), &timed("15", "3", "1", &all))
}

/// `target` in its safe read mode gives a valid history under all three process faults.
fn assert_valid_under_partitions_kills_and_pauses(target: &str) {
    let out = run_on(target, &["--nemesis", "partition,kill,pause"]);
    assert_exits(&out, 0);
}

/// `target` in `read_mode` under partitions serves a stale read, and the run says so.
fn assert_found_stale_under_partitions(target: &str, read_mode: &str) {
    let out = run_on(
        target,
        &["--read-mode", read_mode, "--nemesis", "partition"],
    );
    assert_verdict(&out, 1, "invalid");
}

#[test]
#[ignore = "needs root, nftables and etcd: run by scripts/test.sh"]
fn etcd_linearizable_reads_under_partitions_kills_and_pauses_are_valid() {
    assert_valid_under_partitions_kills_and_pauses("etcd");
}

#[test]
#[ignore = "needs root, nftables and etcd: run by scripts/test.sh"]
fn etcd_serializable_reads_under_partitions_are_found_stale() {
    assert_found_stale_under_partitions("etcd", "serializable");
}

#[test]
#[ignore = "needs root, nftables and Consul: run by scripts/test.sh"]
fn consul_consistent_reads_under_partitions_kills_and_pauses_are_valid() {
    assert_valid_under_partitions_kills_and_pauses("consul");
}

#[test]
#[ignore = "needs root, nftables and Consul: run by scripts/test.sh"]
fn consul_stale_reads_under_partitions_are_found_stale() {
    assert_found_stale_under_partitions("consul", "stale");
}

#[test]
fn clock_faults_are_refused_for_go_targets_with_the_reason() {
    let results = tempfile::tempdir().expect("tempdir");
    let out = run_test(results.path(), &["--target", "etcd", "--nemesis", "clock"]);
    assert_exits(&out, 3);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("libfaketime"),
        "{}",
        describe(&out)
    );
}

#[test]
fn read_modes_are_checked_per_target() {
    let results = tempfile::tempdir().expect("tempdir");
    for args in [
        &["--target", "etcd", "--read-mode", "stale"][..],
        &["--target", "consul", "--read-mode", "serializable"][..],
        &["--target", "raft", "--read-mode", "serializable"][..],
        &["--target", "etcd", "--unsafe", "stale-reads"][..],
    ] {
        let out = run_test(results.path(), args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", describe(&out));
    }
}

#[test]
fn a_missing_server_binary_is_reported_before_the_lab_with_how_to_install_it() {
    let results = tempfile::tempdir().expect("tempdir");
    for (target, flag) in [("etcd", "--etcd-bin"), ("consul", "--consul-bin")] {
        let missing = results.path().join(format!("no-{target}"));
        let missing = missing.to_str().expect("utf-8 path");
        let out = run_test(results.path(), &["--target", target, flag, missing]);
        assert_eq!(out.status.code(), Some(3), "{target}: {}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(missing) && stderr.contains("scripts/install-targets.sh"),
            "{target}: {}",
            describe(&out)
        );
        // Refused while resolving the spec: no run directory was made, so no lab was built.
        let made: Vec<_> = std::fs::read_dir(results.path())
            .expect("results dir")
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(made.is_empty(), "{target}: {made:?}");
    }
}

/// A server that starts, answers `--version`, and then exits: no leader comes, the error names
/// the nodes whose servers are gone, and the lab is torn down all the same.
#[test]
#[ignore = "needs root and nftables: run by scripts/test.sh"]
fn servers_that_exit_after_starting_are_named_in_the_error() {
    let results = tempfile::tempdir().expect("tempdir");
    let server = results.path().join("etcd-that-exits");
    write_script(
        &server,
        "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'etcd Version: 3.4.23'; exit 0; }\n\
         echo giving up\nsleep 1\nexit 1\n",
    );
    let server = server.to_str().expect("utf-8 path");
    let out = run_test(
        results.path(),
        &["--target", "etcd", "--etcd-bin", server, "--nodes", "3"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("n1, n2, n3 started but exited"),
        "{}",
        describe(&out)
    );
    let lab = stderr
        .lines()
        .find_map(|l| l.split("lab=").nth(1)?.split_whitespace().next())
        .expect("the log names the lab");
    assert!(!namespaces().contains(lab), "namespaces of {lab} remain");
    assert!(
        lab_under(results.path()).is_none(),
        "the lab's state file remains"
    );
}
