//! One test run, start to verdict: lab up → cluster → workers + nemesis for the time limit →
//! heal and recover → final reads → cluster stop → lab teardown → check → results.
//!
//! On remote hosts there is no lab: SSH to the hosts → cluster started there → the same
//! workers (from here) and nemesis (over SSH) → heal → final reads → stop, fetch the node
//! logs, wipe → close SSH → check. With `--endpoints` the cluster is someone else's: no
//! lifecycle, and faults only over SSH on the hosts the user described.
//!
//! Teardown runs on every path: an error, SIGINT or SIGTERM ends the load early but the
//! nemesis still heals, the cluster is stopped, the lab removed (or the hosts' nodes stopped
//! and their data wiped), and what was recorded is checked (a `Lab` dropped without teardown
//! cleans up from its Drop guard on a panic).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use faultline_checker::record::{RecordProcess, RecordType};
use faultline_checker::{CheckOptions, CheckReport, Model, Verdict, load_history};
use faultline_nemesis::{
    FaultEvent, FaultTarget, Isolation, Lab, LabConfig, Nemesis, NemesisConfig, Remote,
};
use faultline_targets::attached::AttachedCluster;
use faultline_targets::{Client, Cluster, Outcome, Request};
use faultline_workloads::{Generator, Operation, Workload};
use tokio::sync::watch;

use crate::history::{HistoryWriter, Recorder, Tally};
use crate::hosts_state::HostsStateFile;
use crate::spec::TestSpec;

/// What a run produced, for the summary, JUnit and the exit code.
pub struct RunSummary {
    pub name: String,
    pub seed: u64,
    pub dir: PathBuf,
    pub verdict: Verdict,
    pub tally: Tally,
    pub report: CheckReport,
    pub latency_ms: Option<(f64, f64)>,
    pub elapsed: Duration,
    pub interrupted: bool,
    /// `report.html`, unless writing it failed (logged).
    pub report_html: Option<PathBuf>,
}

/// The verdict of a run: the checker's, except that a run in which no client operation
/// succeeded (or none was sent) is `unknown`, not valid. Such a history is trivially linearizable
/// (every op failed or may never have happened), so it shows nothing about the target, and a
/// CI gate must not pass on it (as Jepsen's `stats` checker makes such a test unknown).
pub fn run_verdict(report: &CheckReport) -> Verdict {
    if nothing_succeeded(report) {
        Verdict::Unknown
    } else {
        report.verdict()
    }
}

fn nothing_succeeded(report: &CheckReport) -> bool {
    report.stats.ok == 0 && report.verdict() == Verdict::Valid
}

impl RunSummary {
    /// One line: what the verdict is about.
    pub fn headline(&self) -> String {
        match self.report.counterexamples.first() {
            Some(c) => c.headline(),
            None if nothing_succeeded(&self.report) => format!(
                "no client operation succeeded ({} invoked): the history shows nothing about the target; the errors the clients got are in {}",
                self.report.stats.ops,
                self.dir.join("history.jsonl").display()
            ),
            None => format!("{} ops checked", self.report.stats.ops),
        }
    }

    /// The one-screen summary printed on stdout.
    pub fn render(&self) -> String {
        let t = &self.tally;
        let latency = self
            .latency_ms
            .map(|(p50, p99)| format!("p50 {p50:.1} ms, p99 {p99:.1} ms"))
            .unwrap_or_else(|| "no ok operations".into());
        let mut out = format!(
            "{} (seed {}){}\n  ops: {} ok, {} fail, {} info on {} keys; faults started: {}\n  latency of ok ops: {latency}\n  verdict: {}\n",
            self.name,
            self.seed,
            if self.interrupted {
                ", interrupted"
            } else {
                ""
            },
            t.ok,
            t.fail,
            t.info,
            self.report.stats.keys,
            t.faults,
            self.verdict
        );
        for c in &self.report.counterexamples {
            out.push_str(&format!("    {}\n", c.headline()));
        }
        if nothing_succeeded(&self.report) {
            out.push_str(&format!("    {}\n", self.headline()));
        }
        out.push_str(&format!("  run: {}\n", self.dir.display()));
        if let Some(html) = &self.report_html {
            out.push_str(&format!("  report: {}\n", html.display()));
        }
        out
    }
}

/// Run one test and check it.
pub fn execute(spec: &TestSpec) -> anyhow::Result<RunSummary> {
    let name = format!("{}-{}", spec.target, spec.workload.workload.name());
    let dir = make_run_dir(&spec.results, &name)?;
    tracing::info!(dir = %dir.display(), seed = spec.seed, "starting {name}");
    let started = Instant::now();
    let (writer, recorder) = HistoryWriter::create(&dir.join("history.jsonl"), started)?;
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the harness runtime")?;
    let outcome = match (&spec.endpoints, &spec.hosts) {
        (Some(_), _) => runtime.block_on(run_attached(spec, &dir, recorder, latencies.clone())),
        (None, Some(_)) => runtime.block_on(run_on_hosts(spec, &dir, recorder, latencies.clone())),
        (None, None) => runtime.block_on(run_in_lab(spec, &dir, recorder, latencies.clone())),
    };
    runtime.shutdown_timeout(Duration::from_secs(5));
    let tally = writer.finish()?;
    let (version, interrupted) = outcome.with_context(|| {
        format!(
            "the run failed; what it recorded is in {}",
            dir.join("history.jsonl").display()
        )
    })?;
    write_test_json(&dir, spec, &version)?;

    let options = CheckOptions {
        model: match spec.workload.workload {
            Workload::Register => Model::Register,
            _ => Model::CasRegister,
        },
        ..CheckOptions::default()
    };
    let history = load_history(&dir).context("reading the history back")?;
    crate::commands::check::warn_of_torn_tail(&history);
    let report = faultline_checker::check::check_events(&history.events, &options)
        .context("checking the history")?;
    crate::commands::check::write_results(&dir.join("results.json"), &report)?;
    let report_html = crate::commands::check::write_run_report(&dir, &history, &report)
        .inspect_err(|e| tracing::error!("{}", crate::error_text::error_text(e)))
        .ok();
    let verdict = run_verdict(&report);
    let latency_ms = quantiles(&mut latencies.lock().map(|l| l.clone()).unwrap_or_default());
    Ok(RunSummary {
        name,
        seed: spec.seed,
        dir,
        verdict,
        tally,
        report,
        latency_ms,
        elapsed: started.elapsed(),
        interrupted,
        report_html,
    })
}

/// `results/<name>/<timestamp>/` with `nodes/`, and `results/latest` pointing at it.
fn make_run_dir(results: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let stamp = humantime::format_rfc3339_millis(std::time::SystemTime::now())
        .to_string()
        .replace([':', '-'], "")
        .replace('.', "-");
    let dir = results.join(name).join(stamp);
    std::fs::create_dir_all(dir.join("nodes"))
        .with_context(|| format!("creating the run directory {}", dir.display()))?;
    let latest = results.join("latest");
    let _ = std::fs::remove_file(&latest);
    let relative = dir.strip_prefix(results).unwrap_or(&dir);
    if let Err(e) = std::os::unix::fs::symlink(relative, &latest) {
        tracing::warn!("could not point {} at the run: {e}", latest.display());
    }
    Ok(dir)
}

fn write_test_json(dir: &Path, spec: &TestSpec, version: &str) -> anyhow::Result<()> {
    let git = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string());
    let test = serde_json::json!({
        "spec": spec,
        "seed": spec.seed,
        "versions": { "faultline": env!("CARGO_PKG_VERSION"), "target": version },
        "git_revision": git,
    });
    let path = dir.join("test.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&test)?)
        .with_context(|| format!("writing {}", path.display()))
}

fn quantiles(latencies: &mut [u64]) -> Option<(f64, f64)> {
    if latencies.is_empty() {
        return None;
    }
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize] as f64 / 1e6;
    Some((at(0.5), at(0.99)))
}

/// A flag that turns true on SIGINT or SIGTERM, and the task watching for them.
fn stop_on_signal() -> anyhow::Result<(watch::Receiver<bool>, tokio::task::JoinHandle<()>)> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let signal = faultline_nemesis::shutdown_signal()?;
    let task = tokio::spawn(async move {
        signal.await;
        let _ = stop_tx.send(true);
    });
    Ok((stop_rx, task))
}

/// Build the lab, run inside it, and tear it down whatever happened. Returns the target's
/// version and whether a signal cut the run short.
async fn run_in_lab(
    spec: &TestSpec,
    dir: &Path,
    recorder: Recorder,
    latencies: Arc<Mutex<Vec<u64>>>,
) -> anyhow::Result<(String, bool)> {
    let (stop_rx, signal_task) = stop_on_signal()?;
    let lab = Lab::create(LabConfig {
        nodes: spec.nodes,
        isolation: Isolation::Namespaces,
        run_dir: dir.to_path_buf(),
    })
    .await
    .context("building the lab")?;
    let result = run_cluster(spec, dir, &lab, recorder, latencies, stop_rx.clone()).await;
    match lab.guard_packets().await {
        Ok(Some(0)) | Ok(None) => {}
        Ok(Some(n)) => tracing::error!(
            "{n} packets to the lab subnet left the root namespace: a client socket was outside the lab"
        ),
        Err(e) => tracing::warn!("reading the root-namespace guard: {e}"),
    }
    let teardown = lab.teardown().await;
    signal_task.abort();
    let version = result?;
    teardown.context("tearing the lab down")?;
    Ok((version, *stop_rx.borrow()))
}

/// Drive a cluster someone else runs (`--endpoints`): no lab, no lifecycle; faults only over
/// SSH on the hosts the user described.
async fn run_attached(
    spec: &TestSpec,
    dir: &Path,
    recorder: Recorder,
    latencies: Arc<Mutex<Vec<u64>>>,
) -> anyhow::Result<(String, bool)> {
    let (stop_rx, signal_task) = stop_on_signal()?;
    let attached = spec
        .attached_spec()?
        .context("--endpoints without endpoints")?;
    let cluster = Arc::new(Cluster::Attached(AttachedCluster::attach(&attached)?));
    let version = cluster.version();
    let here = tokio::runtime::Handle::current();
    let remote = match &spec.hosts {
        Some(hosts) => Some(
            Remote::connect(hosts.remote_nodes(), &hosts.options())
                .await
                .with_context(|| ssh_hint(hosts))?,
        ),
        None => None,
    };
    let state_file = match (&spec.hosts, &remote) {
        (Some(hosts), Some(remote)) => Some(HostsStateFile::create(
            &run_id(dir),
            dir,
            None,
            hosts,
            &spec.fault_kinds,
            remote,
        )?),
        _ => None,
    };
    let result = drive(
        spec,
        remote.as_ref(),
        &cluster,
        &here,
        recorder,
        latencies,
        stop_rx.clone(),
    )
    .await;
    let closed = match remote {
        Some(remote) => remote.close().await.context("healing and closing SSH"),
        None => Ok(()),
    };
    signal_task.abort();
    join_errors(result, settle_state_file(state_file, closed))?;
    Ok((version, *stop_rx.borrow()))
}

/// The run's result, unless the hosts were left unclean: then that error, wrapped around the
/// run's own error if it has one.
fn join_errors<T>(result: anyhow::Result<T>, cleaned: anyhow::Result<()>) -> anyhow::Result<T> {
    match (result, cleaned) {
        (result, Ok(())) => result,
        (Ok(_), Err(hint)) => Err(hint),
        (Err(e), Err(hint)) => Err(e.context(hint.to_string())),
    }
}

/// Unique per run: the run directory's timestamp and this process.
fn run_id(dir: &Path) -> String {
    format!(
        "{}-{}",
        dir.file_name()
            .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned()),
        std::process::id()
    )
}

/// Removes the run's hosts state file when the hosts were left clean (`cleaned` is Ok);
/// otherwise keeps it and says in the error that `faultline clean` finishes the job.
fn settle_state_file(
    file: Option<HostsStateFile>,
    cleaned: anyhow::Result<()>,
) -> anyhow::Result<()> {
    let Some(file) = file else {
        return cleaned;
    };
    match cleaned {
        Ok(()) => file.remove(),
        Err(e) => Err(e.context(format!(
            "what may be left on the hosts is recorded in {}: `faultline clean` heals it and stops the run's nodes there",
            file.path().display()
        ))),
    }
}

/// What to check when SSH to the hosts fails.
pub(crate) fn ssh_hint(hosts: &crate::hosts::RemoteHosts) -> String {
    let first = hosts.hosts.first();
    format!(
        "connecting to the hosts over SSH: check that `ssh{} {} true` works from here without a prompt (a key: --ssh-key; an unknown host key: --ssh-known-hosts or --ssh-accept-new-hosts)",
        first
            .and_then(|h| h.port)
            .map_or_else(String::new, |p| format!(" -p {p}")),
        first.map_or("HOST", |h| h.destination.as_str())
    )
}

/// Start the cluster on remote hosts over SSH, run against it, and stop it, fetch the node
/// logs and wipe its data there whatever happened. No lab: clients and SSH start from where
/// faultline runs.
async fn run_on_hosts(
    spec: &TestSpec,
    dir: &Path,
    recorder: Recorder,
    latencies: Arc<Mutex<Vec<u64>>>,
) -> anyhow::Result<(String, bool)> {
    let (stop_rx, signal_task) = stop_on_signal()?;
    let hosts = spec.hosts.as_ref().context("no hosts to run on")?;
    let placement = hosts.hosts_spec(dir, run_id(dir));
    let mut remote = faultline_targets::hosts::connect(&placement)
        .await
        .with_context(|| ssh_hint(hosts))?;
    // Before anything changes on a host, so a killed run leaves what clean needs.
    let state_file = HostsStateFile::create(
        &placement.run_id,
        dir,
        Some(placement.run_id.clone()),
        hosts,
        &spec.fault_kinds,
        &remote,
    )?;
    // Whether the nodes may still run on the hosts (a start that fails stops its own).
    let mut nodes_left = false;
    tracing::info!(
        hosts = hosts.hosts.len(),
        dir = %format!("{}/{}", placement.remote_dir, placement.run_id),
        "connected over SSH; starting the cluster on the hosts"
    );
    let target = spec.target_spec(&dir.join("data"))?;
    let result = match Cluster::start_on_hosts(&target, &placement, &mut remote).await {
        Ok(cluster) => {
            let cluster = Arc::new(cluster);
            let version = cluster.version();
            let here = tokio::runtime::Handle::current();
            let driven = drive(
                spec,
                Some(&remote),
                &cluster,
                &here,
                recorder,
                latencies,
                stop_rx.clone(),
            )
            .await;
            let stopping = Instant::now();
            let stopped = match Arc::into_inner(cluster) {
                Some(cluster) => cluster
                    .stop_on_hosts(&remote)
                    .await
                    .inspect(|()| {
                        tracing::info!(
                            took = ?stopping.elapsed(),
                            "nodes stopped, their logs fetched and their data wiped on the hosts"
                        )
                    })
                    .context("stopping the cluster on the hosts"),
                None => Err(anyhow::anyhow!(
                    "a client outlived the run, so the nodes on the hosts could not be stopped"
                )),
            };
            nodes_left = stopped.is_err();
            driven.and(stopped).map(|()| version)
        }
        Err(e) => Err(anyhow::Error::new(e).context("starting the cluster on the hosts")),
    };
    let closed = remote.close().await.context("healing and closing SSH");
    signal_task.abort();
    let cleaned = match (nodes_left, closed) {
        (false, closed) => closed,
        (true, Ok(())) => Err(anyhow::anyhow!(
            "the run's nodes may still run on the hosts"
        )),
        (true, Err(e)) => Err(e.context("the run's nodes may still run on the hosts")),
    };
    let version = join_errors(result, settle_state_file(Some(state_file), cleaned))?;
    Ok((version, *stop_rx.borrow()))
}

async fn run_cluster(
    spec: &TestSpec,
    dir: &Path,
    lab: &Lab,
    recorder: Recorder,
    latencies: Arc<Mutex<Vec<u64>>>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<String> {
    let target = spec.target_spec(&dir.join("data"))?;
    let cluster = Arc::new(Cluster::start(&target, lab).await?);
    let version = cluster.version();
    // Every socket to a node is opened on this runtime's threads, inside the client namespace.
    let clients = lab
        .client_runtime(2)
        .context("starting the client runtime")?;
    let result = drive(
        spec,
        Some(lab),
        &cluster,
        clients.handle(),
        recorder,
        latencies,
        stop,
    )
    .await;
    clients.shutdown_background();
    let cluster = Arc::into_inner(cluster).context("a client outlived the run")?;
    let stopped = cluster.stop(Some(lab)).await;
    result?;
    stopped.context("stopping the cluster")?;
    Ok(version)
}

/// Workers and nemesis for the time limit, heal, recovery, final reads. Faults go to `faults`
/// (the lab or the remote hosts), none without. Returns only once every task it spawned has
/// ended, so the caller holds the only reference to the cluster again.
#[allow(clippy::too_many_arguments)]
async fn drive<F: FaultTarget>(
    spec: &TestSpec,
    faults: Option<&F>,
    cluster: &Arc<Cluster>,
    clients: &tokio::runtime::Handle,
    recorder: Recorder,
    latencies: Arc<Mutex<Vec<u64>>>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let c = cluster.clone();
    let leader = match clients
        .spawn(async move { c.wait_for_leader().await })
        .await?
    {
        Ok(leader) => leader,
        Err(no_leader) => {
            // The likeliest cause, when it is one: servers that started and then exited.
            let exited = match faults {
                Some(faults) => faults.exited_nodes().await,
                None => Vec::new(),
            };
            let no_leader = anyhow::Error::new(no_leader);
            return Err(match exited.as_slice() {
                [] => no_leader,
                exited => no_leader.context(format!("{} started but exited", exited.join(", "))),
            });
        }
    };
    tracing::info!(%leader, "cluster is up");

    let generator = Arc::new(Mutex::new(Generator::new(spec.workload.clone())?));
    let key_prefix: Arc<str> = match cluster.as_ref() {
        // Unique per run: seed and start time.
        Cluster::Attached(_) => format!(
            "faultline-{}-{}-",
            spec.seed,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        )
        .into(),
        _ => "".into(),
    };
    let next_process = Arc::new(AtomicU64::new(spec.concurrency as u64));
    let deadline = tokio::time::Instant::now() + spec.time_limit;
    let nodes = cluster.node_names();
    let pace = spec
        .rate
        .map(|r| Duration::from_secs_f64(spec.concurrency as f64 / r));
    // Every client first, so an error cannot leave some workers running.
    let worker_clients = (0..spec.concurrency)
        .map(|w| {
            let node = nodes[w % nodes.len()].clone();
            cluster.client(&node).map(|c| (node, c))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut workers = Vec::new();
    for (w, (node, client)) in worker_clients.into_iter().enumerate() {
        let worker = Worker {
            client,
            key_prefix: key_prefix.clone(),
            node,
            process: w as u64,
            next_process: next_process.clone(),
            recorder: recorder.clone(),
            latencies: latencies.clone(),
        };
        let generator = generator.clone();
        let stop = stop.clone();
        workers.push(clients.spawn(worker.run(generator, deadline, pace, stop)));
    }
    let progress = tokio::spawn(report_progress(
        recorder.clone(),
        spec.time_limit,
        stop.clone(),
    ));

    let nemesis = Nemesis::new(NemesisConfig {
        kinds: spec.fault_kinds.clone(),
        interval: spec.nemesis_interval,
        seed: spec.seed,
        time_limit: spec.time_limit,
        schedule: spec.nemesis_schedule,
    });
    let leader_probe = || {
        let c = cluster.clone();
        let h = clients.clone();
        async move {
            h.spawn(async move { c.leader().await })
                .await
                .ok()
                .flatten()
        }
    };
    let nemesis_recorder = recorder.clone();
    let emit = move |event: FaultEvent| {
        nemesis_recorder.record(
            RecordProcess::NEMESIS,
            RecordType::Info,
            &event.f,
            None,
            event.value,
            None,
            event.error,
        );
    };
    let mut nemesis_stop = stop.clone();
    let nemesis_result = match faults {
        Some(faults) => Some(
            nemesis
                .run(faults, &leader_probe, emit, async move {
                    let _ = nemesis_stop.wait_for(|stopped| *stopped).await;
                })
                .await,
        ),
        // Attached without hosts: nothing to inject faults into; the workers end at the
        // deadline.
        None => None,
    };
    let mut panicked = None;
    for worker in workers {
        if let Err(e) = worker.await {
            panicked.get_or_insert(e);
        }
    }
    progress.abort();
    if let Some(e) = panicked {
        return Err(anyhow::Error::new(e).context("a client worker panicked"));
    }
    if let Some(result) = nemesis_result {
        let summary = result.context("running the nemesis")?;
        tracing::info!(
            faults_installed = summary.installed,
            faults_skipped = summary.skipped,
            "faults healed; waiting for the cluster to recover"
        );
    }

    // Recovery, then a final read of every key on every node.
    let c = cluster.clone();
    if let Err(e) = clients
        .spawn(async move { c.wait_for_leader().await })
        .await?
    {
        tracing::warn!("no leader after heal ({e}); final reads will fail");
    }
    let keys = generator.lock().map(|g| g.keys()).unwrap_or_default();
    let reader_clients = nodes
        .into_iter()
        .map(|node| cluster.client(&node).map(|c| (node, c)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut readers = Vec::new();
    for (node, client) in reader_clients {
        let recorder = recorder.clone();
        let keys = keys.clone();
        let process = next_process.fetch_add(1, Ordering::Relaxed);
        readers.push(clients.spawn(final_reads(
            client,
            key_prefix.clone(),
            node,
            process,
            keys,
            recorder,
        )));
    }
    let mut panicked = None;
    for reader in readers {
        if let Err(e) = reader.await {
            panicked.get_or_insert(e);
        }
    }
    match panicked {
        Some(e) => Err(anyhow::Error::new(e).context("a final reader panicked")),
        None => Ok(()),
    }
}

/// One client: sends operations until the deadline, recording each invoke and completion.
pub(crate) struct Worker {
    pub(crate) client: Client,
    /// Put before every key on the wire (the history keeps the plain key): a run against a
    /// cluster that already holds data uses keys of its own, so they start absent.
    pub(crate) key_prefix: Arc<str>,
    pub(crate) node: String,
    pub(crate) process: u64,
    pub(crate) next_process: Arc<AtomicU64>,
    pub(crate) recorder: Recorder,
    pub(crate) latencies: Arc<Mutex<Vec<u64>>>,
}

impl Worker {
    pub(crate) async fn run(
        mut self,
        generator: Arc<Mutex<Generator>>,
        deadline: tokio::time::Instant,
        pace: Option<Duration>,
        stop: watch::Receiver<bool>,
    ) {
        while tokio::time::Instant::now() < deadline && !*stop.borrow() {
            let Ok(op) = generator.lock().map(|mut g| g.next_op()) else {
                return;
            };
            if self.send(op).await == Sent::Refused {
                // The node is down or has no leader: retrying at once would only flood the
                // history with refusals (hundreds of thousands a second against a killed node).
                tokio::time::sleep(REFUSED_BACKOFF).await;
            }
            if let Some(pace) = pace {
                tokio::time::sleep(pace).await;
            }
        }
    }

    async fn send(&mut self, op: Operation) -> Sent {
        let (f, key, value, request) = match op {
            Operation::Read { key } => (
                "read",
                key.clone(),
                serde_json::Value::Null,
                Request::Read {
                    key: format!("{}{key}", self.key_prefix),
                },
            ),
            Operation::Write { key, value } => (
                "write",
                key.clone(),
                value.into(),
                Request::Write {
                    key: format!("{}{key}", self.key_prefix),
                    value,
                },
            ),
            Operation::Cas { key, expected, new } => (
                "cas",
                key.clone(),
                serde_json::json!([expected, new]),
                Request::Cas {
                    key: format!("{}{key}", self.key_prefix),
                    expected,
                    new,
                },
            ),
        };
        let process = RecordProcess::Client(self.process);
        let node = Some(self.node.as_str());
        let invoked = self.recorder.now();
        self.recorder.record(
            process,
            RecordType::Invoke,
            f,
            Some(&key),
            value.clone(),
            node,
            None,
        );
        let outcome = self.client.call(&request).await;
        let (kind, value, error) = match outcome {
            Outcome::Ok(read) => {
                let took = self.recorder.now().saturating_sub(invoked);
                if let Ok(mut l) = self.latencies.lock() {
                    l.push(took);
                }
                let value = if f == "read" {
                    serde_json::json!(read)
                } else {
                    value
                };
                (RecordType::Ok, value, None)
            }
            Outcome::Fail(why) => (RecordType::Fail, value, Some(why)),
            Outcome::Info(why) => (RecordType::Info, value, Some(why)),
        };
        let sent = match (&kind, error.as_deref()) {
            (RecordType::Fail, Some(why)) if why != faultline_targets::outcome::CAS_MISMATCH => {
                Sent::Refused
            }
            _ => Sent::Answered,
        };
        self.recorder
            .record(process, kind, f, Some(&key), value, node, error);
        if kind == RecordType::Info {
            // Jepsen: the old op may still be in flight, so this process is retired.
            self.process = self.next_process.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }
}

/// Whether the system answered an operation, or refused it without doing anything.
#[derive(Debug, PartialEq, Eq)]
enum Sent {
    Answered,
    /// Failed for a reason other than a CAS mismatch: connection refused, no leader.
    Refused,
}

/// How long a client waits before its next operation after a refusal.
const REFUSED_BACKOFF: Duration = Duration::from_millis(50);

async fn final_reads(
    client: Client,
    key_prefix: Arc<str>,
    node: String,
    process: u64,
    keys: Vec<String>,
    recorder: Recorder,
) {
    let mut process = process;
    for key in keys {
        let p = RecordProcess::Client(process);
        recorder.record(
            p,
            RecordType::Invoke,
            "read",
            Some(&key),
            serde_json::Value::Null,
            Some(&node),
            None,
        );
        let wire = Request::Read {
            key: format!("{key_prefix}{key}"),
        };
        let (kind, value, error) = match client.call(&wire).await {
            Outcome::Ok(v) => (RecordType::Ok, serde_json::json!(v), None),
            Outcome::Fail(why) => (RecordType::Fail, serde_json::Value::Null, Some(why)),
            Outcome::Info(why) => (RecordType::Info, serde_json::Value::Null, Some(why)),
        };
        recorder.record(p, kind, "read", Some(&key), value, Some(&node), error);
        if kind == RecordType::Info {
            // Never reuse a process whose op may still be in flight; final readers are few.
            process += 1_000_000;
        }
    }
}

/// A line on stderr every few seconds (a bar on a terminal): elapsed time and faults so far.
async fn report_progress(recorder: Recorder, limit: Duration, stop: watch::Receiver<bool>) {
    let on_terminal =
        std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("CI").is_none();
    let bar = on_terminal.then(|| {
        let bar = indicatif::ProgressBar::new(limit.as_secs());
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} s {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let every = if on_terminal {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(10)
    };
    let started = Instant::now();
    while !*stop.borrow() {
        tokio::time::sleep(every).await;
        let elapsed = started.elapsed().min(limit);
        let live = recorder.live().line();
        match &bar {
            Some(bar) => {
                bar.set_position(elapsed.as_secs());
                bar.set_message(live);
            }
            None => tracing::info!("{} s of {} s: {live}", elapsed.as_secs(), limit.as_secs()),
        }
        if elapsed >= limit {
            break;
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(lines: &[&str]) -> CheckReport {
        let events = faultline_checker::jsonl::parse(&lines.join("\n")).expect("parses");
        faultline_checker::check::check_events(&events, &CheckOptions::default()).expect("checks")
    }

    const REFUSED_WRITE: [&str; 2] = [
        r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"write","key":"a","value":1}"#,
        r#"{"index":1,"time":5,"process":0,"type":"fail","f":"write","key":"a","value":1,"error":"no leader"}"#,
    ];
    const TIMED_OUT_READ: [&str; 2] = [
        r#"{"index":2,"time":6,"process":1,"type":"invoke","f":"read","key":"a","value":null}"#,
        r#"{"index":3,"time":9,"process":1,"type":"info","f":"read","key":"a","value":null,"error":"timeout"}"#,
    ];
    const READ_OF_NOTHING: [&str; 2] = [
        r#"{"index":4,"time":10,"process":2,"type":"invoke","f":"read","key":"a","value":null}"#,
        r#"{"index":5,"time":11,"process":2,"type":"ok","f":"read","key":"a","value":null}"#,
    ];

    #[test]
    fn a_run_where_nothing_succeeded_is_unknown_not_valid() {
        let none = checked(&[REFUSED_WRITE, TIMED_OUT_READ].concat());
        assert_eq!(none.verdict(), Verdict::Valid, "linearizable, trivially");
        assert_eq!(run_verdict(&none), Verdict::Unknown);
        let one = checked(&[REFUSED_WRITE, TIMED_OUT_READ, READ_OF_NOTHING].concat());
        assert_eq!(run_verdict(&one), Verdict::Valid);
        assert_eq!(run_verdict(&checked(&[])), Verdict::Unknown, "nothing sent");
    }
}
