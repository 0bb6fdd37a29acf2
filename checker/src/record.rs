//! One line of `history.jsonl`: the contract between the harness that writes histories and
//! everything that reads them (checker, report, `faultline serve`). DESIGN.md, "The history".
//!
//! This is the simple, owned form, for writers and for readers of small files. The checker's
//! own reader parses the same lines into its columnar history without going through it.

use serde::{Deserialize, Serialize};

/// Who performed an event: a client process, or the nemesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RecordProcess {
    /// A client process. A process whose op ended `info` is never reused.
    Client(u64),
    /// The fault injector; always serialised as the string `"nemesis"`.
    Nemesis(NemesisTag),
}

/// The literal string `"nemesis"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NemesisTag {
    #[serde(rename = "nemesis")]
    Nemesis,
}

impl RecordProcess {
    /// The nemesis process.
    pub const NEMESIS: RecordProcess = RecordProcess::Nemesis(NemesisTag::Nemesis);
}

/// Jepsen's four event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordType {
    /// The operation was sent.
    Invoke,
    /// It took effect, between its invoke and now.
    Ok,
    /// It certainly did not take effect.
    Fail,
    /// It may or may not take effect, at any time after its invoke.
    Info,
}

/// One event, exactly as one line of `history.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 0, 1, 2, … in file order.
    pub index: u64,
    /// Nanoseconds since the run started (the harness's monotonic clock).
    pub time: u64,
    pub process: RecordProcess,
    #[serde(rename = "type")]
    pub kind: RecordType,
    /// `read`, `write`, `cas`; for the nemesis `start-partition`, `kill`, `pause`, ….
    pub f: String,
    /// The register key; absent in single-register histories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// read: null on invoke, the observed value on ok (null = absent); write: v; cas:
    /// `[expected, new]`; nemesis: a description of the fault.
    #[serde(default)]
    pub value: serde_json::Value,
    /// The node the request was sent to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Why, for `fail` and `info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_client_and_nemesis_lines() {
        let lines = [
            r#"{"index":0,"time":5,"process":3,"type":"invoke","f":"cas","key":"k1","value":[1,2],"node":"n2"}"#,
            r#"{"index":1,"time":9,"process":"nemesis","type":"info","f":"start-partition","value":"isolate n3"}"#,
            r#"{"index":2,"time":12,"process":3,"type":"fail","f":"cas","key":"k1","value":[1,2],"node":"n2","error":"mismatch"}"#,
        ];
        for line in lines {
            let record: Record = serde_json::from_str(line).expect("valid line");
            assert_eq!(serde_json::to_string(&record).expect("serialises"), line);
        }
        let nemesis: Record = serde_json::from_str(lines[1]).expect("valid line");
        assert_eq!(nemesis.process, RecordProcess::NEMESIS);
    }
}
