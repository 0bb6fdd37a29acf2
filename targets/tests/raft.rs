//! The bundled Raft target against real `faultline-raft` processes (build the binary first:
//! `cargo build --bin faultline-raft`; scripts/test.sh does).
//!
//! These use a loopback lab (distinct 127.x addresses, no root); the namespace lab is
//! exercised end to end by the harness tests.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline_nemesis::{Isolation, Lab};
use faultline_targets::Outcome;
use faultline_targets::outcome::CAS_MISMATCH;
use faultline_targets::raft::{RaftClient, RaftCluster};

use common::{cas, create_lab, raft_spec, read, write};

/// Run `test` with a started cluster of `nodes` in a loopback lab, tearing everything down
/// whatever happens.
async fn with_cluster<F, Fut>(nodes: usize, unsafe_modes: &[&str], test: F)
where
    F: FnOnce(Arc<RaftCluster>, Arc<Lab>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    common::with_cluster(
        nodes,
        Isolation::Loopback,
        |run_dir| raft_spec(run_dir, unsafe_modes),
        test,
    )
    .await;
}

/// The key the `i`th of a test's writes goes to.
fn key(i: i64) -> String {
    format!("k{i}")
}

/// Writes `i` to [`key`]`(i)` for each `i` below `count` through `client`, asserting each
/// is acknowledged.
async fn write_keys(client: &RaftClient, count: i64) {
    for i in 0..count {
        assert_eq!(
            when_ready(client, &write(&key(i), i)).await,
            Outcome::Ok(None),
            "write {}",
            key(i)
        );
    }
}

/// Asserts that `client` reads back every write of [`write_keys`]`(_, count)`.
async fn assert_keys_read_back(client: &RaftClient, count: i64) {
    for i in 0..count {
        assert_eq!(
            read_when_listening(client, &key(i)).await,
            Outcome::Ok(Some(i)),
            "read {} after restart",
            key(i)
        );
    }
}

async fn kill_every_node(cluster: &RaftCluster, lab: &Lab) {
    for node in cluster.node_names() {
        lab.kill_node(&node).await.expect("kill");
    }
}

/// Restarts every node of `cluster` and waits until they have elected a leader again.
async fn restart_every_node(cluster: &RaftCluster, lab: &Lab) {
    for node in cluster.node_names() {
        lab.restart_node(&node).await.expect("restart");
    }
    cluster
        .wait_for_leader()
        .await
        .expect("leader after restart");
}

/// Polls (for up to 20 s) until `cluster` has a leader other than `old`, and names it.
async fn wait_for_new_leader(cluster: &RaftCluster, old: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match cluster.leader().await {
            Some(l) if l != old => return l,
            _ if Instant::now() > deadline => panic!("no new leader after killing {old}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Read `key`, retrying for a few seconds while the node is still starting (refuses
/// connections): a restarted node needs a moment before it listens.
async fn read_when_listening(client: &RaftClient, key: &str) -> Outcome {
    when_ready(client, &read(key)).await
}

/// Send `request`, retrying for a few seconds while it is refused (the node is still starting
/// or has not yet heard who leads): a refusal certainly did nothing, so retrying is safe. A
/// CAS mismatch is an answer, not a refusal.
async fn when_ready(client: &RaftClient, request: &faultline_targets::Request) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let outcome = client.call(request).await;
        match &outcome {
            Outcome::Fail(why) if why != CAS_MISMATCH && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => return outcome,
        }
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
            let cas = cas("k", v, v + 1);
            assert_eq!(client.call(&cas).await, Outcome::Ok(None), "cas via {node}");
            assert_eq!(
                client.call(&cas).await,
                Outcome::Fail(CAS_MISMATCH.into()),
                "the same cas again via {node} no longer matches"
            );
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
            let node = &nodes[i as usize % nodes.len()];
            let client = cluster.client(node).expect("client");
            if when_ready(&client, &write(&key(i), i)).await == Outcome::Ok(None) {
                acknowledged.push((key(i), i));
            }
        }
        assert_eq!(
            acknowledged.len(),
            20,
            "a healthy cluster acknowledges every write"
        );
        lab.kill_node(&leader).await.expect("kill leader");
        let new_leader = wait_for_new_leader(&cluster, &leader).await;
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
        write_keys(&cluster.client("n2").expect("client"), 10).await;
        kill_every_node(&cluster, &lab).await;
        restart_every_node(&cluster, &lab).await;
        assert_keys_read_back(&cluster.client("n3").expect("client"), 10).await;
    })
    .await;
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
        write_keys(&cluster.client("n1").expect("client"), 10).await;
        kill_every_node(&cluster, &lab).await;
        // What a crash in the middle of a write leaves: a record header promising more
        // bytes than follow.
        let log = lab.run_dir().join("data").join("n1").join("raft.log");
        let mut data = std::fs::read(&log).expect("n1 has a log");
        let good = data.len();
        data.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3, 4, b'{', b'"']);
        std::fs::write(&log, &data).expect("corrupt the tail");
        restart_every_node(&cluster, &lab).await;
        assert_keys_read_back(&cluster.client("n1").expect("client"), 10).await;
        let node_log =
            std::fs::read_to_string(lab.run_dir().join("nodes").join("n1.log")).expect("n1 log");
        assert!(
            node_log.contains("torn or corrupt tail"),
            "n1 did not report the cut:\n{node_log}"
        );
        let len = std::fs::metadata(&log).expect("log").len() as usize;
        assert!(
            len >= good,
            "the good records were kept: {len} bytes left of {good}"
        );
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
            assert_eq!(
                status["unsafe"],
                serde_json::json!(expected),
                "status of a cluster started with {modes:?}"
            );
        })
        .await;
    }
}

#[tokio::test]
async fn unknown_unsafe_mode_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = create_lab(1, Isolation::Loopback, dir.path()).await;
    let started = RaftCluster::start(&raft_spec(dir.path(), &["fast"]), &lab).await;
    // Before asserting, so a failed assertion leaves no lab behind; teardown also kills any
    // node a wrongly accepted mode started.
    lab.teardown().await.expect("teardown");
    let error = started.err().expect("refused");
    assert!(
        error.to_string().contains("unknown --unsafe mode `fast`"),
        "{error}"
    );
}
