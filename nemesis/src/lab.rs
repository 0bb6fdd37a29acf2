//! The lab: one network namespace per node, a bridge namespace, a client namespace `ctl`
//! without a default route, a guard table in the root namespace, and the state file.
//!
//! Topology (namespaces mode), for lab `flXXYY` with subnet `10.X.Y.0/24`:
//!
//! ```text
//!  flXXYY-n1 [eth0 10.X.Y.1] ─┐
//!  flXXYY-n2 [eth0 10.X.Y.2] ─┤  flXXYY-br: bridge br0 + nft `bridge faultline` table
//!  ...                        │  (partitions, loss: one place, atomic `nft -f` changes)
//!  flXXYY-ctl [eth0 10.X.Y.254]┘
//! ```
//!
//! Every interface is created inside the lab's own namespaces (`ip -n BR link add ... peer
//! ... netns NODE`), so nothing is ever named in the root namespace and two labs can never
//! collide on an interface name.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};
use crate::fault::FaultState;
use crate::procfs;
use crate::rules;
use crate::state::{self, LabState};
use crate::supervisor::NodeProcess;
use crate::sys;

/// How the nodes are kept apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Isolation {
    /// One network namespace per node on a private bridge (needs root or a user namespace).
    /// Every fault kind is available.
    #[default]
    Namespaces,
    /// No namespaces and no root: nodes listen on distinct `127.X.Y.i` addresses. Process and
    /// clock faults work; network faults (partition, loss, bandwidth, delay) are refused.
    Loopback,
}

impl Isolation {
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Namespaces => "namespaces",
            Isolation::Loopback => "loopback",
        }
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// Number of nodes, named `n1`..`nN` (1..=200).
    pub nodes: usize,
    pub isolation: Isolation,
    /// Where node logs (`<node>.log` unless the command says otherwise), pid files
    /// (`pids/<node>.pid`) and faketime files (`clock/<node>.faketime`) go.
    pub run_dir: PathBuf,
}

/// The most nodes a lab holds: addresses .1..=.200, .254 is the client.
pub const MAX_NODES: usize = 200;

const CLIENT_HOST: u8 = 254;
/// Second octet of lab subnets: 10.200.0.0–10.254.255.0 (and 127.200… for loopback labs),
/// away from the 10.0.x/10.1.x ranges home and cloud networks tend to use.
const SUBNET_FIRST: u8 = 200;
const CLAIM_ATTEMPTS: usize = 64;

/// A running lab. Build it with [`Lab::create`], end it with [`Lab::teardown`]; dropping it
/// without teardown cleans up best-effort and logs an error.
pub struct Lab {
    pub(crate) name: String,
    pub(crate) isolation: Isolation,
    pub(crate) run_dir: PathBuf,
    /// First three octets of every lab address.
    pub(crate) prefix: [u8; 3],
    pub(crate) nodes: Vec<String>,
    pub(crate) processes: Mutex<BTreeMap<String, NodeProcess>>,
    pub(crate) faults: Mutex<FaultState>,
    pub(crate) state: Mutex<LabState>,
    pub(crate) state_path: PathBuf,
    pub(crate) torn_down: bool,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("name", &self.name)
            .field("isolation", &self.isolation)
            .field("subnet", &self.subnet())
            .field("nodes", &self.nodes)
            .finish()
    }
}

/// Locks a mutex even if a panicking thread poisoned it: the data (process table, fault
/// state) stays meaningful, and teardown must run after a panic.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Picks a random, unused `X.Y` and claims it by creating the state file with `create_new`
/// (atomic across processes). Returns the lab name, prefix, state path.
fn claim(isolation: Isolation, run_dir: &Path) -> Result<(String, [u8; 3], PathBuf, LabState)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = state::state_dir();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let seed =
        nanos ^ (u64::from(std::process::id()) << 32) ^ COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Addresses and routes of the root namespace: never pick a subnet this machine uses.
    let used = match isolation {
        Isolation::Namespaces => {
            let addrs = sys::run_blocking_outside("ip", &["-4", "-o", "addr", "show"], None)?;
            let routes =
                sys::run_blocking_outside("ip", &["-4", "route", "show", "table", "all"], None)?;
            format!("{addrs}\n{routes}")
        }
        Isolation::Loopback => String::new(),
    };
    // Leftovers of killed runs (until `faultline clean`) keep their names: never reuse one.
    let taken_names: String = {
        let namespaces = std::fs::read_dir("/run/netns")
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let tables = match isolation {
            Isolation::Namespaces => {
                sys::run_blocking_outside("nft", &["list", "tables"], None).unwrap_or_default()
            }
            Isolation::Loopback => String::new(),
        };
        format!(" {namespaces} {tables}")
    };
    let first = match isolation {
        Isolation::Namespaces => 10,
        Isolation::Loopback => 127,
    };
    let (owner_pid, owner_start_time) = procfs::own_identity();
    for _ in 0..CLAIM_ATTEMPTS {
        let x: u8 = rng.random_range(SUBNET_FIRST..=254);
        let y: u8 = rng.random_range(0..=255);
        let name = format!("fl{x:02x}{y:02x}");
        let prefix = [first, x, y];
        if used.contains(&format!(" {first}.{x}.{y}."))
            || taken_names.contains(&format!(" {name}-"))
            || taken_names.contains(&format!(" {name}_guard"))
        {
            continue;
        }
        let path = dir.join(format!("{name}.json"));
        let state = LabState {
            lab: name.clone(),
            owner_pid,
            owner_start_time,
            isolation: isolation.as_str().to_string(),
            subnet: format!("{first}.{x}.{y}.0/24"),
            namespaces: Vec::new(),
            nft_tables: Vec::new(),
            processes: Vec::new(),
            run_dir: run_dir.to_path_buf(),
        };
        let text = serde_json::to_string_pretty(&state)
            .map_err(|e| Error::io("serialising", &path, std::io::Error::other(e.to_string())))?;
        // Write a private file, then hard-link it to the claimed name: link(2) fails if the
        // name exists, and `clean` can never see a claimed but still empty state file.
        let tmp = dir.join(format!(".{name}.{owner_pid}.tmp"));
        std::fs::write(&tmp, &text).map_err(|e| Error::io("writing", &tmp, e))?;
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => return Ok((name, prefix, path, state)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io("claiming", &path, e)),
        }
    }
    Err(Error::NoSubnet(CLAIM_ATTEMPTS))
}

impl Lab {
    /// Builds the lab: claims a unique name and subnet, creates namespaces, bridge, veths,
    /// addresses, the bridge fault table and the root-namespace guard. On failure everything
    /// made so far is removed before the error is returned.
    pub async fn create(config: LabConfig) -> Result<Lab> {
        if config.nodes == 0 || config.nodes > MAX_NODES {
            return Err(Error::Config(format!(
                "{} nodes: a lab holds 1..={MAX_NODES}",
                config.nodes
            )));
        }
        if config.isolation == Isolation::Namespaces && !procfs::is_root() {
            return Err(Error::NotRoot);
        }
        for sub in ["", "pids", "clock"] {
            let dir = config.run_dir.join(sub);
            std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
        }
        let (name, prefix, state_path, state) = claim(config.isolation, &config.run_dir)?;
        let lab = Lab {
            name,
            isolation: config.isolation,
            run_dir: config.run_dir,
            prefix,
            nodes: (1..=config.nodes).map(|i| format!("n{i}")).collect(),
            processes: Mutex::new(BTreeMap::new()),
            faults: Mutex::new(FaultState::default()),
            state: Mutex::new(state),
            state_path,
            torn_down: false,
        };
        if lab.isolation == Isolation::Namespaces {
            let started = std::time::Instant::now();
            if let Err(error) = lab.build_namespaces().await {
                tracing::error!(lab = %lab.name, %error, "building the lab failed; removing what was made");
                // The build error is the one to report; a teardown failure is logged.
                let name = lab.name.clone();
                if let Err(teardown) = lab.teardown().await {
                    tracing::error!(lab = %name, error = %teardown, "and removing it failed: run `faultline clean`");
                }
                return Err(error);
            }
            tracing::info!(lab = %lab.name, subnet = %lab.subnet(), nodes = lab.nodes.len(),
                elapsed_ms = started.elapsed().as_millis() as u64, "lab ready");
        }
        Ok(lab)
    }

    /// Records a namespace or root table in the state file BEFORE making it (see state.rs).
    fn record(&self, namespace: Option<String>, table: Option<String>) -> Result<()> {
        let mut state = lock(&self.state);
        state.namespaces.extend(namespace);
        state.nft_tables.extend(table);
        state.save(&self.state_path)
    }

    pub(crate) fn save_state(&self) -> Result<()> {
        lock(&self.state).save(&self.state_path)
    }

    async fn build_namespaces(&self) -> Result<()> {
        let br = self.bridge_netns();
        let ctl = self.client_netns();
        let mut all = vec![br.clone(), ctl.clone()];
        all.extend(self.nodes.iter().map(|n| self.netns_of(n)));
        // The guard first: from now on, a packet to the lab subnet from the root namespace is
        // dropped and counted, whatever else happens.
        let table = self.guard_table();
        self.record(None, Some(format!("inet {table}")))?;
        let guard = format!(
            "table inet {table} {{\n  counter leaked {{ }}\n  chain output {{\n    type filter hook output priority -300; policy accept;\n    ip daddr {} counter name leaked drop\n  }}\n}}\n",
            self.subnet()
        );
        sys::nft_script(None, &guard).await?;
        for ns in &all {
            self.record(Some(ns.clone()), None)?;
            sys::run("ip", &["netns", "add", ns], None).await?;
            sys::run("ip", &["-n", ns, "link", "set", "lo", "up"], None).await?;
        }
        sys::run(
            "ip",
            &["-n", &br, "link", "add", "br0", "type", "bridge"],
            None,
        )
        .await?;
        sys::run("ip", &["-n", &br, "link", "set", "br0", "up"], None).await?;
        let mut ports: Vec<(String, String, Ipv4Addr)> = self
            .nodes
            .iter()
            .map(|n| (format!("v{n}"), self.netns_of(n), self.node_ip(n)))
            .collect();
        ports.push(("vctl".to_string(), ctl.clone(), self.client_ip()));
        for (port, ns, ip) in &ports {
            sys::run(
                "ip",
                &[
                    "-n", &br, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                    "netns", ns,
                ],
                None,
            )
            .await?;
            sys::run(
                "ip",
                &["-n", &br, "link", "set", port, "master", "br0", "up"],
                None,
            )
            .await?;
            let cidr = format!("{ip}/24");
            sys::run("ip", &["-n", ns, "addr", "add", &cidr, "dev", "eth0"], None).await?;
            sys::run("ip", &["-n", ns, "link", "set", "eth0", "up"], None).await?;
        }
        sys::nft_script(Some(&br), rules::LAB_TABLE).await?;
        Ok(())
    }

    /// The lab's unique name (`flXXYY`); namespaces are `<name>-<node>`, `<name>-br`, `<name>-ctl`.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// Node names `n1`..`nN`.
    pub fn nodes(&self) -> Vec<String> {
        self.nodes.clone()
    }

    /// The node's IPv4 address (10.X.Y.i in namespaces, 127.X.Y.i on loopback). Bind services
    /// to it (IPv4 only: the rules do not cover IPv6).
    ///
    /// # Panics
    /// On a name that is not `n1`..`nN` — a programming error; see [`Lab::try_node_ip`].
    pub fn node_ip(&self, node: &str) -> Ipv4Addr {
        self.try_node_ip(node)
            .unwrap_or_else(|_| panic!("{node:?} is not a node of lab {} (n1..nN)", self.name))
    }

    /// [`Lab::node_ip`] without the panic.
    pub fn try_node_ip(&self, node: &str) -> Result<Ipv4Addr> {
        let index = self
            .node_index(node)
            .ok_or_else(|| Error::UnknownNode(node.to_string()))?;
        let [a, b, c] = self.prefix;
        // index < MAX_NODES (200), so index + 1 fits in a u8.
        Ok(Ipv4Addr::new(a, b, c, (index + 1) as u8))
    }

    pub(crate) fn node_index(&self, node: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n == node)
    }

    /// The address clients use (inside `ctl`); loopback labs have none of their own.
    pub fn client_ip(&self) -> Ipv4Addr {
        let [a, b, c] = self.prefix;
        Ipv4Addr::new(a, b, c, CLIENT_HOST)
    }

    /// The lab subnet, `10.X.Y.0/24` (or `127.X.Y.0/24`).
    pub fn subnet(&self) -> String {
        let [a, b, c] = self.prefix;
        format!("{a}.{b}.{c}.0/24")
    }

    /// The network namespace a node runs in (None in loopback labs), for `ip netns exec`.
    pub fn netns(&self, node: &str) -> Option<String> {
        (self.isolation == Isolation::Namespaces && self.node_index(node).is_some())
            .then(|| self.netns_of(node))
    }

    pub(crate) fn netns_of(&self, node: &str) -> String {
        format!("{}-{node}", self.name)
    }

    pub(crate) fn bridge_netns(&self) -> String {
        format!("{}-br", self.name)
    }

    /// The client namespace (`<name>-ctl`).
    pub fn client_netns(&self) -> String {
        format!("{}-ctl", self.name)
    }

    fn guard_table(&self) -> String {
        format!("{}_guard", self.name)
    }

    /// Packets the root-namespace guard dropped on their way into the lab subnet: must stay 0
    /// (a non-zero count means something connected to a lab address from outside the lab).
    /// None for loopback labs, which have no guard.
    pub async fn guard_packets(&self) -> Result<Option<u64>> {
        if self.isolation != Isolation::Namespaces {
            return Ok(None);
        }
        let table = self.guard_table();
        let text = sys::run_outside(
            "nft",
            &["-j", "list", "counter", "inet", &table, "leaked"],
            None,
        )
        .await?;
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Command {
            command: format!("nft -j list counter inet {table} leaked"),
            status: "unparsable output".to_string(),
            stderr: e.to_string(),
        })?;
        let packets = json["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|item| item["counter"]["packets"].as_u64());
        Ok(Some(packets.unwrap_or(0)))
    }

    /// A tokio multi-thread runtime for clients. In a namespace lab every one of its threads
    /// (workers and blocking pool) enters `ctl` before running anything, so every socket a
    /// client opens is inside the lab; the rest of the process stays in the root namespace.
    /// The runtime checks this on one of its threads before it is returned.
    ///
    /// Call it from outside any runtime, or from a blocking context: it waits briefly.
    pub fn client_runtime(&self, worker_threads: usize) -> Result<tokio::runtime::Runtime> {
        let thread_name = format!("{}-client", self.name);
        match self.isolation {
            Isolation::Loopback => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(worker_threads.max(1))
                .thread_name(thread_name)
                .enable_all()
                .build()
                .map_err(|e| Error::Runtime(e.to_string())),
            Isolation::Namespaces => {
                runtime_in_netns(Some(&self.client_netns()), &thread_name, worker_threads)
            }
        }
    }

    /// Whether the calling thread is inside `ctl` (always true for loopback labs): for
    /// `debug_assert!`s in client code, which must only open sockets on the client runtime.
    pub fn is_client_thread(&self) -> bool {
        if self.isolation != Isolation::Namespaces {
            return true;
        }
        let ctl = Path::new("/run/netns").join(self.client_netns());
        matches!(
            (netns_inode(&ctl), netns_inode(Path::new("/proc/thread-self/ns/net"))),
            (Ok(a), Ok(b)) if a == b
        )
    }

    /// Undoes everything: heals faults, kills every node (SIGKILL; stop them gracefully
    /// first with [`Lab::stop_node`] if that matters), deletes namespaces, the guard table and
    /// the state file. Call it on every path; [`Drop`] is only the safety net.
    pub async fn teardown(mut self) -> Result<()> {
        self.torn_down = true;
        self.abort_fault_tasks();
        let children = {
            let mut processes = lock(&self.processes);
            std::mem::take(&mut *processes)
        };
        for (node, mut process) in children {
            process.kill_now();
            if let Some(mut child) = process.child.take()
                && tokio::time::timeout(Duration::from_secs(5), child.wait())
                    .await
                    .is_err()
            {
                tracing::error!(lab = %self.name, %node, pid = process.pid, "node did not exit 5 s after SIGKILL");
            }
        }
        let state = lock(&self.state).clone();
        let path = self.state_path.clone();
        let (removed, failed) =
            tokio::task::spawn_blocking(move || state::remove_lab(&state, &path))
                .await
                .map_err(|e| Error::Runtime(format!("teardown task: {e}")))?;
        tracing::debug!(lab = %self.name, removed = removed.len(), "lab torn down");
        if failed.is_empty() {
            Ok(())
        } else {
            Err(Error::Command {
                command: format!("teardown of lab {}", self.name),
                status: format!("{} failures", failed.len()),
                stderr: failed.join("; "),
            })
        }
    }
}

/// A tokio multi-thread runtime whose every thread (workers and blocking pool) enters the
/// network namespace `name` under /run/netns (`None`: the machine's own, PID 1's) before it
/// runs anything, so every socket and child process it makes is there. Checked on one of its
/// threads before it is returned. Call it from outside any runtime or from a blocking context.
pub fn runtime_in_netns(
    name: Option<&str>,
    thread_name: &str,
    worker_threads: usize,
) -> Result<tokio::runtime::Runtime> {
    let path = match name {
        Some(name) => Path::new("/run/netns").join(name),
        None => PathBuf::from("/proc/1/ns/net"),
    };
    let shown = name.unwrap_or("the root network namespace").to_string();
    let file = std::fs::File::open(&path).map_err(|e| Error::io("opening", &path, e))?;
    let expected = netns_inode(&path)?;
    let fd: Arc<OwnedFd> = Arc::new(file.into());
    let entering = shown.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads.max(1))
        .thread_name(thread_name)
        .enable_all()
        .on_thread_start(move || {
            if let Err(error) = nix::sched::setns(fd.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            {
                // A thread outside its namespace could reach the real network with lab
                // addresses; there is no safe way to continue.
                eprintln!("faultline: FATAL: a thread cannot enter {entering}: {error}");
                std::process::abort();
            }
        })
        .build()
        .map_err(|e| Error::Runtime(e.to_string()))?;
    let (tx, rx) = std::sync::mpsc::channel();
    runtime.spawn(async move {
        let _ = tx.send(netns_inode(Path::new("/proc/thread-self/ns/net")));
    });
    let got = rx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|e| Error::Runtime(format!("runtime did not start: {e}")))??;
    if got != expected {
        return Err(Error::Runtime(format!(
            "a runtime thread is in network namespace inode {got}, expected {expected} ({shown})"
        )));
    }
    Ok(runtime)
}

/// The name under /run/netns (as `ip netns` names it) of the calling thread's network
/// namespace; `None` when it is the machine's own (PID 1's) or has no such name.
pub fn current_netns_name() -> Option<String> {
    let here = netns_inode(Path::new("/proc/thread-self/ns/net")).ok()?;
    if netns_inode(Path::new("/proc/1/ns/net")).ok() == Some(here) {
        return None;
    }
    std::fs::read_dir("/run/netns")
        .ok()?
        .flatten()
        .find(|entry| netns_inode(&entry.path()).ok() == Some(here))
        .and_then(|entry| entry.file_name().into_string().ok())
}

fn netns_inode(path: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .map(|m| m.ino())
        .map_err(|e| Error::io("reading", path, e))
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.torn_down {
            return;
        }
        // Loud on purpose: a skipped teardown is a bug in the caller (or a panic unwinding).
        tracing::error!(lab = %self.name, "lab dropped without teardown(): cleaning up best-effort");
        eprintln!(
            "faultline: lab {} dropped without teardown(); removing its namespaces, rules and processes",
            self.name
        );
        self.abort_fault_tasks();
        for process in lock(&self.processes).values_mut() {
            process.kill_now();
        }
        let state = lock(&self.state).clone();
        let (_, failed) = state::remove_lab(&state, &self.state_path);
        for failure in failed {
            eprintln!("faultline: could not remove {failure}: run `faultline clean`");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_and_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}

    #[test]
    fn lab_can_be_shared_across_tasks() {
        send_and_sync::<Lab>();
    }

    /// Type-checked, never run: every async lab method can be `tokio::spawn`ed.
    #[allow(dead_code)]
    fn lab_futures_are_send(lab: &Lab, rng: &mut rand::rngs::StdRng) {
        send(&lab.start_node("n1", crate::NodeCommand::default()));
        send(&lab.kill_node("n1"));
        send(&lab.pause_node("n1"));
        send(&lab.stop_node("n1"));
        send(&lab.restart_node("n1"));
        send(&lab.start_fault(&crate::Fault::Kill(crate::NodeSelection::One), rng, None));
        send(&lab.stop_fault(crate::FaultKind::Kill));
        send(&lab.heal());
        send(&lab.guard_packets());
    }
}
