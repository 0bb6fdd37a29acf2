//! Clusters on remote hosts over SSH (Jepsen's model): one node per host, started, stopped
//! and wiped by shell commands through the nemesis's [`Remote`] connection, and reached by the
//! same clients as in the lab, at the hosts' addresses.
//!
//! On every host, this run's files live under `<remote dir>/<run id>/<node>/`, so two runs
//! (or two nodes sharing one machine) never share a file:
//!
//! | file | what |
//! |---|---|
//! | `data/` | the node's data directory (also what its PID check looks for on its command line) |
//! | `node.log` | the server's stdout and stderr, appended across restarts; fetched into the run directory's `nodes/<node>.log` |
//! | `node.pid` | the live server's PID, rewritten by every start (kill, pause and stop signal it) |
//! | `pids` | every PID the node had, one a line; fetched into the run directory's `pids/<node>.pid` |
//! | `clock.faketime` | the libfaketime offset, for servers that read time through libc, when the host has libfaketime |
//!
//! A node is started detached (`nohup setsid sh -c …`) by a command that writes its PID file
//! and then `exec`s the server, so the PID in the file is the server's. Stop is SIGTERM, then
//! SIGKILL after a grace period; wipe removes the node's directory after its log is fetched.
//! [`clean_up_abandoned`] does the same for a run that died without stopping its nodes.
//!
//! Never: signal a process by name (PID files only), or remove anything outside this run's
//! directory on a host.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use faultline_nemesis::{FaultKind, HealReport, ProcessMatch, Remote, RemoteNode, RemoteOptions};

use crate::error::Error;

/// One host that runs one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// The node's name in the cluster and the history (`n1`).
    pub name: String,
    /// What `ssh` connects to: `host`, `user@host`, or a `~/.ssh/config` alias.
    pub destination: String,
    pub port: Option<u16>,
    /// The address the node listens on, which its peers and the clients use.
    pub address: Ipv4Addr,
}

/// Where and how a cluster runs on remote hosts.
#[derive(Clone, Debug)]
pub struct HostsSpec {
    pub hosts: Vec<Host>,
    /// How to reach them (key, known_hosts, ssh config).
    pub ssh: RemoteOptions,
    /// The working directory on every host (absolute); this run's files go under
    /// `<remote_dir>/<run_id>/`.
    pub remote_dir: String,
    /// Unique per run, so runs against the same hosts never share a file.
    pub run_id: String,
    /// The server binary on the hosts; `None`: the target's program name on the host's PATH.
    pub binary: Option<String>,
    /// Where each node's log is fetched to, as `<node>.log` (the run directory's `nodes/`).
    pub log_dir: PathBuf,
    /// Where each node's PIDs are fetched to, as `<node>.pid` (the run directory's `pids/`).
    pub pid_dir: PathBuf,
}

impl HostsSpec {
    fn run_dir(&self) -> String {
        format!("{}/{}", self.remote_dir.trim_end_matches('/'), self.run_id)
    }

    fn node_dir(&self, node: &str) -> String {
        format!("{}/{node}", self.run_dir())
    }

    fn data_dir(&self, node: &str) -> String {
        format!("{}/data", self.node_dir(node))
    }

    fn faketime_file(&self, node: &str) -> String {
        format!("{}/clock.faketime", self.node_dir(node))
    }

    /// How the nemesis finds `host`'s server: by the PID file in its node directory, checked
    /// against its data directory on the command line. No start command, no faketime file.
    fn remote_node(&self, host: &Host) -> RemoteNode {
        RemoteNode {
            name: host.name.clone(),
            destination: host.destination.clone(),
            port: host.port,
            ip: host.address,
            process: ProcessMatch::PidFile {
                path: format!("{}/node.pid", self.node_dir(&host.name)),
                cmdline: Some(self.data_dir(&host.name)),
            },
            start: String::new(),
            faketime_file: None,
        }
    }
}

/// Opens one SSH connection per host (in the current network namespace: run it where the
/// clients run). The nodes are described by their PID files; their start commands are filled
/// in when a cluster starts on them.
pub async fn connect(spec: &HostsSpec) -> Result<Remote, Error> {
    let nodes = spec
        .hosts
        .iter()
        .map(|host| spec.remote_node(host))
        .collect();
    Ok(Remote::connect(nodes, &spec.ssh).await?)
}

/// Undoes what a run that died (SIGKILL, a crash) left on the hosts of the cluster it had
/// started there as `spec` places it: the faults of `kinds` ([`Remote::heal_abandoned`]),
/// then every node stopped, its log and PIDs fetched into the run directory, and the run's
/// directories on the hosts removed. Connects from the current network namespace.
pub async fn clean_up_abandoned(
    spec: &HostsSpec,
    kinds: &[FaultKind],
) -> Result<HealReport, Error> {
    let mut remote = connect(spec).await?;
    for host in &spec.hosts {
        remote.describe_node(RemoteNode {
            faketime_file: Some(spec.faketime_file(&host.name)),
            ..spec.remote_node(host)
        })?;
    }
    let mut report = remote.heal_abandoned(kinds, false).await?;
    let mut cluster = HostNodes::placed(spec);
    match cluster.stop(&remote, ABANDONED_STOP_GRACE).await {
        Ok(running) => {
            for node in running {
                report
                    .undone
                    .push(format!("{node}: stopped its server, fetched its log"));
            }
            report.undone.push(format!(
                "removed {} on {}",
                spec.run_dir(),
                if spec.hosts.len() == 1 {
                    "its host".to_string()
                } else {
                    format!("all {} hosts", spec.hosts.len())
                }
            ));
        }
        Err(e) => report.failed.push(format!(
            "stopping the nodes or removing {}: {e}",
            spec.run_dir()
        )),
    }
    remote.close().await?;
    Ok(report)
}

/// Grace between SIGTERM and SIGKILL when stopping an abandoned run's nodes.
const ABANDONED_STOP_GRACE: Duration = Duration::from_secs(5);

/// `'text'`, safe inside `sh -c`.
pub(crate) fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// What a target tells [`HostNodes::start`] (and [`crate::nodes::start_in_lab`]) about its
/// server.
pub(crate) struct Launch {
    /// The program's name on the hosts' PATH when no binary is given (`etcd`).
    pub program: &'static str,
    /// How to install it on a host that lacks it.
    pub install_hint: &'static str,
    /// Arguments that make it print its version (`--version`).
    pub version_args: &'static [&'static str],
    /// Start under libfaketime (on a host, where it has it): servers that read time through
    /// libc.
    pub faketime: bool,
    /// Make the data directory before the start (etcd makes its own).
    pub make_data_dir: bool,
    pub env: Vec<(String, String)>,
}

/// One node's files on its host.
pub(crate) struct HostNode {
    pub name: String,
    pub address: Ipv4Addr,
    /// `<remote dir>/<run id>/<node>`.
    pub dir: String,
    pub data: String,
    /// The libfaketime file, if the node runs under libfaketime.
    pub faketime_file: Option<String>,
}

impl HostNode {
    /// `host`'s node as `spec` places its files; with a faketime file when it runs (or may
    /// have run) under libfaketime.
    fn placed(spec: &HostsSpec, host: &Host, faketime: bool) -> HostNode {
        HostNode {
            name: host.name.clone(),
            address: host.address,
            dir: spec.node_dir(&host.name),
            data: spec.data_dir(&host.name),
            faketime_file: faketime.then(|| spec.faketime_file(&host.name)),
        }
    }

    fn log(&self) -> String {
        format!("{}/node.log", self.dir)
    }
}

/// The nodes of one cluster on remote hosts. Stop with [`HostNodes::stop`] on every path;
/// dropping it unstopped says so loudly, since the nodes then keep running on their hosts.
pub(crate) struct HostNodes {
    nodes: Vec<HostNode>,
    run_dir: String,
    log_dir: PathBuf,
    pid_dir: PathBuf,
    version: String,
    stopped: bool,
}

/// libfaketime where Debian and Ubuntu put it (any architecture), or nothing.
const FIND_LIBFAKETIME: &str = "for f in /usr/lib/*/faketime/libfaketimeMT.so.1 /usr/lib/faketime/libfaketimeMT.so.1 \
     /usr/local/lib/faketime/libfaketimeMT.so.1; do [ -f \"$f\" ] && { echo \"$f\"; exit 0; }; done; exit 0";

impl HostNodes {
    /// Checks the server binary on every host, makes each node's directory, writes `files`
    /// (name in the node directory, content) there, and starts every node with `args` (given
    /// the node's index and files). A start that fails half-way stops what it started, fetches
    /// the logs and removes the run's directories before returning the error.
    pub(crate) async fn start(
        spec: &HostsSpec,
        remote: &mut Remote,
        launch: Launch,
        files: impl Fn(&HostNode) -> Vec<(&'static str, String)>,
        args: impl Fn(usize, &HostNode) -> Vec<String>,
    ) -> Result<HostNodes, Error> {
        let binary = spec.binary.as_deref().unwrap_or(launch.program);
        let mut found_binary = None;
        let mut nodes = Vec::new();
        let mut libraries = Vec::new();
        for host in &spec.hosts {
            let (program, library) =
                probe_host(remote, host, binary, launch.install_hint, launch.faketime).await?;
            found_binary.get_or_insert(program);
            if launch.faketime && library.is_none() {
                tracing::warn!(
                    node = %host.name,
                    host = %host.destination,
                    "no libfaketime on the host (apt-get install libfaketime): clock faults will skip this node"
                );
            }
            nodes.push(HostNode::placed(spec, host, library.is_some()));
            libraries.push(library);
        }
        let program = found_binary.unwrap_or_else(|| binary.to_string());
        let version = match nodes.first() {
            Some(first) => {
                let script = format!(
                    "{} {} 2>&1 | head -n 1",
                    shell_quote(&program),
                    launch.version_args.join(" ")
                );
                match remote.exec(&first.name, &script, None).await {
                    Ok(line) if !line.trim().is_empty() => line.trim().to_string(),
                    _ => format!("unknown ({program})"),
                }
            }
            None => format!("unknown ({program})"),
        };
        // Every node from here on, so a start that fails half-way cleans up all of them.
        let cluster = HostNodes {
            nodes,
            run_dir: spec.run_dir(),
            log_dir: spec.log_dir.clone(),
            pid_dir: spec.pid_dir.clone(),
            version,
            stopped: false,
        };
        let prepared: Result<(), Error> = async {
            for (i, (node, library)) in cluster.nodes.iter().zip(&libraries).enumerate() {
                let host = &spec.hosts[i];
                let mut setup = format!("mkdir -p {}", shell_quote(&node.dir));
                if launch.make_data_dir {
                    setup.push_str(&format!(" {}", shell_quote(&node.data)));
                }
                if let Some(clock) = &node.faketime_file {
                    setup.push_str(&format!(" && printf '+0\\n' > {}", shell_quote(clock)));
                }
                remote.exec(&node.name, &setup, None).await?;
                for (name, content) in files(node) {
                    let path = format!("{}/{name}", node.dir);
                    remote
                        .exec(
                            &node.name,
                            &format!("cat > {}", shell_quote(&path)),
                            Some(&content),
                        )
                        .await?;
                }
                let mut env = launch.env.clone();
                if let (Some(library), Some(clock)) = (library, &node.faketime_file) {
                    env.push(("LD_PRELOAD".into(), library.clone()));
                    env.push(("FAKETIME_TIMESTAMP_FILE".into(), clock.clone()));
                    env.push(("FAKETIME_NO_CACHE".into(), "1".into()));
                }
                let start = start_command(node, &program, &args(i, node), &env);
                remote.describe_node(RemoteNode {
                    name: node.name.clone(),
                    destination: host.destination.clone(),
                    port: host.port,
                    ip: host.address,
                    process: ProcessMatch::PidFile {
                        path: format!("{}/node.pid", node.dir),
                        cmdline: Some(node.data.clone()),
                    },
                    start,
                    faketime_file: node.faketime_file.clone(),
                })?;
            }
            Ok(remote.start_nodes(&cluster.names()).await?)
        }
        .await;
        let mut cluster = cluster;
        if let Err(error) = prepared {
            if let Err(e) = cluster.stop(remote, Duration::from_secs(1)).await {
                tracing::warn!("cleaning up the hosts after a failed start: {e}");
            }
            return Err(error);
        }
        Ok(cluster)
    }

    /// The nodes `spec` places on its hosts, as a run that started them would know them
    /// (version unknown): what [`clean_up_abandoned`] stops and removes.
    fn placed(spec: &HostsSpec) -> HostNodes {
        HostNodes {
            nodes: spec
                .hosts
                .iter()
                .map(|host| HostNode::placed(spec, host, true))
                .collect(),
            run_dir: spec.run_dir(),
            log_dir: spec.log_dir.clone(),
            pid_dir: spec.pid_dir.clone(),
            version: String::new(),
            stopped: false,
        }
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// The server's version line, as the first host's binary prints it.
    pub(crate) fn version(&self) -> String {
        self.version.clone()
    }

    /// Stops every node (SIGTERM, SIGKILL after `grace`), fetches each node's log and PIDs
    /// into the run directory, and removes the run's directories on the hosts. Fetching and
    /// removing run for every node even when stopping failed; the first error is returned.
    /// Returns the nodes whose server was running.
    pub(crate) async fn stop(
        &mut self,
        remote: &Remote,
        grace: Duration,
    ) -> Result<Vec<String>, Error> {
        self.stopped = true;
        let (running, mut first_error) = match remote.stop_nodes(&self.names(), grace).await {
            Ok(running) => (running, None),
            Err(e) => (Vec::new(), Some(Error::from(e))),
        };
        for node in &self.nodes {
            let fetched = fetch(
                remote,
                node,
                &node.log(),
                &self.log_dir.join(format!("{}.log", node.name)),
            )
            .await
            .and(
                fetch(
                    remote,
                    node,
                    &format!("{}/pids", node.dir),
                    &self.pid_dir.join(format!("{}.pid", node.name)),
                )
                .await,
            );
            if let Err(e) = fetched {
                tracing::warn!(node = %node.name, "fetching the node's files: {e}");
            }
            let wipe = format!(
                "rm -rf -- {}; rmdir -- {} 2>/dev/null; true",
                shell_quote(&node.dir),
                shell_quote(&self.run_dir)
            );
            if let Err(e) = remote.exec(&node.name, &wipe, None).await {
                tracing::warn!(node = %node.name, "removing {}: {e}", node.dir);
                first_error.get_or_insert(e.into());
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(running),
        }
    }
}

impl Drop for HostNodes {
    fn drop(&mut self) {
        if !self.stopped {
            tracing::error!(
                "the cluster on {} was never stopped: its nodes may still run; stop them and remove {} on each host",
                self.names().join(", "),
                self.run_dir
            );
        }
    }
}

/// One round trip per host: the binary's absolute path there (or what to do about it), and
/// with `faketime` the host's libfaketime, if it has one.
async fn probe_host(
    remote: &Remote,
    host: &Host,
    binary: &str,
    install_hint: &str,
    faketime: bool,
) -> Result<(String, Option<String>), Error> {
    let find = if binary.contains('/') {
        format!(
            "if [ -f {b} ] && [ -x {b} ]; then echo {b}; else exit 4; fi",
            b = shell_quote(binary)
        )
    } else {
        format!("command -v -- {} || exit 4", shell_quote(binary))
    };
    let script = if faketime {
        format!("{find}; {FIND_LIBFAKETIME}")
    } else {
        find
    };
    match remote.exec(&host.name, &script, None).await {
        Ok(out) => {
            let mut lines = out.lines().map(str::trim).filter(|l| !l.is_empty());
            match lines.next() {
                Some(program) => Ok((program.to_string(), lines.next().map(str::to_string))),
                None => Err(missing(host, binary, install_hint)),
            }
        }
        Err(faultline_nemesis::Error::Command { status, .. })
            if status.ends_with("exit status: 4") =>
        {
            Err(missing(host, binary, install_hint))
        }
        Err(e) => Err(e.into()),
    }
}

fn missing(host: &Host, binary: &str, install_hint: &str) -> Error {
    Error::MissingBinary {
        name: format!("{binary}` on `{}", host.destination),
        hint: format!(
            "{install_hint} on that host, or give its path on the hosts with --remote-bin (remote-bin in --config)"
        ),
    }
}

/// The command a host runs to start `node`: record its PID (the shell's, which `exec` hands
/// to the server), then exec the server with its log appended.
fn start_command(
    node: &HostNode,
    program: &str,
    args: &[String],
    env: &[(String, String)],
) -> String {
    let pid = format!("{}/node.pid", node.dir);
    let mut command = format!(
        "echo $$ > {tmp} && mv -f {tmp} {pid} && echo $$ >> {pids} && exec env",
        tmp = shell_quote(&format!("{pid}.tmp")),
        pid = shell_quote(&pid),
        pids = shell_quote(&format!("{}/pids", node.dir)),
    );
    for (key, value) in env {
        command.push_str(&format!(" {}", shell_quote(&format!("{key}={value}"))));
    }
    command.push_str(&format!(" {}", shell_quote(program)));
    for arg in args {
        command.push_str(&format!(" {}", shell_quote(arg)));
    }
    command.push_str(&format!(" >> {} 2>&1", shell_quote(&node.log())));
    command
}

async fn fetch(remote: &Remote, node: &HostNode, from: &str, to: &Path) -> Result<(), Error> {
    if let Some(dir) = to.parent() {
        crate::nodes::create_dir(dir)?;
    }
    Ok(remote.fetch_file(&node.name, from, to).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_command_records_the_pid_and_execs_the_server_with_its_log() {
        let node = HostNode {
            name: "n1".into(),
            address: Ipv4Addr::new(10, 0, 0, 1),
            dir: "/var/tmp/fl/run 1/n1".into(),
            data: "/var/tmp/fl/run 1/n1/data".into(),
            faketime_file: None,
        };
        let command = start_command(
            &node,
            "/usr/bin/etcd",
            &["--data-dir=/var/tmp/fl/run 1/n1/data".into()],
            &[("RUST_LOG".into(), "info".into())],
        );
        assert_eq!(
            command,
            "echo $$ > '/var/tmp/fl/run 1/n1/node.pid.tmp' && mv -f '/var/tmp/fl/run 1/n1/node.pid.tmp' \
             '/var/tmp/fl/run 1/n1/node.pid' && echo $$ >> '/var/tmp/fl/run 1/n1/pids' && exec env 'RUST_LOG=info' \
             '/usr/bin/etcd' '--data-dir=/var/tmp/fl/run 1/n1/data' >> '/var/tmp/fl/run 1/n1/node.log' 2>&1"
        );
    }

    #[test]
    fn the_start_command_runs_in_sh_and_leaves_the_servers_pid() {
        // The same command in the local sh, with `sleep` as the server: the PID file names
        // the process that runs (exec kept the shell's PID), the log receives its output.
        let dir = tempfile::tempdir().expect("tempdir");
        let node = HostNode {
            name: "n1".into(),
            address: Ipv4Addr::new(10, 0, 0, 1),
            dir: dir.path().display().to_string(),
            data: dir.path().join("data").display().to_string(),
            faketime_file: None,
        };
        let command = start_command(
            &node,
            "sh",
            &["-c".into(), "echo up; sleep 0.3".into()],
            &[],
        );
        let mut child = std::process::Command::new("sh")
            .args(["-c", &command])
            .spawn()
            .expect("sh runs");
        let pid = child.id();
        let status = child.wait().expect("waits");
        assert!(status.success());
        let file = std::fs::read_to_string(dir.path().join("node.pid")).expect("pid file");
        assert_eq!(file.trim(), pid.to_string());
        let all = std::fs::read_to_string(dir.path().join("pids")).expect("pids");
        assert_eq!(all.trim(), pid.to_string());
        let log = std::fs::read_to_string(dir.path().join("node.log")).expect("log");
        assert_eq!(log, "up\n");
    }
}
