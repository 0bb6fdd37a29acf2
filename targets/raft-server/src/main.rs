//! `faultline-raft`: the bundled Raft key-value server Faultline tests by default.
//!
//! A small, durable key-value store on openraft 0.9 (the consensus is openraft's; the log
//! storage, state machine, network and HTTP API are ours). Registers hold integers; reads
//! are linearizable (ReadIndex through `Raft::ensure_linearizable`), writes and CAS are
//! acknowledged after commit. Opt-in `--unsafe` modes plant the bugs the harness must find.
//!
//! # Layout
//! - `types`: the Raft type configuration and the replicated commands.
//! - `log_store`: the durable log (checksummed records, fsync, torn-tail truncation).
//! - `state_machine`: the map, applying commands, JSON snapshots on disk.
//! - `network`: Raft RPCs over HTTP.
//! - `api`: the client API and the RPC endpoints.
//! - `batch`: group commit (the writes that arrive together become one entry) and one
//!   leadership confirmation for all waiting reads.
//! - `crc`: CRC-32 for log records.
//!
//! # Never
//! It never answers a default read from local state without a quorum check, never
//! acknowledges a write before it is committed and fsynced on a quorum, and never starts an
//! unsafe mode unless `--unsafe` names it.

mod api;
mod batch;
mod clock;
mod crc;
mod log_store;
mod network;
mod state_machine;
mod types;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use openraft::{BasicNode, Config, SnapshotPolicy};

use crate::types::{NodeId, Raft};

/// The bundled Raft key-value server.
#[derive(Debug, Parser)]
#[command(name = "faultline-raft", version)]
struct Args {
    /// This node's id (a positive integer, one of --peers).
    #[arg(long)]
    id: NodeId,
    /// Address to serve the client API and Raft RPCs on (IPv4:port).
    #[arg(long)]
    listen: SocketAddr,
    /// Every member, this one included: `1=10.0.0.1:7000,2=10.0.0.2:7000,...`.
    #[arg(long, value_delimiter = ',', value_parser = parse_peer)]
    peers: Vec<(NodeId, String)>,
    /// Where the log, vote and snapshots live.
    #[arg(long)]
    data_dir: PathBuf,
    /// Form the cluster from --peers if it has not been formed yet (give it to one node).
    #[arg(long)]
    init: bool,
    /// Plant a bug, for testing the tester: stale-reads, lease-reads, ack-before-commit.
    #[arg(long = "unsafe", value_name = "MODE")]
    unsafe_modes: Vec<UnsafeMode>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum UnsafeMode {
    /// Any node answers reads from its local state.
    StaleReads,
    /// The leader answers reads locally while its lease holds by its own clock.
    LeaseReads,
    /// The leader acknowledges writes before a quorum has them.
    AckBeforeCommit,
}

/// The unsafe modes in force; all off unless `--unsafe` names them.
#[derive(Clone, Copy, Debug, Default)]
pub struct UnsafeModes {
    pub stale_reads: bool,
    pub lease_reads: bool,
    pub ack_before_commit: bool,
}

impl UnsafeModes {
    fn from_args(modes: &[UnsafeMode]) -> UnsafeModes {
        UnsafeModes {
            stale_reads: modes.contains(&UnsafeMode::StaleReads),
            lease_reads: modes.contains(&UnsafeMode::LeaseReads),
            ack_before_commit: modes.contains(&UnsafeMode::AckBeforeCommit),
        }
    }

    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.stale_reads {
            names.push("stale-reads");
        }
        if self.lease_reads {
            names.push("lease-reads");
        }
        if self.ack_before_commit {
            names.push("ack-before-commit");
        }
        names
    }
}

fn parse_peer(s: &str) -> Result<(NodeId, String), String> {
    let (id, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected ID=IP:PORT"))?;
    let id = id
        .parse()
        .map_err(|_| format!("`{id}`: expected a node id"))?;
    Ok((id, addr.to_string()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let unsafe_modes = UnsafeModes::from_args(&args.unsafe_modes);
    if !unsafe_modes.names().is_empty() {
        tracing::warn!(modes = ?unsafe_modes.names(), "UNSAFE modes enabled: this node is deliberately incorrect");
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    let log = log_store::LogStore::open(&args.data_dir).context("opening the raft log")?;
    let state =
        state_machine::StateMachine::open(&args.data_dir).context("opening the snapshot")?;
    let config = Config {
        cluster_name: "faultline".into(),
        heartbeat_interval: 100,
        // 5 nodes elect in well under 2 s, and a loaded 2-core machine does not flap.
        election_timeout_min: 500,
        election_timeout_max: 1000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(10_000),
        max_in_snapshot_log_to_keep: 1_000,
        ..Config::default()
    }
    .validate()
    .context("raft configuration")?;
    let network = network::Network::new().context("building the HTTP client")?;
    let raft = Raft::new(args.id, Arc::new(config), network, log, state.clone())
        .await
        .context("starting raft")?;
    let app = Arc::new(api::App {
        id: args.id,
        raft: raft.clone(),
        batcher: batch::Batcher::start(raft.clone()),
        reads: batch::ReadBatcher::start(raft.clone()),
        state,
        unsafe_modes,
        client: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .context("building the forwarding client")?,
        lease_until: tokio::sync::Mutex::new(None),
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(id = args.id, listen = %args.listen, "serving");

    if args.init {
        let members: BTreeMap<NodeId, BasicNode> = args
            .peers
            .iter()
            .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
            .collect();
        let raft = raft.clone();
        tokio::spawn(async move { initialize(raft, members).await });
    }

    axum::serve(listener, api::router(app))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;
    tracing::info!("shutting down");
    if let Err(e) = raft.shutdown().await {
        tracing::warn!("raft shutdown: {e}");
    }
    Ok(())
}

async fn initialize(raft: Raft, members: BTreeMap<NodeId, BasicNode>) {
    match raft.is_initialized().await {
        Ok(true) => tracing::info!("cluster already formed"),
        Ok(false) => {
            let ids: BTreeSet<NodeId> = members.keys().copied().collect();
            match raft.initialize(members).await {
                Ok(()) => tracing::info!(?ids, "cluster formed"),
                Err(e) => tracing::warn!("forming the cluster: {e}"),
            }
        }
        Err(e) => tracing::error!("raft stopped: {e}"),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without handlers the default actions still end the process.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
