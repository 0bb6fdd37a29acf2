//! Seeded synthetic lock histories (the `mutex` model), for benchmarks and tests: processes
//! take and give back locks, each acquire or release taking effect at a random instant
//! between its invoke and its completion, so the history is linearizable by construction —
//! unless a double acquire is planted on purpose.
//!
//! A process that holds no lock asks for a random one: the acquire succeeds if the lock is
//! free when it takes effect and fails (`already held`) otherwise. A process that holds one
//! gives it back. An acquire may crash: it ends `info` without having taken the lock (which
//! the checker may place anywhere after its invoke, or leave out), and its process is
//! replaced by a new one. Releases do not crash, so that a planted double acquire stays
//! certain: only a release could explain it.

use std::io::Write;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{Lines, Processes, Schedule, Stage, client_op};
use crate::record::{Record, RecordType};

/// What to generate.
#[derive(Clone, Debug)]
pub struct LockSpec {
    /// Operations in all, before the planted ones.
    pub ops: u64,
    /// Concurrent processes.
    pub procs: u32,
    /// Locks; each is its own key.
    pub locks: u32,
    /// Probability that an acquire crashes (ends `info` without taking the lock).
    pub crash: f64,
    /// Append two acquires of lock `l0` that both succeed, one after the other, with no
    /// release between: the history is then not linearizable.
    pub double_acquire: bool,
    pub seed: u64,
}

/// What [`write_lock_history`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockSynthesized {
    pub lines: u64,
    /// Acquires that succeeded (the planted ones included).
    pub acquired: u64,
}

struct Pending {
    process: u64,
    lock: u32,
    acquire: bool,
    crashes: bool,
    ok: bool,
}

/// Nanoseconds an operation's steps take: from invoke to effect, and from effect to answer.
const STEP_NS: std::ops::Range<u64> = 1..300_000;

/// Write a lock history as JSONL to `out`.
pub fn write_lock_history(
    spec: &LockSpec,
    out: &mut impl Write,
) -> std::io::Result<LockSynthesized> {
    let mut rng = SmallRng::seed_from_u64(spec.seed);
    let locks = spec.locks.max(1);
    let procs = spec.procs.max(1) as usize;
    // Per lock, the slot holding it; per slot, the lock it holds.
    let mut holder: Vec<Option<usize>> = vec![None; locks as usize];
    let mut holds: Vec<Option<u32>> = vec![None; procs];
    let mut processes = Processes::new(procs);
    let mut slots: Vec<Option<Pending>> = (0..procs).map(|_| None).collect();
    let mut queue = Schedule::start(procs, spec.ops, &mut rng);
    let mut lines = Lines::new(out);
    let mut acquired = 0u64;
    let mut emit = |time, process, kind, f, lock: u32, error| {
        lines.write(Record {
            key: Some(format!("l{lock}")),
            ..client_op(time, process, kind, f, error)
        })
    };
    while let Some((time, stage, slot)) = queue.next() {
        match stage {
            Stage::Invoke => {
                let (lock, acquire) = match holds[slot] {
                    Some(lock) => (lock, false),
                    None => (rng.random_range(0..locks), true),
                };
                let process = processes.of(slot);
                let f = if acquire { "acquire" } else { "release" };
                emit(time, process, RecordType::Invoke, f, lock, None)?;
                let crashes = acquire && rng.random_bool(spec.crash.clamp(0.0, 1.0));
                slots[slot] = Some(Pending {
                    process,
                    lock,
                    acquire,
                    crashes,
                    ok: false,
                });
                queue.at(time + rng.random_range(STEP_NS), Stage::Effect, slot);
            }
            Stage::Effect => {
                let Some(op) = slots[slot].as_mut() else {
                    continue;
                };
                let l = op.lock as usize;
                if op.acquire {
                    op.ok = !op.crashes && holder[l].is_none();
                    if op.ok {
                        holder[l] = Some(slot);
                        holds[slot] = Some(op.lock);
                    }
                } else {
                    holder[l] = None;
                    holds[slot] = None;
                    op.ok = true;
                }
                queue.at(time + rng.random_range(STEP_NS), Stage::Complete, slot);
            }
            Stage::Complete => {
                let Some(op) = slots[slot].take() else {
                    continue;
                };
                let f = if op.acquire { "acquire" } else { "release" };
                let (kind, error) = match (op.crashes, op.ok) {
                    (true, _) => (RecordType::Info, Some("timeout")),
                    (false, true) => (RecordType::Ok, None),
                    (false, false) => (RecordType::Fail, Some("already held")),
                };
                emit(time, op.process, kind, f, op.lock, error)?;
                if op.acquire && op.ok {
                    acquired += 1;
                }
                if op.crashes {
                    processes.retire(slot);
                }
                queue.at(time + rng.random_range(1..1_000_000), Stage::Invoke, slot);
            }
        }
    }
    if spec.double_acquire {
        // Two fresh processes, one after the other, after everything else has ended; whoever
        // holds l0 then, nothing can free it between them, as releases never crash.
        let mut time = queue.last_time;
        for _ in 0..2 {
            let process = processes.fresh();
            time += 1_000;
            emit(time, process, RecordType::Invoke, "acquire", 0, None)?;
            time += 1_000;
            emit(time, process, RecordType::Ok, "acquire", 0, None)?;
            acquired += 1;
        }
    }
    Ok(LockSynthesized {
        lines: lines.written,
        acquired,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Verdict;
    use crate::check::check_jsonl;

    fn history(spec: &LockSpec) -> (String, LockSynthesized) {
        let mut out = Vec::new();
        let written = write_lock_history(spec, &mut out).expect("writes to memory");
        (String::from_utf8(out).expect("UTF-8"), written)
    }

    const SPEC: LockSpec = LockSpec {
        ops: 2_000,
        procs: 6,
        locks: 2,
        crash: 0.05,
        double_acquire: false,
        seed: 3,
    };

    #[test]
    fn a_lock_history_is_linearizable_by_construction_and_seeded() {
        let (text, written) = history(&SPEC);
        assert_eq!(history(&SPEC).0, text, "same seed, same history");
        assert!(written.acquired > 100, "{written:?}");
        assert!(text.contains("\"type\":\"fail\"") && text.contains("\"type\":\"info\""));
        let report = check_jsonl(&text);
        assert_eq!(
            report.verdict(),
            Verdict::Valid,
            "{:?}",
            report.counterexamples
        );
    }

    #[test]
    fn a_planted_double_acquire_is_found() {
        let spec = LockSpec {
            double_acquire: true,
            ..SPEC
        };
        let (text, _) = history(&spec);
        let report = check_jsonl(&text);
        assert_eq!(report.verdict(), Verdict::Invalid);
        assert!(
            report.counterexamples[0]
                .explanation
                .starts_with("acquire of lock l0"),
            "{}",
            report.counterexamples[0].explanation
        );
    }
}
