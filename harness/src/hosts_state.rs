//! The state file of a run on remote hosts (`<state dir>/hosts-<id>.json`, beside the labs'),
//! and what `faultline clean` does with the files of runs that died.
//!
//! A run on hosts writes its file once SSH is up and before it changes anything on a host,
//! and removes it only after its nodes are stopped, its faults healed and SSH closed. A file
//! whose run is no longer alive (by PID and start time) therefore belongs to a run that was
//! killed or crashed, and its hosts may still carry that run's faults and nodes: clean
//! reconnects with the same SSH settings from the same network namespace, heals every fault
//! kind the run used, and, for a
//! cluster Faultline started, stops its nodes, fetches their logs into the run directory and
//! removes the run's files on the hosts. A file whose hosts cannot be cleaned stays for the
//! next clean.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use faultline_nemesis::{CleanReport, FaultKind, HealReport, Remote, RunOwner};
use serde::{Deserialize, Serialize};

use crate::hosts::RemoteHosts;

/// What a run on hosts leaves for `faultline clean` to read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostsRunState {
    pub owner: RunOwner,
    /// The run directory here (absolute): abandoned nodes' logs are fetched into it.
    pub run_dir: PathBuf,
    /// Set when Faultline started the cluster: its files on every host are under
    /// `<remote dir>/<this id>/`, and clean stops those nodes and removes them. Unset for a
    /// cluster someone else runs (`--endpoints`), whose nodes clean only heals.
    pub cluster_run_id: Option<String>,
    pub hosts: RemoteHosts,
    pub fault_kinds: Vec<FaultKind>,
    /// The named network namespace (`ip netns`) the run reached its hosts from; `None`: the
    /// machine's own. Clean reaches them from there too.
    #[serde(default)]
    pub netns: Option<String>,
    /// Node → the run's SSH ControlMaster socket, which clean closes.
    #[serde(default)]
    pub ssh_masters: BTreeMap<String, PathBuf>,
}

/// A written state file; [`HostsStateFile::remove`] once the hosts are clean. Dropping it
/// keeps the file, for `faultline clean`.
#[derive(Debug)]
pub struct HostsStateFile {
    path: PathBuf,
}

impl HostsStateFile {
    /// Writes the state of this run (atomically: written beside, then renamed).
    pub fn create(
        id: &str,
        run_dir: &Path,
        cluster_run_id: Option<String>,
        hosts: &RemoteHosts,
        fault_kinds: &[FaultKind],
        remote: &Remote,
    ) -> anyhow::Result<HostsStateFile> {
        let dir = faultline_nemesis::state_dir();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let run_dir = std::path::absolute(run_dir)
            .with_context(|| format!("resolving {}", run_dir.display()))?;
        let state = HostsRunState {
            owner: RunOwner::current(),
            run_dir,
            cluster_run_id,
            hosts: hosts.clone(),
            fault_kinds: fault_kinds.to_vec(),
            netns: faultline_nemesis::current_netns_name(),
            ssh_masters: remote.control_sockets(),
        };
        let path = dir.join(format!("hosts-{id}.json"));
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&state)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("renaming {}", tmp.display()))?;
        Ok(HostsStateFile { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The hosts are clean: the file goes.
    pub fn remove(self) -> anyhow::Result<()> {
        std::fs::remove_file(&self.path)
            .with_context(|| format!("removing {}", self.path.display()))
    }
}

/// The state files of runs on hosts in `dir`, read; unreadable ones as errors, with their
/// path.
fn state_files(dir: &Path) -> Vec<(PathBuf, anyhow::Result<HostsRunState>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("hosts-") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let state = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))
                .and_then(|text| {
                    serde_json::from_str(&text)
                        .with_context(|| format!("parsing {}", path.display()))
                });
            (path, state)
        })
        .collect()
}

/// Cleans the hosts of every dead run recorded in the state directory, adding what it did to
/// `report`; runs still alive are left alone. SSH starts from the network namespace the run
/// was in, whichever this process is in.
pub fn clean_abandoned_hosts(report: &mut CleanReport) {
    clean_abandoned_hosts_in(&faultline_nemesis::state_dir(), report);
}

fn clean_abandoned_hosts_in(dir: &Path, report: &mut CleanReport) {
    for (path, state) in state_files(dir) {
        let state = match state {
            Ok(state) => state,
            Err(e) => {
                report.failed.push(format!(
                    "{}: remove the file by hand",
                    crate::error_text::error_text(&e)
                ));
                continue;
            }
        };
        if state.owner.is_alive() {
            report.left_alone.push(format!(
                "hosts {} (their run, pid {}, is still running)",
                state.hosts.names().join(", "),
                state.owner.pid
            ));
            continue;
        }
        clean_dead_run(&path, &state, report);
    }
}

/// Everything `clean` does for the run of the state file at `path`, which is dead.
fn clean_dead_run(path: &Path, state: &HostsRunState, report: &mut CleanReport) {
    let hosts = state.hosts.names().join(", ");
    // The dead run's own SSH connections, whatever became of its hosts.
    for (node, socket) in &state.ssh_masters {
        match faultline_nemesis::close_abandoned_master(socket) {
            Ok(true) => report
                .removed
                .push(format!("{node}: closed the dead run's SSH connection")),
            Ok(false) => {}
            Err(e) => report
                .failed
                .push(format!("the dead run's SSH connection to {node}: {e}")),
        }
    }
    let kept = |report: &mut CleanReport, why: String| {
        report.failed.push(format!(
            "the hosts {hosts} of the run in {}: {why} (the state file {} stays for the next clean)",
            state.run_dir.display(),
            path.display()
        ))
    };
    let runtime = match ssh_runtime(state.netns.as_deref()) {
        Ok(Some(runtime)) => runtime,
        Ok(None) => {
            // Hosts reached only from a namespace that is gone (the lab that held them, say)
            // are out of reach for every later clean too.
            let why = format!(
                "its hosts {hosts} were reached from network namespace {}, which no longer exists",
                state.netns.as_deref().unwrap_or_default()
            );
            remove_state_file(
                path,
                &format!("dropped state file {}: {why}", path.display()),
                report,
            );
            return;
        }
        Err(e) => return kept(report, crate::error_text::error_text(&e)),
    };
    // On the runtime's threads (block_on would run it here, in this thread's namespace).
    let cleaning = runtime.spawn({
        let state = state.clone();
        async move { clean_run(&state).await }
    });
    let cleaned = runtime
        .block_on(cleaning)
        .unwrap_or_else(|e| Err(anyhow::anyhow!("the clean-up task failed: {e}")));
    match cleaned {
        Ok(healed) => {
            let clean = healed.failed.is_empty();
            report.removed.extend(healed.undone);
            report.failed.extend(healed.failed);
            if clean {
                remove_state_file(
                    path,
                    &format!("removed state file {}", path.display()),
                    report,
                );
            }
        }
        Err(e) => kept(report, crate::error_text::error_text(&e)),
    }
}

/// Removes the state file at `path`, reporting `line` once it is gone.
fn remove_state_file(path: &Path, line: &str, report: &mut CleanReport) {
    match std::fs::remove_file(path) {
        Ok(()) => report.removed.push(line.to_string()),
        Err(e) => report
            .failed
            .push(format!("state file {}: {e}", path.display())),
    }
}

/// A runtime whose SSH connections start in the network namespace the run used (`None`: the
/// machine's own), so they take the same routes; `Ok(None)` when that namespace is gone.
fn ssh_runtime(netns: Option<&str>) -> anyhow::Result<Option<tokio::runtime::Runtime>> {
    let here = faultline_nemesis::current_netns_name();
    if netns == here.as_deref() {
        return Ok(Some(
            tokio::runtime::Runtime::new().context("starting the SSH runtime")?,
        ));
    }
    if let Some(name) = netns
        && !Path::new("/run/netns").join(name).exists()
    {
        return Ok(None);
    }
    let runtime =
        faultline_nemesis::runtime_in_netns(netns, "faultline-clean", 1).with_context(|| {
            let namespace = match netns {
                Some(name) => format!("network namespace {name}"),
                None => "the machine's own network namespace".to_string(),
            };
            format!("entering {namespace}, where the run reached its hosts from")
        })?;
    Ok(Some(runtime))
}

async fn clean_run(state: &HostsRunState) -> anyhow::Result<HealReport> {
    let ssh_hint = || crate::run::ssh_hint(&state.hosts);
    match &state.cluster_run_id {
        Some(run_id) => {
            let placement = state.hosts.hosts_spec(&state.run_dir, run_id.clone());
            faultline_targets::hosts::clean_up_abandoned(&placement, &state.fault_kinds)
                .await
                .with_context(ssh_hint)
        }
        None => {
            let remote = Remote::connect(state.hosts.remote_nodes(), &state.hosts.options())
                .await
                .with_context(ssh_hint)?;
            let healed = remote.heal_abandoned(&state.fault_kinds, true).await;
            remote.close().await.context("closing SSH")?;
            Ok(healed?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> RemoteHosts {
        let context = crate::hosts::HostsContext {
            endpoints: None,
            fault_kinds: &[],
        };
        crate::hosts::resolve(
            Some("root@10.0.0.1,root@10.0.0.2,root@10.0.0.3"),
            None,
            crate::hosts::HostOptions::default(),
            &context,
        )
        .expect("valid hosts")
        .expect("some hosts")
    }

    #[test]
    fn state_files_round_trip_and_foreign_or_broken_files_are_told_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = HostsRunState {
            owner: RunOwner::current(),
            run_dir: "/results/raft-register/20261201T000000-000Z".into(),
            cluster_run_id: Some("20261201T000000-000Z-42".into()),
            hosts: hosts(),
            fault_kinds: vec![FaultKind::Partition, FaultKind::Clock],
            netns: Some("fl3a07-ctl".into()),
            ssh_masters: BTreeMap::from([("n1".into(), "/tmp/.ssh-connectionX/master".into())]),
        };
        std::fs::write(
            dir.path().join("hosts-a.json"),
            serde_json::to_string(&state).expect("serialises"),
        )
        .expect("write");
        std::fs::write(dir.path().join("hosts-b.json"), "{ not json").expect("write");
        // A lab's state file and a half-written one are not runs on hosts.
        std::fs::write(dir.path().join("fl3a07.json"), "{}").expect("write");
        std::fs::write(dir.path().join("hosts-c.json.tmp"), "{}").expect("write");
        let files = state_files(dir.path());
        assert_eq!(files.len(), 2, "{files:?}");
        let read = files[0].1.as_ref().expect("the good file reads");
        assert_eq!(read.owner, state.owner);
        assert!(read.owner.is_alive());
        assert_eq!(read.cluster_run_id, state.cluster_run_id);
        assert_eq!(read.hosts.names(), ["n1", "n2", "n3"]);
        assert_eq!(read.fault_kinds, state.fault_kinds);
        assert_eq!(read.netns, state.netns);
        assert_eq!(read.ssh_masters, state.ssh_masters);
        let broken = files[1].1.as_ref().expect_err("the broken file does not");
        assert!(format!("{broken:#}").contains("hosts-b.json"), "{broken:#}");
    }

    #[test]
    fn a_live_run_is_left_alone_and_a_dead_one_whose_hosts_cannot_be_reached_stays_recorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut unreachable = hosts();
        // Nothing listens on port 1 of loopback: SSH fails at once.
        for host in &mut unreachable.hosts {
            host.destination = "root@127.0.0.1".into();
            host.port = Some(1);
        }
        unreachable.ssh_config = Some("/dev/null".into());
        let write = |name: &str, owner: RunOwner| {
            let state = HostsRunState {
                owner,
                run_dir: dir.path().join("run"),
                cluster_run_id: Some("run-1".into()),
                hosts: unreachable.clone(),
                fault_kinds: vec![FaultKind::Partition],
                netns: faultline_nemesis::current_netns_name(),
                ssh_masters: BTreeMap::new(),
            };
            let path = dir.path().join(name);
            std::fs::write(&path, serde_json::to_string(&state).expect("serialises"))
                .expect("write");
            path
        };
        let live = write("hosts-live.json", RunOwner::current());
        // No process has this PID and start time.
        let dead = write(
            "hosts-dead.json",
            RunOwner {
                pid: u32::MAX,
                start_time: 0,
            },
        );
        let mut report = CleanReport::default();
        clean_abandoned_hosts_in(dir.path(), &mut report);
        assert!(report.removed.is_empty(), "{report:?}");
        assert_eq!(report.left_alone.len(), 1, "{report:?}");
        assert!(report.left_alone[0].contains("still running"), "{report:?}");
        assert_eq!(report.failed.len(), 1, "{report:?}");
        assert!(
            report.failed[0].contains("stays for the next clean")
                && report.failed[0].contains("hosts-dead.json"),
            "{report:?}"
        );
        assert!(live.exists() && dead.exists());
    }

    #[test]
    fn a_dead_run_whose_network_namespace_is_gone_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = HostsRunState {
            owner: RunOwner {
                pid: u32::MAX,
                start_time: 0,
            },
            run_dir: dir.path().join("run"),
            cluster_run_id: Some("run-1".into()),
            hosts: hosts(),
            fault_kinds: vec![FaultKind::Partition],
            netns: Some("fl0000-gone-ctl".into()),
            ssh_masters: BTreeMap::new(),
        };
        let path = dir.path().join("hosts-gone.json");
        std::fs::write(&path, serde_json::to_string(&state).expect("serialises")).expect("write");
        let mut report = CleanReport::default();
        clean_abandoned_hosts_in(dir.path(), &mut report);
        assert!(report.failed.is_empty(), "{report:?}");
        assert_eq!(report.removed.len(), 1, "{report:?}");
        assert!(
            report.removed[0].contains("fl0000-gone-ctl, which no longer exists"),
            "{report:?}"
        );
        assert!(!path.exists());
    }
}
