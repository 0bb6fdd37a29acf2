//! One interface over every target, so the harness never names a system: [`TargetSpec`] says
//! what to start, [`Cluster`] is the running cluster, [`Client`] talks to one node.

use faultline_nemesis::{Lab, Remote};

use crate::attached::AttachedCluster;
use crate::consul::{ConsulClient, ConsulCluster, ConsulSpec};
use crate::error::Error;
use crate::etcd::{EtcdClient, EtcdCluster, EtcdSpec};
use crate::hosts::HostsSpec;
use crate::outcome::{Outcome, Request};
use crate::raft::{RaftClient, RaftCluster, RaftSpec};

/// What to start.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum TargetSpec {
    Raft(RaftSpec),
    Etcd(EtcdSpec),
    Consul(ConsulSpec),
}

impl TargetSpec {
    /// `raft`, `etcd` or `consul`.
    pub fn name(&self) -> &'static str {
        match self {
            TargetSpec::Raft(_) => "raft",
            TargetSpec::Etcd(_) => "etcd",
            TargetSpec::Consul(_) => "consul",
        }
    }

    /// Whether the target's processes read time through libc, so libfaketime clock faults
    /// reach them (the bundled server does; Go programs such as etcd and Consul do not).
    pub fn reads_time_through_libc(&self) -> bool {
        matches!(self, TargetSpec::Raft(_))
    }
}

/// A running cluster of any target.
#[non_exhaustive]
pub enum Cluster {
    Raft(RaftCluster),
    Etcd(EtcdCluster),
    Consul(ConsulCluster),
    /// A cluster someone else runs, reached through `--endpoints`.
    Attached(AttachedCluster),
}

impl Cluster {
    /// Start one node per lab node. Does no network I/O: follow with
    /// [`Cluster::wait_for_leader`] on the lab's client runtime.
    pub async fn start(spec: &TargetSpec, lab: &Lab) -> Result<Cluster, Error> {
        Ok(match spec {
            TargetSpec::Raft(s) => Cluster::Raft(RaftCluster::start(s, lab).await?),
            TargetSpec::Etcd(s) => Cluster::Etcd(EtcdCluster::start(s, lab).await?),
            TargetSpec::Consul(s) => Cluster::Consul(ConsulCluster::start(s, lab).await?),
        })
    }

    /// Start one node per host, over SSH: `remote` must be connected to `hosts`
    /// ([`crate::hosts::connect`]); it learns each node's start command and PID file, so its
    /// faults and restarts reach the nodes. Does no HTTP: follow with
    /// [`Cluster::wait_for_leader`] from where the clients run. Stop with
    /// [`Cluster::stop_on_hosts`].
    pub async fn start_on_hosts(
        spec: &TargetSpec,
        hosts: &HostsSpec,
        remote: &mut Remote,
    ) -> Result<Cluster, Error> {
        Ok(match spec {
            TargetSpec::Raft(s) => {
                Cluster::Raft(RaftCluster::start_on_hosts(s, hosts, remote).await?)
            }
            TargetSpec::Etcd(s) => {
                Cluster::Etcd(EtcdCluster::start_on_hosts(s, hosts, remote).await?)
            }
            TargetSpec::Consul(s) => {
                Cluster::Consul(ConsulCluster::start_on_hosts(s, hosts, remote).await?)
            }
        })
    }

    /// The node names, `n1`…
    pub fn node_names(&self) -> Vec<String> {
        match self {
            Cluster::Raft(c) => c.node_names(),
            Cluster::Etcd(c) => c.node_names(),
            Cluster::Consul(c) => c.node_names(),
            Cluster::Attached(c) => c.node_names(),
        }
    }

    /// Wait (bounded) until a leader is elected; its node name.
    pub async fn wait_for_leader(&self) -> Result<String, Error> {
        match self {
            Cluster::Raft(c) => c.wait_for_leader().await,
            Cluster::Etcd(c) => c.wait_for_leader().await,
            Cluster::Consul(c) => c.wait_for_leader().await,
            Cluster::Attached(c) => c.wait_until_serving().await,
        }
    }

    /// The current leader, if one is known.
    pub async fn leader(&self) -> Option<String> {
        match self {
            Cluster::Raft(c) => c.leader().await,
            Cluster::Etcd(c) => c.leader().await,
            Cluster::Consul(c) => c.leader().await,
            // Not known for a cluster Faultline did not start.
            Cluster::Attached(_) => None,
        }
    }

    /// A client bound to `node`.
    pub fn client(&self, node: &str) -> Result<Client, Error> {
        Ok(match self {
            Cluster::Raft(c) => Client::Raft(c.client(node)?),
            Cluster::Etcd(c) => Client::Etcd(c.client(node)?),
            Cluster::Consul(c) => Client::Consul(c.client(node)?),
            Cluster::Attached(c) => c.client(node)?,
        })
    }

    /// Stop every node and remove the data (an attached cluster is left as it is).
    pub async fn stop(self, lab: Option<&Lab>) -> Result<(), Error> {
        match (self, lab) {
            (Cluster::Raft(c), Some(lab)) => c.stop(lab).await,
            (Cluster::Etcd(c), Some(lab)) => c.stop(lab).await,
            (Cluster::Consul(c), Some(lab)) => c.stop(lab).await,
            (Cluster::Attached(_), _) => Ok(()),
            (_, None) => Err(Error::Config(
                "a cluster started in a lab is stopped through that lab".into(),
            )),
        }
    }

    /// Stop every node of a cluster started on hosts, fetch each node's log (and PIDs) into
    /// the run directory, and remove the run's files on the hosts (an attached cluster is
    /// left as it is).
    pub async fn stop_on_hosts(self, remote: &Remote) -> Result<(), Error> {
        match self {
            Cluster::Raft(c) => c.stop_on_hosts(remote).await,
            Cluster::Etcd(c) => c.stop_on_hosts(remote).await,
            Cluster::Consul(c) => c.stop_on_hosts(remote).await,
            Cluster::Attached(_) => Ok(()),
        }
    }

    /// The server's version line, for `test.json`.
    pub fn version(&self) -> String {
        match self {
            Cluster::Raft(c) => c.version(),
            Cluster::Etcd(c) => c.version(),
            Cluster::Consul(c) => c.version(),
            Cluster::Attached(_) => "attached (not started by Faultline)".into(),
        }
    }
}

/// A client of one node of any target.
#[derive(Clone)]
#[non_exhaustive]
pub enum Client {
    Raft(RaftClient),
    Etcd(EtcdClient),
    Consul(ConsulClient),
}

impl Client {
    /// Send one request; the target's client decides its [`Outcome`].
    pub async fn call(&self, request: &Request) -> Outcome {
        match self {
            Client::Raft(c) => c.call(request).await,
            Client::Etcd(c) => c.call(request).await,
            Client::Consul(c) => c.call(request).await,
        }
    }
}
