//! `faultline bench`: figures for the speed goals, printed, never asserted (these machines are
//! shared and noisy).
//!
//! - `harness`: how many operations per second the harness itself records — the real client
//!   workers, generator and history writer — against a stand-in server on loopback that
//!   answers every request at once, so the harness is all that is measured.
//! - `checker`: how long the checker takes, and how much memory it holds, on synthetic
//!   histories of a given size, concurrency and crash rate.
//! - `report`: how long writing the report of such a history takes.
//! - `raft`: throughput and latency of a bundled Raft cluster (fsync on) under a number of
//!   clients, for writes and for a read/write/CAS mix.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::routing::{get, post};
use faultline_checker::synth::{SynthSpec, write_history};
use faultline_checker::{CheckOptions, Verdict, load_history};
use faultline_nemesis::{Isolation, Lab, LabConfig};
use faultline_targets::Client;
use faultline_targets::raft::{RaftClient, RaftCluster, RaftSpec};
use faultline_workloads::{Generator, Mix, Workload, WorkloadSpec};

use crate::history::HistoryWriter;
use crate::run::Worker;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchKind,
}

#[derive(Debug, clap::Subcommand)]
pub enum BenchKind {
    /// Recorded operations per second of the harness against a no-op server on loopback.
    Harness {
        #[arg(long, default_value_t = 100)]
        clients: usize,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// Checker time on synthetic histories.
    Checker {
        #[arg(long, default_value_t = 1_000_000)]
        ops: u64,
        #[arg(long, default_value_t = 10)]
        procs: u32,
        #[arg(long, default_value_t = 8)]
        keys: u32,
        /// Probability that an operation crashes (ends `info`).
        #[arg(long, default_value_t = 0.0)]
        crash: f64,
        /// Plant a stale read, so the checker must refute the history.
        #[arg(long)]
        stale_read: bool,
        /// Reads and writes only, no compare-and-set.
        #[arg(long)]
        register: bool,
    },
    /// Time to write the report (plots and page) of a synthetic history.
    Report {
        #[arg(long, default_value_t = 1_000_000)]
        ops: u64,
    },
    /// The grid of the checker's speed goals: 1e4, 1e5 and 1e6 ops at 5 and 20 clients, one
    /// key and eight, each row in a fresh process so its peak memory is its own.
    CheckerGrid {
        /// Reads and writes only, no compare-and-set.
        #[arg(long)]
        register: bool,
        /// Seconds each row may take before it is cut off.
        #[arg(long, default_value_t = 120)]
        row_timeout: u64,
    },
    /// Check every history of a data set directory (with its MANIFEST.tsv, like
    /// ../shared/datasets): ops, verdict, expected verdict and time per file.
    Datasets {
        /// The data set directory holding MANIFEST.tsv.
        dir: std::path::PathBuf,
    },
    /// Throughput and latency of a bundled Raft cluster (loopback lab, every write fsynced on a
    /// quorum): one row per workload and client count, each on a fresh cluster.
    Raft {
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        /// Client counts, one row each; clients are spread round-robin over the nodes.
        #[arg(long, value_delimiter = ',', default_value = "10,50")]
        clients: Vec<usize>,
        /// Seconds of load per row.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Workloads, one row each: `writes` (writes only) or weights `read:write:cas`.
        #[arg(long, value_delimiter = ',', default_value = "writes,2:1:1")]
        mix: Vec<BenchMix>,
        /// Keys in use at once.
        #[arg(long, default_value_t = 8)]
        keys: usize,
        /// Where the nodes keep their logs (default: a fresh directory under the temp dir).
        /// fsync on tmpfs costs nothing, so put it on the disk you want to measure.
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
        /// Start the nodes under libfaketime, as `faultline test` does when clock faults are
        /// among its faults (libfaketime re-reads a file on every clock call).
        #[arg(long)]
        faketime: bool,
    },
    /// Time from starting a bundled Raft cluster to its first elected leader (loopback lab).
    RaftStartup {
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
}

pub fn run(args: BenchArgs) -> anyhow::Result<Verdict> {
    match args.what {
        BenchKind::Harness { clients, seconds } => harness(clients.max(1), seconds),
        BenchKind::Checker {
            ops,
            procs,
            keys,
            crash,
            stale_read,
            register,
        } => checker(&SynthSpec {
            ops,
            procs,
            keys,
            crash,
            unique: true,
            stale_read,
            register_only: register,
            seed: 1,
        }),
        BenchKind::Report { ops } => report(ops),
        BenchKind::Raft {
            nodes,
            clients,
            seconds,
            mix,
            keys,
            data_dir,
            faketime,
        } => raft_throughput(&RaftBench {
            nodes: nodes.max(1),
            clients,
            seconds,
            mixes: mix,
            keys: keys.max(1),
            data_dir,
            faketime,
        }),
        BenchKind::RaftStartup { nodes, runs } => raft_startup(nodes.max(1), runs.max(1)),
        BenchKind::CheckerGrid {
            register,
            row_timeout,
        } => checker_grid(register, row_timeout),
        BenchKind::Datasets { dir } => datasets(&dir),
    }?;
    Ok(Verdict::Valid)
}

fn harness(clients: usize, seconds: f64) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let started = Instant::now();
    let (writer, recorder) = HistoryWriter::create(&dir.join("history.jsonl"), started)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let elapsed = runtime.block_on(async move {
        // The stand-in target: every read finds nothing, every write and CAS succeeds.
        let app = Router::new()
            .route(
                "/kv/{key}",
                get(|| async { axum::Json(serde_json::json!({ "value": null })) })
                    .put(|| async { axum::Json(serde_json::json!({ "ok": true })) }),
            )
            .route(
                "/kv/{key}/cas",
                post(|| async { axum::Json(serde_json::json!({ "ok": true })) }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let generator = Arc::new(Mutex::new(Generator::new(WorkloadSpec {
            workload: Workload::CasRegister,
            keys: 8,
            mix: "2:1:1".parse::<Mix>()?,
            ops_per_key: None,
            seed: 1,
        })?));
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        let next_process = Arc::new(AtomicU64::new(clients as u64));
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
        let began = Instant::now();
        let mut workers = Vec::new();
        for process in 0..clients {
            let worker = Worker {
                client: Client::Raft(RaftClient::at(&base, Duration::from_secs(2))?),
                key_prefix: "".into(),
                node: "n1".into(),
                process: process as u64,
                next_process: next_process.clone(),
                recorder: recorder.clone(),
                latencies: latencies.clone(),
            };
            workers.push(tokio::spawn(worker.run(
                generator.clone(),
                deadline,
                None,
                stop.clone(),
            )));
        }
        for worker in workers {
            worker.await?;
        }
        let elapsed = began.elapsed();
        server.abort();
        drop(recorder);
        anyhow::Ok(elapsed)
    })?;
    let tally = writer.finish()?;
    let ops = tally.ok + tally.fail + tally.info;
    println!(
        "harness: {ops} operations recorded ({} history lines) by {clients} clients in {:.2} s: {:.0} ops/s",
        tally.events,
        elapsed.as_secs_f64(),
        ops as f64 / elapsed.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("faultline-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Peak resident memory of this process so far, from /proc (kB → MiB).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn synth_file(dir: &Path, spec: &SynthSpec) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join("history.jsonl");
    let file = std::fs::File::create(&path)?;
    write_history(spec, &mut std::io::BufWriter::new(file))?;
    Ok(path)
}

fn checker(spec: &SynthSpec) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let path = synth_file(&dir, spec)?;
    let read_started = Instant::now();
    let history = load_history(&path)?;
    let read = read_started.elapsed();
    let check_started = Instant::now();
    let report = faultline_checker::check::check_events(&history.events, &CheckOptions::default())?;
    let checked = check_started.elapsed();
    println!(
        "checker: {} ops, {} processes, {} keys, crash rate {}{}{}: read in {:.2} s, checked in {:.2} s: {} (peak memory {:.0} MiB)",
        spec.ops,
        spec.procs,
        spec.keys,
        spec.crash,
        if spec.register_only {
            ", reads and writes only"
        } else {
            ""
        },
        if spec.stale_read {
            ", one stale read"
        } else {
            ""
        },
        read.as_secs_f64(),
        checked.as_secs_f64(),
        report.verdict(),
        peak_rss_mib().unwrap_or(f64::NAN),
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn report(ops: u64) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let spec = SynthSpec {
        ops,
        procs: 10,
        keys: 8,
        crash: 0.001,
        unique: true,
        stale_read: true,
        register_only: false,
        seed: 1,
    };
    let path = synth_file(&dir, &spec)?;
    let history = load_history(&path)?;
    let report = faultline_checker::check::check_events(&history.events, &CheckOptions::default())?;
    let started = Instant::now();
    let files = faultline_checker::report::write_report(&dir, &history, &report, None)?;
    let took = started.elapsed();
    let html = std::fs::metadata(&files.html).map(|m| m.len()).unwrap_or(0);
    println!(
        "report: {ops} ops ({}): plots and page written in {:.2} s; report.html {:.1} MB",
        report.verdict(),
        took.as_secs_f64(),
        html as f64 / 1e6
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn raft_startup(nodes: usize, runs: usize) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let mut times = Vec::new();
    for _ in 0..runs {
        let dir = tempfile_dir()?;
        let took = runtime.block_on(async {
            // Loopback: distinct 127.x addresses, no namespaces, no root needed.
            let lab = Lab::create(LabConfig {
                nodes,
                isolation: Isolation::Loopback,
                run_dir: dir.clone(),
            })
            .await?;
            let spec = RaftSpec {
                unsafe_modes: Vec::new(),
                binary: None,
                data_dir: dir.join("data"),
                op_timeout: Duration::from_secs(2),
                startup_timeout: Duration::from_secs(30),
                faketime: false,
            };
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
    times.sort_by(f64::total_cmp);
    println!(
        "raft startup: {nodes} nodes, start to first leader in {} runs: min {:.2} s, median {:.2} s, max {:.2} s",
        runs,
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );
    Ok(())
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

struct RaftBench {
    nodes: usize,
    clients: Vec<usize>,
    seconds: f64,
    mixes: Vec<BenchMix>,
    keys: usize,
    data_dir: Option<std::path::PathBuf>,
    faketime: bool,
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

fn raft_throughput(bench: &RaftBench) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
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
    for mix in &bench.mixes {
        for &clients in &bench.clients {
            let dir = root.join(format!("{}-{clients}", mix.name.replace(':', "-")));
            let (tally, elapsed) = runtime.block_on(raft_row(bench, mix, clients.max(1), &dir))?;
            let _ = std::fs::remove_dir_all(&dir);
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
) -> anyhow::Result<(RowTally, Duration)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Loopback: distinct 127.x addresses, no namespaces, no root needed.
    let lab = Lab::create(LabConfig {
        nodes: bench.nodes,
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
        faketime: bench.faketime,
    };
    let result = async {
        let cluster = Arc::new(RaftCluster::start(&spec, &lab).await?);
        let measured = drive_row(bench, mix, clients, &cluster, &lab).await;
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

/// One client of a row: sends operations until the deadline and times each.
async fn bench_client(
    client: RaftClient,
    generator: Arc<Mutex<Generator>>,
    deadline: Instant,
) -> RowTally {
    use faultline_targets::{Outcome, Request};
    use faultline_workloads::Operation;
    let mut tally = RowTally::default();
    while Instant::now() < deadline {
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

fn checker_grid(register: bool, row_timeout: u64) -> anyhow::Result<()> {
    let me = std::env::current_exe().context("finding this executable")?;
    for keys in [1u32, 8] {
        for procs in [5u32, 20] {
            for ops in [10_000u64, 100_000, 1_000_000] {
                let mut cmd = std::process::Command::new("timeout");
                cmd.arg(row_timeout.to_string()).arg(&me).args([
                    "bench",
                    "checker",
                    "--ops",
                    &ops.to_string(),
                    "--procs",
                    &procs.to_string(),
                    "--keys",
                    &keys.to_string(),
                ]);
                if register {
                    cmd.arg("--register");
                }
                let out = cmd.output().context("running a grid row")?;
                let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
                if line.is_empty() {
                    println!(
                        "checker: {ops} ops, {procs} processes, {keys} keys: no answer within {row_timeout} s (exit {:?})",
                        out.status.code()
                    );
                } else {
                    println!("{line}");
                }
            }
        }
    }
    Ok(())
}

fn datasets(dir: &Path) -> anyhow::Result<()> {
    let manifest_path = dir.join("MANIFEST.tsv");
    let manifest = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("reading {}", manifest_path.display()))?;
    let (mut total, mut right, mut files) = (Duration::ZERO, 0, 0);
    for line in manifest.lines().filter(|l| !l.starts_with('#')) {
        let fields: Vec<&str> = line.split('\t').collect();
        let [file, _, format, ..] = fields[..] else {
            continue;
        };
        let expected = fields.get(5).copied().unwrap_or("-");
        // Only histories with a verdict to compare with (not the provenance notes or the
        // empty etcd_095).
        if expected != "true" && expected != "false" {
            continue;
        }
        let path = dir.join(file);
        let started = Instant::now();
        let verdict = match load_history(&path) {
            Ok(history) => {
                let options = CheckOptions {
                    semantics: history.format.semantics(),
                    ..CheckOptions::default()
                };
                match faultline_checker::check::check_events(&history.events, &options) {
                    Ok(report) => report.verdict().to_string(),
                    Err(e) => format!("refused ({e})"),
                }
            }
            Err(e) => format!("refused ({e})"),
        };
        let took = started.elapsed();
        total += took;
        files += 1;
        let expected_verdict = match expected {
            "true" => "valid",
            "false" => "invalid",
            other => other,
        };
        if verdict == expected_verdict {
            right += 1;
        }
        let verdict: String = verdict.chars().take(80).collect();
        println!(
            "{file}\t{format}\t{verdict}\texpected {expected_verdict}\t{:.2} ms",
            took.as_secs_f64() * 1e3
        );
    }
    println!(
        "{files} histories, {right} with the expected verdict, {:.1} ms in all (reading included)",
        total.as_secs_f64() * 1e3
    );
    Ok(())
}
