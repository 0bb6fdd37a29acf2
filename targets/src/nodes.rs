//! What every target Faultline starts shares: its nodes' names and addresses, finding the
//! leader and the bounded wait for one, and (in the lab) starting the nodes, stopping them and
//! wiping their data.

use std::future::Future;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use faultline_nemesis::{Lab, NodeCommand, Remote};
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::hosts::{HostNodes, Launch};

/// Where a cluster's nodes run, which decides how they are stopped and wiped.
pub(crate) enum Placement {
    /// In the lab, from this local binary, with the data directories under `data_dir`.
    Lab { binary: PathBuf, data_dir: PathBuf },
    /// On remote hosts, over SSH.
    Hosts(HostNodes),
}

impl Placement {
    /// The server's version line: from the local binary run with `version_args`, or as the
    /// first host's binary printed it at start.
    pub(crate) fn version(&self, version_args: &[&str]) -> String {
        match self {
            Placement::Lab { binary, .. } => crate::discover::version_line(binary, version_args),
            Placement::Hosts(hosts) => hosts.version(),
        }
    }

    /// Stop every node in the lab (SIGTERM, SIGKILL after `grace`) and remove the data.
    pub(crate) async fn stop_in_lab(self, lab: &Lab, grace: Duration) -> Result<(), Error> {
        match self {
            Placement::Lab { data_dir, .. } => stop_and_wipe(lab, &data_dir, grace).await,
            // (Dropping the hosts unstopped logs loudly that their nodes still run.)
            Placement::Hosts(_) => Err(Error::Config(
                "this cluster runs on remote hosts: stop it with Cluster::stop_on_hosts".into(),
            )),
        }
    }

    /// Stop every node on its host, fetch the logs and remove the run's directories there.
    pub(crate) async fn stop_on_hosts(self, remote: &Remote, grace: Duration) -> Result<(), Error> {
        match self {
            Placement::Hosts(mut hosts) => hosts.stop(remote, grace).await.map(|_| ()),
            Placement::Lab { .. } => Err(Error::Config(
                "this cluster runs in the lab: stop it with Cluster::stop".into(),
            )),
        }
    }
}

/// A cluster's nodes, `n1`…, with the addresses peers and clients use.
#[derive(Clone, Debug)]
pub(crate) struct Nodes(Vec<(String, Ipv4Addr)>);

impl Nodes {
    pub(crate) fn of_hosts(hosts: &[crate::hosts::Host]) -> Nodes {
        Nodes(hosts.iter().map(|h| (h.name.clone(), h.address)).collect())
    }

    pub(crate) fn of(lab: &Lab) -> Nodes {
        Nodes(
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

/// The leader as the first node, asked in turn with `ask`, whose answer `leader` reads as
/// naming one. A node that does not answer (down, partitioned) is skipped.
pub(crate) async fn find_leader<T, Ask, Read>(
    nodes: &Nodes,
    ask: Ask,
    leader: Read,
) -> Option<String>
where
    T: DeserializeOwned,
    Ask: Fn(&reqwest::Client, Ipv4Addr) -> reqwest::RequestBuilder,
    Read: Fn(&str, T) -> Option<String>,
{
    let http = status_client()?;
    for (name, ip) in nodes.iter() {
        let Ok(response) = ask(&http, *ip).send().await else {
            continue;
        };
        let Ok(answer) = response.json::<T>().await else {
            continue;
        };
        if let Some(node) = leader(name, answer) {
            return Some(node);
        }
    }
    None
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

/// Start one `binary` per lab node, in order, as `launch` says (environment, libfaketime,
/// whether to make each node's data directory `data_dir/<node>`), with the arguments `args`
/// gives the node's name, address and data directory (it may write the node's files first).
/// A start that fails half-way stops the nodes already started and removes `data_dir` before
/// returning the error ([`wipe_on_error`]).
pub(crate) async fn start_in_lab(
    lab: &Lab,
    nodes: &Nodes,
    binary: PathBuf,
    data_dir: &Path,
    launch: &Launch,
    mut args: impl FnMut(&str, Ipv4Addr, &str) -> Result<Vec<String>, Error>,
) -> Result<Placement, Error> {
    let started = async {
        if !launch.make_data_dir {
            // The server makes its own data directory; the parent must exist.
            create_dir(data_dir)?;
        }
        for (name, ip) in nodes.iter() {
            let data = data_dir.join(name);
            if launch.make_data_dir {
                create_dir(&data)?;
            }
            let args = args(name, *ip, &data.display().to_string())?;
            let command = node_command(
                lab,
                name,
                &binary,
                args,
                launch.env.clone(),
                launch.faketime,
            );
            lab.start_node(name, command).await?;
        }
        Ok(())
    };
    wipe_on_error(lab, data_dir, started.await).await?;
    Ok(Placement::Lab {
        binary,
        data_dir: data_dir.to_path_buf(),
    })
}

/// Make `path` and its parents; the error names the directory.
pub(crate) fn create_dir(path: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(path).map_err(|source| Error::Io {
        what: format!("creating {}", path.display()),
        source,
    })
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
fn status_client() -> Option<reqwest::Client> {
    crate::http::client_with_timeout(Duration::from_millis(500)).ok()
}
