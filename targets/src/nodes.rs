//! What every target started in the lab shares: its nodes' names and addresses, the bounded
//! wait for a leader, and stopping the nodes and wiping their data.

use std::future::Future;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use faultline_nemesis::{Lab, NodeCommand};

use crate::error::Error;

/// The lab's nodes, `n1`…, with their addresses.
#[derive(Clone, Debug)]
pub(crate) struct LabNodes(Vec<(String, Ipv4Addr)>);

impl LabNodes {
    pub(crate) fn of(lab: &Lab) -> LabNodes {
        LabNodes(
            lab.nodes()
                .into_iter()
                .map(|n| {
                    let ip = lab.node_ip(&n);
                    (n, ip)
                })
                .collect(),
        )
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &(String, Ipv4Addr)> {
        self.0.iter()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.0.iter().map(|(n, _)| n.clone()).collect()
    }

    pub(crate) fn ip(&self, node: &str) -> Result<Ipv4Addr, Error> {
        self.0
            .iter()
            .find(|(n, _)| n == node)
            .map(|(_, ip)| *ip)
            .ok_or_else(|| Error::Config(format!("no node `{node}` in this cluster")))
    }

    /// The node at `ip`.
    pub(crate) fn name_of(&self, ip: Ipv4Addr) -> Option<String> {
        self.0
            .iter()
            .find(|(_, i)| *i == ip)
            .map(|(n, _)| n.clone())
    }
}

/// Poll `leader` every 100 ms until it names a node or `timeout` passes.
pub(crate) async fn wait_for_leader<F, Fut>(
    system: &str,
    timeout: Duration,
    leader: F,
) -> Result<String, Error>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<String>>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(node) = leader().await {
            return Ok(node);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(Error::NoLeader(format!(
        "no {system} leader after {timeout:?}: see the node logs in the run directory's nodes/"
    )))
}

/// Stop every node (SIGTERM, SIGKILL after `grace`) and remove the data directories.
pub(crate) async fn stop_and_wipe(
    lab: &Lab,
    data_dir: &Path,
    grace: Duration,
) -> Result<(), Error> {
    lab.stop_all_nodes_within(grace).await?;
    if let Err(e) = std::fs::remove_dir_all(data_dir) {
        tracing::warn!("removing {}: {e}", data_dir.display());
    }
    Ok(())
}

/// Pass `started` through; if it is an error, first stop the nodes already started and remove
/// their data, so a start that fails half-way leaves no data behind in the run directory (etcd
/// preallocates ~120 MB per node).
pub(crate) async fn wipe_on_error(
    lab: &Lab,
    data_dir: &Path,
    started: Result<(), Error>,
) -> Result<(), Error> {
    if started.is_err()
        && let Err(e) = stop_and_wipe(lab, data_dir, Duration::from_secs(1)).await
    {
        tracing::warn!("cleaning up after a failed start: {e}");
    }
    started
}

/// The command that starts `program args` as lab node `name`, logging to `nodes/<name>.log`
/// in the run directory; `faketime` starts it under libfaketime (only for programs that read
/// time through libc: Go programs such as etcd and Consul read the vDSO and ignore it).
pub(crate) fn node_command(
    lab: &Lab,
    name: &str,
    program: &Path,
    args: Vec<String>,
    env: Vec<(String, String)>,
    faketime: bool,
) -> NodeCommand {
    NodeCommand {
        program: program.to_path_buf(),
        args,
        env,
        log_path: lab.run_dir().join("nodes").join(format!("{name}.log")),
        faketime,
    }
}

/// A short-timeout HTTP client for status probes.
pub(crate) fn status_client() -> Option<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .ok()
}
