//! Checking a whole history: per key in parallel, budgets, `results.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::counterexample::{Counterexample, explain};
use crate::error::Error;
use crate::fast_hash::{IntMap, IntSet};
use crate::history::{Counts, Events, Function, History, KeyHistory, Op, Semantics, Step, Value};
use crate::model::{self, Model, Prefixes};
use crate::multi_register;
use crate::orders::{self, Orders, Threads};
use crate::search::{self, Budget, Outcome, Strategy, WriterOrder};
use crate::zones::ZoneVerdict;
use crate::{Verdict, edn, jepsen_log, jsonl, zones};

/// How to check.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    pub model: Model,
    pub semantics: Semantics,
    /// Wall-clock budget for the whole history; keys past it are `unknown`.
    pub time_limit: Duration,
    /// Memory budget of one search of a key, in bytes (a key whose two writer orders race
    /// runs two searches, on a thread no other key wants: see [`crate::orders`]).
    pub memory_per_key: usize,
    /// Threads for the per-key search; `None` = one per core.
    pub jobs: Option<usize>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            model: Model::CasRegister,
            semantics: Semantics::default(),
            time_limit: search::DEFAULT_TIME,
            memory_per_key: search::DEFAULT_MEMORY,
            jobs: None,
        }
    }
}

/// A key's entry in `results.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyReport {
    #[serde(
        serialize_with = "serialize_verdict",
        deserialize_with = "deserialize_verdict"
    )]
    pub valid: Verdict,
    pub ops: usize,
    /// Which engine decided the key; a `Cow` so a stored `results.json` reads back.
    pub engine: std::borrow::Cow<'static, str>,
    pub elapsed_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `results.json`'s `stats`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Stats {
    pub ops: u64,
    pub keys: usize,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    pub elapsed_ms: f64,
}

/// The whole answer, serialised as `results.json` (DESIGN.md, "The checker").
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckReport {
    #[serde(
        serialize_with = "serialize_verdict",
        deserialize_with = "deserialize_verdict"
    )]
    pub valid: Verdict,
    pub model: Model,
    pub keys: BTreeMap<String, KeyReport>,
    pub counterexamples: Vec<Counterexample>,
    pub stats: Stats,
}

impl CheckReport {
    /// The verdict of the whole history: the worst of its keys.
    pub fn verdict(&self) -> Verdict {
        self.valid
    }
}

/// `true`, `false` or `"unknown"`, as `results.json` writes verdicts.
fn serialize_verdict<S: serde::Serializer>(v: &Verdict, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Verdict::Valid => s.serialize_bool(true),
        Verdict::Invalid => s.serialize_bool(false),
        Verdict::Unknown => s.serialize_str("unknown"),
    }
}

/// Reads what [`serialize_verdict`] wrote; anything else is an error naming the field.
fn deserialize_verdict<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Verdict, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(true) => Ok(Verdict::Valid),
        serde_json::Value::Bool(false) => Ok(Verdict::Invalid),
        serde_json::Value::String(s) if s == "unknown" => Ok(Verdict::Unknown),
        other => Err(serde::de::Error::custom(format!(
            "a verdict is true, false or \"unknown\", not {other}"
        ))),
    }
}

/// Check parsed events.
pub fn check_events(events: &Events, options: &CheckOptions) -> Result<CheckReport, Error> {
    let started = Instant::now();
    // Appends (Porcupine's kv histories) only make sense under the kv model, and acquires and
    // releases under the mutex model, whose lock starts free.
    let locks = events.uses(Function::Acquire) || events.uses(Function::Release);
    let transactions = events.uses(Function::Txn);
    let implied = if events.uses(Function::Append) {
        Some(Model::Kv)
    } else if locks {
        Some(Model::Mutex)
    } else if transactions {
        Some(Model::MultiRegister)
    } else {
        None
    };
    let mut options = options.clone();
    if let Some(model) = implied {
        options.model = model;
    }
    if options.model == Model::Mutex {
        options.semantics.initial = Some(model::FREE);
    }
    let options = &options;
    let history = History::from_events(events, options.semantics)?;
    for key in &history.keys {
        if let Some(op) = key
            .ops
            .iter()
            .find(|op| !options.model.allows(op.f, op.step))
        {
            let hint = if locks {
                "no model checks lock and register operations together: check them as separate histories"
            } else if transactions {
                "no model checks transactions and single-register operations together: check them as separate histories"
            } else {
                "check with --model cas-register"
            };
            return Err(Error::UnsupportedOperation {
                key: key.key.clone(),
                what: format!("{:?} (line of history index {})", op.f, op.index),
                model: options.model.to_string(),
                hint: hint.to_string(),
            });
        }
    }
    Ok(check_history(&history, options, started))
}

/// Check a JSONL history with the default options, for the crate's unit tests: a history that
/// does not parse or check fails the test.
#[cfg(test)]
pub(crate) fn check_jsonl(text: &str) -> CheckReport {
    let events = jsonl::parse(text).expect("parses");
    check_events(&events, &CheckOptions::default()).expect("checks")
}

/// Check a paired history, keys in parallel (largest first, so the slowest starts first).
pub fn check_history(history: &History, options: &CheckOptions, started: Instant) -> CheckReport {
    let deadline = started + options.time_limit;
    let mut order: Vec<&KeyHistory> = history.keys.iter().collect();
    order.sort_by_key(|k| std::cmp::Reverse(k.ops.len()));
    let invalid_found = AtomicBool::new(false);
    let run = || {
        let threads = Threads::new(rayon::current_num_threads(), order.len());
        order
            .par_iter()
            .map(|key| check_key(key, history, options, deadline, &invalid_found, &threads))
            .collect::<Vec<_>>()
    };
    // 2 cores in CI: an explicit pool only when asked, the global one (one thread per core) otherwise.
    let results = match options
        .jobs
        .and_then(|n| rayon::ThreadPoolBuilder::new().num_threads(n).build().ok())
    {
        Some(pool) => pool.install(run),
        None => run(),
    };
    let mut keys = BTreeMap::new();
    let mut counterexamples = Vec::new();
    let mut valid = Verdict::Valid;
    for (name, report, counterexample) in results {
        valid = valid.worst(report.valid);
        keys.insert(name, report);
        counterexamples.extend(counterexample);
    }
    counterexamples.sort_by_key(|c: &Counterexample| c.op.index);
    let Counts {
        ops,
        ok,
        fail,
        info,
    } = history.counts;
    CheckReport {
        valid,
        model: options.model,
        stats: Stats {
            ops,
            keys: keys.len(),
            ok,
            fail,
            info,
            elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
        },
        keys,
        counterexamples,
    }
}

/// What a key's ops say about its values, gathered in one pass over them.
struct ValueFacts {
    /// How many ops write each value.
    producers: IntMap<i64, u32>,
    /// Each value's first sighting by a completed op (a read of it, a CAS expecting it).
    first_seen: IntMap<i64, (u64, u64)>,
    /// Every value some op looks at: a read's result, a CAS's expected value.
    observed: IntSet<i64>,
}

impl ValueFacts {
    fn of(ops: &[Op]) -> ValueFacts {
        let mut facts = ValueFacts {
            producers: IntMap::with_capacity_and_hasher(ops.len() / 2, Default::default()),
            first_seen: IntMap::with_capacity_and_hasher(ops.len() / 2, Default::default()),
            observed: IntSet::with_capacity_and_hasher(ops.len() / 2, Default::default()),
        };
        for op in ops {
            match op.step {
                Step::Write(v) | Step::Cas { new: v, .. } => {
                    *facts.producers.entry(v).or_default() += 1
                }
                _ => {}
            }
            match op.step {
                Step::Read(Some(v))
                | Step::Cas { expected: v, .. }
                | Step::CasMismatch { expected: v } => {
                    facts.observed.insert(v);
                }
                _ => {}
            }
            let seen = match op.step {
                Step::Read(Some(v)) | Step::Cas { expected: v, .. } => v,
                _ => continue,
            };
            if let (Some(t), Some(idx)) = (op.complete_time, op.complete_index) {
                let entry = facts.first_seen.entry(seen).or_insert((t, idx));
                *entry = (*entry).min((t, idx));
            }
        }
        facts
    }

    /// A crashed write (or CAS) whose value nothing ever looks at. If it took effect it set
    /// the register to a value no read returns and no CAS compares with; "it never took
    /// effect" is always a legal choice for an indeterminate op, so if the ops without these
    /// are linearizable, so are all of them. (The converse does not hold: such a write can
    /// explain a CAS that failed on a mismatch.)
    fn unobserved_open(&self, op: &Op) -> bool {
        op.complete_time.is_none()
            && match op.step {
                Step::Write(v) | Step::Cas { new: v, .. } => !self.observed.contains(&v),
                _ => false,
            }
    }

    /// The completion a crashed write (or CAS) certainly had: if exactly one op ever writes
    /// `v` and a completed read (or CAS expecting `v`) saw `v`, that op took effect, before
    /// the sighting completed. Giving it that completion is exact, and it no longer stays open
    /// to the end of the history, where every such op would double what the search may visit.
    fn deadline(&self, op: &Op, initial: Value) -> Option<(u64, u64)> {
        if op.complete_time.is_some() {
            return None;
        }
        let (Step::Write(v) | Step::Cas { new: v, .. }) = op.step else {
            return None;
        };
        if initial == Some(v) || self.producers.get(&v) != Some(&1) {
            return None;
        }
        // A sighting before the write was even invoked cannot be explained at all; leave the
        // op open and let the search refute the history.
        self.first_seen
            .get(&v)
            .copied()
            .filter(|&(t, _)| t >= op.invoke_time)
    }

    /// `op`, closed at its deadline if it has one.
    fn close(&self, op: &Op, initial: Value) -> Op {
        let mut op = *op;
        if let Some((t, idx)) = self.deadline(&op, initial) {
            op.complete_time = Some(t);
            op.complete_index = Some(idx);
        }
        op
    }
}

fn has_appends(ops: &[Op]) -> bool {
    ops.iter().any(|op| matches!(op.step, Step::Append { .. }))
}

/// Decide one key's ops: first without the unobserved indeterminate writes (enough to prove
/// it linearizable, and fast), then, if that fails, the whole. Returns the outcome and the
/// engine that decided it. Crashed writes whose value was seen are closed at their first
/// sighting throughout (`ValueFacts::deadline`). A key with crashed writes or CASes ends in a
/// search whose two writer orders run as `orders` says.
///
/// `prefixes`: for kv histories, the prefixes of the strings gets returned (see
/// [`Prefixes`]); `None` elsewhere.
pub fn decide(
    ops: &[Op],
    model: Model,
    initial: Value,
    prefixes: Option<&Prefixes>,
    budget: Budget<'_>,
    orders: Orders<'_>,
) -> (Outcome, &'static str) {
    let search = |ops: &[Op], writer_order: WriterOrder, budget: Budget<'_>| {
        let strategy = Strategy {
            writer_order,
            ..Strategy::default()
        };
        search::search_with(ops, model, initial, prefixes, strategy, budget)
    };
    let first_try = |ops: &[Op], budget| search(ops, WriterOrder::EarliestCalled, budget);
    // With appends a later value is built on an earlier one: an unseen value may be needed,
    // and a value seen may have been built by any of several appends.
    let facts = (!has_appends(ops)).then(|| ValueFacts::of(ops));
    let needs_closing = facts
        .as_ref()
        .is_some_and(|f| ops.iter().any(|op| f.deadline(op, initial).is_some()));
    let needs_pruning = facts
        .as_ref()
        .is_some_and(|f| ops.iter().any(|op| f.unobserved_open(op)));
    // The ops closed but not pruned, built where needed.
    let all_ops = || -> Vec<Op> {
        match &facts {
            Some(f) if needs_closing => ops.iter().map(|op| f.close(op, initial)).collect(),
            _ => ops.to_vec(),
        }
    };
    let pruned: Option<Vec<Op>> = match &facts {
        Some(f) if needs_pruning => Some(
            ops.iter()
                .filter(|op| !f.unobserved_open(op))
                .map(|op| f.close(op, initial))
                .collect(),
        ),
        _ => None,
    };
    // With unique values the zone check decides in O(n log n). It needs every op completed,
    // so it sees the ops without the unobserved crashed writes: leaving those out is a legal
    // choice, so "linearizable" carries over; "not linearizable" does too unless a CAS failed
    // on a mismatch (only then can such a write matter: it can be what the CAS saw instead).
    let mut unpruned: Option<Vec<Op>> = None;
    let candidate: &[Op] = match &pruned {
        Some(p) => p,
        None => unpruned.insert(all_ops()),
    };
    let refutation_carries_over = pruned.is_none()
        || !ops
            .iter()
            .any(|op| matches!(op.step, Step::CasMismatch { .. }));
    match zones::check(candidate, initial) {
        Some(ZoneVerdict::Linearizable) => return (Outcome::Linearizable, "zones (unique values)"),
        Some(ZoneVerdict::NotLinearizable { culprit }) if refutation_carries_over => {
            // Exact, but the report wants a prefix: give the search a short try for one, and
            // otherwise name the op the zones could not place.
            let short = Budget {
                deadline: Some(
                    (Instant::now() + Duration::from_secs(2)).min(
                        budget
                            .deadline
                            .unwrap_or_else(|| Instant::now() + Duration::from_secs(2)),
                    ),
                ),
                ..budget
            };
            let index = candidate[culprit].index;
            let all = unpruned.take().unwrap_or_else(all_ops);
            if let outcome @ Outcome::NotLinearizable(_) = first_try(&all, short) {
                return (outcome, "zones (unique values), counterexample by search");
            }
            let stuck = all.iter().position(|o| o.index == index).unwrap_or(0);
            let failure = search::Failure {
                prefix: Vec::new(),
                stuck,
            };
            return (Outcome::NotLinearizable(failure), "zones (unique values)");
        }
        _ => {}
    }
    if let Some(pruned) = &pruned
        && first_try(pruned, budget) == Outcome::Linearizable
    {
        return (
            Outcome::Linearizable,
            "search without unobserved indeterminate writes",
        );
    }
    drop(pruned);
    let mut all = unpruned.take().unwrap_or_else(all_ops);
    if let Some(f) = &facts {
        merge_unobserved_values(&mut all, f);
    }
    let crashed_effects = all.iter().any(|op| {
        op.complete_time.is_none() && !matches!(op.step, Step::Read(_) | Step::CasMismatch { .. })
    });
    if !crashed_effects {
        return (first_try(&all, budget), "search");
    }
    orders::run(&|order, budget| search(&all, order, budget), budget, orders)
}

/// The value every unobserved crashed write is given by [`merge_unobserved_values`].
const UNOBSERVED: i64 = i64::MIN;

/// Replace the value of every crashed write (or CAS) that nobody read or compared with by one
/// shared value. No read returns such a value and no CAS expects it, so which of them the
/// register held makes no difference to any operation: they are interchangeable, and the
/// search (which takes identical crashed ops in invoke order only) then weighs k of them as
/// k + 1 choices instead of 2^k subsets. Exact, unless a history itself uses the shared value
/// (then nothing is replaced).
fn merge_unobserved_values(ops: &mut [Op], facts: &ValueFacts) {
    let uses_shared_value = ops.iter().any(|op| match op.step {
        Step::Read(Some(v)) | Step::Write(v) | Step::CasMismatch { expected: v } => v == UNOBSERVED,
        Step::Cas { expected, new } => expected == UNOBSERVED || new == UNOBSERVED,
        _ => false,
    });
    if uses_shared_value {
        return;
    }
    for op in ops.iter_mut().filter(|op| op.complete_time.is_none()) {
        op.step = match op.step {
            Step::Write(v) if !facts.observed.contains(&v) => Step::Write(UNOBSERVED),
            Step::Cas { expected, new } if !facts.observed.contains(&new) => Step::Cas {
                expected,
                new: UNOBSERVED,
            },
            other => other,
        };
    }
}

fn check_key(
    key: &KeyHistory,
    history: &History,
    options: &CheckOptions,
    deadline: Instant,
    invalid_found: &AtomicBool,
    threads: &Threads,
) -> (String, KeyReport, Option<Counterexample>) {
    let _thread = threads.start_key();
    let started = Instant::now();
    let budget = Budget {
        deadline: Some(deadline),
        memory: options.memory_per_key,
        cancel: Some(invalid_found),
        rival_decided: None,
    };
    let initial: Value = options.semantics.initial;
    if options.model == Model::MultiRegister {
        return check_transactions(key, history, options, budget, started, invalid_found);
    }
    let (outcome, engine) = decide(
        &key.ops,
        options.model,
        initial,
        Some(&history.prefixes),
        budget,
        Orders::RacedWhenFree(threads),
    );
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    let (valid, reason, counterexample) = match outcome {
        Outcome::Linearizable => (Verdict::Valid, None, None),
        Outcome::Unknown(why) => (Verdict::Unknown, Some(why), None),
        Outcome::NotLinearizable(failure) => {
            invalid_found.store(true, Ordering::Relaxed);
            let c = explain(key, &failure, initial, &history.strings, history.timed);
            (Verdict::Invalid, Some(c.explanation.clone()), Some(c))
        }
    };
    let report = KeyReport {
        valid,
        ops: key.ops.len(),
        engine: engine.into(),
        elapsed_ms,
        reason,
    };
    (key.key.clone(), report, counterexample)
}

/// [`check_key`] under the multi-register model: its own search of the key's transactions.
fn check_transactions(
    key: &KeyHistory,
    history: &History,
    options: &CheckOptions,
    budget: Budget<'_>,
    started: Instant,
    invalid_found: &AtomicBool,
) -> (String, KeyReport, Option<Counterexample>) {
    let (valid, reason, counterexample) = multi_register::check(
        key,
        &history.strings,
        options.semantics,
        history.timed,
        budget,
    );
    if valid == Verdict::Invalid {
        invalid_found.store(true, Ordering::Relaxed);
    }
    let report = KeyReport {
        valid,
        ops: key.ops.len(),
        engine: "multi-register search".into(),
        elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
        reason,
    };
    (key.key.clone(), report, counterexample)
}

/// The history file a path names: the path itself, or `history.jsonl` in a run directory.
pub fn history_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("history.jsonl")
    } else {
        path.to_path_buf()
    }
}

/// The formats `faultline check` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Our `history.jsonl`.
    Jsonl,
    /// Jepsen / Knossos `history.edn`.
    Edn,
    /// Jepsen text logs of one register (Porcupine's etcd set).
    JepsenLog,
}

impl Format {
    /// Detect the format from the text.
    pub fn detect(text: &str) -> Format {
        if jepsen_log::detect(text) {
            Format::JepsenLog
        } else if edn::detect(text) {
            Format::Edn
        } else {
            Format::Jsonl
        }
    }

    /// What the format's sources mean by their histories (MANIFEST.tsv, "Semantics differ"):
    /// Knossos starts its cas-register at 0 and treats a nil read as unconstrained; ours and
    /// Porcupine's start absent and a nil read means absent.
    pub fn semantics(self) -> Semantics {
        match self {
            Format::Edn => Semantics {
                initial: Some(0),
                nil_read_unconstrained: true,
                ..Semantics::default()
            },
            Format::Jsonl | Format::JepsenLog => Semantics::default(),
        }
    }

    fn parse(self, text: &str) -> Result<Events, Error> {
        match self {
            Format::Jsonl => jsonl::parse(text),
            Format::Edn => edn::parse(text),
            Format::JepsenLog => jepsen_log::parse(text),
        }
    }
}

/// A history read from a file: the text the report reads the nemesis's faults from, the
/// events, and the format.
pub struct LoadedHistory {
    pub file: PathBuf,
    /// JSONL: only its nemesis lines (a million-operation history need not stay in memory
    /// twice); other formats: the whole text.
    pub text: String,
    pub events: Events,
    pub format: Format,
    /// Whether times are real: Jepsen text logs and EDN files without `:time` use the order.
    pub timed: bool,
    /// JSONL: the number of a cut-off last line that was left out ([`jsonl::torn_tail`]).
    pub torn_tail: Option<usize>,
}

/// Read one history file (or a run directory's `history.jsonl`), detecting its format;
/// `.gz` files are decompressed on the way.
pub fn load_history(path: &Path) -> Result<LoadedHistory, Error> {
    load_history_as(path, None)
}

/// [`load_history`], with the format given instead of detected.
pub fn load_history_as(path: &Path, format: Option<Format>) -> Result<LoadedHistory, Error> {
    let file = history_file(path);
    let io = |source| Error::Io {
        path: file.clone(),
        source,
    };
    let bytes = std::fs::read(&file).map_err(io)?;
    let bytes = if file.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&bytes[..]), &mut out)
            .map_err(io)?;
        out
    } else {
        bytes
    };
    let text = String::from_utf8(bytes).map_err(|e| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text ({e})"),
        ))
    })?;
    let format = format.unwrap_or_else(|| Format::detect(&text));
    let mut text = text;
    let torn_tail = match format {
        Format::Jsonl => jsonl::torn_tail(&text).map(|(line, start)| {
            text.truncate(start);
            line
        }),
        Format::Edn | Format::JepsenLog => None,
    };
    let events = format.parse(&text).map_err(|error| Error::InFile {
        path: file.clone(),
        error: Box::new(error),
    })?;
    let timed = events.timed();
    let text = match format {
        Format::Jsonl => text
            .lines()
            .filter(|line| line.contains("\"nemesis\""))
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Edn | Format::JepsenLog => text,
    };
    Ok(LoadedHistory {
        file,
        text,
        events,
        format,
        timed,
        torn_tail,
    })
}

/// Read and check one history file (or run directory).
pub fn check_path(path: &Path, options: &CheckOptions) -> Result<CheckReport, Error> {
    let history = load_history(path)?;
    let options = CheckOptions {
        semantics: history.format.semantics(),
        ..options.clone()
    };
    check_events(&history.events, &options).map_err(|error| Error::InFile {
        path: history.file.clone(),
        error: Box::new(error),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(i: u64, p: u64, kind: &str, f: &str, value: &str) -> String {
        format!(
            r#"{{"index":{i},"time":{i},"process":{p},"type":"{kind}","f":"{f}","key":"k","value":{value},"node":"n1"}}"#
        )
    }

    #[test]
    fn results_json_shape_for_a_stale_read() {
        let text = [
            line(0, 0, "invoke", "write", "1"),
            line(1, 0, "ok", "write", "1"),
            line(2, 1, "invoke", "write", "2"),
            line(3, 1, "ok", "write", "2"),
            line(4, 0, "invoke", "read", "null"),
            line(5, 0, "ok", "read", "1"),
        ]
        .join("\n");
        let report = check_jsonl(&text);
        assert_eq!(report.verdict(), Verdict::Invalid);
        let json = serde_json::to_value(&report).expect("serialises");
        assert_eq!(json["valid"], false);
        assert_eq!(json["keys"]["k"]["valid"], false);
        assert_eq!(json["stats"]["ops"], 3);
        let c = &json["counterexamples"][0];
        assert_eq!(c["op"]["f"], "read");
        assert_eq!(c["op"]["value"], 1);
        assert_eq!(c["prefix"].as_array().map(Vec::len), Some(2));
        assert_eq!(c["prefix"][1]["state_after"], 2);
        assert!(
            c["explanation"]
                .as_str()
                .is_some_and(|e| e.contains("overwritten by write 2")),
            "{c}"
        );
    }

    #[test]
    fn register_model_refuses_cas() {
        let text = [
            line(0, 0, "invoke", "cas", "[1,2]"),
            line(1, 0, "ok", "cas", "[1,2]"),
        ]
        .join("\n");
        let events = jsonl::parse(&text).expect("parses");
        let options = CheckOptions {
            model: Model::Register,
            ..CheckOptions::default()
        };
        let error = check_events(&events, &options).unwrap_err();
        assert!(
            error.to_string().contains("--model cas-register"),
            "{error}"
        );
    }

    /// A CAS that failed for another reason (no leader) did nothing and observed nothing;
    /// only `error: mismatch` says the register held something else.
    #[test]
    fn only_a_mismatch_failure_of_a_cas_observes_the_register() {
        let fail = |i, error: &str| {
            format!(
                r#"{{"index":{i},"time":{i},"process":1,"type":"fail","f":"cas","key":"k","value":[1,2],"error":"{error}"}}"#
            )
        };
        let history = |error: &str| {
            [
                line(0, 0, "invoke", "write", "1"),
                line(1, 0, "ok", "write", "1"),
                line(2, 1, "invoke", "cas", "[1,2]"),
                fail(3, error),
            ]
            .join("\n")
        };
        let verdict = |error: &str| check_jsonl(&history(error)).verdict();
        assert_eq!(verdict("unavailable: no leader"), Verdict::Valid);
        assert_eq!(verdict("mismatch"), Verdict::Invalid);
    }

    /// `faultline report` redraws a run from its stored results.json: what was written must
    /// read back to the same verdicts, counterexample and sentence.
    #[test]
    fn results_json_reads_back_as_the_report_it_was_written_from() {
        let history = [
            line(0, 0, "invoke", "write", "1"),
            line(1, 0, "ok", "write", "1"),
            line(2, 1, "invoke", "read", "null"),
            line(3, 1, "ok", "read", "7"),
        ]
        .join("\n");
        let report = check_jsonl(&history);
        assert_eq!(report.verdict(), Verdict::Invalid);
        let json = serde_json::to_string(&report).expect("serialises");
        let back: CheckReport = serde_json::from_str(&json).expect("reads back");
        assert_eq!(back.verdict(), Verdict::Invalid);
        assert_eq!(back.keys["k"].engine, report.keys["k"].engine);
        assert_eq!(back.counterexamples.len(), 1);
        // The model's step is not stored (the report never needs it); the rest is.
        assert_eq!(
            back.counterexamples[0].op.index,
            report.counterexamples[0].op.index
        );
        assert_eq!(
            back.counterexamples[0].explanation,
            report.counterexamples[0].explanation
        );
        // Compared as JSON values: serde_json reads floats to the nearest value only with its
        // `float_roundtrip` feature, so the text of a timing may differ in its last digit.
        assert_eq!(
            serde_json::to_value(&back).expect("serialises"),
            serde_json::from_str::<serde_json::Value>(&json).expect("parses")
        );
        let bad = json.replacen("\"valid\":false", "\"valid\":\"maybe\"", 1);
        let error = serde_json::from_str::<CheckReport>(&bad).unwrap_err();
        assert!(error.to_string().contains("true, false or"), "{error}");
    }

    fn info(i: u64, p: u64, value: i64) -> String {
        format!(
            r#"{{"index":{i},"time":{i},"process":{p},"type":"info","f":"write","key":"k","value":{value},"error":"timeout"}}"#
        )
    }

    /// Hundreds of crashed writes nobody observed: each stays open forever, which would
    /// double the configurations per write; without them the history is decided at once.
    #[test]
    fn many_unobserved_crashed_writes_are_decided_fast() {
        let mut lines = Vec::new();
        let mut i = 0;
        for n in 0..300u64 {
            lines.push(line(
                i,
                1000 + n,
                "invoke",
                "write",
                &(10_000 + n).to_string(),
            ));
            lines.push(info(i + 1, 1000 + n, 10_000 + n as i64));
            lines.push(line(i + 2, 0, "invoke", "write", &n.to_string()));
            lines.push(line(i + 3, 0, "ok", "write", &n.to_string()));
            lines.push(line(i + 4, 0, "invoke", "read", "null"));
            lines.push(line(i + 5, 0, "ok", "read", &n.to_string()));
            i += 6;
        }
        let report = check_jsonl(&lines.join("\n"));
        assert_eq!(report.verdict(), Verdict::Valid);
        // Reads and writes only, unique values: the zone check decides it.
        assert_eq!(report.keys["k"].engine, "zones (unique values)");
    }

    /// An unobserved crashed write can still be needed: here only it explains why a CAS
    /// expecting the current value failed on a mismatch.
    #[test]
    fn an_unobserved_crashed_write_that_explains_a_mismatch_is_kept() {
        let text = [
            line(0, 0, "invoke", "write", "5"),
            line(1, 0, "ok", "write", "5"),
            line(2, 1, "invoke", "write", "9"),
            info(3, 1, 9),
            line(4, 2, "invoke", "cas", "[5,6]"),
            r#"{"index":5,"time":5,"process":2,"type":"fail","f":"cas","key":"k","value":[5,6],"error":"mismatch"}"#.to_string(),
        ]
        .join("\n");
        let report = check_jsonl(&text);
        assert_eq!(report.verdict(), Verdict::Valid);
        assert_eq!(report.keys["k"].engine, "search");
    }

    #[test]
    fn gzip_histories_are_read_transparently_and_formats_detected() {
        use std::io::Write;
        let dir = tempfile::tempdir().expect("tempdir");
        let text = [
            line(0, 0, "invoke", "write", "1"),
            line(1, 0, "ok", "write", "1"),
        ]
        .join("\n");
        let path = dir.path().join("history.jsonl.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).expect("compresses");
        std::fs::write(&path, gz.finish().expect("finishes")).expect("writes");
        let history = load_history(&path).expect("reads");
        assert_eq!(history.format, Format::Jsonl);
        assert_eq!(history.events.len(), 2);
        assert_eq!(
            Format::detect("[{:process 0 :type :invoke :f :read :value nil}]"),
            Format::Edn
        );
        assert_eq!(
            Format::detect("INFO  jepsen.util - 1\t:invoke\t:read\tnil"),
            Format::JepsenLog
        );
    }

    /// Reads and writes with unique values, crashed writes and one stale read: the zone
    /// check refutes it (the search alone runs out of room on such histories).
    #[test]
    fn crashed_register_histories_with_a_stale_read_are_refuted_by_the_zones() {
        let spec = crate::synth::SynthSpec {
            ops: 3_000,
            procs: 10,
            keys: 1,
            crash: 0.05,
            unique: true,
            stale_read: true,
            register_only: true,
            seed: 1,
        };
        let mut out = Vec::new();
        crate::synth::write_history(&spec, &mut out).expect("writes");
        let report = check_jsonl(&String::from_utf8(out).expect("utf-8"));
        assert_eq!(report.verdict(), Verdict::Invalid);
        assert!(
            report.keys["k0"].engine.starts_with("zones"),
            "{:?}",
            report.keys["k0"]
        );
        assert_eq!(report.counterexamples.len(), 1);
    }
}

#[cfg(test)]
mod sentence_tests {
    use super::*;

    fn explain_log(lines: &[&str]) -> String {
        let text: Vec<String> = lines
            .iter()
            .map(|l| format!("INFO  jepsen.util - {l}"))
            .collect();
        let events = jepsen_log::parse(&text.join("\n")).expect("parses");
        let report = check_events(&events, &CheckOptions::default()).expect("checks");
        assert_eq!(report.verdict(), Verdict::Invalid);
        report.counterexamples[0].headline()
    }

    /// A history of one register without times: the sentence names the register and history
    /// indices, not a key and seconds.
    #[test]
    fn untimed_single_register_sentences_name_history_indices() {
        let headline = explain_log(&[
            "0\t:invoke\t:write\t1",
            "0\t:ok\t:write\t1",
            "0\t:invoke\t:write\t2",
            "0\t:ok\t:write\t2",
            "1\t:invoke\t:read\tnil",
            "1\t:ok\t:read\t1",
        ]);
        assert_eq!(
            headline,
            "read of the register returned 1 at history index 5, but 1 had been overwritten by write 2 that completed at history index 3"
        );
    }

    /// With values written more than once, the overwriting write named is one that came
    /// after every write of the value the read saw.
    #[test]
    fn the_overwriter_follows_every_write_of_the_value_read() {
        let headline = explain_log(&[
            "0\t:invoke\t:write\t1",
            "0\t:ok\t:write\t1",
            "0\t:invoke\t:write\t2",
            "0\t:ok\t:write\t2",
            "0\t:invoke\t:write\t1",
            "0\t:ok\t:write\t1",
            "0\t:invoke\t:write\t3",
            "0\t:ok\t:write\t3",
            "1\t:invoke\t:read\tnil",
            "1\t:ok\t:read\t1",
        ]);
        assert!(headline.contains("overwritten by write 3"), "{headline}");
    }

    /// The CAS that moved the register on is named with both of its values.
    #[test]
    fn a_read_left_behind_by_a_cas_names_the_cas() {
        let headline = explain_log(&[
            "0\t:invoke\t:write\t1",
            "0\t:ok\t:write\t1",
            "0\t:invoke\t:cas\t[1 2]",
            "0\t:ok\t:cas\t[1 2]",
            "1\t:invoke\t:read\tnil",
            "1\t:ok\t:read\t1",
        ]);
        assert_eq!(
            headline,
            "read of the register returned 1 at history index 5, but 1 had been overwritten by cas from 1 to 2 that completed at history index 3"
        );
    }

    /// No write of another value completed after the one read, but a read saw another value
    /// once it had: that read is the evidence (a run of the stale-reads Raft server had this
    /// shape, and its sentence said only that no order explained the read).
    #[test]
    fn a_read_that_saw_the_register_move_on_is_the_evidence() {
        let headline = explain_log(&[
            "0\t:invoke\t:write\t4",
            "1\t:invoke\t:write\t6",
            "0\t:ok\t:write\t4",
            "2\t:invoke\t:read\tnil",
            "1\t:ok\t:write\t6",
            "2\t:ok\t:read\t6",
            "3\t:invoke\t:read\tnil",
            "3\t:ok\t:read\t4",
        ]);
        assert_eq!(
            headline,
            "read of the register returned 4 at history index 7, but 4 had been overwritten: a read returned 6 at history index 5, after write 4 completed at history index 2"
        );
    }

    /// The read-again evidence names a later read that is stale on its own (write 3 overwrote
    /// its value before it began): that read is shown, not the earlier one it contradicts.
    #[test]
    fn a_rereader_stale_on_its_own_evidence_is_the_one_shown() {
        let headline = explain_log(&[
            "1\t:invoke\t:write\t2",
            "0\t:invoke\t:write\t1",
            "1\t:ok\t:write\t2",
            "0\t:ok\t:write\t1",
            "2\t:invoke\t:read\tnil",
            "2\t:ok\t:read\t2",
            "0\t:invoke\t:write\t3",
            "0\t:ok\t:write\t3",
            "3\t:invoke\t:read\tnil",
            "3\t:ok\t:read\t1",
        ]);
        assert_eq!(
            headline,
            "read of the register returned 1 at history index 9, but 1 had been overwritten by write 3 that completed at history index 7"
        );
    }

    /// A CAS is told by the same evidence as a read: two CAS from 1 both succeeded, one after
    /// the other (what `--unsafe ack-before-commit` produces).
    #[test]
    fn a_cas_from_an_overwritten_value_names_what_overwrote_it() {
        let headline = explain_log(&[
            "0\t:invoke\t:write\t1",
            "0\t:ok\t:write\t1",
            "0\t:invoke\t:cas\t[1 2]",
            "0\t:ok\t:cas\t[1 2]",
            "1\t:invoke\t:cas\t[1 3]",
            "1\t:ok\t:cas\t[1 3]",
        ]);
        assert_eq!(
            headline,
            "cas of the register from 1 to 3 succeeded at history index 5, but 1 had been overwritten by cas from 1 to 2 that completed at history index 3"
        );
        let headline = explain_log(&[
            "0\t:invoke\t:write\t1",
            "0\t:ok\t:write\t1",
            "1\t:invoke\t:cas\t[7 3]",
            "1\t:ok\t:cas\t[7 3]",
        ]);
        assert_eq!(
            headline,
            "cas of the register from 7 to 3 succeeded at history index 3, but no operation wrote 7"
        );
    }

    /// A CAS that failed because the register did not hold what it expected, when the register
    /// must have: the write that gave it that value, or its start, is the evidence.
    #[test]
    fn a_cas_that_failed_on_the_value_the_register_held_names_why_it_held_it() {
        let headline = explain_log(&[
            "0\t:invoke\t:write\t1",
            "0\t:ok\t:write\t1",
            "1\t:invoke\t:cas\t[1 2]",
            "1\t:fail\t:cas\t[1 2]",
        ]);
        assert_eq!(
            headline,
            "cas of the register from 1 failed at history index 3 because the register did not hold 1, but write 1 had completed at history index 1 and from then until the cas the register could hold only 1"
        );
        let text = ["1\t:invoke\t:cas\t[0 2]", "1\t:fail\t:cas\t[0 2]"]
            .map(|l| format!("INFO  jepsen.util - {l}"))
            .join("\n");
        let events = jepsen_log::parse(&text).expect("parses");
        let mut options = CheckOptions::default();
        options.semantics.initial = Some(0);
        let report = check_events(&events, &options).expect("checks");
        assert_eq!(
            report.counterexamples[0].headline(),
            "cas of the register from 0 failed at history index 1 because the register did not hold 0, but the register started with 0 and no operation could write the register before the cas ended"
        );
    }

    /// A value that only a CAS from an unreachable value could write is one the register never
    /// held: the sentence says which values it could hold instead.
    #[test]
    fn a_value_only_an_impossible_cas_writes_was_never_held() {
        let headline = explain_log(&[
            "0\t:invoke\t:cas\t[3 2]",
            "1\t:invoke\t:write\t1",
            "1\t:ok\t:write\t1",
            "2\t:invoke\t:read\tnil",
            "2\t:ok\t:read\t2",
        ]);
        assert_eq!(
            headline,
            "read of the register returned 2 at history index 4, but the register could never hold 2 before the read ended: starting from nothing (absent), the operations begun by then could give it only 1"
        );
    }

    /// Three concurrent writes all done; then a read saw 2 and a CAS, alongside it, saw 3.
    /// Neither can have come first (seen in a stale-reads Raft run, where the sentence said
    /// only that no order explained the read).
    #[test]
    fn two_ops_that_saw_different_values_of_a_settled_register_contradict_each_other() {
        let headline = explain_log(&[
            "2\t:invoke\t:write\t1",
            "3\t:invoke\t:write\t2",
            "5\t:invoke\t:write\t3",
            "2\t:ok\t:write\t1",
            "3\t:ok\t:write\t2",
            "5\t:ok\t:write\t3",
            "9\t:invoke\t:cas\t[3 5]",
            "3\t:invoke\t:read\tnil",
            "3\t:ok\t:read\t2",
            "3\t:invoke\t:write\t6",
            "3\t:ok\t:write\t6",
            "9\t:ok\t:cas\t[3 5]",
        ]);
        assert_eq!(
            headline,
            "read of the register returned 2 at history index 8, but cas from 3 to 5 succeeded at history index 11, and neither order works: after that cas the register could hold only 5 until the read, and after the read only 2 or 6 until the cas"
        );
    }

    /// A CAS cannot supply the value it expects: one from 2 to 2 on a register nothing else
    /// wrote 2 to is told so, not that the register "could not have held 2".
    #[test]
    fn a_cas_is_not_its_own_source() {
        let headline = explain_log(&[
            "0\t:invoke\t:write\t1",
            "0\t:ok\t:write\t1",
            "1\t:invoke\t:cas\t[2 2]",
            "1\t:ok\t:cas\t[2 2]",
        ]);
        assert_eq!(
            headline,
            "cas of the register from 2 to 2 succeeded at history index 3, but no other operation wrote 2"
        );
    }

    /// A CAS to the value read was still open (timed out) when the register was overwritten,
    /// but it needed a value nothing could write any more (etcd_001 in Porcupine's data set
    /// has this shape): the overwrite is still the evidence, and the sentence says what the
    /// register could hold instead.
    #[test]
    fn an_open_cas_that_needs_an_unreachable_value_does_not_excuse_a_stale_read() {
        let headline = explain_log(&[
            "0\t:invoke\t:write\t4",
            "0\t:ok\t:write\t4",
            "1\t:invoke\t:write\t3",
            "1\t:ok\t:write\t3",
            "2\t:invoke\t:cas\t[3 4]",
            "0\t:invoke\t:write\t1",
            "0\t:ok\t:write\t1",
            "3\t:invoke\t:read\tnil",
            "3\t:ok\t:read\t4",
            "2\t:info\t:cas\t:timed-out",
        ]);
        assert_eq!(
            headline,
            "read of the register returned 4 at history index 8, but 4 had been overwritten by write 1 that completed at history index 6, and from then until the read the register could hold only 1"
        );
        // Had anything still running been able to give the register 3 back, the CAS could
        // have written 4 again, and the overwrite would prove nothing.
        let headline = explain_log(&[
            "0\t:invoke\t:write\t4",
            "0\t:ok\t:write\t4",
            "1\t:invoke\t:write\t3",
            "2\t:invoke\t:cas\t[3 4]",
            "0\t:invoke\t:write\t1",
            "0\t:ok\t:write\t1",
            "3\t:invoke\t:read\tnil",
            "3\t:ok\t:read\t4",
            "4\t:invoke\t:read\tnil",
            "4\t:ok\t:read\t1",
            "1\t:info\t:write\t:timed-out",
            "2\t:info\t:cas\t:timed-out",
        ]);
        assert!(!headline.contains("overwritten by write 1"), "{headline}");
        // Many values within reach are counted, not listed.
        let mut lines = vec![
            "0\t:invoke\t:write\t4".to_string(),
            "0\t:ok\t:write\t4".to_string(),
            "2\t:invoke\t:cas\t[3 4]".to_string(),
        ];
        for p in 10..16 {
            lines.push(format!("{p}\t:invoke\t:write\t{p}"));
        }
        lines.extend(
            [
                "0\t:invoke\t:write\t1",
                "0\t:ok\t:write\t1",
                "3\t:invoke\t:read\tnil",
                "3\t:ok\t:read\t4",
            ]
            .map(String::from),
        );
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let headline = explain_log(&lines);
        assert!(
            headline.ends_with(
                "and from then until the read the register could hold only one of 7 values, none of them 4"
            ),
            "{headline}"
        );
    }

    /// Two concurrent writes, both done before a read of the first value; a later read of the
    /// second, written only once, shows it came last (seen in a stale-reads Raft run).
    #[test]
    fn a_value_read_again_later_shows_which_write_came_last() {
        let headline = explain_log(&[
            "0\t:invoke\t:write\t9",
            "1\t:invoke\t:write\t10",
            "0\t:ok\t:write\t9",
            "1\t:ok\t:write\t10",
            "2\t:invoke\t:read\tnil",
            "2\t:ok\t:read\t9",
            "3\t:invoke\t:read\tnil",
            "3\t:ok\t:read\t10",
        ]);
        assert_eq!(
            headline,
            "read of the register returned 9 at history index 5, but write 10 had completed at history index 3 and a read still returned 10 at history index 7 (10 is written only once)"
        );
    }
}
