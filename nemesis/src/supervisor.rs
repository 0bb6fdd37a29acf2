//! The process supervisor: nodes run inside their namespace, in their own process group, with
//! their own log file; the lab signals them only after checking PID *and* start time.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::error::{Error, Result};
use crate::lab::{Isolation, Lab, lock};
use crate::procfs;
use crate::state::ProcessRecord;

/// How to start (and restart) one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Extra environment (the rest is inherited).
    pub env: Vec<(String, String)>,
    /// stdout and stderr both go here (appended: a restart keeps the earlier log).
    pub log_path: PathBuf,
    /// Start under libfaketime so clock faults can reach the node. Only meaningful for
    /// programs that read time through libc (not Go: etcd, Consul ignore it).
    pub faketime: bool,
}

/// What the supervisor knows about a node.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeStatus {
    NotStarted,
    Running {
        pid: u32,
    },
    /// SIGSTOPped (by a pause), per `/proc/PID/stat` state `T`.
    Paused {
        pid: u32,
    },
    /// Killed on purpose (kill fault or `kill_node`); `restart_node` brings it back.
    Killed,
    /// Stopped on purpose (`stop_node`).
    Stopped,
    /// Exited by itself while it should have been running: a crash worth reporting.
    Exited {
        status: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intent {
    Running,
    Paused,
    Killed,
    Stopped,
}

pub(crate) struct NodeProcess {
    pub(crate) command: NodeCommand,
    pub(crate) child: Option<tokio::process::Child>,
    pub(crate) pid: u32,
    pub(crate) start_time: u64,
    pub(crate) intent: Intent,
    /// Exit status once reaped.
    pub(crate) exit: Option<String>,
}

impl NodeProcess {
    /// SIGKILLs the group now (teardown, Drop). Never waits.
    pub(crate) fn kill_now(&mut self) {
        if self.exit.is_none() {
            procfs::signal_group(self.pid, self.start_time, Signal::SIGKILL);
        }
        self.intent = Intent::Killed;
    }

    /// Reaps if exited; true while the process still runs (or is stopped). Uses
    /// `/proc/PID/stat` first: a zombie or a recycled PID counts as exited.
    fn poll_alive(&mut self) -> bool {
        if self.exit.is_some() {
            return false;
        }
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            self.exit = Some(status.to_string());
            return false;
        }
        if procfs::is_alive(self.pid, self.start_time) {
            return true;
        }
        // Gone or zombie but not reaped yet: report it as exited; the next poll reaps it.
        self.exit = Some("exited".to_string());
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            self.exit = Some(status.to_string());
        }
        false
    }
}

/// Bounded waits for signals to take effect.
const KILL_WAIT: Duration = Duration::from_secs(5);
const STOP_WAIT: Duration = Duration::from_secs(10);
const PAUSE_WAIT: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(5);

/// The libfaketime library: `FAULTLINE_LIBFAKETIME`, else the usual Debian/Ubuntu paths. The
/// MT variant because our nodes are multi-threaded.
pub fn find_libfaketime() -> Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(path) = std::env::var_os("FAULTLINE_LIBFAKETIME") {
        candidates.push(PathBuf::from(path));
    }
    for arch in [
        "x86_64-linux-gnu",
        "aarch64-linux-gnu",
        "arm-linux-gnueabihf",
        "i386-linux-gnu",
    ] {
        candidates.push(PathBuf::from(format!(
            "/usr/lib/{arch}/faketime/libfaketimeMT.so.1"
        )));
    }
    candidates.push(PathBuf::from("/usr/lib/faketime/libfaketimeMT.so.1"));
    candidates.push(PathBuf::from("/usr/local/lib/faketime/libfaketimeMT.so.1"));
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .ok_or_else(|| {
            Error::NoLibfaketime(
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })
}

impl Lab {
    fn check_node(&self, node: &str) -> Result<()> {
        self.node_index(node)
            .map(|_| ())
            .ok_or_else(|| Error::UnknownNode(node.to_string()))
    }

    /// The faketime file of a node (`<run_dir>/clock/<node>.faketime`): its content is the
    /// libfaketime offset spec (`+0`, `-1.5`, `+0 x2`), re-read on every time call.
    pub fn faketime_path(&self, node: &str) -> PathBuf {
        self.run_dir.join("clock").join(format!("{node}.faketime"))
    }

    fn spawn(&self, node: &str, command: &NodeCommand) -> Result<NodeProcess> {
        if let Some(dir) = command.log_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&command.log_path)
            .map_err(|e| Error::io("opening log", &command.log_path, e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| Error::io("duplicating log", &command.log_path, e))?;
        let mut cmd = tokio::process::Command::new(&command.program);
        cmd.args(&command.args)
            .envs(command.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Own process group: pause/kill reach helper children too, and a Ctrl-C in the
            // terminal does not hit nodes before teardown can stop them in order.
            .process_group(0)
            .kill_on_drop(true);
        if command.faketime {
            let library = find_libfaketime()?;
            let clock = self.faketime_path(node);
            // Keep an existing offset across restarts: a restarted node on a skewed host is
            // still skewed.
            if !clock.exists() {
                std::fs::write(&clock, "+0\n").map_err(|e| Error::io("writing", &clock, e))?;
            }
            cmd.env("LD_PRELOAD", library)
                .env("FAKETIME_TIMESTAMP_FILE", &clock)
                .env("FAKETIME_NO_CACHE", "1");
        }
        if self.isolation == Isolation::Namespaces {
            let path = Path::new("/run/netns").join(self.netns_of(node));
            let file = std::fs::File::open(&path).map_err(|e| Error::io("opening", &path, e))?;
            let fd: OwnedFd = file.into();
            // SAFETY: runs in the forked child before exec; setns(2) is a plain syscall
            // (async-signal-safe) and the closure allocates nothing.
            unsafe {
                cmd.pre_exec(move || {
                    nix::sched::setns(fd.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(std::io::Error::from)
                });
            }
        }
        let child = cmd.spawn().map_err(|e| Error::Node {
            node: node.to_string(),
            why: format!("cannot start {}: {e}", command.program.display()),
        })?;
        let pid = child.id().ok_or_else(|| Error::Node {
            node: node.to_string(),
            why: "exited before its PID could be read".to_string(),
        })?;
        // The start time is fixed at fork, so reading it right after spawn is exact.
        let start_time = procfs::stat(pid).map(|s| s.start_time).unwrap_or(0);
        let pid_file = self.run_dir.join("pids").join(format!("{node}.pid"));
        std::fs::write(&pid_file, format!("{pid} {start_time}\n"))
            .map_err(|e| Error::io("writing", &pid_file, e))?;
        {
            let mut state = lock(&self.state);
            state.processes.retain(|p| p.node != node);
            state.processes.push(ProcessRecord {
                node: node.to_string(),
                pid,
                start_time,
            });
        }
        self.save_state()?;
        tracing::debug!(lab = %self.name, node, pid, program = %command.program.display(), "node started");
        Ok(NodeProcess {
            command: command.clone(),
            child: Some(child),
            pid,
            start_time,
            intent: Intent::Running,
            exit: None,
        })
    }

    /// Starts a node's command inside its namespace (stdout+stderr to `log_path`), records
    /// its PID in `<run_dir>/pids/<node>.pid` and the state file. Fails if the node runs.
    pub async fn start_node(&self, node: &str, command: NodeCommand) -> Result<u32> {
        self.check_node(node)?;
        let mut processes = lock(&self.processes);
        if let Some(existing) = processes.get_mut(node)
            && existing.poll_alive()
        {
            return Err(Error::Node {
                node: node.to_string(),
                why: format!(
                    "already running as pid {}: stop or kill it first",
                    existing.pid
                ),
            });
        }
        let process = self.spawn(node, &command)?;
        let pid = process.pid;
        processes.insert(node.to_string(), process);
        Ok(pid)
    }

    /// The PID of a node's current process, if it was started.
    pub fn node_pid(&self, node: &str) -> Option<u32> {
        lock(&self.processes).get(node).map(|p| p.pid)
    }

    /// The nodes whose server exited by itself ([`NodeStatus::Exited`]): why a cluster that
    /// should be up is not.
    pub fn exited_nodes(&self) -> Vec<String> {
        self.nodes()
            .into_iter()
            .filter(|n| matches!(self.node_status(n), Ok(NodeStatus::Exited { .. })))
            .collect()
    }

    /// What the node is doing now (reaps it if it exited).
    pub fn node_status(&self, node: &str) -> Result<NodeStatus> {
        self.check_node(node)?;
        let mut processes = lock(&self.processes);
        let Some(process) = processes.get_mut(node) else {
            return Ok(NodeStatus::NotStarted);
        };
        let alive = process.poll_alive();
        Ok(match (process.intent, alive) {
            (Intent::Killed, _) if !alive => NodeStatus::Killed,
            (Intent::Stopped, _) if !alive => NodeStatus::Stopped,
            (_, false) => NodeStatus::Exited {
                status: process.exit.clone().unwrap_or_default(),
            },
            (_, true) => match procfs::stat(process.pid) {
                Some(s) if s.state == 'T' || s.state == 't' => {
                    NodeStatus::Paused { pid: process.pid }
                }
                _ => NodeStatus::Running { pid: process.pid },
            },
        })
    }

    /// Nodes that exited by themselves while they should have been running, with how.
    pub fn unexpected_exits(&self) -> Vec<(String, String)> {
        self.nodes
            .iter()
            .filter_map(|n| match self.node_status(n) {
                Ok(NodeStatus::Exited { status }) => Some((n.clone(), status)),
                _ => None,
            })
            .collect()
    }

    fn signal(&self, node: &str, signal: Signal, intent: Intent) -> Result<()> {
        self.check_node(node)?;
        let mut processes = lock(&self.processes);
        let process = processes.get_mut(node).ok_or_else(|| Error::Node {
            node: node.to_string(),
            why: "not started".to_string(),
        })?;
        if !process.poll_alive() {
            return Err(Error::Node {
                node: node.to_string(),
                why: format!(
                    "not running ({}); cannot send {signal}",
                    process.exit.clone().unwrap_or_default()
                ),
            });
        }
        procfs::signal_group(process.pid, process.start_time, signal);
        process.intent = intent;
        Ok(())
    }

    /// Polls (bounded) until `done` holds for the node's process.
    async fn wait_for(
        &self,
        node: &str,
        limit: Duration,
        done: impl Fn(&mut NodeProcess) -> bool,
    ) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            {
                let mut processes = lock(&self.processes);
                match processes.get_mut(node) {
                    Some(p) => {
                        if done(p) {
                            return true;
                        }
                    }
                    None => return true,
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// SIGKILL and wait (bounded) until the process is gone and reaped.
    pub async fn kill_node(&self, node: &str) -> Result<()> {
        self.kill_and_reap(node, Intent::Killed).await
    }

    /// [`Lab::kill_node`] with the status the node is left in (`intent`): a stop that ends
    /// in SIGKILL leaves it `Stopped`, not `Killed`.
    async fn kill_and_reap(&self, node: &str, intent: Intent) -> Result<()> {
        self.signal(node, Signal::SIGKILL, intent)?;
        if self.wait_for(node, KILL_WAIT, |p| !p.poll_alive()).await {
            Ok(())
        } else {
            Err(Error::Node {
                node: node.to_string(),
                why: format!("still alive {KILL_WAIT:?} after SIGKILL"),
            })
        }
    }

    /// SIGSTOP, then wait (bounded) until `/proc` shows the process stopped.
    pub async fn pause_node(&self, node: &str) -> Result<()> {
        self.signal(node, Signal::SIGSTOP, Intent::Paused)?;
        let stopped = self
            .wait_for(
                node,
                PAUSE_WAIT,
                |p| matches!(procfs::stat(p.pid), Some(s) if s.state == 'T' || s.state == 't'),
            )
            .await;
        if stopped {
            Ok(())
        } else {
            Err(Error::Node {
                node: node.to_string(),
                why: format!("not stopped {PAUSE_WAIT:?} after SIGSTOP"),
            })
        }
    }

    /// SIGCONT.
    pub async fn resume_node(&self, node: &str) -> Result<()> {
        self.signal(node, Signal::SIGCONT, Intent::Running)
    }

    /// SIGTERM (after SIGCONT, so a paused node can act on it), wait up to 10 s, then SIGKILL.
    pub async fn stop_node(&self, node: &str) -> Result<()> {
        self.check_node(node)?;
        {
            let mut processes = lock(&self.processes);
            let Some(process) = processes.get_mut(node) else {
                return Ok(());
            };
            process.intent = Intent::Stopped;
            if !process.poll_alive() {
                return Ok(());
            }
            procfs::signal_group(process.pid, process.start_time, Signal::SIGCONT);
            procfs::signal_group(process.pid, process.start_time, Signal::SIGTERM);
        }
        if self.wait_for(node, STOP_WAIT, |p| !p.poll_alive()).await {
            return Ok(());
        }
        tracing::warn!(lab = %self.name, node, "no exit {STOP_WAIT:?} after SIGTERM: SIGKILL");
        self.kill_and_reap(node, Intent::Stopped).await
    }

    /// Stops every started node at once: SIGCONT + SIGTERM to all, one shared 10 s wait,
    /// then SIGKILL for the rest — so a 5-node etcd stops in one hand-over time, not five.
    pub async fn stop_all_nodes(&self) -> Result<()> {
        self.stop_all_nodes_within(STOP_WAIT).await
    }

    /// [`Lab::stop_all_nodes`] with a chosen grace period before SIGKILL.
    pub async fn stop_all_nodes_within(&self, grace: Duration) -> Result<()> {
        let live: Vec<String> = {
            let mut processes = lock(&self.processes);
            processes
                .iter_mut()
                .filter_map(|(node, process)| {
                    process.intent = Intent::Stopped;
                    if !process.poll_alive() {
                        return None;
                    }
                    procfs::signal_group(process.pid, process.start_time, Signal::SIGCONT);
                    procfs::signal_group(process.pid, process.start_time, Signal::SIGTERM);
                    Some(node.clone())
                })
                .collect()
        };
        let deadline = Instant::now() + grace;
        for node in &live {
            let left = deadline.saturating_duration_since(Instant::now());
            if !self.wait_for(node, left, |p| !p.poll_alive()).await {
                tracing::warn!(lab = %self.name, node, "no exit {grace:?} after SIGTERM: SIGKILL");
                self.kill_and_reap(node, Intent::Stopped).await?;
            }
        }
        Ok(())
    }

    /// Restarts a node with the same command (same data dir, same log file appended): kills
    /// it first if it still runs. Returns the new PID.
    pub async fn restart_node(&self, node: &str) -> Result<u32> {
        self.check_node(node)?;
        let running = {
            let mut processes = lock(&self.processes);
            match processes.get_mut(node) {
                None => {
                    return Err(Error::Node {
                        node: node.to_string(),
                        why: "never started: use start_node".to_string(),
                    });
                }
                Some(p) => p.poll_alive(),
            }
        };
        if running {
            self.kill_node(node).await?;
        }
        let mut processes = lock(&self.processes);
        let command = processes
            .get(node)
            .map(|p| p.command.clone())
            .ok_or_else(|| Error::Node {
                node: node.to_string(),
                why: "removed during restart".to_string(),
            })?;
        let process = self.spawn(node, &command)?;
        let pid = process.pid;
        processes.insert(node.to_string(), process);
        Ok(pid)
    }
}
