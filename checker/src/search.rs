//! The linearizability search for one key.
//!
//! Just-in-time linearization (Wing & Gong 1993, improved by Lowe, "Testing for
//! linearizability", 2017; the same shape as anishathalye/porcupine's checker): walk the
//! call/return events in time order; at a call, try to linearize that operation now (the model
//! accepts it and the configuration (linearized set, state) is new); at a return whose
//! operation is not yet linearized, backtrack. Configurations already seen are cached, so
//! each (set, state) pair is explored once.
//!
//! Invariant: an operation is linearized only while every operation whose return precedes its
//! call is already linearized (a return can only be passed after its op is lifted).
//!
//! These reductions keep the search small; each only drops configurations that cannot lead
//! to a linearization, or that have a twin the search does explore, so the verdict is exact:
//!
//! - **Operations that never change the state** (reads, compare-and-sets that failed on a
//!   mismatch) are linearized as soon as they are callable and legal, without branching: if a
//!   configuration has a linearization in which such an op comes later, moving the op to now
//!   leaves every state along it unchanged, and every op that returned before its call is
//!   already linearized (Lowe 2017, §4, for operations that do not change the state).
//! - **A value written once is held once** (unique values, as our workloads write): the
//!   register leaves such a value only after every completed operation that must observe it
//!   (an ok read of it, an ok compare-and-set expecting it) is linearized, since the value can
//!   never come back for them.
//! - **Identical crashed operations** are interchangeable and taken in invoke order only
//!   (`later_twins`): a crashed op whose earlier twin is not linearized is kept out of the event
//!   list altogether, so walks over the callable ops do not pass every pending crashed op of a
//!   long history again at each step.
//! - **Identical state-changing ops that both completed** are taken in return order while both
//!   are callable (`EarlierTwins`): with many clients writing few values, k identical writes
//!   in flight otherwise give 2^k sets of linearized ops that differ only in which of them
//!   were taken, every one with the same states.
//! - Optionally ([`CrashedOps::OnlyWhenNeeded`], register models): **a crashed operation takes
//!   effect only when something needs it**, i.e. it is tried only if it gives the register a
//!   value that some callable op needs and does not have now (`Demand`). In any
//!   linearization, the op after a crashed one either needs its effect, or holds in the state
//!   before it too (a failed compare-and-set: the two can swap), or makes it moot (a blind
//!   write overwrites it; a write of the value already there changes nothing), and then the
//!   crashed op can move one place later or be left out. That op is callable already, since a
//!   crashed op never returns.
//!
//! Configurations where the search branches are cached as 128-bit Zobrist hashes (Zobrist 1970: each op has a random
//! key, a set's hash is the XOR of its ops' keys, updated in O(1) per step) combined with the
//! state's: 16 bytes per configuration whatever the window, and a false match — which would
//! make the search skip an unexplored configuration — has probability about n²/2¹²⁸.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::fast_hash::{IntMap, IntSet};
use crate::history::{Op, Step, Value};
use crate::model::{Model, Prefixes};

/// Limits for one key; past any of them the key's verdict is `unknown`.
#[derive(Clone, Copy, Debug)]
pub struct Budget<'a> {
    pub deadline: Option<Instant>,
    /// Bytes the configuration cache may hold.
    pub memory: usize,
    /// Set by another key's search once it found a violation: the history is invalid
    /// whatever this key says, so stop.
    pub cancel: Option<&'a AtomicBool>,
    /// Set once the other writer order, raced beside this search on a spare thread, decided
    /// the key: this search's answer is no longer wanted.
    pub rival_decided: Option<&'a AtomicBool>,
}

impl Budget<'_> {
    /// No deadline and a memory cap of `memory` bytes.
    pub fn memory_only(memory: usize) -> Budget<'static> {
        Budget {
            deadline: None,
            memory,
            cancel: None,
            rival_decided: None,
        }
    }
}

/// Why a search was cut short when another key's violation cancelled it.
pub const CANCELLED: &str =
    "not decided: the search stopped when another key was found not linearizable";

/// Why a raced search stopped: the other order decided first (never a key's reason).
pub const RIVAL_DECIDED: &str =
    "not decided: the other writer order, raced beside it, decided first";

/// The result of searching one key.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A linearization exists.
    Linearizable,
    /// None exists; what the deepest attempt looked like.
    NotLinearizable(Failure),
    /// A budget ran out first.
    Unknown(String),
}

/// The deepest configuration the search reached before it ran out of options.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// Positions (into the key's ops) of the longest linearizable prefix, in order, with the
    /// register value after each.
    pub prefix: Vec<(usize, Value)>,
    /// The op to show: the one whose completion could not be passed, or, where that op was held
    /// up only because a later op must still see the current value, that later op (the prefix
    /// then ends with the steps that make it stale).
    pub stuck: usize,
}

const NONE: u32 = u32::MAX;

/// One call or return in the doubly linked list of events still to pass.
#[derive(Clone, Copy)]
struct Node {
    op: u32,
    prev: u32,
    next: u32,
    /// For a call node, the position of its return node; `NONE` for a return node.
    partner: u32,
}

impl Node {
    fn is_call(&self) -> bool {
        self.partner != NONE
    }
}

/// One linearization step on the stack: the call node, and what to restore when it is undone.
#[derive(Clone, Copy)]
struct Frame {
    entry: u32,
    state: Value,
    value_id: u32,
    /// Taken without branching (a state-preserving op): if what follows fails, so does the
    /// configuration before it.
    forced: bool,
    /// The configuration's first try (see `urgent`), which its walk then skips.
    urgent: bool,
    /// The urgent try of the configuration this step was taken in, if any.
    skip: u32,
    /// The first return still in the list in the configuration this step was taken in.
    first_return: u32,
}

/// Hash-set hasher for keys that are already uniformly random (Zobrist hashes).
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

type ConfigCache = HashSet<u128, BuildHasherDefault<PassThrough>>;

/// SplitMix64 (Steele, Lea & Flood 2014): fixed seeds give reproducible Zobrist keys.
pub(crate) fn splitmix(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(crate) fn wide(seed: &mut u64) -> u128 {
    (u128::from(splitmix(seed)) << 64) | u128::from(splitmix(seed))
}

/// The state's part of a configuration hash.
fn state_hash(state: Value) -> u128 {
    let mut seed = match state {
        None => 0x5EED_0000_0000_0001,
        Some(v) => (v as u64) ^ 0xA5A5_A5A5_5A5A_5A5A,
    };
    wide(&mut seed)
}

/// Whether applying `step` can never change the state (when it is legal at all).
fn preserves_state(step: Step) -> bool {
    match step {
        Step::Read(_) | Step::CasMismatch { .. } | Step::Nothing => true,
        Step::Cas { expected, new } => expected == new,
        Step::Write(_) | Step::Append { .. } | Step::Txn(_) => false,
    }
}

/// Per-op facts for "a value written once is held once" (see the module docs).
struct HeldOnce {
    /// The tracked value an op must observe (ok read of it, ok CAS expecting it).
    observes: Vec<u32>,
    /// The tracked value an op writes.
    produces: Vec<u32>,
    /// Per tracked value, how many of its observers are not linearized yet.
    pending: Vec<u32>,
    /// The initial value's id.
    initial: u32,
    /// Per tracked value, its observers in invoke order (for counterexamples).
    observers: Vec<Vec<u32>>,
}

impl HeldOnce {
    /// Tracks every value that at most one op writes (and that is not also the initial value
    /// while written), and that some completed op must observe. The kv model builds values
    /// from earlier ones, so nothing is tracked there.
    fn new(ops: &[Op], model: Model, initial: Value) -> HeldOnce {
        let mut none = HeldOnce {
            observes: vec![NONE; ops.len()],
            produces: vec![NONE; ops.len()],
            pending: Vec::new(),
            initial: NONE,
            observers: Vec::new(),
        };
        if model == Model::Kv {
            return none;
        }
        let mut writers: IntMap<Value, u32> = IntMap::default();
        for op in ops {
            if let Step::Write(v) | Step::Cas { new: v, .. } = op.step {
                *writers.entry(Some(v)).or_default() += 1;
            }
        }
        let once = |v: Value| writers.get(&v).copied().unwrap_or(0) + u32::from(v == initial) <= 1;
        let mut ids: IntMap<Value, u32> = IntMap::default();
        for (i, op) in ops.iter().enumerate() {
            let seen = match op.step {
                Step::Read(v) => v,
                Step::Cas { expected, .. } => Some(expected),
                _ => continue,
            };
            // Only an op that certainly took effect must observe its value.
            if op.complete_time.is_none() || !once(seen) {
                continue;
            }
            let next = ids.len() as u32;
            let id = *ids.entry(seen).or_insert(next);
            if id as usize == none.pending.len() {
                none.pending.push(0);
                none.observers.push(Vec::new());
            }
            none.pending[id as usize] += 1;
            none.observers[id as usize].push(i as u32);
            none.observes[i] = id;
        }
        for (i, op) in ops.iter().enumerate() {
            if let Step::Write(v) | Step::Cas { new: v, .. } = op.step
                && let Some(&id) = ids.get(&Some(v))
            {
                none.produces[i] = id;
            }
        }
        none.initial = ids.get(&initial).copied().unwrap_or(NONE);
        none
    }

    /// Whether the state may change from the value `current` by applying op `op`: every other
    /// observer of `current` must be linearized already.
    fn may_leave(&self, current: u32, op: usize) -> bool {
        current == NONE || self.pending[current as usize] == u32::from(self.observes[op] == current)
    }

    /// The first observer of `value` not yet linearized, other than `leaving` (a CAS from the
    /// value observes it too, but it is the op leaving it, not the one left waiting).
    fn waiting_observer(&self, value: u32, linearized: &[u64], leaving: usize) -> Option<usize> {
        self.observers
            .get(value as usize)?
            .iter()
            .map(|&o| o as usize)
            .find(|&o| o != leaving && !is_linearized(linearized, o))
    }

    fn linearized(&mut self, op: usize) {
        if let Some(p) = self.pending.get_mut(self.observes[op] as usize) {
            *p -= 1;
        }
    }

    fn undone(&mut self, op: usize) {
        if let Some(p) = self.pending.get_mut(self.observes[op] as usize) {
            *p += 1;
        }
    }
}

/// The values callable ops need the register to hold and it does not hold now: what a
/// crashed state-changing op must produce to be tried under [`CrashedOps::OnlyWhenNeeded`].
#[derive(Default)]
struct Demand {
    /// Values a callable read saw, or a callable compare-and-set expects.
    values: IntSet<Value>,
    /// A callable failed compare-and-set expected the value held now: any other value serves.
    any_change: bool,
}

impl Demand {
    /// What the callable ops (the calls before the first return in `nodes`) need in `state`.
    fn of(nodes: &[Node], head: u32, ops: &[Op], state: Value) -> Demand {
        let mut demand = Demand::default();
        let mut e = nodes[head as usize].next;
        while e != NONE && nodes[e as usize].is_call() {
            match ops[nodes[e as usize].op as usize].step {
                Step::Read(seen) if seen != state => {
                    demand.values.insert(seen);
                }
                Step::Cas { expected, .. } if state != Some(expected) => {
                    demand.values.insert(Some(expected));
                }
                Step::CasMismatch { expected } if state == Some(expected) => {
                    demand.any_change = true;
                }
                _ => {}
            }
            e = nodes[e as usize].next;
        }
        demand
    }

    /// Whether moving the register from `now` to `next` gives some callable op what it needs.
    fn wants(&self, now: Value, next: Value) -> bool {
        (self.any_change && next != now) || self.values.contains(&next)
    }
}

/// How the search goes about a key; every choice is exact, only the speed differs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Strategy {
    pub writer_order: WriterOrder,
    pub crashed_ops: CrashedOps,
}

/// When the search tries a crashed (indeterminate) write or compare-and-set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CrashedOps {
    /// Wherever it is legal.
    #[default]
    WheneverLegal,
    /// Only where it gives the register a value some callable op needs (see the module
    /// docs; the kv model ignores this). Far faster where the search must try everything, as
    /// in refuting a small history; slower on large valid histories with many crashed ops,
    /// as what the callable ops need is worked out again at every branch.
    OnlyWhenNeeded,
}

/// Which write the search tries first to explain a read that the register's value does not
/// explain yet. Either order is exact; neither is fast on every history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WriterOrder {
    /// The op called earliest, usually a crashed one (crashed ops stay callable forever).
    /// Fast on most histories, even with many crashed ops; but on a long history whose values
    /// repeat it can spend every crashed write of a value on reads that completed writes
    /// explain too, and then a late read only a crashed write explains sends it back through
    /// more configurations than any budget holds.
    #[default]
    EarliestCalled,
    /// A completed op first (the one called last), a crashed one only when no completed op
    /// serves: keeps crashed writes for the reads that need them, but on histories where
    /// many crashed writes did take effect it backtracks far more.
    CompletedFirst,
}

/// Decide whether `ops` (one key) is linearizable under `model`, starting from `initial`.
pub fn search(ops: &[Op], model: Model, initial: Value, budget: Budget<'_>) -> Outcome {
    search_with(ops, model, initial, None, Strategy::default(), budget)
}

/// [`search`], with the prefixes of the strings a kv history's gets returned (then a
/// configuration whose string is no prefix of what a callable get returned, with no put that
/// could come between, is dropped at once: appends only ever extend the string), and a
/// [`Strategy`].
pub fn search_with(
    ops: &[Op],
    model: Model,
    initial: Value,
    prefixes: Option<&Prefixes>,
    strategy: Strategy,
    budget: Budget<'_>,
) -> Outcome {
    let order = strategy.writer_order;
    if ops.is_empty() {
        return Outcome::Linearizable;
    }
    if ops.len() >= (NONE / 2) as usize {
        return Outcome::Unknown(format!(
            "{} operations on one key: more than the search can index",
            ops.len()
        ));
    }
    let (mut nodes, call_node) = event_list(ops);
    let head = (nodes.len() - 1) as u32;
    let mut present = Present::all(nodes.len());
    let later_twin = later_twins(ops);
    for &twin in later_twin.iter().flatten() {
        unlink(&mut nodes, &mut present, call_node[twin]);
    }
    let preserving: Vec<bool> = ops.iter().map(|op| preserves_state(op.step)).collect();
    let earlier_twins = EarlierTwins::of(ops, &preserving, &nodes, &call_node);
    let mut held = HeldOnce::new(ops, model, initial);
    let is_open = |op: usize| ops[op].complete_time.is_none();
    // The kv model appends to the value instead of replacing it: a crashed append cannot be
    // moved later or left out the way a crashed write can.
    let crashed_on_demand =
        strategy.crashed_ops == CrashedOps::OnlyWhenNeeded && model != Model::Kv;
    // The current configuration's `Demand`, worked out when a crashed op first needs it.
    let mut demand: Option<Demand> = None;
    let prefixes = prefixes.filter(|p| model == Model::Kv && !p.is_empty());
    // kv puts, which can reset the string; few in practice, so a scan of them is cheap.
    let puts: Vec<u32> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| matches!(op.step, Step::Write(_)))
        .map(|(i, _)| i as u32)
        .collect();
    let prefixes = prefixes.filter(|_| puts.len() <= MAX_PUTS_FOR_PREFIXES);
    let mut seed = 0xFA17_11E5_u64;
    let zobrist: Vec<u128> = (0..ops.len()).map(|_| wide(&mut seed)).collect();

    let mut linearized = vec![0u64; ops.len().div_ceil(64)];
    let mut set_hash: u128 = 0;
    let mut cache = ConfigCache::default();
    let mut frames: Vec<Frame> = Vec::new();
    let mut state = initial;
    let mut value_id = held.initial;
    // The deepest dead end so far, kept incrementally: `deepest_frames[..common]` is known to
    // equal `frames[..common]`, so a new deepest point copies only what changed since (copying
    // the whole stack each time made long valid histories quadratic).
    let mut deepest: Option<(usize, Value)> = None; // (stuck op, state there)
    let mut deepest_frames: Vec<Frame> = Vec::new();
    let mut common: usize = 0;
    let mut steps: u64 = 0;

    let mut entry = nodes[head as usize].next;
    // Whether `entry` starts a configuration not yet scanned for state-preserving ops.
    let mut fresh = true;
    // The current configuration's urgent try, skipped by its walk.
    let mut skip = NONE;
    // The current configuration's first return in the list: the calls before it are callable.
    let mut first_return = NONE;
    loop {
        if nodes[head as usize].next == NONE {
            return Outcome::Linearizable;
        }
        steps += 1;
        if steps.is_multiple_of(4096) {
            if budget.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Outcome::Unknown(CANCELLED.to_string());
            }
            if budget
                .rival_decided
                .is_some_and(|c| c.load(Ordering::Relaxed))
            {
                return Outcome::Unknown(RIVAL_DECIDED.to_string());
            }
            if budget.deadline.is_some_and(|d| Instant::now() > d) {
                return Outcome::Unknown(format!(
                    "time limit reached after {steps} search steps ({} configurations)",
                    cache.len()
                ));
            }
            // Entries plus the hash table's control bytes and slack.
            let cache_bytes = cache.capacity() * 17 + frames.capacity() * 32;
            if cache_bytes > budget.memory {
                return Outcome::Unknown(format!(
                    "memory cap of {} MiB reached ({} configurations)",
                    budget.memory >> 20,
                    cache.len()
                ));
            }
        }
        // Each step either linearizes one op (`Some(forced)`), moves on to the next event,
        // or ends in a dead end (`dead`).
        let mut dead = false;
        let mut chosen: Option<(u32, Value, bool)> = None;
        if fresh {
            fresh = false;
            // Callable ops are the calls before the first return still in the list.
            let mut e = nodes[head as usize].next;
            // Where the walk over state-changing ops starts: its first one (the ops before it
            // are state-preserving, which the walk skips anyway).
            let mut first_change = NONE;
            while e != NONE && nodes[e as usize].is_call() {
                let op = nodes[e as usize].op as usize;
                if !preserving[op] && first_change == NONE {
                    first_change = e;
                }
                if preserving[op] {
                    if let Some(next) = model.step(state, ops[op].step) {
                        chosen = Some((e, next, true));
                        break;
                    }
                    if let (Some(prefixes), Step::Read(Some(seen)), Some(now)) =
                        (prefixes, ops[op].step, state)
                        && !prefixes.contains(seen, now)
                    {
                        let returns = nodes[e as usize].partner;
                        let put_between = puts.iter().any(|&p| {
                            !is_linearized(&linearized, p as usize)
                                && call_node[p as usize] < returns
                        });
                        if !put_between {
                            // The get is the op no order reaches: the story for a reader.
                            if deepest.is_none() || frames.len() > deepest_frames.len() {
                                deepest_frames.truncate(common);
                                deepest_frames.extend_from_slice(&frames[common..]);
                                common = frames.len();
                                deepest = Some((op, state));
                            }
                            dead = true;
                            break;
                        }
                    }
                }
                e = nodes[e as usize].next;
            }
            // Only configurations where the search branches are cached: forced steps follow
            // from the configuration before them. Seen before means explored without success
            // (an ancestor on the stack has a smaller set).
            dead = dead || (chosen.is_none() && !cache.insert(set_hash ^ state_hash(state)));
            first_return = e;
            entry = if first_change != NONE {
                first_change
            } else {
                e
            };
            skip = NONE;
            // Urgent first: the op whose return comes next must be linearized before it, so
            // try it (or, for a read, an op that gives the register the value it saw) before
            // the others. The order of tries decides nothing, but valid histories are found
            // with far less backtracking.
            if chosen.is_none() && !dead && e != NONE {
                let due = nodes[e as usize].op as usize;
                let try_call = |c: u32| {
                    let op = nodes[c as usize].op as usize;
                    let blocked = preserving[op]
                        || !held.may_leave(value_id, op)
                        || earlier_twins.wait(op, first_return, &linearized, &call_node);
                    if blocked {
                        None
                    } else {
                        model.step(state, ops[op].step)
                    }
                };
                let urgent = if is_open(due) {
                    None
                } else if !preserving[due] {
                    let c = call_node[due];
                    try_call(c).map(|next| (c, next))
                } else {
                    // A read (or mismatch) not legal now: a state change that makes it legal.
                    let enables = |c: u32| {
                        try_call(c)
                            .filter(|&next| model.step(next, ops[due].step).is_some())
                            .map(|next| (c, next))
                    };
                    match order {
                        WriterOrder::EarliestCalled => {
                            let mut c = nodes[head as usize].next;
                            let mut found = None;
                            while c != NONE && nodes[c as usize].is_call() {
                                found = enables(c);
                                if found.is_some() {
                                    break;
                                }
                                c = nodes[c as usize].next;
                            }
                            found
                        }
                        WriterOrder::CompletedFirst => {
                            // From the newest call back: completed callable ops are mostly
                            // recent, while crashed ones crowd the front of the list.
                            let mut c = nodes[e as usize].prev;
                            let mut crashed = None;
                            let mut found = None;
                            while c != head {
                                if let Some(hit) = enables(c) {
                                    if !is_open(nodes[c as usize].op as usize) {
                                        found = Some(hit);
                                        break;
                                    }
                                    crashed = crashed.or(Some(hit));
                                }
                                c = nodes[c as usize].prev;
                            }
                            found.or(crashed)
                        }
                    }
                };
                if let Some((c, next)) = urgent {
                    skip = c;
                    chosen = Some((c, next, false));
                }
            }
        }
        if chosen.is_none() && !dead {
            let node = nodes[entry as usize];
            if node.is_call() {
                let op = node.op as usize;
                // State-preserving ops were tried when this configuration was fresh.
                if !preserving[op]
                    && entry != skip
                    && held.may_leave(value_id, op)
                    && !earlier_twins.wait(op, first_return, &linearized, &call_node)
                    && let Some(next) = model.step(state, ops[op].step)
                    && (!crashed_on_demand
                        || !is_open(op)
                        || demand
                            .get_or_insert_with(|| Demand::of(&nodes, head, ops, state))
                            .wants(state, next))
                {
                    chosen = Some((entry, next, false));
                } else {
                    entry = node.next;
                    continue;
                }
            } else if ops[node.op as usize].complete_time.is_none() {
                // Open ops' returns sort after every real event: reaching one means every op
                // that completed is linearized, and an open op may simply never take effect.
                return Outcome::Linearizable;
            } else {
                // A return whose op is not linearized: the prefix cannot be extended past it.
                if deepest.is_none() || frames.len() > deepest_frames.len() {
                    deepest_frames.truncate(common);
                    deepest_frames.extend_from_slice(&frames[common..]);
                    common = frames.len();
                    let op = node.op as usize;
                    deepest = Some((op, state));
                    // Held back only because a later op must still see the current value: the
                    // story a reader follows is "op took effect, then that later op saw an
                    // overwritten value", so show it that way.
                    if let Some(next) = model.step(state, ops[op].step)
                        && !held.may_leave(value_id, op)
                        && let Some(waiting) = held.waiting_observer(value_id, &linearized, op)
                    {
                        deepest_frames.push(Frame {
                            entry: call_node[op],
                            state,
                            value_id,
                            forced: false,
                            urgent: false,
                            skip: NONE,
                            first_return: NONE,
                        });
                        deepest = Some((waiting, next));
                    } else if model.step(state, ops[op].step).is_none() {
                        // Placeable after a callable write that is held back only because a
                        // later op must still see the current value: then that later op is the
                        // story ("the write took effect, this op saw it, the later one saw an
                        // overwritten value"), not this one, which the history may explain.
                        let mut c = nodes[head as usize].next;
                        while c != NONE && nodes[c as usize].is_call() {
                            let writer = nodes[c as usize].op as usize;
                            if writer != op
                                && !preserving[writer]
                                && !held.may_leave(value_id, writer)
                                && let Some(mid) = model.step(state, ops[writer].step)
                                && let Some(after) = model.step(mid, ops[op].step)
                                && let Some(waiting) =
                                    held.waiting_observer(value_id, &linearized, writer)
                                && ops[op]
                                    .complete_time
                                    .is_some_and(|t| ops[waiting].invoke_time > t)
                            {
                                for (entry, state, value_id) in [
                                    (c, state, value_id),
                                    (call_node[op], mid, held.produces[writer]),
                                ] {
                                    deepest_frames.push(Frame {
                                        entry,
                                        state,
                                        value_id,
                                        forced: false,
                                        urgent: false,
                                        skip: NONE,
                                        first_return: NONE,
                                    });
                                }
                                deepest = Some((waiting, after));
                                break;
                            }
                            c = nodes[c as usize].next;
                        }
                    }
                }
                dead = true;
            }
        }
        if let Some((e, next, forced)) = chosen {
            let op = nodes[e as usize].op as usize;
            linearized[op / 64] |= 1 << (op % 64);
            set_hash ^= zobrist[op];
            held.linearized(op);
            frames.push(Frame {
                entry: e,
                state,
                value_id,
                forced,
                urgent: e == skip && !forced,
                skip,
                first_return,
            });
            if !preserving[op] {
                value_id = held.produces[op];
            }
            state = next;
            lift(&mut nodes, &mut present, e);
            if let Some(twin) = later_twin[op] {
                relink(&mut nodes, &mut present, head, call_node[twin]);
            }
            fresh = true;
            demand = None;
            continue;
        }
        debug_assert!(dead);
        // Undo steps until one that was a choice; forced steps fail with what followed them.
        loop {
            let Some(frame) = frames.pop() else {
                let failure = match deepest {
                    Some((stuck, at)) => failure_of(&nodes, &deepest_frames, at, stuck),
                    None => Failure {
                        prefix: Vec::new(),
                        stuck: nodes[entry as usize].op as usize,
                    },
                };
                return Outcome::NotLinearizable(failure);
            };
            common = common.min(frames.len());
            let op = nodes[frame.entry as usize].op as usize;
            linearized[op / 64] &= !(1 << (op % 64));
            set_hash ^= zobrist[op];
            held.undone(op);
            state = frame.state;
            value_id = frame.value_id;
            if let Some(twin) = later_twin[op] {
                unlink(&mut nodes, &mut present, call_node[twin]);
            }
            unlift(&mut nodes, &mut present, frame.entry);
            demand = None;
            if !frame.forced {
                // After the urgent try the walk starts from the top, without it.
                entry = if frame.urgent {
                    nodes[head as usize].next
                } else {
                    nodes[frame.entry as usize].next
                };
                skip = frame.skip;
                first_return = frame.first_return;
                break;
            }
        }
    }
}

/// The calls and returns of `ops` in time order (ties by history index, returns before calls
/// at equal times), as a doubly linked list whose last slot is the head sentinel.
/// Also returns each op's call node.
fn event_list(ops: &[Op]) -> (Vec<Node>, Vec<u32>) {
    let mut events: Vec<(u64, u64, u32, bool)> = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        events.push((op.invoke_time, op.index, i as u32, true));
        match (op.complete_time, op.complete_index) {
            (Some(t), Some(idx)) => events.push((t, idx, i as u32, false)),
            // Open forever: after every real event.
            _ => events.push((u64::MAX, u64::MAX - (ops.len() - i) as u64, i as u32, false)),
        }
    }
    events.sort_unstable_by_key(|&(t, idx, _, call)| (t, idx, !call));
    let last = events.len() as u32 - 1;
    let head = events.len() as u32;
    let mut return_node = vec![0u32; ops.len()];
    let mut call_node = vec![0u32; ops.len()];
    for (pos, &(_, _, op, call)) in events.iter().enumerate() {
        if call {
            call_node[op as usize] = pos as u32;
        } else {
            return_node[op as usize] = pos as u32;
        }
    }
    let mut nodes: Vec<Node> = events
        .iter()
        .enumerate()
        .map(|(pos, &(_, _, op, call))| {
            let pos = pos as u32;
            Node {
                op,
                prev: if pos == 0 { head } else { pos - 1 },
                next: if pos == last { NONE } else { pos + 1 },
                partner: if call { return_node[op as usize] } else { NONE },
            }
        })
        .collect();
    nodes.push(Node {
        op: NONE,
        prev: NONE,
        next: 0,
        partner: NONE,
    });
    (nodes, call_node)
}

/// For each open (never completed) op, the next open op with the same step, if any.
///
/// Open ops with the same step are interchangeable: neither has a return that bounds it, so in
/// any linearization that uses the later one and not the earlier, the earlier one (invoked
/// first) could take its place. The search therefore linearizes twins in invoke order only,
/// which turns 2^k subsets of k identical crashed writes into k + 1 choices.
fn later_twins(ops: &[Op]) -> Vec<Option<usize>> {
    let mut last: IntMap<Step, usize> = IntMap::default();
    let mut later = vec![None; ops.len()];
    for (i, op) in ops.iter().enumerate() {
        if op.complete_time.is_none()
            && let Some(earlier) = last.insert(op.step, i)
        {
            later[earlier] = Some(i);
        }
    }
    later
}

/// For each state-changing op, some identical completed ops (the same step) that return
/// while it runs, before it: while one of them is callable, the op waits.
///
/// Two identical ops a and b, both callable, b returning first: in any linearization that
/// places a before b, swapping them changes no state (the same step) and breaks no real-time
/// order: b is callable where a stood, and whatever must follow a, now in b's later slot,
/// begins after a's return, later than b's, so it followed that slot already. So a may as
/// well wait. Many clients writing few values (1 to 5 over and over) make many such pairs,
/// and this turns the 2^k subsets of k identical callable writes that the search could have
/// taken into k + 1.
struct EarlierTwins {
    /// `twins[start[op]..start[op + 1]]` are op's.
    start: Vec<u32>,
    twins: Vec<u32>,
}

impl EarlierTwins {
    /// At most this many per op, the latest returning (they are the likeliest still callable);
    /// fewer only means waiting less often.
    const MAX_PER_OP: usize = 8;

    fn of(ops: &[Op], preserving: &[bool], nodes: &[Node], call_node: &[u32]) -> EarlierTwins {
        let return_node = |op: usize| nodes[call_node[op] as usize].partner;
        // Per step, its completed ops by return.
        let mut completed: IntMap<Step, Vec<u32>> = IntMap::default();
        for (i, op) in ops.iter().enumerate() {
            if !preserving[i] && op.complete_time.is_some() {
                completed.entry(op.step).or_default().push(i as u32);
            }
        }
        for class in completed.values_mut() {
            class.sort_unstable_by_key(|&b| return_node(b as usize));
        }
        let mut start = Vec::with_capacity(ops.len() + 1);
        let mut twins = Vec::new();
        for (a, op) in ops.iter().enumerate() {
            start.push(twins.len() as u32);
            // Only state-changing steps have a class.
            let Some(class) = completed.get(&op.step) else {
                continue;
            };
            let (call, ret) = (call_node[a], return_node(a));
            // Those returning after a's call and before a's return, latest first.
            let end = class.partition_point(|&b| return_node(b as usize) < ret);
            twins.extend(
                class[..end]
                    .iter()
                    .rev()
                    .take_while(|&&b| return_node(b as usize) > call)
                    .take(Self::MAX_PER_OP),
            );
        }
        start.push(twins.len() as u32);
        EarlierTwins { start, twins }
    }

    /// Whether `op` must wait: one of its earlier twins is callable (not linearized, called
    /// before `first_return`, the first return in the list).
    fn wait(&self, op: usize, first_return: u32, linearized: &[u64], call_node: &[u32]) -> bool {
        self.twins[self.start[op] as usize..self.start[op + 1] as usize]
            .iter()
            .any(|&b| {
                let b = b as usize;
                !is_linearized(linearized, b) && call_node[b] < first_return
            })
    }
}

/// Whether `op` is in the linearized set (one bit per op).
fn is_linearized(set: &[u64], op: usize) -> bool {
    set[op / 64] & (1 << (op % 64)) != 0
}

fn failure_of(nodes: &[Node], frames: &[Frame], state: Value, stuck: usize) -> Failure {
    // The state after step i is the state saved before step i + 1, and `state` after the last.
    let prefix = frames
        .iter()
        .enumerate()
        .map(|(i, frame)| {
            let after = frames.get(i + 1).map_or(state, |next| next.state);
            (nodes[frame.entry as usize].op as usize, after)
        })
        .collect();
    Failure { prefix, stuck }
}

/// Which nodes are in the event list: the search puts a crashed op back in its place (see
/// [`relink`]) by finding the nearest node before it that is there.
struct Present(Vec<u64>);

impl Present {
    fn all(nodes: usize) -> Present {
        Present(vec![u64::MAX; nodes.div_ceil(64)])
    }

    fn set(&mut self, node: u32, there: bool) {
        let (word, bit) = (node as usize / 64, node % 64);
        if there {
            self.0[word] |= 1 << bit;
        } else {
            self.0[word] &= !(1 << bit);
        }
    }

    /// The nearest node before `node` that is in the list, if any.
    fn before(&self, node: u32) -> Option<u32> {
        let node = node as usize;
        let mut word = node / 64;
        // Bits below `node` in its own word, then whole words further down.
        let mut bits = self.0[word] & ((1u64 << (node % 64)) - 1);
        loop {
            if bits != 0 {
                return Some((word * 64 + 63 - bits.leading_zeros() as usize) as u32);
            }
            if word == 0 {
                return None;
            }
            word -= 1;
            bits = self.0[word];
        }
    }
}

/// Take one node out of the list; it keeps its links, so [`relink`] or the matching undo can
/// put it back.
fn unlink(nodes: &mut [Node], present: &mut Present, node: u32) {
    let n = nodes[node as usize];
    nodes[n.prev as usize].next = n.next;
    if n.next != NONE {
        nodes[n.next as usize].prev = n.prev;
    }
    present.set(node, false);
}

/// Put `node` back where it belongs in time order, after the nearest node before it that is in
/// the list (the head if none), whatever the list went through since it was taken out.
fn relink(nodes: &mut [Node], present: &mut Present, head: u32, node: u32) {
    let prev = present.before(node).unwrap_or(head);
    let next = nodes[prev as usize].next;
    nodes[node as usize].prev = prev;
    nodes[node as usize].next = next;
    nodes[prev as usize].next = node;
    if next != NONE {
        nodes[next as usize].prev = node;
    }
    present.set(node, true);
}

/// Linearize: take the call and its return out of the list.
fn lift(nodes: &mut [Node], present: &mut Present, entry: u32) {
    unlink(nodes, present, entry);
    unlink(nodes, present, nodes[entry as usize].partner);
}

/// Undo [`lift`]: only right after it, or once everything since has been undone.
fn unlift(nodes: &mut [Node], present: &mut Present, entry: u32) {
    let partner = nodes[entry as usize].partner;
    for node in [partner, entry] {
        let n = nodes[node as usize];
        nodes[n.prev as usize].next = node;
        if n.next != NONE {
            nodes[n.next as usize].prev = node;
        }
        present.set(node, true);
    }
}

/// Above this many puts on one key, the kv prefix rule is not worth its scan of them.
const MAX_PUTS_FOR_PREFIXES: usize = 256;

/// A generous default for one key: a history that needs more than this is rare and is
/// reported `unknown` instead of exhausting the machine.
pub const DEFAULT_MEMORY: usize = 1 << 30;

/// Default wall-clock budget when the caller gives none.
pub const DEFAULT_TIME: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Completion, EventValue, Function, Step, Sym};

    fn op(i: u64, invoke: u64, complete: Option<u64>, step: Step) -> Op {
        Op {
            index: i,
            complete_index: complete.map(|c| c + 1000),
            process: i,
            completion: if complete.is_some() {
                Completion::Ok
            } else {
                Completion::Info
            },
            f: Function::Read,
            value: EventValue::Read(None),
            invoke_time: invoke,
            complete_time: complete,
            node: Sym::NONE,
            step,
        }
    }

    fn check(ops: &[Op]) -> Outcome {
        search(
            ops,
            Model::CasRegister,
            None,
            Budget::memory_only(DEFAULT_MEMORY),
        )
    }

    #[test]
    fn concurrent_write_and_read_linearize_either_way() {
        let ops = [
            op(0, 0, Some(10), Step::Write(1)),
            op(1, 1, Some(5), Step::Read(Some(1))),
            op(2, 2, Some(6), Step::Read(None)),
        ];
        assert_eq!(check(&ops), Outcome::Linearizable);
    }

    #[test]
    fn stale_read_after_completed_write_is_not_linearizable() {
        let ops = [
            op(0, 0, Some(1), Step::Write(1)),
            op(1, 2, Some(3), Step::Write(2)),
            op(2, 4, Some(5), Step::Read(Some(1))),
        ];
        let Outcome::NotLinearizable(failure) = check(&ops) else {
            panic!("expected a violation");
        };
        assert_eq!(failure.stuck, 2);
        assert_eq!(failure.prefix, vec![(0, Some(1)), (1, Some(2))]);
    }

    #[test]
    fn a_write_waits_only_for_an_identical_write_already_called() {
        // Write b of 1 returns inside write a of 1, but is called only after the read of 1
        // ended: only a explains the read, so a must not wait for b.
        let ops = [
            op(0, 0, Some(10), Step::Write(1)),
            op(1, 2, Some(3), Step::Read(Some(1))),
            op(2, 5, Some(6), Step::Write(1)),
            op(3, 7, Some(8), Step::Read(Some(1))),
        ];
        assert_eq!(check(&ops), Outcome::Linearizable);
        // Where b is called first, waiting for it still finds the order (b, then a).
        let ops = [
            op(0, 0, Some(10), Step::Write(1)),
            op(1, 1, Some(6), Step::Write(1)),
            op(2, 2, Some(3), Step::Read(Some(1))),
            op(3, 7, Some(8), Step::Read(Some(1))),
        ];
        assert_eq!(check(&ops), Outcome::Linearizable);
    }

    #[test]
    fn info_write_may_take_effect_late() {
        let ops = [
            op(0, 0, None, Step::Write(7)),
            op(1, 5, Some(6), Step::Read(None)),
            op(2, 10, Some(11), Step::Read(Some(7))),
        ];
        assert_eq!(check(&ops), Outcome::Linearizable);
    }

    #[test]
    fn read_of_a_value_never_written_is_not_linearizable() {
        let ops = [
            op(0, 0, Some(8), Step::Write(0)),
            op(
                1,
                1,
                Some(3),
                Step::Cas {
                    expected: 0,
                    new: 2,
                },
            ),
            op(2, 8, Some(14), Step::CasMismatch { expected: 0 }),
            op(3, 15, Some(23), Step::Read(Some(1))),
        ];
        assert!(
            matches!(check(&ops), Outcome::NotLinearizable(_)),
            "{:?}",
            check(&ops)
        );
    }

    /// A value written once cannot be left while a read that must see it is still to come:
    /// here the write of 2 would have to wait for the late read of 1, but must complete first.
    #[test]
    fn a_value_written_once_is_not_left_before_its_last_reader() {
        let ops = [
            op(0, 0, Some(1), Step::Write(1)),
            op(1, 2, Some(3), Step::Write(2)),
            op(2, 2, Some(9), Step::Read(Some(2))),
            op(3, 4, Some(5), Step::Read(Some(1))),
        ];
        assert!(matches!(check(&ops), Outcome::NotLinearizable(_)));
        // Concurrent with the write of 2, the read of 1 is fine.
        let ops = [
            op(0, 0, Some(1), Step::Write(1)),
            op(1, 2, Some(6), Step::Write(2)),
            op(2, 2, Some(9), Step::Read(Some(2))),
            op(3, 4, Some(5), Step::Read(Some(1))),
        ];
        assert_eq!(check(&ops), Outcome::Linearizable);
    }

    /// Seen in a stale-reads run: a CAS from 1 completes, then a read returns 1. The CAS itself
    /// observes 1, but the op nothing can place is the read that came after it.
    #[test]
    fn a_stale_read_after_a_cas_is_the_stuck_op_not_the_cas() {
        let ops = [
            op(0, 0, Some(5), Step::Write(1)),
            op(1, 1, Some(2), Step::Read(None)),
            op(
                2,
                6,
                Some(20),
                Step::Cas {
                    expected: 1,
                    new: 2,
                },
            ),
            op(3, 7, Some(8), Step::Read(Some(1))),
            op(4, 21, Some(22), Step::Read(Some(1))),
        ];
        let Outcome::NotLinearizable(failure) = check(&ops) else {
            panic!("expected a violation");
        };
        assert_eq!(failure.stuck, 4, "{failure:?}");
        assert_eq!(failure.prefix.last(), Some(&(2, Some(2))), "{failure:?}");
    }

    /// Seen in synthetic histories with a stale read planted at the end: a value written once
    /// and read again long after it was overwritten holds the search at the first op that needs
    /// the register to move on. That op is fine; the late read is the one to show.
    #[test]
    fn a_late_stale_read_is_shown_not_the_first_op_it_holds_up() {
        // The write of 2 still runs when the read of 2 returns: that read is held up.
        let mut ops = vec![
            op(0, 0, Some(10), Step::Write(3)),
            op(1, 1, Some(30), Step::Write(2)),
            op(2, 15, Some(16), Step::Read(Some(2))),
            op(3, 50, Some(60), Step::Write(5)),
            op(4, 70, Some(71), Step::Read(Some(5))),
            op(5, 100, Some(101), Step::Read(Some(3))),
        ];
        let Outcome::NotLinearizable(failure) = check(&ops) else {
            panic!("expected a violation");
        };
        assert_eq!(failure.stuck, 5, "{failure:?}");
        assert_eq!(
            failure.prefix,
            vec![(0, Some(3)), (1, Some(2)), (2, Some(2))],
            "{failure:?}"
        );
        // The write of 2 returns first: the write itself is held up.
        ops[1].complete_time = Some(12);
        let Outcome::NotLinearizable(failure) = check(&ops) else {
            panic!("expected a violation");
        };
        assert_eq!(failure.stuck, 5, "{failure:?}");
        assert_eq!(
            failure.prefix,
            vec![(0, Some(3)), (1, Some(2))],
            "{failure:?}"
        );
    }

    #[test]
    fn deadline_in_the_past_gives_unknown() {
        let mut ops = Vec::new();
        for i in 0..5000u64 {
            ops.push(op(i, i * 2, Some(i * 2 + 1), Step::Write(i as i64)));
        }
        let budget = Budget {
            cancel: None,
            rival_decided: None,
            deadline: Some(Instant::now() - Duration::from_secs(1)),
            memory: DEFAULT_MEMORY,
        };
        assert!(matches!(
            search(&ops, Model::CasRegister, None, budget),
            Outcome::Unknown(_)
        ));
    }
}
