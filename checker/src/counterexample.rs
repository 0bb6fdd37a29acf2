//! What an invalid key looks like, in terms a reader can follow (DESIGN.md: "the smallest
//! failing window, the longest linearizable prefix, and the operations that cannot be
//! placed").

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::history::{Completion, Function, KeyHistory, Op, OpRecord, Step, Strings, Value};
use crate::search::Failure;

/// One step of the longest linearizable prefix.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PrefixStep {
    /// The operation, as the report's timeline draws it.
    pub op: OpRecord,
    /// The register's value after it (null = absent).
    pub state_after: Value,
}

/// A configuration the search ended in: the state and the linearized ops (history indices).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Configuration {
    pub state: Value,
    pub linearized: Vec<u64>,
}

/// The time window that holds the failure: from the earliest invoke among the prefix's last
/// steps and the stuck op's predecessors to the stuck op's completion.
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
    let stuck = stale_rereader(key, stuck, initial).unwrap_or(stuck);
    let mut previous_ok: Vec<&Op> = ops
        .iter()
        .filter(|o| o.completion == Completion::Ok)
        .filter(|o| o.complete_time.is_some_and(|t| t < stuck.invoke_time))
        .collect();
    previous_ok.sort_by_key(|o| o.complete_time);
    let previous_ok: Vec<OpRecord> = previous_ok[previous_ok.len().saturating_sub(PREVIOUS_OK)..]
        .iter()
        .map(|o| record(o))
        .collect();
    let prefix: Vec<PrefixStep> = failure
        .prefix
        .iter()
        .map(|&(i, state_after)| PrefixStep {
            op: record(&ops[i]),
            state_after,
        })
        .collect();
    let state = prefix.last().map_or(initial, |s| s.state_after);
    let final_configurations = vec![Configuration {
        state,
        linearized: prefix.iter().map(|s| s.op.index).collect(),
    }];
    let start = previous_ok
        .last()
        .map_or(stuck.invoke_time, |o| o.invoke_time.min(stuck.invoke_time));
    let end = stuck.complete_time.unwrap_or(stuck.invoke_time);
    Counterexample {
        key: key.key.clone(),
        op: record(stuck),
        explanation: sentence(key, stuck, state, initial, strings, When { timed }),
        previous_ok,
        prefix,
        final_configurations,
        window: Window { start, end },
    }
}

/// When an event happened, as a reader of the history can find it: seconds into the run, or
/// for histories without times (Jepsen text logs, EDN without `:time`) its history index.
#[derive(Clone, Copy)]
struct When {
    timed: bool,
}

impl When {
    fn at(self, time: u64, index: Option<u64>) -> String {
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

fn show(v: Value) -> String {
    v.map_or_else(|| "nothing (absent)".to_string(), |v| v.to_string())
}

/// "read of k3 on n2 returned 17 at 12.4 s, but 17 had been overwritten by write 18 that
/// completed at 11.9 s" — or the closest true sentence the history supports.
fn sentence(
    key: &KeyHistory,
    stuck: &Op,
    state: Value,
    initial: Value,
    strings: &Strings,
    when: When,
) -> String {
    let on_node = |op: &Op| {
        strings
            .get(op.node)
            .map(|n| format!(" on {n}"))
            .unwrap_or_default()
    };
    let on = on_node(stuck);
    // A history of one register has no key names.
    let k = if key.key.is_empty() {
        "the register"
    } else {
        &key.key
    };
    let at = when.completed(stuck);
    // Whether some op writes `v`, or the register starts with it.
    let written_ever = |v: Value| v == initial || key.ops.iter().any(|o| writes(o) == v);
    // "… but <this>": what the evidence shows, for the value the op observed.
    let but = |gone: Gone, observed: Value| match (gone, observed) {
        (Gone::Overwritten(w), Some(v)) => format!(
            "{v} had been overwritten by {} that completed at {}",
            what(w),
            when.completed(w)
        ),
        (Gone::Overwritten(w), None) => {
            format!("{} had completed at {}", what(w), when.completed(w))
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
            },
            _,
        ) => format!(
            "{} had been overwritten: a read{} returned {seen} at {}, after {} completed at {}",
            show(observed),
            on_node(read),
            when.completed(read),
            what(last_write),
            when.completed(last_write)
        ),
    };
    if key
        .ops
        .iter()
        .any(|o| matches!(o.step, Step::Append { .. }))
    {
        // kv values are fingerprints of strings here: say what failed, not which number.
        return match stuck.step {
            Step::Read(_) => format!(
                "get of {k}{on} (history line {}) returned a string that no order of the puts and appends on {k} before it produces",
                stuck.index + 1
            ),
            _ => format!(
                "{} on {k}{on} (history line {}) cannot be placed in any order of the operations on {k}",
                f_name(stuck.f),
                stuck.index + 1
            ),
        };
    }
    match stuck.step {
        Step::Read(observed) => {
            if let Some(v) = observed
                && !written_ever(observed)
            {
                return format!("read of {k}{on} returned {v} at {at}, a value no operation wrote");
            }
            match evidence(key, stuck, observed, initial) {
                Some(gone) => format!(
                    "read of {k}{on} returned {} at {at}, but {}",
                    show(observed),
                    but(gone, observed)
                ),
                None => format!(
                    "read of {k}{on} returned {} at {at}, which no order of the operations on {k} explains (the register held {} after the longest explainable prefix)",
                    show(observed),
                    show(state)
                ),
            }
        }
        Step::Cas { expected, new } if !written_ever(Some(expected)) => format!(
            "cas of {k}{on} from {expected} to {new} succeeded at {at}, but no operation wrote {expected}"
        ),
        Step::Cas { expected, new } => match evidence(key, stuck, Some(expected), initial) {
            Some(gone) => format!(
                "cas of {k}{on} from {expected} to {new} succeeded at {at}, but {}",
                but(gone, Some(expected))
            ),
            None => format!(
                "cas of {k}{on} from {expected} to {new} succeeded at {at}, but {k} could not have held {expected} then (it held {} after the longest explainable prefix)",
                show(state)
            ),
        },
        Step::CasMismatch { expected } => format!(
            "cas of {k}{on} failed at {at} because {k} did not hold {expected}, but no order of the operations lets it hold anything else then"
        ),
        Step::Write(v) => format!(
            "write of {v} to {k}{on} at {at} cannot be placed in any order of the operations on {k}"
        ),
        Step::Append { .. } => format!("append to {k}{on} at {at} cannot be placed"),
        Step::Nothing => format!("an operation on {k} at {at} cannot be placed"),
    }
}

/// What shows that the value an op observed was gone before the op began.
#[derive(Clone, Copy)]
enum Gone<'a> {
    /// An ok write of another value that began after every write of the observed one had ended,
    /// and ended before the op began.
    Overwritten(&'a Op),
    /// An ok write of another value, the only write of that value, that ended before the op
    /// began, and an ok read of that value that began after the op ended: that value cannot
    /// have been left for the observed one and come back.
    ReadAgain { write: &'a Op, read: &'a Op },
    /// An ok read of another value that began after every write of the observed one had ended
    /// (`last_write`, the last to end) and ended before the op began.
    MovedOn {
        read: &'a Op,
        seen: i64,
        last_write: &'a Op,
    },
}

/// The evidence, if the history has it, that `observed` was gone before `stuck` began. Linear
/// in the key's ops: histories can be huge.
fn evidence<'a>(
    key: &'a KeyHistory,
    stuck: &Op,
    observed: Value,
    initial: Value,
) -> Option<Gone<'a>> {
    // Every op that could have produced the value before `stuck` ended.
    let producers: Vec<&Op> = key
        .ops
        .iter()
        .filter(|o| observed.is_some() && writes(o) == observed)
        .filter(|o| stuck.complete_time.is_none_or(|t| o.invoke_time < t))
        .collect();
    // When the last of them ended (`Some(None)`: there are none; `None`: one never ended), so
    // "after every producer" costs one comparison, not a scan of them.
    let producers_end: Option<Option<u64>> =
        producers.iter().try_fold(None, |end: Option<u64>, p| {
            p.complete_time.map(|t| Some(end.map_or(t, |e| e.max(t))))
        });
    let after_every_producer = |t: u64| match producers_end {
        None => false,
        Some(None) => true,
        Some(Some(end)) => end < t,
    };
    let ended_before = |o: &Op| o.complete_time.is_some_and(|t| t < stuck.invoke_time);
    let overwriter = key.ops.iter().find(|o| {
        o.completion == Completion::Ok
            && writes(o).is_some()
            && writes(o) != observed
            && ended_before(o)
            && after_every_producer(o.invoke_time)
    });
    if let Some(write) = overwriter {
        return Some(Gone::Overwritten(write));
    }
    // The other stories need a value some op wrote; absent is never written back.
    observed?;
    if let Some((write, read)) = read_again(key, stuck, observed, initial) {
        return Some(Gone::ReadAgain { write, read });
    }
    let last_write = producers.iter().max_by_key(|p| p.complete_time)?;
    key.ops
        .iter()
        .filter_map(|o| match o.step {
            Step::Read(Some(seen))
                if Some(seen) != observed
                    && o.completion == Completion::Ok
                    && ended_before(o)
                    && after_every_producer(o.invoke_time) =>
            {
                Some((o, seen))
            }
            _ => None,
        })
        .max_by_key(|(o, _)| o.complete_time)
        .map(|(read, seen)| Gone::MovedOn {
            read,
            seen,
            last_write,
        })
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
        Some(Gone::Overwritten(_))
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

fn f_name(f: Function) -> &'static str {
    match f {
        Function::Read => "read",
        Function::Write => "write",
        Function::Cas => "cas",
        Function::Append => "append",
    }
}

/// A writing op as a reader names it: `write 3`, `cas from 2 to 3`.
fn what(op: &Op) -> String {
    match op.step {
        Step::Cas { expected, new } => format!("cas from {expected} to {new}"),
        _ => format!("{} {}", f_name(op.f), show(writes(op))),
    }
}

/// The value an operation leaves in the register, if it writes one.
fn writes(op: &Op) -> Value {
    match op.step {
        Step::Write(v) | Step::Cas { new: v, .. } => Some(v),
        _ => None,
    }
}
