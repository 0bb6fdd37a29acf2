//! Reader for our `history.jsonl` (DESIGN.md, "The history").
//!
//! Lines are read straight into [`Events`] with borrowed strings and a value visitor that
//! takes only the shapes client events use (null, an integer, `[a, b]`), so a
//! million-operation history is read without a heap string or JSON tree per line.

use std::borrow::Cow;

use rayon::prelude::*;
use serde::Deserialize;
use serde::de::{self, IgnoredAny, SeqAccess, Visitor};

use crate::error::Error;
use crate::history::{Completion, Event, EventKind, EventValue, Events, Function};
use crate::model::{FREE, HELD};
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
/// that is not a well-formed client event is an error naming its line. Large histories are
/// read in chunks of whole lines, in parallel (rayon), and joined in file order.
pub fn parse(text: &str) -> Result<Events, Error> {
    let chunks = line_chunks(text, CHUNK);
    if chunks.len() < 2 {
        return parse_lines(text, 1);
    }
    // The first line number of each chunk, for error messages and `Event::line`.
    let newlines: Vec<usize> = chunks
        .par_iter()
        .map(|c| memchr_count(&text.as_bytes()[c.clone()]))
        .collect();
    let firsts = newlines.iter().scan(1, |line, n| {
        let first = *line;
        *line += n;
        Some(first)
    });
    let jobs: Vec<(std::ops::Range<usize>, usize)> = chunks.into_iter().zip(firsts).collect();
    let parts: Vec<Result<Events, Error>> = jobs
        .into_par_iter()
        .map(|(range, first)| parse_lines(&text[range], first))
        .collect();
    let mut events = Events::new();
    events.reserve(parts.iter().flatten().map(Events::len).sum());
    for part in parts {
        // The first error in file order is the one reported.
        events.append(part?);
    }
    Ok(events)
}

/// A last line that its writer stopped in the middle of (a crash, a full disk, a run still
/// writing): no newline after it, and JSON that ends too early (any other fault in it is a
/// malformed line, as anywhere else). Returns its line number and the byte offset where it
/// starts. Dropping it loses nothing another line depends on: a client event is written
/// before anything that could observe its effect, so no earlier line does.
pub fn torn_tail(text: &str) -> Option<(usize, usize)> {
    if text.ends_with('\n') {
        return None;
    }
    let start = text.rfind('\n').map_or(0, |i| i + 1);
    let last = &text[start..];
    if last.trim().is_empty() {
        return None;
    }
    let error = serde_json::from_str::<IgnoredAny>(last).err()?;
    (error.classify() == serde_json::error::Category::Eof)
        .then(|| (memchr_count(&text.as_bytes()[..start]) + 1, start))
}

/// Bytes per parallel chunk: big enough that joining costs little, small enough that two
/// cores share a few hundred megabytes evenly.
const CHUNK: usize = 8 << 20;

/// `text` cut into ranges of about `size` bytes, each ending after a newline (the last at
/// the end of the text).
fn line_chunks(text: &str, size: usize) -> Vec<std::ops::Range<usize>> {
    let bytes = text.as_bytes();
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        let mut end = (start + size).min(bytes.len());
        match bytes[end..].iter().position(|&b| b == b'\n') {
            Some(i) => end += i + 1,
            None => end = bytes.len(),
        }
        chunks.push(start..end);
        start = end;
    }
    chunks
}

fn memchr_count(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

/// Parse `text`, whose first line is line `first` of the file.
fn parse_lines(text: &str, first: usize) -> Result<Events, Error> {
    let mut events = Events::new();
    for (i, line) in text.lines().enumerate() {
        let number = first + i;
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
        // Transactions are rare and nested: their value is read again, as a JSON tree.
        let txn = match &*record.f {
            "txn" => Some(txn_value(&mut events, line, number)?),
            _ => None,
        };
        events.push(event_of(&record, process, number, txn)?);
    }
    Ok(events)
}

/// The value of a `txn` line: `[["read","x",null],["write","y",2]]` (`r` and `w` also do),
/// stored in `events`.
fn txn_value(events: &mut Events, line: &str, number: usize) -> Result<EventValue, Error> {
    let malformed = || {
        Error::Malformed {
        line: number,
        expected: "a txn value: an array of [\"read\", register, value] or [\"write\", register, value], registers strings, values integers or null".to_string(),
    }
    };
    #[derive(Deserialize)]
    struct TxnLine {
        value: Vec<(String, String, Option<i64>)>,
    }
    let parsed: TxnLine = serde_json::from_str(line).map_err(|_| malformed())?;
    let mut micro_ops = Vec::with_capacity(parsed.value.len());
    for (f, register, value) in &parsed.value {
        let f = match f.as_str() {
            "read" | "r" => Function::Read,
            "write" | "w" => Function::Write,
            _ => return Err(malformed()),
        };
        micro_ops.push((f, register.as_str(), *value));
    }
    Ok(events.txn_value(micro_ops))
}

fn event_of<'a>(
    record: &'a Line<'a>,
    process: u64,
    line: usize,
    txn: Option<EventValue>,
) -> Result<Event<'a>, Error> {
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
        // The mutex model's lock: the value, if any, means nothing to it.
        ("acquire", _) => (Function::Acquire, EventValue::Cas(FREE, HELD)),
        ("release", _) => (Function::Release, EventValue::Cas(HELD, FREE)),
        ("txn", _) => (Function::Txn, txn.ok_or_else(|| malformed("a txn value"))?),
        (other, _) => {
            return Err(malformed(&format!(
                "f to be read, write, cas, acquire, release or txn for a client process, not `{other}`"
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

    /// Cut into chunks and read in parallel, a history reads exactly as in one piece, with
    /// the same line numbers in its events and its errors.
    #[test]
    fn chunked_reading_keeps_order_and_line_numbers() {
        let mut lines = Vec::new();
        for i in 0..500u64 {
            lines.push(format!(
                r#"{{"index":{},"time":{i},"process":{},"type":"invoke","f":"write","key":"k{}","value":{i},"node":"n{}"}}"#,
                i * 2,
                i % 7,
                i % 3,
                i % 5
            ));
            lines.push(format!(
                r#"{{"index":{},"time":{i},"process":{},"type":"ok","f":"write","key":"k{}","value":{i},"node":"n{}"}}"#,
                i * 2 + 1,
                i % 7,
                i % 3,
                i % 5
            ));
        }
        let text = lines.join("\n");
        let whole = parse_lines(&text, 1).expect("parses");
        let chunks = line_chunks(&text, 1000);
        assert!(chunks.len() > 10);
        let mut joined = Events::new();
        let mut first = 1;
        for range in chunks {
            let part = &text[range];
            joined.append(parse_lines(part, first).expect("parses"));
            first += memchr_count(part.as_bytes());
        }
        assert_eq!(joined.len(), whole.len());
        for i in 0..whole.len() {
            assert_eq!(joined.get(i), whole.get(i));
        }
        let mut bad = lines.clone();
        bad[777] = "{not json".into();
        let error = parse(&bad.join("\n")).unwrap_err();
        assert!(error.to_string().starts_with("line 778:"), "{error}");
    }

    #[test]
    fn only_a_last_line_cut_off_mid_json_is_torn() {
        let whole =
            r#"{"index":0,"time":1,"process":0,"type":"invoke","f":"write","key":"a","value":3}"#;
        let cut = &whole[..40];
        assert_eq!(torn_tail(""), None);
        assert_eq!(torn_tail(&format!("{whole}\n")), None);
        // A whole last line needs no newline.
        assert_eq!(torn_tail(whole), None);
        assert_eq!(torn_tail(cut), Some((1, 0)));
        let two = format!("{whole}\n\n{cut}");
        assert_eq!(torn_tail(&two), Some((3, whole.len() + 2)));
        // Broken, not cut short: an error for the parser to report, as in any other line.
        assert_eq!(torn_tail(&format!("{whole}\n{{not json")), None);
        // A cut line followed by a newline was not the last thing written.
        assert_eq!(torn_tail(&format!("{cut}\n")), None);
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
