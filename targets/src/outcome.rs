//! What a client asks, and what became of it.

/// A register value. Workloads write unique values per key; no write ever writes "absent".
pub type Value = i64;

/// One operation a client sends to the system under test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Read a key; absent keys read as `None`.
    Read { key: String },
    /// Write `value` to `key`.
    Write { key: String, value: Value },
    /// Set `key` to `new` if and only if it currently holds `expected`.
    Cas {
        key: String,
        expected: Value,
        new: Value,
    },
}

impl Request {
    /// The key this request touches.
    pub fn key(&self) -> &str {
        match self {
            Request::Read { key } | Request::Write { key, .. } | Request::Cas { key, .. } => key,
        }
    }
}

/// What became of a request: decided at one place per target (STYLE.md rule 7).
///
/// - refused before send, or a definite rejection (4xx, CAS compare failed) → [`Outcome::Fail`];
/// - timeout, reset or 5xx after a write or CAS was sent → [`Outcome::Info`];
/// - a read that did not complete → [`Outcome::Fail`] (a read changes nothing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It took effect. For a read, the observed value (`None` = absent); `None` otherwise.
    Ok(Option<Value>),
    /// It certainly did not take effect; the reason (`"mismatch"` for a failed CAS compare).
    Fail(String),
    /// It may or may not have taken effect; the reason.
    Info(String),
}

/// The error string a CAS whose compare did not match completes with (DESIGN.md).
pub const CAS_MISMATCH: &str = "mismatch";
