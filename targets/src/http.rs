//! What every HTTP client of a target shares: how long it waits for an answer, and how a
//! request that never got one ends.

use std::time::Duration;

use crate::error::Error;
use crate::outcome::Outcome;

/// A client whose every request gives up after `timeout`.
pub(crate) fn client_with_timeout(timeout: Duration) -> Result<reqwest::Client, Error> {
    Ok(reqwest::Client::builder().timeout(timeout).build()?)
}

/// The outcome of a request that got no HTTP answer: refused before anything was sent →
/// `fail`; otherwise a read (which changes nothing) → `fail`, and a write or CAS, which may
/// have reached the server and taken effect → `info`.
pub(crate) fn unanswered(e: &reqwest::Error, is_read: bool) -> Outcome {
    if e.is_connect() {
        Outcome::Fail(format!("connect: {}", root_cause(e)))
    } else if is_read {
        Outcome::Fail(describe(e))
    } else {
        Outcome::Info(describe(e))
    }
}

/// `timeout`, or the innermost cause (`Connection reset by peer`).
pub(crate) fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else {
        root_cause(e)
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut source = e;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}

/// The answer of a server that spoke HTTP but did not do what was asked: reads fail; a write
/// or CAS failed for sure on a 4xx, and may have taken effect on anything else (5xx).
pub(crate) fn refused(status: u16, reason: String, is_read: bool) -> Outcome {
    let why = format!("http {status}: {reason}");
    if is_read || (400..500).contains(&status) {
        Outcome::Fail(why)
    } else {
        Outcome::Info(why)
    }
}
