//! A cluster someone else runs (`--endpoints`): no lifecycle, only clients. Faultline does not
//! start, stop or wipe it, does not know its leader, and cannot inject faults into it from the
//! lab; it only drives the workload and checks what it saw.

use std::time::{Duration, Instant};

use crate::cluster::Client;
use crate::consul::{ConsulClient, ConsulReadMode};
use crate::error::Error;
use crate::etcd::{EtcdClient, EtcdReadMode};
use crate::outcome::{Outcome, Request};
use crate::raft::RaftClient;

/// Which API the endpoints speak, and how to read.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum EndpointApi {
    Raft,
    Etcd(EtcdReadMode),
    Consul(ConsulReadMode),
}

/// How to reach a running cluster.
#[derive(Clone, Debug)]
pub struct AttachedSpec {
    pub api: EndpointApi,
    /// One base URL per node (`http://10.0.0.1:2379`).
    pub endpoints: Vec<String>,
    /// The nodes' names, one per endpoint in order; empty: n1, n2, ….
    pub names: Vec<String>,
    pub op_timeout: Duration,
    /// How long to wait for the cluster to answer a first read.
    pub startup_timeout: Duration,
}

/// Clients of a running cluster, one per endpoint.
pub struct AttachedCluster {
    nodes: Vec<(String, Client)>,
    startup_timeout: Duration,
}

impl AttachedCluster {
    /// Build one client per endpoint. Does no network I/O.
    pub fn attach(spec: &AttachedSpec) -> Result<AttachedCluster, Error> {
        if spec.endpoints.is_empty() {
            return Err(Error::Config(
                "--endpoints needs at least one URL, e.g. http://10.0.0.1:2379".into(),
            ));
        }
        if !spec.names.is_empty() && spec.names.len() != spec.endpoints.len() {
            return Err(Error::Config(format!(
                "{} endpoints but {} node names: give one name per endpoint",
                spec.endpoints.len(),
                spec.names.len()
            )));
        }
        let mut nodes = Vec::new();
        for (i, url) in spec.endpoints.iter().enumerate() {
            if !url.starts_with("http://") {
                return Err(Error::Config(format!(
                    "--endpoints {url}: give plain http:// URLs (Faultline speaks plain HTTP)"
                )));
            }
            let url = url.trim_end_matches('/');
            let client = match &spec.api {
                EndpointApi::Raft => Client::Raft(RaftClient::at(url, spec.op_timeout)?),
                EndpointApi::Etcd(mode) => {
                    Client::Etcd(EtcdClient::at(url, *mode, spec.op_timeout)?)
                }
                EndpointApi::Consul(mode) => {
                    Client::Consul(ConsulClient::at(url, *mode, spec.op_timeout)?)
                }
            };
            let name = spec
                .names
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("n{}", i + 1));
            nodes.push((name, client));
        }
        Ok(AttachedCluster {
            nodes,
            startup_timeout: spec.startup_timeout,
        })
    }

    /// The node names, `n1`… in the order the endpoints were given.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Wait (bounded) until some endpoint answers a read; returns its node name. Which node
    /// leads is not known for a cluster Faultline did not start.
    pub async fn wait_until_serving(&self) -> Result<String, Error> {
        let deadline = Instant::now() + self.startup_timeout;
        let probe = Request::Read {
            key: "faultline-probe".into(),
        };
        let mut last = String::new();
        while Instant::now() < deadline {
            for (name, client) in &self.nodes {
                match client.call(&probe).await {
                    Outcome::Ok(_) => return Ok(name.clone()),
                    Outcome::Fail(why) | Outcome::Info(why) => last = format!("{name}: {why}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(Error::NoLeader(format!(
            "no endpoint answered a read within {:?} (last: {last}): is the cluster up, and are the URLs right?",
            self.startup_timeout
        )))
    }

    /// A client of `node`.
    pub fn client(&self, node: &str) -> Result<Client, Error> {
        self.nodes
            .iter()
            .find(|(n, _)| n == node)
            .map(|(_, c)| c.clone())
            .ok_or_else(|| Error::Config(format!("no node `{node}` among the endpoints")))
    }
}
