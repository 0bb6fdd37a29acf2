//! Reader for our `history.jsonl` (DESIGN.md, "The history").
//!
//! Lines are read straight into [`Events`] with borrowed strings and a value visitor that
//! takes only the shapes client events use (null, an integer, `[a, b]`), so a
//! million-operation history is read without a heap string or JSON tree per line.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, SeqAccess, Visitor};

use crate::error::Error;
use crate::history::{Completion, Event, EventKind, EventValue, Events, Function};
use crate::record::RecordType;

/// One line, borrowing its strings from the text where it can.
#[derive(Deserialize)]
struct Line<'a> {
    index: u64,
    time: u64,
    process: Process,
    #[serde(rename = "type")]
    kind: RecordType,
    #[serde(borrow)]
    f: Cow<'a, str>,
    #[serde(borrow, default)]
    key: Option<Cow<'a, str>>,
    #[serde(default)]
    value: ValueField,
    #[serde(borrow, default)]
    node: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    error: Option<Cow<'a, str>>,
}

/// `"process"`: a client's integer, or anything else (the nemesis).
enum Process {
    Client(u64),
    Other,
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Process;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an integer process or \"nemesis\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Process, E> {
                Ok(Process::Client(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Process, E> {
                u64::try_from(v)
                    .map(Process::Client)
                    .map_err(|_| E::custom("a process is not negative"))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Process, E> {
                Ok(Process::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// `"value"` in the shapes a client event uses; anything else (a nemesis description, a
/// malformed value) is `Other` and judged by the function it belongs to.
#[derive(Default)]
enum ValueField {
    #[default]
    Null,
    Int(i64),
    Pair(i64, i64),
    Other,
}

impl<'de> Deserialize<'de> for ValueField {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ValueField;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a history value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<ValueField, E> {
                Ok(ValueField::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<ValueField, E> {
                Ok(ValueField::Null)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ValueField, E> {
                Ok(ValueField::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ValueField, E> {
                Ok(i64::try_from(v).map_or(ValueField::Other, ValueField::Int))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<ValueField, E> {
                Ok(ValueField::Other)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<ValueField, E> {
                Ok(ValueField::Other)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<ValueField, E> {
                Ok(ValueField::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ValueField, A::Error> {
                let mut items = [None, None];
                let mut count = 0;
                while let Some(item) = seq.next_element::<ValueField>()? {
                    if let (Some(slot), ValueField::Int(v)) = (items.get_mut(count), item) {
                        *slot = Some(v);
                    }
                    count += 1;
                }
                Ok(match (count, items) {
                    (2, [Some(a), Some(b)]) => ValueField::Pair(a, b),
                    _ => ValueField::Other,
                })
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<ValueField, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(ValueField::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// Parse a whole JSONL history. Nemesis events and blank lines are skipped; anything else
/// that is not a well-formed client event is an error naming its line.
pub fn parse(text: &str) -> Result<Events, Error> {
    let mut events = Events::new();
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let record: Line<'_> = serde_json::from_str(line).map_err(|e| Error::Malformed {
            line: number,
            expected: format!(
                "a JSON history event {{\"index\",\"time\",\"process\",\"type\",\"f\",…}}: {e}"
            ),
        })?;
        let Process::Client(process) = record.process else {
            continue;
        };
        events.push(event_of(&record, process, number)?);
    }
    Ok(events)
}

fn event_of<'a>(record: &'a Line<'a>, process: u64, line: usize) -> Result<Event<'a>, Error> {
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
    let (f, value) = match (&*record.f, &record.value) {
        ("read", ValueField::Null) => (Function::Read, EventValue::Read(None)),
        ("read", ValueField::Int(v)) => (Function::Read, EventValue::Read(Some(*v))),
        ("read", _) => return Err(malformed("a read value: an integer or null")),
        ("write", ValueField::Int(v)) => (Function::Write, EventValue::Write(*v)),
        ("write", _) => {
            return Err(malformed(
                "a write value: an integer (writes never write null)",
            ));
        }
        ("cas", ValueField::Pair(a, b)) => (Function::Cas, EventValue::Cas(*a, *b)),
        ("cas", _) => return Err(malformed("a cas value: [expected, new] integers")),
        (other, _) => {
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
        key: record.key.as_deref(),
        value,
        node: record.node.as_deref(),
        error: record.error.as_deref(),
        line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Escaped strings cannot be borrowed from the text; they are read all the same.
    #[test]
    fn escaped_keys_and_errors_are_read() {
        let text = r#"{"index":0,"time":1,"process":0,"type":"fail","f":"cas","key":"a\"b","value":[1,2],"error":"mis\u006datch","node":"n\t1"}"#;
        let events = parse(text).expect("parses");
        let e = events.get(0);
        assert_eq!(e.key, Some("a\"b"));
        assert_eq!(e.error, Some("mismatch"));
        assert_eq!(e.node, Some("n\t1"));
    }

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
        assert_eq!(events.get(0).key, Some("a"));
        assert_eq!(events.get(0).value, EventValue::Write(3));
        assert_eq!(events.get(1).line, 4);

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
        let error = parse(concat!(
            r#"{"index":0,"time":1,"process":0,"type":"invoke","f":"cas","key":"a","value":[1,2,3]}"#,
            "\n"
        ))
        .unwrap_err();
        assert!(error.to_string().contains("cas value"), "{error}");
        let error = parse(concat!(
            r#"{"index":0,"time":1,"process":-1,"type":"invoke","f":"read","key":"a","value":null}"#,
            "\n"
        ))
        .unwrap_err();
        assert!(error.to_string().contains("not negative"), "{error}");
    }
}
