//! The bundled Raft target against real `faultline-raft` processes (build the binary first:
//! `cargo build --bin faultline-raft`; scripts/test.sh does).
//!
//! These use a loopback lab (distinct 127.x addresses, no root); the namespace lab is
//! exercised end to end by the harness tests.

use std::time::Duration;

use faultline_nemesis::{Isolation, Lab, LabConfig};
use faultline_targets::outcome::CAS_MISMATCH;
use faultline_targets::raft::{RaftCluster, RaftSpec};
use faultline_targets::{Outcome, Request};

fn spec(dir: &std::path::Path, unsafe_modes: &[&str]) -> RaftSpec {
    RaftSpec {
        unsafe_modes: unsafe_modes.iter().map(|s| s.to_string()).collect(),
        binary: None,
        data_dir: dir.join("data"),
        op_timeout: Duration::from_secs(3),
        startup_timeout: Duration::from_secs(20),
        faketime: false,
    }
}

fn read(key: &str) -> Request {
    Request::Read { key: key.into() }
}

fn write(key: &str, value: i64) -> Request {
    Request::Write {
        key: key.into(),
        value,
    }
}

/// Run `f` with a started cluster of `nodes`, tearing everything down whatever happens.
async fn with_cluster<F, Fut>(nodes: usize, unsafe_modes: &[&str], f: F)
where
    F: FnOnce(std::sync::Arc<RaftCluster>, std::sync::Arc<Lab>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = Lab::create(LabConfig {
        nodes,
        isolation: Isolation::Loopback,
        run_dir: dir.path().to_path_buf(),
    })
    .await
    .expect("loopback lab");
    let cluster = RaftCluster::start(&spec(dir.path(), unsafe_modes), &lab)
        .await
        .expect("cluster starts");
    let cluster = std::sync::Arc::new(cluster);
    let lab = std::sync::Arc::new(lab);
    let result = tokio::spawn(f(cluster.clone(), lab.clone())).await;
    let cluster = std::sync::Arc::into_inner(cluster).expect("test released the cluster");
    let lab = std::sync::Arc::into_inner(lab).expect("test released the lab");
    cluster.stop(&lab).await.expect("cluster stops");
    lab.teardown().await.expect("lab tears down");
    if let Err(panic) = result {
        std::panic::resume_unwind(panic.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_cas_work_through_every_node_of_three() {
    writes_and_cas_work_through_every_node(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_cas_work_through_every_node_of_five() {
    writes_and_cas_work_through_every_node(5).await;
}

async fn writes_and_cas_work_through_every_node(nodes: usize) {
    with_cluster(nodes, &[], |cluster, _lab| async move {
        cluster.wait_for_leader().await.expect("leader");
        for (i, node) in cluster.node_names().iter().enumerate() {
            let client = cluster.client(node).expect("client");
            let v = i as i64 * 10;
            // Right after the election a follower may not know the leader's address yet.
            assert_eq!(
                when_ready(&client, &write("k", v)).await,
                Outcome::Ok(None),
                "write via {node}"
            );
            assert_eq!(
                client.call(&read("k")).await,
                Outcome::Ok(Some(v)),
                "read via {node}"
            );
            let cas = Request::Cas {
                key: "k".into(),
                expected: v,
                new: v + 1,
            };
            assert_eq!(client.call(&cas).await, Outcome::Ok(None), "cas via {node}");
            assert_eq!(client.call(&cas).await, Outcome::Fail(CAS_MISMATCH.into()));
        }
        let client = cluster.client("n1").expect("client");
        assert_eq!(client.call(&read("absent")).await, Outcome::Ok(None));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_leader_is_replaced_and_no_acknowledged_write_is_lost() {
    with_cluster(5, &[], |cluster, lab| async move {
        let leader = cluster.wait_for_leader().await.expect("leader");
        let nodes = cluster.node_names();
        let mut acknowledged = Vec::new();
        for i in 0..20 {
            let node = &nodes[i % nodes.len()];
            let key = format!("k{i}");
            let client = cluster.client(node).expect("client");
            if when_ready(&client, &write(&key, i as i64)).await == Outcome::Ok(None) {
                acknowledged.push((key, i as i64));
            }
        }
        assert_eq!(
            acknowledged.len(),
            20,
            "a healthy cluster acknowledges every write"
        );
        lab.kill_node(&leader).await.expect("kill leader");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let new_leader = loop {
            match cluster.leader().await {
                Some(l) if l != leader => break l,
                _ if std::time::Instant::now() > deadline => {
                    panic!("no new leader after killing {leader}")
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let client = cluster.client(&new_leader).expect("client");
        for (key, value) in &acknowledged {
            assert_eq!(
                client.call(&read(key)).await,
                Outcome::Ok(Some(*value)),
                "{key} after failover"
            );
        }
        lab.restart_node(&leader).await.expect("restart old leader");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_restart_of_three_keeps_every_acknowledged_write() {
    full_restart_keeps_every_acknowledged_write(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_restart_of_five_keeps_every_acknowledged_write() {
    full_restart_keeps_every_acknowledged_write(5).await;
}

async fn full_restart_keeps_every_acknowledged_write(nodes: usize) {
    with_cluster(nodes, &[], |cluster, lab| async move {
        cluster.wait_for_leader().await.expect("leader");
        let client = cluster.client("n2").expect("client");
        for i in 0..10 {
            assert_eq!(
                when_ready(&client, &write(&format!("k{i}"), i)).await,
                Outcome::Ok(None)
            );
        }
        for node in cluster.node_names() {
            lab.kill_node(&node).await.expect("kill");
        }
        for node in cluster.node_names() {
            lab.restart_node(&node).await.expect("restart");
        }
        cluster
            .wait_for_leader()
            .await
            .expect("leader after restart");
        let client = cluster.client("n3").expect("client");
        for i in 0..10 {
            assert_eq!(
                read_when_listening(&client, &format!("k{i}")).await,
                Outcome::Ok(Some(i))
            );
        }
    })
    .await;
}

/// Read `key`, retrying for a few seconds while the node is still starting (refuses
/// connections): a restarted node needs a moment before it listens.
async fn read_when_listening(client: &faultline_targets::raft::RaftClient, key: &str) -> Outcome {
    when_ready(client, &read(key)).await
}

/// Send `request`, retrying for a few seconds while it is refused (the node is still starting
/// or has not yet heard who leads): a refusal certainly did nothing, so retrying is safe. A
/// CAS mismatch is an answer, not a refusal.
async fn when_ready(client: &faultline_targets::raft::RaftClient, request: &Request) -> Outcome {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let outcome = client.call(request).await;
        match &outcome {
            Outcome::Fail(why) if why != CAS_MISMATCH && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => return outcome,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_log_tail_of_three_is_cut_at_restart_and_the_cluster_carries_on() {
    corrupt_log_tail_is_cut_at_restart_and_the_cluster_carries_on(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_log_tail_of_five_is_cut_at_restart_and_the_cluster_carries_on() {
    corrupt_log_tail_is_cut_at_restart_and_the_cluster_carries_on(5).await;
}

async fn corrupt_log_tail_is_cut_at_restart_and_the_cluster_carries_on(nodes: usize) {
    with_cluster(nodes, &[], |cluster, lab| async move {
        cluster.wait_for_leader().await.expect("leader");
        let client = cluster.client("n1").expect("client");
        for i in 0..10 {
            assert_eq!(
                when_ready(&client, &write(&format!("k{i}"), i)).await,
                Outcome::Ok(None)
            );
        }
        for node in cluster.node_names() {
            lab.kill_node(&node).await.expect("kill");
        }
        // What a crash in the middle of a write leaves: a record header promising more
        // bytes than follow.
        let log = lab.run_dir().join("data").join("n1").join("raft.log");
        let mut data = std::fs::read(&log).expect("n1 has a log");
        let good = data.len();
        data.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3, 4, b'{', b'"']);
        std::fs::write(&log, &data).expect("corrupt the tail");
        for node in cluster.node_names() {
            lab.restart_node(&node).await.expect("restart");
        }
        cluster
            .wait_for_leader()
            .await
            .expect("leader after restart");
        let client = cluster.client("n1").expect("client");
        for i in 0..10 {
            assert_eq!(
                read_when_listening(&client, &format!("k{i}")).await,
                Outcome::Ok(Some(i))
            );
        }
        let node_log =
            std::fs::read_to_string(lab.run_dir().join("nodes").join("n1.log")).expect("n1 log");
        assert!(
            node_log.contains("torn or corrupt tail"),
            "n1 did not report the cut:\n{node_log}"
        );
        let len = std::fs::metadata(&log).expect("log").len() as usize;
        assert!(len >= good, "the good records were kept");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_no_unsafe_mode_unless_asked() {
    for modes in [
        &[][..],
        &["stale-reads"][..],
        &["lease-reads"][..],
        &["ack-before-commit"][..],
    ] {
        with_cluster(3, modes, move |cluster, lab| async move {
            cluster.wait_for_leader().await.expect("leader");
            let ip = lab.node_ip("n1");
            let status: serde_json::Value = reqwest::get(format!("http://{ip}:7000/status"))
                .await
                .expect("status answers")
                .json()
                .await
                .expect("json");
            let expected: Vec<&str> = modes.to_vec();
            assert_eq!(status["unsafe"], serde_json::json!(expected));
        })
        .await;
    }
}

#[tokio::test]
async fn unknown_unsafe_mode_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = Lab::create(LabConfig {
        nodes: 1,
        isolation: Isolation::Loopback,
        run_dir: dir.path().into(),
    })
    .await
    .expect("lab");
    let error = RaftCluster::start(&spec(dir.path(), &["fast"]), &lab)
        .await
        .err()
        .expect("refused");
    assert!(
        error.to_string().contains("unknown --unsafe mode `fast`"),
        "{error}"
    );
    lab.teardown().await.expect("teardown");
}
