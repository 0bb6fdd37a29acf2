//! The history model: operations paired from invoke/completion events, grouped per key.
//!
//! Readers turn a file into a list of [`Event`]s; [`History::from_events`] pairs each
//! process's invoke with its completion and keeps, per key, only what constrains the search
//! (Jepsen semantics, DESIGN.md "The history"):
//!
//! | completion | kept as |
//! |---|---|
//! | `ok` | an operation that took effect between invoke and completion |
//! | `fail` of a CAS with `error: mismatch` (our JSONL, Porcupine etcd) | a read-like op: the register did not hold `expected` |
//! | other `fail` | dropped: it certainly did not take effect |
//! | `info` / none, on a write or CAS | open to the end of time |
//! | `info` / none, on a read | dropped: it constrains nothing |

use serde::{Deserialize, Serialize};

use crate::fast_hash::IntMap;
use crate::model::{FREE, HELD, Prefixes};

/// A register value; `None` is "absent" (every key starts absent unless the format says 0).
pub type Value = Option<i64>;

/// What an operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Function {
    Read,
    Write,
    Cas,
    /// Porcupine kv: append a string.
    Append,
    /// Knossos's mutex: take the lock (a compare-and-set of the lock from free to held).
    Acquire,
    /// Knossos's mutex: give the lock back (from held to free).
    Release,
    /// Knossos's multi-register: reads and writes of several registers, all at one instant.
    Txn,
}

impl Function {
    /// Every function, in the order legends list them.
    pub const ALL: [Function; 7] = [
        Function::Read,
        Function::Write,
        Function::Cas,
        Function::Append,
        Function::Acquire,
        Function::Release,
        Function::Txn,
    ];

    /// The name histories use (`"read"`, …, `"release"`).
    pub fn name(self) -> &'static str {
        match self {
            Function::Read => "read",
            Function::Write => "write",
            Function::Cas => "cas",
            Function::Append => "append",
            Function::Acquire => "acquire",
            Function::Release => "release",
            Function::Txn => "txn",
        }
    }

    /// Whether this is an operation on a lock (the `mutex` model), not on a register.
    pub fn on_lock(self) -> bool {
        matches!(self, Function::Acquire | Function::Release)
    }
}

/// How an operation completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Completion {
    Ok,
    Fail,
    Info,
}

/// An interned string: a key, a node name or an error, stored once per history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Sym(u32);

impl Sym {
    /// No string (an absent key, node or error).
    pub const NONE: Sym = Sym(0);
}

/// The strings of one history, each stored once ([`Sym`] 0 is "none").
#[derive(Clone, Debug)]
pub struct Strings {
    ids: IntMap<Box<str>, Sym>,
    texts: Vec<Box<str>>,
}

impl Default for Strings {
    fn default() -> Self {
        Strings {
            ids: IntMap::default(),
            texts: vec!["".into()],
        }
    }
}

impl Strings {
    /// The symbol of `text`, adding it on first sight.
    pub fn intern(&mut self, text: Option<&str>) -> Sym {
        let Some(text) = text else {
            return Sym::NONE;
        };
        if let Some(&sym) = self.ids.get(text) {
            return sym;
        }
        let sym = Sym(self.texts.len() as u32);
        self.texts.push(text.into());
        self.ids.insert(text.into(), sym);
        sym
    }

    /// The text of `sym`; `None` for [`Sym::NONE`].
    pub fn get(&self, sym: Sym) -> Option<&str> {
        (sym != Sym::NONE)
            .then(|| self.texts.get(sym.0 as usize).map(|t| &**t))
            .flatten()
    }
}

/// One event as a reader produced it, before pairing; strings borrowed from the reader.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Event<'a> {
    /// Position in the file (0-based); also the tie-breaker for equal times.
    pub index: u64,
    /// Nanoseconds, or the index itself for formats without times.
    pub time: u64,
    pub process: u64,
    pub kind: EventKind,
    pub f: Function,
    pub key: Option<&'a str>,
    /// read: observed value; write: `[v]`; cas: `[expected, new]`.
    pub value: EventValue,
    pub node: Option<&'a str>,
    pub error: Option<&'a str>,
    /// 1-based line in the source file, for error messages.
    pub line: usize,
}

/// Every client event of a history, column by column, with keys, nodes and errors interned:
/// a million-operation history is two million events, so each costs ~70 bytes here instead
/// of a struct with three heap strings.
#[derive(Clone, Debug, Default)]
pub struct Events {
    index: Vec<u64>,
    time: Vec<u64>,
    process: Vec<u64>,
    kind: Vec<EventKind>,
    f: Vec<Function>,
    key: Vec<Sym>,
    value: Vec<EventValue>,
    node: Vec<Sym>,
    error: Vec<Sym>,
    line: Vec<u32>,
    strings: Strings,
    prefixes: Prefixes,
    untimed: bool,
}

impl Events {
    pub fn new() -> Events {
        Events::default()
    }

    pub fn push(&mut self, event: Event<'_>) {
        self.index.push(event.index);
        self.time.push(event.time);
        self.process.push(event.process);
        self.kind.push(event.kind);
        self.f.push(event.f);
        let key = self.strings.intern(event.key);
        self.key.push(key);
        self.value.push(event.value);
        let node = self.strings.intern(event.node);
        self.node.push(node);
        let error = self.strings.intern(event.error);
        self.error.push(error);
        self.line
            .push(u32::try_from(event.line).unwrap_or(u32::MAX));
    }

    /// Room for `additional` more events in every column.
    pub fn reserve(&mut self, additional: usize) {
        self.index.reserve(additional);
        self.time.reserve(additional);
        self.process.reserve(additional);
        self.kind.reserve(additional);
        self.f.reserve(additional);
        self.key.reserve(additional);
        self.value.reserve(additional);
        self.node.reserve(additional);
        self.error.reserve(additional);
        self.line.reserve(additional);
    }

    /// Add `other`'s events after these, its strings interned here.
    pub fn append(&mut self, other: Events) {
        let map: Vec<Sym> = std::iter::once(Sym::NONE)
            .chain(
                other.strings.texts[1..]
                    .iter()
                    .map(|text| self.strings.intern(Some(text))),
            )
            .collect();
        let remap = |syms: Vec<Sym>| syms.into_iter().map(|s| map[s.0 as usize]);
        self.value
            .extend(other.value.into_iter().map(|value| match value {
                EventValue::Txn(text) => EventValue::Txn(map[text.0 as usize]),
                other => other,
            }));
        self.key.extend(remap(other.key));
        self.node.extend(remap(other.node));
        self.error.extend(remap(other.error));
        self.index.extend(other.index);
        self.time.extend(other.time);
        self.process.extend(other.process);
        self.kind.extend(other.kind);
        self.f.extend(other.f);
        self.line.extend(other.line);
        self.prefixes.extend(other.prefixes);
        self.untimed |= other.untimed;
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The `i`th event. Panics if `i >= len()`, like slice indexing.
    pub fn get(&self, i: usize) -> Event<'_> {
        Event {
            index: self.index[i],
            time: self.time[i],
            process: self.process[i],
            kind: self.kind[i],
            f: self.f[i],
            key: self.strings.get(self.key[i]),
            value: self.value[i],
            node: self.strings.get(self.node[i]),
            error: self.strings.get(self.error[i]),
            line: self.line[i] as usize,
        }
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = Event<'_>> {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Whether the times are real: false when the reader had none (Jepsen text logs, EDN
    /// without `:time`) and used each event's position instead.
    pub fn timed(&self) -> bool {
        !self.untimed
    }

    /// Say that the times are positions, not times (readers of formats without times).
    pub fn set_untimed(&mut self) {
        self.untimed = true;
    }

    /// Whether any event has function `f` (a column scan).
    pub fn uses(&self, f: Function) -> bool {
        self.f.contains(&f)
    }

    pub fn strings(&self) -> &Strings {
        &self.strings
    }

    /// The value of a transaction event: its micro-operations (read or write, register,
    /// value; `None` is a nil read or an absent value), stored as one string.
    pub fn txn_value<'k>(
        &mut self,
        micro_ops: impl IntoIterator<Item = (Function, &'k str, Value)>,
    ) -> EventValue {
        EventValue::Txn(self.strings.intern(Some(&txn_text(micro_ops))))
    }

    /// kv histories: note a string a get returned (see [`Prefixes`]).
    pub fn record_observed_string(&mut self, text: &str) {
        self.prefixes.record(text);
    }
}

impl<'a> FromIterator<Event<'a>> for Events {
    fn from_iter<I: IntoIterator<Item = Event<'a>>>(iter: I) -> Events {
        let mut events = Events::new();
        for event in iter {
            events.push(event);
        }
        events
    }
}

/// The text a transaction is stored as: a JSON array of `[f, register, value]` triples, such
/// as `[["read","x",null],["write","y",2]]`; `results.json` shows it as that array.
pub fn txn_text<'k>(micro_ops: impl IntoIterator<Item = (Function, &'k str, Value)>) -> String {
    let triples: Vec<serde_json::Value> = micro_ops
        .into_iter()
        .map(|(f, register, value)| serde_json::json!([f.name(), register, value]))
        .collect();
    serde_json::Value::Array(triples).to_string()
}

/// Invoke or one of the three completions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Invoke,
    Complete(Completion),
}

/// The value field of an event, already typed by its function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventValue {
    /// A read's observation (`None` on invoke, or a nil read).
    Read(Value),
    Write(i64),
    Cas(i64, i64),
    /// A string appended: its fingerprint and `B^len` (see `model::fingerprint`).
    Append(i64, i64),
    /// A transaction's reads and writes, as the text [`txn_text`] writes (interned in the
    /// history's [`Strings`]).
    Txn(Sym),
}

/// A paired operation on one key, as the search sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Op {
    /// History index of the invoke event.
    pub index: u64,
    /// History index of the completion, if any.
    pub complete_index: Option<u64>,
    pub process: u64,
    pub completion: Completion,
    pub f: Function,
    /// As written in the history (read: the value observed).
    pub value: EventValue,
    pub invoke_time: u64,
    /// `None` for operations that never completed or ended `info`.
    pub complete_time: Option<u64>,
    /// The node the request went to (in the history's [`Strings`]).
    pub node: Sym,
    pub step: Step,
}

/// An operation as `results.json` records it (counterexamples), and as the report shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpRecord {
    /// History index of the invoke event.
    pub index: u64,
    /// History index of the completion, if any.
    pub complete_index: Option<u64>,
    pub process: u64,
    #[serde(rename = "type")]
    pub completion: Completion,
    pub f: Function,
    pub key: String,
    /// As written in the history: read → observed value, write → v, cas → `[a, b]`.
    pub value: serde_json::Value,
    pub invoke_time: u64,
    /// `None` for operations that never completed or ended `info`.
    pub complete_time: Option<u64>,
    pub node: Option<String>,
}

impl OpRecord {
    /// `op` of key `key`, its node named from `strings`.
    pub fn of(op: &Op, key: &str, strings: &Strings) -> OpRecord {
        OpRecord {
            index: op.index,
            complete_index: op.complete_index,
            process: op.process,
            completion: op.completion,
            f: op.f,
            key: key.to_string(),
            value: match op.value {
                // A lock operation has no value of its own; its CAS is how the model sees it.
                _ if op.f.on_lock() => serde_json::Value::Null,
                EventValue::Read(v) => serde_json::json!(v),
                EventValue::Write(v) => serde_json::json!(v),
                EventValue::Cas(a, b) => serde_json::json!([a, b]),
                // kv strings are fingerprints by now; the report shows the fingerprint.
                EventValue::Append(hash, _) => serde_json::json!(hash),
                EventValue::Txn(text) => strings
                    .get(text)
                    .and_then(|text| serde_json::from_str(text).ok())
                    .unwrap_or(serde_json::Value::Null),
            },
            invoke_time: op.invoke_time,
            complete_time: op.complete_time,
            node: strings.get(op.node).map(str::to_string),
        }
    }
}

/// What an operation asks of the register, for the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Step {
    /// Observed this value.
    Read(Value),
    Write(i64),
    /// Took effect iff the register held `expected`.
    Cas {
        expected: i64,
        new: i64,
    },
    /// Did not take effect because the register did not hold `expected`.
    CasMismatch {
        expected: i64,
    },
    /// kv: the string with fingerprint `hash` appended (`shift` = B^len).
    Append {
        hash: i64,
        shift: i64,
    },
    /// multi-register: the transaction whose text (see [`txn_text`]) is this string. Only the
    /// multi-register search reads it; the single-register model never sees one.
    Txn(Sym),
    /// Placeholder for dropped operations; never reaches the search.
    #[default]
    Nothing,
}

/// Operations of one key, in invoke order, ready for the search.
#[derive(Clone, Debug, Default)]
pub struct KeyHistory {
    pub key: String,
    pub ops: Vec<Op>,
}

/// Counts over the whole history, for `results.json`'s `stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub ops: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

/// A whole history, split per key.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub keys: Vec<KeyHistory>,
    pub counts: Counts,
    /// Names of the ops' nodes.
    pub strings: Strings,
    /// kv histories: the prefixes of every string a get returned.
    pub prefixes: Prefixes,
    /// Whether times are real (else they are history indices).
    pub timed: bool,
}

/// Two events of one process that do not pair up.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PairingError {
    /// A process invoked a second operation before the first one completed.
    #[error(
        "line {line}: process {process} invokes a new operation before its previous one (line {previous_line}) completed"
    )]
    OverlappingInvoke {
        line: usize,
        previous_line: usize,
        process: u64,
    },
    /// A completion without a pending invoke of the same process.
    #[error("line {line}: process {process} completes an operation it never invoked")]
    OrphanCompletion { line: usize, process: u64 },
    /// The completion names another function than the invoke.
    #[error(
        "line {line}: process {process} completes `{completed:?}` but invoked `{invoked:?}` (line {invoke_line})"
    )]
    MismatchedCompletion {
        line: usize,
        invoke_line: usize,
        process: u64,
        invoked: Function,
        completed: Function,
    },
}

/// Options that decide how completions constrain the search (see the table above). The
/// default (all off, every key starting absent) is our JSONL's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Semantics {
    /// Every `fail` CAS means "the compare did not match", whatever its error says. Off by
    /// default: then only a CAS that failed with `error: mismatch` (our JSONL; the Jepsen
    /// log reader marks its failed CASes so) observed a value, and any other failed CAS
    /// (no leader, refused) did nothing, as in Knossos.
    pub fail_cas_is_mismatch: bool,
    /// The register's value before any write.
    pub initial: Value,
    /// A nil read is unconstrained (Knossos) instead of "the register was absent".
    pub nil_read_unconstrained: bool,
}

impl History {
    /// Pair invokes with completions and group operations per key.
    pub fn from_events(events: &Events, semantics: Semantics) -> Result<History, PairingError> {
        let mut pending: IntMap<u64, usize> = IntMap::default();
        let mut keys: IntMap<Sym, usize> = IntMap::default();
        let mut history = History {
            strings: events.strings.clone(),
            prefixes: events.prefixes.clone(),
            timed: events.timed(),
            ..History::default()
        };
        let mut finish = |invoke: usize, completion: Option<usize>, history: &mut History| {
            let outcome = match completion.map(|c| events.kind[c]) {
                Some(EventKind::Complete(c)) => c,
                _ => Completion::Info,
            };
            history.counts.ops += 1;
            match outcome {
                Completion::Ok => history.counts.ok += 1,
                Completion::Fail => history.counts.fail += 1,
                Completion::Info => history.counts.info += 1,
            }
            let Some(op) = make_op(events, invoke, completion, outcome, semantics) else {
                return;
            };
            let key = events.key[invoke];
            let slot = *keys.entry(key).or_insert_with(|| {
                history.keys.push(KeyHistory {
                    key: events.strings.get(key).unwrap_or_default().to_string(),
                    ops: Vec::new(),
                });
                history.keys.len() - 1
            });
            history.keys[slot].ops.push(op);
        };
        for event in 0..events.len() {
            let process = events.process[event];
            let line = events.line[event] as usize;
            match events.kind[event] {
                EventKind::Invoke => {
                    if let Some(previous) = pending.insert(process, event) {
                        return Err(PairingError::OverlappingInvoke {
                            line,
                            previous_line: events.line[previous] as usize,
                            process,
                        });
                    }
                }
                EventKind::Complete(_) => {
                    let Some(invoke) = pending.remove(&process) else {
                        return Err(PairingError::OrphanCompletion { line, process });
                    };
                    if events.f[invoke] != events.f[event] {
                        return Err(PairingError::MismatchedCompletion {
                            line,
                            invoke_line: events.line[invoke] as usize,
                            process,
                            invoked: events.f[invoke],
                            completed: events.f[event],
                        });
                    }
                    finish(invoke, Some(event), &mut history);
                }
            }
        }
        // Never completed: indeterminate, open to the end of time. Sorted for determinism.
        let mut open: Vec<usize> = pending.into_values().collect();
        open.sort_unstable_by_key(|&e| events.index[e]);
        for invoke in open {
            finish(invoke, None, &mut history);
        }
        for key in &mut history.keys {
            if !key.ops.is_sorted_by_key(|op| op.index) {
                key.ops.sort_unstable_by_key(|op| op.index);
            }
        }
        Ok(history)
    }
}

fn make_op(
    events: &Events,
    invoke: usize,
    completion: Option<usize>,
    outcome: Completion,
    semantics: Semantics,
) -> Option<Op> {
    // Some writers only put the value on the completion (reads), some only on the invoke.
    let value = match (events.value[invoke], completion.map(|c| events.value[c])) {
        // A lock operation is its compare-and-set of the lock, whatever value it carries.
        _ if events.f[invoke] == Function::Acquire => EventValue::Cas(FREE, HELD),
        _ if events.f[invoke] == Function::Release => EventValue::Cas(HELD, FREE),
        (_, Some(EventValue::Read(v))) => EventValue::Read(v),
        // A completed transaction carries what its reads returned; a crashed one only what
        // it asked.
        (EventValue::Txn(_), Some(EventValue::Txn(done))) if outcome == Completion::Ok => {
            EventValue::Txn(done)
        }
        (v, _) => v,
    };
    let mismatch = completion
        .and_then(|c| events.strings.get(events.error[c]))
        .is_some_and(|e| e == "mismatch");
    let step = match (outcome, value) {
        (Completion::Ok, EventValue::Read(v)) => {
            if v.is_none() && semantics.nil_read_unconstrained {
                return None;
            }
            Step::Read(v)
        }
        (Completion::Ok | Completion::Info, EventValue::Write(v)) => Step::Write(v),
        (Completion::Ok | Completion::Info, EventValue::Cas(expected, new)) => {
            Step::Cas { expected, new }
        }
        // A lock operation that failed did nothing, whatever the format says of failed CASes.
        (Completion::Fail, EventValue::Cas(expected, _))
            if (semantics.fail_cas_is_mismatch || mismatch) && !events.f[invoke].on_lock() =>
        {
            Step::CasMismatch { expected }
        }
        (Completion::Ok | Completion::Info, EventValue::Append(hash, shift)) => {
            Step::Append { hash, shift }
        }
        (Completion::Ok | Completion::Info, EventValue::Txn(text)) => Step::Txn(text),
        // A failed op did nothing; an indeterminate read constrains nothing.
        _ => return None,
    };
    let open = outcome == Completion::Info;
    Some(Op {
        index: events.index[invoke],
        complete_index: completion.map(|c| events.index[c]),
        process: events.process[invoke],
        completion: outcome,
        f: events.f[invoke],
        value,
        invoke_time: events.time[invoke],
        complete_time: if open {
            None
        } else {
            completion.map(|c| events.time[c])
        },
        node: events.node[invoke],
        step,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(
        index: u64,
        process: u64,
        kind: EventKind,
        f: Function,
        value: EventValue,
    ) -> Event<'static> {
        Event {
            index,
            time: index,
            process,
            kind,
            f,
            key: Some("k"),
            value,
            node: None,
            error: None,
            line: index as usize + 1,
        }
    }

    #[test]
    fn pairs_and_classifies_completions() {
        use EventKind::*;
        let events = vec![
            event(0, 1, Invoke, Function::Write, EventValue::Write(1)),
            event(1, 2, Invoke, Function::Read, EventValue::Read(None)),
            event(
                2,
                1,
                Complete(Completion::Ok),
                Function::Write,
                EventValue::Write(1),
            ),
            event(
                3,
                2,
                Complete(Completion::Info),
                Function::Read,
                EventValue::Read(None),
            ),
            event(4, 3, Invoke, Function::Cas, EventValue::Cas(1, 2)),
        ];
        let events: Events = events.into_iter().collect();
        let history = History::from_events(&events, Semantics::default()).expect("pairs");
        let ops = &history.keys[0].ops;
        assert_eq!(ops.len(), 2, "the info read is dropped");
        assert_eq!(ops[0].step, Step::Write(1));
        assert_eq!(
            ops[1].step,
            Step::Cas {
                expected: 1,
                new: 2
            }
        );
        assert_eq!(ops[1].complete_time, None, "never completed: open forever");
        assert_eq!(
            history.counts,
            Counts {
                ops: 3,
                ok: 1,
                fail: 0,
                info: 2
            }
        );
    }

    #[test]
    fn orphan_completion_names_its_line() {
        let events = vec![event(
            0,
            7,
            EventKind::Complete(Completion::Ok),
            Function::Read,
            EventValue::Read(Some(1)),
        )];
        let events: Events = events.into_iter().collect();
        let error = History::from_events(&events, Semantics::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 1: process 7 completes an operation it never invoked"
        );
    }
}
