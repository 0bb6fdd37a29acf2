//! Sentences for the `mutex` model: why a lock operation cannot be placed.
//!
//! The operation named is the one whose return first leaves the lock's operations no order
//! ([`core::lock_stuck`]). Cut the history there: every ok operation that had returned must
//! be in the order, and only operations begun by then can be. From a free lock, acquires and
//! releases alternate, so an order holds as many releases as acquires, or one fewer. When more
//! acquires had succeeded than releases had begun, plus one, or more releases had succeeded
//! than acquires had begun, counting says it all. Otherwise the sentence names the few
//! operations that, with every other one optional, admit no order ([`core::lock_core`]).
//! Failed lock operations did nothing and are not in the key's operations; crashed ones may
//! or may not have taken effect, so they count only where they could help.

use crate::core;
use crate::history::{Completion, Function, KeyHistory, Op, Value};

use super::When;

/// How many operations a sentence names one by one, and how many a count cites beside
/// those that force it.
const CITED: usize = 5;

/// The sentence for `stuck`, an operation on a lock, and the operations it cites.
pub(super) fn sentence<'a>(
    key: &'a KeyHistory,
    stuck: &'a Op,
    on: &str,
    initial: Value,
    when: When,
) -> (String, Vec<&'a Op>) {
    let lock = if key.key.is_empty() {
        "the lock".to_string()
    } else {
        format!("lock {}", key.key)
    };
    let outcome = match stuck.complete_time {
        Some(_) => format!("succeeded at {}", when.completed(stuck)),
        // The search stops at a return, so this is for completeness.
        None => format!("begun at {} and never answered", when.completed(stuck)),
    };
    let head = format!(
        "{} of {lock} by process {}{on} {outcome}",
        stuck.f.name(),
        stuck.process
    );
    // What the lock must be for the op: free for an acquire, held for a release.
    let wanted = if stuck.f == Function::Acquire {
        "free"
    } else {
        "held"
    };
    if let Some((counted, cited)) = by_count(key, stuck, (&lock, wanted), when) {
        return (format!("{head}, but {counted}"), cited);
    }
    match core::lock_core(key, stuck, initial) {
        Some(core) if !core.ops.is_empty() => {
            let named = match core.ops.as_slice() {
                few if few.len() <= CITED => {
                    let each: Vec<String> = few
                        .iter()
                        .map(|o| {
                            let f = o.f.name();
                            format!("{f} by process {} at {}", o.process, when.completed(o))
                        })
                        .collect();
                    super::listed(each.into_iter())
                }
                many => format!(
                    "{} acquires and releases, the last at {},",
                    many.len(),
                    when.completed(many[many.len() - 1])
                ),
            };
            let window = match core.since {
                Some(t) => {
                    let since = when.at(t, None);
                    format!(
                        "that began at {since} or later and had succeeded by the time it ended, whether {lock} was free or held at {since}"
                    )
                }
                None => "that had succeeded by the time it ended".to_string(),
            };
            (
                format!(
                    "{head}, but it cannot be placed in one order with {named} {window}, even if every other acquire and release begun by then took effect at any time after it began, or never"
                ),
                core.ops,
            )
        }
        // Too large or too slow to say more: only what the search found.
        _ => (
            format!(
                "{head}, but the longest order of the acquires and releases of {lock} that the history allows stops short of leaving it {wanted} for this one"
            ),
            Vec::new(),
        ),
    }
}

/// The count that refutes the history cut at `stuck`'s return, if one does, and the
/// operations it cites: the ok ones of `stuck`'s kind that had returned by then and those of
/// the other kind begun by then if both are few, else the last of the former.
fn by_count<'a>(
    key: &'a KeyHistory,
    stuck: &'a Op,
    (lock, wanted): (&str, &str),
    when: When,
) -> Option<(String, Vec<&'a Op>)> {
    let end = stuck.complete_time?;
    let (this, other) = match stuck.f {
        Function::Acquire => (Function::Acquire, Function::Release),
        _ => (Function::Release, Function::Acquire),
    };
    let mut succeeded: Vec<&Op> = key
        .ops
        .iter()
        .filter(|o| o.f == this && o.index != stuck.index && o.completion == Completion::Ok)
        .filter(|o| o.complete_time.is_some_and(|t| t <= end))
        .collect();
    let begun: Vec<&Op> = key
        .ops
        .iter()
        .filter(|o| o.f == other && o.invoke_time < end)
        .collect();
    // With this op, an order would hold `succeeded + 1` of its kind: acquires need that many
    // releases less one, releases that many acquires.
    let needed = succeeded.len() + usize::from(this == Function::Release);
    if begun.len() >= needed {
        return None;
    }
    succeeded.sort_by_key(|o| o.complete_time);
    let had_begun = match begun.len() {
        0 => format!("no {} had begun by then", other.name()),
        1 => format!("only one {} had begun by then", other.name()),
        n => format!("only {n} {}s had begun by then", other.name()),
    };
    let text = match succeeded.as_slice() {
        [] => format!("no acquire had begun by the time it ended, so {lock} was never held for it"),
        [only] => format!(
            "{} by process {} had succeeded at {} and {had_begun}, so {lock} cannot have been {wanted} for both",
            this.name(),
            only.process,
            when.completed(only),
        ),
        many => format!(
            "{} other {}s had succeeded by the time it ended (the last at {}) and {had_begun}, so {lock} cannot have been {wanted} for all of them",
            many.len(),
            this.name(),
            when.completed(many[many.len() - 1]),
        ),
    };
    // Few are cited one by one; of many, only the last, which the sentence names (a count of
    // thousands would flood the timeline, and the count itself is the claim).
    let cited = if succeeded.len() <= CITED && begun.len() <= CITED {
        succeeded.into_iter().chain(begun).collect()
    } else {
        succeeded.last().copied().into_iter().collect()
    };
    Some((text, cited))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{EventValue, Step, Sym};
    use crate::model::{FREE, HELD};

    fn op(index: u64, f: Function, completion: Completion, times: (u64, Option<u64>)) -> Op {
        let (expected, new) = match f {
            Function::Acquire => (FREE, HELD),
            _ => (HELD, FREE),
        };
        Op {
            index,
            complete_index: times.1.map(|_| index + 1),
            process: index,
            completion,
            f,
            value: EventValue::Cas(expected, new),
            invoke_time: times.0,
            complete_time: times.1,
            node: Sym::default(),
            step: Step::Cas { expected, new },
        }
    }

    fn lock(ops: Vec<Op>) -> KeyHistory {
        KeyHistory {
            key: String::new(),
            ops,
        }
    }

    const SECONDS: When = When { timed: true };
    const INDICES: When = When { timed: false };
    const S: u64 = 1_000_000_000;

    #[test]
    fn a_second_acquire_with_no_release_is_refuted_by_counting() {
        let k = lock(vec![
            op(0, Function::Acquire, Completion::Ok, (0, Some(S))),
            op(2, Function::Acquire, Completion::Ok, (2 * S, Some(3 * S))),
            op(4, Function::Release, Completion::Ok, (4 * S, Some(5 * S))),
        ]);
        assert_eq!(
            core::lock_stuck(&k, &k.ops[1], Some(FREE)).map(|o| o.index),
            Some(2)
        );
        let (text, cited) = sentence(&k, &k.ops[1], "", Some(FREE), SECONDS);
        assert_eq!(
            text,
            "acquire of the lock by process 2 succeeded at 3.000 s, but acquire by process 0 had \
             succeeded at 1.000 s and no release had begun by then, so the lock cannot have been \
             free for both"
        );
        assert_eq!(cited, vec![&k.ops[0]]);
    }

    #[test]
    fn a_release_of_a_lock_no_one_could_have_taken_is_refuted() {
        let k = lock(vec![
            op(0, Function::Release, Completion::Ok, (0, Some(10))),
            op(2, Function::Acquire, Completion::Info, (20, None)),
        ]);
        let (text, cited) = sentence(&k, &k.ops[0], " on n1", Some(FREE), INDICES);
        assert_eq!(
            text,
            "release of the lock by process 0 on n1 succeeded at history index 1, but no acquire \
             had begun by the time it ended, so the lock was never held for it"
        );
        assert!(cited.is_empty());
    }

    #[test]
    fn acquires_that_end_together_are_counted_and_a_named_key_is_a_lock() {
        // Three acquires overlap the last one; a single release began before it ended.
        let mut ops = vec![op(0, Function::Release, Completion::Ok, (0, Some(100)))];
        for i in 1..=3u64 {
            ops.push(op(
                2 * i,
                Function::Acquire,
                Completion::Ok,
                (10 * i, Some(60 + i)),
            ));
        }
        ops.push(op(8, Function::Acquire, Completion::Ok, (50, Some(70))));
        let k = KeyHistory {
            key: "l1".to_string(),
            ops,
        };
        let (text, cited) = sentence(&k, &k.ops[4], "", Some(FREE), INDICES);
        assert_eq!(
            text,
            "acquire of lock l1 by process 8 succeeded at history index 9, but 3 other acquires \
             had succeeded by the time it ended (the last at history index 7) and only one \
             release had begun by then, so lock l1 cannot have been free for all of them"
        );
        assert_eq!(cited.len(), 4);
    }

    #[test]
    fn the_operation_named_is_the_first_that_leaves_no_order_not_the_searchs_dead_end() {
        // An order of everything up to the third acquire's return exists (acquire by 2,
        // release by 1, acquire by 5, the first acquire still running); the first acquire's
        // return leaves none, and it cannot be placed with the other two acquires, the one
        // release optional.
        let k = lock(vec![
            op(0, Function::Acquire, Completion::Ok, (0, Some(7))),
            op(1, Function::Release, Completion::Info, (1, None)),
            op(2, Function::Acquire, Completion::Ok, (2, Some(4))),
            op(5, Function::Acquire, Completion::Ok, (5, Some(6))),
        ]);
        // The search's dead end is the last acquire; the first one's return is where it breaks.
        let stuck = core::lock_stuck(&k, &k.ops[3], Some(FREE)).expect("refuted");
        assert_eq!(stuck.index, 0);
        let (text, cited) = sentence(&k, stuck, "", Some(FREE), INDICES);
        assert_eq!(
            text,
            "acquire of the lock by process 0 succeeded at history index 1, but 2 other acquires \
             had succeeded by the time it ended (the last at history index 6) and only one \
             release had begun by then, so the lock cannot have been free for all of them"
        );
        assert_eq!(cited.len(), 3);
    }

    #[test]
    fn a_release_that_ended_before_a_window_cannot_free_the_lock_in_it() {
        // Counting allows one release for the two acquires; its times do not, as it ended
        // before the first of them began.
        let k = lock(vec![
            op(0, Function::Acquire, Completion::Info, (0, None)),
            op(1, Function::Release, Completion::Ok, (1, Some(2))),
            op(3, Function::Acquire, Completion::Ok, (3, Some(4))),
            op(5, Function::Acquire, Completion::Ok, (5, Some(6))),
        ]);
        // A wrong guess is bisected away.
        let stuck = core::lock_stuck(&k, &k.ops[0], Some(FREE)).expect("refuted");
        assert_eq!(stuck.index, 5);
        let (text, cited) = sentence(&k, stuck, "", Some(FREE), INDICES);
        assert_eq!(
            text,
            "acquire of the lock by process 5 succeeded at history index 6, but it cannot be \
             placed in one order with acquire by process 3 at history index 4 that began at \
             history index 3 or later and had succeeded by the time it ended, whether the lock \
             was free or held at history index 3, even if every other acquire and release \
             begun by then took effect at any time after it began, or never"
        );
        assert_eq!(cited, vec![&k.ops[2]]);
    }
}
