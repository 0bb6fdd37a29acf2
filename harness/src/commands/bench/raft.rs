//! The bundled Raft cluster's benchmarks: start-up time, and throughput and latency under
//! load.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use faultline_nemesis::{Isolation, Lab, LabConfig};
use faultline_targets::raft::{RaftClient, RaftCluster, RaftSpec};
use faultline_workloads::{Generator, Mix, Workload, WorkloadSpec};

use super::{stop_on_signal, tempfile_dir};

/// Said when a signal cut a bench short.
const INTERRUPTED: &str =
    "interrupted by a signal: the run in progress was stopped and its cluster and lab removed";

pub(super) fn raft_startup(nodes: usize, runs: usize) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let stopped = stop_on_signal(&runtime)?;
    let mut times = Vec::new();
    for _ in 0..runs {
        if stopped.load(Ordering::SeqCst) {
            break;
        }
        let dir = tempfile_dir()?;
        let took = runtime.block_on(async {
            let (lab, spec) = loopback_cluster(nodes, &dir, false).await?;
            let started = Instant::now();
            let result = async {
                let cluster = RaftCluster::start(&spec, &lab).await?;
                let leader = cluster.wait_for_leader().await;
                let took = started.elapsed();
                cluster.stop(&lab).await?;
                leader.map(|_| took)
            }
            .await;
            lab.teardown().await?;
            anyhow::Ok(result?)
        })?;
        times.push(took.as_secs_f64());
        let _ = std::fs::remove_dir_all(&dir);
    }
    anyhow::ensure!(!times.is_empty(), "{INTERRUPTED}");
    times.sort_by(f64::total_cmp);
    println!(
        "raft startup: {nodes} nodes, start to first leader in {} runs: min {:.2} s, median {:.2} s, max {:.2} s",
        times.len(),
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );
    Ok(())
}

/// A loopback lab of `nodes` (distinct 127.x addresses, no namespaces, no root needed) under
/// `dir`, and the spec of a safe Raft cluster with its data there.
async fn loopback_cluster(
    nodes: usize,
    dir: &Path,
    faketime: bool,
) -> anyhow::Result<(Lab, RaftSpec)> {
    let lab = Lab::create(LabConfig {
        nodes,
        isolation: Isolation::Loopback,
        run_dir: dir.to_path_buf(),
    })
    .await?;
    let spec = RaftSpec {
        unsafe_modes: Vec::new(),
        binary: None,
        data_dir: dir.join("data"),
        op_timeout: Duration::from_secs(2),
        startup_timeout: Duration::from_secs(30),
        faketime,
    };
    Ok((lab, spec))
}

/// A workload of `faultline bench raft`: `writes`, or read:write:cas weights.
#[derive(Clone, Debug)]
pub struct BenchMix {
    name: String,
    mix: Mix,
}

impl std::str::FromStr for BenchMix {
    type Err = faultline_workloads::Error;

    fn from_str(s: &str) -> Result<BenchMix, Self::Err> {
        let mix = match s {
            "writes" => Mix {
                read: 0,
                write: 1,
                cas: 0,
            },
            other => other.parse()?,
        };
        Ok(BenchMix {
            name: s.to_string(),
            mix,
        })
    }
}

pub(super) struct RaftBench {
    pub(super) nodes: usize,
    pub(super) clients: Vec<usize>,
    pub(super) seconds: f64,
    pub(super) mixes: Vec<BenchMix>,
    pub(super) keys: usize,
    pub(super) data_dir: Option<std::path::PathBuf>,
    pub(super) faketime: bool,
}

/// What the clients of one row saw.
#[derive(Default)]
struct RowTally {
    ok: u64,
    /// CAS operations whose compare did not match (a definite answer, not a refusal).
    mismatch: u64,
    /// Refused: no leader known, a node not up.
    fail: u64,
    info: u64,
    /// Latency of every ok operation, in nanoseconds.
    latencies: Vec<u64>,
    /// CPU time the nodes used during the row (user + system).
    node_cpu: Duration,
}

impl RowTally {
    fn add(&mut self, other: RowTally) {
        self.ok += other.ok;
        self.mismatch += other.mismatch;
        self.fail += other.fail;
        self.info += other.info;
        self.latencies.extend(other.latencies);
    }
}

pub(super) fn raft_throughput(bench: &RaftBench) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let stopped = stop_on_signal(&runtime)?;
    let root = match &bench.data_dir {
        Some(dir) => dir.join(format!("faultline-bench-{}", std::process::id())),
        None => tempfile_dir()?,
    };
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    println!(
        "raft: {} nodes on loopback{}, {:.0} s per row, {} keys; data in {} ({}); {} cores, load average {} at start",
        bench.nodes,
        if bench.faketime {
            " under libfaketime"
        } else {
            ""
        },
        bench.seconds,
        bench.keys,
        root.display(),
        filesystem_of(&root).unwrap_or_else(|| "filesystem unknown".into()),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(str::to_string))
            .unwrap_or_else(|| "unknown".into()),
    );
    println!(
        "{:<8} {:>7} {:>8} {:>8} {:>8} {:>8} {:>6} {:>5} {:>8} {:>8} {:>8} {:>11}",
        "mix",
        "clients",
        "ops",
        "ops/s",
        "ok",
        "mismatch",
        "fail",
        "info",
        "p50 ms",
        "p99 ms",
        "max ms",
        "node µs/op"
    );
    let rows = bench
        .mixes
        .iter()
        .flat_map(|mix| bench.clients.iter().map(move |&clients| (mix, clients)));
    for (mix, clients) in rows {
        let dir = root.join(format!("{}-{clients}", mix.name.replace(':', "-")));
        let row = runtime.block_on(raft_row(bench, mix, clients.max(1), &dir, &stopped));
        let _ = std::fs::remove_dir_all(&dir);
        if stopped.load(Ordering::SeqCst) {
            // The row in progress was cut short: its figures would mislead.
            let _ = std::fs::remove_dir_all(&root);
            println!("{INTERRUPTED}");
            return row.map(|_| ());
        }
        let (tally, elapsed) = row?;
        let ops = tally.ok + tally.mismatch + tally.fail + tally.info;
        let mut latencies = tally.latencies;
        latencies.sort_unstable();
        let at = |q: f64| {
            latencies
                .get(((latencies.len().saturating_sub(1)) as f64 * q) as usize)
                .map_or(f64::NAN, |&ns| ns as f64 / 1e6)
        };
        println!(
            "{:<8} {:>7} {:>8} {:>8.0} {:>8} {:>8} {:>6} {:>5} {:>8.1} {:>8.1} {:>8.1} {:>11.0}",
            mix.name,
            clients,
            ops,
            ops as f64 / elapsed.as_secs_f64(),
            tally.ok,
            tally.mismatch,
            tally.fail,
            tally.info,
            at(0.5),
            at(0.99),
            at(1.0),
            tally.node_cpu.as_secs_f64() * 1e6 / ops.max(1) as f64,
        );
    }
    let _ = std::fs::remove_dir_all(&root);
    println!(
        "latency: of ok operations; mismatch: CAS whose compare did not match; fail: refused; node µs/op: CPU time of all nodes per operation"
    );
    Ok(())
}

/// One row: a fresh cluster, `clients` clients for the bench's seconds, then stop and wipe.
async fn raft_row(
    bench: &RaftBench,
    mix: &BenchMix,
    clients: usize,
    dir: &Path,
    stopped: &Arc<AtomicBool>,
) -> anyhow::Result<(RowTally, Duration)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (lab, spec) = loopback_cluster(bench.nodes, dir, bench.faketime).await?;
    let result = async {
        let cluster = Arc::new(RaftCluster::start(&spec, &lab).await?);
        let measured = drive_row(bench, mix, clients, &cluster, &lab, stopped).await;
        let cluster = Arc::into_inner(cluster).context("a client outlived the row")?;
        cluster.stop(&lab).await?;
        measured
    }
    .await;
    lab.teardown().await?;
    result
}

async fn drive_row(
    bench: &RaftBench,
    mix: &BenchMix,
    clients: usize,
    cluster: &Arc<RaftCluster>,
    lab: &Lab,
    stopped: &Arc<AtomicBool>,
) -> anyhow::Result<(RowTally, Duration)> {
    cluster.wait_for_leader().await?;
    let nodes = cluster.node_names();
    // Until every node knows the leader, a follower refuses what it would forward: wait for
    // that here, so the row measures a settled cluster.
    for node in &nodes {
        let client = cluster.client(node)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let probe = faultline_targets::Request::Write {
            key: "bench-warmup".into(),
            value: 1,
        };
        while client.call(&probe).await != faultline_targets::Outcome::Ok(None) {
            anyhow::ensure!(
                Instant::now() < deadline,
                "{node} did not accept a write within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let generator = Arc::new(Mutex::new(Generator::new(WorkloadSpec {
        workload: Workload::CasRegister,
        keys: bench.keys,
        mix: mix.mix,
        ops_per_key: None,
        seed: 1,
    })?));
    let cpu_of_nodes = || -> Duration {
        nodes
            .iter()
            .filter_map(|n| lab.node_pid(n))
            .filter_map(process_cpu)
            .sum()
    };
    let cpu_before = cpu_of_nodes();
    let began = Instant::now();
    let deadline = began + Duration::from_secs_f64(bench.seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = cluster.client(&nodes[c % nodes.len()])?;
        tasks.push(tokio::spawn(bench_client(
            client,
            generator.clone(),
            deadline,
            stopped.clone(),
        )));
    }
    let mut tally = RowTally::default();
    for task in tasks {
        tally.add(task.await?);
    }
    let elapsed = began.elapsed();
    tally.node_cpu = cpu_of_nodes().saturating_sub(cpu_before);
    Ok((tally, elapsed))
}

/// One client of a row: sends operations until the deadline (or a signal) and times each.
async fn bench_client(
    client: RaftClient,
    generator: Arc<Mutex<Generator>>,
    deadline: Instant,
    stopped: Arc<AtomicBool>,
) -> RowTally {
    use faultline_targets::{Outcome, Request};
    use faultline_workloads::Operation;
    let mut tally = RowTally::default();
    while Instant::now() < deadline && !stopped.load(Ordering::SeqCst) {
        let Ok(op) = generator.lock().map(|mut g| g.next_op()) else {
            break;
        };
        let request = match op {
            Operation::Read { key } => Request::Read { key },
            Operation::Write { key, value } => Request::Write { key, value },
            Operation::Cas { key, expected, new } => Request::Cas { key, expected, new },
        };
        let sent = Instant::now();
        match client.call(&request).await {
            Outcome::Ok(_) => {
                tally.ok += 1;
                tally.latencies.push(sent.elapsed().as_nanos() as u64);
            }
            Outcome::Fail(why) if why == faultline_targets::outcome::CAS_MISMATCH => {
                tally.mismatch += 1;
            }
            Outcome::Fail(_) => {
                tally.fail += 1;
                // Refused (no leader): do not spin on it.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Outcome::Info(_) => tally.info += 1,
        }
    }
    tally
}

/// CPU time (user + system) process `pid` has used, from /proc/PID/stat.
fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields we want come after its closing paren.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // sysconf(_SC_CLK_TCK) is 100 on every Linux this runs on.
    Some(Duration::from_millis(ticks * 10))
}

/// The type of the filesystem holding `path` (longest mount point that prefixes it), from
/// /proc/mounts: fsync on tmpfs is free, so the figures mean something else there.
fn filesystem_of(path: &Path) -> Option<String> {
    let path = std::fs::canonicalize(path).ok()?;
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(point)
                .then(|| (point.len(), kind.to_string()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, kind)| kind)
}
