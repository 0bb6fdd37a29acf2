//! `faultline test` on remote hosts over SSH. A lab whose nodes run `sshd` plays the hosts
//! (the same setup as the nemesis's SSH tests), and the real `faultline` binary runs INSIDE
//! the lab's client namespace (`ip netns exec <ctl> faultline test ...`), so every SSH and
//! client connection starts inside the lab. Every "host" is a namespace of this machine, so
//! they share one filesystem: data dirs, logs and PID files are per node, which is also what
//! this checks. These need root, nftables, libfaketime, sshd (and etcd, Consul), so they are
//! ignored by default and run by scripts/test.sh.

mod common;
#[path = "../../nemesis/tests/sshd.rs"]
mod sshd;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{
    SignalOnDrop, assert_exits, assert_history_checks_valid, assert_verdict, describe, history,
    json, run_dirs, timed, wait_for,
};
use faultline_nemesis::{Isolation, Lab, LabConfig};
use nix::sys::signal::Signal;
use serde_json::Value;

/// A lab of `sshd` hosts, torn down when dropped (also when the test fails).
struct Hosts {
    lab: Option<Lab>,
    runtime: tokio::runtime::Runtime,
    ssh: sshd::SshHosts,
    dir: tempfile::TempDir,
}

impl Hosts {
    fn new(nodes: usize) -> Hosts {
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let lab = runtime
            .block_on(Lab::create(LabConfig {
                nodes,
                isolation: Isolation::Namespaces,
                run_dir: dir.path().join("lab"),
            }))
            .expect("lab builds");
        let keys = dir.path().join("ssh");
        std::fs::create_dir_all(&keys).expect("ssh dir");
        let ssh = runtime.block_on(sshd::start_sshd(&lab, &keys));
        Hosts {
            lab: Some(lab),
            runtime,
            ssh,
            dir,
        }
    }

    fn lab(&self) -> &Lab {
        self.lab.as_ref().expect("the lab is up")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The working directory the hosts use (one for all: they share this filesystem).
    fn remote_dir(&self) -> PathBuf {
        self.path("remote")
    }

    /// The SSH settings every run shares, as `--config` lines.
    fn ssh_config(&self) -> String {
        format!(
            "ssh-key = {:?}\nssh-known-hosts = {:?}\nssh-accept-new-hosts = true\nssh-config = \"/dev/null\"\nremote-dir = {:?}\n",
            self.ssh.key.display().to_string(),
            self.ssh.known_hosts.display().to_string(),
            self.remote_dir().display().to_string(),
        )
    }

    /// One `[[hosts]]` table per lab node, with `extra(node)` lines in each.
    fn host_tables(&self, extra: impl Fn(&str) -> String) -> String {
        self.lab()
            .nodes()
            .iter()
            .map(|node| {
                format!(
                    "[[hosts]]\nssh = \"root@{}\"\n{}",
                    self.lab().node_ip(node),
                    extra(node)
                )
            })
            .collect()
    }

    fn write_config(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("config");
        path
    }

    /// A config (written as `name`): `settings`, then the SSH settings and one plain
    /// `[[hosts]]` table per lab node.
    fn hosts_config(&self, name: &str, settings: &str) -> PathBuf {
        self.write_config(
            name,
            &format!(
                "{settings}{}{}",
                self.ssh_config(),
                self.host_tables(|_| String::new())
            ),
        )
    }

    /// A config (written as `name`) that runs the bundled Raft server on every host.
    fn raft_config(&self, name: &str) -> PathBuf {
        self.hosts_config(
            name,
            &format!("remote-bin = {:?}\n", raft_server().display().to_string()),
        )
    }

    /// `faultline` inside the lab's client namespace (`ip netns exec` execs it, so the
    /// child's PID is faultline's), not on a terminal.
    fn faultline_in_ctl(&self) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.lab().client_netns()])
            .arg(env!("CARGO_BIN_EXE_faultline"))
            .env("CI", "1");
        command
    }

    /// `faultline test ARGS` inside the lab's client namespace, results under `results`, to
    /// be started.
    fn faultline_test_command(&self, args: &[&str]) -> Command {
        let mut command = self.faultline_in_ctl();
        command
            .arg("test")
            .args(args)
            .arg("--results")
            .arg(self.path("results"));
        command
    }

    /// A Raft run on the hosts (config written as `config`) that would last 120 s, with
    /// `nemesis` faults every `interval` s drawn from seed 3, started for the test to end
    /// early; its stdout and stderr go to `output()`.
    fn spawn_long_raft_run(
        &self,
        config: &str,
        nemesis: &str,
        interval: &str,
        output: fn() -> Stdio,
    ) -> Child {
        let config = self.raft_config(config);
        let config = config.to_str().expect("utf-8");
        self.faultline_test_command(&timed(
            "120",
            interval,
            "3",
            &["--config", config, "--nemesis", nemesis],
        ))
        .stdout(output())
        .stderr(output())
        .spawn()
        .expect("faultline starts")
    }

    /// `faultline test ARGS` inside the lab's client namespace, run to its end.
    fn faultline_test(&self, args: &[&str]) -> Output {
        self.faultline_test_command(args)
            .output()
            .expect("faultline runs")
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        if let Some(lab) = self.lab.take()
            && let Err(e) = self.runtime.block_on(lab.teardown())
        {
            eprintln!("tearing the lab down: {e}");
        }
    }
}

fn raft_server() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_faultline")).with_file_name("faultline-raft")
}

fn consul_binary() -> String {
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/consul");
    if tools.is_file() {
        return tools.display().to_string();
    }
    "consul".to_string()
}

/// Is a process with this PID alive and (by its command line) one of our nodes?
fn node_still_runs(pid: u32, marker: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat
        .rsplit(')')
        .next()
        .is_some_and(|rest| rest.trim_start().starts_with('Z'));
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    !zombie && cmdline.contains(&marker.display().to_string())
}

/// The `start-*` events of the history that took effect, by kind (`partition`, `kill`, …).
fn installed_faults(history: &[Value]) -> Vec<String> {
    history
        .iter()
        .filter(|r| r["process"] == "nemesis" && r["error"].is_null())
        .filter_map(|r| {
            r["f"]
                .as_str()
                .and_then(|f| f.strip_prefix("start-"))
                .map(str::to_string)
        })
        .collect()
}

/// The nemesis lines of the history, `time f description error`, for failure messages.
fn nemesis_lines(history: &[Value]) -> String {
    history
        .iter()
        .filter(|r| r["process"] == "nemesis")
        .map(|r| {
            format!(
                "{:.2} s {} {} {}\n",
                r["time"].as_f64().unwrap_or(0.0) / 1e9,
                r["f"],
                r["value"]["description"],
                r["error"]
            )
        })
        .collect()
}

/// What every run on the hosts leaves: a complete run directory with every node's log and
/// PIDs fetched, nothing left in the hosts' working directory, and no node process alive.
/// Returns the run directory.
fn check_run_on_hosts(hosts: &Hosts, out: &Output) -> PathBuf {
    assert_verdict(out, 0, "valid");
    let dirs = run_dirs(&hosts.path("results"));
    let dir = dirs.last().expect("a run directory").clone();
    for file in ["history.jsonl", "results.json", "test.json", "report.html"] {
        assert!(dir.join(file).is_file(), "{file} is missing");
    }
    assert_eq!(json(&dir.join("results.json"))["valid"], true);
    let test = json(&dir.join("test.json"));
    assert_eq!(
        test["spec"]["hosts"]["hosts"].as_array().map(Vec::len),
        Some(3),
        "{test}"
    );
    for node in hosts.lab().nodes() {
        assert!(
            !fetched_log(&dir, &node).is_empty(),
            "{node}'s log is empty"
        );
        let pids = std::fs::read_to_string(dir.join("pids").join(format!("{node}.pid")))
            .unwrap_or_else(|e| panic!("{node}'s PIDs were not fetched: {e}"));
        let pids: Vec<u32> = pids
            .lines()
            .map(|l| l.trim().parse().expect("a PID a line"))
            .collect();
        assert!(!pids.is_empty(), "{node} never ran");
        for pid in pids {
            assert!(
                !node_still_runs(pid, &hosts.remote_dir()),
                "{node}'s process {pid} still runs"
            );
        }
    }
    // Wiped: this run's directory is gone from the hosts' working directory.
    assert_hosts_wiped(hosts);
    dir
}

/// `node`'s log, which the run fetched from its host into the run directory `dir`.
fn fetched_log(dir: &Path, node: &str) -> String {
    std::fs::read_to_string(dir.join("nodes").join(format!("{node}.log")))
        .unwrap_or_else(|e| panic!("{node}'s log was not fetched: {e}"))
}

#[test]
#[ignore = "needs root, nftables, libfaketime, sshd: run by scripts/test.sh"]
fn raft_on_three_hosts_under_ssh_faults_is_valid_and_leaves_nothing_behind() {
    let hosts = Hosts::new(3);
    let config = hosts.raft_config("raft.toml");
    // Seed 12 draws kill, pause, clock and partition in its first four cycles (with
    // Jepsen-shaped clock faults: kill n2; pause all; strobe each clock; a one-way cut),
    // well within the time limit. If the schedule's draws change, pick a seed that does
    // the same: the failure message lists the faults.
    let out = hosts.faultline_test(&timed(
        "14",
        "0.7",
        "12",
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--nemesis",
            "partition,kill,pause,clock",
        ],
    ));
    let dir = check_run_on_hosts(&hosts, &out);
    let history = history(&dir);
    let installed = installed_faults(&history);
    eprintln!("{}", nemesis_lines(&history));
    for kind in ["partition", "kill", "pause", "clock"] {
        assert!(
            installed.iter().any(|k| k == kind),
            "no {kind} fault took effect: {installed:?}\n{}\n{}",
            nemesis_lines(&history),
            describe(&out)
        );
    }
    // A kill over SSH restarted the node with its start command: that node had two PIDs.
    let restarted = hosts.lab().nodes().iter().any(|node| {
        std::fs::read_to_string(dir.join("pids").join(format!("{node}.pid")))
            .is_ok_and(|p| p.lines().count() > 1)
    });
    assert!(restarted, "no node was restarted after a kill");
    let test = json(&dir.join("test.json"));
    assert!(
        test["versions"]["target"]
            .as_str()
            .is_some_and(|v| v.starts_with("faultline-raft")),
        "{test}"
    );
}

#[test]
#[ignore = "needs root, nftables, sshd and etcd: run by scripts/test.sh"]
fn etcd_on_three_hosts_given_by_the_short_flag_is_valid_under_partitions_and_kills() {
    let hosts = Hosts::new(3);
    let list = hosts
        .lab()
        .nodes()
        .iter()
        .map(|n| format!("root@{}", hosts.lab().node_ip(n)))
        .collect::<Vec<_>>()
        .join(",");
    let remote_dir = hosts.remote_dir().display().to_string();
    let out = hosts.faultline_test(&timed(
        "12",
        "2",
        "1",
        &[
            "--target",
            "etcd",
            "--hosts",
            &list,
            "--ssh-key",
            hosts.ssh.key.to_str().expect("utf-8"),
            "--ssh-known-hosts",
            hosts.ssh.known_hosts.to_str().expect("utf-8"),
            "--ssh-accept-new-hosts",
            "--ssh-config",
            "/dev/null",
            "--remote-dir",
            &remote_dir,
            "--nemesis",
            "partition,kill",
        ],
    ));
    let dir = check_run_on_hosts(&hosts, &out);
    assert!(
        !installed_faults(&history(&dir)).is_empty(),
        "no fault took effect\n{}",
        describe(&out)
    );
}

#[test]
#[ignore = "needs root, nftables, sshd and Consul: run by scripts/test.sh"]
fn consul_on_three_hosts_is_valid_under_the_default_faults() {
    let hosts = Hosts::new(3);
    let config = hosts.hosts_config(
        "consul.toml",
        &format!("target = \"consul\"\nremote-bin = {:?}\n", consul_binary()),
    );
    let out = hosts.faultline_test(&timed(
        "12",
        "2",
        "1",
        &["--config", config.to_str().expect("utf-8")],
    ));
    check_run_on_hosts(&hosts, &out);
}

/// Raft servers this test starts on the hosts itself, as a user's own cluster: each writes
/// its PID file, then execs the server. Killed by PID (from the PID files, after checking the
/// command line) when dropped, also when the test fails.
struct OwnCluster {
    dir: PathBuf,
    nodes: Vec<String>,
}

impl OwnCluster {
    fn start_command(&self, hosts: &Hosts, node: &str) -> String {
        let lab = hosts.lab();
        let names = lab.nodes();
        let i = names.iter().position(|n| n == node).expect("a node");
        let peers = names
            .iter()
            .enumerate()
            .map(|(j, n)| format!("{}={}:7000", j + 1, lab.node_ip(n)))
            .collect::<Vec<_>>()
            .join(",");
        let dir = self.dir.join(node);
        format!(
            "echo $$ > {dir}/node.pid && exec {server} --id {id} --listen {ip}:7000 --peers {peers} --data-dir {dir}/data{init} >> {dir}/node.log 2>&1",
            dir = dir.display(),
            server = raft_server().display(),
            id = i + 1,
            ip = lab.node_ip(node),
            init = if i == 0 { " --init" } else { "" },
        )
    }

    fn start(hosts: &Hosts) -> OwnCluster {
        let cluster = OwnCluster {
            dir: hosts.path("own"),
            nodes: hosts.lab().nodes(),
        };
        for node in &cluster.nodes {
            std::fs::create_dir_all(cluster.dir.join(node).join("data")).expect("node dir");
            let start = cluster.start_command(hosts, node);
            let status = Command::new("ip")
                .args(["netns", "exec", &hosts.lab().netns(node).expect("netns")])
                .args([
                    "sh",
                    "-c",
                    &format!("nohup setsid sh -c '{start}' </dev/null >/dev/null 2>&1 &"),
                ])
                .status()
                .expect("ip netns exec");
            assert!(status.success());
        }
        for node in &cluster.nodes {
            let written = (0..100).any(|_| {
                cluster.pid_of(node).is_some() || {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    false
                }
            });
            assert!(written, "{node} wrote no PID file");
        }
        cluster
    }

    fn pid_of(&self, node: &str) -> Option<u32> {
        std::fs::read_to_string(self.dir.join(node).join("node.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            if let Some(pid) = self.pid_of(node)
                && node_still_runs(pid, &self.dir.join(node))
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

#[test]
#[ignore = "needs root, nftables, sshd: run by scripts/test.sh"]
fn a_running_cluster_with_hosts_gets_kill_faults_by_pid_file() {
    let hosts = Hosts::new(3);
    let cluster = OwnCluster::start(&hosts);
    let endpoints = hosts
        .lab()
        .nodes()
        .iter()
        .map(|n| format!("http://{}:7000", hosts.lab().node_ip(n)))
        .collect::<Vec<_>>()
        .join(",");
    let tables = hosts.host_tables(|node| {
        let dir = cluster.dir.join(node);
        format!(
            "pid-file = {:?}\ncmdline = {:?}\nstart = {:?}\n",
            dir.join("node.pid").display().to_string(),
            dir.join("data").display().to_string(),
            cluster.start_command(&hosts, node)
        )
    });
    let config = hosts.write_config("endpoints.toml", &format!("{}{tables}", hosts.ssh_config()));
    let first_pids: Vec<Option<u32>> = cluster.nodes.iter().map(|n| cluster.pid_of(n)).collect();
    let out = hosts.faultline_test(&timed(
        "10",
        "1.5",
        "1",
        &[
            "--endpoints",
            &endpoints,
            "--config",
            config.to_str().expect("utf-8"),
            "--nemesis",
            "kill",
        ],
    ));
    assert_exits(&out, 0);
    let dir = run_dirs(&hosts.path("results"))
        .pop()
        .expect("a run directory");
    let kills = installed_faults(&history(&dir))
        .iter()
        .filter(|k| *k == "kill")
        .count();
    assert!(kills >= 1, "no kill took effect\n{}", describe(&out));
    // The killed nodes were restarted with the user's start command, which wrote new PIDs;
    // the old processes are gone. The cluster is left running (it is the user's): the drop
    // guard ends it.
    let now: Vec<Option<u32>> = cluster.nodes.iter().map(|n| cluster.pid_of(n)).collect();
    assert_ne!(first_pids, now, "no node has a new PID");
    assert_eq!(
        hosts_state_files(&hosts),
        Vec::<PathBuf>::new(),
        "a run that healed leaves no state file"
    );
    for (node, (before, after)) in cluster.nodes.iter().zip(first_pids.iter().zip(&now)) {
        let marker = cluster.dir.join(node);
        if before != after {
            assert!(!node_still_runs(before.expect("a PID"), &marker), "{node}");
        }
        assert!(
            node_still_runs(after.expect("a PID"), &marker),
            "{node} runs again"
        );
    }
}

#[test]
#[ignore = "needs root, nftables, sshd: run by scripts/test.sh"]
fn an_unreachable_host_a_missing_binary_or_a_server_that_exits_is_an_error_that_says_what_to_do() {
    let hosts = Hosts::new(3);
    let n1 = hosts.lab().node_ip("n1");
    // Nothing listens on port 2222: SSH cannot connect.
    let out = hosts.faultline_test(&[
        "--hosts",
        &format!("root@{n1}:2222"),
        "--ssh-key",
        hosts.ssh.key.to_str().expect("utf-8"),
        "--ssh-config",
        "/dev/null",
        "--time-limit",
        "5",
    ]);
    assert_exits(&out, 3);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("ssh -p 2222 root@{n1} true")),
        "{}",
        describe(&out)
    );

    // Reachable, but the server binary is not where the config says.
    let out = failed_start_with_remote_bin(&hosts, "/nonexistent/faultline-raft");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/faultline-raft` on `root@")
            && stderr.contains("copy the faultline-raft binary"),
        "{}",
        describe(&out)
    );
    assert_hosts_wiped(&hosts);

    // A server that exits at once (`sh` does not know raft's flags): the start fails after
    // its bounded wait, and still the node logs are fetched and the hosts wiped.
    let out = failed_start_with_remote_bin(&hosts, "/bin/sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no live process in its PID file"),
        "{}",
        describe(&out)
    );
    let dir = run_dirs(&hosts.path("results"))
        .pop()
        .expect("a run directory");
    for node in hosts.lab().nodes() {
        let log = fetched_log(&dir, &node);
        assert!(log.contains("Illegal option"), "{node}: {log}");
    }
    assert_hosts_wiped(&hosts);

    // A server that outlives its start and then exits: no leader comes, and the error names
    // the nodes whose servers are gone rather than only the missing leader.
    let late_exit = hosts.path("late-exit.sh");
    common::write_script(&late_exit, "#!/bin/sh\necho giving up\nsleep 1\nexit 1\n");
    let out = failed_start_with_remote_bin(&hosts, late_exit.to_str().expect("utf-8"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("n1, n2, n3 started but exited: no raft leader"),
        "{}",
        describe(&out)
    );
    assert_hosts_wiped(&hosts);
}

/// A 5 s run on the hosts with `remote-bin` set to `bin`, which must fail to start (exit 3).
fn failed_start_with_remote_bin(hosts: &Hosts, bin: &str) -> Output {
    let config = hosts.hosts_config("remote-bin.toml", &format!("remote-bin = {bin:?}\n"));
    let out = hosts.faultline_test(&[
        "--config",
        config.to_str().expect("utf-8"),
        "--time-limit",
        "5",
    ]);
    assert_exits(&out, 3);
    out
}

/// Nothing of the run is left in the hosts' remote directory, nor the state file that would
/// send `faultline clean` there.
fn assert_hosts_wiped(hosts: &Hosts) {
    let left: Vec<_> = std::fs::read_dir(hosts.remote_dir())
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left on the hosts: {left:?}");
    assert_eq!(hosts_state_files(hosts), Vec::<PathBuf>::new());
}

/// nft tables in a node's namespace (the partitions and losses Faultline puts there).
fn nft_tables_in(netns: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", netns, "nft", "list", "tables"])
        .output()
        .expect("nft runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs root, nftables, libfaketime, sshd: run by scripts/test.sh"]
fn sigterm_heals_over_ssh_stops_and_wipes_the_nodes_and_checks_what_was_recorded() {
    let hosts = Hosts::new(3);
    let child = hosts.spawn_long_raft_run("sigterm.toml", "partition,pause", "0.5", Stdio::piped);
    // `ip netns exec` execs faultline: the child's PID is the run's. Stopped the same way if
    // this test fails before it does.
    let run = SignalOnDrop::new(child.id(), Signal::SIGTERM);

    // Wait until every node wrote its PID file on its host, then let faults come and go.
    let started = Instant::now();
    let pid_files = || -> usize {
        std::fs::read_dir(hosts.remote_dir())
            .into_iter()
            .flatten()
            .flatten()
            .map(|run| {
                hosts
                    .lab()
                    .nodes()
                    .iter()
                    .filter(|n| run.path().join(n.as_str()).join("node.pid").is_file())
                    .count()
            })
            .sum()
    };
    wait_for(
        Duration::from_secs(60),
        Duration::from_millis(100),
        "the nodes did not start on the hosts within 60 s",
        || (pid_files() >= 3).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(5));
    run.send(Signal::SIGTERM);

    let out = child.wait_with_output().expect("faultline ends");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the run did not stop early on SIGTERM"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("interrupted"), "{}", describe(&out));
    let dir = check_run_on_hosts(&hosts, &out);
    let history = history(&dir);
    assert!(
        !installed_faults(&history).is_empty(),
        "no fault took effect before the SIGTERM\n{}",
        nemesis_lines(&history)
    );
    // Every fault that took effect was undone (its stop recorded), the one in force at the
    // SIGTERM by the final heal; and no partition table is left on any host.
    let stops = history
        .iter()
        .filter(|r| r["process"] == "nemesis" && r["error"].is_null())
        .filter(|r| r["f"].as_str().is_some_and(|f| f.starts_with("stop-")))
        .count();
    assert_eq!(
        stops,
        installed_faults(&history).len(),
        "{}",
        nemesis_lines(&history)
    );
    for node in hosts.lab().nodes() {
        let tables = nft_tables_in(&hosts.lab().netns(&node).expect("netns"));
        assert!(!tables.contains("faultline"), "{node}: {tables}");
    }
}

/// The state files that runs of this test left in the machine's state directory (the one
/// `faultline clean` reads; it also sweeps labs that have no state file there, so tests do
/// not use another): those naming a run directory under the test's results.
fn hosts_state_files(hosts: &Hosts) -> Vec<PathBuf> {
    std::fs::read_dir(faultline_nemesis::state_dir())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("hosts-"))
        .filter(|p| {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|text| serde_json::from_str::<Value>(&text).ok())
                .and_then(|state| state["run_dir"].as_str().map(PathBuf::from))
                .is_some_and(|run| run.starts_with(hosts.path("results")))
        })
        .collect()
}

/// The history's nemesis records so far, read leniently: the run may be writing the last line.
fn nemesis_records(history: &Path) -> Vec<Value> {
    std::fs::read_to_string(history)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|r| r["process"] == "nemesis")
        .collect()
}

#[test]
#[ignore = "needs root, nftables, libfaketime, sshd: run by scripts/test.sh"]
fn a_sigkilled_run_on_hosts_is_cleaned_up_by_faultline_clean() {
    let hosts = Hosts::new(3);
    let mut child = hosts.spawn_long_raft_run("sigkill.toml", "partition", "3", Stdio::null);
    struct KillOnFailure<'a>(&'a mut Child);
    impl Drop for KillOnFailure<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let run = KillOnFailure(&mut child);

    // Kill the run while its first partition is in force (the heal is due 3 s later).
    let dir = wait_for(
        Duration::from_secs(90),
        Duration::from_millis(50),
        "no partition within 90 s",
        || {
            // The run makes its results directory only once it has started.
            if !hosts.path("results").exists() {
                return None;
            }
            let dir = run_dirs(&hosts.path("results")).last().cloned()?;
            let partitioned = nemesis_records(&dir.join("history.jsonl"))
                .iter()
                .any(|r| r["f"] == "start-partition" && r["error"].is_null());
            partitioned.then_some(dir)
        },
    );
    run.0.kill().expect("SIGKILL");
    run.0.wait().expect("the run ends");
    drop(run);

    // What it left: its nodes running, its partition rules, its state file.
    let run_dirs_on_hosts: Vec<PathBuf> = std::fs::read_dir(hosts.remote_dir())
        .expect("the hosts' working directory")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(run_dirs_on_hosts.len(), 1, "{run_dirs_on_hosts:?}");
    let pids: Vec<u32> = hosts
        .lab()
        .nodes()
        .iter()
        .map(|node| {
            let file = run_dirs_on_hosts[0].join(node.as_str()).join("node.pid");
            let pid = std::fs::read_to_string(&file).expect("a PID file");
            pid.trim().parse().expect("a PID")
        })
        .collect();
    for pid in &pids {
        assert!(
            node_still_runs(*pid, &hosts.remote_dir()),
            "{pid} died with the run"
        );
    }
    let partitioned = || {
        hosts
            .lab()
            .nodes()
            .iter()
            .filter(|node| {
                nft_tables_in(&hosts.lab().netns(node).expect("netns")).contains("faultline")
            })
            .count()
    };
    assert!(partitioned() > 0, "the partition ended before the SIGKILL");
    let state_files = || hosts_state_files(&hosts);
    assert_eq!(state_files().len(), 1, "{:?}", state_files());
    // The run's SSH ControlMasters outlive it too (by their sockets, recorded in the file).
    let state = json(&state_files()[0]);
    let sockets: Vec<PathBuf> = state["ssh_masters"]
        .as_object()
        .expect("the run's SSH masters")
        .values()
        .map(|v| PathBuf::from(v.as_str().expect("a path")))
        .collect();
    assert_eq!(sockets.len(), 3, "{state}");
    let master_pids = |socket: &Path| -> Vec<String> {
        let out = Command::new("pgrep")
            .args(["-f", &format!("ssh.*{}", socket.display())])
            .output()
            .expect("pgrep runs");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    for socket in &sockets {
        assert!(socket.exists(), "{}", socket.display());
        assert!(
            !master_pids(socket).is_empty(),
            "no master behind {}",
            socket.display()
        );
    }

    // From the machine's own namespace: clean enters the one the run reached its hosts from
    // (SSH from here to a lab address would be dropped by the lab's guard, and counted).
    let out = common::faultline()
        .arg("clean")
        .env("CI", "1")
        .output()
        .expect("clean runs");
    assert_exits(&out, 0);
    assert_eq!(
        hosts
            .runtime
            .block_on(hosts.lab().guard_packets())
            .expect("guard"),
        Some(0)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for node in hosts.lab().nodes() {
        assert!(
            stdout.contains(&format!("{node}: stopped its server, fetched its log")),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains("deleted nft table inet faultline"),
        "{stdout}"
    );
    assert!(stdout.contains("removed state file"), "{stdout}");
    assert!(
        stdout.contains("n1: closed the dead run's SSH connection"),
        "{stdout}"
    );

    // Nothing left: no node, no rule, no files on the hosts, no state file; the run's
    // directory has the node logs and a history the checker reads.
    for pid in &pids {
        assert!(
            !node_still_runs(*pid, &hosts.remote_dir()),
            "{pid} still runs"
        );
    }
    assert_eq!(partitioned(), 0);
    for socket in &sockets {
        assert!(!socket.exists(), "{}", socket.display());
        assert_eq!(
            master_pids(socket),
            Vec::<String>::new(),
            "{}",
            socket.display()
        );
    }
    assert_hosts_wiped(&hosts);
    assert!(state_files().is_empty(), "{:?}", state_files());
    for node in hosts.lab().nodes() {
        assert!(
            !fetched_log(&dir, &node).is_empty(),
            "{node}'s log is empty"
        );
    }
    assert_history_checks_valid(&dir);

    // Once is enough: a second clean has nothing of this run's to do.
    let again = hosts
        .faultline_in_ctl()
        .arg("clean")
        .output()
        .expect("clean runs");
    assert_exits(&again, 0);
    assert!(
        !String::from_utf8_lossy(&again.stdout).contains("stopped its server"),
        "{}",
        describe(&again)
    );
}
