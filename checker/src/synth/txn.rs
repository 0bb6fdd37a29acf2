//! Seeded synthetic transaction histories (the `multi-register` model), for benchmarks and
//! tests: processes run transactions of one to three reads and writes over a few registers,
//! each taking effect whole at a random instant between its invoke and its completion, so the
//! history is linearizable by construction — unless a stale or a torn read is planted on
//! purpose.
//!
//! A transaction may crash: it ends `info`, having taken effect or not (at random), and its
//! process is replaced by a new one.

use std::io::Write;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{Lines, Processes, Schedule, Stage, client_op};
use crate::record::{Record, RecordType};

/// What to generate.
#[derive(Clone, Debug)]
pub struct TxnSpec {
    /// Transactions in all, before the planted ones.
    pub ops: u64,
    /// Concurrent processes.
    pub procs: u32,
    /// Registers, named `r0`, `r1`, …
    pub registers: u32,
    /// Probability that a transaction crashes.
    pub crash: f64,
    /// Every write writes a value never written before (otherwise values 1 to 5 repeat).
    pub unique: bool,
    /// End with three transactions, one after the other: two writes of `r0`, then a read of
    /// `r0` that returns the first one's value: the history is then not linearizable.
    pub stale_read: bool,
    /// End with a transaction that writes `r0` and `r1`, then one that writes both again,
    /// during which a third reads `r0` from the second and `r1` from the first (a torn read):
    /// the history is then not linearizable. Needs two registers or more.
    pub torn_read: bool,
    pub seed: u64,
}

/// Values drawn when they repeat: 1 to this.
const REPEATED_VALUES: i64 = 5;

/// Nanoseconds a transaction's steps take: from invoke to effect, and from effect to answer.
const STEP_NS: std::ops::Range<u64> = 1..300_000;

#[derive(Clone, Copy)]
struct Micro {
    write: bool,
    register: u32,
    /// Write: the value written; read: what it returned (set at the effect).
    value: Option<i64>,
}

struct Pending {
    process: u64,
    micro_ops: Vec<Micro>,
    crashes: bool,
}

/// The JSON value of a transaction: `[["read","r0",3],["write","r1",7]]`; reads show their
/// result only when `results` (on the `ok` completion).
fn value_of(micro_ops: &[Micro], results: bool) -> serde_json::Value {
    micro_ops
        .iter()
        .map(|m| {
            let f = if m.write { "write" } else { "read" };
            let value = if m.write || results { m.value } else { None };
            serde_json::json!([f, format!("r{}", m.register), value])
        })
        .collect()
}

/// Write a transaction history as JSONL to `out`; returns the number of lines.
pub fn write_txn_history(spec: &TxnSpec, out: &mut impl Write) -> std::io::Result<u64> {
    let mut rng = SmallRng::seed_from_u64(spec.seed);
    let registers = spec.registers.max(1);
    let procs = spec.procs.max(1) as usize;
    let mut state: Vec<Option<i64>> = vec![None; registers as usize];
    let mut processes = Processes::new(procs);
    let mut slots: Vec<Option<Pending>> = (0..procs).map(|_| None).collect();
    let mut queue = Schedule::start(procs, spec.ops, &mut rng);
    let mut next_value = 1i64;
    let mut lines = Lines::new(out);
    let mut emit = |time, process, kind, value| {
        let timeout = (kind == RecordType::Info).then_some("timeout");
        lines.write(Record {
            value,
            ..client_op(time, process, kind, "txn", timeout)
        })
    };
    while let Some((time, stage, slot)) = queue.next() {
        match stage {
            Stage::Invoke => {
                let micro_ops: Vec<Micro> = (0..rng.random_range(1..=3))
                    .map(|_| {
                        let write = rng.random_bool(0.5);
                        let value = write.then(|| match spec.unique {
                            true => {
                                next_value += 1;
                                next_value - 1
                            }
                            false => rng.random_range(1..=REPEATED_VALUES),
                        });
                        Micro {
                            write,
                            register: rng.random_range(0..registers),
                            value,
                        }
                    })
                    .collect();
                let process = processes.of(slot);
                emit(
                    time,
                    process,
                    RecordType::Invoke,
                    value_of(&micro_ops, false),
                )?;
                let crashes = rng.random_bool(spec.crash.clamp(0.0, 1.0));
                slots[slot] = Some(Pending {
                    process,
                    micro_ops,
                    crashes,
                });
                queue.at(time + rng.random_range(STEP_NS), Stage::Effect, slot);
            }
            Stage::Effect => {
                let Some(txn) = slots[slot].as_mut() else {
                    continue;
                };
                // A crashed transaction took effect or not, at random.
                if !txn.crashes || rng.random_bool(0.5) {
                    for micro in &mut txn.micro_ops {
                        let register = micro.register as usize;
                        match micro.write {
                            true => state[register] = micro.value,
                            false => micro.value = state[register],
                        }
                    }
                }
                queue.at(time + rng.random_range(STEP_NS), Stage::Complete, slot);
            }
            Stage::Complete => {
                let Some(txn) = slots[slot].take() else {
                    continue;
                };
                let (kind, value) = match txn.crashes {
                    true => (RecordType::Info, value_of(&txn.micro_ops, false)),
                    false => (RecordType::Ok, value_of(&txn.micro_ops, true)),
                };
                emit(time, txn.process, kind, value)?;
                if txn.crashes {
                    processes.retire(slot);
                }
                queue.at(time + rng.random_range(1..1_000_000), Stage::Invoke, slot);
            }
        }
    }
    if spec.stale_read {
        // Values no other transaction writes, so no crashed one can explain the read.
        let first = next_value.max(REPEATED_VALUES + 1);
        let planted = [
            Micro {
                write: true,
                register: 0,
                value: Some(first),
            },
            Micro {
                write: true,
                register: 0,
                value: Some(first + 1),
            },
            Micro {
                write: false,
                register: 0,
                value: Some(first),
            },
        ];
        let mut time = queue.last_time;
        for micro in planted {
            let process = processes.fresh();
            time += 1_000;
            emit(time, process, RecordType::Invoke, value_of(&[micro], false))?;
            time += 1_000;
            emit(time, process, RecordType::Ok, value_of(&[micro], true))?;
        }
    }
    if spec.torn_read && registers >= 2 {
        // Values no other transaction writes, as for the stale read.
        let first = next_value.max(REPEATED_VALUES + 1) + 2;
        let both = |value| {
            (0..2)
                .map(|register| Micro {
                    write: true,
                    register,
                    value: Some(value),
                })
                .collect::<Vec<_>>()
        };
        let (earlier, later) = (both(first), both(first + 1));
        let torn = [(0, first + 1), (1, first)].map(|(register, value)| Micro {
            write: false,
            register,
            value: Some(value),
        });
        let (a, b, c) = (processes.fresh(), processes.fresh(), processes.fresh());
        let t = queue.last_time + 10_000;
        emit(t, a, RecordType::Invoke, value_of(&earlier, false))?;
        emit(t + 1_000, a, RecordType::Ok, value_of(&earlier, true))?;
        emit(t + 2_000, b, RecordType::Invoke, value_of(&later, false))?;
        emit(t + 3_000, c, RecordType::Invoke, value_of(&torn, false))?;
        emit(t + 4_000, c, RecordType::Ok, value_of(&torn, true))?;
        emit(t + 5_000, b, RecordType::Ok, value_of(&later, true))?;
    }
    Ok(lines.written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::check_jsonl;
    use crate::{Model, Verdict};

    fn check(spec: &TxnSpec) -> (String, crate::CheckReport) {
        let mut out = Vec::new();
        write_txn_history(spec, &mut out).expect("writes to memory");
        let text = String::from_utf8(out).expect("UTF-8");
        let report = check_jsonl(&text);
        assert_eq!(report.model, Model::MultiRegister);
        (text, report)
    }

    const SPEC: TxnSpec = TxnSpec {
        ops: 3_000,
        procs: 6,
        registers: 3,
        crash: 0.05,
        unique: false,
        stale_read: false,
        torn_read: false,
        seed: 4,
    };

    #[test]
    fn a_transaction_history_is_linearizable_by_construction_and_seeded() {
        for unique in [false, true] {
            let spec = TxnSpec { unique, ..SPEC };
            let (text, report) = check(&spec);
            assert_eq!(check(&spec).0, text, "same seed, same history");
            assert!(text.contains("\"type\":\"info\"") && text.contains("\"write\""));
            assert_eq!(
                report.verdict(),
                Verdict::Valid,
                "{:?}",
                report.counterexamples
            );
        }
    }

    #[test]
    fn a_planted_stale_read_is_found() {
        let spec = TxnSpec {
            unique: true,
            stale_read: true,
            ..SPEC
        };
        let (_, report) = check(&spec);
        assert_eq!(report.verdict(), Verdict::Invalid);
        let sentence = &report.counterexamples[0].explanation;
        assert!(
            sentence.contains("read r0 = ") && sentence.contains(", before the read began at "),
            "{sentence}"
        );
    }

    #[test]
    fn a_planted_torn_read_is_found_where_values_repeat_and_transactions_crash() {
        let spec = TxnSpec {
            torn_read: true,
            ..SPEC
        };
        let (_, report) = check(&spec);
        assert_eq!(report.verdict(), Verdict::Invalid);
        let sentence = &report.counterexamples[0].explanation;
        assert!(
            sentence.contains(", so it came first, and it left r1 = "),
            "{sentence}"
        );
    }
}
