//! The `multi-register` model's search: transactions that read and write several named
//! registers, each transaction taking effect at one instant between its invoke and its
//! completion (Knossos's `multi-register`).
//!
//! Why a search of its own: one transaction touches several registers at once, so the history
//! cannot be split per key, and the state is a tuple of values where the per-key search
//! ([`crate::search`]) keeps one integer. The method is the same just-in-time linearization:
//! from a configuration (which transactions took effect, and the registers' values), any
//! transaction invoked before the earliest completion still pending may take effect next; a
//! configuration already explored is not explored again. Crashed transactions (`info`, or
//! never completed) may take effect at any point after their invoke, or never.
//!
//! The search is exact, with the usual time and memory budget. Besides [`reduce`]'s two
//! reductions of crashed transactions it has none of those that let the per-key search decide
//! millions of operations: with crashes and values that repeat, its configurations grow with
//! every subset of the crashed transactions (README, "Transactions"). So before it searches,
//! [`overwritten`] looks for a read that no order can satisfy because what it returned was
//! certainly overwritten before it began, and [`half_seen`] for a transaction that saw one
//! register written by another transaction and missed its write to a second; either refutes
//! such histories without a search.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::counterexample::{
    Configuration, Counterexample, PrefixStep, When, Window, previous_ok, show,
};
use crate::fast_hash::IntSet;
use crate::history::{Completion, EventValue, KeyHistory, Op, OpRecord, Semantics, Strings, Value};
use crate::search::{Budget, CANCELLED, splitmix, wide};
use crate::verdict::Verdict;

mod half_seen;

use half_seen::half_seen;
pub use half_seen::{HalfSeen, explain_half_seen};

/// One read or write inside a transaction, on a register numbered by [`Transactions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Micro {
    /// The register held `value` at this point of the transaction; `None`: the read is not
    /// known (a nil read under Knossos's semantics, or any read of a crashed transaction).
    Read {
        register: usize,
        value: Option<Value>,
    },
    Write {
        register: usize,
        value: Value,
    },
}

/// A key's transactions (the history's only key, under this model) with their registers
/// numbered.
#[derive(Clone, Debug)]
pub struct Transactions {
    /// Register names, by number.
    pub names: Vec<String>,
    /// The micro-operations of `key.ops[i]`, in order.
    pub micro_ops: Vec<Vec<Micro>>,
}

impl Transactions {
    /// The transactions of `ops`, read from their stored text; `None` for an op that is not
    /// a transaction (the caller has refused such histories already).
    pub fn of(ops: &[Op], strings: &Strings, semantics: Semantics) -> Option<Transactions> {
        let mut numbers: HashMap<String, usize> = HashMap::new();
        let mut names: Vec<String> = Vec::new();
        let mut micro_ops = Vec::with_capacity(ops.len());
        for op in ops {
            let EventValue::Txn(text) = op.value else {
                return None;
            };
            let triples: Vec<(String, String, Value)> =
                serde_json::from_str(strings.get(text)?).ok()?;
            // A crashed transaction's reads returned nothing anyone saw.
            let known = op.completion == Completion::Ok;
            let mut micros = Vec::with_capacity(triples.len());
            for (f, name, value) in triples {
                let register = *numbers.entry(name).or_insert_with_key(|name| {
                    names.push(name.clone());
                    names.len() - 1
                });
                micros.push(match f.as_str() {
                    "write" => Micro::Write { register, value },
                    _ => Micro::Read {
                        register,
                        value: (known && !(value.is_none() && semantics.nil_read_unconstrained))
                            .then_some(value),
                    },
                });
            }
            micro_ops.push(micros);
        }
        Some(Transactions { names, micro_ops })
    }
}

/// The history with crashed transactions made cheaper to search, exactly (the same verdict):
/// - one whose writes no read of another transaction ever sees is left out: taking effect
///   only hides values from later reads, and "never took effect" is always a legal choice;
/// - one that is the only writer of a value (not the initial one) that some completed
///   transaction read from outside is given that read's completion as its own: it took effect
///   before then. It no longer stays open to the end of the history, where every such
///   transaction doubles what the search may visit.
///
/// Only a transaction's last write to each register counts as what others may see.
pub fn reduce(ops: &[Op], txns: &Transactions, initial: Value) -> (Vec<Op>, Transactions) {
    let mut writers: HashMap<(usize, Value), usize> = HashMap::new();
    for micros in &txns.micro_ops {
        for write in last_writes(micros) {
            *writers.entry(write).or_default() += 1;
        }
    }
    // The earliest completion of an outside read of each (register, value).
    let mut first_seen: HashMap<(usize, Value), (u64, u64)> = HashMap::new();
    for (op, micros) in ops.iter().zip(&txns.micro_ops) {
        let Some(done) = op.complete_time.zip(op.complete_index) else {
            continue;
        };
        for read in outside_reads(micros) {
            let entry = first_seen.entry(read).or_insert(done);
            *entry = (*entry).min(done);
        }
    }
    let mut kept_ops = Vec::with_capacity(ops.len());
    let mut kept_txns = Vec::with_capacity(ops.len());
    for (op, micros) in ops.iter().zip(&txns.micro_ops) {
        let mut op = *op;
        if op.complete_time.is_none() {
            let writes = last_writes(micros);
            if !writes.iter().any(|w| first_seen.contains_key(w)) {
                continue;
            }
            let deadline = writes
                .iter()
                .filter(|&&(_, v)| v != initial)
                .filter(|w| writers.get(w) == Some(&1))
                .filter_map(|w| first_seen.get(w).copied())
                // Seen before it was even invoked: leave it open for the search to refute.
                .filter(|&(t, _)| t >= op.invoke_time)
                .min();
            if let Some((t, index)) = deadline {
                op.complete_time = Some(t);
                op.complete_index = Some(index);
            }
        }
        kept_ops.push(op);
        kept_txns.push(micros.clone());
    }
    (
        kept_ops,
        Transactions {
            names: txns.names.clone(),
            micro_ops: kept_txns,
        },
    )
}

/// What a transaction leaves in the registers it writes: its last write to each.
fn last_writes(micros: &[Micro]) -> Vec<(usize, Value)> {
    let mut last: Vec<(usize, Value)> = Vec::new();
    for micro in micros {
        if let Micro::Write { register, value } = *micro {
            last.retain(|&(r, _)| r != register);
            last.push((register, value));
        }
    }
    last
}

/// The reads that see the registers as the transaction found them, not its own writes.
fn outside_reads(micros: &[Micro]) -> Vec<(usize, Value)> {
    let mut written: Vec<usize> = Vec::new();
    let mut reads = Vec::new();
    for micro in micros {
        match *micro {
            Micro::Write { register, .. } => written.push(register),
            Micro::Read {
                register,
                value: Some(v),
            } if !written.contains(&register) => reads.push((register, v)),
            Micro::Read { .. } => {}
        }
    }
    reads
}

/// Apply `micros` to `state` in order; on a read that does not match, undo and return the
/// read's position in `micros` and what its register held there. `undo` receives (register, old value) for each
/// write, to be put back in reverse.
fn apply(
    state: &mut [Value],
    micros: &[Micro],
    undo: &mut Vec<(usize, Value)>,
) -> Result<(), (usize, Value)> {
    let mark = undo.len();
    for (i, micro) in micros.iter().enumerate() {
        match *micro {
            Micro::Read {
                register,
                value: Some(v),
            } if state[register] != v => {
                let held = state[register];
                revert(state, undo, mark);
                return Err((i, held));
            }
            Micro::Read { .. } => {}
            Micro::Write { register, value } => {
                undo.push((register, state[register]));
                state[register] = value;
            }
        }
    }
    Ok(())
}

fn revert(state: &mut [Value], undo: &mut Vec<(usize, Value)>, mark: usize) {
    while undo.len() > mark {
        let (register, old) = undo.pop().expect("above the mark");
        state[register] = old;
    }
}

/// How a search of transactions ended.
#[derive(Clone, Debug, PartialEq)]
pub enum TxnOutcome {
    Linearizable,
    /// No order exists; the deepest configuration reached.
    NotLinearizable(TxnFailure),
    /// The budget ran out first (why).
    Unknown(String),
}

/// The deepest configuration: where every transaction that could go next failed a read.
#[derive(Clone, Debug, PartialEq)]
pub struct TxnFailure {
    /// Positions of the longest linearizable prefix, in the order they took effect.
    pub prefix: Vec<usize>,
    /// The registers after the prefix.
    pub state: Vec<Value>,
    /// The completed transaction with the earliest completion among those not in the prefix:
    /// it had to take effect next (or be preceded by one of `others`), and could not.
    pub stuck: usize,
    /// The other transactions that could have gone next (invoked before `stuck` completed),
    /// each failing a read there too.
    pub others: usize,
}

struct Frame {
    op: usize,
    /// Where the scan of candidates resumes when this op is taken back.
    resume: usize,
    /// `undo`'s length before this op's writes.
    mark: usize,
}

/// Whether some order of the transactions, each at an instant inside its own interval (a
/// crashed one anywhere after its invoke, or never), satisfies every read, starting from every
/// register at `initial`.
pub fn search(ops: &[Op], txns: &Transactions, initial: Value, budget: Budget<'_>) -> TxnOutcome {
    let n = ops.len();
    let call = |op: usize| (ops[op].invoke_time, ops[op].index);
    // A crashed transaction has no completion, unless `reduce` found the latest it can have.
    let ret = |op: usize| ops[op].complete_time.zip(ops[op].complete_index);
    let mut by_call: Vec<usize> = (0..n).collect();
    by_call.sort_by_key(|&op| call(op));
    let mut by_return: Vec<usize> = (0..n).filter(|&op| ret(op).is_some()).collect();
    by_return.sort_by_key(|&op| ret(op));
    let mut call_pos = vec![0; n];
    for (pos, &op) in by_call.iter().enumerate() {
        call_pos[op] = pos;
    }
    let mut return_pos = vec![usize::MAX; n];
    for (pos, &op) in by_return.iter().enumerate() {
        return_pos[op] = pos;
    }
    let mut seed = 0x7A11_5EED_u64;
    let zobrist: Vec<u128> = (0..n).map(|_| wide(&mut seed)).collect();

    let mut linearized = vec![false; n];
    let mut set_hash: u128 = 0;
    let mut state: Vec<Value> = vec![initial; txns.names.len()];
    let mut undo: Vec<(usize, Value)> = Vec::new();
    let mut frames: Vec<Frame> = Vec::new();
    // Configurations by a 128-bit hash of the set and the registers, as the per-key search
    // keeps them: two configurations share one with probability about n²/2^128.
    let mut seen: IntSet<u128> = IntSet::default();
    // The first position in `by_return` not yet linearized, and in `by_call`.
    let mut first_return = 0;
    let mut first_call = 0;
    let mut resume = 0;
    let mut deepest: Option<TxnFailure> = None;
    let mut steps: u64 = 0;
    loop {
        while first_return < by_return.len() && linearized[by_return[first_return]] {
            first_return += 1;
        }
        if first_return == by_return.len() {
            return TxnOutcome::Linearizable;
        }
        while first_call < n && linearized[by_call[first_call]] {
            first_call += 1;
        }
        steps += 1;
        if steps.is_multiple_of(1024) {
            if budget.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return TxnOutcome::Unknown(CANCELLED.to_string());
            }
            if budget.deadline.is_some_and(|d| Instant::now() > d) {
                return TxnOutcome::Unknown(format!(
                    "time limit reached after {steps} search steps ({} configurations)",
                    seen.len()
                ));
            }
            // Entries plus the hash table's control bytes.
            if seen.capacity() * 17 > budget.memory {
                return TxnOutcome::Unknown(format!(
                    "memory cap of {} MiB reached ({} configurations)",
                    budget.memory >> 20,
                    seen.len()
                ));
            }
        }
        let stuck = by_return[first_return];
        let bound = ret(stuck).expect("by_return holds completed ops");
        let mut taken = None;
        let mut pos = resume.max(first_call);
        while pos < n && call(by_call[pos]) < bound {
            let op = by_call[pos];
            pos += 1;
            if linearized[op] {
                continue;
            }
            let mark = undo.len();
            if apply(&mut state, &txns.micro_ops[op], &mut undo).is_err() {
                continue;
            }
            if seen.insert(set_hash ^ zobrist[op] ^ state_hash(&state)) {
                taken = Some(Frame {
                    op,
                    resume: pos,
                    mark,
                });
                break;
            }
            revert(&mut state, &mut undo, mark);
        }
        match taken {
            Some(frame) => {
                linearized[frame.op] = true;
                set_hash ^= zobrist[frame.op];
                frames.push(frame);
                resume = 0;
            }
            None => {
                if deepest
                    .as_ref()
                    .is_none_or(|d| frames.len() > d.prefix.len())
                {
                    let others = by_call[first_call..]
                        .iter()
                        .take_while(|&&op| call(op) < bound)
                        .filter(|&&op| !linearized[op] && op != stuck)
                        .count();
                    deepest = Some(TxnFailure {
                        prefix: frames.iter().map(|f| f.op).collect(),
                        state: state.clone(),
                        stuck,
                        others,
                    });
                }
                let Some(frame) = frames.pop() else {
                    return TxnOutcome::NotLinearizable(deepest.expect("set just above"));
                };
                revert(&mut state, &mut undo, frame.mark);
                linearized[frame.op] = false;
                set_hash ^= zobrist[frame.op];
                first_return = first_return.min(return_pos[frame.op]);
                first_call = first_call.min(call_pos[frame.op]);
                resume = frame.resume;
            }
        }
    }
}

/// A point in the history: a record's time, then its index (which orders equal times).
type At = (u64, u64);

/// A completed transaction's last write to a register: its invoke, completion, the value it
/// leaves, and the op.
type LastWrite = (At, At, Value, usize);

/// A read no order can satisfy: whatever transaction it could have read from was certainly
/// overwritten before the read began.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Overwritten {
    /// The transaction whose read fails, the register read and the value returned.
    pub reader: usize,
    pub register: usize,
    pub value: Value,
    /// Of the transactions that write `value` to the register and began before the reader
    /// ended, the last to complete; `None` when there are none and `value` is the initial one.
    pub writer: Option<usize>,
    /// A transaction that began after `writer` ended (or at any time, for the initial value),
    /// left the register at another value, and ended before the reader began.
    pub overwriter: usize,
}

/// The completed transactions that write one register, by invoke, with what each leaves there,
/// and for every suffix the earliest completion among them, and the earliest among those that
/// leave another value than that one.
struct Overwriters {
    invokes: Vec<At>,
    /// Per suffix: (completion, value left, op) of the earliest completion.
    earliest: Vec<(At, Value, usize)>,
    /// Per suffix: (completion, op) of the earliest completion leaving another value than
    /// `earliest`'s.
    other: Vec<Option<(At, usize)>>,
}

impl Overwriters {
    fn of(mut writes: Vec<LastWrite>) -> Overwriters {
        writes.sort_by_key(|&(invoke, ..)| invoke);
        let mut earliest = Vec::with_capacity(writes.len());
        let mut other = Vec::with_capacity(writes.len());
        let mut best: Option<(At, Value, usize)> = None;
        let mut second: Option<(At, usize)> = None;
        for &(_, done, value, op) in writes.iter().rev() {
            match best {
                Some((c, v, o)) if done < c => {
                    if value != v {
                        second = Some((c, o));
                    }
                    best = Some((done, value, op));
                }
                Some((_, v, _)) => {
                    if value != v && second.is_none_or(|(c, _)| done < c) {
                        second = Some((done, op));
                    }
                }
                None => best = Some((done, value, op)),
            }
            earliest.push(best.expect("set above"));
            other.push(second);
        }
        earliest.reverse();
        other.reverse();
        Overwriters {
            invokes: writes.iter().map(|&(invoke, ..)| invoke).collect(),
            earliest,
            other,
        }
    }

    /// The earliest-completing transaction that began after `after` (at any time, for `None`)
    /// and left another value than `value`: its completion and op.
    fn earliest_leaving_other(&self, after: Option<At>, value: Value) -> Option<(At, usize)> {
        let from = after.map_or(0, |t| self.invokes.partition_point(|&i| i <= t));
        let &(done, left, op) = self.earliest.get(from)?;
        if left != value {
            Some((done, op))
        } else {
            self.other[from]
        }
    }
}

/// Every transaction's last writes, by (register, value) and then invoke, with for every
/// prefix of each (register, value)'s run its two latest completions and whether a
/// transaction in it crashed. Flat and sorted, so a history of unique values costs no map.
struct Sources {
    by_write: Vec<((usize, Value), At, usize)>,
    /// The latest completion and its op, then the one before it (the latest of the others).
    latest: Vec<[Option<(At, usize)>; 2]>,
    crashed: Vec<bool>,
}

impl Sources {
    /// `lasts[op]`: what `op` leaves in the registers ([`last_writes`]).
    fn of(
        lasts: &[Vec<(usize, Value)>],
        call: impl Fn(usize) -> At,
        ret: impl Fn(usize) -> Option<At>,
    ) -> Sources {
        let mut by_write: Vec<((usize, Value), At, usize)> = Vec::new();
        for (op, last) in lasts.iter().enumerate() {
            by_write.extend(last.iter().map(|&w| (w, call(op), op)));
        }
        by_write.sort_unstable();
        let mut latest = Vec::with_capacity(by_write.len());
        let mut crashed = Vec::with_capacity(by_write.len());
        for (k, &(write, _, op)) in by_write.iter().enumerate() {
            let run_starts = k == 0 || by_write[k - 1].0 != write;
            let ([mut first, mut second], mut lost) = match run_starts {
                true => ([None, None], false),
                false => (latest[k - 1], crashed[k - 1]),
            };
            match ret(op) {
                Some(t) if first.is_none_or(|(l, _)| t > l) => {
                    second = first;
                    first = Some((t, op));
                }
                Some(t) if second.is_none_or(|(l, _)| t > l) => second = Some((t, op)),
                Some(_) => {}
                None => lost = true,
            }
            latest.push([first, second]);
            crashed.push(lost);
        }
        Sources {
            by_write,
            latest,
            crashed,
        }
    }

    /// The writers of `write`, by invoke: (write, invoke, op).
    fn writers(&self, write: (usize, Value)) -> &[((usize, Value), At, usize)] {
        let start = self.by_write.partition_point(|e| e.0 < write);
        let end = self.by_write.partition_point(|e| e.0 <= write);
        &self.by_write[start..end]
    }

    /// Of the writers of `write` invoked before `time`, leaving out `reader` (whose outside
    /// reads cannot see its own writes): the latest completion and its op, and whether one
    /// crashed.
    fn begun_before(
        &self,
        write: (usize, Value),
        time: At,
        reader: usize,
    ) -> (Option<(At, usize)>, bool) {
        let start = self.by_write.partition_point(|e| e.0 < write);
        let end = self
            .by_write
            .partition_point(|e| (e.0, e.1) < (write, time));
        if end == start {
            return (None, false);
        }
        // The reader completed, so it is not what made `crashed` true.
        let latest = match self.latest[end - 1] {
            [Some((_, op)), second] if op == reader => second,
            [first, _] => first,
        };
        (latest, self.crashed[end - 1])
    }
}

/// What each transaction leaves in the registers, and by (register, value) who leaves it:
/// built once for both refutations that run before the search.
pub(crate) struct Written {
    /// `lasts[op]`: what `op` leaves ([`last_writes`]).
    lasts: Vec<Vec<(usize, Value)>>,
    sources: Sources,
}

impl Written {
    fn of(ops: &[Op], txns: &Transactions) -> Written {
        let lasts: Vec<Vec<(usize, Value)>> =
            txns.micro_ops.iter().map(|m| last_writes(m)).collect();
        let sources = Sources::of(
            &lasts,
            |op| (ops[op].invoke_time, ops[op].index),
            |op| ops[op].complete_time.zip(ops[op].complete_index),
        );
        Written { lasts, sources }
    }
}

/// The first read (by completion) that [`Overwritten`] refutes, if any. Sound because a read
/// returns what the last transaction before it left in the register: if every transaction
/// that could have left the value there is followed, certainly, by one that left another value
/// and ended before the read began, no order satisfies the read. The latest-ending candidate
/// is the hardest to rule out, so it alone is tried; a crashed candidate is never ruled out.
pub(crate) fn overwritten(
    ops: &[Op],
    txns: &Transactions,
    written: &Written,
    initial: Value,
) -> Option<Overwritten> {
    let call = |op: usize| (ops[op].invoke_time, ops[op].index);
    let ret = |op: usize| ops[op].complete_time.zip(ops[op].complete_index);
    let Written { lasts, sources } = written;
    let mut writes: Vec<Vec<LastWrite>> = vec![Vec::new(); txns.names.len()];
    for (op, last) in lasts.iter().enumerate() {
        if let Some(done) = ret(op) {
            for &(register, value) in last {
                writes[register].push((call(op), done, value, op));
            }
        }
    }
    let overwriters: Vec<Overwriters> = writes.into_iter().map(Overwriters::of).collect();
    let mut found: Option<(At, Overwritten)> = None;
    for (reader, micros) in txns.micro_ops.iter().enumerate() {
        let Some(done) = ret(reader) else { continue };
        if found.is_some_and(|(first, _)| first <= done) {
            continue;
        }
        for (register, value) in outside_reads(micros) {
            // Of the writers of the value that began before the reader ended (but the reader,
            // should it write the value back): the last to complete, and whether one crashed.
            let (latest, crashed) = sources.begun_before((register, value), done, reader);
            if crashed || (latest.is_none() && value != initial) {
                continue;
            }
            let after = latest.map(|(t, _)| t);
            let Some((ended, overwriter)) =
                overwriters[register].earliest_leaving_other(after, value)
            else {
                continue;
            };
            if ended < call(reader) {
                let refuted = Overwritten {
                    reader,
                    register,
                    value,
                    writer: latest.map(|(_, w)| w),
                    overwriter,
                };
                found = Some((done, refuted));
                break;
            }
        }
    }
    found.map(|(_, refuted)| refuted)
}

/// A read of `txn` that returned a value no transaction ever writes to that register (nor
/// its initial value): its register and the value. Such a read refutes the history alone.
fn unwritten(txns: &Transactions, txn: usize, initial: Value) -> Option<(usize, i64)> {
    txns.micro_ops[txn].iter().find_map(|micro| {
        let Micro::Read {
            register,
            value: Some(Some(v)),
        } = *micro
        else {
            return None;
        };
        let written = initial == Some(v)
            || txns.micro_ops.iter().flatten().any(|m| {
                matches!(*m, Micro::Write { register: r, value } if r == register && value == Some(v))
            });
        (!written).then_some((register, v))
    })
}

/// The registers' part of a configuration's hash.
fn state_hash(state: &[Value]) -> u128 {
    state
        .iter()
        .enumerate()
        .map(|(register, value)| {
            let mut seed = match value {
                None => 0x5EED_0000_0000_0001,
                Some(v) => (*v as u64) ^ 0xA5A5_A5A5_5A5A_5A5A,
            };
            let mut seed = splitmix(&mut seed) ^ register as u64;
            wide(&mut seed)
        })
        .fold(0, |hash, term| hash ^ term)
}

/// Decide a key of transactions: its verdict, why (unless valid), and the counterexample of
/// an invalid one. Crashed transactions are first reduced ([`reduce`]); the counterexample
/// names the operations of the reduced history.
pub fn check(
    key: &KeyHistory,
    strings: &Strings,
    semantics: Semantics,
    timed: bool,
    budget: Budget<'_>,
) -> (Verdict, Option<String>, Option<Counterexample>) {
    let initial = semantics.initial;
    // Every transaction's text was written by a reader of this history.
    let Some(txns) = Transactions::of(&key.ops, strings, semantics) else {
        let why = "a transaction's stored text did not read back".to_string();
        return (Verdict::Unknown, Some(why), None);
    };
    let (ops, txns) = reduce(&key.ops, &txns, initial);
    let reduced = KeyHistory {
        key: key.key.clone(),
        ops,
    };
    let written = Written::of(&reduced.ops, &txns);
    if let Some(refuted) = overwritten(&reduced.ops, &txns, &written, initial) {
        let c = explain_overwritten(&reduced, &txns, &refuted, strings, timed);
        return (Verdict::Invalid, Some(c.explanation.clone()), Some(c));
    }
    if let Some(refuted) = half_seen(&reduced.ops, &txns, &written, initial) {
        let c = explain_half_seen(&reduced, &txns, &refuted, strings, timed);
        return (Verdict::Invalid, Some(c.explanation.clone()), Some(c));
    }
    match search(&reduced.ops, &txns, initial, budget) {
        TxnOutcome::Linearizable => (Verdict::Valid, None, None),
        TxnOutcome::Unknown(why) => (Verdict::Unknown, Some(why), None),
        TxnOutcome::NotLinearizable(failure) => {
            let c = explain(&reduced, &txns, &failure, initial, strings, timed);
            (Verdict::Invalid, Some(c.explanation.clone()), Some(c))
        }
    }
}

/// Registers and their values, as `results.json` shows them: `{"x": 0, "y": 2}`.
fn named(txns: &Transactions, state: &[Value]) -> BTreeMap<String, Value> {
    txns.names
        .iter()
        .cloned()
        .zip(state.iter().copied())
        .collect()
}

/// The ok transactions that completed before `time`, as a counterexample lists them.
fn previous_ok_records(key: &KeyHistory, strings: &Strings, time: u64) -> Vec<OpRecord> {
    previous_ok(&key.ops, time)
        .into_iter()
        .map(|op| OpRecord::of(op, &key.key, strings))
        .collect()
}

/// The counterexample of a refuted history: the transaction that had to take effect next after
/// the longest linearizable prefix, the read of it that fails there, and that prefix.
pub fn explain(
    key: &KeyHistory,
    txns: &Transactions,
    failure: &TxnFailure,
    initial: Value,
    strings: &Strings,
    timed: bool,
) -> Counterexample {
    let ops = &key.ops;
    let record = |op: usize| OpRecord::of(&ops[op], &key.key, strings);
    let stuck = &ops[failure.stuck];
    let ended = Times::of(key, timed).ended(failure.stuck);
    let this = format!(
        "transaction by process {} that ended at {ended}",
        stuck.process
    );
    let explanation = match unwritten(txns, failure.stuck, initial) {
        Some((register, value)) => {
            let name = &txns.names[register];
            format!("{this} read {name} = {value}, a value no transaction writes to {name}")
        }
        None => format!(
            "{this} has no place in any order: {}",
            no_place(txns, failure)
        ),
    };
    // Replay the prefix for the registers after each step.
    let mut state = vec![initial; txns.names.len()];
    let prefix: Vec<PrefixStep> = failure
        .prefix
        .iter()
        .map(|&op| {
            let mut undo = Vec::new();
            let _ = apply(&mut state, &txns.micro_ops[op], &mut undo);
            PrefixStep {
                op: record(op),
                state_after: None,
                registers_after: named(txns, &state),
            }
        })
        .collect();
    let previous_ok = previous_ok_records(key, strings, stuck.invoke_time);
    let start = previous_ok
        .last()
        .map_or(stuck.invoke_time, |o| o.invoke_time.min(stuck.invoke_time));
    Counterexample {
        key: key.key.clone(),
        op: record(failure.stuck),
        previous_ok,
        prefix,
        final_configurations: vec![Configuration {
            state: None,
            registers: named(txns, &failure.state),
            linearized: failure.prefix.iter().map(|&op| ops[op].index).collect(),
        }],
        window: Window {
            start,
            end: stuck.complete_time.unwrap_or(stuck.invoke_time),
        },
        explanation,
        evidence: Vec::new(),
    }
}

/// The counterexample of a read [`overwritten`] refutes: the reader, with the writer it could
/// have read from and the transaction that certainly overwrote it as the evidence.
pub fn explain_overwritten(
    key: &KeyHistory,
    txns: &Transactions,
    refuted: &Overwritten,
    strings: &Strings,
    timed: bool,
) -> Counterexample {
    let ops = &key.ops;
    let times = Times::of(key, timed);
    let name = &txns.names[refuted.register];
    let value = show(refuted.value);
    let (reader, overwriter) = (refuted.reader, refuted.overwriter);
    let left = last_writes(&txns.micro_ops[overwriter])
        .into_iter()
        .find(|&(r, _)| r == refuted.register)
        .map_or_else(String::new, |(_, v)| show(v));
    let overwrite = |then: &str| {
        format!(
            "the transaction by process {}{then} wrote {name} = {left} and ended at {}, before the read began at {}",
            ops[overwriter].process,
            times.ended(overwriter),
            times.began(reader)
        )
    };
    let source = match refuted.writer {
        Some(writer) => format!(
            "the last transaction to write {value} to {name} before it ended (by process {}) ended at {}, and {}",
            ops[writer].process,
            times.ended(writer),
            overwrite(&format!(", begun at {}, then", times.began(overwriter)))
        ),
        // Only the initial value can have no writer.
        None => format!(
            "{value} is {name}'s initial value, no transaction that began before it ended writes it, and {}",
            overwrite("")
        ),
    };
    let explanation = format!(
        "transaction by process {} that ended at {} read {name} = {value}, but {source}",
        ops[reader].process,
        times.ended(reader)
    );
    let cited: Vec<usize> = refuted.writer.into_iter().chain([overwriter]).collect();
    refuted_before_search(key, strings, reader, &cited, explanation)
}

/// When each transaction began and ended, as a sentence says it.
struct Times<'a> {
    ops: &'a [Op],
    when: When,
}

impl<'a> Times<'a> {
    fn of(key: &'a KeyHistory, timed: bool) -> Times<'a> {
        Times {
            ops: &key.ops,
            when: When { timed },
        }
    }

    fn began(&self, op: usize) -> String {
        let op = &self.ops[op];
        self.when.at(op.invoke_time, Some(op.index))
    }

    fn ended(&self, op: usize) -> String {
        let op = &self.ops[op];
        self.when.at(
            op.complete_time.unwrap_or(op.invoke_time),
            op.complete_index,
        )
    }
}

/// The counterexample of a transaction refuted before any search: no prefix, the `cited`
/// transactions as the evidence, and a window from the earliest of them (or of the ok
/// transactions listed before it) to the reader's end.
fn refuted_before_search(
    key: &KeyHistory,
    strings: &Strings,
    reader: usize,
    cited: &[usize],
    explanation: String,
) -> Counterexample {
    let ops = &key.ops;
    let record = |op: usize| OpRecord::of(&ops[op], &key.key, strings);
    let previous_ok = previous_ok_records(key, strings, ops[reader].invoke_time);
    let start = cited
        .iter()
        .map(|&op| ops[op].invoke_time)
        .chain(previous_ok.last().map(|o| o.invoke_time))
        .fold(ops[reader].invoke_time, u64::min);
    Counterexample {
        key: key.key.clone(),
        op: record(reader),
        previous_ok,
        prefix: Vec::new(),
        final_configurations: Vec::new(),
        window: Window {
            start,
            end: ops[reader].complete_time.unwrap_or(ops[reader].invoke_time),
        },
        explanation,
        evidence: cited.iter().map(|&op| record(op)).collect(),
    }
}

/// Why the stuck transaction has no place: where the longest linearizable prefix leaves the
/// registers, the read of it that fails there, and how many others could not go first either.
fn no_place(txns: &Transactions, failure: &TxnFailure) -> String {
    let registers: Vec<String> = named(txns, &failure.state)
        .into_iter()
        .map(|(name, v)| format!("{name} = {}", show(v)))
        .collect();
    let registers = registers.join(", ");
    let prefix = match failure.prefix.len() {
        0 => format!("at the start, when {registers}"),
        1 => format!(
            "after the longest linearizable prefix (1 transaction), which leaves {registers}"
        ),
        k => format!(
            "after the longest linearizable prefix ({k} transactions), which leaves {registers}"
        ),
    };
    // Where its reads part from the registers: replay it on the prefix's state.
    let mut state = failure.state.clone();
    let failed = apply(&mut state, &txns.micro_ops[failure.stuck], &mut Vec::new()).err();
    let why = match failed.map(|(i, held)| (txns.micro_ops[failure.stuck][i], held)) {
        // `held` counts the transaction's own earlier writes: what the read would see.
        Some((
            Micro::Read {
                register,
                value: Some(returned),
            },
            held,
        )) => {
            let name = &txns.names[register];
            format!(
                "its read of {name} returned {}, where {name} holds {}",
                show(returned),
                show(held)
            )
        }
        _ => "it cannot take effect there".to_string(),
    };
    let others = match failure.others {
        0 => String::new(),
        1 => ", and the one other transaction invoked before it ended cannot go first either"
            .to_string(),
        k => format!(
            ", and none of the {k} other transactions invoked before it ended can go first either"
        ),
    };
    format!("{prefix}, {why}{others}")
}

#[cfg(test)]
mod tests {
    use crate::check::{CheckOptions, check_events, check_jsonl};
    use crate::jsonl;
    use crate::verdict::Verdict;

    /// One transaction of a test history: process, invoke time, completion time and type,
    /// and the micro-ops as JSON, as the completion reports them.
    type Txn<'a> = (u64, u64, Option<(u64, &'a str)>, &'a str);

    /// A JSONL history of transactions. The invoke carries the same micro-ops as the
    /// completion: the checker reads an ok transaction's reads from its completion, and a
    /// crashed one's reads constrain nothing.
    fn history(txns: &[Txn<'_>]) -> String {
        let mut events = Vec::new();
        for &(process, invoke, done, micro_ops) in txns {
            events.push((invoke, process, "invoke", micro_ops));
            if let Some((t, kind)) = done {
                events.push((t, process, kind, micro_ops));
            }
        }
        events.sort_by_key(|e| e.0);
        events
            .iter()
            .enumerate()
            .map(|(i, (t, p, kind, value))| {
                format!(
                    r#"{{"index":{i},"time":{t},"process":{p},"type":"{kind}","f":"txn","value":{value}}}"#
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn verdict(text: &str) -> (Verdict, Option<String>) {
        let report = check_jsonl(text);
        assert_eq!(report.model, crate::Model::MultiRegister, "implied by txn");
        let sentence = report
            .counterexamples
            .first()
            .map(|c| c.explanation.clone());
        (report.verdict(), sentence)
    }

    #[test]
    fn a_reader_never_sees_half_a_transaction() {
        let both = r#"[["write","x",1],["write","y",1]]"#;
        let whole = r#"[["read","x",1],["read","y",1]]"#;
        let half = r#"[["read","x",1],["read","y",null]]"#;
        // Concurrent with the writer, a reader may see all of it or none of it…
        let text = history(&[
            (0, 0, Some((10, "ok")), both),
            (1, 5, Some((15, "ok")), whole),
        ]);
        assert_eq!(verdict(&text).0, Verdict::Valid);
        // …but not x written and y not yet.
        let text = history(&[
            (0, 0, Some((10, "ok")), both),
            (1, 5, Some((15, "ok")), half),
        ]);
        let (valid, sentence) = verdict(&text);
        assert_eq!(valid, Verdict::Invalid);
        assert_eq!(
            sentence.as_deref(),
            Some(
                "transaction by process 1 that ended at 0.000 s read x = 1 and y = nothing \
                 (absent), but only the transaction by process 0 leaves x = 1, so it came first, \
                 and it left y = 1; no other transaction leaves y = nothing (absent)"
            )
        );
        // Where another transaction leaves x = 1 too, the reader need not follow the first: it
        // may come between the other and the first.
        let text = history(&[
            (0, 0, Some((10, "ok")), both),
            (2, 0, Some((10, "ok")), r#"[["write","x",1]]"#),
            (1, 5, Some((15, "ok")), half),
        ]);
        let (valid, sentence) = verdict(&text);
        assert_eq!(valid, Verdict::Valid, "{sentence:?}");
    }

    /// The torn read of a store that applies a transaction's writes one register at a time:
    /// the reader saw the second writer's x and the first writer's y. The second writer was
    /// still running when the reader began, so no read was overwritten before it began; where
    /// the first writer's y is also left by a crashed transaction, the search must decide.
    #[test]
    fn a_reader_that_saw_half_of_a_running_transaction_is_refuted_and_both_writers_cited() {
        let first = r#"[["write","x",6],["write","y",6]]"#;
        let second = r#"[["write","x",7],["write","y",7]]"#;
        let torn = r#"[["read","x",7],["read","y",6]]"#;
        let text = history(&[
            (1, 0, Some((10, "ok")), first),
            (2, 20, Some((50, "ok")), second),
            (3, 30, Some((40, "ok")), torn),
        ]);
        let (valid, sentence) = verdict(&text);
        assert_eq!(valid, Verdict::Invalid);
        assert_eq!(
            sentence.as_deref(),
            Some(
                "transaction by process 3 that ended at 0.000 s read x = 7 and y = 6, but only \
                 the transaction by process 2 leaves x = 7, so it came first, and it left y = 7; \
                 the last other transaction to leave y = 6 (by process 1) ended at 0.000 s, \
                 before process 2's began at 0.000 s"
            )
        );
        // A crashed writer of y = 6 may take effect between the two: then it is valid.
        let text = history(&[
            (1, 0, Some((10, "ok")), first),
            (4, 0, Some((5, "info")), r#"[["write","y",6]]"#),
            (2, 20, Some((50, "ok")), second),
            (3, 30, Some((40, "ok")), torn),
        ]);
        assert_eq!(verdict(&text).0, Verdict::Valid);
        // So may one that completes after the second writer began.
        let text = history(&[
            (1, 0, Some((10, "ok")), first),
            (4, 15, Some((25, "ok")), r#"[["write","y",6]]"#),
            (2, 20, Some((50, "ok")), second),
            (3, 30, Some((40, "ok")), torn),
        ]);
        assert_eq!(verdict(&text).0, Verdict::Valid);
    }

    #[test]
    fn a_crashed_write_may_take_effect_late_or_never_but_not_undo_itself() {
        let write = r#"[["write","x",5]]"#;
        let saw = r#"[["read","x",5]]"#;
        let absent = r#"[["read","x",null]]"#;
        // Crashed, then seen: it took effect.
        let text = history(&[
            (0, 0, Some((2, "info")), write),
            (1, 10, Some((12, "ok")), saw),
        ]);
        assert_eq!(verdict(&text).0, Verdict::Valid);
        // Seen, then unseen: it cannot have taken effect and then not.
        let text = history(&[
            (0, 0, Some((2, "info")), write),
            (1, 10, Some((12, "ok")), saw),
            (2, 20, Some((22, "ok")), absent),
        ]);
        assert_eq!(verdict(&text).0, Verdict::Invalid);
        // A failed write did nothing.
        let text = history(&[
            (0, 0, Some((2, "fail")), write),
            (1, 10, Some((12, "ok")), saw),
        ]);
        assert_eq!(verdict(&text).0, Verdict::Invalid);
    }

    #[test]
    fn a_transaction_reads_its_own_writes() {
        let own = r#"[["write","x",3],["read","x",3]]"#;
        assert_eq!(
            verdict(&history(&[(0, 0, Some((1, "ok")), own)])).0,
            Verdict::Valid
        );
        let earlier = r#"[["write","x",4]]"#;
        let other = r#"[["write","x",3],["read","x",4]]"#;
        let (valid, sentence) = verdict(&history(&[
            (0, 0, Some((1, "ok")), earlier),
            (1, 2, Some((3, "ok")), other),
        ]));
        assert_eq!(valid, Verdict::Invalid);
        assert!(
            sentence.as_deref().is_some_and(|s| s.ends_with(
                "after the longest linearizable prefix (1 transaction), which leaves x = 4, its \
                 read of x returned 4, where x holds 3"
            )),
            "{sentence:?}"
        );
        // A value nothing writes is named as such.
        let never = r#"[["read","x",9]]"#;
        let (_, sentence) = verdict(&history(&[(0, 0, Some((1, "ok")), never)]));
        assert_eq!(
            sentence.as_deref(),
            Some(
                "transaction by process 0 that ended at 0.000 s read x = 9, a value no transaction writes to x"
            )
        );
    }

    #[test]
    fn transactions_and_single_register_operations_are_not_mixed() {
        let text = format!(
            "{}\n{}\n{}",
            history(&[(0, 0, Some((1, "ok")), r#"[["write","x",1]]"#)]),
            r#"{"index":2,"time":2,"process":9,"type":"invoke","f":"read","key":"k","value":null}"#,
            r#"{"index":3,"time":3,"process":9,"type":"ok","f":"read","key":"k","value":null}"#
        );
        let events = jsonl::parse(&text).expect("parses");
        let error = check_events(&events, &CheckOptions::default()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("check them as separate histories"),
            "{error}"
        );
    }

    #[test]
    fn a_malformed_transaction_names_its_line() {
        let text = r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"txn","value":[["append","x",1]]}"#;
        let error = jsonl::parse(text).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("line 1: expected a txn value"),
            "{error}"
        );
    }

    proptest::proptest! {
        /// The suffix minima answer what a scan of every write would.
        #[test]
        fn overwriters_find_the_earliest_completion_leaving_another_value(
            writes in proptest::collection::vec((0..30u64, 1..10u64, 0..3i64), 0..12),
            after in proptest::option::of(0..40u64),
            value in 0..3i64,
        ) {
            let writes: Vec<_> = writes
                .iter()
                .enumerate()
                .map(|(op, &(invoke, length, v))| {
                    ((invoke, op as u64), (invoke + length, op as u64), Some(v), op)
                })
                .collect();
            let after = after.map(|t| (t, u64::MAX));
            let scanned = writes
                .iter()
                .filter(|&&(invoke, _, v, _)| after.is_none_or(|t| invoke > t) && v != Some(value))
                .map(|&(_, done, _, op)| (done, op))
                .min();
            let found = super::Overwriters::of(writes).earliest_leaving_other(after, Some(value));
            proptest::prop_assert_eq!(found.map(|(done, _)| done), scanned.map(|(done, _)| done));
        }
    }

    #[test]
    fn a_read_of_a_value_overwritten_before_it_began_is_refuted_and_both_writers_cited() {
        let text = history(&[
            (0, 0, Some((1, "ok")), r#"[["write","x",1]]"#),
            (
                1,
                2,
                Some((3, "ok")),
                r#"[["write","x",2],["write","y",5]]"#,
            ),
            (2, 4, Some((5, "ok")), r#"[["read","x",1]]"#),
        ]);
        let report = check_jsonl(&text);
        assert_eq!(report.verdict(), Verdict::Invalid);
        let c = &report.counterexamples[0];
        assert_eq!(
            c.explanation,
            "transaction by process 2 that ended at 0.000 s read x = 1, but the last transaction to write 1 to x before it ended (by process 0) ended at 0.000 s, and the transaction by process 1, begun at 0.000 s, then wrote x = 2 and ended at 0.000 s, before the read began at 0.000 s"
        );
        let cited: Vec<u64> = c.evidence.iter().map(|op| op.process).collect();
        assert_eq!(cited, [0, 1]);
    }
}
