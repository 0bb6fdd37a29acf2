//! The typed test spec: flags and `--config FILE` (TOML) are merged and checked here, before
//! any work starts; nothing below the harness sees a string flag.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use faultline_nemesis::{FaultKind, FaultSchedule};
use faultline_targets::TargetSpec;
use faultline_targets::attached::{AttachedSpec, EndpointApi};
use faultline_targets::consul::{ConsulReadMode, ConsulSpec};
use faultline_targets::etcd::{EtcdReadMode, EtcdSpec};
use faultline_targets::raft::RaftSpec;
use faultline_workloads::{Mix, Workload, WorkloadSpec};
use serde::{Deserialize, Serialize};

use crate::commands::test::TestArgs;
use crate::hosts::{HostOptions, HostsContext, RemoteHosts};

/// Everything one `faultline test` run needs, fully resolved.
#[derive(Clone, Debug, Serialize)]
pub struct TestSpec {
    pub target: String,
    pub nodes: usize,
    pub time_limit: Duration,
    pub concurrency: usize,
    pub rate: Option<f64>,
    pub workload: WorkloadSpec,
    pub nemesis: Vec<String>,
    #[serde(skip)]
    pub fault_kinds: Vec<FaultKind>,
    pub nemesis_interval: Duration,
    pub nemesis_schedule: FaultSchedule,
    pub unsafe_modes: Vec<String>,
    /// etcd: linearizable | serializable; consul: consistent | default | stale.
    pub read_mode: Option<String>,
    pub etcd_bin: Option<PathBuf>,
    pub consul_bin: Option<PathBuf>,
    /// A running cluster to drive instead of starting one (no lab; faults only on `hosts`).
    pub endpoints: Option<Vec<String>>,
    /// Remote hosts over SSH: without endpoints Faultline starts the cluster there (no lab);
    /// with endpoints they are the running cluster's hosts, for faults.
    pub hosts: Option<RemoteHosts>,
    pub seed: u64,
    pub results: PathBuf,
    pub op_timeout: Duration,
    pub junit: Option<PathBuf>,
    pub test_count: u32,
}

/// `--config FILE`: the same settings as the flags, in TOML (`time-limit = 30`, …).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ConfigFile {
    pub target: Option<String>,
    pub nodes: Option<usize>,
    pub time_limit: Option<f64>,
    pub concurrency: Option<usize>,
    pub keys: Option<usize>,
    pub rate: Option<f64>,
    pub mix: Option<String>,
    pub workload: Option<String>,
    pub ops_per_key: Option<u64>,
    pub nemesis: Option<String>,
    pub nemesis_interval: Option<f64>,
    pub nemesis_schedule: Option<String>,
    #[serde(rename = "unsafe")]
    pub unsafe_modes: Option<Vec<String>>,
    pub read_mode: Option<String>,
    pub etcd_bin: Option<PathBuf>,
    pub consul_bin: Option<PathBuf>,
    pub endpoints: Option<String>,
    /// `"root@10.0.0.1,root@10.0.0.2"` or `[[hosts]]` tables (see [`crate::hosts`]).
    pub hosts: Option<toml::Value>,
    pub ssh_key: Option<PathBuf>,
    pub ssh_known_hosts: Option<PathBuf>,
    pub ssh_accept_new_hosts: Option<bool>,
    pub ssh_config: Option<PathBuf>,
    pub remote_dir: Option<String>,
    pub remote_bin: Option<String>,
    pub seed: Option<u64>,
    pub results: Option<PathBuf>,
    pub op_timeout: Option<f64>,
    pub junit: Option<PathBuf>,
    pub test_count: Option<u32>,
}

/// A seed for runs that did not ask for one: short, so people can type it back in.
fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    (nanos ^ std::process::id() as u64) % 1_000_000
}

fn seconds(name: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("--{name} must be a positive number of seconds, not {value}"))
}

impl TestSpec {
    /// Flags win over the config file, which wins over the defaults.
    pub fn resolve(args: TestArgs) -> anyhow::Result<TestSpec> {
        let config = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading --config {}", path.display()))?;
                toml::from_str::<ConfigFile>(&text).with_context(|| {
                    format!("--config {}: not a valid test config", path.display())
                })?
            }
            None => ConfigFile::default(),
        };
        let target = args
            .target
            .or(config.target)
            .unwrap_or_else(|| "raft".into());
        let read_mode = args.read_mode.or(config.read_mode);
        let unsafe_modes = if args.unsafe_modes.is_empty() {
            config.unsafe_modes.unwrap_or_default()
        } else {
            args.unsafe_modes
        };
        match target.as_str() {
            "raft" => {
                if let Some(mode) = &read_mode {
                    bail!(
                        "--read-mode {mode}: the bundled raft server's reads are always linearizable; to plant stale reads use --unsafe stale-reads or --unsafe lease-reads"
                    );
                }
            }
            "etcd" | "consul" => {
                if !unsafe_modes.is_empty() {
                    bail!(
                        "--unsafe plants bugs in the bundled raft server only; for {target}, choose what to test with --read-mode"
                    );
                }
            }
            other => bail!("--target {other}: use raft (the bundled cluster), etcd or consul"),
        }
        let nodes_asked = args.nodes.or(config.nodes);
        let nodes = nodes_asked.unwrap_or(5);
        if !(1..=faultline_nemesis::MAX_NODES).contains(&nodes) {
            bail!(
                "--nodes must be between 1 and {}",
                faultline_nemesis::MAX_NODES
            );
        }
        let workload = match args
            .workload
            .or(config.workload)
            .as_deref()
            .unwrap_or("cas-register")
        {
            "register" => Workload::Register,
            "cas-register" => Workload::CasRegister,
            other => bail!("--workload {other}: use register or cas-register"),
        };
        let default_mix = match workload {
            Workload::Register => "1:1:0",
            _ => "2:1:1",
        };
        let mix: Mix = args
            .mix
            .or(config.mix)
            .as_deref()
            .unwrap_or(default_mix)
            .parse()?;
        // etcd and Consul are Go programs: they read the clock through the vDSO, where
        // libfaketime cannot reach, so clock faults would silently do nothing to them.
        let clock_reaches_target = target == "raft";
        let endpoints: Option<Vec<String>> = args.endpoints.or(config.endpoints).map(|e| {
            e.split(',')
                .map(|u| u.trim().to_string())
                .filter(|u| !u.is_empty())
                .collect()
        });
        let asked = args.nemesis.or(config.nemesis);
        // Remote hosts, if any: a short list in --hosts, or the config's `hosts`.
        let has_hosts = args.hosts.is_some() || config.hosts.is_some();
        if endpoints.is_some() {
            if asked.as_deref().is_some_and(|n| n != "none") && !has_hosts {
                bail!(
                    "--endpoints: faults need the lab Faultline builds, or the cluster's hosts over SSH: give them (--hosts, or [[hosts]] with pid-file and start in --config), or use --nemesis none"
                );
            }
            if !unsafe_modes.is_empty() {
                bail!(
                    "--endpoints: --unsafe plants bugs in servers Faultline starts, not in a running cluster"
                );
            }
        }
        let asked = asked.or_else(|| endpoints.as_ref().map(|_| "none".to_string()));
        let nemesis = asked.clone().unwrap_or_else(|| {
            if clock_reaches_target {
                "partition,kill,pause,clock".into()
            } else {
                "partition,kill,pause".into()
            }
        });
        let mut fault_kinds =
            FaultKind::parse_list(&nemesis).with_context(|| format!("--nemesis {nemesis}"))?;
        if !clock_reaches_target && fault_kinds.contains(&FaultKind::Clock) {
            if nemesis.split(',').any(|k| k.trim() == "clock") {
                bail!(
                    "--nemesis clock: {target} is a Go program that reads the clock through the vDSO, which libfaketime cannot reach, so clock faults cannot be applied to it (in the lab or on hosts: changing a host's system clock over SSH is not implemented); leave clock out"
                );
            }
            tracing::warn!(
                "--nemesis {nemesis}: leaving out clock faults, which cannot reach {target}"
            );
            fault_kinds.retain(|k| *k != FaultKind::Clock);
        }
        let hosts = crate::hosts::resolve(
            args.hosts.as_deref(),
            if args.hosts.is_some() {
                None
            } else {
                config.hosts.as_ref()
            },
            HostOptions {
                ssh_key: args.ssh_key.or(config.ssh_key),
                ssh_known_hosts: args.ssh_known_hosts.or(config.ssh_known_hosts),
                ssh_accept_new_hosts: args.ssh_accept_new_hosts
                    || config.ssh_accept_new_hosts.unwrap_or(false),
                ssh_config: args.ssh_config.or(config.ssh_config),
                remote_dir: args.remote_dir.or(config.remote_dir),
                remote_bin: args.remote_bin.or(config.remote_bin),
            },
            &HostsContext {
                endpoints: endpoints.as_deref(),
                fault_kinds: &fault_kinds,
            },
        )?;
        let nodes = match &hosts {
            // One node per host.
            Some(hosts) if endpoints.is_none() => {
                if let Some(asked) = nodes_asked.filter(|n| *n != hosts.hosts.len()) {
                    bail!(
                        "--nodes {asked} but {} hosts are given: one node runs on each host; drop --nodes or list {asked} hosts",
                        hosts.hosts.len()
                    );
                }
                hosts.hosts.len()
            }
            _ => nodes,
        };
        let concurrency = args.concurrency.or(config.concurrency).unwrap_or(10);
        if concurrency == 0 {
            bail!("--concurrency must be at least 1");
        }
        let seed = args.seed.or(config.seed).unwrap_or_else(fresh_seed);
        let keys = args.keys.or(config.keys).unwrap_or(8);
        let spec = TestSpec {
            target,
            nodes,
            time_limit: seconds(
                "time-limit",
                args.time_limit.or(config.time_limit).unwrap_or(60.0),
            )?,
            concurrency,
            rate: match args.rate.or(config.rate) {
                Some(r) if r > 0.0 => Some(r),
                Some(r) => bail!("--rate must be positive, not {r}"),
                None => None,
            },
            workload: WorkloadSpec {
                workload,
                keys,
                mix,
                ops_per_key: args.ops_per_key.or(config.ops_per_key),
                seed,
            },
            nemesis: fault_kinds.iter().map(|k| k.to_string()).collect(),
            fault_kinds,
            nemesis_interval: seconds(
                "nemesis-interval",
                args.nemesis_interval
                    .or(config.nemesis_interval)
                    .unwrap_or(10.0),
            )?,
            nemesis_schedule: match args
                .nemesis_schedule
                .as_deref()
                .or(config.nemesis_schedule.as_deref())
            {
                Some(name) => name.parse().map_err(|why: String| anyhow!(why))?,
                None => FaultSchedule::OneAtATime,
            },
            unsafe_modes,
            read_mode,
            endpoints,
            hosts,
            etcd_bin: args.etcd_bin.or(config.etcd_bin),
            consul_bin: args.consul_bin.or(config.consul_bin),
            seed,
            results: args
                .results
                .or(config.results)
                .unwrap_or_else(|| "results".into()),
            op_timeout: seconds(
                "op-timeout",
                args.op_timeout.or(config.op_timeout).unwrap_or(2.0),
            )?,
            junit: args.junit.or(config.junit),
            test_count: match args.test_count.or(config.test_count).unwrap_or(1) {
                0 => bail!("--test-count must be at least 1"),
                n => n,
            },
        };
        // Check the workload and the target now, not on the first worker.
        faultline_workloads::Generator::new(spec.workload.clone())?;
        spec.target_spec(&spec.results)?;
        spec.attached_spec()?;
        if spec.hosts.is_some() && (spec.etcd_bin.is_some() || spec.consul_bin.is_some()) {
            bail!(
                "--etcd-bin and --consul-bin name binaries on this machine; the servers on the hosts are found on their PATH, or give --remote-bin"
            );
        }
        // A missing server binary is reported now, before a lab is built for it (on hosts,
        // it is looked for on each host once connected).
        if spec.endpoints.is_none() && spec.hosts.is_none() {
            match spec.target.as_str() {
                "etcd" => drop(faultline_targets::etcd::find_binary(
                    spec.etcd_bin.as_deref(),
                )?),
                "consul" => drop(faultline_targets::consul::find_binary(
                    spec.consul_bin.as_deref(),
                )?),
                _ => {}
            }
        }
        Ok(spec)
    }

    /// With `--endpoints`: how to reach the running cluster.
    pub fn attached_spec(&self) -> anyhow::Result<Option<AttachedSpec>> {
        let Some(endpoints) = &self.endpoints else {
            return Ok(None);
        };
        if endpoints.is_empty() {
            bail!(
                "--endpoints needs at least one URL, e.g. http://10.0.0.1:2379,http://10.0.0.2:2379"
            );
        }
        let api = match self.target.as_str() {
            "etcd" => EndpointApi::Etcd(EtcdReadMode::parse(
                self.read_mode.as_deref().unwrap_or("linearizable"),
            )?),
            "consul" => EndpointApi::Consul(ConsulReadMode::parse(
                self.read_mode.as_deref().unwrap_or("consistent"),
            )?),
            _ => EndpointApi::Raft,
        };
        Ok(Some(AttachedSpec {
            api,
            endpoints: endpoints.clone(),
            names: self
                .hosts
                .as_ref()
                .map(RemoteHosts::names)
                .unwrap_or_default(),
            op_timeout: self.op_timeout,
            startup_timeout: Duration::from_secs(30),
        }))
    }

    /// What to start, with data directories under `data_dir`.
    pub fn target_spec(&self, data_dir: &Path) -> anyhow::Result<TargetSpec> {
        let data_dir = data_dir.to_path_buf();
        // Consul and etcd need a few seconds to form a cluster on 2 busy cores.
        let startup_timeout = Duration::from_secs(30);
        Ok(match self.target.as_str() {
            "etcd" => TargetSpec::Etcd(EtcdSpec {
                binary: self.etcd_bin.clone(),
                data_dir,
                read_mode: EtcdReadMode::parse(
                    self.read_mode.as_deref().unwrap_or("linearizable"),
                )?,
                op_timeout: self.op_timeout,
                startup_timeout,
            }),
            "consul" => TargetSpec::Consul(ConsulSpec {
                binary: self.consul_bin.clone(),
                data_dir,
                read_mode: ConsulReadMode::parse(
                    self.read_mode.as_deref().unwrap_or("consistent"),
                )?,
                op_timeout: self.op_timeout,
                startup_timeout,
            }),
            _ => TargetSpec::Raft(RaftSpec {
                unsafe_modes: self.unsafe_modes.clone(),
                binary: None,
                data_dir,
                op_timeout: self.op_timeout,
                startup_timeout: Duration::from_secs(20),
                // libfaketime slows every clock read down; only clock faults need it.
                faketime: self.fault_kinds.contains(&FaultKind::Clock),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_targets::consul::ConsulReadMode;

    /// Any existing file stands in for a server binary: resolving only checks that it exists.
    fn some_file() -> PathBuf {
        std::env::current_exe().expect("the test binary")
    }

    #[test]
    fn the_config_file_sets_target_read_mode_and_binary_and_flags_win() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("test.toml");
        std::fs::write(
            &config,
            format!(
                "target = \"consul\"\nread-mode = \"stale\"\nconsul-bin = {:?}\nnemesis = \"partition\"\n",
                some_file().display().to_string()
            ),
        )
        .expect("write config");
        let from_file = TestSpec::resolve(TestArgs {
            config: Some(config.clone()),
            ..Default::default()
        })
        .expect("resolves");
        let TargetSpec::Consul(consul) = from_file.target_spec(dir.path()).expect("spec") else {
            panic!("not consul: {from_file:?}");
        };
        assert_eq!(consul.read_mode, ConsulReadMode::Stale);
        assert_eq!(consul.binary, Some(some_file()));

        let flag_wins = TestSpec::resolve(TestArgs {
            config: Some(config),
            read_mode: Some("default".into()),
            ..Default::default()
        })
        .expect("resolves");
        let TargetSpec::Consul(consul) = flag_wins.target_spec(dir.path()).expect("spec") else {
            panic!("not consul: {flag_wins:?}");
        };
        assert_eq!(consul.read_mode, ConsulReadMode::Default);
    }

    #[test]
    fn go_targets_get_no_clock_faults_from_all_and_refuse_them_by_name() {
        let etcd = |nemesis: &str| {
            TestSpec::resolve(TestArgs {
                target: Some("etcd".into()),
                etcd_bin: Some(some_file()),
                nemesis: Some(nemesis.into()),
                ..Default::default()
            })
        };
        let all = etcd("all").expect("resolves");
        assert!(!all.fault_kinds.contains(&FaultKind::Clock), "{all:?}");
        assert!(all.fault_kinds.contains(&FaultKind::Partition), "{all:?}");
        let error = etcd("partition,clock").unwrap_err().to_string();
        assert!(error.contains("libfaketime"), "{error}");
    }

    #[test]
    fn the_nemesis_schedule_comes_from_the_flag_or_the_file_and_typos_are_refused() {
        let default = TestSpec::resolve(TestArgs::default()).expect("resolves");
        assert_eq!(default.nemesis_schedule, FaultSchedule::OneAtATime);
        let flag = TestSpec::resolve(TestArgs {
            nemesis_schedule: Some("overlapping".into()),
            ..Default::default()
        })
        .expect("resolves");
        assert_eq!(flag.nemesis_schedule, FaultSchedule::Overlapping);
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("test.toml");
        std::fs::write(&config, "nemesis-schedule = \"overlapping\"\n").expect("write config");
        let file = TestSpec::resolve(TestArgs {
            config: Some(config),
            ..Default::default()
        })
        .expect("resolves");
        assert_eq!(file.nemesis_schedule, FaultSchedule::Overlapping);
        let error = TestSpec::resolve(TestArgs {
            nemesis_schedule: Some("overlap".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("one-at-a-time or overlapping"), "{error}");
    }

    #[test]
    fn a_test_count_of_zero_is_refused() {
        let error = TestSpec::resolve(TestArgs {
            test_count: Some(0),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("--test-count must be at least 1"), "{error}");
    }

    #[test]
    fn read_modes_belong_to_their_target() {
        let with = |target: &str, mode: &str| {
            TestSpec::resolve(TestArgs {
                target: Some(target.into()),
                read_mode: Some(mode.into()),
                etcd_bin: Some(some_file()),
                consul_bin: Some(some_file()),
                ..Default::default()
            })
        };
        assert!(with("etcd", "serializable").is_ok());
        let error = with("etcd", "stale").unwrap_err().to_string();
        assert!(error.contains("linearizable"), "{error}");
        let error = with("consul", "serializable").unwrap_err().to_string();
        assert!(error.contains("consistent"), "{error}");
        let error = with("raft", "serializable").unwrap_err().to_string();
        assert!(error.contains("--unsafe stale-reads"), "{error}");
    }

    #[test]
    fn hosts_set_the_cluster_size_and_refuse_what_does_not_apply_to_them() {
        let on_hosts = |extra: TestArgs| {
            TestSpec::resolve(TestArgs {
                hosts: Some("root@10.0.0.1,root@10.0.0.2,root@10.0.0.3".into()),
                ..extra
            })
        };
        let spec = on_hosts(TestArgs::default()).expect("resolves");
        assert_eq!(spec.nodes, 3);
        assert!(spec.fault_kinds.contains(&FaultKind::Clock), "{spec:?}");
        // No local etcd binary is needed for etcd on hosts.
        let etcd = on_hosts(TestArgs {
            target: Some("etcd".into()),
            ..Default::default()
        })
        .expect("resolves");
        assert!(!etcd.fault_kinds.contains(&FaultKind::Clock), "{etcd:?}");
        for (args, says) in [
            (
                TestArgs {
                    nodes: Some(5),
                    ..Default::default()
                },
                "--nodes 5 but 3 hosts",
            ),
            (
                TestArgs {
                    target: Some("etcd".into()),
                    etcd_bin: Some(some_file()),
                    ..Default::default()
                },
                "--remote-bin",
            ),
            (
                TestArgs {
                    target: Some("consul".into()),
                    nemesis: Some("clock".into()),
                    ..Default::default()
                },
                "changing a host's system clock over SSH is not implemented",
            ),
        ] {
            let error = format!("{:#}", on_hosts(args).unwrap_err());
            assert!(error.contains(says), "{error}");
        }
    }

    #[test]
    fn faults_against_endpoints_need_their_hosts() {
        let error = TestSpec::resolve(TestArgs {
            endpoints: Some("http://10.0.0.1:7000".into()),
            nemesis: Some("kill".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("--hosts"), "{error}");
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("attached.toml");
        std::fs::write(
            &config,
            "endpoints = \"http://10.0.0.1:7000\"\nnemesis = \"kill\"\n[[hosts]]\nssh = \"root@10.0.0.1\"\npid-file = \"/run/raft.pid\"\nstart = \"systemctl start raft\"\n",
        )
        .expect("write config");
        let spec = TestSpec::resolve(TestArgs {
            config: Some(config),
            ..Default::default()
        })
        .expect("resolves");
        assert_eq!(spec.fault_kinds, [FaultKind::Kill]);
        let attached = spec.attached_spec().expect("spec").expect("attached");
        assert_eq!(attached.names, ["n1"]);
    }

    #[test]
    fn raft_nodes_run_under_libfaketime_only_when_clock_faults_are_wanted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let faketime = |nemesis: &str| {
            let spec = TestSpec::resolve(TestArgs {
                nemesis: Some(nemesis.into()),
                ..Default::default()
            })
            .expect("resolves");
            match spec.target_spec(dir.path()).expect("spec") {
                TargetSpec::Raft(raft) => raft.faketime,
                other => panic!("not raft: {other:?}"),
            }
        };
        assert!(faketime("partition,kill,pause,clock"));
        assert!(faketime("all"));
        assert!(!faketime("partition,kill"));
        assert!(!faketime("none"));
    }
}
