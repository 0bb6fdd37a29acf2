//! Reader for our `history.jsonl` (DESIGN.md, "The history").

use crate::error::Error;
use crate::history::{Completion, Event, EventKind, EventValue, Function};
use crate::record::{Record, RecordProcess, RecordType};

/// Parse a whole JSONL history. Nemesis events and blank lines are skipped; anything else
/// that is not a well-formed client event is an error naming its line.
pub fn parse(text: &str) -> Result<Vec<Event>, Error> {
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let record: Record = serde_json::from_str(line).map_err(|e| Error::Malformed {
            line: number,
            expected: format!(
                "a JSON history event {{\"index\",\"time\",\"process\",\"type\",\"f\",…}}: {e}"
            ),
        })?;
        let RecordProcess::Client(process) = record.process else {
            continue;
        };
        events.push(event_of(record, process, number)?);
    }
    Ok(events)
}

fn event_of(record: Record, process: u64, line: usize) -> Result<Event, Error> {
    let malformed = |expected: &str| Error::Malformed {
        line,
        expected: expected.to_string(),
    };
    let kind = match record.kind {
        RecordType::Invoke => EventKind::Invoke,
        RecordType::Ok => EventKind::Complete(Completion::Ok),
        RecordType::Fail => EventKind::Complete(Completion::Fail),
        RecordType::Info => EventKind::Complete(Completion::Info),
    };
    let int = |v: &serde_json::Value| v.as_i64();
    let (f, value) = match record.f.as_str() {
        "read" => {
            let observed = match &record.value {
                serde_json::Value::Null => None,
                v => Some(int(v).ok_or_else(|| malformed("a read value: an integer or null"))?),
            };
            (Function::Read, EventValue::Read(observed))
        }
        "write" => {
            let v = int(&record.value)
                .ok_or_else(|| malformed("a write value: an integer (writes never write null)"))?;
            (Function::Write, EventValue::Write(v))
        }
        "cas" => {
            let pair = record.value.as_array().filter(|a| a.len() == 2);
            let (a, b) = pair
                .and_then(|a| Some((int(&a[0])?, int(&a[1])?)))
                .ok_or_else(|| malformed("a cas value: [expected, new] integers"))?;
            (Function::Cas, EventValue::Cas(a, b))
        }
        other => {
            return Err(malformed(&format!(
                "f to be read, write or cas for a client process, not `{other}`"
            )));
        }
    };
    Ok(Event {
        index: record.index,
        time: record.time,
        process,
        kind,
        f,
        key: record.key,
        value,
        node: record.node,
        error: record.error,
        line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_nemesis_and_reports_bad_lines() {
        let text = concat!(
            r#"{"index":0,"time":1,"process":0,"type":"invoke","f":"write","key":"a","value":3}"#,
            "\n",
            r#"{"index":1,"time":2,"process":"nemesis","type":"info","f":"start-kill","value":{"nodes":["n1"]}}"#,
            "\n\n",
            r#"{"index":2,"time":3,"process":0,"type":"ok","f":"write","key":"a","value":3}"#,
            "\n"
        );
        let events = parse(text).expect("parses");
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].line, 4);

        let error = parse("{\"index\":0}\n").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("line 1: expected a JSON history event"),
            "{error}"
        );
        let error = parse(concat!(
            r#"{"index":0,"time":1,"process":0,"type":"invoke","f":"cas","key":"a","value":3}"#,
            "\n"
        ))
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 1: expected a cas value: [expected, new] integers"
        );
    }
}
