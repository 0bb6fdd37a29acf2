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

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::history::{Op, Value};
use crate::model::Model;

/// Limits for one key; past any of them the key's verdict is `unknown`.
#[derive(Clone, Copy, Debug)]
pub struct Budget<'a> {
    pub deadline: Option<Instant>,
    /// Bytes the configuration cache may hold.
    pub memory: usize,
    /// Set by another key's search once it found a violation: the history is invalid
    /// whatever this key says, so stop.
    pub cancel: Option<&'a AtomicBool>,
}

impl Budget<'_> {
    /// No deadline and a memory cap of `memory` bytes.
    pub fn memory_only(memory: usize) -> Budget<'static> {
        Budget {
            deadline: None,
            memory,
            cancel: None,
        }
    }
}

/// Why a search was cut short when another key's violation cancelled it.
pub const CANCELLED: &str =
    "not decided: the search stopped when another key was found not linearizable";

/// The result of searching one key.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A linearization exists; the op positions in one such order.
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
    /// The op whose completion could not be passed: it cannot be linearized after the prefix.
    pub stuck: usize,
}

const NONE: usize = usize::MAX;

#[derive(Clone, Copy)]
struct Node {
    op: usize,
    call: bool,
    prev: usize,
    next: usize,
    /// For a call node, the position of its return node.
    partner: usize,
}

/// Decide whether `ops` (one key) is linearizable under `model`, starting from `initial`.
pub fn search(ops: &[Op], model: Model, initial: Value, budget: Budget<'_>) -> Outcome {
    if ops.is_empty() {
        return Outcome::Linearizable;
    }
    // Events in time order; ties broken by history index, which is file order.
    let mut events: Vec<(u64, u64, usize, bool)> = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        events.push((op.invoke_time, op.index, i, true));
        match (op.complete_time, op.complete_index) {
            (Some(t), Some(idx)) => events.push((t, idx, i, false)),
            // Open forever: after every real event.
            _ => events.push((u64::MAX, u64::MAX - (ops.len() - i) as u64, i, false)),
        }
    }
    events.sort_unstable_by_key(|&(t, idx, _, call)| (t, idx, !call));

    // A doubly linked list with a head sentinel (last slot) and NONE as the tail.
    let head = events.len();
    let mut nodes: Vec<Node> = Vec::with_capacity(events.len() + 1);
    let mut return_node = vec![0usize; ops.len()];
    for (pos, &(_, _, op, call)) in events.iter().enumerate() {
        if !call {
            return_node[op] = pos;
        }
        nodes.push(Node {
            op,
            call,
            prev: if pos == 0 { head } else { pos - 1 },
            next: if pos + 1 == events.len() {
                NONE
            } else {
                pos + 1
            },
            partner: NONE,
        });
    }
    for node in nodes.iter_mut() {
        if node.call {
            node.partner = return_node[node.op];
        }
    }
    nodes.push(Node {
        op: NONE,
        call: false,
        prev: NONE,
        next: 0,
        partner: NONE,
    });

    let words = ops.len().div_ceil(64);
    let earlier_twin = earlier_twins(ops);
    let mut linearized = LinearizedSet::new(words);
    let mut cache: HashSet<(u32, Box<[u64]>, Value)> = HashSet::new();
    let mut cache_bytes: usize = 0;
    let mut calls: Vec<(usize, Value)> = Vec::new();
    let mut state = initial;
    // The deepest dead end so far, kept incrementally: `deepest_calls[..common]` is known to
    // equal `calls[..common]`, so a new deepest point copies only what changed since (copying
    // the whole stack each time made long valid histories quadratic).
    let mut deepest: Option<(usize, Value)> = None; // (stuck op, state there)
    let mut deepest_calls: Vec<(usize, Value)> = Vec::new();
    let mut common: usize = 0;
    let mut steps: u64 = 0;

    let mut entry = nodes[head].next;
    while nodes[head].next != NONE {
        steps += 1;
        if steps.is_multiple_of(4096) {
            if budget.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Outcome::Unknown(CANCELLED.to_string());
            }
            if budget.deadline.is_some_and(|d| Instant::now() > d) {
                return Outcome::Unknown(format!(
                    "time limit reached after {steps} search steps ({} configurations)",
                    cache.len()
                ));
            }
            if cache_bytes > budget.memory {
                return Outcome::Unknown(format!(
                    "memory cap of {} MiB reached ({} configurations)",
                    budget.memory >> 20,
                    cache.len()
                ));
            }
        }
        let node = nodes[entry];
        if node.call {
            let op = node.op;
            let twin_waits = earlier_twin[op].is_some_and(|twin| !linearized.contains(twin));
            if twin_waits {
                // Symmetry: see `earlier_twins`.
            } else if let Some(next_state) = model.step(state, ops[op].step) {
                linearized.insert(op);
                let (base, window) = linearized.key();
                // Entry, boxed window and hash-table slot.
                let bytes = window.len() * 8 + 64;
                if cache.insert((base, window, next_state)) {
                    cache_bytes += bytes;
                    calls.push((entry, state));
                    state = next_state;
                    lift(&mut nodes, entry);
                    entry = nodes[head].next;
                    continue;
                }
                linearized.remove(op);
            }
            entry = node.next;
        } else if ops[node.op].complete_time.is_none() {
            // Open ops' returns sort after every real event: reaching one means every op that
            // completed is linearized, and an open op may simply never take effect.
            return Outcome::Linearizable;
        } else {
            // A return whose op is not linearized: the current prefix cannot be extended past it.
            if deepest.is_none() || calls.len() > deepest_calls.len() {
                deepest_calls.truncate(common);
                deepest_calls.extend_from_slice(&calls[common..]);
                common = calls.len();
                deepest = Some((node.op, state));
            }
            let Some((call_entry, previous)) = calls.pop() else {
                let failure = match deepest {
                    Some((stuck, at)) => failure_of(&nodes, &deepest_calls, at, stuck),
                    None => Failure {
                        prefix: Vec::new(),
                        stuck: node.op,
                    },
                };
                return Outcome::NotLinearizable(failure);
            };
            common = common.min(calls.len());
            let op = nodes[call_entry].op;
            linearized.remove(op);
            state = previous;
            unlift(&mut nodes, call_entry);
            entry = nodes[call_entry].next;
        }
    }
    Outcome::Linearizable
}

/// For each open (never completed) op, the previous open op with the same step, if any.
///
/// Open ops with the same step are interchangeable: neither has a return that bounds it, so in
/// any linearization that uses the later one and not the earlier, the earlier one (invoked
/// first) could take its place. The search therefore linearizes twins in invoke order only,
/// which turns 2^k subsets of k identical crashed writes into k + 1 choices.
fn earlier_twins(ops: &[Op]) -> Vec<Option<usize>> {
    let mut last: std::collections::HashMap<crate::history::Step, usize> =
        std::collections::HashMap::new();
    ops.iter()
        .enumerate()
        .map(|(i, op)| {
            if op.complete_time.is_some() {
                return None;
            }
            last.insert(op.step, i)
        })
        .collect()
}

/// The set of linearized ops (positions in invoke order), as a bitset that also knows its
/// first word with a gap. The search linearizes ops roughly in invoke order, so the set is
/// "everything before some point" plus a window of the currently concurrent ops; a cache key
/// is that point and the window ([`LinearizedSet::key`]), which keeps each cache entry as small
/// as the concurrency instead of as long as the history.
struct LinearizedSet {
    bits: Vec<u64>,
    /// Every word before this one is all ones.
    full_words: usize,
    /// No word at or after this one has a bit set (an upper bound: removals leave it).
    end_words: usize,
}

impl LinearizedSet {
    fn new(words: usize) -> LinearizedSet {
        LinearizedSet {
            bits: vec![0; words],
            full_words: 0,
            end_words: 0,
        }
    }

    fn insert(&mut self, op: usize) {
        self.bits[op / 64] |= 1 << (op % 64);
        self.end_words = self.end_words.max(op / 64 + 1);
        while self.full_words < self.bits.len() && self.bits[self.full_words] == u64::MAX {
            self.full_words += 1;
        }
    }

    fn contains(&self, op: usize) -> bool {
        self.bits[op / 64] & (1 << (op % 64)) != 0
    }

    fn remove(&mut self, op: usize) {
        let word = op / 64;
        self.bits[word] &= !(1 << (op % 64));
        self.full_words = self.full_words.min(word);
    }

    /// A canonical key: the number of leading full words and the words after them up to the
    /// last non-zero one.
    fn key(&self) -> (u32, Box<[u64]>) {
        let start = self.full_words.min(self.end_words);
        let rest = &self.bits[start..self.end_words];
        let used = rest.iter().rposition(|w| *w != 0).map_or(0, |i| i + 1);
        (self.full_words as u32, rest[..used].into())
    }
}

fn failure_of(nodes: &[Node], calls: &[(usize, Value)], state: Value, stuck: usize) -> Failure {
    // The state after step i is the state saved before step i + 1, and `state` after the last.
    let mut prefix = Vec::with_capacity(calls.len());
    for (i, &(entry, _)) in calls.iter().enumerate() {
        let after = calls.get(i + 1).map_or(state, |&(_, before)| before);
        prefix.push((nodes[entry].op, after));
    }
    Failure { prefix, stuck }
}

fn lift(nodes: &mut [Node], entry: usize) {
    let call = nodes[entry];
    nodes[call.prev].next = call.next;
    if call.next != NONE {
        nodes[call.next].prev = call.prev;
    }
    let ret = nodes[call.partner];
    nodes[ret.prev].next = ret.next;
    if ret.next != NONE {
        nodes[ret.next].prev = ret.prev;
    }
}

fn unlift(nodes: &mut [Node], entry: usize) {
    let partner = nodes[entry].partner;
    let ret = nodes[partner];
    nodes[ret.prev].next = partner;
    if ret.next != NONE {
        nodes[ret.next].prev = partner;
    }
    let call = nodes[entry];
    nodes[call.prev].next = entry;
    if call.next != NONE {
        nodes[call.next].prev = entry;
    }
}

/// A generous default for one key: a history that needs more than this is rare and is
/// reported `unknown` instead of exhausting the machine.
pub const DEFAULT_MEMORY: usize = 1 << 30;

/// Default wall-clock budget when the caller gives none.
pub const DEFAULT_TIME: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Completion, Function, Step};

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
            key: "k".into(),
            value: serde_json::Value::Null,
            invoke_time: invoke,
            complete_time: complete,
            node: None,
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

    #[test]
    fn deadline_in_the_past_gives_unknown() {
        let mut ops = Vec::new();
        for i in 0..5000u64 {
            ops.push(op(i, i * 2, Some(i * 2 + 1), Step::Write(i as i64)));
        }
        let budget = Budget {
            cancel: None,
            deadline: Some(Instant::now() - Duration::from_secs(1)),
            memory: DEFAULT_MEMORY,
        };
        assert!(matches!(
            search(&ops, Model::CasRegister, None, budget),
            Outcome::Unknown(_)
        ));
    }
}
