//! The same faults on real hosts over SSH (Jepsen's model): one ControlMaster connection per
//! host (the `openssh` crate drives the system `ssh`, so users' keys, config and known_hosts
//! apply), and per fault the commands a person would type on that host.
//!
//! | kind | on the host |
//! |---|---|
//! | partition | `nft -f -`: table `inet faultline` with an input chain dropping packets from the peers this host cannot hear (Jepsen's node-local drop); heal deletes the table |
//! | kill / restart | `kill -KILL <pid>` from the node's PID file, after checking `/proc/<pid>/cmdline` still names the node (or `pkill -KILL -f <pattern>`, the fallback); restart runs the node's start command detached (`setsid`), which rewrites the PID file |
//! | pause / resume | `kill -STOP` / `kill -CONT <pid>` the same way (fallback: `pkill -STOP` / `pkill -CONT -f <pattern>`) |
//! | clock | the node's libfaketime file on the host: bump/reset written over SSH; strobe and skew by a bounded loop running on the host |
//! | loss | table `inet faultline_loss`: `numgen random mod 100 < N drop` for packets from and to the peers |
//! | bandwidth / delay | `tc qdisc replace dev <if> root tbf …` / `netem …` on the interfaces that route to the peers (egress; SSH shares them) |
//!
//! What is installed is remembered by this connection, and undone by its stops and heal; a
//! run that died (SIGKILL) takes that memory with it, so [`Remote::heal_abandoned`] undoes
//! every trace a fault kind can leave on a host, found by looking, not by remembering.
//!
//! Peer traffic only is touched: rules match the other nodes' addresses, so the SSH
//! connection that must undo them is never cut. Not done over SSH (refused with a message):
//! changing a host's real system clock.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;

use crate::error::{Error, Result};
use crate::fault::{
    Action, ClockFault, Fault, FaultKind, describe_clock, faketime_spec, heal_in_order, join,
    nothing_to_stop, or_skip, plan_clock, plan_partition, select_nodes, sorted, to_undo,
};
use crate::lab::lock;
use crate::rules;

/// How long a started node may take to write its PID file.
const START_WAIT: Duration = Duration::from_secs(10);

/// How long the PID a start wrote must stay alive before the node counts as started. The
/// start shell writes the PID and then execs the server, so one look can catch a server that
/// exits at once (a wrong binary or flag) while it is still alive.
const START_SETTLE: Duration = Duration::from_millis(500);

/// Upper bound on a host-side clock loop, in case no stop ever comes.
const CLOCK_LOOP_LIMIT_MS: u64 = 3_600_000;

const MASTER_IDLE: std::num::NonZeroUsize = match std::num::NonZeroUsize::new(3600) {
    Some(n) => n,
    None => panic!("3600 is not zero"),
};

/// How kill, pause, resume and stop find a node's server process on its host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProcessMatch {
    /// The PID in the first word of this file on the host (the node's start command writes
    /// it). Before any signal the process must be alive, not a zombie, and, if `cmdline` is
    /// given, its `/proc/PID/cmdline` (arguments joined by spaces) must contain that text
    /// (such as the node's data directory), so a recycled PID is never signalled.
    PidFile {
        path: String,
        cmdline: Option<String>,
    },
    /// A `pgrep -f` regular expression matching only this node's server process (e.g.
    /// `etcd --name n1`): the fallback for servers that write no PID file. Everything it
    /// matches is signalled.
    Pattern(String),
}

/// One node on a real host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteNode {
    /// The node's name in the cluster and the history (`n1`).
    pub name: String,
    /// What `ssh` connects to: `host`, `user@host`, or a `~/.ssh/config` alias.
    pub destination: String,
    pub port: Option<u16>,
    /// The address peers use to reach this node; partition and loss rules match it.
    pub ip: Ipv4Addr,
    /// How its server process is found for kill, pause, resume and stop.
    pub process: ProcessMatch,
    /// A shell command that runs the node's server in the foreground (ideally with `exec`,
    /// after writing the PID file); [`Remote::start_node`] and restarts run it detached. Empty
    /// when the node cannot be (re)started by Faultline.
    pub start: String,
    /// The libfaketime timestamp file the node's server reads, if it runs under libfaketime.
    pub faketime_file: Option<String>,
}

/// How to reach the hosts.
#[derive(Debug, Clone, Default)]
pub struct RemoteOptions {
    /// Private key (`ssh -i`); else ssh's defaults and agent.
    pub keyfile: Option<PathBuf>,
    /// known_hosts file to check (and, with `accept_new_hosts`, extend).
    pub known_hosts: Option<PathBuf>,
    /// Accept and remember hosts not yet known (`StrictHostKeyChecking=accept-new`).
    pub accept_new_hosts: bool,
    /// ssh config file instead of `~/.ssh/config` (`ssh -F`).
    pub ssh_config: Option<PathBuf>,
    /// Where the ControlMaster sockets live (default: the system temp dir).
    pub control_dir: Option<PathBuf>,
    pub connect_timeout: Option<Duration>,
}

/// What [`Remote::heal_abandoned`] undid, and what it could not, one line each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealReport {
    pub undone: Vec<String>,
    pub failed: Vec<String>,
}

#[derive(Default)]
struct RemoteFaults {
    partitioned: BTreeSet<String>,
    partition: Option<String>,
    killed: BTreeSet<String>,
    paused: BTreeSet<String>,
    clocks: BTreeMap<String, i64>,
    /// Nodes with a strobe/skew loop running on their host.
    clock_loops: BTreeSet<String>,
    lossy: BTreeSet<String>,
    /// node -> interfaces with our root qdisc, per kind (bandwidth, delay).
    shaped: BTreeMap<(FaultKind, String), Vec<String>>,
}

/// Connected remote hosts: the fault target for clusters on real machines.
pub struct Remote {
    nodes: Vec<RemoteNode>,
    sessions: BTreeMap<String, openssh::Session>,
    faults: Mutex<RemoteFaults>,
    /// Unique per connection: names this run's helper processes on the hosts, so two runs
    /// against the same hosts never signal each other's.
    token: String,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("nodes", &self.nodes)
            .finish()
    }
}

/// `[e]tcd --name n1` for `etcd --name n1`: matches the same processes, but not the shell
/// that runs pkill (whose command line contains the bracketed text, which does not match).
fn self_excluding(pattern: &str) -> String {
    let mut chars = pattern.chars();
    match chars.next() {
        Some(first) if first.is_ascii_alphanumeric() => format!("[{first}]{}", chars.as_str()),
        _ => pattern.to_string(),
    }
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Shell that defines `alive PID` (a process that exists and is not a zombie) and sets
/// `$pid` from the first word of the PID file at `path`, exiting 1 unless that process is
/// alive and (with `cmdline`) its `/proc/PID/cmdline` contains `cmdline`. The caller's
/// command follows it.
fn pid_probe(path: &str, cmdline: Option<&str>) -> String {
    pid_probe_at(&shell_quote(path), cmdline)
}

/// [`pid_probe`] for a PID file named by a shell word (`"$p"`), unquoted here.
fn pid_probe_at(path_word: &str, cmdline: Option<&str>) -> String {
    format!(
        "alive() {{ [ -r /proc/$1/stat ] && [ \"$(sed 's/^.*) //' /proc/$1/stat | cut -c1)\" != Z ]; }}; \
         f={path_word}; m={marker}; [ -r \"$f\" ] || exit 1; read -r pid _ < \"$f\" || exit 1; \
         case \"$pid\" in ''|*[!0-9]*) exit 1;; esac; alive \"$pid\" || exit 1; \
         [ -z \"$m\" ] || tr '\\0' ' ' < /proc/$pid/cmdline | grep -qF -- \"$m\" || exit 1;",
        marker = shell_quote(cmdline.unwrap_or("")),
    )
}

/// Host scripts exit 1 when no live process matched (pkill and pgrep do too).
fn not_found_is_false(result: Result<String>) -> Result<bool> {
    match result {
        Ok(_) => Ok(true),
        Err(Error::Command { status, .. }) if status.ends_with("exit status: 1") => Ok(false),
        Err(e) => Err(e),
    }
}

impl Remote {
    /// Opens one ControlMaster connection per node (in parallel would be nicer; hosts are
    /// few and the master stays up, so in order keeps errors simple).
    pub async fn connect(nodes: Vec<RemoteNode>, options: &RemoteOptions) -> Result<Remote> {
        let mut sessions = BTreeMap::new();
        for node in &nodes {
            let mut builder = openssh::SessionBuilder::default();
            builder.known_hosts_check(if options.accept_new_hosts {
                openssh::KnownHosts::Add
            } else {
                openssh::KnownHosts::Strict
            });
            if let Some(key) = &options.keyfile {
                builder.keyfile(key);
            }
            if let Some(file) = &options.known_hosts {
                builder.user_known_hosts_file(file);
            }
            if let Some(config) = &options.ssh_config {
                builder.config_file(config);
            }
            builder.control_directory(
                options
                    .control_dir
                    .clone()
                    .unwrap_or_else(std::env::temp_dir),
            );
            builder.connect_timeout(options.connect_timeout.unwrap_or(Duration::from_secs(10)));
            // A master left behind by a killed run exits by itself after an hour idle (the
            // default is to persist forever); a live run's nemesis interval is far shorter.
            builder.control_persist(openssh::ControlPersist::IdleFor(MASTER_IDLE));
            if let Some(port) = node.port {
                builder.port(port);
            }
            let session = builder
                .connect(&node.destination)
                .await
                .map_err(|e| Error::Ssh {
                    host: node.destination.clone(),
                    why: e.to_string(),
                })?;
            sessions.insert(node.name.clone(), session);
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        Ok(Remote {
            nodes,
            sessions,
            faults: Mutex::new(RemoteFaults::default()),
            token: format!("{:x}{nanos:08x}", std::process::id()),
        })
    }

    pub fn nodes(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// Each node's ControlMaster socket: where [`close_abandoned_master`] finds the connection
    /// if this process dies without closing it.
    pub fn control_sockets(&self) -> BTreeMap<String, PathBuf> {
        self.sessions
            .iter()
            .map(|(node, session)| (node.clone(), session.control_socket().to_path_buf()))
            .collect()
    }

    fn node(&self, name: &str) -> Result<&RemoteNode> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| Error::UnknownNode(name.to_string()))
    }

    /// Runs `sh -c script` on the node's host (stdin fed if given); its stdout on success.
    pub async fn exec(&self, node: &str, script: &str, stdin: Option<&str>) -> Result<String> {
        use tokio::io::AsyncWriteExt;
        let host = &self.node(node)?.destination;
        let session = self
            .sessions
            .get(node)
            .ok_or_else(|| Error::UnknownNode(node.to_string()))?;
        let ssh_error = |e: openssh::Error| Error::Ssh {
            host: host.clone(),
            why: e.to_string(),
        };
        let started = std::time::Instant::now();
        let mut command = session.command("sh");
        command
            .arg("-c")
            .arg(script)
            .stdout(openssh::Stdio::piped())
            .stderr(openssh::Stdio::piped())
            .stdin(if stdin.is_some() {
                openssh::Stdio::piped()
            } else {
                openssh::Stdio::null()
            });
        let mut child = command.spawn().await.map_err(ssh_error)?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin().take()) {
            pipe.write_all(text.as_bytes())
                .await
                .map_err(|e| Error::io("writing to ssh", host, e))?;
            drop(pipe);
        }
        let output = child.wait_with_output().await.map_err(ssh_error)?;
        tracing::trace!(node, took = ?started.elapsed(), script, "ssh exec");
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(Error::Command {
                command: format!("ssh {host} sh -c {}", shell_quote(script)),
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            })
        }
    }

    /// Signals the node's server; Ok(false) when no live process matched. A SIGKILL waits
    /// (bounded, 5 s) until the process is gone, so a restart cannot race with it.
    async fn signal(&self, node: &str, signal: &str) -> Result<bool> {
        let script = match &self.node(node)?.process {
            ProcessMatch::PidFile { path, cmdline } => {
                let mut script = format!(
                    "{} kill -{signal} \"$pid\"",
                    pid_probe(path, cmdline.as_deref())
                );
                if signal == "KILL" {
                    script.push_str(
                        "; i=0; while alive \"$pid\" && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; \
                         ! alive \"$pid\" || exit 3",
                    );
                }
                script
            }
            ProcessMatch::Pattern(pattern) => {
                let pattern = shell_quote(&self_excluding(pattern));
                // pkill exits 1 when nothing matched: report that instead of failing.
                let mut script = format!("pkill -{signal} -f -- {pattern}");
                if signal == "KILL" {
                    script.push_str(&format!(
                        " && for i in $(seq 50); do pgrep -f -- {pattern} >/dev/null || exit 0; sleep 0.1; done && exit 3"
                    ));
                }
                script
            }
        };
        not_found_is_false(self.exec(node, &script, None).await)
    }

    /// The nodes whose server is not alive on its host though no fault killed it: why a
    /// cluster that should be up is not. A node whose host does not answer is not counted.
    pub async fn exited_nodes(&self) -> Vec<String> {
        let killed = lock(&self.faults).killed.clone();
        let mut exited = Vec::new();
        for node in self.nodes() {
            if !killed.contains(&node) && matches!(self.node_running(&node).await, Ok(false)) {
                exited.push(node);
            }
        }
        exited
    }

    /// Whether the node's server process is alive on its host (a paused one is).
    pub async fn node_running(&self, node: &str) -> Result<bool> {
        let script = match &self.node(node)?.process {
            ProcessMatch::PidFile { path, cmdline } => {
                format!("{} true", pid_probe(path, cmdline.as_deref()))
            }
            ProcessMatch::Pattern(pattern) => {
                format!(
                    "pgrep -f -- {} >/dev/null",
                    shell_quote(&self_excluding(pattern))
                )
            }
        };
        not_found_is_false(self.exec(node, &script, None).await)
    }

    /// The PID of the node's server process, from its PID file; None when it is not running
    /// or the node has no PID file.
    pub async fn node_pid(&self, node: &str) -> Result<Option<u32>> {
        let ProcessMatch::PidFile { path, cmdline } = &self.node(node)?.process else {
            return Ok(None);
        };
        let script = format!("{} echo \"$pid\"", pid_probe(path, cmdline.as_deref()));
        match self.exec(node, &script, None).await {
            Ok(out) => Ok(out.trim().parse().ok()),
            Err(Error::Command { status, .. }) if status.ends_with("exit status: 1") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Starts the node's server: runs its start command detached from the SSH session. For
    /// a node with a PID file, waits (bounded, 10 s) until the file names a process that
    /// stays alive for half a second.
    pub async fn start_node(&self, node: &str) -> Result<()> {
        self.start_nodes(&[node.to_string()]).await
    }

    /// [`Remote::start_node`] for many nodes: every start command runs first, then one shared
    /// wait for their PID files.
    pub async fn start_nodes(&self, nodes: &[String]) -> Result<()> {
        for node in nodes {
            let description = self.node(node)?;
            if description.start.trim().is_empty() {
                return Err(Error::Node {
                    node: node.to_string(),
                    why: format!(
                        "no start command is known for it on {}, so it cannot be (re)started",
                        description.destination
                    ),
                });
            }
            // Detached from the SSH session so it outlives it: a new session (setsid), and
            // SIGHUP ignored (nohup) in case the session ends before setsid has run.
            let script = format!(
                "nohup setsid sh -c {} </dev/null >/dev/null 2>&1 &",
                shell_quote(&description.start)
            );
            self.exec(node, &script, None).await?;
        }
        // Each waiting node with the PID its file named and when that PID was first seen.
        let mut waiting: BTreeMap<String, Option<(u32, std::time::Instant)>> = BTreeMap::new();
        for node in nodes {
            if matches!(self.node(node)?.process, ProcessMatch::PidFile { .. }) {
                waiting.insert(node.clone(), None);
            }
        }
        let deadline = std::time::Instant::now() + START_WAIT;
        while !waiting.is_empty() && std::time::Instant::now() < deadline {
            let mut still = BTreeMap::new();
            for (node, seen) in waiting {
                let now = std::time::Instant::now();
                let seen = match (self.node_pid(&node).await?, seen) {
                    (Some(pid), Some((before, since))) if pid == before => {
                        if now - since >= START_SETTLE {
                            continue;
                        }
                        Some((pid, since))
                    }
                    (Some(pid), _) => Some((pid, now)),
                    (None, _) => None,
                };
                still.insert(node, seen);
            }
            waiting = still;
            if !waiting.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        match waiting.keys().next() {
            None => Ok(()),
            Some(node) => Err(Error::Node {
                node: node.clone(),
                why: format!(
                    "started on {} but no live process in its PID file that stayed up for \
                     {START_SETTLE:?} within {START_WAIT:?}: see the node's log",
                    self.node(node)?.destination
                ),
            }),
        }
    }

    /// Stops the nodes' servers at once: SIGTERM (and SIGCONT, in case one is paused) to
    /// each, one shared wait of `grace`, then SIGKILL for the rest, so a cluster stops in one
    /// hand-over time, not one per node. Returns the nodes that were running.
    /// Stopped nodes are no longer under any fault: a later heal neither restarts nor
    /// resumes them, and their clock loops are ended first.
    pub async fn stop_nodes(&self, nodes: &[String], grace: Duration) -> Result<Vec<String>> {
        {
            let mut faults = lock(&self.faults);
            for node in nodes {
                faults.killed.remove(node);
                faults.paused.remove(node);
                faults.clocks.remove(node);
            }
        }
        for node in nodes {
            self.stop_clock_loop(node).await?;
        }
        let mut running = Vec::new();
        for node in nodes {
            if self.signal(node, "TERM").await? {
                // A stopped process keeps SIGTERM pending until it runs again.
                self.signal(node, "CONT").await?;
                running.push(node.clone());
            }
        }
        let deadline = std::time::Instant::now() + grace;
        let mut left = running.clone();
        while !left.is_empty() && std::time::Instant::now() < deadline {
            let mut still = Vec::new();
            for node in left {
                if self.node_running(&node).await? {
                    still.push(node);
                }
            }
            left = still;
            if !left.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        for node in &left {
            tracing::warn!(node, "no exit {grace:?} after SIGTERM: SIGKILL");
            if self.signal(node, "KILL").await? && self.node_running(node).await? {
                return Err(Error::Node {
                    node: node.clone(),
                    why: "still alive 5 s after SIGKILL".to_string(),
                });
            }
        }
        Ok(running)
    }

    /// Copies `remote_path` on the node's host into `local`, replacing it only once the whole
    /// file has arrived: a failed fetch leaves an earlier copy as it was.
    pub async fn fetch_file(&self, node: &str, remote_path: &str, local: &Path) -> Result<()> {
        let host = &self.node(node)?.destination;
        let session = self
            .sessions
            .get(node)
            .ok_or_else(|| Error::UnknownNode(node.to_string()))?;
        let mut partial = local.as_os_str().to_owned();
        partial.push(".part");
        let partial = PathBuf::from(partial);
        let file =
            std::fs::File::create(&partial).map_err(|e| Error::io("creating", &partial, e))?;
        let output = session
            .command("cat")
            .arg("--")
            .arg(remote_path)
            .stdin(openssh::Stdio::null())
            .stdout(file)
            .stderr(openssh::Stdio::piped())
            .output()
            .await
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&partial);
            })
            .map_err(|e| Error::Ssh {
                host: host.clone(),
                why: e.to_string(),
            })?;
        if output.status.success() {
            std::fs::rename(&partial, local).map_err(|e| Error::io("renaming", &partial, e))
        } else {
            // No empty stand-in for a file that could not be read.
            let _ = std::fs::remove_file(&partial);
            Err(Error::Command {
                command: format!("ssh {host} cat -- {}", shell_quote(remote_path)),
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            })
        }
    }

    /// Replaces what is known about a node (its process, start command, faketime file) once
    /// they are known, e.g. after probing its host; the name and destination must not change.
    pub fn describe_node(&mut self, node: RemoteNode) -> Result<()> {
        let known = self
            .nodes
            .iter_mut()
            .find(|n| n.name == node.name)
            .ok_or_else(|| Error::UnknownNode(node.name.clone()))?;
        if known.destination != node.destination || known.port != node.port {
            return Err(Error::Node {
                why: format!(
                    "is connected to {}, not {}",
                    known.destination, node.destination
                ),
                node: node.name,
            });
        }
        *known = node;
        Ok(())
    }

    async fn set_table(&self, node: &str, table: &str, body: Option<&str>) -> Result<()> {
        let script = rules::host_table(table, body);
        self.exec(node, "nft -f -", Some(&script)).await.map(|_| ())
    }

    /// Installs `fault` on the hosts (see the module table).
    pub async fn start_fault(
        &self,
        fault: &Fault,
        rng: &mut impl Rng,
        leader: Option<&str>,
    ) -> Result<Action> {
        let names = self.nodes();
        let action = match fault {
            Fault::Partition(partition) => {
                let (grudge, description) =
                    or_skip!(plan_partition(&names, partition, rng, leader)?);
                let previously = std::mem::take(&mut lock(&self.faults).partitioned);
                let mut touched = BTreeSet::new();
                for name in names.iter() {
                    let cannot_hear = grudge.get(name).filter(|s| !s.is_empty());
                    match cannot_hear {
                        Some(peers) => {
                            let ips = peers
                                .iter()
                                .map(|p| self.node(p).map(|n| n.ip))
                                .collect::<Result<Vec<_>>>()?;
                            let body = rules::host_partition(&ips);
                            self.set_table(name, rules::HOST_PARTITION_TABLE, Some(&body))
                                .await?;
                            touched.insert(name.clone());
                        }
                        None if previously.contains(name) => {
                            self.set_table(name, rules::HOST_PARTITION_TABLE, None)
                                .await?
                        }
                        None => {}
                    }
                }
                let mut faults = lock(&self.faults);
                faults.partitioned = touched.clone();
                faults.partition = Some(description.clone());
                Action::installed(description, touched.into_iter().collect())
            }
            Fault::Kill(selection) | Fault::Pause(selection) => {
                let pause = matches!(fault, Fault::Pause(_));
                let mut pool = Vec::new();
                for name in &names {
                    let busy = {
                        let faults = lock(&self.faults);
                        faults.killed.contains(name) || (pause && faults.paused.contains(name))
                    };
                    if !busy && self.node_running(name).await? {
                        pool.push(name.clone());
                    }
                }
                let nodes = or_skip!(select_nodes(&names, selection, &pool, rng, leader));
                for node in &nodes {
                    self.signal(node, if pause { "STOP" } else { "KILL" })
                        .await?;
                    let mut faults = lock(&self.faults);
                    if pause {
                        faults.paused.insert(node.clone());
                    } else {
                        faults.killed.insert(node.clone());
                        faults.paused.remove(node);
                    }
                }
                let what = if pause {
                    "pause {} (SIGSTOP)"
                } else {
                    "kill {} (SIGKILL)"
                };
                Action::installed(what.replace("{}", &join(&nodes)), nodes)
            }
            Fault::Clock(clock, selection) => {
                let capable: Vec<String> = self
                    .nodes
                    .iter()
                    .filter(|n| n.faketime_file.is_some())
                    .map(|n| n.name.clone())
                    .collect();
                if capable.is_empty() {
                    return Ok(Action::Skipped(
                        "no remote node has a libfaketime file; changing a host's system clock over SSH is not implemented"
                            .to_string(),
                    ));
                }
                let nodes = or_skip!(select_nodes(&names, selection, &capable, rng, leader));
                let plan = or_skip!(plan_clock(clock, &nodes, rng));
                for (node, fault) in &plan {
                    if let ClockFault::Strobe { .. } | ClockFault::Skew { .. } = fault {
                        self.start_clock_loop(node, fault).await?;
                        continue;
                    }
                    let delta = match fault {
                        ClockFault::Bump { delta_ms } => Some(*delta_ms),
                        _ => None,
                    };
                    self.stop_clock_loop(node).await?;
                    let offset = {
                        let mut faults = lock(&self.faults);
                        let offset = faults.clocks.entry(node.clone()).or_default();
                        *offset = delta.map_or(0, |d| *offset + d);
                        *offset
                    };
                    self.write_clock(node, offset).await?;
                }
                Action::installed(describe_clock(&plan), nodes)
            }
            Fault::Loss { percent, nodes } => {
                let nodes = or_skip!(select_nodes(&names, nodes, &names, rng, leader));
                let verdict = rules::loss_verdict(*percent);
                for node in &nodes {
                    let peers: Vec<Ipv4Addr> = self
                        .nodes
                        .iter()
                        .filter(|n| n.name != *node)
                        .map(|n| n.ip)
                        .collect();
                    if peers.is_empty() {
                        continue;
                    }
                    let body = rules::host_loss(&peers, &verdict);
                    self.set_table(node, rules::HOST_LOSS_TABLE, Some(&body))
                        .await?;
                    lock(&self.faults).lossy.insert(node.clone());
                }
                Action::installed(
                    format!(
                        "drop {percent}% of packets between {} and their peers (nft numgen, each way)",
                        join(&nodes)
                    ),
                    nodes,
                )
            }
            Fault::Bandwidth { kbit, nodes } => {
                let nodes = or_skip!(select_nodes(&names, nodes, &names, rng, leader));
                let qdisc = rules::bandwidth_qdisc(*kbit);
                for node in &nodes {
                    self.shape(node, FaultKind::Bandwidth, &qdisc).await?;
                }
                Action::installed(
                    format!(
                        "limit {} to {kbit} kbit/s outgoing toward peers (tc tbf)",
                        join(&nodes)
                    ),
                    nodes,
                )
            }
            Fault::Delay {
                ms,
                jitter_ms,
                nodes,
            } => {
                let nodes = or_skip!(select_nodes(&names, nodes, &names, rng, leader));
                let qdisc = rules::delay_qdisc(*ms, *jitter_ms);
                for node in &nodes {
                    match self.shape(node, FaultKind::Delay, &qdisc).await {
                        Ok(()) => {}
                        // The host's kernel has no netem: say so, undo what was shaped.
                        Err(Error::Command { stderr, .. })
                            if stderr.contains("qdisc kind is unknown") =>
                        {
                            self.stop_fault(FaultKind::Delay).await?;
                            return Ok(Action::Skipped(format!(
                                "host of {node} has no tc netem (sch_netem), so packets cannot be delayed there"
                            )));
                        }
                        Err(e) => return Err(e),
                    }
                }
                Action::installed(
                    format!(
                        "delay packets from {} toward peers by {ms} ms ± {jitter_ms} ms (tc netem)",
                        join(&nodes)
                    ),
                    nodes,
                )
            }
        };
        Ok(action)
    }

    /// The interfaces the node's host uses to reach its peers (`ip route get`), loopback
    /// aside.
    async fn peer_devices(&self, node: &str) -> Result<BTreeSet<String>> {
        let mut devices = BTreeSet::new();
        for peer in self.nodes.iter().filter(|n| n.name != node) {
            let route = self
                .exec(node, &format!("ip -o -4 route get {}", peer.ip), None)
                .await?;
            let mut words = route.split_whitespace();
            if words.by_ref().any(|w| w == "dev")
                && let Some(dev) = words.next()
                && dev != "lo"
            {
                devices.insert(dev.to_string());
            }
        }
        Ok(devices)
    }

    /// Puts `qdisc` as root qdisc on every interface the host uses to reach its peers
    /// (`ip route get`), recording them for the undo. It shapes all traffic leaving on those
    /// interfaces, SSH included: hosts rarely have a separate management link.
    async fn shape(&self, node: &str, kind: FaultKind, qdisc: &str) -> Result<()> {
        for dev in &self.peer_devices(node).await? {
            self.exec(
                node,
                &format!("tc qdisc replace dev {} root {qdisc}", shell_quote(dev)),
                None,
            )
            .await?;
            lock(&self.faults)
                .shaped
                .entry((kind, node.to_string()))
                .or_default()
                .push(dev.clone());
        }
        Ok(())
    }

    /// Strobe and skew run as a loop ON the host (detached, bounded to an hour), writing the
    /// node's faketime file, so their timing does not depend on SSH round trips. The loop
    /// writes its PID beside the faketime file and is named by its `$0`
    /// (`faultline-clock-<token>-<node>`), which the stop checks before signalling that PID.
    async fn start_clock_loop(&self, node: &str, clock: &ClockFault) -> Result<()> {
        let Some(file) = self.node(node)?.faketime_file.clone() else {
            return Ok(());
        };
        self.stop_clock_loop(node).await?;
        let base = lock(&self.faults).clocks.get(node).copied().unwrap_or(0);
        let body = match clock {
            ClockFault::Strobe {
                delta_ms,
                period_ms,
            } => {
                let period_ms = (*period_ms).max(1);
                let rounds = CLOCK_LOOP_LIMIT_MS / period_ms / 2 + 1;
                let pause = format!("{}.{:03}", period_ms / 1000, period_ms % 1000);
                let write = |offset_ms| {
                    replace_faketime_file(&format!("'%s\\n' {}", faketime_spec(offset_ms).trim()))
                };
                format!(
                    "i=0; while [ $i -lt {rounds} ]; do {high}; sleep {pause}; {low}; sleep {pause}; i=$((i+1)); done",
                    high = write(base + delta_ms),
                    low = write(base),
                )
            }
            ClockFault::Skew { rate } if rate.is_finite() && *rate > 0.0 => {
                // Integer shell arithmetic: the rate in thousandths.
                let milli = (rate * 1000.0).round() as i64;
                let rounds = CLOCK_LOOP_LIMIT_MS / 50;
                format!(
                    "start=$(date +%s%N); i=0; while [ $i -lt {rounds} ]; do \
                     off=$(( {base} + ($(date +%s%N) - start) / 1000000 * ({milli} - 1000) / 1000 )); \
                     if [ $off -lt 0 ]; then s=-; a=$((-off)); else s=+; a=$off; fi; \
                     {write}; sleep 0.05; i=$((i+1)); done",
                    write = replace_faketime_file("'%s%d.%03d\\n' $s $((a/1000)) $((a%1000))"),
                )
            }
            // `plan_clock` hands over only strobes and skews with a positive rate.
            _ => return Ok(()),
        };
        let script = format!(
            "echo $$ > {}; f={}; {body}",
            shell_quote(&clock_loop_pid_file(&file, &self.token)),
            shell_quote(&file)
        );
        let launch = format!(
            "nohup setsid sh -c {} {} </dev/null >/dev/null 2>&1 &",
            shell_quote(&script),
            self.clock_loop_name(node)
        );
        self.exec(node, &launch, None).await?;
        let mut faults = lock(&self.faults);
        faults.clock_loops.insert(node.to_string());
        faults.clocks.entry(node.to_string()).or_insert(base);
        Ok(())
    }

    fn clock_loop_name(&self, node: &str) -> String {
        format!("faultline-clock-{}-{node}", self.token)
    }

    /// Ends a node's strobe/skew loop, if any, and waits for its last write to land.
    async fn stop_clock_loop(&self, node: &str) -> Result<()> {
        if !lock(&self.faults).clock_loops.remove(node) {
            return Ok(());
        }
        let Some(file) = self.node(node)?.faketime_file.clone() else {
            return Ok(());
        };
        let pid_file = clock_loop_pid_file(&file, &self.token);
        // The loop writes its PID file just after it starts: a stop right after the start
        // waits for it (bounded, 2 s).
        let script = format!(
            "p={p}; i=0; while [ ! -s \"$p\" ] && [ $i -lt 20 ]; do sleep 0.1; i=$((i+1)); done; \
             ( {probe} kill \"$pid\" ); rm -f \"$p\"; sleep 0.1",
            p = shell_quote(&pid_file),
            probe = pid_probe(&pid_file, Some(&self.clock_loop_name(node))),
        );
        self.exec(node, &script, None).await.map(|_| ())
    }

    async fn write_clock(&self, node: &str, offset_ms: i64) -> Result<()> {
        let Some(file) = &self.node(node)?.faketime_file else {
            return Ok(());
        };
        let spec = faketime_spec(offset_ms);
        let script = format!(
            "f={}; {}",
            shell_quote(file),
            replace_faketime_file(&format!("'%s\\n' {}", shell_quote(spec.trim())))
        );
        self.exec(node, &script, None).await.map(|_| ())
    }

    /// Undoes every fault of `kind` on every host.
    pub async fn stop_fault(&self, kind: FaultKind) -> Result<Action> {
        Ok(match kind {
            FaultKind::Partition => {
                let (nodes, was) = {
                    let mut faults = lock(&self.faults);
                    (
                        std::mem::take(&mut faults.partitioned),
                        faults.partition.take(),
                    )
                };
                for node in &nodes {
                    self.set_table(node, rules::HOST_PARTITION_TABLE, None)
                        .await?;
                }
                match was {
                    Some(was) => {
                        Action::installed(format!("heal partition ({was})"), sorted(nodes))
                    }
                    None => Action::Skipped(nothing_to_stop(kind)),
                }
            }
            FaultKind::Kill => {
                let killed = or_skip!(to_undo(
                    kind,
                    std::mem::take(&mut lock(&self.faults).killed)
                ));
                for node in &killed {
                    if !self.node_running(node).await? {
                        self.start_node(node).await?;
                    }
                }
                Action::installed(format!("restart {}", join(&killed)), killed)
            }
            FaultKind::Pause => {
                let paused = or_skip!(to_undo(
                    kind,
                    std::mem::take(&mut lock(&self.faults).paused)
                ));
                for node in &paused {
                    self.signal(node, "CONT").await?;
                }
                Action::installed(format!("resume {} (SIGCONT)", join(&paused)), paused)
            }
            FaultKind::Clock => {
                let nodes = or_skip!(to_undo(
                    kind,
                    std::mem::take(&mut lock(&self.faults).clocks).into_keys()
                ));
                for node in &nodes {
                    self.stop_clock_loop(node).await?;
                    self.write_clock(node, 0).await?;
                }
                Action::installed(format!("reset clock of {}", join(&nodes)), nodes)
            }
            FaultKind::Loss => {
                let nodes = or_skip!(to_undo(kind, std::mem::take(&mut lock(&self.faults).lossy)));
                for node in &nodes {
                    self.set_table(node, rules::HOST_LOSS_TABLE, None).await?;
                }
                Action::installed(format!("stop packet loss on {}", join(&nodes)), nodes)
            }
            FaultKind::Bandwidth | FaultKind::Delay => {
                let shaped: Vec<((FaultKind, String), Vec<String>)> = {
                    let mut faults = lock(&self.faults);
                    let keys: Vec<(FaultKind, String)> = faults
                        .shaped
                        .keys()
                        .filter(|(k, _)| *k == kind)
                        .cloned()
                        .collect();
                    keys.into_iter()
                        .filter_map(|key| faults.shaped.remove(&key).map(|devs| (key, devs)))
                        .collect()
                };
                if shaped.is_empty() {
                    return Ok(Action::Skipped(nothing_to_stop(kind)));
                }
                let mut nodes = Vec::new();
                for ((_, node), devices) in shaped {
                    for dev in devices {
                        // Gone already (replaced or removed by hand) is fine.
                        let script = format!(
                            "tc qdisc del dev {} root 2>/dev/null || true",
                            shell_quote(&dev)
                        );
                        self.exec(&node, &script, None).await?;
                    }
                    nodes.push(node);
                }
                let nodes = sorted(nodes);
                Action::installed(format!("remove {kind} limits from {}", join(&nodes)), nodes)
            }
        })
    }

    /// Undoes everything on every host.
    pub async fn heal(&self) -> Result<Vec<(FaultKind, Action)>> {
        heal_in_order(|kind| self.stop_fault(kind)).await
    }

    /// Undoes, on every host, what faults of `kinds` a run that died without healing (SIGKILL,
    /// a crash) may have left there, without that run's record of what it installed:
    /// Faultline's nft tables; a tbf or netem root qdisc on the interfaces toward the peers;
    /// clock loops beside a node's faketime file (whichever run started them) and a non-zero
    /// offset in it; a stopped server (SIGCONT); and, with `restart_killed`, a server that is
    /// not running is started again by its start command. Safe to repeat: what is already
    /// undone is left as it is and not reported.
    pub async fn heal_abandoned(
        &self,
        kinds: &[FaultKind],
        restart_killed: bool,
    ) -> Result<HealReport> {
        let mut report = HealReport::default();
        let mut tables = Vec::new();
        if kinds.contains(&FaultKind::Partition) {
            tables.push(rules::HOST_PARTITION_TABLE);
        }
        if kinds.contains(&FaultKind::Loss) {
            tables.push(rules::HOST_LOSS_TABLE);
        }
        let shaping = kinds
            .iter()
            .any(|k| matches!(k, FaultKind::Bandwidth | FaultKind::Delay));
        for node in self.nodes() {
            for table in &tables {
                let script = format!(
                    "if nft list table inet {table} >/dev/null 2>&1; then nft delete table inet {table} && echo deleted; fi"
                );
                if self.exec(&node, &script, None).await?.contains("deleted") {
                    report
                        .undone
                        .push(format!("{node}: deleted nft table inet {table}"));
                }
            }
            if shaping {
                for dev in self.peer_devices(&node).await? {
                    // Only the qdisc kinds Faultline puts there: a user's own shaping stays.
                    let script = format!(
                        "if tc qdisc show dev {d} root | grep -qE '^qdisc (tbf|netem) '; then tc qdisc del dev {d} root && echo deleted; fi",
                        d = shell_quote(&dev)
                    );
                    if self.exec(&node, &script, None).await?.contains("deleted") {
                        report
                            .undone
                            .push(format!("{node}: removed the tbf/netem root qdisc of {dev}"));
                    }
                }
            }
            if kinds.contains(&FaultKind::Clock)
                && let Some(file) = self.node(&node)?.faketime_file.clone()
            {
                report
                    .undone
                    .extend(self.reset_abandoned_clock(&node, &file).await?);
            }
            if kinds.contains(&FaultKind::Pause) && self.resume_if_stopped(&node).await? {
                report
                    .undone
                    .push(format!("{node}: resumed its stopped server (SIGCONT)"));
            }
            if restart_killed
                && kinds.contains(&FaultKind::Kill)
                && !self.node_running(&node).await?
            {
                if self.node(&node)?.start.trim().is_empty() {
                    report.failed.push(format!(
                        "{node}: its server is not running and no start command is known: start it by hand"
                    ));
                } else {
                    self.start_node(&node).await?;
                    report.undone.push(format!("{node}: restarted its server"));
                }
            }
        }
        Ok(report)
    }

    /// Ends every clock loop beside `file` (their PID files are `<file>.loop-<token>.pid`; each
    /// PID is checked to be a `faultline-clock-` loop before the signal) and puts a non-zero
    /// offset back to +0.
    async fn reset_abandoned_clock(&self, node: &str, file: &str) -> Result<Vec<String>> {
        // Prints `ended` per loop, then the offset the file holds once they are gone.
        let script = format!(
            "clock={file}; for p in \"$clock\".loop-*.pid; do [ -f \"$p\" ] || continue; \
             ( {probe} kill \"$pid\" && echo ended ); rm -f \"$p\"; done; \
             sleep 0.1; [ -f \"$clock\" ] && cat \"$clock\"; true",
            file = shell_quote(file),
            probe = pid_probe_at("\"$p\"", Some("faultline-clock-")),
        );
        let out = self.exec(node, &script, None).await?;
        let mut undone = Vec::new();
        let loops = out.lines().filter(|l| l.trim() == "ended").count();
        if loops > 0 {
            undone.push(format!("{node}: ended {loops} clock loop(s)"));
        }
        let offset = out
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(['+', '-']))
            .and_then(|spec| spec.parse::<f64>().ok());
        if offset.is_some_and(|seconds| seconds != 0.0) {
            self.write_clock(node, 0).await?;
            undone.push(format!("{node}: reset its clock to real time"));
        }
        Ok(undone)
    }

    /// SIGCONT for the node's server if it is stopped; whether it was. A server found by
    /// pattern gets SIGCONT whenever it matches (its state is not looked up).
    async fn resume_if_stopped(&self, node: &str) -> Result<bool> {
        let script = match &self.node(node)?.process {
            ProcessMatch::PidFile { path, cmdline } => format!(
                "{} [ \"$(sed 's/^.*) //' /proc/$pid/stat | cut -c1)\" = T ] || exit 1; kill -CONT \"$pid\"",
                pid_probe(path, cmdline.as_deref())
            ),
            ProcessMatch::Pattern(pattern) => {
                format!(
                    "pkill -CONT -f -- {}",
                    shell_quote(&self_excluding(pattern))
                )
            }
        };
        not_found_is_false(self.exec(node, &script, None).await)
    }

    /// Which kinds work over SSH.
    pub fn supports(&self, kind: FaultKind) -> std::result::Result<(), String> {
        // Every kind has a host command; netem availability is only known per host, at
        // start (a delay on a host without netem is Skipped with the reason).
        let _ = kind;
        Ok(())
    }

    /// Heals, then closes the SSH connections.
    pub async fn close(self) -> Result<()> {
        let healed = self.heal().await;
        for (name, session) in self.sessions {
            if let Err(e) = session.close().await {
                tracing::warn!(node = %name, error = %e, "closing ssh session");
            }
        }
        healed.map(|_| ())
    }
}

/// Ends the ControlMaster behind `socket` that a process which died left running (`ssh -O
/// exit` over the local socket, so from any network namespace), and removes the socket's
/// private directory. Ok(false) when there is no socket (the master exited and cleaned up).
pub fn close_abandoned_master(socket: &Path) -> Result<bool> {
    if !socket.exists() {
        return Ok(false);
    }
    // Fails only when nobody answers: a master that died leaves its socket as a mere file.
    std::process::Command::new("ssh")
        .arg("-S")
        .arg(socket)
        .args(["-o", "BatchMode=yes", "-O", "exit", "none"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| Error::io("running", Path::new("ssh"), e))?;
    if let Some(dir) = socket.parent().filter(|d| {
        d.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(".ssh-connection"))
    }) {
        let _ = std::fs::remove_dir_all(dir);
    } else {
        let _ = std::fs::remove_file(socket);
    }
    Ok(true)
}

/// Shell that replaces the faketime file named by `$f` with the output of `printf
/// <printf_args>`: a sibling, then a rename, because the node re-reads the file on every
/// clock call and must never see it half-written.
fn replace_faketime_file(printf_args: &str) -> String {
    format!("printf {printf_args} > \"$f.tmp\" && mv -f \"$f.tmp\" \"$f\"")
}

/// Where a clock loop of the connection with `token` keeps its PID: beside the faketime file.
fn clock_loop_pid_file(faketime_file: &str, token: &str) -> String {
    format!("{faketime_file}.loop-{token}.pid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_exclude_the_shell_that_runs_pkill() {
        assert_eq!(self_excluding("etcd --name n1"), "[e]tcd --name n1");
        assert_eq!(self_excluding("/usr/bin/x"), "/usr/bin/x");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    /// Runs `pid_probe` + `echo "$pid"` in the local `sh`, as a host would.
    fn probe(path: &Path, cmdline: Option<&str>) -> Option<String> {
        let script = format!(
            "{} echo \"$pid\"",
            pid_probe(&path.display().to_string(), cmdline)
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .expect("sh runs");
        match out.status.code() {
            Some(0) => Some(String::from_utf8_lossy(&out.stdout).trim().to_string()),
            Some(1) => None,
            other => panic!("{other:?}: {}", String::from_utf8_lossy(&out.stderr)),
        }
    }

    #[test]
    fn pid_files_name_a_process_only_while_it_lives_and_its_cmdline_matches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("node.pid");
        assert_eq!(probe(&file, None), None, "no PID file");
        let mut child = std::process::Command::new("sleep")
            .arg("30.5")
            .spawn()
            .expect("sleep starts");
        let pid = child.id().to_string();
        // The lab's format (`PID start-time`) and a bare PID both read.
        std::fs::write(&file, format!("{pid} 12345\n")).expect("write");
        assert_eq!(probe(&file, None).as_deref(), Some(pid.as_str()));
        assert_eq!(
            probe(&file, Some("sleep 30.5")).as_deref(),
            Some(pid.as_str())
        );
        assert_eq!(
            probe(&file, Some("/data/n1")),
            None,
            "another program's PID"
        );
        std::fs::write(&file, "not-a-pid\n").expect("write");
        assert_eq!(probe(&file, None), None);
        std::fs::write(&file, format!("{pid}\n")).expect("write");
        child.kill().expect("kill");
        // Dead but not yet reaped: a zombie is not a live node.
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(probe(&file, None), None, "zombie");
        child.wait().expect("reaped");
        assert_eq!(probe(&file, None), None, "gone");
    }
}
