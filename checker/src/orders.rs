//! How the last search of a key with crashed writes uses the two [`WriterOrder`]s, each exact
//! and each much faster than the other on some histories: raced, on a thread no other key of
//! the history needs any more, or in turns on the key's own thread.
//!
//! Which order proves a key linearizable can vary with timing (and with it the engine named);
//! the verdict cannot. A refutation comes from the usual order whenever it finishes within the
//! budget, so a counterexample does not depend on which order was quicker.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::search::{self, Budget, Outcome, WriterOrder};

/// The engine names of the two orders in `results.json`.
const USUAL: &str = "search";
const COMPLETED_FIRST: &str = "search, completed writes first";

/// How [`crate::check::decide`] runs the two orders.
#[derive(Clone, Copy)]
pub enum Orders<'a> {
    /// In turns on the caller's thread.
    InTurns,
    /// Raced, completed writes first on a thread of its own.
    Raced,
    /// Raced when one of `threads` is free for good, in turns otherwise.
    RacedWhenFree(&'a Threads),
}

/// The threads that check one history's keys, counted so a key's race borrows only a thread
/// that no key waits for: then no more searches run at once than there are threads, each
/// within its own memory budget, as without races.
pub struct Threads {
    total: usize,
    busy: AtomicUsize,
    unstarted: AtomicUsize,
}

/// One thread counted busy until this is dropped.
pub(crate) struct Busy<'a>(&'a AtomicUsize);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Threads {
    /// `total` threads for `keys` keys, none started.
    pub(crate) fn new(total: usize, keys: usize) -> Threads {
        Threads {
            total,
            busy: AtomicUsize::new(0),
            unstarted: AtomicUsize::new(keys),
        }
    }

    /// A key's check begins on one of the threads; it holds the thread until it drops this.
    pub(crate) fn start_key(&self) -> Busy<'_> {
        // Saturating: a caller that starts more keys than it announced only loses races.
        let _ = self
            .unstarted
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        self.busy.fetch_add(1, Ordering::SeqCst);
        Busy(&self.busy)
    }

    /// A thread for a race, if one is free for good: every key has started, so none will
    /// want it later, and fewer threads are busy than there are.
    pub(crate) fn spare(&self) -> Option<Busy<'_>> {
        if self.unstarted.load(Ordering::SeqCst) > 0 {
            return None;
        }
        self.busy
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |busy| {
                (busy < self.total).then_some(busy + 1)
            })
            .ok()?;
        Some(Busy(&self.busy))
    }
}

/// Run `search` in both orders as `orders` says, within `budget`; the outcome and the engine
/// that decided it.
pub(crate) fn run(
    search: &(dyn Fn(WriterOrder, Budget<'_>) -> Outcome + Sync),
    budget: Budget<'_>,
    orders: Orders<'_>,
) -> (Outcome, &'static str) {
    match orders {
        Orders::InTurns => in_turns(search, budget),
        Orders::Raced => raced(search, budget),
        Orders::RacedWhenFree(threads) => match threads.spare() {
            Some(_thread) => raced(search, budget),
            None => in_turns(search, budget),
        },
    }
}

fn decided(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Linearizable | Outcome::NotLinearizable(_))
}

/// How long the usual order runs alone before a race: most histories are decided well within
/// it (the slowest of Porcupine's etcd logs in 3 ms), and a thread for them would cost more
/// than their search (their 102 searches took three times as long, raced from the start).
const HEAD_START: Duration = Duration::from_millis(100);

/// The usual order alone for a [`HEAD_START`], then both orders at once for the rest of the
/// budget, completed writes first on a new thread; the first to decide stops the other, except
/// that a refutation by completed writes first lets the usual order go on to its own. The
/// usual order's answer is taken when both have one.
fn raced(
    search: &(dyn Fn(WriterOrder, Budget<'_>) -> Outcome + Sync),
    budget: Budget<'_>,
) -> (Outcome, &'static str) {
    let head_start = Instant::now() + HEAD_START;
    let alone = search(
        WriterOrder::EarliestCalled,
        Budget {
            deadline: Some(budget.deadline.map_or(head_start, |d| d.min(head_start))),
            ..budget
        },
    );
    match &alone {
        Outcome::Unknown(why) if why != search::CANCELLED => {}
        _ => return (alone, USUAL),
    }
    let rival_decided = AtomicBool::new(false);
    let run = |order: WriterOrder| {
        let outcome = search(
            order,
            Budget {
                rival_decided: Some(&rival_decided),
                ..budget
            },
        );
        // A refutation by completed writes first does not stop the usual order: the
        // counterexample (its prefix, the op shown) then comes from the usual order, as in
        // turns and from one run to the next, unless that order runs out of budget.
        let stops_the_other = match order {
            WriterOrder::EarliestCalled => decided(&outcome),
            WriterOrder::CompletedFirst => outcome == Outcome::Linearizable,
        };
        if stops_the_other {
            rival_decided.store(true, Ordering::Relaxed);
        }
        outcome
    };
    let outcomes = std::thread::scope(|scope| {
        let rival = std::thread::Builder::new()
            .name("checker-race".into())
            .spawn_scoped(scope, || run(WriterOrder::CompletedFirst))
            .ok()?;
        let usual = run(WriterOrder::EarliestCalled);
        let completed_first = rival
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        Some((usual, completed_first))
    });
    // No thread to be had (the system refused one): the turns need none.
    let Some((usual, completed_first)) = outcomes else {
        return in_turns(search, budget);
    };
    match (usual, completed_first) {
        (usual, _) if decided(&usual) => (usual, USUAL),
        (_, completed_first) if decided(&completed_first) => (completed_first, COMPLETED_FIRST),
        (Outcome::Unknown(usual), Outcome::Unknown(completed_first))
            if usual != search::CANCELLED =>
        {
            (
                Outcome::Unknown(format!(
                    "{usual}; completed writes first, raced beside it: {completed_first}"
                )),
                USUAL,
            )
        }
        (usual, _) => (usual, USUAL),
    }
}

/// Share a budget with a deadline between the two orders: the usual one for the first
/// twelfth of the time (5 s of the default 60, enough for most histories measured), then
/// completed writes first for a sixth, then the usual order again, afresh, for the rest.
/// Without a deadline, the usual order alone.
fn in_turns(
    search: &(dyn Fn(WriterOrder, Budget<'_>) -> Outcome + Sync),
    budget: Budget<'_>,
) -> (Outcome, &'static str) {
    let Some(deadline) = budget.deadline else {
        return (search(WriterOrder::EarliestCalled, budget), USUAL);
    };
    let start = Instant::now();
    let total = deadline.saturating_duration_since(start);
    let turns = [
        (WriterOrder::EarliestCalled, start + total / 12, USUAL),
        (
            WriterOrder::CompletedFirst,
            start + total / 12 + total / 6,
            COMPLETED_FIRST,
        ),
        (WriterOrder::EarliestCalled, deadline, USUAL),
    ];
    let mut outcome = Outcome::Unknown(String::new());
    for (order, until, engine) in turns {
        outcome = search(
            order,
            Budget {
                deadline: Some(until),
                ..budget
            },
        );
        match &outcome {
            Outcome::Unknown(why) if why != search::CANCELLED => {}
            _ => return (outcome, engine),
        }
    }
    match outcome {
        Outcome::Unknown(why) => (
            Outcome::Unknown(format!(
                "{why}, in the last of three turns (the usual order, completed writes first, \
                 the usual order again)"
            )),
            USUAL,
        ),
        decided => (decided, USUAL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn out_of_time() -> Outcome {
        Outcome::Unknown("time limit reached".into())
    }

    /// The orders take turns: a short first turn, completed writes first for a longer one,
    /// then the usual order for what is left; a decided turn ends it, and so does another
    /// key's violation.
    #[test]
    fn the_writer_orders_take_turns_until_one_decides() {
        let total = Duration::from_secs(120);
        let deadline = Instant::now() + total;
        let budget = Budget {
            deadline: Some(deadline),
            ..Budget::memory_only(1 << 20)
        };
        let run = |answers: Vec<Outcome>| {
            let answers = Mutex::new(answers.into_iter());
            let turns = Mutex::new(Vec::new());
            let (outcome, engine) = in_turns(
                &|order, budget| {
                    let until = budget.deadline.expect("every turn has a deadline");
                    turns.lock().expect("one thread").push((order, until));
                    let mut answers = answers.lock().expect("one thread");
                    answers.next().expect("no more turns than answers")
                },
                budget,
            );
            (outcome, engine, turns.into_inner().expect("one thread"))
        };

        let (outcome, engine, turns) = run(vec![out_of_time(), Outcome::Linearizable]);
        assert_eq!((outcome, engine), (Outcome::Linearizable, COMPLETED_FIRST));
        assert_eq!(turns[0].0, WriterOrder::EarliestCalled);
        assert_eq!(turns[1].0, WriterOrder::CompletedFirst);
        // The first turn takes a twelfth of the time, the second a sixth, the last the rest
        // (three quarters): compared as spans, as the turns start a moment after `deadline`
        // was set.
        let second = turns[1].1 - turns[0].1;
        let rest = deadline - turns[1].1;
        assert!(second > Duration::from_secs(19) && second <= Duration::from_secs(20));
        assert!(
            rest.as_secs_f64() / second.as_secs_f64() - 4.5 < 1e-6,
            "{second:?} {rest:?}"
        );
        let first_started = turns[0].1 - second / 2;
        assert!(first_started + Duration::from_millis(1) >= deadline - total);
        assert!(first_started <= Instant::now());

        let (outcome, engine, turns) = run(vec![out_of_time(), out_of_time(), out_of_time()]);
        let Outcome::Unknown(why) = outcome else {
            panic!("three turns out of time is unknown")
        };
        assert!(
            why.starts_with("time limit reached, in the last of three turns"),
            "{why}"
        );
        assert_eq!(engine, USUAL);
        assert_eq!(turns.len(), 3);
        assert_eq!(turns[2], (WriterOrder::EarliestCalled, deadline));

        let cancelled = Outcome::Unknown(search::CANCELLED.into());
        let (outcome, _, turns) = run(vec![cancelled.clone()]);
        assert_eq!((outcome, turns.len()), (cancelled, 1));

        let (outcome, engine, turns) = run(vec![Outcome::Linearizable]);
        assert_eq!(
            (outcome, engine, turns.len()),
            (Outcome::Linearizable, USUAL, 1)
        );

        // Without a deadline there is nothing to share: the usual order alone.
        let orders = Mutex::new(Vec::new());
        let (outcome, _) = in_turns(
            &|order, _| {
                orders.lock().expect("one thread").push(order);
                out_of_time()
            },
            Budget::memory_only(1 << 20),
        );
        assert_eq!(
            (outcome, orders.into_inner().expect("one thread")),
            (out_of_time(), vec![WriterOrder::EarliestCalled])
        );
    }

    /// A search that answers `answer` in `order` and otherwise runs until its rival decides
    /// or its deadline passes (or 10 s, which fails the test), saying what it saw.
    fn stand_in(
        order: WriterOrder,
        answer: Outcome,
    ) -> impl Fn(WriterOrder, Budget<'_>) -> Outcome + Sync {
        move |asked, budget| {
            if asked == order {
                return answer.clone();
            }
            let given_up = Instant::now() + Duration::from_secs(10);
            let until = budget.deadline.map_or(given_up, |d| d.min(given_up));
            while Instant::now() < until {
                if budget
                    .rival_decided
                    .is_some_and(|d| d.load(Ordering::Relaxed))
                {
                    return Outcome::Unknown(search::RIVAL_DECIDED.into());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            out_of_time()
        }
    }

    /// In a race the usual order runs alone for a head start, then the first order to decide
    /// stops the other and names the engine; the other order runs at the same time, not
    /// after it.
    #[test]
    fn a_race_is_won_by_whichever_order_decides_and_stops_the_other() {
        let budget = Budget {
            deadline: Some(Instant::now() + Duration::from_secs(60)),
            ..Budget::memory_only(1 << 20)
        };
        let started = Instant::now();
        let calls = Mutex::new(Vec::new());
        let (outcome, engine) = raced(
            &|order, budget| {
                let until = budget.deadline.expect("a head start has a deadline");
                calls.lock().expect("one thread").push((order, until));
                Outcome::Linearizable
            },
            budget,
        );
        assert_eq!((outcome, engine), (Outcome::Linearizable, USUAL));
        let calls = calls.into_inner().expect("one thread");
        assert_eq!(calls.len(), 1, "decided in the head start: no race");
        assert!(calls[0].1 <= started + HEAD_START + Duration::from_millis(50));
        let usual = stand_in(WriterOrder::EarliestCalled, Outcome::Linearizable);
        assert_eq!(raced(&usual, budget), (Outcome::Linearizable, USUAL));
        let refuted = Outcome::NotLinearizable(search::Failure {
            prefix: Vec::new(),
            stuck: 3,
        });
        let completed_first = stand_in(WriterOrder::CompletedFirst, Outcome::Linearizable);
        assert_eq!(
            raced(&completed_first, budget),
            (Outcome::Linearizable, COMPLETED_FIRST)
        );
        // Each loser stopped on its rival's answer, long before its own 10 s.
        assert!(started.elapsed() < Duration::from_secs(5));

        // A refutation by completed writes first leaves the usual order running: its own
        // counterexample is the one taken, and the other only if it runs out of time.
        let usual_failure = Outcome::NotLinearizable(search::Failure {
            prefix: vec![(0, Some(1))],
            stuck: 1,
        });
        let (outcome, engine) = raced(
            &|order, budget| match order {
                WriterOrder::CompletedFirst => refuted.clone(),
                WriterOrder::EarliestCalled if budget.rival_decided.is_none() => out_of_time(),
                WriterOrder::EarliestCalled => {
                    std::thread::sleep(Duration::from_millis(200));
                    if budget
                        .rival_decided
                        .is_some_and(|d| d.load(Ordering::Relaxed))
                    {
                        Outcome::Unknown(search::RIVAL_DECIDED.into())
                    } else {
                        usual_failure.clone()
                    }
                }
            },
            budget,
        );
        assert_eq!((outcome, engine), (usual_failure, USUAL));
        let short = Budget {
            deadline: Some(Instant::now() + Duration::from_millis(500)),
            ..budget
        };
        let refuted_first = stand_in(WriterOrder::CompletedFirst, refuted.clone());
        assert_eq!(raced(&refuted_first, short), (refuted, COMPLETED_FIRST));

        // Both out of budget: the reason says so for each.
        let (outcome, engine) = raced(&|_, _| out_of_time(), budget);
        assert_eq!(
            (outcome, engine),
            (
                Outcome::Unknown(
                    "time limit reached; completed writes first, raced beside it: time limit reached"
                        .into()
                ),
                USUAL
            )
        );
        // Another key's violation is the whole reason, as in turns.
        let cancelled = Outcome::Unknown(search::CANCELLED.into());
        let (outcome, _) = raced(&|_, _| cancelled.clone(), budget);
        assert_eq!(outcome, cancelled);

        // After the head start the orders run side by side: each waits until it sees the
        // other running (the head start alone sees none, and runs out of time).
        let running = AtomicUsize::new(0);
        let short = Budget {
            deadline: Some(Instant::now() + Duration::from_secs(5)),
            ..budget
        };
        let (outcome, _) = raced(
            &|_, budget| {
                running.fetch_add(1, Ordering::SeqCst);
                let until = budget.deadline.expect("raced with a deadline");
                while running.load(Ordering::SeqCst) < 2 && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let both = running.load(Ordering::SeqCst) == 2;
                // Not decremented when both ran: the slower of the two must still see two.
                if both {
                    Outcome::Linearizable
                } else {
                    running.fetch_sub(1, Ordering::SeqCst);
                    out_of_time()
                }
            },
            short,
        );
        assert_eq!(outcome, Outcome::Linearizable);
    }

    /// A race borrows a thread only once every key has started and while one is idle, and
    /// gives it back when it ends.
    #[test]
    fn a_race_gets_a_thread_only_when_no_key_waits_for_one() {
        let threads = Threads::new(2, 3);
        let first = threads.start_key();
        assert!(threads.spare().is_none(), "two keys still wait");
        let second = threads.start_key();
        drop(first);
        assert!(threads.spare().is_none(), "a key still waits");
        let third = threads.start_key();
        assert!(threads.spare().is_none(), "both threads are busy");
        drop(second);
        let lent = threads
            .spare()
            .expect("every key started and a thread is idle");
        assert!(threads.spare().is_none(), "the idle thread is lent");
        drop(lent);
        drop(third);
        assert!(threads.spare().is_some());
        // Orders::RacedWhenFree falls back to turns when no thread is free.
        let one = Threads::new(1, 1);
        let _only = one.start_key();
        let orders = Mutex::new(Vec::new());
        let (outcome, _) = run(
            &|order, _| {
                orders.lock().expect("one thread").push(order);
                Outcome::Linearizable
            },
            Budget::memory_only(1 << 20),
            Orders::RacedWhenFree(&one),
        );
        assert_eq!(outcome, Outcome::Linearizable);
        assert_eq!(
            orders.into_inner().expect("one thread"),
            vec![WriterOrder::EarliestCalled]
        );
    }
}
