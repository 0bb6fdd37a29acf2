//! The sequential specification of a register and a compare-and-set register.
//!
//! | operation | precondition | new state |
//! |---|---|---|
//! | `read → v` | `state == v` | unchanged |
//! | `write v` | — | `v` |
//! | `cas [a b]` (took effect) | `state == a` | `b` |
//! | `cas [a b]` failed with `mismatch` | `state != a` | unchanged |
//!
//! The `register` model is the same table without `cas`; a history that uses `cas` under it
//! is an error, found before the search starts.
//!
//! The `kv` model (Porcupine's key/value store, one register per key) holds a string: `get →
//! s` requires `state == s`, `put s` sets it, `append t` sets `state + t`. Strings are held as
//! polynomial fingerprints ([`fingerprint`]) so the search keeps integer states: `H(s + t) =
//! H(s)·B^|t| + H(t) mod P` with P = 2^61 − 1, so two different strings of these histories
//! share a fingerprint with probability about n²/2^61.

use crate::fast_hash::IntSet;
use crate::history::{Step, Value};

/// Which sequential specification a history is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Model {
    /// Read and write only.
    Register,
    /// Read, write and compare-and-set.
    CasRegister,
    /// Porcupine's kv: get, put and append on strings.
    Kv,
}

const P: u128 = (1 << 61) - 1;
const B: u128 = 131;

/// The fingerprint of `text` and `B^len mod P` (what appending it multiplies by).
pub fn fingerprint(text: &str) -> (i64, i64) {
    let (mut hash, mut shift) = (0u128, 1u128);
    for byte in text.bytes() {
        hash = (hash * B + u128::from(byte) + 1) % P;
        shift = (shift * B) % P;
    }
    (hash as i64, shift as i64)
}

/// For the kv model: which strings are prefixes of which strings some get returned, as
/// fingerprint pairs (every prefix of every observed string). A get that returned `r` can
/// only be reached from a state `s` by appends if `s` is a prefix of `r`, which lets the
/// search drop a wrong order of concurrent appends as soon as it makes one.
#[derive(Clone, Debug, Default)]
pub struct Prefixes(IntSet<(i64, i64)>);

impl Prefixes {
    /// Remember every prefix of `text`, a string some get returned.
    pub fn record(&mut self, text: &str) {
        let whole = fingerprint(text).0;
        let mut hash = 0u128;
        self.0.insert((whole, 0));
        for byte in text.bytes() {
            hash = (hash * B + u128::from(byte) + 1) % P;
            self.0.insert((whole, hash as i64));
        }
    }

    /// Whether the string with fingerprint `prefix` is a prefix of the observed `whole`
    /// (up to fingerprint collisions, which only make this say yes).
    pub fn contains(&self, whole: i64, prefix: i64) -> bool {
        self.0.contains(&(whole, prefix))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Add `other`'s prefixes.
    pub fn extend(&mut self, other: Prefixes) {
        self.0.extend(other.0);
    }
}

fn append(state: i64, hash: i64, shift: i64) -> i64 {
    ((state as u128 * shift as u128 + hash as u128) % P) as i64
}

impl Model {
    /// Apply `step` to `state`: the new state if the step is legal there, `None` if not.
    pub fn step(self, state: Value, step: Step) -> Option<Value> {
        match step {
            Step::Read(v) => (state == v).then_some(state),
            Step::Write(v) => Some(Some(v)),
            Step::Cas { expected, new } => (state == Some(expected)).then_some(Some(new)),
            Step::CasMismatch { expected } => (state != Some(expected)).then_some(state),
            // A missing key reads as the empty string, whose fingerprint is 0.
            Step::Append { hash, shift } => Some(Some(append(state.unwrap_or(0), hash, shift))),
            Step::Nothing => Some(state),
        }
    }

    /// Whether the model knows this kind of step.
    pub fn allows(self, step: Step) -> bool {
        match self {
            Model::CasRegister => !matches!(step, Step::Append { .. }),
            Model::Register => !matches!(
                step,
                Step::Cas { .. } | Step::CasMismatch { .. } | Step::Append { .. }
            ),
            Model::Kv => !matches!(step, Step::Cas { .. } | Step::CasMismatch { .. }),
        }
    }
}

impl std::fmt::Display for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Model::Register => "register",
            Model::CasRegister => "cas-register",
            Model::Kv => "kv",
        })
    }
}

impl std::str::FromStr for Model {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "register" => Ok(Model::Register),
            "cas-register" => Ok(Model::CasRegister),
            "kv" => Ok(Model::Kv),
            other => Err(format!(
                "unknown model `{other}`: use `register`, `cas-register` or `kv`"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    #[test]
    fn cas_register_spec() {
        let m = Model::CasRegister;
        let cases = [
            // state      step                                      result
            (None,        Step::Read(None),                         Some(None)),
            (Some(1),     Step::Read(None),                         None),
            (Some(1),     Step::Read(Some(1)),                      Some(Some(1))),
            (None,        Step::Write(3),                           Some(Some(3))),
            (Some(1),     Step::Cas { expected: 1, new: 2 },        Some(Some(2))),
            (Some(3),     Step::Cas { expected: 1, new: 2 },        None),
            (None,        Step::Cas { expected: 1, new: 2 },        None),
            (Some(3),     Step::CasMismatch { expected: 1 },        Some(Some(3))),
            (Some(1),     Step::CasMismatch { expected: 1 },        None),
        ];
        for (state, step, expected) in cases {
            assert_eq!(m.step(state, step), expected, "{state:?} {step:?}");
        }
        assert!(!Model::Register.allows(Step::Cas { expected: 1, new: 2 }));
    }

    #[test]
    fn kv_appends_compose_like_the_strings_they_stand_for() {
        let (ab, _) = fingerprint("x 1 0 y");
        let (c, shift) = fingerprint("x 2 0 y");
        let (abc, _) = fingerprint("x 1 0 yx 2 0 y");
        assert_eq!(append(ab, c, shift), abc);
        assert_eq!(fingerprint("").0, 0);
        assert_ne!(fingerprint("a").0, fingerprint("b").0);
        let state = Model::Kv.step(
            Some(0),
            Step::Append {
                hash: ab,
                shift: fingerprint("x 1 0 y").1,
            },
        );
        assert_eq!(state, Some(Some(ab)));
        assert!(!Model::CasRegister.allows(Step::Append { hash: 1, shift: 1 }));
        let mut prefixes = Prefixes::default();
        prefixes.record("x 1 0 yx 2 0 y");
        assert!(prefixes.contains(abc, ab));
        assert!(prefixes.contains(abc, 0));
        assert!(prefixes.contains(abc, abc));
        assert!(!prefixes.contains(abc, c));
        assert!(!Model::Kv.allows(Step::CasMismatch { expected: 1 }));
    }
}
