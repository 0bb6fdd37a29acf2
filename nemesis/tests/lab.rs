//! The lab itself: topology, client runtime, guard, supervisor, teardown.

use std::time::Duration;

use faultline_nemesis::{Isolation, Lab, LabConfig, NodeCommand, NodeStatus};

use crate::common::*;

#[tokio::test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn lab_builds_unique_namespaces_and_tears_down_everything() {
    let dir = tempfile::tempdir().unwrap();
    let a = lab(3, dir.path()).await;
    let b = lab(2, &dir.path().join("b")).await;
    assert_ne!(a.name(), b.name());
    assert_ne!(a.subnet(), b.subnet());
    let mut names = namespaces_of(a.name());
    names.sort();
    let want: Vec<String> = ["br", "ctl", "n1", "n2", "n3"]
        .iter()
        .map(|s| format!("{}-{s}", a.name()))
        .collect();
    assert_eq!(names, want);
    assert!(nft_tables().contains(&format!("{}_guard", a.name())));
    let state = faultline_nemesis::state_dir().join(format!("{}.json", a.name()));
    assert!(state.exists());
    // ctl has no default route: only the connected lab subnet.
    let routes = std::process::Command::new("ip")
        .args(["-n", &a.client_netns(), "-4", "route"])
        .output()
        .unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout).to_string();
    assert!(!routes.contains("default"), "{routes}");
    let a_name = a.name().to_string();
    a.teardown().await.unwrap();
    b.teardown().await.unwrap();
    assert!(namespaces_of(&a_name).is_empty());
    assert!(!nft_tables().contains(&format!("{a_name}_guard")));
    assert!(!state.exists());
}

#[test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
fn client_runtime_sockets_are_inside_ctl_and_guard_stays_zero() {
    let dir = tempfile::tempdir().unwrap();
    let setup = tokio::runtime::Runtime::new().unwrap();
    let lab = setup.block_on(lab(2, dir.path()));
    let pid = setup
        .block_on(lab.start_node("n1", echo_server(&lab, "n1", 7000, false)))
        .unwrap();
    assert!(process_alive(pid));
    wait_echo(&lab.client_netns(), lab.node_ip("n1"), 7000);
    let clients = lab.client_runtime(2).unwrap();
    assert!(!lab.is_client_thread(), "the test thread stays outside");
    let lab = std::sync::Arc::new(lab);
    let probe = lab.clone();
    assert!(
        clients
            .block_on(clients.spawn(async move { probe.is_client_thread() }))
            .unwrap()
    );
    assert!(
        clients
            .block_on(clients.spawn_blocking({
                let probe = lab.clone();
                move || probe.is_client_thread()
            }))
            .unwrap(),
        "blocking-pool threads are in ctl too"
    );
    let lab = std::sync::Arc::try_unwrap(lab).unwrap();
    let ip = lab.node_ip("n1");
    // Spawned on the runtime's own threads (which are in ctl): reaches the node.
    let reply = clients
        .block_on(clients.spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect((ip, 7000)).await.unwrap();
            s.write_all(b"hello\n").await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        }))
        .unwrap();
    assert_eq!(reply.trim(), "hello");
    // The node's own namespace sees its address; the root namespace does not.
    let addrs = std::process::Command::new("ip")
        .args(["-4", "-o", "addr"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&addrs.stdout).contains(&ip.to_string()));
    assert_eq!(setup.block_on(lab.guard_packets()).unwrap(), Some(0));
    drop(clients);
    setup.block_on(lab.teardown()).unwrap();
    assert!(!process_alive(pid));
}

#[tokio::test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn guard_counts_a_packet_sent_from_the_root_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(1, dir.path()).await;
    let ip = lab.node_ip("n1");
    // Deliberately wrong: a connect from the root namespace. The guard must drop and count it.
    let result = std::net::TcpStream::connect_timeout(&(ip, 9).into(), Duration::from_millis(200));
    assert!(result.is_err());
    let leaked = lab.guard_packets().await.unwrap().unwrap();
    assert!(leaked >= 1, "guard counted {leaked}");
    lab.teardown().await.unwrap();
}

#[tokio::test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn supervisor_kills_pauses_resumes_restarts_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(2, dir.path()).await;
    let ctl = lab.client_netns();
    let ip = lab.node_ip("n2");
    let pid = lab
        .start_node("n2", echo_server(&lab, "n2", 7001, false))
        .await
        .unwrap();
    wait_echo(&ctl, ip, 7001);
    assert_eq!(lab.node_status("n2").unwrap(), NodeStatus::Running { pid });
    assert!(
        lab.start_node("n2", echo_server(&lab, "n2", 7001, false))
            .await
            .is_err()
    );
    let pid_file = std::fs::read_to_string(dir.path().join("pids/n2.pid")).unwrap();
    assert!(pid_file.starts_with(&format!("{pid} ")));

    lab.pause_node("n2").await.unwrap();
    assert_eq!(lab.node_status("n2").unwrap(), NodeStatus::Paused { pid });
    // A stopped process still completes the handshake (kernel) but never answers.
    assert_eq!(
        ask_from(&ctl, ip, 7001, "x", Duration::from_millis(300)),
        None
    );
    lab.resume_node("n2").await.unwrap();
    wait_echo(&ctl, ip, 7001);

    lab.kill_node("n2").await.unwrap();
    assert_eq!(lab.node_status("n2").unwrap(), NodeStatus::Killed);
    assert!(!process_alive(pid));
    assert_eq!(
        ask_from(&ctl, ip, 7001, "x", Duration::from_millis(300)),
        None
    );
    let new_pid = lab.restart_node("n2").await.unwrap();
    assert_ne!(new_pid, pid);
    wait_echo(&ctl, ip, 7001);

    lab.stop_node("n2").await.unwrap();
    assert_eq!(lab.node_status("n2").unwrap(), NodeStatus::Stopped);
    assert!(!process_alive(new_pid));
    assert!(lab.unexpected_exits().is_empty());
    lab.teardown().await.unwrap();
}

#[tokio::test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn unexpected_exit_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(1, dir.path()).await;
    let command = NodeCommand {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), "echo bye; exit 3".into()],
        env: vec![],
        log_path: dir.path().join("n1.log"),
        faketime: false,
    };
    lab.start_node("n1", command).await.unwrap();
    let mut status = NodeStatus::NotStarted;
    for _ in 0..200 {
        status = lab.node_status("n1").unwrap();
        if matches!(status, NodeStatus::Exited { .. }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        matches!(&status, NodeStatus::Exited { status } if status.contains('3')),
        "{status:?}"
    );
    assert_eq!(lab.unexpected_exits().len(), 1);
    assert!(
        lab.kill_node("n1").await.is_err(),
        "signalling an exited node is refused"
    );
    let log = std::fs::read_to_string(dir.path().join("n1.log")).unwrap();
    assert_eq!(log.trim(), "bye");
    lab.teardown().await.unwrap();
}

#[tokio::test]
async fn loopback_lab_needs_no_root_and_gives_distinct_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab::create(LabConfig {
        nodes: 3,
        isolation: Isolation::Loopback,
        run_dir: dir.path().to_path_buf(),
    })
    .await
    .unwrap();
    let ips: Vec<_> = lab.nodes().iter().map(|n| lab.node_ip(n)).collect();
    assert!(ips.iter().all(|ip| ip.is_loopback()));
    assert_eq!(ips.len(), 3);
    assert_ne!(ips[0], ips[1]);
    assert_eq!(lab.netns("n1"), None);
    assert_eq!(lab.guard_packets().await.unwrap(), None);
    lab.teardown().await.unwrap();
    let empty = Lab::create(LabConfig {
        nodes: 0,
        isolation: Isolation::Loopback,
        run_dir: dir.path().to_path_buf(),
    })
    .await;
    assert!(
        matches!(empty, Err(faultline_nemesis::Error::Config(_))),
        "{empty:?}"
    );
}

#[tokio::test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn dropped_lab_is_cleaned_by_the_drop_guard() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(1, dir.path()).await;
    let pid = lab
        .start_node("n1", echo_server(&lab, "n1", 7002, false))
        .await
        .unwrap();
    let name = lab.name().to_string();
    drop(lab);
    assert!(namespaces_of(&name).is_empty());
    assert!(!nft_tables().contains(&format!("{name}_guard")));
    for _ in 0..100 {
        if !process_alive(pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!process_alive(pid));
}

#[test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
fn guard_and_teardown_work_from_a_client_thread() {
    // Root-namespace commands (the guard table) must not follow the calling thread into ctl.
    let dir = tempfile::tempdir().unwrap();
    let setup = tokio::runtime::Runtime::new().unwrap();
    let lab = setup.block_on(lab(1, dir.path()));
    let name = lab.name().to_string();
    let clients = lab.client_runtime(1).unwrap();
    let guard = clients
        .block_on(clients.spawn(async move {
            let guard = lab.guard_packets().await.unwrap();
            lab.teardown().await.unwrap();
            guard
        }))
        .unwrap();
    assert_eq!(guard, Some(0));
    assert!(namespaces_of(&name).is_empty());
    assert!(
        !nft_tables().contains(&format!("{name}_guard")),
        "guard table removed"
    );
}

#[tokio::test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn stop_all_nodes_terms_everyone_at_once_and_kills_stragglers() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(3, dir.path()).await;
    // n3 ignores SIGTERM: it must be SIGKILLed after the shared wait.
    for node in ["n1", "n2"] {
        lab.start_node(node, echo_server(&lab, node, 7009, false))
            .await
            .unwrap();
    }
    let stubborn = NodeCommand {
        program: "/bin/sh".into(),
        args: vec![
            "-c".into(),
            "trap '' TERM; echo trapped; while :; do sleep 0.05; done".into(),
        ],
        env: vec![],
        log_path: dir.path().join("n3.log"),
        faketime: false,
    };
    lab.start_node("n3", stubborn).await.unwrap();
    // Only once the trap is set does SIGTERM not end it (a loaded machine may be slow).
    let log = dir.path().join("n3.log");
    for _ in 0..500 {
        if std::fs::read_to_string(&log).is_ok_and(|l| l.contains("trapped")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    lab.pause_node("n1").await.unwrap();
    let started = std::time::Instant::now();
    lab.stop_all_nodes_within(Duration::from_millis(500))
        .await
        .unwrap();
    let took = started.elapsed();
    for node in lab.nodes() {
        assert_eq!(
            lab.node_status(&node).unwrap(),
            NodeStatus::Stopped,
            "{node}"
        );
    }
    // One shared grace period for the stubborn node, not one per node.
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    lab.teardown().await.unwrap();
}
