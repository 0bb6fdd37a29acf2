//! What the report draws, extracted from a history: client operations as intervals
//! (invoke → completion) and fault intervals (nemesis start → stop).

use serde::{Deserialize, Serialize};

use crate::history::{Completion, EventKind, EventValue, Events, Function};

/// One client operation as drawn: times in seconds since the run started.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DrawnOp {
    /// History index of the invoke.
    pub index: u64,
    pub process: u64,
    pub f: Function,
    #[serde(rename = "type")]
    pub completion: Completion,
    pub key: Option<String>,
    /// `read 3`, `write 7`, `cas 3→4`.
    pub label: String,
    pub node: Option<String>,
    pub start: f64,
    /// When the completion arrived; `None` if it never did (the run ended first).
    pub end: Option<f64>,
}

impl DrawnOp {
    /// Invoke to completion, in milliseconds; `None` when the op never completed.
    pub fn latency_ms(&self) -> Option<f64> {
        self.end.map(|end| (end - self.start) * 1e3)
    }
}

/// One fault as drawn: a band from start to stop.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaultInterval {
    /// `partition`, `kill`, `clock`, …
    pub kind: String,
    /// The nemesis's description (`isolate n3 from n1,n2,n4,n5`).
    pub label: String,
    pub start: f64,
    /// `None`: still active when the history ends.
    pub end: Option<f64>,
}

/// Whether times are real (nanoseconds) or only an order (Jepsen text logs use the line).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    Seconds,
    /// Event positions: plots of latency and rate make no sense and are left out.
    Events,
}

/// Operations and faults of a whole history.
#[derive(Clone, Debug, Serialize)]
pub struct Timeline {
    pub ops: Vec<DrawnOp>,
    pub faults: Vec<FaultInterval>,
    pub unit: TimeUnit,
    /// Time of the last event, in the timeline's unit.
    pub end: f64,
}

impl Timeline {
    /// Pair each process's invoke with its next completion. `faults` come from the nemesis
    /// lines of the same history ([`faults_from_jsonl`]).
    pub fn new(events: &Events, faults: Vec<FaultInterval>, unit: TimeUnit) -> Timeline {
        let scale = match unit {
            TimeUnit::Seconds => 1e-9,
            TimeUnit::Events => 1.0,
        };
        let mut open: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
        let mut ops: Vec<DrawnOp> = Vec::with_capacity(events.len() / 2 + 1);
        let mut end: f64 = 0.0;
        for e in events.iter() {
            let t = e.time as f64 * scale;
            end = end.max(t);
            match e.kind {
                EventKind::Invoke => {
                    open.insert(e.process, ops.len());
                    ops.push(DrawnOp {
                        index: e.index,
                        process: e.process,
                        f: e.f,
                        // Until its completion arrives, an op is indeterminate.
                        completion: Completion::Info,
                        key: e.key.map(str::to_string),
                        label: label(e.f, e.value),
                        node: e.node.map(str::to_string),
                        start: t,
                        end: None,
                    });
                }
                EventKind::Complete(c) => {
                    if let Some(i) = open.remove(&e.process) {
                        let op = &mut ops[i];
                        op.completion = c;
                        op.end = Some(t);
                        if e.f == Function::Read && c == Completion::Ok {
                            op.label = label(e.f, e.value);
                        }
                    }
                }
            }
        }
        for f in &faults {
            end = end.max(f.end.unwrap_or(f.start));
        }
        Timeline {
            ops,
            faults,
            unit,
            end,
        }
    }
}

fn label(f: Function, value: EventValue) -> String {
    let show = |v: Option<i64>| v.map_or_else(|| "nil".to_string(), |v| v.to_string());
    match (f, value) {
        (Function::Read, EventValue::Read(v)) => format!("read {}", show(v)),
        (_, EventValue::Write(v)) => format!("write {v}"),
        (_, EventValue::Cas(a, b)) => format!("cas {a}→{b}"),
        (f, _) => format!("{f:?}").to_lowercase(),
    }
}

#[derive(Deserialize)]
struct NemesisLine {
    time: u64,
    process: serde_json::Value,
    f: String,
    #[serde(default)]
    value: serde_json::Value,
}

/// What one nemesis `f` does to the fault intervals.
#[derive(Debug, PartialEq, Eq)]
enum FaultEdge<'a> {
    /// A fault of this kind begins.
    Open(&'a str),
    /// Every open fault of this kind ends.
    Close(&'a str),
    /// Jepsen's bare `start`: restarts killed nodes if any are down, else begins a fault.
    Start,
}

/// Our nemesis writes `start-X` / `stop-X`; Jepsen's nemeses write `kill` / `start` (or
/// `restart`), `pause` / `resume`, `start` / `stop`, `bump-clock` / `reset-clock`. Anything
/// else (a nemesis log line, an unknown fault) draws nothing.
fn fault_edge(f: &str) -> Option<FaultEdge<'_>> {
    if let Some(kind) = f.strip_prefix("start-") {
        return Some(FaultEdge::Open(kind));
    }
    if let Some(kind) = f.strip_prefix("stop-") {
        return Some(FaultEdge::Close(kind));
    }
    Some(match f {
        "kill" => FaultEdge::Open("kill"),
        "restart" => FaultEdge::Close("kill"),
        "start" => FaultEdge::Start,
        "stop" => FaultEdge::Close("fault"),
        "pause" => FaultEdge::Open("pause"),
        "resume" => FaultEdge::Close("pause"),
        "reset-clock" | "clock-reset" => FaultEdge::Close("clock"),
        f if f.starts_with("clock-") || f.ends_with("-clock") => FaultEdge::Open("clock"),
        _ => return None,
    })
}

/// One nemesis action, whatever the history's format.
struct NemesisAction {
    /// Nanoseconds since the run started.
    time: u64,
    f: String,
    /// What the nemesis said it did, if it said.
    description: Option<String>,
}

/// The fault intervals recorded in a JSONL history (see `pair_faults`). Lines that are not
/// nemesis lines, or not JSON, are skipped (the checker's reader reports malformed lines).
pub fn faults_from_jsonl(text: &str) -> Vec<FaultInterval> {
    let actions = text
        .lines()
        // Cheap filter first: most lines are client operations.
        .filter(|line| line.contains("\"nemesis\""))
        .filter_map(|line| serde_json::from_str::<NemesisLine>(line).ok())
        .filter(|n| n.process == "nemesis")
        .map(|n| NemesisAction {
            time: n.time,
            description: n
                .value
                .get("description")
                .and_then(|d| d.as_str())
                .or_else(|| n.value.as_str())
                .map(str::to_string),
            f: n.f,
        });
    pair_faults(actions)
}

/// The fault intervals of a Jepsen / Knossos `history.edn` with `:time`s (see `pair_faults`).
pub fn faults_from_edn(text: &str) -> Vec<FaultInterval> {
    pair_faults(
        crate::edn::nemesis_actions(text)
            .into_iter()
            .map(|a| NemesisAction {
                time: a.time,
                f: a.f,
                description: a.description,
            }),
    )
}

/// Fault intervals from nemesis actions in history order: each start is closed by the next
/// stop of its kind (see [`fault_edge`] for the names), which closes every open fault of that
/// kind, as the nemesis heals them; a start never stopped lasts to the end. Jepsen records a
/// nemesis action twice (invoke, then info when done): a start repeating the open fault of its
/// kind with the same label is the same fault.
fn pair_faults(actions: impl Iterator<Item = NemesisAction>) -> Vec<FaultInterval> {
    let mut faults: Vec<FaultInterval> = Vec::new();
    for action in actions {
        let Some(edge) = fault_edge(&action.f) else {
            continue;
        };
        let t = action.time as f64 * 1e-9;
        let is_open = |f: &FaultInterval, kind: &str| f.kind == kind && f.end.is_none();
        let kind = match edge {
            FaultEdge::Open(kind) => kind,
            FaultEdge::Start if faults.iter().any(|f| is_open(f, "kill")) => "kill",
            FaultEdge::Start => "fault",
            FaultEdge::Close(_) => "",
        };
        let closing = match edge {
            FaultEdge::Close(kind) => Some(kind),
            FaultEdge::Start if kind == "kill" => Some("kill"),
            _ => None,
        };
        if let Some(kind) = closing {
            for open in faults.iter_mut().filter(|f| is_open(f, kind)) {
                open.end = Some(t.max(open.start));
            }
            continue;
        }
        let label = action.description.unwrap_or_else(|| action.f.clone());
        let repeated = faults
            .iter()
            .rev()
            .find(|f| f.kind == kind)
            .is_some_and(|f| f.end.is_none() && f.label == label);
        if !repeated {
            faults.push(FaultInterval {
                kind: kind.to_string(),
                label,
                start: t,
                end: None,
            });
        }
    }
    faults
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_pair_starts_with_stops_and_an_open_one_stays_open() {
        let text = [
            r#"{"index":0,"time":1000000000,"process":"nemesis","type":"info","f":"start-partition","value":{"description":"isolate n3","nodes":["n3"]}}"#,
            r#"{"index":1,"time":1500000000,"process":0,"type":"invoke","f":"read","key":"k","value":null}"#,
            r#"{"index":2,"time":3000000000,"process":"nemesis","type":"info","f":"stop-partition","value":{"description":"heal"}}"#,
            r#"{"index":3,"time":4000000000,"process":"nemesis","type":"info","f":"start-kill","value":"kill n1"}"#,
            "not json at all \"nemesis\"",
        ]
        .join("\n");
        let faults = faults_from_jsonl(&text);
        assert_eq!(faults.len(), 2);
        assert_eq!(faults[0].kind, "partition");
        assert_eq!(faults[0].label, "isolate n3");
        assert_eq!((faults[0].start, faults[0].end), (1.0, Some(3.0)));
        assert_eq!(faults[1].label, "kill n1");
        assert_eq!(faults[1].end, None);
    }

    fn nemesis(time_s: u64, f: &str, value: &str) -> String {
        format!(
            r#"{{"time":{},"process":"nemesis","type":"info","f":"{f}","value":{value}}}"#,
            time_s * 1_000_000_000
        )
    }

    fn spans(faults: &[FaultInterval]) -> Vec<(&str, f64, Option<f64>)> {
        faults
            .iter()
            .map(|f| (f.kind.as_str(), f.start, f.end))
            .collect()
    }

    #[test]
    fn jepsen_names_pair_up_as_faults() {
        let text = [
            nemesis(1, "kill", r#""kill n1""#),
            nemesis(2, "pause", "null"),
            nemesis(3, "start", "null"),
            nemesis(4, "resume", "null"),
            nemesis(5, "bump-clock", "null"),
            nemesis(6, "reset-clock", "null"),
            nemesis(7, "start", "null"),
            nemesis(8, "stop", "null"),
            nemesis(9, "log-message", r#""not a fault""#),
        ]
        .join("\n");
        #[rustfmt::skip]
        let expected = vec![
            ("kill",  1.0, Some(3.0)),
            ("pause", 2.0, Some(4.0)),
            ("clock", 5.0, Some(6.0)),
            ("fault", 7.0, Some(8.0)),
        ];
        assert_eq!(spans(&faults_from_jsonl(&text)), expected);
    }

    #[test]
    fn an_invoke_and_its_info_are_one_fault_and_a_stop_heals_every_open_one() {
        let text = [
            nemesis(1, "start-partition", r#"{"description":"isolate n1"}"#),
            nemesis(2, "start-partition", r#"{"description":"isolate n1"}"#),
            nemesis(3, "start-partition", r#"{"description":"isolate n2"}"#),
            nemesis(4, "stop-partition", r#"{"description":"heal"}"#),
            nemesis(5, "stop-kill", "null"),
        ]
        .join("\n");
        let faults = faults_from_jsonl(&text);
        assert_eq!(
            spans(&faults),
            vec![("partition", 1.0, Some(4.0)), ("partition", 3.0, Some(4.0))]
        );
        assert_eq!(faults[1].label, "isolate n2");
    }

    #[test]
    fn a_knossos_history_has_its_nemesis_as_faults() {
        let text = r#"[{:type :info, :f :start, :process :nemesis, :time 5000000000}
 {:type :info, :f :start, :process :nemesis, :time 5002000000}
 {:type :invoke, :f :read, :process 1, :time 6000000000}
 {:type :info, :f :stop, :process :nemesis, :time 9000000000, :value "fully connected"}]"#;
        assert_eq!(
            spans(&faults_from_edn(text)),
            vec![("fault", 5.0, Some(9.0))]
        );
    }

    #[test]
    fn a_client_process_named_like_a_fault_is_not_one() {
        let text = r#"{"time":1,"process":3,"type":"invoke","f":"kill","value":"nemesis"}"#;
        assert!(faults_from_jsonl(text).is_empty());
    }
}
