//! The Consul target: a Consul 1.8 server cluster in the lab or on remote hosts, driven over
//! its KV HTTP API.
//!
//! Each node is a server agent bound to its lab address (HTTP on `IP:8500`, Raft on 8300,
//! Serf on 8301/8302), with `raft_multiplier: 1` (the default 5 makes elections take 5–20 s)
//! and `cleanup_dead_servers: false` (otherwise a partitioned server is dropped from the Raft
//! configuration and a later leader kill can leave the cluster leaderless for ~40 s).
//!
//! Consul's CAS compares an index, not a value. A value-CAS is therefore a consistent read
//! (value and `ModifyIndex`), a local compare, and `PUT ?cas=<index>`: it takes effect only if
//! nothing wrote the key since the read, so it is atomic.
//!
//! Network calls run on the lab's client runtime (see the crate root).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use faultline_nemesis::{Lab, Remote};
use serde::Deserialize;

use crate::discover::find_program;
use crate::error::Error;
use crate::hosts::{HostNodes, HostsSpec, Launch};
use crate::http::client_with_timeout;
use crate::nodes::{Nodes, Placement, find_leader, start_in_lab, wait_for_leader};
use crate::outcome::{CAS_MISMATCH, Outcome, Request};

/// HTTP API port on every node.
pub const HTTP_PORT: u16 = 8500;
/// Server RPC (Raft) port: what `/v1/status/leader` names.
pub const SERVER_PORT: u16 = 8300;

/// How reads are served (Consul's consistency modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsulReadMode {
    /// `?consistent`: the leader confirms its leadership with a quorum first.
    Consistent,
    /// No flag: the leader answers from its state while it believes it leads.
    Default,
    /// `?stale`: any server answers from its own state.
    Stale,
}

impl ConsulReadMode {
    /// Parse a `--read-mode` value.
    pub fn parse(text: &str) -> Result<ConsulReadMode, Error> {
        match text {
            "consistent" => Ok(ConsulReadMode::Consistent),
            "default" => Ok(ConsulReadMode::Default),
            "stale" => Ok(ConsulReadMode::Stale),
            other => Err(Error::Config(format!(
                "--read-mode {other}: Consul reads are `consistent` (default), `default` or `stale`"
            ))),
        }
    }

    fn query(self) -> &'static str {
        match self {
            ConsulReadMode::Consistent => "?consistent",
            ConsulReadMode::Default => "",
            ConsulReadMode::Stale => "?stale",
        }
    }
}

/// How to start a Consul cluster.
#[derive(Clone, Debug)]
pub struct ConsulSpec {
    /// The `consul` binary; found on PATH or in `.tools/bin` when `None`.
    pub binary: Option<PathBuf>,
    /// Data directories and config files go under here, one per node (removed at stop).
    pub data_dir: PathBuf,
    pub read_mode: ConsulReadMode,
    /// Per-request timeout of clients.
    pub op_timeout: Duration,
    /// How long to wait for the first leader.
    pub startup_timeout: Duration,
}

/// A running Consul cluster.
pub struct ConsulCluster {
    nodes: Nodes,
    placement: Placement,
    read_mode: ConsulReadMode,
    op_timeout: Duration,
    startup_timeout: Duration,
}

/// Find `consul`: the given path, `$FAULTLINE_CONSUL_BIN`, PATH, or the tools directory.
pub fn find_binary(given: Option<&Path>) -> Result<PathBuf, Error> {
    find_program(
        "consul",
        given,
        "FAULTLINE_CONSUL_BIN",
        "install Consul 1.8.7 into .tools/bin with `bash scripts/install-targets.sh`, or pass --consul-bin",
    )
}

const AGENT_CONFIG: &str = r#"{
  "disable_update_check": true,
  "performance": { "raft_multiplier": 1 },
  "autopilot": { "cleanup_dead_servers": false }
}
"#;

/// How the lab and the hosts start a Consul server agent.
const LAUNCH: Launch = Launch {
    program: "consul",
    install_hint: "install Consul 1.8 (the binary from releases.hashicorp.com, or Debian bullseye's consul package)",
    version_args: &["version"],
    // Go reads the clock through the vDSO: libfaketime cannot reach it.
    faketime: false,
    make_data_dir: true,
    env: Vec::new(),
};

impl ConsulCluster {
    /// Start one server agent per lab node. Does no network I/O: follow with
    /// [`ConsulCluster::wait_for_leader`] on the client runtime.
    pub async fn start(spec: &ConsulSpec, lab: &Lab) -> Result<ConsulCluster, Error> {
        let binary = find_binary(spec.binary.as_deref())?;
        let nodes = Nodes::of(lab);
        let args = |name: &str, ip, data: &str| {
            let config = spec.data_dir.join(format!("{name}.json"));
            std::fs::write(&config, AGENT_CONFIG).map_err(|source| Error::Io {
                what: format!("writing {}", config.display()),
                source,
            })?;
            Ok(node_args(
                &nodes,
                name,
                ip,
                data,
                &config.display().to_string(),
            ))
        };
        let placement = start_in_lab(lab, &nodes, binary, &spec.data_dir, &LAUNCH, args).await?;
        Ok(ConsulCluster::new(spec, nodes, placement))
    }

    /// Start one server agent per host, with the same command line and agent config as in
    /// the lab. `remote` must be connected to the hosts ([`crate::hosts::connect`]). Does no
    /// HTTP: follow with [`ConsulCluster::wait_for_leader`] from where the clients run.
    pub async fn start_on_hosts(
        spec: &ConsulSpec,
        hosts: &HostsSpec,
        remote: &mut Remote,
    ) -> Result<ConsulCluster, Error> {
        let nodes = Nodes::of_hosts(&hosts.hosts);
        let started = HostNodes::start(
            hosts,
            remote,
            LAUNCH,
            |_| vec![(CONFIG_FILE, AGENT_CONFIG.to_string())],
            |_, node| {
                let config = format!("{}/{CONFIG_FILE}", node.dir);
                node_args(&nodes, &node.name, node.address, &node.data, &config)
            },
        )
        .await?;
        Ok(ConsulCluster::new(spec, nodes, Placement::Hosts(started)))
    }

    fn new(spec: &ConsulSpec, nodes: Nodes, placement: Placement) -> ConsulCluster {
        ConsulCluster {
            nodes,
            placement,
            read_mode: spec.read_mode,
            op_timeout: spec.op_timeout,
            startup_timeout: spec.startup_timeout,
        }
    }

    /// The node names, `n1`…
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.names()
    }

    /// Wait, bounded by the spec's startup timeout, until a leader is elected and its KV store
    /// answers a consistent read (a fresh leader refuses KV requests for a moment).
    pub async fn wait_for_leader(&self) -> Result<String, Error> {
        let http = &client_with_timeout(Duration::from_millis(1000))?;
        wait_for_leader("Consul", self.startup_timeout, move || async move {
            let leader = self.leader().await?;
            let ip = self.nodes.ip(&leader).ok()?;
            let url = format!("http://{ip}:{HTTP_PORT}/v1/kv/faultline-probe?consistent");
            let answer = http.get(url).send().await.ok()?;
            matches!(answer.status().as_u16(), 200 | 404).then_some(leader)
        })
        .await
    }

    /// The current leader: what a node's `/v1/status/leader` says (`"IP:8300"`), as a node
    /// name. Asks each node in turn until one knows a leader.
    pub async fn leader(&self) -> Option<String> {
        find_leader(
            &self.nodes,
            |http, ip| http.get(format!("http://{ip}:{HTTP_PORT}/v1/status/leader")),
            |_, address: String| self.node_at(&address),
        )
        .await
    }

    fn node_at(&self, address: &str) -> Option<String> {
        let ip: Ipv4Addr = address.split(':').next()?.parse().ok()?;
        self.nodes.name_of(ip)
    }

    /// A client bound to `node`, reading in the spec's read mode.
    pub fn client(&self, node: &str) -> Result<ConsulClient, Error> {
        self.client_reading(node, self.read_mode)
    }

    /// A client bound to `node` that reads in `read_mode`.
    pub fn client_reading(
        &self,
        node: &str,
        read_mode: ConsulReadMode,
    ) -> Result<ConsulClient, Error> {
        Ok(ConsulClient {
            base: format!("http://{}:{HTTP_PORT}/v1/kv", self.nodes.ip(node)?),
            read_mode,
            http: client_with_timeout(self.op_timeout)?,
        })
    }

    /// Stop every node and remove the data directories.
    pub async fn stop(self, lab: &Lab) -> Result<(), Error> {
        self.placement.stop_in_lab(lab, STOP_GRACE).await
    }

    /// Stop every node on its host, fetch the logs and remove the run's data there.
    pub async fn stop_on_hosts(self, remote: &Remote) -> Result<(), Error> {
        self.placement.stop_on_hosts(remote, STOP_GRACE).await
    }

    /// `Consul v1.8.7`.
    pub fn version(&self) -> String {
        self.placement.version(LAUNCH.version_args)
    }
}

const STOP_GRACE: Duration = Duration::from_secs(3);

/// The agent config's name in a node's directory on a host.
const CONFIG_FILE: &str = "consul.json";

/// One server agent's command line (in the lab and on hosts alike).
fn node_args(nodes: &Nodes, name: &str, ip: Ipv4Addr, data: &str, config: &str) -> Vec<String> {
    let mut args = vec![
        "agent".to_string(),
        "-server".into(),
        format!("-bootstrap-expect={}", nodes.len()),
        format!("-node={name}"),
        format!("-bind={ip}"),
        format!("-client={ip}"),
        format!("-data-dir={data}"),
        "-dns-port=-1".into(),
        format!("-config-file={config}"),
    ];
    for (peer, peer_ip) in nodes.iter() {
        if peer != name {
            args.push(format!("-retry-join={peer_ip}"));
        }
    }
    args
}

/// A client of one Consul node.
#[derive(Clone)]
pub struct ConsulClient {
    base: String,
    read_mode: ConsulReadMode,
    http: reqwest::Client,
}

impl ConsulClient {
    /// A client of the Consul agent at `base` (`http://IP:8500`) that this crate did not start.
    pub fn at(
        base: &str,
        read_mode: ConsulReadMode,
        op_timeout: Duration,
    ) -> Result<ConsulClient, Error> {
        Ok(ConsulClient {
            base: format!("{}/v1/kv", base.trim_end_matches('/')),
            read_mode,
            http: client_with_timeout(op_timeout)?,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    value: Option<String>,
    modify_index: u64,
}

/// What a read found: the value, and the index a CAS must name (0 = the key is absent).
struct Found {
    value: Option<i64>,
    modify_index: u64,
}

impl ConsulClient {
    /// Send one request; every way it can end becomes an [`Outcome`] here and nowhere else.
    pub async fn call(&self, request: &Request) -> Outcome {
        match request {
            Request::Read { key } => match self.read(key, self.read_mode).await {
                Ok(found) => Outcome::Ok(found.value),
                Err(outcome) => outcome,
            },
            Request::Write { key, value } => self.put(key, *value, None).await,
            Request::Cas { key, expected, new } => {
                let found = match self.read(key, ConsulReadMode::Consistent).await {
                    Ok(found) => found,
                    // Nothing was written yet: the CAS did nothing.
                    Err(outcome) => return outcome,
                };
                if found.value != Some(*expected) {
                    return Outcome::Fail(CAS_MISMATCH.into());
                }
                // `?cas=index` writes only if nothing wrote the key since the read; if
                // something did, nothing was written (a `fail` that observed nothing).
                self.put(key, *new, Some(found.modify_index)).await
            }
        }
    }

    async fn read(&self, key: &str, mode: ConsulReadMode) -> Result<Found, Outcome> {
        let url = format!("{}/{key}{}", self.base, mode.query());
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| crate::http::unanswered(&e, true))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| crate::http::unanswered(&e, true))?;
        match status {
            404 => Ok(Found {
                value: None,
                modify_index: 0,
            }),
            200 => {
                let entries: Vec<Entry> = serde_json::from_slice(&bytes)
                    .map_err(|e| Outcome::Fail(format!("unreadable KV answer: {e}")))?;
                let Some(entry) = entries.into_iter().next() else {
                    return Ok(Found {
                        value: None,
                        modify_index: 0,
                    });
                };
                let value = match entry.value.as_deref() {
                    None => None,
                    Some(encoded) => Some(decode_value(encoded).ok_or_else(|| {
                        Outcome::Fail(format!("a value that is not an integer: {encoded}"))
                    })?),
                };
                Ok(Found {
                    value,
                    modify_index: entry.modify_index,
                })
            }
            _ => Err(crate::http::refused(status, body_text(&bytes), true)),
        }
    }

    async fn put(&self, key: &str, value: i64, cas_index: Option<u64>) -> Outcome {
        let url = match cas_index {
            Some(index) => format!("{}/{key}?cas={index}", self.base),
            None => format!("{}/{key}", self.base),
        };
        let response = match self.http.put(url).body(value.to_string()).send().await {
            Ok(r) => r,
            Err(e) => return crate::http::unanswered(&e, false),
        };
        let status = response.status().as_u16();
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return crate::http::unanswered(&e, false),
        };
        match (status, bytes.trim_ascii()) {
            (200, b"true") => Outcome::Ok(None),
            (200, b"false") if cas_index.is_some() => Outcome::Fail(INDEX_MOVED.into()),
            (200, other) => Outcome::Info(format!(
                "unexpected answer to a put: {}",
                String::from_utf8_lossy(other)
            )),
            _ => crate::http::refused(status, body_text(&bytes), false),
        }
    }
}

/// Why a CAS whose index check failed did nothing.
const INDEX_MOVED: &str = "index moved: the key was written between the read and the put";

fn decode_value(encoded: &str) -> Option<i64> {
    let bytes = BASE64.decode(encoded).ok()?;
    std::str::from_utf8(&bytes).ok()?.trim().parse().ok()
}

fn body_text(body: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(body).chars().take(200).collect();
    if text.trim().is_empty() {
        "no reason given".into()
    } else {
        text.trim().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_modes_parse_to_their_query_flags() {
        let mode = |s| ConsulReadMode::parse(s).expect("known").query();
        assert_eq!(mode("consistent"), "?consistent");
        assert_eq!(mode("default"), "");
        assert_eq!(mode("stale"), "?stale");
        let error = ConsulReadMode::parse("linearizable")
            .unwrap_err()
            .to_string();
        assert!(error.contains("consistent"), "{error}");
    }

    #[test]
    fn values_are_decimal_text_in_base64() {
        assert_eq!(decode_value(&BASE64.encode(b"42")), Some(42));
        assert_eq!(decode_value(&BASE64.encode(b"forty")), None);
    }
}
