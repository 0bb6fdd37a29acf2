//! Fault kinds, and how each is installed on the wire and undone.
//!
//! | kind | mechanism | undo |
//! |---|---|---|
//! | partition | pairs `src . dst` in the nft set `bridge faultline cut` (bridge namespace) | flush the set |
//! | kill | SIGKILL to the node's process group | restart, same command and data dir |
//! | pause | SIGSTOP | SIGCONT |
//! | clock | the node's libfaketime timestamp file (`+1.250`, strobe, drift) | write `+0` |
//! | loss | `numgen random mod 100 < N drop` in chain `bridge faultline loss` | flush the chain |
//! | bandwidth | `tc tbf` on the node's eth0 and its bridge port | delete the qdisc |
//! | delay | `tc netem` the same way, only if the kernel has it | delete the qdisc |
//!
//! Partitions follow Jepsen's grudges (jepsen/nemesis.clj: `complete-grudge`, `bridge`,
//! `majorities-ring`): a grudge maps each node to the nodes it cannot hear from.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lab::{Isolation, Lab, lock};
use crate::rules;
use crate::supervisor::NodeStatus;
use crate::sys;

/// The fault families, as named on the command line (`--nemesis partition,kill`) and in the
/// history (`start-partition` / `stop-partition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum FaultKind {
    Partition,
    Kill,
    Pause,
    Clock,
    Loss,
    Bandwidth,
    Delay,
}

impl FaultKind {
    /// What `--nemesis all` means: the kinds every lab on every kernel supports.
    pub const ALL: [FaultKind; 5] = [
        FaultKind::Partition,
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Clock,
        FaultKind::Loss,
    ];

    /// Every kind, in the order a heal undoes them: the network first, then clocks, and the
    /// processes last, so resumed and restarted nodes come back to a healed network.
    pub const HEAL_ORDER: [FaultKind; 7] = [
        FaultKind::Partition,
        FaultKind::Loss,
        FaultKind::Bandwidth,
        FaultKind::Delay,
        FaultKind::Clock,
        FaultKind::Pause,
        FaultKind::Kill,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Partition => "partition",
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Clock => "clock",
            FaultKind::Loss => "loss",
            FaultKind::Bandwidth => "bandwidth",
            FaultKind::Delay => "delay",
        }
    }

    /// The history `f` of this kind's start event (`start-partition`).
    pub fn start_f(self) -> String {
        format!("start-{}", self.name())
    }

    /// The history `f` of this kind's stop event (`stop-partition`).
    pub fn stop_f(self) -> String {
        format!("stop-{}", self.name())
    }

    /// Parses `partition,kill`, `none` (no faults) or `all` ([`FaultKind::ALL`]).
    pub fn parse_list(text: &str) -> Result<Vec<FaultKind>> {
        let mut kinds = Vec::new();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "none" => {}
                "all" => kinds.extend(FaultKind::ALL),
                other => kinds.push(other.parse()?),
            }
        }
        kinds.sort();
        kinds.dedup();
        Ok(kinds)
    }

    fn needs_network(self) -> bool {
        matches!(
            self,
            FaultKind::Partition | FaultKind::Loss | FaultKind::Bandwidth | FaultKind::Delay
        )
    }
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for FaultKind {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        Ok(match text {
            "partition" => FaultKind::Partition,
            "kill" => FaultKind::Kill,
            "pause" => FaultKind::Pause,
            "clock" => FaultKind::Clock,
            "loss" => FaultKind::Loss,
            "bandwidth" => FaultKind::Bandwidth,
            "delay" => FaultKind::Delay,
            other => return Err(Error::UnknownFaultKind(other.to_string())),
        })
    }
}

/// Which nodes a partition separates.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PartitionKind {
    /// One random node cut off from all others, both ways.
    IsolateOne,
    /// The current leader cut off from all others (skipped when there is no leader).
    IsolateLeader,
    /// Random halves: a minority (⌊n/2⌋ nodes) and a majority, cut both ways.
    Halves,
    /// Every node sees a majority of nodes, but no two nodes see the same majority (Jepsen's
    /// `majorities-ring`; needs 4+ nodes).
    MajoritiesRing,
    /// Two halves that cannot hear each other, joined by one node both sides hear (Jepsen's
    /// `bridge`; needs 3+ nodes).
    Bridge,
    /// One random node's packets to the others are dropped; it still hears them.
    OneWay,
    /// Explicit components, cut from each other both ways (nodes not listed are left alone).
    Components(Vec<Vec<String>>),
}

/// Which nodes a kill, pause, clock or link fault hits.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeSelection {
    /// One random node.
    One,
    /// A random minority: ⌊(n−1)/2⌋ nodes (1 of 3, 2 of 5).
    Minority,
    /// The current leader (skipped when there is no leader).
    Leader,
    /// A random non-empty subset: a size from 1 to n, then that many random nodes (Jepsen's
    /// `random-nonempty-subset`, which its clock nemesis uses).
    Subset,
    All,
    Nodes(Vec<String>),
}

/// A clock fault, through the node's libfaketime timestamp file.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClockFault {
    /// Step the clock by `delta_ms` (negative: back in time); cumulative.
    Bump { delta_ms: i64 },
    /// Step each selected node's clock by a delta of its own, drawn when the fault is
    /// installed as Jepsen's `bump-time` draws it (jepsen/nemesis/time.clj `bump-gen`):
    /// ±2^(2..18) ms, log-uniform, i.e. 4 ms to 4.4 minutes either way; cumulative.
    BumpEach,
    /// Flip the clock between now and now + `delta_ms` every `period_ms` until stopped.
    Strobe { delta_ms: i64, period_ms: u64 },
    /// Strobe each selected node's clock with a delta and period of its own, drawn as
    /// Jepsen's `strobe-time` draws them (`strobe-gen`): delta 2^(2..18) ms, period
    /// 2^(0..10) ms.
    StrobeEach,
    /// Let the clock run at `rate` × real time from now on (1.5 fast, 0.5 slow) until
    /// stopped; applied as an offset that grows every 50 ms.
    Skew { rate: f64 },
    /// Back to real time.
    Reset,
}

/// One concrete fault to install.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Fault {
    Partition(PartitionKind),
    Kill(NodeSelection),
    Pause(NodeSelection),
    Clock(ClockFault, NodeSelection),
    /// Drop `percent` % of the packets to and from the nodes (each packet one coin flip).
    Loss {
        percent: u8,
        nodes: NodeSelection,
    },
    /// Limit the nodes' links to `kbit` kbit/s each way (token bucket).
    Bandwidth {
        kbit: u32,
        nodes: NodeSelection,
    },
    /// Delay every packet to and from the nodes by `ms` ± `jitter_ms` (needs netem).
    Delay {
        ms: u32,
        jitter_ms: u32,
        nodes: NodeSelection,
    },
}

impl Fault {
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Partition(_) => FaultKind::Partition,
            Fault::Kill(_) => FaultKind::Kill,
            Fault::Pause(_) => FaultKind::Pause,
            Fault::Clock(..) => FaultKind::Clock,
            Fault::Loss { .. } => FaultKind::Loss,
            Fault::Bandwidth { .. } => FaultKind::Bandwidth,
            Fault::Delay { .. } => FaultKind::Delay,
        }
    }

    /// Whether installing it asks who the leader is.
    pub fn needs_leader(&self) -> bool {
        matches!(
            self,
            Fault::Partition(PartitionKind::IsolateLeader)
                | Fault::Kill(NodeSelection::Leader)
                | Fault::Pause(NodeSelection::Leader)
                | Fault::Clock(_, NodeSelection::Leader)
                | Fault::Loss {
                    nodes: NodeSelection::Leader,
                    ..
                }
                | Fault::Bandwidth {
                    nodes: NodeSelection::Leader,
                    ..
                }
                | Fault::Delay {
                    nodes: NodeSelection::Leader,
                    ..
                }
        )
    }
}

/// What a nemesis action did. ip/nft/tc failures are not here: they are [`Error`]s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum Action {
    /// The fault (or its undo) is in place.
    Installed(Applied),
    /// Nothing was done, for the reason given (no leader, nothing to undo, not supported here).
    Skipped(String),
    /// Something was done but its effect is not certain (e.g. a node restarted and exited at
    /// once); the reason says what is known.
    Indeterminate(String),
}

/// The exact description that goes into the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// Human-readable and exact: "isolate n3 from n1,n2,n4,n5".
    pub description: String,
    /// The nodes the action touched.
    pub nodes: Vec<String>,
}

impl Action {
    /// The history `value` of this action: `{"description": ..., "nodes": [...]}` (with
    /// `"skipped"`/`"indeterminate"` and the reason when it did not install).
    pub fn value(&self) -> serde_json::Value {
        match self {
            Action::Installed(a) => {
                serde_json::json!({"description": a.description, "nodes": a.nodes})
            }
            Action::Skipped(why) => {
                serde_json::json!({"description": format!("skipped: {why}"), "nodes": [], "skipped": why})
            }
            Action::Indeterminate(why) => {
                serde_json::json!({"description": format!("indeterminate: {why}"), "nodes": [], "indeterminate": why})
            }
        }
    }

    pub fn is_installed(&self) -> bool {
        matches!(self, Action::Installed(_))
    }

    pub(crate) fn installed(description: String, nodes: Vec<String>) -> Action {
        Action::Installed(Applied { description, nodes })
    }
}

/// Why a stop of `kind` is skipped when no fault of that kind is active, in the lab and on
/// remote hosts alike.
pub(crate) fn nothing_to_stop(kind: FaultKind) -> String {
    match kind {
        FaultKind::Partition => "no partition is active".to_string(),
        FaultKind::Kill => "no node is killed".to_string(),
        FaultKind::Pause => "no node is paused".to_string(),
        FaultKind::Clock => "no clock is faulted".to_string(),
        FaultKind::Loss => "no packet loss is active".to_string(),
        FaultKind::Bandwidth | FaultKind::Delay => format!("no {kind} fault is active"),
    }
}

/// The nodes a stop of `kind` undoes, `faulted` as taken out of the record, sorted; or
/// `Err(why)` when there are none.
pub(crate) fn to_undo(
    kind: FaultKind,
    faulted: impl IntoIterator<Item = String>,
) -> std::result::Result<Vec<String>, String> {
    let nodes = sorted(faulted);
    if nodes.is_empty() {
        Err(nothing_to_stop(kind))
    } else {
        Ok(nodes)
    }
}

/// The value of a plan or selection (`Result<T, String>`), or else an early
/// `return Ok(Action::Skipped(why))` from the fault function it is in: a fault that does
/// not apply right now is skipped with its reason, in the lab and on remote hosts alike.
macro_rules! or_skip {
    ($planned:expr) => {
        match $planned {
            Ok(planned) => planned,
            Err(why) => return Ok($crate::fault::Action::Skipped(why)),
        }
    };
}
pub(crate) use or_skip;

/// Stops each kind in [`FaultKind::HEAL_ORDER`] with `stop`: the heal of the lab and of
/// remote hosts. Returns the kinds that had something to undo, with what was done.
pub(crate) async fn heal_in_order<Stop>(
    mut stop: impl FnMut(FaultKind) -> Stop,
) -> Result<Vec<(FaultKind, Action)>>
where
    Stop: Future<Output = Result<Action>>,
{
    let mut done = Vec::new();
    for kind in FaultKind::HEAL_ORDER {
        let action = stop(kind).await?;
        if !matches!(action, Action::Skipped(_)) {
            done.push((kind, action));
        }
    }
    Ok(done)
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ClockSetting {
    offset_ms: i64,
}

/// What is currently broken in a lab, so stop and heal know what to undo.
#[derive(Default)]
pub(crate) struct FaultState {
    /// Clock strobe/drift threads: their stop flags and handles. Threads, not tokio tasks, so
    /// they run whatever runtime (or none) the caller drives, and stop can join them before
    /// it writes the reset (no late write can undo the reset).
    pub(crate) tasks: Vec<ClockTask>,
    partition: Option<String>,
    killed: BTreeSet<String>,
    paused: BTreeSet<String>,
    clocks: BTreeMap<String, ClockSetting>,
    loss: Option<String>,
    bandwidth: BTreeSet<String>,
    delay: BTreeSet<String>,
    netem: Option<bool>,
}

pub(crate) fn join(nodes: &[String]) -> String {
    nodes.join(",")
}

/// A grudge: node → nodes it cannot hear from (jepsen/nemesis.clj).
pub(crate) type Grudge = BTreeMap<String, BTreeSet<String>>;

/// Both-ways cut between components.
fn complete_grudge(components: &[Vec<String>]) -> Grudge {
    let mut grudge = Grudge::new();
    for (i, component) in components.iter().enumerate() {
        for node in component {
            let others: BTreeSet<String> = components
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .flat_map(|(_, c)| c.iter().cloned())
                .collect();
            grudge.entry(node.clone()).or_default().extend(others);
        }
    }
    grudge
}

/// Sorted by node number (n2 before n10) for readable descriptions.
fn sort_nodes(nodes: &mut [String]) {
    nodes.sort_by_key(|n| (n.len(), n.clone()));
}

pub(crate) fn sorted(nodes: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut nodes: Vec<String> = nodes.into_iter().collect();
    sort_nodes(&mut nodes);
    nodes
}

/// Majorities ring (jepsen/nemesis.clj `majorities-ring`): on a random ring, each node hears
/// the nodes within `radius` of it, where the window 2·radius+1 is the smallest odd number
/// ≥ a majority. Distinct windows, each a majority. None when every node would hear all.
fn majorities_ring(ring: &[String]) -> Option<Grudge> {
    let n = ring.len();
    let majority = n / 2 + 1;
    let radius = majority / 2;
    if 2 * radius + 1 >= n {
        return None;
    }
    let mut grudge = Grudge::new();
    for (i, node) in ring.iter().enumerate() {
        let hears: BTreeSet<usize> = (0..=2 * radius).map(|k| (i + n + k - radius) % n).collect();
        let cannot: BTreeSet<String> = (0..n)
            .filter(|j| !hears.contains(j))
            .map(|j| ring[j].clone())
            .collect();
        grudge.insert(node.clone(), cannot);
    }
    Some(grudge)
}

pub(crate) fn describe_grudge(grudge: &Grudge) -> String {
    let mut nodes: Vec<String> = grudge.keys().cloned().collect();
    sort_nodes(&mut nodes);
    nodes
        .iter()
        .filter(|n| !grudge[*n].is_empty())
        .map(|n| {
            format!(
                "{n} cannot hear {}",
                join(&sorted(grudge[n].iter().cloned()))
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// libfaketime offset spec for an offset in ms: `+1.250`, `-0.100`.
pub(crate) fn faketime_spec(offset_ms: i64) -> String {
    let sign = if offset_ms < 0 { '-' } else { '+' };
    let abs = offset_ms.unsigned_abs();
    format!("{sign}{}.{:03}\n", abs / 1000, abs % 1000)
}

/// Replaces a faketime file atomically (write a sibling, rename over): with
/// FAKETIME_NO_CACHE the node re-reads the file on every clock call, and a plain truncate +
/// write could be read half-way, as an empty spec, i.e. a spurious jump back to real time.
pub(crate) fn write_spec(path: &std::path::Path, spec: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("faketime.tmp");
    std::fs::write(&tmp, spec)?;
    std::fs::rename(&tmp, path)
}

/// Upper bound on any clock background task, in case stop and teardown both never run.
const CLOCK_TASK_LIMIT: Duration = Duration::from_secs(3600);
const SKEW_TICK: Duration = Duration::from_millis(50);

pub(crate) struct ClockTask {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

/// Runs `tick(elapsed)` every `period` on a thread until stopped (or CLOCK_TASK_LIMIT).
fn clock_task(period: Duration, mut tick: impl FnMut(Duration) + Send + 'static) -> ClockTask {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        while !flag.load(Ordering::Acquire) && started.elapsed() < CLOCK_TASK_LIMIT {
            tick(started.elapsed());
            std::thread::sleep(period);
        }
    });
    ClockTask { stop, thread }
}

/// Resolves a selection among the eligible `pool` of `all` nodes (minority counts `all`);
/// Err(why) when it selects nothing. Shared by the local lab and remote hosts.
pub(crate) fn select_nodes(
    all: &[String],
    selection: &NodeSelection,
    pool: &[String],
    rng: &mut impl Rng,
    leader: Option<&str>,
) -> std::result::Result<Vec<String>, String> {
    let picked: Vec<String> = match selection {
        NodeSelection::One => pool.choose(rng).cloned().into_iter().collect(),
        NodeSelection::Minority => {
            let mut pool = pool.to_vec();
            pool.shuffle(rng);
            pool.truncate((all.len().saturating_sub(1)) / 2);
            pool
        }
        NodeSelection::Leader => match leader {
            None => return Err("no leader is known right now".to_string()),
            Some(l) if !pool.iter().any(|n| n == l) => {
                return Err(format!("leader {l} is not eligible (not running)"));
            }
            Some(l) => vec![l.to_string()],
        },
        NodeSelection::Subset => {
            let mut pool = pool.to_vec();
            pool.shuffle(rng);
            let size = if pool.is_empty() {
                0
            } else {
                rng.random_range(1..=pool.len())
            };
            pool.truncate(size);
            pool
        }
        NodeSelection::All => pool.to_vec(),
        NodeSelection::Nodes(nodes) => {
            for n in nodes {
                if !all.contains(n) {
                    return Err(format!("{n} is not a node of this cluster"));
                }
            }
            nodes.iter().filter(|n| pool.contains(n)).cloned().collect()
        }
    };
    if picked.is_empty() {
        Err(format!(
            "the selection {selection:?} picks no eligible node"
        ))
    } else {
        Ok(sorted(picked))
    }
}

/// Jepsen's clock deltas (jepsen/nemesis/time.clj): 2^(2..18) ms, log-uniform.
fn jepsen_clock_delta_ms(rng: &mut impl Rng) -> i64 {
    2f64.powf(rng.random_range(2.0..18.0)) as i64
}

/// What `clock` does to each of `nodes`: the concrete fault per node, with the per-node
/// deltas of [`ClockFault::BumpEach`] and [`ClockFault::StrobeEach`] drawn from `rng`, or
/// `Err(why)` when it cannot apply. Shared by the local lab and remote hosts.
pub(crate) fn plan_clock(
    clock: &ClockFault,
    nodes: &[String],
    rng: &mut impl Rng,
) -> std::result::Result<Vec<(String, ClockFault)>, String> {
    if let ClockFault::Skew { rate } = clock
        && (!rate.is_finite() || *rate <= 0.0)
    {
        return Err(format!("clock rate {rate} must be a positive number"));
    }
    Ok(nodes
        .iter()
        .map(|node| {
            let fault = match clock {
                ClockFault::BumpEach => {
                    let sign = if rng.random_bool(0.5) { 1 } else { -1 };
                    ClockFault::Bump {
                        delta_ms: sign * jepsen_clock_delta_ms(rng),
                    }
                }
                ClockFault::StrobeEach => ClockFault::Strobe {
                    delta_ms: jepsen_clock_delta_ms(rng),
                    period_ms: 2f64.powf(rng.random_range(0.0..10.0)) as u64,
                },
                concrete => concrete.clone(),
            };
            (node.clone(), fault)
        })
        .collect())
}

/// The history's description of a clock plan: `bump clock of n1,n3 by +100 ms` when every
/// node got the same, `bump clock of n1 by -4660 ms, n3 by +2100 ms` when each got its own.
pub(crate) fn describe_clock(plan: &[(String, ClockFault)]) -> String {
    // Nodes with the same fault, in plan order.
    let mut groups: Vec<(&ClockFault, Vec<String>)> = Vec::new();
    for (node, fault) in plan {
        match groups.iter_mut().find(|(f, _)| *f == fault) {
            Some((_, nodes)) => nodes.push(node.clone()),
            None => groups.push((fault, vec![node.clone()])),
        }
    }
    let head = |fault: &ClockFault| match fault {
        ClockFault::Bump { .. } | ClockFault::BumpEach => "bump",
        ClockFault::Strobe { .. } | ClockFault::StrobeEach => "strobe",
        ClockFault::Skew { .. } => "skew",
        ClockFault::Reset => "reset",
    };
    let tail = |fault: &ClockFault| match fault {
        ClockFault::Bump { delta_ms } => format!(" by {delta_ms:+} ms"),
        ClockFault::Strobe {
            delta_ms,
            period_ms,
        } => format!(" between +0 and {delta_ms:+} ms every {period_ms} ms"),
        ClockFault::Skew { rate } => format!(" to run at {rate}x real time"),
        ClockFault::Reset | ClockFault::BumpEach | ClockFault::StrobeEach => String::new(),
    };
    let same_kind = groups
        .windows(2)
        .all(|pair| head(pair[0].0) == head(pair[1].0));
    let parts: Vec<String> = groups
        .iter()
        .enumerate()
        .map(|(i, (fault, nodes))| {
            let nodes = join(&sorted(nodes.clone()));
            if i == 0 || !same_kind {
                format!("{} clock of {nodes}{}", head(fault), tail(fault))
            } else {
                format!("{nodes}{}", tail(fault))
            }
        })
        .collect();
    parts.join(if same_kind { ", " } else { "; " })
}

/// Plans a partition among `nodes` (Jepsen's grudges): the grudge and its exact description,
/// or `Err(why)` when it does not apply (too few nodes, no leader). Shared by the local lab
/// and remote hosts.
pub(crate) fn plan_partition(
    nodes: &[String],
    partition: &PartitionKind,
    rng: &mut impl Rng,
    leader: Option<&str>,
) -> Result<std::result::Result<(Grudge, String), String>> {
    let mut shuffled = nodes.to_vec();
    shuffled.shuffle(rng);
    let n = nodes.len();
    let planned = match partition {
        PartitionKind::IsolateOne | PartitionKind::IsolateLeader => {
            let victim = if *partition == PartitionKind::IsolateLeader {
                match leader {
                    Some(l) if nodes.contains(&l.to_string()) => l.to_string(),
                    Some(l) => {
                        return Ok(Err(format!("leader {l:?} is not a node of this lab")));
                    }
                    None => {
                        return Ok(Err("no leader is known right now".to_string()));
                    }
                }
            } else {
                shuffled[0].clone()
            };
            if n < 2 {
                return Ok(Err("a partition needs 2+ nodes".to_string()));
            }
            let rest: Vec<String> = nodes.iter().filter(|x| **x != victim).cloned().collect();
            let what = if *partition == PartitionKind::IsolateLeader {
                "isolate leader"
            } else {
                "isolate"
            };
            let description = format!("{what} {victim} from {}", join(&rest));
            (complete_grudge(&[vec![victim], rest]), description)
        }
        PartitionKind::Halves => {
            if n < 2 {
                return Ok(Err("a partition needs 2+ nodes".to_string()));
            }
            let minority = sorted(shuffled[..n / 2].to_vec());
            let majority = sorted(shuffled[n / 2..].to_vec());
            let description = format!(
                "halves: minority {} | majority {}",
                join(&minority),
                join(&majority)
            );
            (complete_grudge(&[minority, majority]), description)
        }
        PartitionKind::MajoritiesRing => match majorities_ring(&shuffled) {
            None => {
                return Ok(Err(format!(
                    "a majorities ring needs 4+ nodes (this lab has {n})"
                )));
            }
            Some(grudge) => {
                let description = format!("majorities ring: {}", describe_grudge(&grudge));
                (grudge, description)
            }
        },
        PartitionKind::Bridge => {
            if n < 3 {
                return Ok(Err(format!("a bridge needs 3+ nodes (this lab has {n})")));
            }
            let half = n / 2;
            let left = sorted(shuffled[..half].to_vec());
            let bridge = shuffled[half].clone();
            let right = sorted(shuffled[half + 1..].to_vec());
            let description = format!(
                "bridge: {} | {} | {} ({} hears both sides)",
                join(&left),
                bridge,
                join(&right),
                bridge
            );
            (complete_grudge(&[left, right]), description)
        }
        PartitionKind::OneWay => {
            if n < 2 {
                return Ok(Err("a partition needs 2+ nodes".to_string()));
            }
            let sender = shuffled[0].clone();
            let rest: Vec<String> = nodes.iter().filter(|x| **x != sender).cloned().collect();
            let mut grudge = Grudge::new();
            for node in &rest {
                grudge.insert(node.clone(), BTreeSet::from([sender.clone()]));
            }
            let description = format!(
                "one-way: {} cannot hear {sender}; {sender} still hears them",
                join(&rest)
            );
            (grudge, description)
        }
        PartitionKind::Components(components) => {
            for node in components.iter().flatten() {
                if !nodes.contains(node) {
                    return Err(Error::UnknownNode(node.clone()));
                }
            }
            let description = format!(
                "partition {}",
                components
                    .iter()
                    .map(|c| join(&sorted(c.clone())))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
            (complete_grudge(components), description)
        }
    };
    Ok(Ok(planned))
}

impl Lab {
    /// Stops clock threads without waiting (teardown, Drop: the files go away anyway).
    pub(crate) fn abort_fault_tasks(&self) {
        for task in lock(&self.faults).tasks.drain(..) {
            task.stop.store(true, Ordering::Release);
        }
    }

    /// Stops clock threads and waits for them (each sleeps at most one period).
    async fn join_fault_tasks(&self) {
        let tasks: Vec<ClockTask> = lock(&self.faults).tasks.drain(..).collect();
        for task in &tasks {
            task.stop.store(true, Ordering::Release);
        }
        let _ = tokio::task::spawn_blocking(move || {
            for task in tasks {
                let _ = task.thread.join();
            }
        })
        .await;
    }

    fn is_live(&self, node: &str) -> bool {
        matches!(
            self.node_status(node),
            Ok(NodeStatus::Running { .. } | NodeStatus::Paused { .. })
        )
    }

    /// Nodes whose process runs (or is paused) right now.
    fn live_nodes(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| self.is_live(n))
            .cloned()
            .collect()
    }

    /// Resolves a selection among `pool`; Err(why) when it selects nothing.
    fn select(
        &self,
        selection: &NodeSelection,
        pool: &[String],
        rng: &mut impl Rng,
        leader: Option<&str>,
    ) -> std::result::Result<Vec<String>, String> {
        select_nodes(&self.nodes, selection, pool, rng, leader)
    }

    /// Installs `fault`. `leader` is the harness's current answer to "who leads" (only asked
    /// for faults where [`Fault::needs_leader`]). A second fault of the same kind replaces a
    /// partition, and adds to kills, pauses, clocks and link faults.
    pub async fn start_fault(
        &self,
        fault: &Fault,
        rng: &mut impl Rng,
        leader: Option<&str>,
    ) -> Result<Action> {
        let kind = fault.kind();
        if kind.needs_network() && self.isolation != Isolation::Namespaces {
            return Ok(Action::Skipped(format!(
                "{kind} faults need the namespace lab (this lab uses loopback isolation: run as root or under unshare -Urnm)"
            )));
        }
        let action = match fault {
            Fault::Partition(partition) => self.start_partition(partition, rng, leader).await?,
            Fault::Kill(selection) | Fault::Pause(selection) => {
                let pause = kind == FaultKind::Pause;
                let pool = if pause {
                    self.nodes
                        .iter()
                        .filter(|n| matches!(self.node_status(n), Ok(NodeStatus::Running { .. })))
                        .cloned()
                        .collect()
                } else {
                    self.live_nodes()
                };
                let nodes = or_skip!(self.select(selection, &pool, rng, leader));
                let mut signalled = Vec::new();
                let mut gone = Vec::new();
                for node in &nodes {
                    let sent = if pause {
                        self.pause_node(node).await
                    } else {
                        self.kill_node(node).await
                    };
                    match sent {
                        Ok(()) => {
                            signalled.push(node.clone());
                            let mut faults = lock(&self.faults);
                            if pause {
                                faults.paused.insert(node.clone());
                            } else {
                                faults.killed.insert(node.clone());
                                faults.paused.remove(node);
                            }
                        }
                        // It exited by itself since it was picked: not ours to signal, and the
                        // run goes on (its exit shows up in `unexpected_exits`).
                        Err(Error::Node { .. }) if !self.is_live(node) => gone.push(node.clone()),
                        Err(e) => return Err(e),
                    }
                }
                if signalled.is_empty() {
                    return Ok(Action::Skipped(format!(
                        "{} exited before the {kind}",
                        join(&gone)
                    )));
                }
                let signal = if pause { "SIGSTOP" } else { "SIGKILL" };
                Action::installed(format!("{kind} {} ({signal})", join(&signalled)), signalled)
            }
            Fault::Clock(clock, selection) => self.start_clock(clock, selection, rng, leader)?,
            Fault::Loss { percent, nodes } => {
                let nodes = or_skip!(self.select(nodes, &self.nodes, rng, leader));
                self.start_loss(*percent, &nodes).await?
            }
            Fault::Bandwidth { kbit, nodes } => {
                let nodes = or_skip!(self.select(nodes, &self.nodes, rng, leader));
                self.shape(&nodes, &rules::bandwidth_qdisc(*kbit)).await?;
                lock(&self.faults).bandwidth.extend(nodes.iter().cloned());
                Action::installed(
                    format!("limit {} to {kbit} kbit/s each way (tc tbf)", join(&nodes)),
                    nodes,
                )
            }
            Fault::Delay {
                ms,
                jitter_ms,
                nodes,
            } => {
                if !self.has_netem().await {
                    return Ok(Action::Skipped(
                        "this kernel has no tc netem (sch_netem), so packets cannot be delayed; \
                         use a kernel with CONFIG_NET_SCH_NETEM, or loss/bandwidth faults instead"
                            .to_string(),
                    ));
                }
                let nodes = or_skip!(self.select(nodes, &self.nodes, rng, leader));
                self.shape(&nodes, &rules::delay_qdisc(*ms, *jitter_ms))
                    .await?;
                lock(&self.faults).delay.extend(nodes.iter().cloned());
                Action::installed(
                    format!(
                        "delay packets to and from {} by {ms} ms ± {jitter_ms} ms (tc netem)",
                        join(&nodes)
                    ),
                    nodes,
                )
            }
        };
        if let Action::Installed(applied) = &action {
            tracing::info!(lab = %self.name, f = %kind.start_f(), description = %applied.description, "fault started");
        }
        Ok(action)
    }

    async fn start_partition(
        &self,
        partition: &PartitionKind,
        rng: &mut impl Rng,
        leader: Option<&str>,
    ) -> Result<Action> {
        let (grudge, description) = or_skip!(plan_partition(&self.nodes, partition, rng, leader)?);
        // A packet from `src` to `dst` is dropped when `dst` cannot hear `src`.
        let mut cuts = Vec::new();
        let mut touched = BTreeSet::new();
        for (dst, srcs) in &grudge {
            for src in srcs {
                cuts.push((self.node_ip(src), self.node_ip(dst)));
                touched.insert(dst.clone());
                touched.insert(src.clone());
            }
        }
        sys::nft_script(Some(&self.bridge_netns()), &rules::lab_partition(&cuts)).await?;
        lock(&self.faults).partition = Some(description.clone());
        Ok(Action::installed(description, sorted(touched)))
    }

    fn start_clock(
        &self,
        clock: &ClockFault,
        selection: &NodeSelection,
        rng: &mut impl Rng,
        leader: Option<&str>,
    ) -> Result<Action> {
        // Only nodes started under libfaketime can be reached; say why for the others.
        let (capable, incapable): (Vec<String>, Vec<String>) =
            self.nodes.iter().cloned().partition(|n| {
                lock(&self.processes)
                    .get(n)
                    .is_some_and(|p| p.command.faketime)
            });
        if capable.is_empty() {
            return Ok(Action::Skipped(format!(
                "no node was started under libfaketime ({}): the target does not read time through libc \
                 (Go programs such as etcd and Consul read the clock through the vDSO, which libfaketime \
                 cannot intercept); clock faults for them need remote hosts",
                join(&incapable)
            )));
        }
        let nodes = or_skip!(self.select(selection, &capable, rng, leader));
        let plan = or_skip!(plan_clock(clock, &nodes, rng));
        for (node, fault) in &plan {
            let base = lock(&self.faults)
                .clocks
                .get(node)
                .map_or(0, |c| c.offset_ms);
            let path = self.faketime_path(node);
            match *fault {
                ClockFault::Bump { delta_ms } => {
                    let mut faults = lock(&self.faults);
                    let setting = faults.clocks.entry(node.clone()).or_default();
                    setting.offset_ms += delta_ms;
                    self.write_clock(node, setting.offset_ms)?;
                }
                ClockFault::Reset => {
                    lock(&self.faults).clocks.remove(node);
                    self.write_clock(node, 0)?;
                }
                ClockFault::Strobe {
                    delta_ms,
                    period_ms,
                } => {
                    let mut high = false;
                    let task = clock_task(Duration::from_millis(period_ms.max(1)), move |_| {
                        high = !high;
                        let _ = write_spec(
                            &path,
                            &faketime_spec(base + if high { delta_ms } else { 0 }),
                        );
                    });
                    let mut faults = lock(&self.faults);
                    faults.tasks.push(task);
                    faults.clocks.entry(node.clone()).or_default();
                }
                ClockFault::Skew { rate } => {
                    // libfaketime's own `xRATE` counts from process start, so switching it on a
                    // running node would also step its clock by (rate-1)×uptime; a growing
                    // offset gives a drift that starts now.
                    let task = clock_task(SKEW_TICK, move |elapsed| {
                        let drift = ((rate - 1.0) * elapsed.as_millis() as f64) as i64;
                        let _ = write_spec(&path, &faketime_spec(base + drift));
                    });
                    let mut faults = lock(&self.faults);
                    faults.tasks.push(task);
                    faults.clocks.entry(node.clone()).or_default();
                }
                // `plan_clock` resolves these into the concrete kinds above.
                ClockFault::BumpEach | ClockFault::StrobeEach => {}
            }
        }
        Ok(Action::installed(describe_clock(&plan), nodes))
    }

    fn write_clock(&self, node: &str, offset_ms: i64) -> Result<()> {
        let path = self.faketime_path(node);
        write_spec(&path, &faketime_spec(offset_ms)).map_err(|e| Error::io("writing", &path, e))
    }

    async fn start_loss(&self, percent: u8, nodes: &[String]) -> Result<Action> {
        let percent = percent.min(100);
        let ips: Vec<Ipv4Addr> = nodes.iter().map(|n| self.node_ip(n)).collect();
        let script = rules::lab_loss(&ips, &rules::loss_verdict(percent));
        sys::nft_script(Some(&self.bridge_netns()), &script).await?;
        let description = format!(
            "drop {percent}% of packets to and from {} (nft numgen)",
            join(nodes)
        );
        lock(&self.faults).loss = Some(description.clone());
        Ok(Action::installed(description, nodes.to_vec()))
    }

    /// Both ends of a node's link, as (namespace, interface): its eth0 (egress from the node)
    /// and its bridge port (egress towards the node).
    fn link_ends(&self, node: &str) -> [(String, String); 2] {
        [
            (self.netns_of(node), "eth0".to_string()),
            (self.bridge_netns(), format!("v{node}")),
        ]
    }

    /// Puts `qdisc` on both ends of each node's link.
    async fn shape(&self, nodes: &[String], qdisc: &str) -> Result<()> {
        let words: Vec<&str> = qdisc.split_whitespace().collect();
        for node in nodes {
            for (ns, dev) in self.link_ends(node) {
                let mut args = vec!["-n", &ns, "qdisc", "replace", "dev", &dev, "root"];
                args.extend(&words);
                sys::run("tc", &args, None).await?;
            }
        }
        Ok(())
    }

    async fn unshape(&self, nodes: &[String]) -> Result<()> {
        for node in nodes {
            for (ns, dev) in self.link_ends(node) {
                // "No such file" means no root qdisc left: already unshaped.
                if let Err(e) = sys::run(
                    "tc",
                    &["-n", &ns, "qdisc", "del", "dev", &dev, "root"],
                    None,
                )
                .await
                    && !e.to_string().contains("No such file")
                    && !e
                        .to_string()
                        .contains("Cannot delete qdisc with handle of zero")
                {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Probes once whether `tc netem` exists, on the bridge namespace's loopback.
    async fn has_netem(&self) -> bool {
        if let Some(known) = lock(&self.faults).netem {
            return known;
        }
        let ns = self.bridge_netns();
        let ok = sys::run(
            "tc",
            &[
                "-n", &ns, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
            ],
            None,
        )
        .await
        .is_ok();
        if ok {
            let _ = sys::run(
                "tc",
                &["-n", &ns, "qdisc", "del", "dev", "lo", "root"],
                None,
            )
            .await;
        }
        lock(&self.faults).netem = Some(ok);
        ok
    }

    /// Whether this lab can run `kind` at all (network kinds need namespaces; delay needs
    /// netem). `Err(why)` says why not.
    pub async fn supports(&self, kind: FaultKind) -> std::result::Result<(), String> {
        if kind.needs_network() && self.isolation != Isolation::Namespaces {
            return Err(format!("{kind} faults need the namespace lab"));
        }
        if kind == FaultKind::Delay && !self.has_netem().await {
            return Err("this kernel has no tc netem".to_string());
        }
        Ok(())
    }

    /// Undoes every fault of `kind`: flush partitions or loss rules, restart killed nodes,
    /// resume paused ones, reset clocks, remove qdiscs. Skipped when nothing is active.
    pub async fn stop_fault(&self, kind: FaultKind) -> Result<Action> {
        let action = match kind {
            FaultKind::Partition => {
                self.flush_bridge_rules(
                    kind,
                    rules::LAB_HEAL_PARTITION,
                    |faults| faults.partition.take(),
                    "heal partition",
                )
                .await?
            }
            FaultKind::Kill => {
                let killed = or_skip!(to_undo(
                    kind,
                    std::mem::take(&mut lock(&self.faults).killed)
                ));
                let mut exited = Vec::new();
                for node in &killed {
                    // Someone (the target's own recovery) may have brought it back already.
                    if matches!(
                        self.node_status(node),
                        Ok(NodeStatus::Killed | NodeStatus::Exited { .. })
                    ) {
                        self.restart_node(node).await?;
                    }
                }
                // A node that dies right after restart (bad data dir, port in use) is worth
                // knowing about, but its restart did happen.
                tokio::time::sleep(Duration::from_millis(50)).await;
                for node in &killed {
                    if let Ok(NodeStatus::Exited { status }) = self.node_status(node) {
                        exited.push(format!("{node} exited at once ({status})"));
                    }
                }
                if exited.is_empty() {
                    Action::installed(format!("restart {}", join(&killed)), killed)
                } else {
                    Action::Indeterminate(format!(
                        "restarted {}; {}",
                        join(&killed),
                        exited.join("; ")
                    ))
                }
            }
            FaultKind::Pause => {
                let paused = or_skip!(to_undo(
                    kind,
                    std::mem::take(&mut lock(&self.faults).paused)
                ));
                let mut resumed = Vec::new();
                for node in &paused {
                    // A paused node that was killed (or died) meanwhile has nothing to resume.
                    match self.resume_node(node).await {
                        Ok(()) => resumed.push(node.clone()),
                        Err(Error::Node { .. }) if !self.is_live(node) => {}
                        Err(e) => return Err(e),
                    }
                }
                if resumed.is_empty() {
                    Action::Skipped(format!(
                        "{} no longer run: nothing to resume",
                        join(&paused)
                    ))
                } else {
                    Action::installed(format!("resume {} (SIGCONT)", join(&resumed)), resumed)
                }
            }
            FaultKind::Clock => {
                self.join_fault_tasks().await;
                let nodes = or_skip!(to_undo(
                    kind,
                    std::mem::take(&mut lock(&self.faults).clocks).into_keys()
                ));
                for node in &nodes {
                    self.write_clock(node, 0)?;
                }
                Action::installed(format!("reset clock of {}", join(&nodes)), nodes)
            }
            FaultKind::Loss => {
                self.flush_bridge_rules(
                    kind,
                    rules::LAB_STOP_LOSS,
                    |faults| faults.loss.take(),
                    "stop packet loss",
                )
                .await?
            }
            FaultKind::Bandwidth | FaultKind::Delay => {
                let shaped = {
                    let mut faults = lock(&self.faults);
                    let set = if kind == FaultKind::Bandwidth {
                        &mut faults.bandwidth
                    } else {
                        &mut faults.delay
                    };
                    std::mem::take(set)
                };
                let nodes = or_skip!(to_undo(kind, shaped));
                self.unshape(&nodes).await?;
                Action::installed(format!("remove {kind} limits from {}", join(&nodes)), nodes)
            }
        };
        if let Action::Installed(applied) = &action {
            tracing::info!(lab = %self.name, f = %kind.stop_f(), description = %applied.description, "fault stopped");
        }
        Ok(action)
    }

    /// Runs one of the bridge table's flushes (`flush`, which undoes every fault of `kind`)
    /// and reports the fault that `take` finds recorded as `<undo> (<what it was>)`.
    async fn flush_bridge_rules(
        &self,
        kind: FaultKind,
        flush: &str,
        take: impl FnOnce(&mut FaultState) -> Option<String>,
        undo: &str,
    ) -> Result<Action> {
        if self.isolation != Isolation::Namespaces {
            return Ok(Action::Skipped(nothing_to_stop(kind)));
        }
        // Flush even when we think nothing is active: it is idempotent and cheap.
        sys::nft_script(Some(&self.bridge_netns()), flush).await?;
        let was = take(&mut lock(&self.faults));
        Ok(match was {
            Some(was) => Action::installed(format!("{undo} ({was})"), self.nodes.clone()),
            None => Action::Skipped(nothing_to_stop(kind)),
        })
    }

    /// Undoes everything (every kind), for the final heal before the last reads. Returns the
    /// kinds that had something to undo, with what was done.
    pub async fn heal(&self) -> Result<Vec<(FaultKind, Action)>> {
        heal_in_order(|kind| self.stop_fault(kind)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn fault_lists_parse_none_all_and_reject_typos() {
        assert_eq!(FaultKind::parse_list("none").unwrap(), vec![]);
        assert_eq!(
            FaultKind::parse_list("all").unwrap(),
            FaultKind::ALL.to_vec()
        );
        assert_eq!(
            FaultKind::parse_list("kill, partition,kill").unwrap(),
            vec![FaultKind::Partition, FaultKind::Kill]
        );
        assert!(FaultKind::parse_list("partiton").is_err());
        assert_eq!(FaultKind::Partition.start_f(), "start-partition");
        assert_eq!(FaultKind::Kill.stop_f(), "stop-kill");
    }

    #[test]
    fn majorities_ring_gives_each_node_a_distinct_majority() {
        for n in [4, 5, 6, 7, 9] {
            let ring = names(n);
            let grudge = majorities_ring(&ring).expect("4+ nodes");
            let mut seen = BTreeSet::new();
            for node in &ring {
                let hears: BTreeSet<String> = ring
                    .iter()
                    .filter(|x| !grudge[node].contains(*x))
                    .cloned()
                    .collect();
                assert!(
                    hears.len() > n / 2,
                    "{node} hears a majority of {n}: {hears:?}"
                );
                assert!(hears.len() < n, "{node} must not hear everyone");
                assert!(seen.insert(hears), "majorities are distinct");
            }
        }
        assert!(majorities_ring(&names(3)).is_none());
    }

    #[test]
    fn complete_grudge_cuts_components_both_ways() {
        let grudge = complete_grudge(&[vec!["n1".into()], vec!["n2".into(), "n3".into()]]);
        assert_eq!(
            grudge["n1"],
            BTreeSet::from(["n2".to_string(), "n3".to_string()])
        );
        assert_eq!(grudge["n2"], BTreeSet::from(["n1".to_string()]));
        assert_eq!(
            describe_grudge(&grudge),
            "n1 cannot hear n2,n3; n2 cannot hear n1; n3 cannot hear n1"
        );
    }

    #[test]
    fn each_node_of_a_jepsen_clock_fault_gets_its_own_delta() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let nodes = names(5);
        let mut deltas = BTreeSet::new();
        let mut signs = BTreeSet::new();
        for _ in 0..50 {
            let plan = plan_clock(&ClockFault::BumpEach, &nodes, &mut rng).expect("plans");
            assert_eq!(
                plan.iter().map(|(n, _)| n).collect::<Vec<_>>(),
                nodes.iter().collect::<Vec<_>>()
            );
            for (_, fault) in &plan {
                let ClockFault::Bump { delta_ms } = *fault else {
                    panic!("a bump per node: {fault:?}");
                };
                assert!((4..=262_144).contains(&delta_ms.abs()), "{delta_ms}");
                deltas.insert(delta_ms);
                signs.insert(delta_ms.signum());
            }
            for (_, fault) in plan_clock(&ClockFault::StrobeEach, &nodes, &mut rng).expect("plans")
            {
                let ClockFault::Strobe {
                    delta_ms,
                    period_ms,
                } = fault
                else {
                    panic!("a strobe per node: {fault:?}");
                };
                assert!((4..=262_144).contains(&delta_ms), "{delta_ms}");
                assert!((1..=1024).contains(&period_ms), "{period_ms}");
            }
        }
        assert!(deltas.len() > 200, "deltas differ from node to node");
        assert_eq!(signs, BTreeSet::from([-1, 1]));
        // A concrete fault is the same on every node; a bad rate is refused.
        let same =
            plan_clock(&ClockFault::Bump { delta_ms: 7 }, &nodes[..2], &mut rng).expect("plans");
        assert!(
            same.iter()
                .all(|(_, f)| *f == ClockFault::Bump { delta_ms: 7 })
        );
        assert!(plan_clock(&ClockFault::Skew { rate: -1.0 }, &nodes, &mut rng).is_err());
    }

    #[test]
    fn clock_descriptions_name_each_nodes_own_change() {
        let plan = |faults: &[(&str, ClockFault)]| -> Vec<(String, ClockFault)> {
            faults
                .iter()
                .map(|(n, f)| (n.to_string(), f.clone()))
                .collect()
        };
        let bump = |delta_ms| ClockFault::Bump { delta_ms };
        assert_eq!(
            describe_clock(&plan(&[("n1", bump(-4660)), ("n3", bump(2100))])),
            "bump clock of n1 by -4660 ms, n3 by +2100 ms"
        );
        assert_eq!(
            describe_clock(&plan(&[("n1", bump(100)), ("n2", bump(100))])),
            "bump clock of n1,n2 by +100 ms"
        );
        let strobe = |delta_ms, period_ms| ClockFault::Strobe {
            delta_ms,
            period_ms,
        };
        assert_eq!(
            describe_clock(&plan(&[("n2", strobe(300, 12)), ("n4", strobe(4100, 512))])),
            "strobe clock of n2 between +0 and +300 ms every 12 ms, n4 between +0 and +4100 ms every 512 ms"
        );
        assert_eq!(
            describe_clock(&plan(&[("n5", ClockFault::Skew { rate: 2.0 })])),
            "skew clock of n5 to run at 2x real time"
        );
    }

    #[test]
    fn faketime_specs_are_signed_seconds_with_millis() {
        assert_eq!(faketime_spec(0), "+0.000\n");
        assert_eq!(faketime_spec(1250), "+1.250\n");
        assert_eq!(faketime_spec(-100), "-0.100\n");
        assert_eq!(faketime_spec(-5007), "-5.007\n");
    }

    fn plan(
        kind: PartitionKind,
        n: usize,
        leader: Option<&str>,
    ) -> std::result::Result<(Grudge, String), String> {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        plan_partition(&names(n), &kind, &mut rng, leader).expect("known nodes")
    }

    #[test]
    fn partition_plans_describe_exactly_what_they_cut() {
        let (grudge, text) = plan(PartitionKind::IsolateLeader, 5, Some("n3")).unwrap();
        assert_eq!(text, "isolate leader n3 from n1,n2,n4,n5");
        assert_eq!(grudge["n3"].len(), 4);
        assert_eq!(grudge["n1"], BTreeSet::from(["n3".to_string()]));
        assert_eq!(
            plan(PartitionKind::IsolateLeader, 5, None).unwrap_err(),
            "no leader is known right now"
        );

        let (grudge, text) = plan(PartitionKind::Halves, 5, None).unwrap();
        assert!(text.starts_with("halves: minority "), "{text}");
        let mut cut: Vec<usize> = grudge.values().map(BTreeSet::len).collect();
        cut.sort();
        assert_eq!(
            cut,
            vec![2, 2, 2, 3, 3],
            "minority of 2 cannot hear 3; majority cannot hear 2"
        );

        let (grudge, text) = plan(PartitionKind::Bridge, 5, None).unwrap();
        assert!(
            text.starts_with("bridge: ") && text.ends_with("hears both sides)"),
            "{text}"
        );
        let bridge: Vec<String> = names(5)
            .into_iter()
            .filter(|n| !grudge.contains_key(n))
            .collect();
        assert_eq!(bridge.len(), 1, "the bridge node hears everyone: {text}");
        assert!(text.contains(&format!("| {} |", bridge[0])), "{text}");
        assert_eq!(grudge.values().filter(|c| c.len() == 2).count(), 4);
        assert_eq!(
            plan(PartitionKind::Bridge, 2, None).unwrap_err(),
            "a bridge needs 3+ nodes (this lab has 2)"
        );

        let (grudge, text) = plan(PartitionKind::OneWay, 3, None).unwrap();
        let sender = text
            .split("cannot hear ")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap();
        assert!(
            !grudge.contains_key(sender),
            "the sender still hears everyone: {text}"
        );
        assert!(grudge.values().all(|c| c.len() == 1 && c.contains(sender)));

        let (_, text) = plan(
            PartitionKind::Components(vec![vec!["n2".into(), "n1".into()], vec!["n3".into()]]),
            3,
            None,
        )
        .unwrap();
        assert_eq!(text, "partition n1,n2 | n3");
        assert!(plan(PartitionKind::MajoritiesRing, 3, None).is_err());
    }

    #[test]
    fn selections_pick_one_minority_leader_all() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let all = names(5);
        assert_eq!(
            select_nodes(&all, &NodeSelection::One, &all, &mut rng, None)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            select_nodes(&all, &NodeSelection::Minority, &all, &mut rng, None)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            select_nodes(&all, &NodeSelection::All, &all, &mut rng, None).unwrap(),
            all
        );
        assert_eq!(
            select_nodes(&all, &NodeSelection::Leader, &all, &mut rng, Some("n4")).unwrap(),
            vec!["n4"]
        );
        assert!(
            select_nodes(
                &all,
                &NodeSelection::Leader,
                &all[..2],
                &mut rng,
                Some("n4")
            )
            .is_err()
        );
        assert!(
            select_nodes(
                &names(1),
                &NodeSelection::Minority,
                &names(1),
                &mut rng,
                None
            )
            .is_err()
        );
        let mut sizes = BTreeSet::new();
        for _ in 0..200 {
            let subset = select_nodes(&all, &NodeSelection::Subset, &all, &mut rng, None).unwrap();
            assert!(subset.iter().all(|n| all.contains(n)), "{subset:?}");
            let distinct: BTreeSet<&String> = subset.iter().collect();
            assert_eq!(distinct.len(), subset.len(), "{subset:?}");
            sizes.insert(subset.len());
        }
        assert_eq!(
            sizes,
            BTreeSet::from([1, 2, 3, 4, 5]),
            "every size, never empty"
        );
        let picked = select_nodes(&all, &NodeSelection::All, &names(10)[8..], &mut rng, None);
        assert_eq!(picked.unwrap(), vec!["n9", "n10"], "sorted by node number");
    }
}
