//! What an invalid key looks like, in terms a reader can follow (DESIGN.md: "the smallest
//! failing window, the longest linearizable prefix, and the operations that cannot be
//! placed").

use std::cell::OnceCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::core;

mod lock;
use crate::history::{Completion, Function, KeyHistory, Op, OpRecord, Step, Strings, Value};
use crate::search::Failure;

/// One step of the longest linearizable prefix.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PrefixStep {
    /// The operation, as the report's timeline draws it.
    pub op: OpRecord,
    /// The register's value after it (null = absent).
    pub state_after: Value,
    /// Under the multi-register model: every register's value after it (`state_after` is
    /// then null).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub registers_after: BTreeMap<String, Value>,
}

/// A configuration the search ended in: the state and the linearized ops (history indices).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Configuration {
    pub state: Value,
    /// Under the multi-register model: every register's value (`state` is then null).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub registers: BTreeMap<String, Value>,
    pub linearized: Vec<u64>,
}

/// The time window that holds the failure: from the earliest invoke among the stuck op, the last
/// ok op before it and the evidence its sentence cites, to the latest completion among the stuck
/// op and that evidence.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Window {
    pub start: u64,
    pub end: u64,
}

/// The explanation of one invalid key, as `results.json` carries it to the report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Counterexample {
    pub key: String,
    /// The operation that cannot be linearized: highlighted on the report's timeline.
    pub op: OpRecord,
    /// Ok operations of this key that completed before `op` was invoked (the last ten, oldest
    /// first): what a reader compares `op` against.
    pub previous_ok: Vec<OpRecord>,
    /// The longest linearizable prefix, in linearization order, with the value after each step.
    pub prefix: Vec<PrefixStep>,
    /// Where the search ended: state and linearized set.
    pub final_configurations: Vec<Configuration>,
    /// The smallest time window that shows the failure (nanoseconds since the run started).
    pub window: Window,
    /// One plain sentence saying what went wrong.
    pub explanation: String,
    /// The operations the sentence cites as evidence, besides `op` (the write that overwrote
    /// the value, a read that saw the register move on, …); empty when it cites none.
    #[serde(default)]
    pub evidence: Vec<OpRecord>,
}

impl Counterexample {
    /// `key k3: <explanation>`, or the explanation alone for a history of one register.
    pub fn headline(&self) -> String {
        if self.key.is_empty() {
            self.explanation.clone()
        } else {
            format!("key {}: {}", self.key, self.explanation)
        }
    }
}

const PREVIOUS_OK: usize = 10;

/// The ok operations that completed before `time`, the last [`PREVIOUS_OK`] of them, oldest
/// first: what a reader compares a counterexample's operation against.
pub(crate) fn previous_ok(ops: &[Op], time: u64) -> Vec<&Op> {
    let mut before: Vec<&Op> = ops
        .iter()
        .filter(|o| o.completion == Completion::Ok)
        .filter(|o| o.complete_time.is_some_and(|t| t < time))
        .collect();
    before.sort_by_key(|o| o.complete_time);
    before.split_off(before.len().saturating_sub(PREVIOUS_OK))
}

/// Turn the search's deepest configuration into a counterexample; `strings` names the nodes,
/// `timed` says whether the history's times are real (else its sentence names history
/// indices).
pub fn explain(
    key: &KeyHistory,
    failure: &Failure,
    initial: Value,
    strings: &Strings,
    timed: bool,
) -> Counterexample {
    let ops = &key.ops;
    let record = |op: &Op| OpRecord::of(op, &key.key, strings);
    let stuck = &ops[failure.stuck];
    // A lock has no reads to point at instead, but the search's dead end may not be the
    // operation that truly cannot be placed.
    let register = !stuck.f.on_lock();
    let stuck = match register {
        true => stuck,
        false => core::lock_stuck(key, stuck, initial).unwrap_or(stuck),
    };
    let stuck = first_sighting(key, stuck)
        .filter(|_| register)
        .unwrap_or(stuck);
    let stuck = stale_rereader(key, stuck, initial)
        .filter(|_| register)
        .unwrap_or(stuck);
    let previous_ok: Vec<OpRecord> = previous_ok(ops, stuck.invoke_time)
        .into_iter()
        .map(record)
        .collect();
    let prefix: Vec<PrefixStep> = failure
        .prefix
        .iter()
        .map(|&(i, state_after)| PrefixStep {
            op: record(&ops[i]),
            state_after,
            registers_after: BTreeMap::new(),
        })
        .collect();
    let state = prefix.last().map_or(initial, |s| s.state_after);
    let final_configurations = vec![Configuration {
        state,
        registers: BTreeMap::new(),
        linearized: prefix.iter().map(|s| s.op.index).collect(),
    }];
    let (explanation, cited) = sentence(key, stuck, state, initial, strings, When { timed });
    // The window holds the op, the ok ops just before it, and what the sentence cites.
    let start = previous_ok
        .last()
        .map(|o| o.invoke_time)
        .into_iter()
        .chain(cited.iter().map(|o| o.invoke_time))
        .fold(stuck.invoke_time, u64::min);
    let end = cited
        .iter()
        .chain([&stuck])
        .map(|o| o.complete_time.unwrap_or(o.invoke_time))
        .fold(0, u64::max);
    Counterexample {
        key: key.key.clone(),
        op: record(stuck),
        explanation,
        evidence: cited.into_iter().map(record).collect(),
        previous_ok,
        prefix,
        final_configurations,
        window: Window { start, end },
    }
}

/// When an event happened, as a reader of the history can find it: seconds into the run, or
/// for histories without times (Jepsen text logs, EDN without `:time`) its history index.
#[derive(Clone, Copy)]
pub(crate) struct When {
    pub(crate) timed: bool,
}

impl When {
    pub(crate) fn at(self, time: u64, index: Option<u64>) -> String {
        if self.timed {
            format!("{:.3} s", time as f64 / 1e9)
        } else {
            format!("history index {}", index.unwrap_or(time))
        }
    }

    fn completed(self, op: &Op) -> String {
        match op.complete_time {
            Some(t) => self.at(t, op.complete_index),
            None => self.at(op.invoke_time, Some(op.index)),
        }
    }
}

pub(crate) fn show(v: Value) -> String {
    v.map_or_else(|| "nothing (absent)".to_string(), |v| v.to_string())
}

/// "read of k3 on n2 returned 17 at 12.4 s, but 17 had been overwritten by write 18 that
/// completed at 11.9 s" — or the closest true sentence the history supports.
fn sentence<'a>(
    key: &'a KeyHistory,
    stuck: &'a Op,
    state: Value,
    initial: Value,
    strings: &Strings,
    when: When,
) -> (String, Vec<&'a Op>) {
    let on_node = |op: &Op| {
        strings
            .get(op.node)
            .map(|n| format!(" on {n}"))
            .unwrap_or_default()
    };
    let on = on_node(stuck);
    if stuck.f.on_lock() {
        return lock::sentence(key, stuck, &on, initial, when);
    }
    // A history of one register has no key names.
    let k = if key.key.is_empty() {
        "the register"
    } else {
        &key.key
    };
    let at = when.completed(stuck);
    // Whether the register starts with `v` or an op other than `stuck` writes it (a CAS
    // cannot supply the value it expects).
    let written_ever = |v: Value| {
        v == initial
            || key
                .ops
                .iter()
                .any(|o| o.index != stuck.index && writes(o) == v)
    };
    // ", and from then until the read the register could hold only 0 or 4": the values the
    // ops not yet ended could still give it, which shows why writes of the value still running
    // do not bring it back.
    let reaching = |reach: &Option<Vec<i64>>, observed: Value| match reach.as_deref() {
        None => String::new(),
        Some(values) => {
            let none_of = if values.len() > LISTED {
                format!(", none of them {}", show(observed))
            } else {
                String::new()
            };
            format!(
                ", and from then until the {} {k} could hold only {}{none_of}",
                Function::name(stuck.f),
                listed(values.iter().map(i64::to_string))
            )
        }
    };
    // "starting from nothing (absent), the operations begun by then could give it only 0 or 2".
    let from_start = |reach: &[i64]| {
        let start = format!("starting from {}", show(initial));
        if reach.is_empty() {
            format!("{start}, no operation begun by then could give it a value")
        } else {
            format!(
                "{start}, the operations begun by then could give it only {}",
                listed(reach.iter().map(i64::to_string))
            )
        }
    };
    // "… but <this>": what the evidence shows, for the value the op observed.
    let but = |gone: Gone, observed: Value| match (gone, observed) {
        (Gone::Overwritten { write, reach }, Some(v)) => format!(
            "{v} had been overwritten by {} that completed at {}{}",
            what(write),
            when.completed(write),
            reaching(&reach, observed)
        ),
        (Gone::Overwritten { write, .. }, None) => {
            format!("{} had completed at {}", what(write), when.completed(write))
        }
        (Gone::ReadAgain { write, read }, _) => format!(
            "{} had completed at {} and a read{} still returned {} at {} ({} is written only once)",
            what(write),
            when.completed(write),
            on_node(read),
            show(writes(write)),
            when.completed(read),
            show(writes(write))
        ),
        (
            Gone::MovedOn {
                read,
                seen,
                last_write,
                reach,
            },
            _,
        ) => format!(
            "{} had been overwritten: a read{} returned {seen} at {}{}{}",
            show(observed),
            on_node(read),
            when.completed(read),
            last_write
                .map(|w| format!(", after {} completed at {}", what(w), when.completed(w)))
                .unwrap_or_default(),
            reaching(&reach, observed)
        ),
        (
            Gone::Contradicted {
                by,
                after_it,
                after_stuck,
            },
            _,
        ) => {
            let (other, other_name) = match by.step {
                Step::Read(seen) => (
                    format!("a read{} returned {}", on_node(by), show(seen)),
                    "the other read",
                ),
                _ => (format!("{}{} succeeded", what(by), on_node(by)), "the cas"),
            };
            let this = Function::name(stuck.f);
            format!(
                "{other} at {}, and neither order works: after that {} {k} could hold only {} until the {this}, and after the {this} only {} until {other_name}",
                when.completed(by),
                Function::name(by.f),
                listed(after_it.iter().map(|v| show(*v))),
                listed(after_stuck.iter().map(|v| show(*v)))
            )
        }
    };
    if key
        .ops
        .iter()
        .any(|o| matches!(o.step, Step::Append { .. }))
    {
        // kv values are fingerprints of strings here: say what failed, not which number.
        let text = match stuck.step {
            Step::Read(_) => format!(
                "get of {k}{on} (history line {}) returned a string that no order of the puts and appends on {k} before it produces",
                stuck.index + 1
            ),
            _ => format!(
                "{} on {k}{on} (history line {}) cannot be placed in any order of the operations on {k}",
                Function::name(stuck.f),
                stuck.index + 1
            ),
        };
        return (text, Vec::new());
    }
    // What changes the register, as the sentences below name it.
    let with_cas = key.ops.iter().any(|o| matches!(o.step, Step::Cas { .. }));
    let changers = match (with_cas, matches!(stuck.step, Step::Cas { .. })) {
        (false, _) => "the writes",
        (true, false) => "the writes and successful CASes",
        (true, true) => "the writes and other successful CASes",
    };
    // Said when a read or failed CAS besides `stuck` and `named` completed, which the
    // sentence set aside.
    let whatever_the_others_saw = |named: &[&Op]| {
        let others_left_out = key.ops.iter().any(|o| {
            o.index != stuck.index
                && o.complete_time.is_some()
                && core::observes(o)
                && !named.iter().any(|r| r.index == o.index)
        });
        if others_left_out {
            ", whatever the other reads saw"
        } else {
            ""
        }
    };
    // "this read, the writes on k3 and the read that returned 4 at 2.1 s cannot all be
    // ordered, whatever the other reads saw": where no single op shows the value gone, the
    // few reads that refute the op together ([`core::refuting_reads`]).
    let named_together = |this: &str, reads: &[&Op]| -> String {
        let mut parts = vec![this.to_string(), format!("{changers} on {k}")];
        parts.extend(reads.iter().take(LISTED).map(|o| match o.step {
            Step::CasMismatch { expected } => format!(
                "the cas{} from {expected} that failed at {}",
                on_node(o),
                when.completed(o)
            ),
            _ => format!(
                "the read{} that returned {} at {}",
                on_node(o),
                show(reads_value(o)),
                when.completed(o)
            ),
        }));
        if reads.len() > LISTED {
            parts.push(format!(
                "{} more reads and failed CASes (listed as evidence)",
                reads.len() - LISTED
            ));
        }
        let last = parts.pop().unwrap_or_default();
        format!(
            "{} and {last} cannot all be ordered{}",
            parts.join(", "),
            whatever_the_others_saw(reads)
        )
    };
    // The sentence with those reads named, or `fallback` without them. A read that the
    // state changes alone refute gets the values they would let it return instead.
    let together = |head: &str, this: &str, fallback: String| {
        let Some(reads) = core::refuting_reads(key, stuck, initial) else {
            return (fallback, Vec::new());
        };
        let readable = if reads.is_empty() {
            core::readable_values(key, stuck, initial)
        } else {
            None
        };
        let text = match readable {
            Some(values) => format!(
                "{head}, but {changers} on {k} let this read return only {}{}",
                listed(values.iter().map(|v| show(*v))),
                whatever_the_others_saw(&[])
            ),
            None => format!("{head}, but {}", named_together(this, &reads)),
        };
        (text, reads)
    };
    // The ops the sentence names besides `stuck`.
    let mut cited: Vec<&'a Op> = Vec::new();
    let text = match stuck.step {
        Step::Read(observed) => {
            let read = format!("read of {k}{on} returned {} at {at}", show(observed));
            if observed.is_some() && !written_ever(observed) {
                return (format!("{read}, a value no operation wrote"), cited);
            }
            if let Some(reach) = never_reached(key, stuck, observed, initial) {
                let text = format!(
                    "{read}, but {k} could never hold {} before the read ended: {}",
                    show(observed),
                    from_start(&reach)
                );
                return (text, cited);
            }
            match evidence(key, stuck, observed, initial) {
                Some(gone) => {
                    cited = gone.cited();
                    format!("{read}, but {}", but(gone, observed))
                }
                None => {
                    let (text, reads) = together(
                        &read,
                        "this read",
                        format!(
                            "{read}, which no order of the operations on {k} explains (the register held {} after the longest explainable prefix)",
                            show(state)
                        ),
                    );
                    cited = reads;
                    text
                }
            }
        }
        Step::Cas { expected, new } => {
            let cas = format!("cas of {k}{on} from {expected} to {new} succeeded at {at}");
            if !written_ever(Some(expected)) {
                let other = if new == expected { "other " } else { "" };
                return (
                    format!("{cas}, but no {other}operation wrote {expected}"),
                    cited,
                );
            }
            if let Some(reach) = never_reached(key, stuck, Some(expected), initial) {
                let text = format!(
                    "{cas}, but {k} could never hold {expected} before the cas ended: {}",
                    from_start(&reach)
                );
                return (text, cited);
            }
            match evidence(key, stuck, Some(expected), initial) {
                Some(gone) => {
                    cited = gone.cited();
                    format!("{cas}, but {}", but(gone, Some(expected)))
                }
                None => {
                    let (text, reads) = together(
                        &cas,
                        "this cas",
                        format!(
                            "{cas}, but {k} could not have held {expected} then (it held {} after the longest explainable prefix)",
                            show(state)
                        ),
                    );
                    cited = reads;
                    text
                }
            }
        }
        Step::CasMismatch { expected } => {
            let failed = format!(
                "cas of {k}{on} from {expected} failed at {at} because {k} did not hold {expected}"
            );
            match held_throughout(key, stuck, expected, initial) {
                Some(Held::Written(w)) => {
                    cited = vec![w];
                    format!(
                        "{failed}, but {} had completed at {} and from then until the cas {k} could hold only {expected}",
                        what(w),
                        when.completed(w)
                    )
                }
                Some(Held::FromTheStart) => format!(
                    "{failed}, but {k} started with {expected} and no operation could write {k} before the cas ended"
                ),
                None => {
                    let (text, reads) = together(
                        &failed,
                        "this cas",
                        format!(
                            "{failed}, but no order of the operations lets it hold anything else then"
                        ),
                    );
                    cited = reads;
                    text
                }
            }
        }
        Step::Write(v) => format!(
            "write of {v} to {k}{on} at {at} cannot be placed in any order of the operations on {k}"
        ),
        Step::Append { .. } => format!("append to {k}{on} at {at} cannot be placed"),
        Step::Nothing | Step::Txn(_) => format!("an operation on {k} at {at} cannot be placed"),
    };
    (text, cited)
}

/// What shows that the value an op observed was gone before the op began.
enum Gone<'a> {
    /// An ok write of another value that ended before the op began, and began after every
    /// write of the observed one had ended — or, if some were still running, from which the
    /// ops still running could take the register only to the values of `reach`.
    Overwritten {
        write: &'a Op,
        reach: Option<Vec<i64>>,
    },
    /// An ok write of another value, the only write of that value, that ended before the op
    /// began, and an ok read of that value that began after the op ended: that value cannot
    /// have been left for the observed one and come back.
    ReadAgain { write: &'a Op, read: &'a Op },
    /// An ok read of another value that ended before the op began, and began after every
    /// write of the observed one had ended (`last_write`, the last to end) — or, as for
    /// `Overwritten`, from which the ops still running could reach only `reach`.
    MovedOn {
        read: &'a Op,
        seen: i64,
        last_write: Option<&'a Op>,
        reach: Option<Vec<i64>>,
    },
    /// An ok op that saw another value, in either order (see [`contradicting_observer`]),
    /// with the values the register could hold after it and after the op until the other.
    Contradicted {
        by: &'a Op,
        after_it: Vec<Value>,
        after_stuck: Vec<Value>,
    },
}

impl<'a> Gone<'a> {
    /// The ops this evidence names.
    fn cited(&self) -> Vec<&'a Op> {
        match self {
            Gone::Overwritten { write, .. } => vec![write],
            Gone::ReadAgain { write, read } => vec![write, read],
            Gone::MovedOn {
                read, last_write, ..
            } => last_write.iter().copied().chain([*read]).collect(),
            Gone::Contradicted { by, .. } => vec![by],
        }
    }
}

/// Stands for "never ended" among [`end`]s.
const NEVER: u64 = u64::MAX;

/// Just after `op` ended, so that 0 can stand for "no op": an op ended before `t` iff
/// `end(op) <= t`.
fn end(op: &Op) -> u64 {
    op.complete_time.map_or(NEVER, |t| t.saturating_add(1))
}

/// How many of the latest candidates the reach rule tries: each try is linear in the ops still
/// running, and a late candidate has the fewest.
const REACH_TRIES: usize = 64;

/// The ops that could have written the register before the stuck op ended (every op with a
/// value to write that began before then, but the stuck op itself: a CAS cannot supply the
/// value it expects).
struct Writers<'a> {
    ops: Vec<&'a Op>,
    /// `ops`, latest [`end`] first (the ops still running at a time are then a prefix), sorted
    /// only once a reach is asked for: the common stories need no order.
    by_end: OnceCell<Vec<&'a Op>>,
    observed: Value,
    stuck_invoked: u64,
    /// [`end`] of the last of them to end that writes the observed value (0: none does).
    producers_end: u64,
}

impl<'a> Writers<'a> {
    fn of(key: &'a KeyHistory, stuck: &Op, observed: Value) -> Writers<'a> {
        let ops: Vec<&Op> = key
            .ops
            .iter()
            .filter(|o| writes(o).is_some() && o.index != stuck.index)
            .filter(|o| stuck.complete_time.is_none_or(|t| o.invoke_time < t))
            .collect();
        let producers_end = ops
            .iter()
            .filter(|o| observed.is_some() && writes(o) == observed)
            .map(|o| end(o))
            .max()
            .unwrap_or(0);
        Writers {
            ops,
            by_end: OnceCell::new(),
            observed,
            stuck_invoked: stuck.invoke_time,
            producers_end,
        }
    }

    /// Whether `op` ended before the stuck op began.
    fn ended_before_stuck(&self, op: &Op) -> bool {
        op.complete_time.is_some_and(|t| t < self.stuck_invoked)
    }

    /// [`Writers::reach_without_observed`] once the register held `from` after `op` began.
    fn reach_from_start_of(&self, op: &Op, from: i64) -> Option<Vec<i64>> {
        self.reach_without_observed(op.invoke_time, Some(from))
    }

    /// Whether every write of the observed value ended before `t`.
    fn all_ended_before(&self, t: u64) -> bool {
        self.producers_end <= t
    }

    /// The values the register could still take, sorted, once it held `from` (`None`: it was
    /// empty) at a point after `t`, if the observed value is not among them: `from`, every
    /// value written by an op that had not ended by `t`, and what such CASes make of those.
    fn reach_without_observed(&self, t: u64, from: Value) -> Option<Vec<i64>> {
        let by_end = self.by_end.get_or_init(|| {
            let mut sorted = self.ops.clone();
            sorted.sort_unstable_by_key(|o| Reverse(end(o)));
            sorted
        });
        let running = by_end.iter().copied().take_while(|o| end(o) > t);
        let reached = reach(from, running);
        if self.observed.is_some() && reached.contains(&self.observed) {
            return None;
        }
        Some(reached.into_iter().flatten().collect())
    }

    /// The write of the observed value that ended last, among those that ended before `t`.
    fn last_producer_before(&self, t: u64) -> Option<&'a Op> {
        self.ops
            .iter()
            .filter(|o| writes(o) == self.observed && end(o) <= t)
            .max_by_key(|o| end(o))
            .copied()
    }
}

/// The evidence, if the history has it, that `observed` was gone before `stuck` began. Linear
/// in the key's ops (the reach rule: in the ops still running, a bounded number of times):
/// histories can be huge.
fn evidence<'a>(
    key: &'a KeyHistory,
    stuck: &Op,
    observed: Value,
    initial: Value,
) -> Option<Gone<'a>> {
    let writers = Writers::of(key, stuck, observed);
    let overwriters: Vec<&Op> = key
        .ops
        .iter()
        .filter(|o| {
            o.completion == Completion::Ok
                && writes(o).is_some()
                && writes(o) != observed
                && writers.ended_before_stuck(o)
        })
        .collect();
    if let Some(write) = overwriters
        .iter()
        .find(|o| writers.all_ended_before(o.invoke_time))
    {
        return Some(Gone::Overwritten { write, reach: None });
    }
    if let Some((write, reach)) = overwriters
        .iter()
        .rev()
        .take(REACH_TRIES)
        .find_map(|o| Some((*o, writers.reach_from_start_of(o, writes(o)?)?)))
    {
        return Some(Gone::Overwritten {
            write,
            reach: Some(reach),
        });
    }
    // The other stories need a value some op wrote; absent is never written back.
    observed?;
    if let Some((write, read)) = read_again(key, stuck, observed, initial) {
        return Some(Gone::ReadAgain { write, read });
    }
    moved_on(key, observed, &writers).or_else(|| {
        contradicting_observer(key, stuck, observed).map(|(by, after_it, after_stuck)| {
            Gone::Contradicted {
                by,
                after_it,
                after_stuck,
            }
        })
    })
}

/// [`Gone::MovedOn`], if the history has it.
fn moved_on<'a>(key: &'a KeyHistory, observed: Value, writers: &Writers<'a>) -> Option<Gone<'a>> {
    if writers.producers_end == 0 {
        return None;
    }
    let mut moved_on: Vec<(&Op, i64)> = key
        .ops
        .iter()
        .filter_map(|o| match o.step {
            Step::Read(Some(seen))
                if Some(seen) != observed
                    && o.completion == Completion::Ok
                    && writers.ended_before_stuck(o) =>
            {
                Some((o, seen))
            }
            _ => None,
        })
        .collect();
    moved_on.sort_by_key(|(o, _)| o.complete_time);
    let story = |read: &'a Op, seen: i64, reach: Option<Vec<i64>>| Gone::MovedOn {
        read,
        seen,
        last_write: writers.last_producer_before(read.invoke_time),
        reach,
    };
    if let Some(&(read, seen)) = moved_on
        .iter()
        .rev()
        .find(|(o, _)| writers.all_ended_before(o.invoke_time))
    {
        return Some(story(read, seen, None));
    }
    moved_on
        .iter()
        .rev()
        .take(REACH_TRIES)
        .find_map(|&(read, seen)| {
            let reach = writers.reach_from_start_of(read, seen)?;
            Some(story(read, seen, Some(reach)))
        })
}

/// The values, sorted (absent first), the register can take from `from` through `ops` in any
/// order: `from`, what each write sets, and what each CAS makes of a value already reached.
fn reach<'o>(from: Value, ops: impl Iterator<Item = &'o Op>) -> Vec<Value> {
    let mut reached: HashSet<Value> = HashSet::from([from]);
    let mut moves: HashMap<i64, Vec<i64>> = HashMap::new();
    for o in ops {
        match o.step {
            Step::Cas { expected, new } => moves.entry(expected).or_default().push(new),
            Step::Write(v) => {
                reached.insert(Some(v));
            }
            _ => {}
        }
    }
    let mut frontier: Vec<i64> = reached.iter().copied().flatten().collect();
    while let Some(u) = frontier.pop() {
        for &v in moves.get(&u).map_or(&[][..], Vec::as_slice) {
            if reached.insert(Some(v)) {
                frontier.push(v);
            }
        }
    }
    let mut reached: Vec<Value> = reached.into_iter().collect();
    reached.sort_unstable();
    reached
}

/// How many ops near the stuck one [`contradicting_observer`] tries: each try is a pass over
/// the key's ops.
const OBSERVER_TRIES: usize = 64;

/// An ok op that saw another value than `stuck` in either order: had it taken effect first,
/// the ops that could still write the register afterwards could not have given it the value
/// `stuck` saw by then, and had `stuck` been first, they could not have given it the value the
/// other saw. With what the register could hold after each.
fn contradicting_observer<'a>(
    key: &'a KeyHistory,
    stuck: &Op,
    observed: Value,
) -> Option<(&'a Op, Vec<Value>, Vec<Value>)> {
    // What an op sees and what it leaves in the register.
    let sees_and_leaves = |o: &Op| match o.step {
        Step::Read(seen) => Some((seen, seen)),
        Step::Cas { expected, new } => Some((Some(expected), Some(new))),
        _ => None,
    };
    let (_, stuck_leaves) = sees_and_leaves(stuck)?;
    let stuck_end = stuck.complete_time?;
    let mut near: Vec<(&Op, Value, Value)> = key
        .ops
        .iter()
        .filter(|o| o.index != stuck.index && o.completion == Completion::Ok)
        .filter(|o| o.complete_time.is_some() && o.invoke_time < stuck_end)
        .filter_map(|o| sees_and_leaves(o).map(|(seen, leaves)| (o, seen, leaves)))
        .filter(|&(_, seen, leaves)| seen != stuck_leaves && leaves != observed)
        .collect();
    near.sort_by_key(|(o, ..)| o.invoke_time.abs_diff(stuck.invoke_time));
    // The values the register can take from `from` through the ops, but these two, that may
    // take effect after `first` began and before `then` ended.
    let after = |from: Value, first: &Op, then: &Op| {
        let between = key.ops.iter().filter(|w| {
            w.index != stuck.index
                && w.index != then.index
                && w.index != first.index
                && end(w) > first.invoke_time
                && w.invoke_time <= then.complete_time.unwrap_or(u64::MAX)
        });
        reach(from, between)
    };
    near.into_iter()
        .take(OBSERVER_TRIES)
        .find_map(|(other, seen, leaves)| {
            let after_other = after(leaves, other, stuck);
            let after_stuck = after(stuck_leaves, stuck, other);
            (!after_other.contains(&observed) && !after_stuck.contains(&seen)).then_some((
                other,
                after_other,
                after_stuck,
            ))
        })
}

/// The values the register could hold at all before `stuck` ended, from its start, if
/// `observed` is not among them.
fn never_reached(
    key: &KeyHistory,
    stuck: &Op,
    observed: Value,
    initial: Value,
) -> Option<Vec<i64>> {
    let v = observed?;
    let writers = Writers::of(key, stuck, observed);
    // Reachable at once (the common case): no need for the closure over every value written.
    if observed == initial || writers.ops.iter().any(|o| o.step == Step::Write(v)) {
        return None;
    }
    writers.reach_without_observed(0, initial)
}

/// Why a register must have held a value all through an op.
enum Held<'a> {
    /// This ok op wrote it and ended before the op began, and nothing not yet ended then could
    /// take the register to another value.
    Written(&'a Op),
    /// The register started with it and nothing could write before the op ended.
    FromTheStart,
}

/// The evidence, if the history has it, that the register held `expected` all through `stuck`
/// (a CAS that failed because it did not).
fn held_throughout<'a>(
    key: &'a KeyHistory,
    stuck: &Op,
    expected: i64,
    initial: Value,
) -> Option<Held<'a>> {
    let writers = Writers::of(key, stuck, None);
    if writers.ops.is_empty() {
        return (initial == Some(expected)).then_some(Held::FromTheStart);
    }
    key.ops
        .iter()
        .filter(|o| {
            o.completion == Completion::Ok
                && writes(o) == Some(expected)
                && writers.ended_before_stuck(o)
        })
        .rev()
        .take(REACH_TRIES)
        .find(|o| writers.reach_from_start_of(o, expected) == Some(vec![expected]))
        .map(Held::Written)
}

/// For an indeterminate write or CAS the search could not place: the completed op that first
/// saw its value. The checker closes such an op there (with its value written once it must have
/// taken effect by then), so that op is where the history goes wrong, and the one a reader can
/// check; the open op itself has no outcome to show.
fn first_sighting<'a>(key: &'a KeyHistory, stuck: &Op) -> Option<&'a Op> {
    if stuck.complete_time.is_some() {
        return None;
    }
    let v = writes(stuck)?;
    key.ops
        .iter()
        .filter(|o| o.completion == Completion::Ok && o.complete_time.is_some())
        .filter(|o| match o.step {
            Step::Read(seen) => seen == Some(v),
            Step::Cas { expected, .. } => expected == v,
            _ => false,
        })
        .min_by_key(|o| o.complete_time)
}

/// The read that read-again evidence against `stuck` names, if that read is stale on evidence
/// of its own (a write overwrote its value before it began): it is then the smaller witness, and
/// the one a reader should see. (A late read of a value long overwritten stops the search early,
/// at a read the history can explain but for that late one.)
fn stale_rereader<'a>(key: &'a KeyHistory, stuck: &Op, initial: Value) -> Option<&'a Op> {
    let observed = match stuck.step {
        Step::Read(observed) => observed,
        Step::Cas { expected, .. } => Some(expected),
        _ => return None,
    };
    let Some(Gone::ReadAgain { read, .. }) = evidence(key, stuck, observed, initial) else {
        return None;
    };
    let Step::Read(seen) = read.step else {
        return None;
    };
    matches!(
        evidence(key, read, seen, initial),
        Some(Gone::Overwritten { .. })
    )
    .then_some(read)
}

/// For [`Gone::ReadAgain`]: the first such write, with the earliest such read of its value.
fn read_again<'a>(
    key: &'a KeyHistory,
    stuck: &Op,
    observed: Value,
    initial: Value,
) -> Option<(&'a Op, &'a Op)> {
    let after = stuck.complete_time?;
    let mut writers: HashMap<i64, u32> = HashMap::new();
    let mut read_after: HashMap<i64, &Op> = HashMap::new();
    for o in &key.ops {
        if let Some(u) = writes(o) {
            *writers.entry(u).or_default() += 1;
        }
        if let (Completion::Ok, Step::Read(Some(u))) = (o.completion, o.step)
            && o.invoke_time > after
        {
            let earliest = read_after.entry(u).or_insert(o);
            if o.complete_time < earliest.complete_time {
                *earliest = o;
            }
        }
    }
    key.ops.iter().find_map(|w| {
        let u = writes(w)?;
        let fits = w.completion == Completion::Ok
            && Some(u) != observed
            && Some(u) != initial
            && w.complete_time.is_some_and(|t| t < stuck.invoke_time)
            && writers.get(&u) == Some(&1);
        fits.then(|| read_after.get(&u).map(|r| (w, *r))).flatten()
    })
}

/// A writing op as a reader names it: `write 3`, `cas from 2 to 3`.
fn what(op: &Op) -> String {
    match op.step {
        Step::Cas { expected, new } => format!("cas from {expected} to {new}"),
        _ => format!("{} {}", Function::name(op.f), show(writes(op))),
    }
}

/// How many values a sentence lists before it only counts them.
const LISTED: usize = 5;

/// `3`, `1 or 3`, `0, 1 or 3`; past [`LISTED`] values only how many: `one of 7 values`.
fn listed(values: impl ExactSizeIterator<Item = String>) -> String {
    if values.len() > LISTED {
        return format!("one of {} values", values.len());
    }
    let mut shown: Vec<String> = values.collect();
    match shown.pop() {
        None => String::new(),
        Some(last) if shown.is_empty() => last,
        Some(last) => format!("{} or {last}", shown.join(", ")),
    }
}

/// The value a read returned; `None` (absent) for any other op.
fn reads_value(op: &Op) -> Value {
    match op.step {
        Step::Read(v) => v,
        _ => None,
    }
}

/// The value an operation leaves in the register, if it writes one.
fn writes(op: &Op) -> Value {
    match op.step {
        Step::Write(v) | Step::Cas { new: v, .. } => Some(v),
        _ => None,
    }
}
