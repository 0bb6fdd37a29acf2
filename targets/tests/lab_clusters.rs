//! Clusters in a real namespace lab. etcd and Consul: every operation and read mode, CAS
//! success and mismatch, and each error class mapped to its outcome — a write to an isolated
//! minority is `info`, a local read there (etcd serializable, Consul stale) is stale, a quorum
//! read there fails and so does a Consul default-mode read, a killed node refuses (`fail`). The bundled Raft server: its `lease-reads` bug under a clock step back.
//! These need root, nftables, libfaketime, etcd and Consul (`scripts/install-targets.sh`), so
//! they are ignored by default and run by scripts/test.sh.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use faultline_nemesis::{ClockFault, Fault, Isolation, Lab, NodeSelection, PartitionKind};
use faultline_targets::consul::{ConsulReadMode, ConsulSpec};
use faultline_targets::etcd::{EtcdReadMode, EtcdSpec};
use faultline_targets::outcome::CAS_MISMATCH;
use faultline_targets::raft::RaftSpec;
use faultline_targets::{Client, Cluster, Outcome, TargetSpec};
use rand::SeedableRng;

use common::{cas, raft_spec, read, write};

fn etcd(dir: &Path) -> TargetSpec {
    TargetSpec::Etcd(EtcdSpec {
        binary: None,
        data_dir: dir.join("data"),
        read_mode: EtcdReadMode::Linearizable,
        op_timeout: Duration::from_secs(3),
        startup_timeout: Duration::from_secs(30),
    })
}

fn consul(dir: &Path) -> TargetSpec {
    TargetSpec::Consul(ConsulSpec {
        binary: None,
        data_dir: dir.join("data"),
        read_mode: ConsulReadMode::Consistent,
        op_timeout: Duration::from_secs(3),
        startup_timeout: Duration::from_secs(30),
    })
}

fn raft_under_faketime(dir: &Path, unsafe_modes: &[&str]) -> TargetSpec {
    TargetSpec::Raft(RaftSpec {
        op_timeout: Duration::from_secs(2),
        // The lease-reads tests step a node's clock back.
        faketime: true,
        ..raft_spec(dir, unsafe_modes)
    })
}

/// Run `test` on the lab's client runtime with a cluster started from `spec` in a namespace
/// lab of `nodes`, tearing everything down whatever happens.
async fn with_cluster<F, Fut>(nodes: usize, spec: impl FnOnce(&Path) -> TargetSpec, test: F)
where
    F: FnOnce(Arc<Cluster>, Arc<Lab>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    common::with_cluster(nodes, Isolation::Namespaces, spec, test).await;
}

/// Reads `key` through `client` until it gives `value`, for up to 50 tries 50 ms apart (a
/// weaker read may lag, but only briefly); the last outcome.
async fn read_until(client: &Client, key: &str, value: i64) -> Outcome {
    let mut seen = client.call(&read(key)).await;
    for _ in 1..50 {
        if seen == Outcome::Ok(Some(value)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen = client.call(&read(key)).await;
    }
    seen
}

/// A client of `node` whose reads go through the quorum (etcd `linearizable`, Consul
/// `consistent`).
fn quorum_client(cluster: &Cluster, node: &str) -> Client {
    match cluster {
        Cluster::Etcd(c) => Client::Etcd(
            c.client_reading(node, EtcdReadMode::Linearizable)
                .expect("client"),
        ),
        Cluster::Consul(c) => Client::Consul(
            c.client_reading(node, ConsulReadMode::Consistent)
                .expect("client"),
        ),
        _ => unreachable!("only etcd and consul here"),
    }
}

/// What a read gives on a node cut off from the majority: a follower's in a weaker read mode,
/// or a cut-off Raft leader's.
#[derive(Clone, Copy, Debug, PartialEq)]
enum WhenCutOff {
    /// It answers from the node's own state: the value it had.
    Stale,
    /// It needs the leader (or a quorum), so it fails.
    Fails,
}

impl WhenCutOff {
    /// Asserts that `seen`, what `read` (for the message) gave on a node cut off after it had
    /// `had`, is what `self` says.
    fn assert_read(self, seen: &Outcome, had: i64, read: &str) {
        match self {
            WhenCutOff::Stale => assert_eq!(
                *seen,
                Outcome::Ok(Some(had)),
                "{read} answers from the node's own state, stale"
            ),
            WhenCutOff::Fails => assert!(
                matches!(seen, Outcome::Fail(_)),
                "{read} must fail, not answer: {seen:?}"
            ),
        }
    }
}

/// Clients of `node` in each of the target's other read modes, first the local one.
fn other_read_modes(cluster: &Cluster, node: &str) -> Vec<(&'static str, Client, WhenCutOff)> {
    match cluster {
        Cluster::Etcd(c) => vec![(
            "serializable",
            Client::Etcd(
                c.client_reading(node, EtcdReadMode::Serializable)
                    .expect("client"),
            ),
            WhenCutOff::Stale,
        )],
        Cluster::Consul(c) => vec![
            (
                "stale",
                Client::Consul(
                    c.client_reading(node, ConsulReadMode::Stale)
                        .expect("client"),
                ),
                WhenCutOff::Stale,
            ),
            // Default mode: a follower forwards the read to the leader it knows.
            (
                "default",
                Client::Consul(
                    c.client_reading(node, ConsulReadMode::Default)
                        .expect("client"),
                ),
                WhenCutOff::Fails,
            ),
        ],
        _ => unreachable!("only etcd and consul here"),
    }
}

/// Writes, CAS and reads in every read mode, through every node.
async fn every_operation_works(cluster: Arc<Cluster>) {
    cluster.wait_for_leader().await.expect("leader");
    let nodes = cluster.node_names();
    for (i, node) in nodes.iter().enumerate() {
        let quorum = quorum_client(&cluster, node);
        let v = 10 * i as i64 + 1;
        assert_eq!(
            quorum.call(&write("k", v)).await,
            Outcome::Ok(None),
            "write via {node}"
        );
        assert_eq!(
            quorum.call(&read("k")).await,
            Outcome::Ok(Some(v)),
            "read via {node}"
        );
        assert_eq!(
            quorum.call(&cas("k", v, v + 1)).await,
            Outcome::Ok(None),
            "cas via {node}"
        );
        assert_eq!(
            quorum.call(&cas("k", v, v + 2)).await,
            Outcome::Fail(CAS_MISMATCH.into()),
            "a cas whose compare fails, via {node}"
        );
        // A weaker read may lag, but only briefly on a healthy cluster.
        for (mode, client, _) in other_read_modes(&cluster, node) {
            assert_eq!(
                read_until(&client, "k", v + 1).await,
                Outcome::Ok(Some(v + 1)),
                "{mode} read via {node}"
            );
        }
    }
    let quorum = quorum_client(&cluster, &nodes[0]);
    assert_eq!(quorum.call(&read("absent")).await, Outcome::Ok(None));
    assert_eq!(
        quorum.call(&cas("absent", 1, 2)).await,
        Outcome::Fail(CAS_MISMATCH.into()),
        "a cas on an absent key does not match"
    );
}

/// Cut one follower off: a write through it is indeterminate, a local read there is stale
/// while a quorum read there fails; after heal, a killed node refuses connections.
async fn a_minority_is_stale_or_unavailable_and_a_dead_node_refuses(
    cluster: Arc<Cluster>,
    lab: Arc<Lab>,
) {
    let leader = cluster.wait_for_leader().await.expect("leader");
    let nodes = cluster.node_names();
    let cut = nodes
        .iter()
        .find(|n| **n != leader)
        .expect("a follower")
        .clone();
    let rest: Vec<String> = nodes.iter().filter(|n| **n != cut).cloned().collect();
    let majority = quorum_client(&cluster, &leader);
    let cut_quorum = quorum_client(&cluster, &cut);
    let cut_others = other_read_modes(&cluster, &cut);
    assert_eq!(majority.call(&write("p", 1)).await, Outcome::Ok(None));
    // Wait until the follower has the first value locally (if it never does, the stale
    // read below says so).
    let (_, cut_local, _) = &cut_others[0];
    read_until(cut_local, "p", 1).await;

    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let partition = Fault::Partition(PartitionKind::Components(vec![vec![cut.clone()], rest]));
    lab.start_fault(&partition, &mut rng, Some(&leader))
        .await
        .expect("partition installs");
    // The majority keeps a leader (re-electing if needed) and moves on.
    let mut moved = false;
    for _ in 0..30 {
        let Some(l) = cluster.leader().await.filter(|l| *l != cut) else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let c = quorum_client(&cluster, &l);
        if c.call(&write("p", 2)).await == Outcome::Ok(None) {
            moved = true;
            break;
        }
    }
    assert!(moved, "the majority accepts writes during the partition");
    let outcome = cut_quorum.call(&write("p", 3)).await;
    assert!(
        matches!(outcome, Outcome::Info(_)),
        "write on the minority: {outcome:?}"
    );
    let outcome = cut_quorum.call(&read("p")).await;
    assert!(
        matches!(outcome, Outcome::Fail(_)),
        "quorum read on the minority: {outcome:?}"
    );
    for (mode, client, when_cut_off) in &cut_others {
        let outcome = client.call(&read("p")).await;
        when_cut_off.assert_read(&outcome, 1, &format!("a {mode} read on the minority"));
    }

    lab.heal().await.expect("heals");
    lab.kill_node(&cut).await.expect("kill");
    // A fresh client each try: a pooled connection to the killed node would be reset after
    // the request went out, which is (rightly) indeterminate, not a refusal. Until the kernel
    // has finished the process, its listening socket may still accept and then reset.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let outcome = loop {
        let fresh = quorum_client(&cluster, &cut);
        let outcome = fresh.call(&write("p", 4)).await;
        match &outcome {
            Outcome::Info(why) if why.contains("reset") && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => break outcome,
        }
    };
    assert!(
        matches!(&outcome, Outcome::Fail(why) if why.starts_with("connect")),
        "write to a dead node: {outcome:?}"
    );
    lab.restart_node(&cut).await.expect("restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, nftables and etcd: run by scripts/test.sh"]
async fn etcd_three_nodes_serve_every_operation_and_read_mode() {
    with_cluster(3, etcd, |cluster, _lab| every_operation_works(cluster)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, nftables and etcd: run by scripts/test.sh"]
async fn etcd_five_nodes_minority_write_is_info_and_serializable_read_is_stale() {
    with_cluster(
        5,
        etcd,
        a_minority_is_stale_or_unavailable_and_a_dead_node_refuses,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, nftables and Consul (scripts/install-targets.sh): run by scripts/test.sh"]
async fn consul_three_nodes_serve_every_operation_and_read_mode() {
    with_cluster(3, consul, |cluster, _lab| every_operation_works(cluster)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, nftables and Consul (scripts/install-targets.sh): run by scripts/test.sh"]
async fn consul_five_nodes_minority_write_is_info_and_stale_read_is_stale() {
    with_cluster(
        5,
        consul,
        a_minority_is_stale_or_unavailable_and_a_dead_node_refuses,
    )
    .await;
}

/// The bug `--unsafe lease-reads` plants: the leader answers reads locally while its lease
/// holds by its own clock. Cut the leader off and step its clock back 8 s: the others elect a
/// new leader and move on, and long after a 2-second lease should have run out the old leader
/// still answers — with the old value (`Stale`). Without the mode the same faults give no
/// stale read (`Fails`).
async fn a_cut_off_leader_whose_clock_stepped_back_reads(
    cluster: Arc<Cluster>,
    lab: Arc<Lab>,
    expected: WhenCutOff,
) {
    let old = cluster.wait_for_leader().await.expect("leader");
    let via_old = cluster.client(&old).expect("client");
    assert_eq!(via_old.call(&write("k", 1)).await, Outcome::Ok(None));
    // A read through Raft confirms leadership (and, with the mode, takes the lease).
    assert_eq!(via_old.call(&read("k")).await, Outcome::Ok(Some(1)));
    let others: Vec<String> = cluster
        .node_names()
        .into_iter()
        .filter(|n| *n != old)
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let cut = Fault::Partition(PartitionKind::Components(vec![
        vec![old.clone()],
        others.clone(),
    ]));
    lab.start_fault(&cut, &mut rng, Some(&old))
        .await
        .expect("partition installs");
    let step_back = Fault::Clock(
        ClockFault::Bump { delta_ms: -8000 },
        NodeSelection::Nodes(vec![old.clone()]),
    );
    lab.start_fault(&step_back, &mut rng, Some(&old))
        .await
        .expect("clock fault installs");
    let mut moved = false;
    for _ in 0..60 {
        let via_new = cluster.client(&others[0]).expect("client");
        if via_new.call(&write("k", 2)).await == Outcome::Ok(None) {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(moved, "the majority elects a leader and accepts a write");
    // Well past the 2-second lease, by real time.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let seen = via_old.call(&read("k")).await;
    expected.assert_read(
        &seen,
        1,
        &format!("a read on the cut-off old leader {old}, well past its lease by real time"),
    );
    lab.heal().await.expect("heals");
}

/// [`a_cut_off_leader_whose_clock_stepped_back_reads`] on three Raft nodes with
/// `unsafe_modes`.
async fn raft_with_a_clock_stepped_back(unsafe_modes: &[&str], expected: WhenCutOff) {
    with_cluster(
        3,
        |dir| raft_under_faketime(dir, unsafe_modes),
        move |cluster, lab| a_cut_off_leader_whose_clock_stepped_back_reads(cluster, lab, expected),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, nftables and libfaketime: run by scripts/test.sh"]
async fn raft_lease_reads_go_stale_when_the_leaders_clock_steps_back() {
    raft_with_a_clock_stepped_back(&["lease-reads"], WhenCutOff::Stale).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, nftables and libfaketime: run by scripts/test.sh"]
async fn raft_default_reads_stay_linearizable_when_the_leaders_clock_steps_back() {
    raft_with_a_clock_stepped_back(&[], WhenCutOff::Fails).await;
}
