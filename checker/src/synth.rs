//! Seeded synthetic histories, for benchmarks and tests: concurrent processes issue reads,
//! writes and CASes against one register per key; each operation takes effect at a random
//! instant between its invoke and its completion, so the history is linearizable by
//! construction — unless a stale read is planted on purpose.
//!
//! A discrete-event simulation: every operation is three events (invoke, effect, completion)
//! in one time-ordered queue, and the register changes only at effects.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Write;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::record::{Record, RecordProcess, RecordType};

mod lock;
mod txn;

pub use lock::{LockSpec, LockSynthesized, write_lock_history};
pub use txn::{TxnSpec, write_txn_history};

/// What to generate.
#[derive(Clone, Debug)]
pub struct SynthSpec {
    /// Operations in all (each is an invoke and a completion line).
    pub ops: u64,
    /// Concurrent processes.
    pub procs: u32,
    /// Keys; each is its own register.
    pub keys: u32,
    /// Probability that an operation crashes: it completes `info` (it took effect or not,
    /// at random) and its process is replaced by a new one.
    pub crash: f64,
    /// Written values unique per key (otherwise drawn from a small range, so they repeat).
    pub unique: bool,
    /// Plant one stale read at the end: a read of a value that had been overwritten.
    pub stale_read: bool,
    /// Reads and writes only (no compare-and-set).
    pub register_only: bool,
    pub seed: u64,
}

/// The steps of one operation; at equal times effects come first, then answers, then calls.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Effect,
    Complete,
    Invoke,
}

/// Every process slot's next step, earliest first, until `ops` operations have been invoked.
struct Schedule {
    steps: BinaryHeap<Reverse<(u64, Stage, usize)>>,
    invokes_left: u64,
    /// The time of the last step taken, an invoke passed over included: planted operations
    /// come after it.
    last_time: u64,
}

impl Schedule {
    /// Each of `slots` slots calls its first operation within the first microsecond.
    fn start(slots: usize, ops: u64, rng: &mut SmallRng) -> Schedule {
        Schedule {
            steps: (0..slots)
                .map(|slot| Reverse((rng.random_range(0..1_000), Stage::Invoke, slot)))
                .collect(),
            invokes_left: ops,
            last_time: 0,
        }
    }

    fn at(&mut self, time: u64, stage: Stage, slot: usize) {
        self.steps.push(Reverse((time, stage, slot)));
    }

    /// The next step. Once `ops` operations have been invoked, a slot's next invoke is dropped:
    /// the slot has nothing more to do, and the run ends when every slot's last op has.
    fn next(&mut self) -> Option<(u64, Stage, usize)> {
        while let Some(Reverse(step)) = self.steps.pop() {
            self.last_time = step.0;
            if step.1 == Stage::Invoke {
                if self.invokes_left == 0 {
                    continue;
                }
                self.invokes_left -= 1;
            }
            return Some(step);
        }
        None
    }
}

/// Writes a synthetic history's records as JSONL, numbering them in order.
struct Lines<'a> {
    out: &'a mut dyn Write,
    written: u64,
}

impl<'a> Lines<'a> {
    fn new(out: &'a mut dyn Write) -> Lines<'a> {
        Lines { out, written: 0 }
    }

    /// Writes `record` as the next line, whatever index it came with.
    fn write(&mut self, record: Record) -> std::io::Result<()> {
        let record = Record {
            index: self.written,
            ..record
        };
        serde_json::to_writer(&mut *self.out, &record)?;
        self.out.write_all(b"\n")?;
        self.written += 1;
        Ok(())
    }
}

/// A client operation's record, without key or value; `error` says why it is `info` or
/// `fail`. [`Lines`] numbers it.
fn client_op(time: u64, process: u64, kind: RecordType, f: &str, error: Option<&str>) -> Record {
    Record {
        index: 0,
        time,
        process: RecordProcess::Client(process),
        kind,
        f: f.to_string(),
        key: None,
        value: serde_json::Value::Null,
        node: None,
        error: error.map(str::to_string),
    }
}

/// The process each client slot runs as. As in Jepsen, a slot whose operation crashed goes on
/// as a fresh process, numbered after every process so far.
struct Processes {
    of_slot: Vec<u64>,
    next: u64,
}

impl Processes {
    fn new(slots: usize) -> Processes {
        Processes {
            of_slot: (0..slots as u64).collect(),
            next: slots as u64,
        }
    }

    fn of(&self, slot: usize) -> u64 {
        self.of_slot[slot]
    }

    /// The slot's operation crashed: it goes on as a fresh process.
    fn retire(&mut self, slot: usize) {
        self.of_slot[slot] = self.fresh();
    }

    /// A process no slot has run as, for operations outside the slots (planted ones).
    fn fresh(&mut self) -> u64 {
        self.next += 1;
        self.next - 1
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Read,
    Write(i64),
    Cas(i64, i64),
}

struct Pending {
    process: u64,
    invoked: u64,
    key: u32,
    kind: Kind,
    crashes: bool,
    /// Read: what it saw; CAS: whether it applied.
    result: Option<Option<i64>>,
    applied: bool,
}

/// What [`write_history`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Synthesized {
    pub lines: u64,
    /// The stale read planted, if one was asked for and one could be: `None` also when every
    /// value was written by a crashed op or never overwritten, so that no read of any value
    /// was certainly stale (see [`write_history`]).
    pub stale_read: Option<PlantedRead>,
}

/// The read planted at the end of a synthetic history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlantedRead {
    pub key: String,
    pub value: i64,
}

/// Write a history as JSONL to `out`.
///
/// The planted stale read (`spec.stale_read`) reads a value `v` that is certainly overwritten
/// at the end: no crashed op writes `v` (a crashed write may take effect at any later time,
/// also last), and a write of another value that completed `ok` was invoked after every
/// completed write of `v` had completed. With values that repeat and crashes, every value
/// may have a crashed writer; then nothing is planted and the history stays linearizable.
pub fn write_history(spec: &SynthSpec, out: &mut impl Write) -> std::io::Result<Synthesized> {
    let mut rng = SmallRng::seed_from_u64(spec.seed);
    let keys = spec.keys.max(1);
    let mut state: Vec<Option<i64>> = vec![None; keys as usize];
    // Per key, the last unique value handed out (with `spec.unique`).
    let mut last_written: Vec<i64> = vec![0; keys as usize];
    // Per key, each value in the order it took effect, for picking CAS expectations and the
    // planted stale read.
    let mut history: Vec<Vec<i64>> = vec![Vec::new(); keys as usize];
    // For the ops that wrote each (key, value) and completed `ok`: the latest invocation and
    // the latest completion among them; and the (key, value)s some crashed op may have written.
    let mut write_invoked: std::collections::HashMap<(u32, i64), u64> = Default::default();
    let mut write_done: std::collections::HashMap<(u32, i64), u64> = Default::default();
    let mut crashed_writes: std::collections::HashSet<(u32, i64)> = Default::default();
    let procs = spec.procs.max(1) as usize;
    let mut queue = Schedule::start(procs, spec.ops, &mut rng);
    let mut slots: Vec<Option<Pending>> = (0..procs).map(|_| None).collect();
    let mut processes = Processes::new(procs);
    let mut lines = Lines::new(out);
    while let Some((time, stage, slot)) = queue.next() {
        match stage {
            Stage::Invoke => {
                let key = rng.random_range(0..keys);
                let k = key as usize;
                let value = |rng: &mut SmallRng, last: &mut i64| {
                    if spec.unique {
                        *last += 1;
                        *last
                    } else {
                        rng.random_range(1..=5)
                    }
                };
                let kind = match rng.random_range(0..4) {
                    0 | 1 => Kind::Read,
                    2 => Kind::Write(value(&mut rng, &mut last_written[k])),
                    _ if spec.register_only => Kind::Write(value(&mut rng, &mut last_written[k])),
                    _ => {
                        // Expect the current value most of the time, so CASes succeed.
                        let expected = match state[k] {
                            Some(v) if rng.random_bool(0.7) => v,
                            _ => history[k].last().map_or(1, |&v| v) + rng.random_range(0..2),
                        };
                        Kind::Cas(expected, value(&mut rng, &mut last_written[k]))
                    }
                };
                let process = processes.of(slot);
                let (f, json) = describe(kind);
                lines.write(Record {
                    key: Some(format!("k{key}")),
                    value: json,
                    ..client_op(time, process, RecordType::Invoke, f, None)
                })?;
                let crashes = rng.random_bool(spec.crash.clamp(0.0, 1.0));
                if let (Kind::Write(v) | Kind::Cas(_, v), true) = (kind, crashes) {
                    crashed_writes.insert((key, v));
                }
                slots[slot] = Some(Pending {
                    process,
                    invoked: time,
                    key,
                    kind,
                    crashes,
                    result: None,
                    applied: false,
                });
                queue.at(time + rng.random_range(1..500_000), Stage::Effect, slot);
            }
            Stage::Effect => {
                let Some(op) = slots[slot].as_mut() else {
                    continue;
                };
                let k = op.key as usize;
                // A crashed op takes effect only half of the time.
                if op.crashes && rng.random_bool(0.5) {
                    queue.at(time + rng.random_range(1..500_000), Stage::Complete, slot);
                    continue;
                }
                match op.kind {
                    Kind::Read => op.result = Some(state[k]),
                    Kind::Write(v) => {
                        state[k] = Some(v);
                        history[k].push(v);
                        op.applied = true;
                    }
                    Kind::Cas(a, b) => {
                        op.applied = state[k] == Some(a);
                        if op.applied {
                            state[k] = Some(b);
                            history[k].push(b);
                        }
                    }
                }
                queue.at(time + rng.random_range(1..500_000), Stage::Complete, slot);
            }
            Stage::Complete => {
                let Some(op) = slots[slot].take() else {
                    continue;
                };
                if let (Kind::Write(v) | Kind::Cas(_, v), false, true) =
                    (op.kind, op.crashes, op.applied)
                {
                    write_done.insert((op.key, v), time);
                    let invoked = write_invoked.entry((op.key, v)).or_default();
                    *invoked = (*invoked).max(op.invoked);
                }
                let (f, mut json) = describe(op.kind);
                let (kind, error) = if op.crashes {
                    (RecordType::Info, Some("timeout"))
                } else {
                    match op.kind {
                        Kind::Read => {
                            json = serde_json::json!(op.result.flatten());
                            (RecordType::Ok, None)
                        }
                        Kind::Write(_) => (RecordType::Ok, None),
                        Kind::Cas(..) if op.applied => (RecordType::Ok, None),
                        Kind::Cas(..) => (RecordType::Fail, Some("mismatch")),
                    }
                };
                lines.write(Record {
                    key: Some(format!("k{}", op.key)),
                    value: json,
                    ..client_op(time, op.process, kind, f, error)
                })?;
                if op.crashes {
                    // The crashed op may still be in flight.
                    processes.retire(slot);
                }
                queue.at(time + rng.random_range(1..200_000), Stage::Invoke, slot);
            }
        }
    }
    let mut planted_read = None;
    if spec.stale_read {
        // A read, after everything, of the first value (in the order values took effect) that
        // was certainly overwritten (see the function's docs).
        let planted = (0..keys).find_map(|k| {
            // The two latest invocations of completed writes of distinct values: a value is
            // overwritten when a write of another value was invoked after its last completed.
            let mut latest: [(u64, Option<i64>); 2] = [(0, None); 2];
            for (&(key, u), &t) in &write_invoked {
                if key != k {
                    continue;
                }
                if t > latest[0].0 {
                    latest = [(t, Some(u)), latest[0]];
                } else if t > latest[1].0 {
                    latest[1] = (t, Some(u));
                }
            }
            let invoked_after = |v: i64, done: u64| {
                let other = if latest[0].1 == Some(v) {
                    latest[1]
                } else {
                    latest[0]
                };
                other.1.is_some() && other.0 > done
            };
            history[k as usize].iter().find_map(|&v| {
                if crashed_writes.contains(&(k, v)) {
                    return None;
                }
                let done = *write_done.get(&(k, v))?;
                invoked_after(v, done).then_some((k as usize, v))
            })
        });
        if let Some((k, stale)) = planted {
            let last_time = queue.last_time;
            planted_read = Some(PlantedRead {
                key: format!("k{k}"),
                value: stale,
            });
            let process = processes.fresh();
            for (kind, value, t) in [
                (RecordType::Invoke, serde_json::Value::Null, last_time + 1),
                (RecordType::Ok, serde_json::json!(stale), last_time + 2),
            ] {
                lines.write(Record {
                    key: Some(format!("k{k}")),
                    value,
                    ..client_op(t, process, kind, "read", None)
                })?;
            }
        }
    }
    Ok(Synthesized {
        lines: lines.written,
        stale_read: planted_read,
    })
}

fn describe(kind: Kind) -> (&'static str, serde_json::Value) {
    match kind {
        Kind::Read => ("read", serde_json::Value::Null),
        Kind::Write(v) => ("write", serde_json::json!(v)),
        Kind::Cas(a, b) => ("cas", serde_json::json!([a, b])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Verdict;
    use crate::check::check_jsonl;

    fn verdict(spec: &SynthSpec) -> Verdict {
        let mut out = Vec::new();
        write_history(spec, &mut out).expect("writes");
        let text = String::from_utf8(out).expect("utf-8");
        check_jsonl(&text).verdict()
    }

    #[test]
    fn synthetic_histories_are_linearizable_unless_a_stale_read_is_planted() {
        for seed in 0..5 {
            let spec = SynthSpec {
                ops: 3_000,
                procs: 8,
                keys: 4,
                crash: 0.02,
                unique: seed % 2 == 0,
                stale_read: false,
                register_only: seed == 3,
                seed,
            };
            assert_eq!(verdict(&spec), Verdict::Valid, "seed {seed}");
            let stale = SynthSpec {
                stale_read: true,
                unique: true,
                ..spec
            };
            assert_eq!(verdict(&stale), Verdict::Invalid, "seed {seed}");
        }
    }

    fn planted(spec: &SynthSpec) -> (Option<PlantedRead>, Verdict) {
        let mut out = Vec::new();
        let written = write_history(spec, &mut out).expect("writes");
        let verdict = check_jsonl(&String::from_utf8(out).expect("utf-8")).verdict();
        (written.stale_read, verdict)
    }

    #[test]
    fn with_repeated_values_a_read_is_planted_only_where_it_is_certainly_stale() {
        // Five values, rewritten all the time: a crashed write of the value read may have
        // taken effect last, so such a read is no violation and must not be planted.
        let spec = |crash, seed| SynthSpec {
            ops: 400,
            procs: 6,
            keys: 1,
            crash,
            unique: false,
            stale_read: true,
            register_only: false,
            seed,
        };
        let mut planted_any = false;
        for seed in 0..6 {
            let (read, verdict) = planted(&spec(0.0, seed));
            assert!(
                read.is_some(),
                "seed {seed}: nothing crashed, so a value is stale"
            );
            assert_eq!(verdict, Verdict::Invalid, "seed {seed}");
            // At 2 % crashes some values have a crashed writer and some may not.
            let (read, verdict) = planted(&spec(0.02, seed));
            planted_any |= read.is_some();
            let expected = if read.is_some() {
                Verdict::Invalid
            } else {
                Verdict::Valid
            };
            assert_eq!(verdict, expected, "seed {seed}, 2 % crashed: {read:?}");
            // At 50 % every value has a crashed writer.
            assert_eq!(
                planted(&spec(0.5, seed)),
                (None, Verdict::Valid),
                "seed {seed}"
            );
        }
        assert!(planted_any, "some history at 2 % crashes has a stale value");
    }

    #[test]
    fn the_same_seed_gives_the_same_history() {
        let spec = SynthSpec {
            ops: 500,
            procs: 4,
            keys: 2,
            crash: 0.05,
            unique: true,
            stale_read: false,
            register_only: false,
            seed: 9,
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        write_history(&spec, &mut a).expect("writes");
        write_history(&spec, &mut b).expect("writes");
        assert_eq!(a, b);
        assert_eq!(
            String::from_utf8(a).expect("utf-8").lines().count(),
            1000,
            "an invoke and a completion per op"
        );
    }
}
