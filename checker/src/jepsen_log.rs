//! Reader for Jepsen's text logs of a single register, as in Porcupine's etcd data set
//! (`INFO  jepsen.util - 3 :invoke :cas [1 2]`): process, type, function and value separated
//! by tabs. Times are not in the log; the line order is the real-time order, so the line
//! index serves as the time.

use crate::error::Error;
use crate::history::{Completion, Event, EventKind, EventValue, Events, Function};

/// Whether `text` looks like a Jepsen text log.
pub fn detect(text: &str) -> bool {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| l.contains("jepsen.util - "))
}

/// Parse a whole log. Lines that are not operation lines (other log output) are skipped.
pub fn parse(text: &str) -> Result<Events, Error> {
    let mut events = Events::new();
    // The log has no times: the line order is the real-time order.
    events.set_untimed();
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        let Some((_, rest)) = line.split_once("jepsen.util - ") else {
            continue;
        };
        let malformed = |expected: &str| Error::Malformed {
            line: number,
            expected: expected.to_string(),
        };
        // Tabs in most logs, runs of spaces in some; the value itself may hold a space.
        let mut rest = rest.trim();
        let mut fields = [""; 3];
        for field in &mut fields {
            let (head, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            *field = head;
            rest = tail.trim_start();
        }
        let [process, kind, f] = fields;
        let value = rest.trim_end();
        if value.is_empty() {
            return Err(malformed(
                "`<process> :<type> :<f> <value>` (tab- or space-separated) after `jepsen.util - `",
            ));
        }
        if process == ":nemesis" {
            continue;
        }
        let process: u64 = process
            .parse()
            .map_err(|_| malformed("an integer process before the first tab"))?;
        let kind = match kind {
            ":invoke" => EventKind::Invoke,
            ":ok" => EventKind::Complete(Completion::Ok),
            ":fail" => EventKind::Complete(Completion::Fail),
            ":info" => EventKind::Complete(Completion::Info),
            _ => return Err(malformed("a type of :invoke, :ok, :fail or :info")),
        };
        let int = |s: &str| s.parse::<i64>().ok();
        // Completions of indeterminate ops carry a reason (`:timed-out`) instead of a value;
        // pairing takes the value from the invoke then.
        let reason = value.starts_with(':');
        let (f, value) = match f {
            ":read" => {
                let v = match value {
                    "nil" => None,
                    _ if reason => None,
                    v => Some(int(v).ok_or_else(|| malformed("a read value: an integer or nil"))?),
                };
                (Function::Read, EventValue::Read(v))
            }
            ":write" => {
                let v = if reason {
                    0
                } else {
                    int(value).ok_or_else(|| malformed("a write value: an integer"))?
                };
                (Function::Write, EventValue::Write(v))
            }
            ":cas" => {
                let pair = value
                    .strip_prefix('[')
                    .and_then(|v| v.strip_suffix(']'))
                    .and_then(|v| v.split_once(' '))
                    .and_then(|(a, b)| Some((int(a.trim())?, int(b.trim())?)));
                let (a, b) = match pair {
                    Some(p) => p,
                    None if reason => (0, 0),
                    None => return Err(malformed("a cas value: [expected new]")),
                };
                (Function::Cas, EventValue::Cas(a, b))
            }
            _ => return Err(malformed("a function of :read, :write or :cas")),
        };
        let value = match (kind, value) {
            // A completion's reason carries no value: keep the invoke's.
            (EventKind::Complete(_), v) if reason && !matches!(v, EventValue::Read(_)) => v,
            (_, v) => v,
        };
        events.push(Event {
            index: i as u64,
            time: i as u64,
            process,
            kind,
            f,
            key: None,
            value,
            node: None,
            // In these logs a failed CAS is one whose compare did not match (Jepsen's etcd
            // client turns every other error into `:info`).
            error: (kind == EventKind::Complete(Completion::Fail) && f == Function::Cas)
                .then_some("mismatch"),
            line: number,
        });
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_values_and_reasons() {
        let text = "INFO  jepsen.util - 3\t:invoke\t:cas\t[1 2]\n\
                    INFO  jepsen.util - 3\t:info\t:cas\t:timed-out\n\
                    INFO  jepsen.util - 4\t:invoke\t:read\tnil\n\
                    INFO  jepsen.util - 4\t:ok\t:read\t7\n";
        assert!(detect(text));
        let events = parse(text).expect("parses");
        assert_eq!(events.len(), 4);
        assert_eq!(events.get(0).value, EventValue::Cas(1, 2));
        assert_eq!(events.get(3).value, EventValue::Read(Some(7)));
        let error = parse("INFO  jepsen.util - x\t:ok\t:read\t7\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 1: expected an integer process before the first tab"
        );
        let spaced =
            parse("INFO  jepsen.util - 4   :invoke :cas    [1 2]\n").expect("spaces parse");
        assert_eq!(spaced.get(0).value, EventValue::Cas(1, 2));
    }
}
