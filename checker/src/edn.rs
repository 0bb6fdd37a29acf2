//! Reader for Jepsen / Knossos `history.edn`: a vector (or list) of op maps such as
//! `{:process 4, :type :invoke, :f :cas, :value [1 2]}`, with `;` comments. Nemesis ops
//! (`:process :nemesis`) are skipped. Jepsen's independent histories carry `:value [k v]`
//! tuples; their first element becomes the key.
//!
//! Only the part of EDN these files use is read: maps, vectors, lists, keywords, integers,
//! strings, `nil`, `true`/`false`, symbols, and `#tag` prefixes (ignored). Anything else is a
//! malformed line with its number.

use crate::error::Error;
use crate::history::{Completion, Event, EventKind, EventValue, Events, Function};
use crate::model::{FREE, HELD, fingerprint};

/// Whether `text` looks like EDN (its first non-comment character opens a vector or list).
pub fn detect(text: &str) -> bool {
    text.lines()
        .map(str::trim_start)
        .find(|l| !l.is_empty() && !l.starts_with(';'))
        .is_some_and(|l| l.starts_with('[') || l.starts_with('(') || l.starts_with('{'))
        && text.contains(":type")
}

#[derive(Clone, Debug, PartialEq)]
enum Edn {
    Nil,
    Bool(bool),
    Int(i64),
    Keyword(String),
    Str(String),
    Symbol(String),
    Vector(Vec<Edn>),
    Map(Vec<(Edn, Edn)>),
}

struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> Parser<'a> {
    fn malformed(&self, expected: &str) -> Error {
        Error::Malformed {
            line: self.line,
            expected: expected.to_string(),
        }
    }

    fn skip_space(&mut self) {
        while let Some(&c) = self.text.get(self.pos) {
            match c {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b' ' | b'\t' | b'\r' | b',' => self.pos += 1,
                b';' => {
                    while self.text.get(self.pos).is_some_and(|&c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(&c) = self.text.get(self.pos) {
            if c.is_ascii_whitespace() || b",;{}[]()\"".contains(&c) {
                break;
            }
            self.pos += 1;
        }
        std::str::from_utf8(&self.text[start..self.pos]).unwrap_or("")
    }

    fn value(&mut self) -> Result<Edn, Error> {
        self.skip_space();
        let Some(&c) = self.text.get(self.pos) else {
            return Err(self.malformed("a value, not the end of the file"));
        };
        match c {
            b'[' | b'(' => {
                let close = if c == b'[' { b']' } else { b')' };
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_space();
                    match self.text.get(self.pos) {
                        Some(&c) if c == close => {
                            self.pos += 1;
                            return Ok(Edn::Vector(items));
                        }
                        None => return Err(self.malformed("a closing bracket")),
                        _ => items.push(self.value()?),
                    }
                }
            }
            b'{' => {
                self.pos += 1;
                let mut entries = Vec::new();
                loop {
                    self.skip_space();
                    match self.text.get(self.pos) {
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(Edn::Map(entries));
                        }
                        None => return Err(self.malformed("a closing brace")),
                        _ => {
                            let k = self.value()?;
                            let v = self.value()?;
                            entries.push((k, v));
                        }
                    }
                }
            }
            b'"' => {
                self.pos += 1;
                let mut s = Vec::new();
                loop {
                    match self.text.get(self.pos) {
                        Some(b'"') => {
                            self.pos += 1;
                            return Ok(Edn::Str(String::from_utf8_lossy(&s).into_owned()));
                        }
                        Some(b'\\') => {
                            if let Some(&e) = self.text.get(self.pos + 1) {
                                s.push(e);
                            }
                            self.pos += 2;
                        }
                        Some(&c) => {
                            if c == b'\n' {
                                self.line += 1;
                            }
                            s.push(c);
                            self.pos += 1;
                        }
                        None => return Err(self.malformed("a closing quote")),
                    }
                }
            }
            b'#' => {
                // A tagged literal (`#jepsen.history.Op{…}`): the tag says nothing we need.
                self.pos += 1;
                self.token();
                self.value()
            }
            b':' => {
                self.pos += 1;
                Ok(Edn::Keyword(self.token().to_string()))
            }
            _ => {
                let t = self.token();
                if t.is_empty() {
                    return Err(self.malformed("a value"));
                }
                Ok(match t {
                    "nil" => Edn::Nil,
                    "true" => Edn::Bool(true),
                    "false" => Edn::Bool(false),
                    _ => match t.trim_end_matches(['N', 'M']).parse::<i64>() {
                        Ok(n) => Edn::Int(n),
                        Err(_) => Edn::Symbol(t.to_string()),
                    },
                })
            }
        }
    }
}

fn get<'e>(map: &'e [(Edn, Edn)], key: &str) -> Option<&'e Edn> {
    map.iter()
        .find(|(k, _)| matches!(k, Edn::Keyword(name) if name == key))
        .map(|(_, v)| v)
}

fn int(e: &Edn) -> Option<i64> {
    match e {
        Edn::Int(n) => Some(*n),
        _ => None,
    }
}

/// The top-level op maps of a `history.edn`, each with the line it starts on.
fn items(text: &str) -> Result<Vec<(usize, Edn)>, Error> {
    let mut parser = Parser {
        text: text.as_bytes(),
        pos: 0,
        line: 1,
    };
    // The top-level vector by hand, to know the line each op map starts on.
    parser.skip_space();
    // A vector or list of op maps, or (Porcupine's kv files) one op map per line.
    let close = match parser.text.get(parser.pos) {
        Some(b'[') => Some(b']'),
        Some(b'(') => Some(b')'),
        Some(b'{') => None,
        _ => return Err(parser.malformed("a vector or list of operation maps")),
    };
    if close.is_some() {
        parser.pos += 1;
    }
    let mut items: Vec<(usize, Edn)> = Vec::new();
    loop {
        parser.skip_space();
        match (parser.text.get(parser.pos), close) {
            (Some(&c), Some(close)) if c == close => break,
            (None, Some(_)) => return Err(parser.malformed("the closing bracket of the history")),
            (None, None) => break,
            _ => {
                let line = parser.line;
                items.push((line, parser.value()?));
            }
        }
    }
    Ok(items)
}

/// Parse a whole `history.edn`.
pub fn parse(text: &str) -> Result<Events, Error> {
    let items = items(text)?;
    let mut events = Events::new();
    for (i, (line, item)) in items.iter().enumerate() {
        let line = *line;
        let malformed = |expected: &str| Error::Malformed {
            line,
            expected: expected.to_string(),
        };
        let Edn::Map(map) = item else {
            return Err(malformed("an operation map {:process … :type … :f …}"));
        };
        let process = match get(map, "process") {
            Some(Edn::Int(p)) if *p >= 0 => *p as u64,
            // The nemesis and other named processes are not clients.
            Some(Edn::Keyword(_)) | Some(Edn::Symbol(_)) | Some(Edn::Str(_)) => continue,
            _ => return Err(malformed(":process as a non-negative integer or :nemesis")),
        };
        let kind = match get(map, "type") {
            Some(Edn::Keyword(t)) => match t.as_str() {
                "invoke" => EventKind::Invoke,
                "ok" => EventKind::Complete(Completion::Ok),
                "fail" => EventKind::Complete(Completion::Fail),
                "info" => EventKind::Complete(Completion::Info),
                _ => return Err(malformed(":type :invoke, :ok, :fail or :info")),
            },
            _ => return Err(malformed(":type :invoke, :ok, :fail or :info")),
        };
        let f = match get(map, "f") {
            Some(Edn::Keyword(f)) => f.as_str(),
            _ => {
                return Err(malformed(
                    ":f :read, :write, :cas, :acquire, :release or :txn",
                ));
            }
        };
        let raw = get(map, "value").cloned().unwrap_or(Edn::Nil);
        // Porcupine's kv: `:key "3"`, string values, get / put / append.
        if let Some(key) = get(map, "key") {
            let text = |e: &Edn| match e {
                Edn::Str(t) => Some(t.clone()),
                _ => None,
            };
            let (f, value) = match f {
                "get" => {
                    let observed = text(&raw);
                    if let (Some(t), EventKind::Complete(Completion::Ok)) = (&observed, kind) {
                        events.record_observed_string(t);
                    }
                    (
                        Function::Read,
                        EventValue::Read(observed.map(|t| fingerprint(&t).0)),
                    )
                }
                "put" => (
                    Function::Write,
                    EventValue::Write(
                        fingerprint(&text(&raw).ok_or_else(|| malformed("a put value: a string"))?)
                            .0,
                    ),
                ),
                "append" => {
                    let (hash, shift) = fingerprint(
                        &text(&raw).ok_or_else(|| malformed("an append value: a string"))?,
                    );
                    (Function::Append, EventValue::Append(hash, shift))
                }
                other => {
                    return Err(malformed(&format!(
                        ":f :get, :put or :append for a kv history (not :{other})"
                    )));
                }
            };
            let key = key_text(key);
            // Porcupine's kv files have no times: the line order is the real-time order.
            events.set_untimed();
            events.push(Event {
                index: i as u64,
                time: i as u64,
                process,
                kind,
                f,
                key: Some(&key),
                value,
                node: None,
                error: None,
                line,
            });
            continue;
        }
        // Jepsen independent keys: [k v], where v is the op's own value.
        let (key, value) = match (&raw, f) {
            (Edn::Vector(pair), "cas") if pair.len() == 2 && matches!(pair[1], Edn::Vector(_)) => {
                (Some(key_text(&pair[0])), pair[1].clone())
            }
            (Edn::Vector(pair), "read" | "write" | "acquire" | "release") if pair.len() == 2 => {
                (Some(key_text(&pair[0])), pair[1].clone())
            }
            _ => (None, raw),
        };
        let (f, value) = match f {
            "read" => (
                Function::Read,
                EventValue::Read(match &value {
                    Edn::Nil => None,
                    v => Some(int(v).ok_or_else(|| malformed("a read value: an integer or nil"))?),
                }),
            ),
            "write" => (
                Function::Write,
                EventValue::Write(
                    int(&value).ok_or_else(|| malformed("a write value: an integer"))?,
                ),
            ),
            "cas" => match &value {
                Edn::Vector(ab) if ab.len() == 2 => match (int(&ab[0]), int(&ab[1])) {
                    (Some(a), Some(b)) => (Function::Cas, EventValue::Cas(a, b)),
                    _ => return Err(malformed("a cas value: [expected new] integers")),
                },
                _ => return Err(malformed("a cas value: [expected new]")),
            },
            // Knossos's mutex: the value, if any, means nothing to the model.
            "acquire" => (Function::Acquire, EventValue::Cas(FREE, HELD)),
            "release" => (Function::Release, EventValue::Cas(HELD, FREE)),
            // Knossos's multi-register: `[[:read :x nil] [:write :y 2]]`.
            "txn" => (Function::Txn, txn_value(&mut events, &value, &malformed)?),
            other => {
                return Err(malformed(&format!(
                    ":f :read, :write, :cas, :acquire, :release or :txn (not :{other}: this history needs a model Faultline does not have)"
                )));
            }
        };
        let time = match get(map, "time").and_then(int) {
            Some(t) => t.max(0) as u64,
            None => {
                events.set_untimed();
                i as u64
            }
        };
        events.push(Event {
            index: i as u64,
            time,
            process,
            kind,
            f,
            key: key.as_deref(),
            value,
            node: None,
            error: None,
            line,
        });
    }
    Ok(events)
}

/// A transaction's value: a vector of `[f register value]` with `f` `:read` (`:r`) or
/// `:write` (`:w`), the register a keyword, string or integer, the value an integer or nil.
fn txn_value(
    events: &mut Events,
    value: &Edn,
    malformed: &dyn Fn(&str) -> Error,
) -> Result<EventValue, Error> {
    const SHAPE: &str =
        "a txn value: a vector of [:read register value] or [:write register value]";
    let Edn::Vector(micro_ops) = value else {
        return Err(malformed(SHAPE));
    };
    let mut parsed = Vec::with_capacity(micro_ops.len());
    for micro in micro_ops {
        let Edn::Vector(parts) = micro else {
            return Err(malformed(SHAPE));
        };
        let [Edn::Keyword(f), register, value] = parts.as_slice() else {
            return Err(malformed(SHAPE));
        };
        let f = match f.as_str() {
            "read" | "r" => Function::Read,
            "write" | "w" => Function::Write,
            _ => return Err(malformed(SHAPE)),
        };
        let value = match value {
            Edn::Nil => None,
            v => Some(int(v).ok_or_else(|| malformed("a txn value: integers or nil"))?),
        };
        parsed.push((f, key_text(register), value));
    }
    Ok(events.txn_value(parsed.iter().map(|(f, k, v)| (*f, k.as_str(), *v))))
}

/// One op of the nemesis (`:process :nemesis`), as the report's fault bands need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NemesisAction {
    /// `:time` (nanoseconds since the test started).
    pub time: u64,
    /// `:f` without the colon: `start`, `stop`, `kill`, …
    pub f: String,
    /// `:value` when it is a string (Jepsen often records what was done there).
    pub description: Option<String>,
}

/// The nemesis ops of a `history.edn` that carry a `:time`; a file that does not parse has
/// none (its client ops are what [`parse`] reports errors about).
pub fn nemesis_actions(text: &str) -> Vec<NemesisAction> {
    let Ok(items) = items(text) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|(_, item)| {
            let Edn::Map(map) = item else { return None };
            let is_nemesis = matches!(get(map, "process"),
                Some(Edn::Keyword(p)) | Some(Edn::Symbol(p)) | Some(Edn::Str(p)) if p == "nemesis");
            if !is_nemesis {
                return None;
            }
            let time = u64::try_from(int(get(map, "time")?)?).ok()?;
            let f = match get(map, "f")? {
                Edn::Keyword(f) | Edn::Symbol(f) | Edn::Str(f) => f.clone(),
                _ => return None,
            };
            let description = match get(map, "value") {
                Some(Edn::Str(text)) => Some(text.clone()),
                _ => None,
            };
            Some(NemesisAction {
                time,
                f,
                description,
            })
        })
        .collect()
}

fn key_text(e: &Edn) -> String {
    match e {
        Edn::Int(n) => n.to_string(),
        Edn::Keyword(k) => k.clone(),
        Edn::Str(s) | Edn::Symbol(s) => s.clone(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_knossos_maps_with_comments_and_skips_the_nemesis() {
        let text = r#"; a comment
[{:process 4, :type :invoke, :f :cas, :value [1 2]}
 {:process :nemesis, :type :info, :f :start, :value nil}
 ; another
 {:process 4, :type :fail, :f :cas, :value [1 2]}
 {:process 5 :type :invoke :f :read :value nil}
 {:process 5 :type :ok :f :read :value 3}]"#;
        assert!(detect(text));
        let events = parse(text).expect("parses");
        assert_eq!(events.len(), 4);
        assert_eq!(events.get(0).value, EventValue::Cas(1, 2));
        assert_eq!(events.get(1).kind, EventKind::Complete(Completion::Fail));
        assert_eq!(events.get(3).value, EventValue::Read(Some(3)));
    }

    #[test]
    fn independent_keys_and_tagged_ops_are_read() {
        let text = r#"(#jepsen.history.Op{:index 0, :time 10, :type :invoke, :process 0, :f :cas, :value [7 [1 2]]}
 #jepsen.history.Op{:index 1, :time 20, :type :ok, :process 0, :f :write, :value ["k" 5]})"#;
        let events = parse(text).expect("parses");
        assert_eq!(events.get(0).key, Some("7"));
        assert_eq!(events.get(0).value, EventValue::Cas(1, 2));
        assert_eq!(events.get(0).time, 10);
        assert_eq!(events.get(1).key, Some("k"));
    }

    #[test]
    fn nemesis_actions_are_read_with_their_times() {
        let text = r#"[{:process 0, :type :invoke, :f :read, :value nil, :time 5}
 {:type :info, :f :start, :process :nemesis, :time 5326396898, :index 169}
 {:type :info, :f :stop, :process :nemesis, :time 10329153864, :value "fully connected"}
 {:type :info, :f :start, :process :nemesis}]"#;
        let actions = nemesis_actions(text);
        assert_eq!(
            actions,
            vec![
                NemesisAction {
                    time: 5326396898,
                    f: "start".into(),
                    description: None
                },
                NemesisAction {
                    time: 10329153864,
                    f: "stop".into(),
                    description: Some("fully connected".into())
                },
            ]
        );
        assert!(nemesis_actions("[{:process").is_empty());
    }

    #[test]
    fn lock_operations_are_compare_and_sets_of_the_lock_with_or_without_a_key() {
        let events = parse(
            "[{:process 0, :type :invoke, :f :acquire}\n {:process 0, :type :ok, :f :acquire, :value nil}\n {:process 1, :type :invoke, :f :release, :value [l2 nil]}]",
        )
        .unwrap();
        let ops: Vec<(Function, EventValue, Option<&str>)> =
            events.iter().map(|e| (e.f, e.value, e.key)).collect();
        assert_eq!(
            ops,
            [
                (Function::Acquire, EventValue::Cas(FREE, HELD), None),
                (Function::Acquire, EventValue::Cas(FREE, HELD), None),
                (Function::Release, EventValue::Cas(HELD, FREE), Some("l2")),
            ]
        );
    }

    #[test]
    fn bad_input_names_what_was_expected() {
        let error = parse("[{:process 1, :type :invoke, :f :read, :value nil}\n {:process 1, :type :invoke, :f :dequeue}]").unwrap_err();
        assert!(error.to_string().contains("model"), "{error}");
        assert!(error.to_string().starts_with("line 2:"), "{error}");
        let error = parse("[{:process 1, :type :invoke").unwrap_err();
        assert!(error.to_string().contains("line 1"), "{error}");
    }
}
