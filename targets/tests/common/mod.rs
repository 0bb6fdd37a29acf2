//! What the cluster tests share: a lab with a started cluster that is stopped and torn down
//! on every path, the Raft spec both files start from, and the requests they send.

#![allow(dead_code)] // each test file uses its own subset

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use faultline_nemesis::{Isolation, Lab, LabConfig};
use faultline_targets::raft::{RaftCluster, RaftSpec};
use faultline_targets::{Cluster, Error, Request, TargetSpec};

/// A cluster a test starts in a lab and stops through that lab: the bundled Raft server's own
/// type, or any target behind [`Cluster`].
pub trait LabCluster: Sized + Send + Sync + 'static {
    type Spec;
    fn start_in(lab: &Lab, spec: &Self::Spec) -> impl Future<Output = Result<Self, Error>>;
    fn stop_in(self, lab: &Lab) -> impl Future<Output = Result<(), Error>>;
}

impl LabCluster for RaftCluster {
    type Spec = RaftSpec;
    async fn start_in(lab: &Lab, spec: &RaftSpec) -> Result<Self, Error> {
        RaftCluster::start(spec, lab).await
    }
    async fn stop_in(self, lab: &Lab) -> Result<(), Error> {
        self.stop(lab).await
    }
}

impl LabCluster for Cluster {
    type Spec = TargetSpec;
    async fn start_in(lab: &Lab, spec: &TargetSpec) -> Result<Self, Error> {
        Cluster::start(spec, lab).await
    }
    async fn stop_in(self, lab: &Lab) -> Result<(), Error> {
        self.stop(Some(lab)).await
    }
}

/// A lab of `nodes` whose run directory is `run_dir`.
pub async fn create_lab(nodes: usize, isolation: Isolation, run_dir: &Path) -> Lab {
    // Only a namespace lab needs root and nftables; say so when it cannot be built.
    let builds = match isolation {
        Isolation::Namespaces => "namespace lab builds (root, nftables)".to_string(),
        other => format!("{} lab builds", other.as_str()),
    };
    Lab::create(LabConfig {
        nodes,
        isolation,
        run_dir: run_dir.to_path_buf(),
    })
    .await
    .expect(&builds)
}

/// Runs `test` on the lab's client runtime (where every client socket belongs) with a cluster
/// of `nodes` started from `spec` (given the run directory), then stops the cluster and tears
/// the lab down whatever happened. A failed test's own panic is the one reported: a stop or
/// teardown failure after it is only printed, since it is most likely a consequence.
pub async fn with_cluster<C, F, Fut>(
    nodes: usize,
    isolation: Isolation,
    spec: impl FnOnce(&Path) -> C::Spec,
    test: F,
) where
    C: LabCluster,
    F: FnOnce(Arc<C>, Arc<Lab>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = create_lab(nodes, isolation, dir.path()).await;
    let clients = match lab.client_runtime(2) {
        Ok(clients) => clients,
        Err(e) => return tear_down_and_panic(lab, format!("client runtime: {e}")).await,
    };
    let cluster = match C::start_in(&lab, &spec(dir.path())).await {
        Ok(cluster) => Arc::new(cluster),
        Err(e) => {
            clients.shutdown_background();
            return tear_down_and_panic(lab, format!("cluster starts: {e}")).await;
        }
    };
    let lab = Arc::new(lab);
    let tested = clients.spawn(test(cluster.clone(), lab.clone())).await;
    // Not dropped: dropping a runtime inside this (async) test panics.
    clients.shutdown_background();
    let cluster = Arc::into_inner(cluster).expect("test released the cluster");
    let lab = Arc::into_inner(lab).expect("test released the lab");
    let stopped = cluster.stop_in(&lab).await;
    let torn_down = lab.teardown().await;
    if let Err(panic) = tested {
        if let Err(e) = &stopped {
            eprintln!("after the test failed, the cluster did not stop: {e}");
        }
        if let Err(e) = &torn_down {
            eprintln!("after the test failed, the lab did not tear down: {e}");
        }
        std::panic::resume_unwind(panic.into_panic());
    }
    stopped.expect("cluster stops");
    torn_down.expect("lab tears down");
}

/// Tears `lab` down, then fails the test with `why`: a setup that went wrong must not leave
/// namespaces, rules or node processes behind for the next test.
async fn tear_down_and_panic(lab: Lab, why: String) {
    if let Err(e) = lab.teardown().await {
        eprintln!("after a failed setup, the lab did not tear down: {e}");
    }
    panic!("{why}");
}

/// The bundled Raft server with `unsafe_modes`, its data under `run_dir`.
pub fn raft_spec(run_dir: &Path, unsafe_modes: &[&str]) -> RaftSpec {
    RaftSpec {
        unsafe_modes: unsafe_modes.iter().map(|m| m.to_string()).collect(),
        binary: None,
        data_dir: run_dir.join("data"),
        op_timeout: Duration::from_secs(3),
        startup_timeout: Duration::from_secs(20),
        faketime: false,
    }
}

pub fn read(key: &str) -> Request {
    Request::Read { key: key.into() }
}

pub fn write(key: &str, value: i64) -> Request {
    Request::Write {
        key: key.into(),
        value,
    }
}

pub fn cas(key: &str, expected: i64, new: i64) -> Request {
    Request::Cas {
        key: key.into(),
        expected,
        new,
    }
}
