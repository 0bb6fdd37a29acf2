//! A transaction that saw half of another: refuted before the search.
//!
//! A transaction takes effect at one instant, so all its outside reads see the registers as
//! one and the same prefix left them. When one read returned a value that only transaction
//! `writer` leaves in that register, the reader comes after `writer`; if `writer` also left
//! another register at a value other than the one a second read returned, that value must
//! have been put back by some transaction between `writer` and the reader. When every
//! transaction that leaves it there ended before `writer` began (none crashed), none can be,
//! and no order satisfies both reads: the reader saw `writer`'s write to one register and
//! missed its write to the other.
//!
//! The overwritten-read rule (`overwritten`) cannot see this where `writer` is still running
//! when the reader begins, and the search can take exponentially long to exhaust the orders
//! when crashed transactions and repeated values abound: this is the torn read of a
//! transactional store that applies a transaction's writes one register at a time.

use crate::counterexample::{Counterexample, show};
use crate::history::{KeyHistory, Op, Strings, Value};

use super::{At, Times, Transactions, Written, outside_reads, refuted_before_search};

/// Two reads of one transaction that no order satisfies together.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HalfSeen {
    /// The transaction whose reads conflict.
    pub reader: usize,
    /// The read that places the reader after `writer`: register and value.
    pub seen: (usize, Value),
    /// The only transaction (other than the reader) that leaves `seen`'s value there.
    pub writer: usize,
    /// The read that `writer` rules out: register and value returned.
    pub missed: (usize, Value),
    /// What `writer` left in `missed`'s register.
    pub left: Value,
    /// Of the transactions that leave `missed`'s value there, the last to complete (all
    /// ended before `writer` began); `None` when none does.
    pub last_source: Option<usize>,
}

/// The first reader (by completion) that [`HalfSeen`] refutes, if any.
pub(crate) fn half_seen(
    ops: &[Op],
    txns: &Transactions,
    written: &Written,
    initial: Value,
) -> Option<HalfSeen> {
    let call = |op: usize| (ops[op].invoke_time, ops[op].index);
    let ret = |op: usize| ops[op].complete_time.zip(ops[op].complete_index);
    let Written { lasts, sources } = written;
    let mut found: Option<(At, HalfSeen)> = None;
    for (reader, micros) in txns.micro_ops.iter().enumerate() {
        let Some(done) = ret(reader) else { continue };
        if found.is_some_and(|(first, _)| first <= done) {
            continue;
        }
        let reads = outside_reads(micros);
        if reads.len() < 2 {
            continue;
        }
        'seen: for &seen in &reads {
            // The initial value needs no writer: the reader may precede them all.
            if seen.1 == initial {
                continue;
            }
            let mut writers = sources
                .writers(seen)
                .iter()
                .map(|&(_, _, op)| op)
                .filter(|&op| op != reader);
            let (Some(writer), None) = (writers.next(), writers.next()) else {
                continue;
            };
            // A writer begun after the reader ended cannot precede it: the search says so.
            if call(writer) >= done {
                continue;
            }
            for &missed in &reads {
                let Some(&(_, left)) = lasts[writer].iter().find(|&&(r, _)| r == missed.0) else {
                    continue;
                };
                if missed.0 == seen.0 || left == missed.1 {
                    continue;
                }
                // Every source of the missed value must have ended before `writer` began.
                let (latest, crashed) = sources.begun_before(missed, (u64::MAX, u64::MAX), reader);
                if crashed || latest.is_some_and(|(t, _)| t >= call(writer)) {
                    continue;
                }
                let refuted = HalfSeen {
                    reader,
                    seen,
                    writer,
                    missed,
                    left,
                    last_source: latest.map(|(_, op)| op),
                };
                found = Some((done, refuted));
                break 'seen;
            }
        }
    }
    found.map(|(_, refuted)| refuted)
}

/// The counterexample of a [`HalfSeen`] reader: the reader, with the writer it followed and
/// the last transaction that could have left the missed value as the evidence.
pub fn explain_half_seen(
    key: &KeyHistory,
    txns: &Transactions,
    refuted: &HalfSeen,
    strings: &Strings,
    timed: bool,
) -> Counterexample {
    let ops = &key.ops;
    let times = Times::of(key, timed);
    let (reader, writer) = (refuted.reader, refuted.writer);
    let name = |register: usize| &txns.names[register];
    let (seen, missed) = (refuted.seen, refuted.missed);
    let missed_source = match refuted.last_source {
        Some(source) => format!(
            "the last other transaction to leave {} = {} (by process {}) ended at {}, before process {}'s began at {}",
            name(missed.0),
            show(missed.1),
            ops[source].process,
            times.ended(source),
            ops[writer].process,
            times.began(writer)
        ),
        None => format!(
            "no other transaction leaves {} = {}",
            name(missed.0),
            show(missed.1)
        ),
    };
    let explanation = format!(
        "transaction by process {} that ended at {} read {} = {} and {} = {}, but only the transaction by process {} leaves {} = {}, so it came first, and it left {} = {}; {missed_source}",
        ops[reader].process,
        times.ended(reader),
        name(seen.0),
        show(seen.1),
        name(missed.0),
        show(missed.1),
        ops[writer].process,
        name(seen.0),
        show(seen.1),
        name(missed.0),
        show(refuted.left),
    );
    let cited: Vec<usize> = [writer].into_iter().chain(refuted.last_source).collect();
    refuted_before_search(key, strings, reader, &cited, explanation)
}
