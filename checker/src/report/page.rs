//! `report.html`: one self-contained page (inline CSS and JS, plots as `data:` URIs, no
//! network at view time) built from an askama template. Everything from the history reaches
//! the page either HTML-escaped or inside a JSON blob escaped for a `<script>` element, so a
//! hostile key or error string stays text.

use askama::Template;
use serde::Serialize;

use super::timeline::{DrawnOp, FaultInterval, TimeUnit, Timeline};
use crate::check::CheckReport;
use crate::counterexample::{Counterexample, PrefixStep};
use crate::history::{Completion, Function, OpRecord, Value};
use crate::model::FREE;
use crate::verdict::Verdict;

/// At most this many operations go to the timeline: beyond it the page would stall. The ops
/// of keys with a counterexample come first, the rest is an even sample (the page says so).
pub const MAX_TIMELINE_OPS: usize = 30_000;

/// One plot as the page shows it: the PNG inside the page, the files beside it linked.
pub struct PlotView {
    pub alt: &'static str,
    /// `data:image/png;base64,…`.
    pub png_data_uri: String,
    pub png_file: String,
    pub svg_file: String,
}

/// Steps of a counterexample's prefix in its table, and on the timeline when it opens on the
/// violation: the end of the prefix, which is where the history stops making sense.
pub const PREFIX_SHOWN: usize = 12;

/// One row of the per-key table.
pub struct KeyRow {
    pub key: String,
    pub verdict: String,
    pub ops: usize,
    pub engine: String,
    pub elapsed_ms: String,
    pub reason: String,
}

/// An operation as a counterexample's tables show it.
pub struct OpRow {
    pub label: String,
    pub process: u64,
    pub invoked: String,
    pub completed: String,
}

/// One step of a counterexample's longest linearizable prefix, as shown in its table.
pub struct PrefixRow {
    pub op: OpRow,
    pub state_after: String,
}

/// A counterexample as the page shows it.
pub struct CounterexampleView {
    pub key: String,
    pub explanation: String,
    pub op_label: String,
    /// The ops the explanation cites.
    pub evidence: Vec<OpRow>,
    pub prefix: Vec<PrefixRow>,
    /// Steps of the prefix left out of the table (only the last ones are shown).
    pub prefix_hidden: usize,
    /// What the key is: `register`, or `lock` for the mutex model.
    pub object: &'static str,
}

/// What the timeline script draws.
#[derive(Serialize)]
struct TimelineData<'a> {
    unit: TimeUnit,
    end: f64,
    ops: Vec<&'a DrawnOp>,
    faults: &'a [FaultInterval],
    /// Per counterexample: its key, the failing op's invoke index, and the prefix's invoke
    /// indices with the state after each, as the table shows it.
    counterexamples: Vec<MarkedCounterexample>,
}

#[derive(Serialize)]
struct MarkedCounterexample {
    key: String,
    op: u64,
    /// Invoke indices of the ops the explanation cites.
    evidence: Vec<u64>,
    prefix: Vec<(u64, String)>,
    start: f64,
    end: f64,
}

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage<'a> {
    title: &'a str,
    verdict: String,
    verdict_class: &'static str,
    headline: String,
    spec_rows: Vec<(String, String)>,
    test_json: String,
    stats: String,
    keys: Vec<KeyRow>,
    counterexamples: Vec<CounterexampleView>,
    plots: &'a [PlotView],
    timeline_note: String,
    data: serde_json::Value,
}

fn seconds(t: u64, unit: TimeUnit) -> String {
    match unit {
        TimeUnit::Seconds => format!("{:.3} s", t as f64 * 1e-9),
        TimeUnit::Events => format!("event {t}"),
    }
}

fn op_row(op: &OpRecord, unit: TimeUnit) -> OpRow {
    OpRow {
        label: op_text(op.f, &op.value),
        process: op.process,
        invoked: seconds(op.invoke_time, unit),
        completed: op
            .complete_time
            .map_or_else(|| "never (indeterminate)".to_string(), |t| seconds(t, unit)),
    }
}

/// A register's value (`nil` when absent), or a lock's state.
fn state_text(state: Value, lock: bool) -> String {
    match state {
        // Anything but free is held (the search may merge crashed acquires' values).
        Some(FREE) if lock => "free".to_string(),
        _ if lock => "held".to_string(),
        Some(v) => v.to_string(),
        None => "nil".to_string(),
    }
}

/// The state after a prefix step: one register's value, or under the multi-register model
/// every register's, as `x=0 y=2`.
fn step_state_text(step: &PrefixStep, lock: bool) -> String {
    if step.registers_after.is_empty() {
        return state_text(step.state_after, lock);
    }
    step.registers_after
        .iter()
        .map(|(name, &value)| format!("{name}={}", state_text(value, false)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn view(c: &Counterexample, unit: TimeUnit) -> CounterexampleView {
    let hidden = c.prefix.len().saturating_sub(PREFIX_SHOWN);
    let lock = c.op.f.on_lock();
    let prefix = c.prefix[hidden..]
        .iter()
        .map(|step| PrefixRow {
            op: op_row(&step.op, unit),
            state_after: step_state_text(step, lock),
        })
        .collect();
    CounterexampleView {
        key: c.key.clone(),
        explanation: c.explanation.clone(),
        evidence: c.evidence.iter().map(|op| op_row(op, unit)).collect(),
        op_label: format!(
            "{} by process {} ({})",
            op_text(c.op.f, &c.op.value),
            c.op.process,
            completion_text(c.op.completion)
        ),
        prefix,
        prefix_hidden: hidden,
        object: if lock { "lock" } else { "register" },
    }
}

/// An operation as the timeline labels it: `read nil`, `write 3`, `cas 1→2`.
fn op_text(f: Function, value: &serde_json::Value) -> String {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "nil".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match (f, value) {
        (Function::Read, v) => format!("read {}", text(v)),
        (Function::Write, v) => format!("write {}", text(v)),
        (Function::Cas, serde_json::Value::Array(pair)) if pair.len() == 2 => {
            format!("cas {}→{}", text(&pair[0]), text(&pair[1]))
        }
        (Function::Cas, v) => format!("cas {}", text(v)),
        (Function::Append, v) => format!("append {}", text(v)),
        (Function::Acquire | Function::Release, _) => f.name().to_string(),
        // `[["read","x",0],["write","y",2]]` reads as `txn read x 0, write y 2`.
        (Function::Txn, serde_json::Value::Array(micro_ops)) => {
            let steps: Vec<String> = micro_ops
                .iter()
                .map(|micro| match micro {
                    serde_json::Value::Array(parts) => {
                        parts.iter().map(text).collect::<Vec<_>>().join(" ")
                    }
                    other => text(other),
                })
                .collect();
            format!("txn {}", steps.join(", "))
        }
        (Function::Txn, v) => format!("txn {}", text(v)),
    }
}

fn completion_text(c: Completion) -> &'static str {
    match c {
        Completion::Ok => "ok",
        Completion::Fail => "fail",
        Completion::Info => "info",
    }
}

/// Pick the ops the timeline draws: all ops of counterexample keys (up to the cap), then an
/// even sample of the others.
fn timeline_ops<'a>(timeline: &'a Timeline, report: &CheckReport) -> (Vec<&'a DrawnOp>, String) {
    let total = timeline.ops.len();
    if total <= MAX_TIMELINE_OPS {
        return (
            timeline.ops.iter().collect(),
            format!("all {total} operations"),
        );
    }
    let bad: std::collections::HashSet<&str> = report
        .counterexamples
        .iter()
        .map(|c| c.key.as_str())
        .collect();
    let is_bad = |op: &DrawnOp| op.key.as_deref().is_some_and(|k| bad.contains(k));
    let mut chosen: Vec<&DrawnOp> = timeline
        .ops
        .iter()
        .filter(|op| is_bad(op))
        .take(MAX_TIMELINE_OPS / 2)
        .collect();
    let rest = total - chosen.len();
    let room = MAX_TIMELINE_OPS - chosen.len();
    let stride = rest.div_ceil(room.max(1)).max(1);
    chosen.extend(timeline.ops.iter().filter(|op| !is_bad(op)).step_by(stride));
    chosen.sort_by_key(|op| op.index);
    let note = format!(
        "{} of {total} operations: every operation of a key with a violation{}, and an even sample of the others",
        chosen.len(),
        if bad.is_empty() { " (none here)" } else { "" }
    );
    (chosen, note)
}

/// Render the page. `test_json` is the run's `test.json`, when there is one; `plots` is empty
/// for histories without real times.
pub fn render(
    title: &str,
    timeline: &Timeline,
    report: &CheckReport,
    test_json: Option<&serde_json::Value>,
    plots: &[PlotView],
) -> Result<String, askama::Error> {
    let verdict = report.verdict();
    let headline = match report.counterexamples.first() {
        Some(c) => c.headline(),
        None => match verdict {
            Verdict::Valid => format!(
                "every one of {} keys is linearizable ({} operations)",
                report.stats.keys, report.stats.ops
            ),
            _ => report
                .keys
                .iter()
                .find_map(|(k, r)| r.reason.as_ref().map(|why| format!("key {k}: {why}")))
                .unwrap_or_else(|| "the checker could not decide".into()),
        },
    };
    let mut spec_rows = Vec::new();
    if let Some(test) = test_json {
        let spec = &test["spec"];
        let field = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "—".into(),
            // A serialised Duration.
            serde_json::Value::Object(o) if o.contains_key("secs") => format!(
                "{} s",
                o["secs"].as_f64().unwrap_or(0.0) + o["nanos"].as_f64().unwrap_or(0.0) * 1e-9
            ),
            serde_json::Value::Array(items) if items.is_empty() => "none".into(),
            serde_json::Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        };
        for (name, value) in [
            ("target", &spec["target"]),
            ("nodes", &spec["nodes"]),
            ("time limit", &spec["time_limit"]),
            ("concurrency", &spec["concurrency"]),
            ("nemesis", &spec["nemesis"]),
            ("read mode", &spec["read_mode"]),
            ("unsafe modes", &spec["unsafe_modes"]),
            ("seed", &test["seed"]),
            ("target version", &test["versions"]["target"]),
            ("faultline version", &test["versions"]["faultline"]),
            ("git revision", &test["git_revision"]),
        ] {
            spec_rows.push((name.to_string(), field(value)));
        }
    }
    let keys = report
        .keys
        .iter()
        .map(|(key, r)| KeyRow {
            key: key.clone(),
            verdict: r.valid.to_string(),
            ops: r.ops,
            engine: r.engine.to_string(),
            elapsed_ms: format!("{:.1}", r.elapsed_ms),
            reason: r.reason.clone().unwrap_or_default(),
        })
        .collect();
    let (ops, timeline_note) = timeline_ops(timeline, report);
    let unit = timeline.unit;
    let scale = match unit {
        TimeUnit::Seconds => 1e-9,
        TimeUnit::Events => 1.0,
    };
    let data = TimelineData {
        unit,
        end: timeline.end,
        ops,
        faults: &timeline.faults,
        counterexamples: report
            .counterexamples
            .iter()
            .map(|c| MarkedCounterexample {
                key: c.key.clone(),
                op: c.op.index,
                evidence: c.evidence.iter().map(|op| op.index).collect(),
                prefix: c
                    .prefix
                    .iter()
                    .map(|s| (s.op.index, step_state_text(s, c.op.f.on_lock())))
                    .collect(),
                // Open wide enough to show the steps the table lists, not only the window.
                start: c.prefix[c.prefix.len().saturating_sub(PREFIX_SHOWN)..]
                    .iter()
                    .map(|step| step.op.invoke_time)
                    .chain([c.window.start])
                    .min()
                    .unwrap_or(c.window.start) as f64
                    * scale,
                end: c.window.end as f64 * scale,
            })
            .collect(),
    };
    let s = &report.stats;
    let page = ReportPage {
        title,
        verdict: verdict.to_string(),
        verdict_class: match verdict {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::Unknown => "unknown",
        },
        headline,
        spec_rows,
        test_json: test_json
            .and_then(|t| serde_json::to_string_pretty(t).ok())
            .unwrap_or_default(),
        stats: format!(
            "{} operations on {} keys: {} ok, {} fail, {} info; checked in {:.0} ms",
            s.ops, s.keys, s.ok, s.fail, s.info, s.elapsed_ms
        ),
        keys,
        counterexamples: report
            .counterexamples
            .iter()
            .map(|c| view(c, unit))
            .collect(),
        plots,
        timeline_note,
        data: serde_json::to_value(&data).unwrap_or_default(),
    };
    page.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    #[test]
    fn operations_read_as_on_the_timeline() {
        use serde_json::json;
        for (f, value, text) in [
            (Function::Read,   json!(null),    "read nil"),
            (Function::Read,   json!(7),       "read 7"),
            (Function::Write,  json!(3),       "write 3"),
            (Function::Cas,    json!([1, 2]),  "cas 1→2"),
            (Function::Cas,    json!("odd"),   "cas odd"),
            (Function::Append, json!("Xy"),    "append Xy"),
        ] {
            assert_eq!(op_text(f, &value), text);
        }
    }

    fn timeline(ops: u64) -> Timeline {
        let ops = (0..ops)
            .map(|i| DrawnOp {
                index: i * 2,
                process: i % 7,
                f: Function::Read,
                completion: Completion::Ok,
                key: Some(if i % 10 == 0 { "bad" } else { "good" }.to_string()),
                label: "read 1".into(),
                node: None,
                start: i as f64,
                end: Some(i as f64 + 0.5),
            })
            .collect();
        Timeline {
            ops,
            faults: Vec::new(),
            unit: TimeUnit::Seconds,
            end: 1.0,
        }
    }

    /// A report with one counterexample on key `bad`, read as results.json is.
    fn report_with_violation_on_bad() -> CheckReport {
        let op = serde_json::json!({"index": 4, "complete_index": 5, "process": 1, "type": "ok",
            "f": "read", "key": "bad", "value": 3, "invoke_time": 4, "complete_time": 5,
            "node": null});
        serde_json::from_value(serde_json::json!({
            "valid": false, "model": "cas-register", "keys": {},
            "counterexamples": [{"key": "bad", "op": op, "previous_ok": [], "prefix": [],
                "final_configurations": [], "window": {"start": 0, "end": 5},
                "explanation": "read 3 <b>stale</b>"}],
            "stats": {"ops": 0, "keys": 2, "ok": 0, "fail": 0, "info": 0, "elapsed_ms": 0.0}
        }))
        .expect("a results.json")
    }

    #[test]
    fn a_small_history_is_drawn_whole() {
        let timeline = timeline(1000);
        let (ops, note) = timeline_ops(&timeline, &report_with_violation_on_bad());
        assert_eq!(ops.len(), 1000);
        assert_eq!(note, "all 1000 operations");
    }

    #[test]
    fn a_big_history_keeps_every_op_of_the_violating_key_and_samples_the_rest() {
        let timeline = timeline(200_000);
        let (ops, note) = timeline_ops(&timeline, &report_with_violation_on_bad());
        assert!(ops.len() <= MAX_TIMELINE_OPS, "{} drawn", ops.len());
        let bad = ops
            .iter()
            .filter(|op| op.key.as_deref() == Some("bad"))
            .count();
        // 20 000 ops of `bad`, more than half the cap: the first half-cap of them.
        assert_eq!(bad, MAX_TIMELINE_OPS / 2);
        assert!(ops.len() > MAX_TIMELINE_OPS * 9 / 10, "{} drawn", ops.len());
        assert!(
            ops.windows(2).all(|w| w[0].index < w[1].index),
            "in history order"
        );
        assert!(note.contains("of 200000 operations"), "{note}");
    }

    #[test]
    fn the_page_escapes_the_explanation_and_embeds_the_data_as_script_safe_json() {
        let mut timeline = timeline(10);
        timeline.ops[0].label = "</script><script>alert(1)</script>".into();
        let html = render(
            "t<i>",
            &timeline,
            &report_with_violation_on_bad(),
            None,
            &[],
        )
        .expect("renders");
        assert!(
            html.contains("read 3 &#60;b&#62;stale&#60;/b&#62;"),
            "escaped as text"
        );
        assert!(!html.contains("<b>stale"));
        assert!(!html.contains("<i>"));
        assert_eq!(
            html.matches("</script>").count(),
            2,
            "only the page's own scripts close"
        );
        assert!(!html.contains("alert(1)</script>"));
    }
}
