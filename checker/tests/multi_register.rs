//! Property test (STYLE rule 16) for the multi-register model: on small histories of
//! transactions over two registers, some crashed and some failed, the checker's verdict is the
//! brute-force oracle's, which tries every order of every subset of the crashed ones.

use faultline_checker::check::{CheckOptions, check_events};
use faultline_checker::{Model, Verdict, jsonl};
use proptest::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Outcome {
    Ok,
    Info,
    Fail,
}

#[derive(Clone, Debug)]
struct Txn {
    invoke: u64,
    complete: u64,
    outcome: Outcome,
    /// (write?, register 0 or 1, value; `None` = absent, for reads only).
    micro_ops: Vec<(bool, usize, Option<i64>)>,
}

const NAMES: [&str; 2] = ["x", "y"];

/// Fewer than `most` transactions over `registers` registers writing values 1 to 3, where
/// `crashed` of every 9 crash and 1 fails.
fn arb_history(registers: usize, crashed: u32, most: usize) -> impl Strategy<Value = Vec<Txn>> {
    let micro = (
        any::<bool>(),
        0..registers,
        prop::option::weighted(0.8, 1..4i64),
    );
    let txn = (
        0..20u64,
        1..8u64,
        prop_oneof![
            8 - crashed => Just(Outcome::Ok),
            crashed => Just(Outcome::Info),
            1 => Just(Outcome::Fail)
        ],
        prop::collection::vec(micro, 1..4),
    )
        .prop_map(|(invoke, length, outcome, micro_ops)| Txn {
            invoke,
            complete: invoke + length,
            outcome,
            micro_ops: micro_ops
                .into_iter()
                // Writes always write a value.
                .map(|(write, r, v)| (write, r, if write { v.or(Some(1)) } else { v }))
                .collect(),
        });
    prop::collection::vec(txn, 1..most)
}

/// The history as JSONL: each transaction its own process; events in time order, ties broken
/// invokes-last so that touching intervals do not overlap (the checker's order is by time,
/// then position).
fn jsonl_of(txns: &[Txn]) -> String {
    let value = |txn: &Txn, reads_known: bool| {
        let parts: Vec<String> = txn
            .micro_ops
            .iter()
            .map(|&(write, r, v)| {
                let shown = if write || reads_known { v } else { None };
                format!(
                    r#"["{}","{}",{}]"#,
                    if write { "write" } else { "read" },
                    NAMES[r],
                    shown.map_or("null".to_string(), |v| v.to_string())
                )
            })
            .collect();
        format!("[{}]", parts.join(","))
    };
    let mut events: Vec<(u64, u8, usize)> = Vec::new();
    for (i, txn) in txns.iter().enumerate() {
        events.push((txn.invoke, 1, i));
        events.push((txn.complete, 0, i));
    }
    events.sort();
    events
        .iter()
        .enumerate()
        .map(|(index, &(time, is_invoke, i))| {
            let txn = &txns[i];
            let (kind, v) = if is_invoke == 1 {
                ("invoke", value(txn, false))
            } else {
                let kind = match txn.outcome {
                    Outcome::Ok => "ok",
                    Outcome::Info => "info",
                    Outcome::Fail => "fail",
                };
                (kind, value(txn, txn.outcome == Outcome::Ok))
            };
            format!(
                r#"{{"index":{index},"time":{time},"process":{i},"type":"{kind}","f":"txn","value":{v}}}"#
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `a` must take effect before `b`: `a` completed before `b` was invoked (with the
/// same tie-break as [`jsonl_of`]: a completion at the time of an invoke comes first).
fn precedes(a: &Txn, b: &Txn) -> bool {
    a.outcome == Outcome::Ok && a.complete <= b.invoke
}

fn oracle(txns: &[Txn]) -> bool {
    let candidates: Vec<usize> = (0..txns.len())
        .filter(|&i| txns[i].outcome != Outcome::Fail)
        .collect();
    let mut placed = vec![false; txns.len()];
    explore(txns, &candidates, &mut placed, [None, None])
}

fn explore(
    txns: &[Txn],
    candidates: &[usize],
    placed: &mut [bool],
    state: [Option<i64>; 2],
) -> bool {
    if candidates
        .iter()
        .all(|&i| placed[i] || txns[i].outcome != Outcome::Ok)
    {
        return true;
    }
    for &next in candidates {
        if placed[next] {
            continue;
        }
        // Everything that had to go before it has gone.
        if candidates
            .iter()
            .any(|&p| p != next && !placed[p] && precedes(&txns[p], &txns[next]))
        {
            continue;
        }
        let mut after = state;
        let mut legal = true;
        for &(write, r, v) in &txns[next].micro_ops {
            if write {
                after[r] = v;
            } else if txns[next].outcome == Outcome::Ok && after[r] != v {
                legal = false;
                break;
            }
        }
        if legal {
            placed[next] = true;
            let found = explore(txns, candidates, placed, after);
            placed[next] = false;
            if found {
                return true;
            }
        }
    }
    false
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn multi_register_search_agrees_with_brute_force(txns in arb_history(2, 2, 7)) {
        agrees_with_brute_force(&txns)?;
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    /// One register and many crashes: crashed writes of a value another transaction also
    /// writes, which must stay open (only a value's one writer is closed at its sighting).
    /// Such cases are rare, hence more of them.
    #[test]
    fn multi_register_search_agrees_when_many_crash_and_values_repeat(
        txns in arb_history(1, 4, 8)
    ) {
        agrees_with_brute_force(&txns)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Two registers and many crashes: a transaction that sees one register written by
    /// another and the other register as a crashed transaction may have left it.
    #[test]
    fn multi_register_search_agrees_when_many_crash_across_two_registers(
        txns in arb_history(2, 4, 8)
    ) {
        agrees_with_brute_force(&txns)?;
    }
}

fn agrees_with_brute_force(txns: &[Txn]) -> Result<(), TestCaseError> {
    let text = jsonl_of(txns);
    let events = jsonl::parse(&text).expect("parses");
    let report = check_events(&events, &CheckOptions::default()).expect("checks");
    prop_assert_eq!(report.model, Model::MultiRegister);
    let expected = if oracle(txns) {
        Verdict::Valid
    } else {
        Verdict::Invalid
    };
    prop_assert_eq!(report.verdict(), expected, "{}", text);
    // An invalid verdict always comes with a sentence naming the transaction (and, for a read
    // of an overwritten value or a transaction seen by halves, the transactions it cites).
    if expected == Verdict::Invalid {
        let c = &report.counterexamples[0];
        prop_assert!(
            c.explanation.contains("has no place in any order")
                || c.explanation.contains("a value no transaction writes")
                || (c.explanation.contains(", before the read began at ")
                    && !c.evidence.is_empty())
                || (c.explanation.contains(", so it came first, and it left ")
                    && !c.evidence.is_empty()),
            "{}",
            c.explanation
        );
    }
    Ok(())
}
