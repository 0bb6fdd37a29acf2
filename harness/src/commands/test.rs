//! `faultline test`: one whole Jepsen-style test (or `--test-count` of them) and its verdict.

use std::path::PathBuf;

use faultline_checker::Verdict;

use crate::run::{self, RunSummary};
use crate::spec::TestSpec;

/// Flags of `faultline test`. Every one may also come from `--config FILE` (TOML, same names);
/// flags win. Defaults: the bundled Raft cluster, 5 nodes, 60 s, 10 clients, 8 keys,
/// partitions + kills + pauses + clock faults every 10 s.
#[derive(Debug, Default, clap::Args)]
pub struct TestArgs {
    /// System under test: `raft` (the bundled cluster), `etcd` or `consul` [default: raft].
    #[arg(long)]
    pub target: Option<String>,
    /// How reads are served: etcd `linearizable` (default) or `serializable`; Consul
    /// `consistent` (default), `default` or `stale`.
    #[arg(long)]
    pub read_mode: Option<String>,
    /// Drive a cluster that is already running instead of starting one: its nodes' base URLs,
    /// comma-separated (`http://10.0.0.1:2379,http://10.0.0.2:2379`). No lab; faults only
    /// with hosts ([[hosts]] in --config, with a pid-file and start command each).
    #[arg(long, value_name = "URL,...")]
    pub endpoints: Option<String>,
    /// Run the cluster on these hosts over SSH instead of in the lab, one node each: SSH
    /// destinations, comma-separated (`root@10.0.0.1,root@10.0.0.2:2222`); each node listens
    /// on its destination's address. More per host with [[hosts]] tables in --config.
    #[arg(long, value_name = "DEST,...")]
    pub hosts: Option<String>,
    /// Private key for SSH to the hosts [default: ssh's own].
    #[arg(long, value_name = "FILE")]
    pub ssh_key: Option<PathBuf>,
    /// known_hosts file for the hosts [default: ssh's own].
    #[arg(long, value_name = "FILE")]
    pub ssh_known_hosts: Option<PathBuf>,
    /// Accept and remember host keys not yet known (StrictHostKeyChecking=accept-new).
    #[arg(long)]
    pub ssh_accept_new_hosts: bool,
    /// ssh config file instead of ~/.ssh/config.
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// Working directory on the hosts; each run uses its own directory inside it
    /// [default: /var/tmp/faultline].
    #[arg(long, value_name = "DIR")]
    pub remote_dir: Option<String>,
    /// The server binary on the hosts [default: faultline-raft, etcd or consul on their PATH].
    #[arg(long, value_name = "PATH")]
    pub remote_bin: Option<String>,
    /// The etcd binary [default: found on PATH].
    #[arg(long)]
    pub etcd_bin: Option<PathBuf>,
    /// The consul binary [default: found on PATH or in .tools/bin].
    #[arg(long)]
    pub consul_bin: Option<PathBuf>,
    /// Cluster size [default: 5].
    #[arg(long)]
    pub nodes: Option<usize>,
    /// Seconds of load and faults before heal, recovery and final reads [default: 60].
    #[arg(long)]
    pub time_limit: Option<f64>,
    /// Concurrent clients [default: 10].
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Keys in use at once; each key's history is checked on its own [default: 8].
    #[arg(long)]
    pub keys: Option<usize>,
    /// Operations per second over all clients [default: as fast as the cluster answers].
    #[arg(long)]
    pub rate: Option<f64>,
    /// Weights of read:write:cas [default: 2:1:1; register workload 1:1:0].
    #[arg(long)]
    pub mix: Option<String>,
    /// `register` (read/write) or `cas-register` (read/write/cas) [default: cas-register].
    #[arg(long)]
    pub workload: Option<String>,
    /// Retire a key after this many operations and start a fresh one [default: never].
    #[arg(long)]
    pub ops_per_key: Option<u64>,
    /// Fault kinds: partition,kill,pause,clock,loss,bandwidth, or none, or all
    /// [default: partition,kill,pause,clock; etcd and Consul: partition,kill,pause].
    #[arg(long)]
    pub nemesis: Option<String>,
    /// Seconds between fault starts and stops [default: 10].
    #[arg(long)]
    pub nemesis_interval: Option<f64>,
    /// `one-at-a-time` (never two faults at once) or `overlapping` (each fault kind on its
    /// own cycle, so a partition can meet a clock fault, as in Jepsen's combined nemesis)
    /// [default: one-at-a-time].
    #[arg(long, value_name = "SCHEDULE")]
    pub nemesis_schedule: Option<String>,
    /// Plant a bug in the raft server: stale-reads, lease-reads, ack-before-commit (repeatable).
    #[arg(long = "unsafe", value_name = "MODE")]
    pub unsafe_modes: Vec<String>,
    /// Seed of the workload and the fault schedule [default: random, printed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Results store [default: results].
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Seconds a client waits for one answer; past it the op is indeterminate [default: 2].
    #[arg(long)]
    pub op_timeout: Option<f64>,
    /// Also write the verdicts as JUnit XML here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Run the test this many times (seeds seed, seed+1, …); the exit code is the worst.
    #[arg(long)]
    pub test_count: Option<u32>,
    /// Read settings from a TOML file (keys as the flags: `time-limit = 30`).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(args: TestArgs) -> anyhow::Result<Verdict> {
    // Resolving starts no thread. Then, before any thread starts: without root this
    // re-executes inside a user namespace (only for the lab; a run against --endpoints or on
    // remote hosts needs neither root nor namespaces here).
    let spec = TestSpec::resolve(args)?;
    if spec.endpoints.is_none() && spec.hosts.is_none() {
        faultline_nemesis::ensure_root_or_reexec()?;
    }
    if let Some(path) = &spec.junit {
        crate::junit::prepare(path)?;
    }
    let mut summaries: Vec<RunSummary> = Vec::new();
    let mut worst = Verdict::Valid;
    for i in 0..spec.test_count {
        let mut this = spec.clone();
        this.seed = spec.seed.wrapping_add(i as u64);
        this.workload.seed = this.seed;
        let summary = run::execute(&this)?;
        crate::stdout::line(summary.render().trim_end())?;
        worst = worst.worst(summary.verdict);
        summaries.push(summary);
    }
    if spec.test_count > 1 {
        crate::stdout::line(format!("{} runs: {worst}", spec.test_count))?;
    }
    if let Some(path) = &spec.junit {
        crate::junit::write(path, &summaries)?;
    }
    Ok(worst)
}
