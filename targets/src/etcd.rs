//! The etcd target: an etcd 3.4 cluster in the lab or on remote hosts, driven over its v3
//! JSON gateway.
//!
//! Each node listens for clients on `IP:2379` and for peers on `IP:2380`. The gateway takes
//! POSTs of JSON with keys and values in base64 (`../shared/targets.md` has the measured
//! shapes). Reads are linearizable by default; `serializable` reads are answered from the
//! node's local state and may be stale — the mode exists so users can test what they run.
//!
//! Network calls run on the lab's client runtime (see the crate root).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use faultline_nemesis::{Lab, Remote};
use serde::Deserialize;
use serde_json::json;

use crate::discover::find_program;
use crate::error::Error;
use crate::hosts::{HostNodes, HostsSpec, Launch};
use crate::http::client_with_timeout;
use crate::nodes::{Nodes, Placement, find_leader, start_in_lab, wait_for_leader};
use crate::outcome::{CAS_MISMATCH, Outcome, Request};

/// Client port on every node.
pub const CLIENT_PORT: u16 = 2379;
/// Peer (Raft) port on every node.
pub const PEER_PORT: u16 = 2380;

/// How reads are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EtcdReadMode {
    /// Through Raft (read index): never stale.
    Linearizable,
    /// From the node's local state: fast, and stale on a partitioned node.
    Serializable,
}

impl EtcdReadMode {
    /// Parse a `--read-mode` value.
    pub fn parse(text: &str) -> Result<EtcdReadMode, Error> {
        match text {
            "linearizable" => Ok(EtcdReadMode::Linearizable),
            "serializable" => Ok(EtcdReadMode::Serializable),
            other => Err(Error::Config(format!(
                "--read-mode {other}: etcd reads are `linearizable` (default) or `serializable`"
            ))),
        }
    }
}

/// How to start an etcd cluster.
#[derive(Clone, Debug)]
pub struct EtcdSpec {
    /// The `etcd` binary; found on PATH when `None`.
    pub binary: Option<PathBuf>,
    /// Data directories go under here, one per node (each preallocates ~120 MB; removed at stop).
    pub data_dir: PathBuf,
    pub read_mode: EtcdReadMode,
    /// Per-request timeout of clients.
    pub op_timeout: Duration,
    /// How long to wait for the first leader.
    pub startup_timeout: Duration,
}

/// A running etcd cluster.
pub struct EtcdCluster {
    nodes: Nodes,
    placement: Placement,
    read_mode: EtcdReadMode,
    op_timeout: Duration,
    startup_timeout: Duration,
}

/// Find `etcd`: the given path, `$FAULTLINE_ETCD_BIN`, PATH, or the tools directory.
pub fn find_binary(given: Option<&Path>) -> Result<PathBuf, Error> {
    find_program(
        "etcd",
        given,
        "FAULTLINE_ETCD_BIN",
        "install it with `bash scripts/install-targets.sh` (Debian package etcd-server), or pass --etcd-bin",
    )
}

/// How the lab and the hosts start etcd.
const LAUNCH: Launch = Launch {
    program: "etcd",
    install_hint: "install etcd 3.4 (Debian: apt-get install etcd-server)",
    version_args: &["--version"],
    // Go reads the clock through the vDSO: libfaketime cannot reach it.
    faketime: false,
    // etcd makes its data directory itself.
    make_data_dir: false,
    env: Vec::new(),
};

impl EtcdCluster {
    /// Start one etcd per lab node, as one new cluster. Does no network I/O: follow with
    /// [`EtcdCluster::wait_for_leader`] on the client runtime.
    pub async fn start(spec: &EtcdSpec, lab: &Lab) -> Result<EtcdCluster, Error> {
        let binary = find_binary(spec.binary.as_deref())?;
        let nodes = Nodes::of(lab);
        // A cluster token per lab, so members of another run can never join this one.
        let token = format!("faultline-{}", lab.name());
        let args = |name: &str, ip, data: &str| Ok(node_args(&nodes, name, ip, data, &token));
        let placement = start_in_lab(lab, &nodes, binary, &spec.data_dir, &LAUNCH, args).await?;
        Ok(EtcdCluster::new(spec, nodes, placement))
    }

    /// Start one etcd per host, as one new cluster, with the same command line as in the lab.
    /// `remote` must be connected to the hosts ([`crate::hosts::connect`]). Does no HTTP:
    /// follow with [`EtcdCluster::wait_for_leader`] from where the clients run.
    pub async fn start_on_hosts(
        spec: &EtcdSpec,
        hosts: &HostsSpec,
        remote: &mut Remote,
    ) -> Result<EtcdCluster, Error> {
        let nodes = Nodes::of_hosts(&hosts.hosts);
        // A cluster token per run, so members of another run can never join this one.
        let token = format!("faultline-{}", hosts.run_id);
        let started = HostNodes::start(
            hosts,
            remote,
            LAUNCH,
            |_| Vec::new(),
            |_, node| node_args(&nodes, &node.name, node.address, &node.data, &token),
        )
        .await?;
        Ok(EtcdCluster::new(spec, nodes, Placement::Hosts(started)))
    }

    fn new(spec: &EtcdSpec, nodes: Nodes, placement: Placement) -> EtcdCluster {
        EtcdCluster {
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

    /// Wait, bounded by the spec's startup timeout, until a leader is elected.
    pub async fn wait_for_leader(&self) -> Result<String, Error> {
        wait_for_leader("etcd", self.startup_timeout, || self.leader()).await
    }

    /// The current leader: the node whose member id is the leader its own status reports.
    pub async fn leader(&self) -> Option<String> {
        find_leader(
            &self.nodes,
            |http, ip| {
                http.post(format!("http://{ip}:{CLIENT_PORT}/v3/maintenance/status"))
                    .json(&json!({}))
            },
            |name, status: MaintenanceStatus| {
                (status.leader.is_some() && status.leader == status.header.member_id)
                    .then(|| name.to_string())
            },
        )
        .await
    }

    /// A client bound to `node`, reading in the spec's read mode.
    pub fn client(&self, node: &str) -> Result<EtcdClient, Error> {
        self.client_reading(node, self.read_mode)
    }

    /// A client bound to `node` that reads in `read_mode`.
    pub fn client_reading(&self, node: &str, read_mode: EtcdReadMode) -> Result<EtcdClient, Error> {
        let ip = self.nodes.ip(node)?;
        Ok(EtcdClient {
            base: format!("http://{ip}:{CLIENT_PORT}"),
            serializable: read_mode == EtcdReadMode::Serializable,
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

    /// `etcd Version: 3.4.23`.
    pub fn version(&self) -> String {
        self.placement.version(LAUNCH.version_args)
    }
}

/// etcd hands leadership over on SIGTERM, which takes seconds; the data is removed anyway,
/// so a short grace is enough.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// One member's command line (in the lab and on hosts alike).
fn node_args(nodes: &Nodes, name: &str, ip: Ipv4Addr, data: &str, token: &str) -> Vec<String> {
    let initial_cluster = nodes
        .iter()
        .map(|(name, ip)| format!("{name}=http://{ip}:{PEER_PORT}"))
        .collect::<Vec<_>>()
        .join(",");
    vec![
        format!("--name={name}"),
        format!("--data-dir={data}"),
        format!("--listen-peer-urls=http://{ip}:{PEER_PORT}"),
        format!("--initial-advertise-peer-urls=http://{ip}:{PEER_PORT}"),
        format!("--listen-client-urls=http://{ip}:{CLIENT_PORT}"),
        format!("--advertise-client-urls=http://{ip}:{CLIENT_PORT}"),
        format!("--initial-cluster={initial_cluster}"),
        "--initial-cluster-state=new".into(),
        format!("--initial-cluster-token={token}"),
        // Without pre-vote a healed node forces a new election and disrupts the cluster
        // (targets.md); every production deployment turns it on.
        "--pre-vote".into(),
    ]
}

#[derive(Deserialize)]
struct StatusHeader {
    member_id: Option<String>,
}

#[derive(Deserialize)]
struct MaintenanceStatus {
    header: StatusHeader,
    leader: Option<String>,
}

/// A client of one etcd node.
#[derive(Clone)]
pub struct EtcdClient {
    base: String,
    serializable: bool,
    http: reqwest::Client,
}

impl EtcdClient {
    /// A client of the etcd member at `base` (`http://IP:2379`) that this crate did not start.
    pub fn at(
        base: &str,
        read_mode: EtcdReadMode,
        op_timeout: Duration,
    ) -> Result<EtcdClient, Error> {
        Ok(EtcdClient {
            base: base.trim_end_matches('/').to_string(),
            serializable: read_mode == EtcdReadMode::Serializable,
            http: client_with_timeout(op_timeout)?,
        })
    }
}

#[derive(Deserialize)]
struct RangeAnswer {
    #[serde(default)]
    kvs: Vec<KeyValue>,
}

#[derive(Deserialize)]
struct KeyValue {
    value: Option<String>,
}

#[derive(Deserialize)]
struct TxnAnswer {
    /// proto3 leaves `false` out of the JSON: absent means the compare failed.
    #[serde(default)]
    succeeded: bool,
}

impl EtcdClient {
    /// Send one request; every way it can end becomes an [`Outcome`] here and nowhere else.
    pub async fn call(&self, request: &Request) -> Outcome {
        let key = BASE64.encode(request.key().as_bytes());
        let (path, body) = match request {
            Request::Read { .. } => (
                "/v3/kv/range",
                json!({ "key": key, "serializable": self.serializable }),
            ),
            Request::Write { value, .. } => (
                "/v3/kv/put",
                json!({ "key": key, "value": BASE64.encode(value.to_string().as_bytes()) }),
            ),
            Request::Cas { expected, new, .. } => (
                "/v3/kv/txn",
                json!({
                    "compare": [{
                        "key": key,
                        "result": "EQUAL",
                        "target": "VALUE",
                        "value": BASE64.encode(expected.to_string().as_bytes()),
                    }],
                    "success": [{ "request_put": {
                        "key": key,
                        "value": BASE64.encode(new.to_string().as_bytes()),
                    }}],
                }),
            ),
        };
        let is_read = matches!(request, Request::Read { .. });
        let response = match self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return crate::http::unanswered(&e, is_read),
        };
        let status = response.status().as_u16();
        let bytes = match response.bytes().await {
            Ok(b) => b,
            // The server answered, but the body was cut: as if no answer came.
            Err(e) => return crate::http::unanswered(&e, is_read),
        };
        if status != 200 {
            return crate::http::refused(status, gateway_error(&bytes), is_read);
        }
        match request {
            Request::Read { .. } => match serde_json::from_slice::<RangeAnswer>(&bytes) {
                Ok(answer) => match answer.kvs.first().and_then(|kv| kv.value.as_deref()) {
                    None => Outcome::Ok(None),
                    Some(encoded) => match decode_value(encoded) {
                        Some(v) => Outcome::Ok(Some(v)),
                        None => Outcome::Fail(format!("a value that is not an integer: {encoded}")),
                    },
                },
                Err(e) => Outcome::Fail(format!("unreadable range answer: {e}")),
            },
            Request::Write { .. } => Outcome::Ok(None),
            Request::Cas { .. } => match serde_json::from_slice::<TxnAnswer>(&bytes) {
                Ok(TxnAnswer { succeeded: true }) => Outcome::Ok(None),
                Ok(TxnAnswer { succeeded: false }) => Outcome::Fail(CAS_MISMATCH.into()),
                // It answered 200, so the transaction ran; what it did is unknown.
                Err(e) => Outcome::Info(format!("unreadable txn answer: {e}")),
            },
        }
    }
}

fn decode_value(encoded: &str) -> Option<i64> {
    let bytes = BASE64.decode(encoded).ok()?;
    std::str::from_utf8(&bytes).ok()?.parse().ok()
}

/// The gateway's `{"error": …, "message": …}`, or the body as text.
fn gateway_error(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .or_else(|| v.get("error"))
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_modes_parse_and_unknown_ones_say_what_exists() {
        assert_eq!(
            EtcdReadMode::parse("serializable").expect("known"),
            EtcdReadMode::Serializable
        );
        let error = EtcdReadMode::parse("stale").unwrap_err().to_string();
        assert!(error.contains("linearizable"), "{error}");
    }

    #[test]
    fn gateway_errors_read_the_message() {
        assert_eq!(
            gateway_error(br#"{"error":"etcdserver: request timed out","message":"etcdserver: request timed out","code":14}"#),
            "etcdserver: request timed out"
        );
        assert_eq!(gateway_error(b"plain"), "plain");
    }

    #[test]
    fn values_are_decimal_text_in_base64() {
        assert_eq!(decode_value(&BASE64.encode(b"-17")), Some(-17));
        assert_eq!(decode_value(&BASE64.encode(b"x")), None);
        assert_eq!(decode_value("a$b"), None, "not base64");
    }
}
