//! The answer to "is this history linearizable?".

use serde::{Deserialize, Serialize};

/// A checker's verdict. Ordered from best to worst, so the verdict of many keys or many files
/// is their maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Verdict {
    /// Every key has a linearization.
    Valid,
    /// The checker could not decide within its budget (time or memory); nothing was found.
    Unknown,
    /// At least one key has no linearization: a consistency violation.
    Invalid,
}

impl Verdict {
    /// The process exit code DESIGN.md assigns: 0 valid, 1 invalid, 2 unknown.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Valid => 0,
            Verdict::Invalid => 1,
            Verdict::Unknown => 2,
        }
    }

    /// The worse of two verdicts: invalid beats unknown beats valid.
    pub fn worst(self, other: Verdict) -> Verdict {
        self.max(other)
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::Unknown => "unknown",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Verdict::*;

    #[test]
    fn worst_prefers_invalid_then_unknown() {
        assert_eq!(Valid.worst(Unknown), Unknown);
        assert_eq!(Unknown.worst(Invalid), Invalid);
        assert_eq!(Invalid.worst(Valid), Invalid);
        assert_eq!(Valid.worst(Valid), Valid);
        assert_eq!([Valid, Invalid, Unknown].map(|v| v.exit_code()), [0, 1, 2]);
    }
}
