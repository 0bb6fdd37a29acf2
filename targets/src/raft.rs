//! The bundled Raft target: a cluster of `faultline-raft` processes in the lab or on remote
//! hosts ([`RaftCluster::start_on_hosts`]).
//!
//! Every node listens on port [`PORT`] of its lab address; node `n1` forms the cluster
//! (`--init`). Nodes read time through libc, so libfaketime clock faults reach them when they
//! are started under it ([`RaftSpec::faketime`]).
//!
//! Network calls ([`RaftCluster::wait_for_leader`], [`RaftCluster::leader`],
//! [`RaftClient::call`]) open sockets: run them on the lab's client runtime, whose threads live
//! in the client namespace, never on a runtime of the root namespace.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use faultline_nemesis::{Lab, Remote};
use serde::Deserialize;

use crate::error::Error;
use crate::hosts::{HostNodes, HostsSpec, Launch};
use crate::http::client_with_timeout;
use crate::nodes::{Nodes, Placement, create_dir, find_leader, node_command, wait_for_leader};
use crate::outcome::{CAS_MISMATCH, Outcome, Request};

/// The port every node serves its API and Raft RPCs on.
pub const PORT: u16 = 7000;

/// How to start a Raft cluster.
#[derive(Clone, Debug)]
pub struct RaftSpec {
    /// `stale-reads`, `lease-reads`, `ack-before-commit`: planted bugs, off unless named.
    pub unsafe_modes: Vec<String>,
    /// The server binary; found next to this executable or on PATH when `None`.
    pub binary: Option<PathBuf>,
    /// Data directories go under here, one per node.
    pub data_dir: PathBuf,
    /// Per-request timeout of clients.
    pub op_timeout: Duration,
    /// How long to wait for the first leader.
    pub startup_timeout: Duration,
    /// Start the nodes under libfaketime, so that clock faults reach them. Only when clock
    /// faults are wanted: libfaketime re-reads the node's clock file on every clock call
    /// (`FAKETIME_NO_CACHE`), which costs the cluster a good part of its throughput
    /// (`faultline bench raft --faketime` measures it).
    pub faketime: bool,
}

/// A running cluster.
pub struct RaftCluster {
    nodes: Nodes,
    placement: Placement,
    op_timeout: Duration,
    startup_timeout: Duration,
}

/// The unsafe modes the server knows.
pub const UNSAFE_MODES: [&str; 3] = ["stale-reads", "lease-reads", "ack-before-commit"];

impl RaftCluster {
    /// Start one `faultline-raft` per lab node. Does no network I/O: follow with
    /// [`RaftCluster::wait_for_leader`] on the client runtime.
    pub async fn start(spec: &RaftSpec, lab: &Lab) -> Result<RaftCluster, Error> {
        check_unsafe_modes(&spec.unsafe_modes)?;
        let binary = find_binary(spec.binary.as_deref())?;
        let nodes = Nodes::of(lab);
        for (i, (name, ip)) in nodes.iter().enumerate() {
            let data = spec.data_dir.join(name);
            create_dir(&data)?;
            let args = node_args(
                &nodes,
                i,
                *ip,
                &data.display().to_string(),
                &spec.unsafe_modes,
            );
            let command = node_command(
                lab,
                name,
                &binary,
                args,
                server_env(spec.faketime),
                spec.faketime,
            );
            lab.start_node(name, command).await?;
        }
        Ok(RaftCluster {
            nodes,
            placement: Placement::Lab {
                binary,
                data_dir: spec.data_dir.clone(),
            },
            op_timeout: spec.op_timeout,
            startup_timeout: spec.startup_timeout,
        })
    }

    /// Start one `faultline-raft` per host (under libfaketime where the host has it, so
    /// clock faults reach it), with the same command line as in the lab. `remote` must be
    /// connected to the hosts ([`crate::hosts::connect`]). Does no HTTP: follow with
    /// [`RaftCluster::wait_for_leader`] from where the clients run.
    pub async fn start_on_hosts(
        spec: &RaftSpec,
        hosts: &HostsSpec,
        remote: &mut Remote,
    ) -> Result<RaftCluster, Error> {
        check_unsafe_modes(&spec.unsafe_modes)?;
        let nodes = Nodes::of_hosts(&hosts.hosts);
        let launch = Launch {
            program: "faultline-raft",
            install_hint: "copy the faultline-raft binary (target/release/faultline-raft of this build) to the same path",
            version_args: &["--version"],
            faketime: spec.faketime,
            make_data_dir: true,
            env: server_env(spec.faketime),
        };
        let started = HostNodes::start(
            hosts,
            remote,
            launch,
            |_| Vec::new(),
            |i, node| node_args(&nodes, i, node.address, &node.data, &spec.unsafe_modes),
        )
        .await?;
        Ok(RaftCluster {
            nodes,
            placement: Placement::Hosts(started),
            op_timeout: spec.op_timeout,
            startup_timeout: spec.startup_timeout,
        })
    }

    /// The node names, `n1`…
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.names()
    }

    /// Wait, bounded by the spec's startup timeout, until a leader is elected.
    pub async fn wait_for_leader(&self) -> Result<String, Error> {
        wait_for_leader("raft", self.startup_timeout, || self.leader()).await
    }

    /// The current leader, as its node name: a node that says it leads. `None` when no node
    /// answers that it is the leader (an election, a partition).
    pub async fn leader(&self) -> Option<String> {
        find_leader(
            &self.nodes,
            |http, ip| http.get(format!("http://{ip}:{PORT}/status")),
            |name, status: Status| (status.role == "Leader").then(|| name.to_string()),
        )
        .await
    }

    /// A client bound to `node`.
    pub fn client(&self, node: &str) -> Result<RaftClient, Error> {
        let ip = self.nodes.ip(node)?;
        Ok(RaftClient {
            base: format!("http://{ip}:{PORT}"),
            http: client_with_timeout(self.op_timeout)?,
        })
    }

    /// Stop every node (SIGTERM, then SIGKILL after a grace period) and remove the data.
    pub async fn stop(self, lab: &Lab) -> Result<(), Error> {
        self.placement.stop_in_lab(lab, STOP_GRACE).await
    }

    /// Stop every node on its host, fetch the logs and remove the run's data there.
    pub async fn stop_on_hosts(self, remote: &Remote) -> Result<(), Error> {
        self.placement.stop_on_hosts(remote, STOP_GRACE).await
    }

    /// Whether clock faults (libfaketime) can reach the nodes: yes, the server reads time via
    /// libc (they do when the spec started them under libfaketime).
    pub fn reads_time_through_libc(&self) -> bool {
        true
    }

    /// `faultline-raft x.y.z`, from the binary itself.
    pub fn version(&self) -> String {
        self.placement.version(&["--version"])
    }
}

/// Grace between SIGTERM and SIGKILL at stop.
const STOP_GRACE: Duration = Duration::from_secs(5);

fn check_unsafe_modes(modes: &[String]) -> Result<(), Error> {
    match modes.iter().find(|m| !UNSAFE_MODES.contains(&m.as_str())) {
        Some(mode) => Err(Error::Config(format!(
            "unknown --unsafe mode `{mode}`: the raft server knows {}",
            UNSAFE_MODES.join(", ")
        ))),
        None => Ok(()),
    }
}

/// Node `i`'s command line (in the lab and on hosts alike): its id, its address, every peer,
/// its data directory; the first node forms the cluster (`--init`).
fn node_args(
    nodes: &Nodes,
    i: usize,
    ip: Ipv4Addr,
    data: &str,
    unsafe_modes: &[String],
) -> Vec<String> {
    let peers = nodes
        .iter()
        .enumerate()
        .map(|(j, (_, ip))| format!("{}={ip}:{PORT}", j + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut args = vec![
        "--id".to_string(),
        (i + 1).to_string(),
        "--listen".into(),
        format!("{ip}:{PORT}"),
        "--peers".into(),
        peers,
        "--data-dir".into(),
        data.to_string(),
    ];
    if i == 0 {
        args.push("--init".into());
    }
    for mode in unsafe_modes {
        args.extend(["--unsafe".to_string(), mode.clone()]);
    }
    args
}

fn server_env(faketime: bool) -> Vec<(String, String)> {
    let mut env = vec![("RUST_LOG".into(), "info,openraft=warn".into())];
    if faketime {
        // Clock faults move the wall clock only, as on a real machine; the server's Raft
        // timers follow the wall clock (faultline-raft's clock.rs).
        env.push(("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()));
    }
    env
}

#[derive(Deserialize)]
struct Status {
    role: String,
}

/// Find `faultline-raft`: the given path, `$FAULTLINE_RAFT_BIN`, next to this executable (or
/// its parent directory, for test binaries in `target/*/deps`), or on PATH.
pub fn find_binary(given: Option<&Path>) -> Result<PathBuf, Error> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    if let Some(path) = std::env::var_os("FAULTLINE_RAFT_BIN") {
        return Ok(PathBuf::from(path));
    }
    let name = "faultline-raft";
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(Error::MissingBinary {
        name: name.into(),
        hint: "build it with `cargo build --bin faultline-raft` (same profile as faultline), or set FAULTLINE_RAFT_BIN".into(),
    })
}

/// A client of one node.
#[derive(Clone)]
pub struct RaftClient {
    base: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct ReadBody {
    value: Option<i64>,
}

impl RaftClient {
    /// A client of the server at `base` (`http://IP:PORT`), outside any cluster this crate
    /// started: for benchmarks against a stand-in server, and for attaching to a running one.
    pub fn at(base: &str, op_timeout: Duration) -> Result<RaftClient, Error> {
        Ok(RaftClient {
            base: base.trim_end_matches('/').to_string(),
            http: client_with_timeout(op_timeout)?,
        })
    }

    /// Send one request; every way it can end becomes an [`Outcome`] here and nowhere else.
    pub async fn call(&self, request: &Request) -> Outcome {
        let sent = match request {
            Request::Read { key } => {
                self.http
                    .get(format!("{}/kv/{key}", self.base))
                    .send()
                    .await
            }
            Request::Write { key, value } => {
                self.http
                    .put(format!("{}/kv/{key}", self.base))
                    .json(&serde_json::json!({ "value": value }))
                    .send()
                    .await
            }
            Request::Cas { key, expected, new } => {
                self.http
                    .post(format!("{}/kv/{key}/cas", self.base))
                    .json(&serde_json::json!({ "expected": expected, "new": new }))
                    .send()
                    .await
            }
        };
        let is_read = matches!(request, Request::Read { .. });
        let response = match sent {
            Ok(r) => r,
            Err(e) => return crate::http::unanswered(&e, is_read),
        };
        let status = response.status().as_u16();
        let body = response.bytes().await;
        match (status, body) {
            (200, Ok(bytes)) if is_read => match serde_json::from_slice::<ReadBody>(&bytes) {
                Ok(b) => Outcome::Ok(b.value),
                Err(e) => Outcome::Fail(format!("unreadable read answer: {e}")),
            },
            (200, _) => Outcome::Ok(None),
            (409, _) => Outcome::Fail(CAS_MISMATCH.into()),
            (_, Err(e)) if is_read => Outcome::Fail(crate::http::describe(&e)),
            (503, body) => Outcome::Fail(format!("unavailable: {}", reason(body))),
            (_, body) if is_read => Outcome::Fail(format!("http {status}: {}", reason(body))),
            (_, body) => Outcome::Info(format!("http {status}: {}", reason(body))),
        }
    }
}

fn reason(body: reqwest::Result<bytes::Bytes>) -> String {
    body.ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| "no reason given".into())
}
