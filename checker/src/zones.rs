//! A polynomial check for read/write histories whose written values are unique (Gibbons &
//! Korach, "Testing shared memories", SIAM J. Comput. 1997, the read-mapped single-register
//! case): with unique values every read names the write it saw, so each value's write and its
//! reads form a cluster, and the history is linearizable iff
//!
//! 1. no read of a value completes before that value's write is invoked;
//! 2. no two *forward zones* intersect — a cluster whose earliest completion comes before its
//!    latest invocation must hold its value from that completion to that invocation;
//! 3. no *backward zone* — the window in which a cluster whose operations all overlap could
//!    take effect at one instant — lies entirely inside another cluster's forward zone.
//!
//! Sorting the zones makes the whole check O(n log n) in the number of operations, whatever
//! the concurrency. It applies only where its precondition holds (every op a read or a write,
//! every op completed, each value written at most once and never the initial one); elsewhere
//! [`check`] answers `None` and the search decides.
//!
//! Times are positions in the same event order the search uses (time, then history index,
//! returns before calls at a tie), so the two engines agree on ties; the tests cross-check
//! them.

use std::collections::HashMap;

use crate::history::{Op, Step, Value};

/// The zone check's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneVerdict {
    Linearizable,
    /// Not linearizable; `culprit` (a position in the ops) is the operation that cannot be
    /// placed: a read that ended before its write began, or the latest-starting operation of
    /// a value that had to hold while another value did.
    NotLinearizable {
        culprit: usize,
    },
}

/// The verdict, or `None` when the precondition does not hold.
pub fn check(ops: &[Op], initial: Value) -> Option<ZoneVerdict> {
    // Event positions: the order the search walks events in.
    let mut events: Vec<(u64, u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        let (Some(t), Some(idx)) = (op.complete_time, op.complete_index) else {
            return None;
        };
        match op.step {
            Step::Read(_) | Step::Write(_) => {}
            _ => return None,
        }
        events.push((op.invoke_time, op.index, true, i));
        events.push((t, idx, false, i));
    }
    events.sort_unstable_by_key(|&(t, idx, call, _)| (t, idx, call));
    let mut start = vec![0usize; ops.len()];
    let mut end = vec![0usize; ops.len()];
    // The op whose call is at each position (positions from 1; 0 is the initial value's
    // virtual write).
    let mut called_at = vec![usize::MAX; events.len() + 1];
    for (pos, &(_, _, call, i)) in events.iter().enumerate() {
        if call {
            start[i] = pos + 1;
            called_at[pos + 1] = i;
        } else {
            end[i] = pos + 1;
        }
    }
    let invalid = |max_start: usize| {
        Some(ZoneVerdict::NotLinearizable {
            culprit: called_at.get(max_start).copied().unwrap_or(0),
        })
    };

    // Clusters: the write of each value (or the initial value) and the reads that saw it.
    struct Cluster {
        write: Option<usize>,
        min_end: usize,
        max_start: usize,
    }
    let mut clusters: HashMap<Value, Cluster> = HashMap::new();
    let initial_cluster = Cluster {
        write: None,
        min_end: 0,
        max_start: 0,
    };
    clusters.insert(initial, initial_cluster);
    for (i, op) in ops.iter().enumerate() {
        if let Step::Write(v) = op.step {
            if Some(v) == initial {
                return None;
            }
            if clusters.contains_key(&Some(v)) {
                return None; // written twice: not unique
            }
            clusters.insert(
                Some(v),
                Cluster {
                    write: Some(i),
                    min_end: end[i],
                    max_start: start[i],
                },
            );
        }
    }
    for (i, op) in ops.iter().enumerate() {
        let Step::Read(v) = op.step else { continue };
        let Some(cluster) = clusters.get_mut(&v) else {
            // A value nobody wrote.
            return Some(ZoneVerdict::NotLinearizable { culprit: i });
        };
        if let Some(w) = cluster.write
            && end[i] < start[w]
        {
            // Condition 1.
            return Some(ZoneVerdict::NotLinearizable { culprit: i });
        }
        cluster.min_end = cluster.min_end.min(end[i]);
        cluster.max_start = cluster.max_start.max(start[i]);
    }

    let mut forward: Vec<(usize, usize)> = Vec::new();
    let mut backward: Vec<(usize, usize)> = Vec::new();
    for c in clusters.values() {
        if c.min_end < c.max_start {
            forward.push((c.min_end, c.max_start));
        } else if c.write.is_some() {
            backward.push((c.max_start, c.min_end));
        }
    }
    // Condition 2: sorted by start, each forward zone must end before the next begins.
    forward.sort_unstable();
    if let Some(w) = forward.windows(2).find(|w| w[1].0 < w[0].1) {
        // The earlier zone's value was still needed (by the op that starts its end) after
        // the later zone's value had to be in place.
        return invalid(w[0].1);
    }
    // Condition 3: a backward zone inside a forward zone. The forward zones are disjoint and
    // sorted, so only the last one starting before the backward zone can contain it.
    for &(from, to) in &backward {
        let i = forward.partition_point(|&(a, _)| a < from);
        if i > 0 {
            let (_, b) = forward[i - 1];
            if to < b {
                return invalid(b);
            }
        }
    }
    Some(ZoneVerdict::Linearizable)
}
