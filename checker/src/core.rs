//! The reads that make a refutation: for a counterexample whose sentence has no simpler
//! evidence, a few reads and failed compare-and-sets that, with every write and successful
//! compare-and-set, still leave the stuck operation no place in any order.
//!
//! Leaving out a read or a failed compare-and-set only removes a constraint (neither changes
//! the register), so whatever set this returns refutes the whole history too. It is minimal
//! one at a time (dropping any one of its members makes the rest linearizable), not the
//! smallest such set, which would take exponentially many searches.
//!
//! When that set is empty (the writes and compare-and-sets alone refute a read), it also finds
//! which values the read could have returned instead.
//!
//! For a lock (the `mutex` model), where every operation changes the state and none can be
//! left out, it finds the operation whose return first leaves no order, and the few ok
//! operations that, with every other one optional, still leave it none.

use std::time::{Duration, Instant};

use crate::history::{Completion, KeyHistory, Op, Step, Value};
use crate::model::{FREE, HELD, Model};
use crate::search::{self, Budget, CrashedOps, Outcome, Strategy};

/// Larger keys keep the fallback sentence: every try is a search of the key, and a key needs
/// a few per read it names.
const MAX_OPS: usize = 2_000;

/// Lock histories up to this size get their true stuck op ([`lock_stuck`]), within [`TIME`].
const LOCK_STUCK_MAX_OPS: usize = 1_000_000;

/// For all the searches of one counterexample together.
const TIME: Duration = Duration::from_secs(1);

const MEMORY: usize = 64 << 20;

/// The reads and failed CASes of `key` besides `stuck` that, with every op that changes the
/// register (or may: crashed ones stay), leave `stuck` no place, and without which `stuck`
/// would have one; in history order. `None` when the key is too large, a search ran out of
/// budget, or `stuck` is not what makes the key fail (the others refute it already).
pub(crate) fn refuting_reads<'a>(
    key: &'a KeyHistory,
    stuck: &Op,
    initial: Value,
) -> Option<Vec<&'a Op>> {
    let ops = &key.ops;
    if !within_reach(key) {
        return None;
    }
    let deadline = Instant::now() + TIME;
    let refuted = |kept: &[bool]| -> Option<bool> {
        let subset: Vec<Op> = ops
            .iter()
            .zip(kept)
            .filter(|&(_, &keep)| keep)
            .map(|(op, _)| *op)
            .collect();
        linearizable(&subset, initial, deadline).map(|yes| !yes)
    };
    // Crashed reads constrain nothing; they go first, untested.
    let mut kept: Vec<bool> = ops
        .iter()
        .map(|op| !observes(op) || op.complete_time.is_some())
        .collect();
    if !refuted(&kept)? {
        return None;
    }
    // Farthest from the op first: what is left is then near it (a small window for the
    // reader), and another violation far off goes before the reads around this one.
    let mut candidates: Vec<usize> = (0..ops.len())
        .filter(|&i| kept[i] && observes(&ops[i]) && ops[i].index != stuck.index)
        .collect();
    candidates.sort_by_key(|&i| std::cmp::Reverse(ops[i].index.abs_diff(stuck.index)));
    // Whole runs of candidates at once where the history stays refuted without them, halving
    // a run that does not: few searches when few reads matter, which is the usual case.
    let mut runs = vec![candidates.as_slice()];
    while let Some(run) = runs.pop() {
        for &i in run {
            kept[i] = false;
        }
        if refuted(&kept)? {
            continue;
        }
        for &i in run {
            kept[i] = true;
        }
        if run.len() > 1 {
            let (far, near) = run.split_at(run.len() / 2);
            runs.push(near);
            runs.push(far);
        }
    }
    let position = ops.iter().position(|op| op.index == stuck.index)?;
    kept[position] = false;
    if refuted(&kept)? {
        return None;
    }
    Some(
        ops.iter()
            .zip(&kept)
            .filter(|&(op, &keep)| keep && observes(op))
            .map(|(op, _)| op)
            .collect(),
    )
}

/// Keys with more values than this keep the sentence without them: one search per value.
const MAX_VALUES: usize = 16;

/// For a read refuted by the ops that change the register alone ([`refuting_reads`] named no
/// other read): every value the read could have returned with those ops and no other
/// observer, absent first. `None` when `stuck` is no read, the key is too large or has too
/// many values, a search ran out of budget, or the answer would not refute the read.
pub(crate) fn readable_values(key: &KeyHistory, stuck: &Op, initial: Value) -> Option<Vec<Value>> {
    let ops = &key.ops;
    let Step::Read(observed) = stuck.step else {
        return None;
    };
    if !within_reach(key) {
        return None;
    }
    let mut candidates: Vec<Value> = std::iter::once(initial)
        .chain(ops.iter().filter_map(|op| match op.step {
            Step::Write(v) | Step::Cas { new: v, .. } => Some(Some(v)),
            _ => None,
        }))
        .collect();
    candidates.sort_unstable();
    candidates.dedup();
    if candidates.len() > MAX_VALUES {
        return None;
    }
    let deadline = Instant::now() + TIME;
    let mut readable = Vec::new();
    for value in candidates {
        let subset: Vec<Op> = ops
            .iter()
            .filter(|op| op.index == stuck.index || !observes(op))
            .map(|op| {
                let mut op = *op;
                if op.index == stuck.index {
                    op.step = Step::Read(value);
                }
                op
            })
            .collect();
        if linearizable(&subset, initial, deadline)? {
            readable.push(value);
        }
    }
    (!readable.is_empty() && !readable.contains(&observed)).then_some(readable)
}

/// A refutation of an operation on a lock: operations that, with it, cannot all be ordered.
pub(crate) struct LockCore<'a> {
    /// Where the window starts: the ops cited began then or later, and the lock may have been
    /// free or held then. `None`: the window is the whole history, from the lock's start.
    pub since: Option<u64>,
    /// The ok operations that must be in the order (completion order).
    pub ops: Vec<&'a Op>,
}

/// Where an event falls in the history: its time, then its place in the file.
type At = (u64, u64);

fn invoked(op: &Op) -> At {
    (op.invoke_time, op.index)
}

fn returned(op: &Op) -> Option<At> {
    Some((op.complete_time?, op.complete_index.unwrap_or(op.index)))
}

/// The lock's operations as they stood when the history is cut at `cut`: those invoked
/// before it, the ok ones that had returned by then as they are, every other one optional
/// (it took effect at some time after it began, or never). A linearizable history stays
/// linearizable cut anywhere, so a cut that admits no order refutes the whole history.
fn cut_at(key: &KeyHistory, cut: At) -> Vec<Op> {
    key.ops
        .iter()
        .filter(|op| invoked(op) < cut)
        .map(|op| {
            let mut op = *op;
            if op.completion != Completion::Ok || returned(&op).is_none_or(|r| r > cut) {
                op.completion = Completion::Info;
                op.complete_time = None;
            }
            op
        })
        .collect()
}

/// For a key of the `mutex` model: the operation whose return first leaves the lock's
/// operations no order — the one that truly cannot be placed. The search's dead end
/// (`found`) need not be it (another order may go as far and fail later), but it usually is,
/// so it is tried first: two searches instead of a bisection. `None` when the key is too
/// large or a search ran out of budget.
pub(crate) fn lock_stuck<'a>(key: &'a KeyHistory, found: &Op, initial: Value) -> Option<&'a Op> {
    // A bisection takes a few dozen searches whatever the size, and a lock's two states keep
    // each one quick, so only the time budget bounds it.
    if key.ops.len() > LOCK_STUCK_MAX_OPS {
        return None;
    }
    let deadline = Instant::now() + TIME;
    let mut returns: Vec<&Op> = key
        .ops
        .iter()
        .filter(|op| op.completion == Completion::Ok && returned(op).is_some())
        .collect();
    returns.sort_by_key(|op| returned(op));
    let refuted_at = |i: usize| -> Option<bool> {
        let cut = returned(returns[i])?;
        linearizable(&cut_at(key, cut), initial, deadline).map(|yes| !yes)
    };
    if let Some(at) = returns.iter().position(|op| op.index == found.index) {
        let before = match at {
            0 => Some(false),
            _ => refuted_at(at - 1),
        };
        if before == Some(false) && refuted_at(at)? {
            return Some(returns[at]);
        }
    }
    // Refutation only grows with the cut: the first refuted cut is found by bisection.
    let (mut lo, mut hi) = (0, returns.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if refuted_at(mid)? {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    returns.get(lo).copied()
}

/// For `stuck`, an operation on a lock that cannot be placed ([`lock_stuck`]): the smallest
/// window before it returned, and the ok operations in it, that with `stuck` cannot all be
/// ordered, whether the lock was free or held when the window opened, every other operation
/// begun by then optional. The operations are minimal one at a time, tried farthest first.
/// `None` when the key is too large, a search ran out of budget, or no window refutes
/// `stuck` that way.
///
/// Why a window refutes the whole history: in an order of the history cut at `stuck`'s
/// return, everything after the last operation that ended before the window opened is an
/// order of the window's operations (those running when it opened optional), from whatever
/// state the lock had there. Making an ok operation optional only allows more orders. Unlike
/// the reads core, no operation can simply be left out: every lock operation changes the
/// lock, so leaving out a release could itself refute.
pub(crate) fn lock_core<'a>(
    key: &'a KeyHistory,
    stuck: &Op,
    initial: Value,
) -> Option<LockCore<'a>> {
    if !within_reach(key) {
        return None;
    }
    let cut = returned(stuck)?;
    let begun: Vec<&Op> = key.ops.iter().filter(|o| invoked(o) < cut).collect();
    let deadline = Instant::now() + TIME;
    // Whether the ops begun at `since` or later, those of `required` as they ended, leave no
    // order from any state the lock may have had then.
    let refuted = |since: Option<u64>, required: &[bool]| -> Option<bool> {
        let subset: Vec<Op> = begun
            .iter()
            .zip(required)
            // Ops that ended before the window opened are before all of it.
            .filter(|(op, _)| since.is_none_or(|t| op.complete_time.is_none_or(|c| c >= t)))
            .map(|(op, &required)| {
                let mut op = **op;
                let in_window = since.is_none_or(|t| op.invoke_time >= t);
                if op.index != stuck.index && !(required && in_window) {
                    op.completion = Completion::Info;
                    op.complete_time = None;
                }
                op
            })
            .collect();
        let starts = match since {
            None => vec![initial],
            Some(_) => vec![Some(FREE), Some(HELD)],
        };
        for start in starts {
            if linearizable(&subset, start, deadline)? {
                return Some(false);
            }
        }
        Some(true)
    };
    let returned_by_then: Vec<bool> = begun
        .iter()
        .map(|o| {
            o.index != stuck.index
                && o.completion == Completion::Ok
                && returned(o).is_some_and(|r| r <= cut)
        })
        .collect();
    // The latest window that refutes, from the op's own start back to the first op's, which
    // is the whole history with its known start.
    let mut opens: Vec<u64> = begun
        .iter()
        .map(|o| o.invoke_time)
        .filter(|&t| t <= stuck.invoke_time)
        .collect();
    opens.sort_unstable_by(|a, b| b.cmp(a));
    opens.dedup();
    let first = opens.last().copied();
    let mut since = None;
    for open in opens {
        if refuted(Some(open), &returned_by_then)? {
            since = Some(open).filter(|&t| Some(t) != first);
            break;
        }
    }
    if since.is_none() && !refuted(None, &returned_by_then)? {
        return None;
    }
    let mut required = returned_by_then;
    let mut farthest_first: Vec<usize> = (0..begun.len()).filter(|&i| required[i]).collect();
    farthest_first.sort_by_key(|&i| returned(begun[i]));
    for i in farthest_first {
        required[i] = false;
        if !refuted(since, &required)? {
            required[i] = true;
        }
    }
    let mut ops: Vec<&Op> = begun
        .into_iter()
        .zip(required)
        .filter(|(op, required)| *required && since.is_none_or(|t| op.invoke_time >= t))
        .map(|(op, _)| op)
        .collect();
    ops.sort_by_key(|o| returned(o));
    Some(LockCore { since, ops })
}

/// Whether `ops` are linearizable, by an exact search that stops at `deadline` (`None`).
fn linearizable(ops: &[Op], initial: Value, deadline: Instant) -> Option<bool> {
    let budget = Budget {
        deadline: Some(deadline),
        ..Budget::memory_only(MEMORY)
    };
    // Refuting means trying everything; taking crashed ops only where needed cuts that most
    // (on Porcupine's etcd_057.log, 0.6 ms a search became 0.08 ms).
    let strategy = Strategy {
        crashed_ops: CrashedOps::OnlyWhenNeeded,
        ..Strategy::default()
    };
    match search::search_with(ops, Model::CasRegister, initial, None, strategy, budget) {
        Outcome::Linearizable => Some(true),
        Outcome::NotLinearizable(_) => Some(false),
        Outcome::Unknown(_) => None,
    }
}

/// Whether the searches here may take `key` on: small enough, and no kv appends.
fn within_reach(key: &KeyHistory) -> bool {
    key.ops.len() <= MAX_OPS
        && !key
            .ops
            .iter()
            .any(|op| matches!(op.step, Step::Append { .. }))
}

/// Whether `op` only looks at the register (a read, a failed CAS): what this module may leave
/// out, as that only removes a constraint.
pub(crate) fn observes(op: &Op) -> bool {
    matches!(op.step, Step::Read(_) | Step::CasMismatch { .. })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Completion, EventValue, Function, Sym};

    fn op(i: u64, invoke: u64, complete: u64, step: Step) -> Op {
        Op {
            index: i * 2,
            complete_index: Some(i * 2 + 1),
            process: i,
            completion: Completion::Ok,
            f: match step {
                Step::Read(_) => Function::Read,
                Step::Write(_) => Function::Write,
                _ => Function::Cas,
            },
            value: EventValue::Read(None),
            invoke_time: invoke,
            complete_time: Some(complete),
            node: Sym::NONE,
            step,
        }
    }

    /// Writes 1 then 2 overlap; one read sees 2 then a later one sees 1, and a third read of 2
    /// comes last. The first two reads refute the history between them; the last read is
    /// beside the point and is left out.
    #[test]
    fn keeps_the_read_that_refutes_with_the_stuck_one_and_drops_the_rest() {
        let ops = vec![
            op(0, 0, 10, Step::Write(1)),
            op(1, 0, 10, Step::Write(2)),
            op(2, 11, 12, Step::Read(Some(2))),
            op(3, 13, 14, Step::Read(Some(1))),
            op(4, 15, 16, Step::Read(Some(1))),
        ];
        let key = KeyHistory {
            key: "k".into(),
            ops,
        };
        let reads = refuting_reads(&key, &key.ops[3], None).expect("a core");
        assert_eq!(
            reads.iter().map(|o| o.index).collect::<Vec<_>>(),
            vec![key.ops[2].index]
        );
    }

    /// When the history fails without the stuck op, the core would not be about it.
    #[test]
    fn refuses_when_the_others_fail_without_the_stuck_op() {
        let ops = vec![
            op(0, 0, 1, Step::Write(1)),
            op(1, 2, 3, Step::Read(Some(7))),
            op(2, 4, 5, Step::Read(Some(1))),
        ];
        let key = KeyHistory {
            key: "k".into(),
            ops,
        };
        assert!(refuting_reads(&key, &key.ops[2], None).is_none());
        // And a linearizable key has no core at all.
        let fine = KeyHistory {
            key: "k".into(),
            ops: vec![
                op(0, 0, 1, Step::Write(1)),
                op(1, 2, 3, Step::Read(Some(1))),
            ],
        };
        assert!(refuting_reads(&fine, &fine.ops[1], None).is_none());
    }
}
