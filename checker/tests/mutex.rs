//! The `mutex` model against a brute force of its own (STYLE rule 16): on small random lock
//! histories the verdict is the brute force's, and every sentence of an invalid one is true:
//! the operations it cites, with everything else begun by the end of the operation it names
//! taken as optional, admit no order (from the state it says the lock may have had).

use faultline_checker::check::check_events;
use faultline_checker::history::{Completion, Event, EventKind, EventValue, Events, Function};
use faultline_checker::{CheckOptions, Verdict};
use proptest::prelude::*;

/// One lock operation as the brute force sees it. Failed ones did nothing and are left out.
#[derive(Clone, Copy, Debug)]
struct LockOp {
    index: u64,
    acquire: bool,
    invoke: u64,
    /// `None`: never answered (`info`), so it took effect at some time after `invoke`, or never.
    complete: Option<u64>,
}

/// Whether some order of `ops` from `held` is legal: each op after every op that completed
/// before it was invoked, the lock taken only when free and given back only when held.
fn orderable(ops: &[LockOp], held: bool) -> bool {
    fn go(ops: &[LockOp], done: &mut [bool], held: bool) -> bool {
        if (0..ops.len()).all(|i| done[i] || ops[i].complete.is_none()) {
            return true;
        }
        for i in 0..ops.len() {
            let blocked = (0..ops.len())
                .any(|j| j != i && !done[j] && ops[j].complete.is_some_and(|t| t < ops[i].invoke));
            if done[i] || blocked || ops[i].acquire == held {
                continue;
            }
            done[i] = true;
            let found = go(ops, done, !held);
            done[i] = false;
            if found {
                return true;
            }
        }
        false
    }
    go(ops, &mut vec![false; ops.len()], held)
}

/// Up to 8 lock operations from up to 3 processes, each process's ops one after another; an
/// op answered `info` retires its process. Events get times in history order, so the times of
/// the sentences are history indices.
fn arb_lock_history() -> impl Strategy<Value = (Events, Vec<LockOp>)> {
    let op = (0u64..3, any::<bool>(), 1u64..6, 0u64..4, 0u8..20);
    prop::collection::vec(op, 1..=8).prop_map(|specs| {
        let mut clock = [0u64; 3];
        let mut retired = [false; 3];
        // (time, process, invoke?, function, completion)
        let mut events: Vec<(u64, u64, Option<Completion>, Function)> = Vec::new();
        for (process, acquire, length, gap, fate) in specs {
            let p = process as usize;
            if retired[p] {
                continue;
            }
            let f = if acquire {
                Function::Acquire
            } else {
                Function::Release
            };
            let invoke = clock[p] + gap * 3 + process;
            let complete = invoke + length * 2;
            clock[p] = complete + 1;
            events.push((invoke, process, None, f));
            match fate {
                0..=2 => retired[p] = true,
                3..=5 => events.push((complete, process, Some(Completion::Fail), f)),
                _ => events.push((complete, process, Some(Completion::Ok), f)),
            }
        }
        events.sort_by_key(|&(time, process, ..)| (time, process));
        let mut history = Events::new();
        history.set_untimed();
        let mut ops: Vec<LockOp> = Vec::new();
        let mut open: [Option<usize>; 3] = [None; 3];
        for (i, &(_, process, completion, f)) in events.iter().enumerate() {
            let i = i as u64;
            history.push(Event {
                index: i,
                time: i,
                process,
                kind: completion.map_or(EventKind::Invoke, EventKind::Complete),
                f,
                key: None,
                value: EventValue::Read(None),
                node: None,
                error: None,
                line: i as usize + 1,
            });
            let p = process as usize;
            match completion {
                None => {
                    open[p] = Some(ops.len());
                    ops.push(LockOp {
                        index: i,
                        acquire: f == Function::Acquire,
                        invoke: i,
                        complete: None,
                    });
                }
                Some(Completion::Ok) => ops[open[p].take().expect("invoked")].complete = Some(i),
                Some(_) => {
                    let failed = open[p].take().expect("invoked");
                    ops[failed].index = u64::MAX;
                }
            }
        }
        ops.retain(|o| o.index != u64::MAX);
        (history, ops)
    })
}

/// "… whether the lock was free or held at history index 7": the window's start.
fn window_start(sentence: &str) -> Option<u64> {
    let (_, rest) = sentence.split_once("was free or held at history index ")?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn lock_verdicts_are_the_brute_forces_and_their_sentences_are_true(
        (events, ops) in arb_lock_history(),
    ) {
        let report = check_events(&events, &CheckOptions::default()).expect("a lock history");
        let valid = orderable(&ops, false);
        prop_assert_eq!(report.verdict(), if valid { Verdict::Valid } else { Verdict::Invalid });
        let Some(cx) = report.counterexamples.first() else {
            return Ok(());
        };
        // Small histories are always within the searches' reach: never the bare fallback.
        prop_assert!(!cx.explanation.contains("the longest order"), "{}", cx.explanation);
        let stuck = ops.iter().find(|o| o.index == cx.op.index).expect("the named op");
        let end = stuck.complete.expect("the named op was answered");
        // A count's claim is the count: every op of the named one's kind that had succeeded by
        // its end; any other sentence's claim is what it cites.
        let cited: Vec<u64> = if cx.explanation.contains("had begun by") {
            ops.iter()
                .filter(|o| o.acquire == stuck.acquire && o.complete.is_some_and(|c| c <= end))
                .map(|o| o.index)
                .collect()
        } else {
            cx.evidence.iter().map(|o| o.index).collect()
        };
        let since = window_start(&cx.explanation);
        // What the sentence says admits no order: the cited ops and the named one as they
        // ended, everything else begun by its end optional, from the window on.
        let claim: Vec<LockOp> = ops
            .iter()
            .filter(|o| o.invoke < end)
            .filter(|o| since.is_none_or(|t| o.complete.is_none_or(|c| c >= t)))
            .map(|o| {
                let kept = o.index == stuck.index
                    || (cited.contains(&o.index) && since.is_none_or(|t| o.invoke >= t));
                LockOp { complete: if kept { o.complete } else { None }, ..*o }
            })
            .collect();
        let starts: &[bool] = if since.is_some() { &[false, true] } else { &[false] };
        for &held in starts {
            prop_assert!(
                !orderable(&claim, held),
                "{} — but an order exists from {}: {:?}",
                cx.explanation,
                if held { "held" } else { "free" },
                claim
            );
        }
    }
}

#[test]
fn a_lock_history_in_jsonl_is_checked_under_the_mutex_model() {
    let text = [
        r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"acquire","value":null}"#,
        r#"{"index":1,"time":1,"process":0,"type":"ok","f":"acquire","value":null}"#,
        r#"{"index":2,"time":2,"process":1,"type":"invoke","f":"acquire","value":null}"#,
        r#"{"index":3,"time":3,"process":1,"type":"fail","f":"acquire","error":"already held"}"#,
        r#"{"index":4,"time":4,"process":1,"type":"invoke","f":"acquire","value":null}"#,
        r#"{"index":5,"time":5000000000,"process":1,"type":"ok","f":"acquire","value":null}"#,
    ]
    .join("\n");
    let events = faultline_checker::jsonl::parse(&text).expect("lock JSONL");
    let report = check_events(&events, &CheckOptions::default()).expect("a lock history");
    assert_eq!(report.verdict(), Verdict::Invalid);
    let cx = &report.counterexamples[0];
    assert_eq!(
        cx.explanation,
        "acquire of the lock by process 1 succeeded at 5.000 s, but acquire by process 0 had \
         succeeded at 0.000 s and no release had begun by then, so the lock cannot have been free \
         for both"
    );
    assert_eq!(cx.evidence.len(), 1);
    assert_eq!(cx.op.value, serde_json::Value::Null);
    // A failed acquire did nothing: without the last one the history is valid.
    let valid =
        faultline_checker::jsonl::parse(&text.lines().take(4).collect::<Vec<_>>().join("\n"))
            .expect("lock JSONL");
    let report = check_events(&valid, &CheckOptions::default()).expect("a lock history");
    assert_eq!(report.verdict(), Verdict::Valid);
}
