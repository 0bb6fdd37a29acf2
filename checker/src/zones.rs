//! A polynomial check for histories whose written values are unique, extending the zones of
//! Gibbons & Korach ("Testing shared memories", SIAM J. Comput. 1997, the read-mapped
//! single-register case) from reads and writes to compare-and-set chains.
//!
//! With unique values every read names the write it saw, so each value's producer (its write,
//! or the compare-and-set that installed it) and its observers (reads of it, the CAS that
//! replaced it) form a *cluster* that must hold the register over one interval. A successful
//! `cas [a b]` is the last observer of `a` and the producer of `b`, so `b` immediately follows
//! `a`: values form *chains* (a write's value, then the values CASes built on it), and a
//! linearization is the chains laid end to end, the initial value's first. Everything below is
//! O(n log n) in the number of operations, whatever the concurrency.
//!
//! **Refuted** (each a necessary condition of linearizability, so the verdict is exact):
//! 1. an observer of a value nobody wrote, two successful CASes replacing the same value, or
//!    chains that loop back on themselves;
//! 2. a chain whose operations cannot be placed in its own order: placing each as early as
//!    its invocation and its predecessors allow, one would have to come after its completion
//!    (for a single write and its reads: a read that ended before its write began);
//! 3. the initial value's chain not able to come first: one of its operations began after an
//!    operation of another chain ended;
//! 4. two *forward zones* intersecting — a chain whose earliest completion comes before its
//!    latest invocation holds the register from that completion to that invocation — or a
//!    *backward zone* (where a chain whose operations all overlap could take effect at one
//!    instant) lying inside another chain's forward zone;
//! 5. a compare-and-set that failed on a mismatch with `a` while `a`'s forward zone covers its
//!    whole interval.
//!
//! **Proved linearizable** by construction: the chains ordered by their zones (forward zones
//! in order, each backward chain at the first instant of its zone outside every forward
//! zone), every operation placed as early as the order allows, and every mismatched CAS given
//! an instant inside its interval when the register held something else. The construction is
//! a witness, checked as it is built, so a "linearizable" answer is exact too.
//!
//! When neither happens (the construction fails where the conditions cannot refute, or the
//! precondition does not hold: open operations, a value written twice or the initial value
//! written), [`check`] answers `None` and the search decides. For reads and writes alone the
//! conditions are Gibbons & Korach's, and their theorem says the construction always succeeds
//! when no condition refutes; the tests cross-check both engines against the brute force.
//!
//! Times are positions in the same event order the search uses (time, then history index,
//! returns before calls at a tie), so the two engines agree on ties.

use crate::fast_hash::IntMap;
use crate::history::{Op, Step, Value};

/// The zone check's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneVerdict {
    Linearizable,
    /// Not linearizable; `culprit` (a position in the ops) is the operation that cannot be
    /// placed: a read that ended before its write began, an operation of a value that had to
    /// hold while another value did, a mismatched CAS that could only have seen the value it
    /// says it did not.
    NotLinearizable {
        culprit: usize,
    },
}

const NONE: u32 = u32::MAX;

/// One value's cluster: its producer (none for the initial value), reads, and replacing CAS.
#[derive(Clone, Copy)]
struct Cluster {
    producer: u32,
    consumer: u32,
    /// Range of this value's reads in the sorted read list.
    reads: (u32, u32),
    chain: u32,
}

/// A chain of values: the initial value or a write's, then the values CASes built on it.
#[derive(Clone, Copy)]
struct Chain {
    head: u32,
    min_ret: u32,
    max_call: u32,
    /// The operation with the latest invocation (culprit of zone conflicts).
    max_call_op: u32,
}

/// The verdict, or `None` when the check cannot decide (see the module docs).
pub fn check(ops: &[Op], initial: Value) -> Option<ZoneVerdict> {
    let n = ops.len();
    if n >= (NONE / 4) as usize {
        return None;
    }
    let (call, ret) = positions(ops)?;
    let refute = |culprit: usize| Some(ZoneVerdict::NotLinearizable { culprit });

    // Values: id 0 is the initial value; each written value gets the next id.
    let mut value_id: IntMap<Value, u32> = IntMap::default();
    value_id.insert(initial, 0);
    let mut clusters = vec![Cluster {
        producer: NONE,
        consumer: NONE,
        reads: (0, 0),
        chain: NONE,
    }];
    for (i, op) in ops.iter().enumerate() {
        match op.step {
            Step::Write(v) | Step::Cas { new: v, .. } => {
                if value_id.insert(Some(v), clusters.len() as u32).is_some() {
                    return None; // written twice, or the initial value written: not unique
                }
                clusters.push(Cluster {
                    producer: i as u32,
                    consumer: NONE,
                    reads: (0, 0),
                    chain: NONE,
                });
            }
            Step::Read(_) | Step::CasMismatch { .. } => {}
            _ => return None,
        }
    }
    // Observers: reads (sorted per value by invocation) and the CAS that replaces a value.
    let mut reads: Vec<(u32, u32)> = Vec::new(); // (value id, op)
    let mut mismatches: Vec<(u32, u32)> = Vec::new(); // (value id, op)
    for (i, op) in ops.iter().enumerate() {
        let (seen, is_read) = match op.step {
            Step::Read(v) => (v, true),
            Step::Cas { expected, .. } => (Some(expected), false),
            Step::CasMismatch { expected } => {
                // Expecting a value nobody wrote: the register never held it, so it holds.
                if let Some(&id) = value_id.get(&Some(expected)) {
                    mismatches.push((id, i as u32));
                }
                continue;
            }
            _ => continue,
        };
        let Some(&id) = value_id.get(&seen) else {
            return refute(i); // observes a value nobody wrote
        };
        if is_read {
            reads.push((id, i as u32));
        } else {
            let cluster = &mut clusters[id as usize];
            if cluster.consumer != NONE {
                // Two successful CASes replaced the same value, which is held only once.
                let later = if call[i] > call[cluster.consumer as usize] {
                    i
                } else {
                    cluster.consumer as usize
                };
                return refute(later);
            }
            cluster.consumer = i as u32;
        }
    }
    reads.sort_unstable_by_key(|&(id, op)| (id, call[op as usize]));
    let mut at = 0;
    while at < reads.len() {
        let id = reads[at].0;
        let end = at + reads[at..].iter().take_while(|r| r.0 == id).count();
        clusters[id as usize].reads = (at as u32, end as u32);
        at = end;
    }

    // Chains, from the initial value and from every write; a CAS-installed value not reached
    // from either sits on a loop of CASes and can never be installed.
    let mut chains: Vec<Chain> = Vec::new();
    let mut order: Vec<u32> = Vec::with_capacity(n); // every op, chain by chain, in chain order
    let mut chain_ops: Vec<(u32, u32)> = Vec::new(); // range of each chain in `order`
    for head in 0..clusters.len() {
        let producer = clusters[head].producer;
        let is_head = head == 0 || matches!(ops[producer as usize].step, Step::Write(_));
        if !is_head {
            continue;
        }
        let chain = chains.len() as u32;
        let start = order.len();
        let mut v = head as u32;
        if producer != NONE {
            order.push(producer);
        }
        loop {
            let cluster = &mut clusters[v as usize];
            cluster.chain = chain;
            let (from, to) = cluster.reads;
            let consumer = cluster.consumer;
            order.extend(reads[from as usize..to as usize].iter().map(|r| r.1));
            if consumer == NONE {
                break;
            }
            order.push(consumer);
            let Step::Cas { new, .. } = ops[consumer as usize].step else {
                return None;
            };
            v = value_id[&Some(new)];
        }
        let members = &order[start..];
        let (min_ret, max_call, max_call_op) =
            members
                .iter()
                .fold((u32::MAX, 0, NONE), |(lo, hi, hi_op), &op| {
                    let (c, r) = (call[op as usize], ret[op as usize]);
                    let (hi, hi_op) = if c > hi { (c, op) } else { (hi, hi_op) };
                    (lo.min(r), hi, hi_op)
                });
        chains.push(Chain {
            head: head as u32,
            // The initial value holds from the start.
            min_ret: if head == 0 { 0 } else { min_ret },
            max_call,
            max_call_op,
        });
        chain_ops.push((start as u32, order.len() as u32));
    }
    if let Some(looped) = clusters.iter().find(|c| c.chain == NONE) {
        return refute(looped.producer as usize);
    }

    // Condition 2: each chain in its own order, every op as early as possible.
    for &(from, to) in &chain_ops {
        let mut t = 0;
        for &op in &order[from as usize..to as usize] {
            t = t.max(call[op as usize]);
            if t >= ret[op as usize] {
                return refute(op as usize);
            }
        }
    }
    // Condition 3: the initial value's chain comes first.
    let first = chains[0];
    if chains[1..].iter().any(|x| x.min_ret < first.max_call) {
        return refute(first.max_call_op as usize);
    }
    // Condition 4: forward zones disjoint; no backward zone inside one.
    let mut forward: Vec<(u32, u32, u32)> = chains
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, c)| c.min_ret < c.max_call)
        .map(|(i, c)| (c.min_ret, c.max_call, i as u32))
        .collect();
    forward.sort_unstable();
    if let Some(w) = forward.windows(2).find(|w| w[1].0 < w[0].1) {
        // The earlier zone's value was still needed (by the op that starts its end) after
        // the later zone's value had to be in place.
        return refute(chains[w[0].2 as usize].max_call_op as usize);
    }
    // The forward zone holding position `p` strictly inside, if any.
    let zone_around = |p: u32| {
        let i = forward.partition_point(|&(a, _, _)| a < p);
        (i > 0 && p < forward[i - 1].1).then(|| forward[i - 1])
    };
    let mut keys: Vec<(u32, u32)> = Vec::with_capacity(chains.len());
    for (i, c) in chains.iter().enumerate().skip(1) {
        if c.min_ret < c.max_call {
            keys.push((c.min_ret, i as u32));
            continue;
        }
        // Backward: the first instant of [max_call, min_ret] outside every forward zone.
        let mut p = c.max_call;
        if let Some((_, end, owner)) = zone_around(p) {
            if end >= c.min_ret {
                return refute(chains[owner as usize].max_call_op as usize);
            }
            p = end;
        }
        keys.push((p, i as u32));
    }
    // Condition 5: a mismatch inside the forward zone of the value it says was not there.
    let value_zone = |id: u32| -> (u32, u32) {
        let c = clusters[id as usize];
        let mut lo = if id == 0 { 0 } else { u32::MAX };
        let mut hi = 0;
        let mut add = |op: u32| {
            if op != NONE {
                lo = lo.min(ret[op as usize]);
                hi = hi.max(call[op as usize]);
            }
        };
        add(c.producer);
        add(c.consumer);
        for r in &reads[c.reads.0 as usize..c.reads.1 as usize] {
            add(r.1);
        }
        (lo, hi)
    };
    for &(id, m) in &mismatches {
        let (lo, hi) = value_zone(id);
        if lo < call[m as usize] && ret[m as usize] < hi {
            return refute(m as usize);
        }
    }

    // The witness: chains in key order after the initial one, every op as early as possible.
    keys.sort_unstable();
    let mut sequence: Vec<u32> = Vec::with_capacity(n);
    // Per producer in `sequence`: the value its point ends (the one it replaces).
    let mut replaces: Vec<u32> = vec![NONE; n];
    let mut previous_last: u32 = NONE; // the last value of the previous chain
    for chain in std::iter::once(0).chain(keys.iter().map(|&(_, c)| c)) {
        let (from, to) = chain_ops[chain as usize];
        for &op in &order[from as usize..to as usize] {
            sequence.push(op);
            replaces[op as usize] = match ops[op as usize].step {
                Step::Cas { expected, .. } => value_id[&Some(expected)],
                Step::Write(_) => previous_last,
                _ => NONE,
            };
        }
        // The chain's last value: follow it from the head.
        let mut v = chains[chain as usize].head;
        while clusters[v as usize].consumer != NONE {
            let Step::Cas { new, .. } = ops[clusters[v as usize].consumer as usize].step else {
                return None;
            };
            v = value_id[&Some(new)];
        }
        previous_last = v;
    }
    // Every mismatched CAS needs an instant in its interval when the register held another
    // value. Placing everything as early as possible gives each value its earliest end; if
    // even that comes after a mismatch's completion, the value must start after the
    // mismatch's invocation: its producer gets that as a lower bound and the placement is
    // redone. Every bound is necessary for this order, so the rounds end with a witness or
    // with a bound the producer cannot meet.
    let mut earliest: Vec<u32> = call.clone();
    let mut starts = vec![0u32; clusters.len()];
    let mut ends = vec![u32::MAX; clusters.len()];
    for _round in 0..MISMATCH_ROUNDS {
        let mut t = 0;
        for &op in &sequence {
            let op = op as usize;
            t = t.max(earliest[op]);
            if t >= ret[op] {
                return None;
            }
            if let Step::Write(v) | Step::Cas { new: v, .. } = ops[op].step {
                starts[value_id[&Some(v)] as usize] = t;
                if let Some(end) = ends.get_mut(replaces[op] as usize) {
                    *end = t;
                }
            }
        }
        let mut raised = false;
        for &(id, m) in &mismatches {
            let m = m as usize;
            if starts[id as usize] < call[m] && ret[m] < ends[id as usize] {
                let producer = clusters[id as usize].producer;
                if producer == NONE {
                    return None; // the initial value cannot start later
                }
                earliest[producer as usize] = call[m];
                raised = true;
            }
        }
        if !raised {
            return Some(ZoneVerdict::Linearizable);
        }
    }
    None
}

/// Rounds of mismatch repairs before the witness gives up and leaves the history to the
/// search (each round is one pass over the operations).
const MISMATCH_ROUNDS: usize = 64;

/// Each op's call and return position (from 1) in the search's event order, or `None` if
/// some op never completed.
fn positions(ops: &[Op]) -> Option<(Vec<u32>, Vec<u32>)> {
    let mut events: Vec<(u64, u64, bool, u32)> = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        let (Some(t), Some(idx)) = (op.complete_time, op.complete_index) else {
            return None;
        };
        events.push((op.invoke_time, op.index, true, i as u32));
        events.push((t, idx, false, i as u32));
    }
    events.sort_unstable_by_key(|&(t, idx, call, _)| (t, idx, call));
    let mut call = vec![0u32; ops.len()];
    let mut ret = vec![0u32; ops.len()];
    for (pos, &(_, _, is_call, i)) in events.iter().enumerate() {
        let slot = if is_call { &mut call } else { &mut ret };
        slot[i as usize] = pos as u32 + 1;
    }
    Some((call, ret))
}
