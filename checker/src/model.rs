//! The sequential specifications: register, compare-and-set register, kv, mutex and
//! multi-register.
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
//! The `mutex` model (Knossos's `(mutex)`) is a cas-register over two values: the lock starts
//! [`FREE`], `acquire` is `cas [FREE HELD]` and `release` is `cas [HELD FREE]`, so taking a
//! held lock or freeing a free one is illegal. A failed lock operation did nothing. Because a
//! lock history is a cas-register history, every engine and reduction of the cas-register
//! applies to it unchanged.
//!
//! The `kv` model (Porcupine's key/value store, one register per key) holds a string: `get →
//! s` requires `state == s`, `put s` sets it, `append t` sets `state + t`. Strings are held as
//! polynomial fingerprints ([`fingerprint`]) so the search keeps integer states: `H(s + t) =
//! H(s)·B^|t| + H(t) mod P` with P = 2^61 − 1, so two different strings of these histories
//! share a fingerprint with probability about n²/2^61.
//!
//! The `multi-register` model (Knossos's `multi-register`) is a map of registers changed only
//! by transactions: each applies its reads and writes in order at one instant, a read
//! requiring the register's value at that point. Its state is several values, not one, so
//! it has a search of its own ([`crate::multi_register`]); [`Model::step`] never sees it.

use crate::fast_hash::IntSet;
use crate::history::{Function, Step, Value};

/// The `mutex` model's lock when no one holds it (and at the start).
pub const FREE: i64 = 0;
/// The `mutex` model's lock while someone holds it.
pub const HELD: i64 = 1;

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
    /// Knossos's mutex: acquire and release of one lock per key.
    Mutex,
    /// Knossos's multi-register: transactions of reads and writes over named registers.
    MultiRegister,
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
            // Transactions are checked by `multi_register`, never one register at a time.
            Step::Txn(_) => None,
        }
    }

    /// Whether the model knows an operation `f` that asks `step` of the register.
    pub fn allows(self, f: Function, step: Step) -> bool {
        match self {
            Model::Mutex => f.on_lock(),
            Model::MultiRegister => f == Function::Txn,
            _ if f.on_lock() || f == Function::Txn => false,
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
            Model::Mutex => "mutex",
            Model::MultiRegister => "multi-register",
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
            "mutex" => Ok(Model::Mutex),
            "multi-register" => Ok(Model::MultiRegister),
            other => Err(format!(
                "unknown model `{other}`: use `register`, `cas-register`, `kv`, `mutex` or \
                 `multi-register`"
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
        assert!(!Model::Register.allows(Function::Cas, Step::Cas { expected: 1, new: 2 }));
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
        assert!(!Model::CasRegister.allows(Function::Append, Step::Append { hash: 1, shift: 1 }));
        let mut prefixes = Prefixes::default();
        prefixes.record("x 1 0 yx 2 0 y");
        assert!(prefixes.contains(abc, ab));
        assert!(prefixes.contains(abc, 0));
        assert!(prefixes.contains(abc, abc));
        assert!(!prefixes.contains(abc, c));
        assert!(!Model::Kv.allows(Function::Cas, Step::CasMismatch { expected: 1 }));
    }

    #[test]
    fn a_lock_is_a_cas_register_that_only_lock_operations_reach() {
        let acquire = Step::Cas {
            expected: FREE,
            new: HELD,
        };
        let release = Step::Cas {
            expected: HELD,
            new: FREE,
        };
        let m = Model::Mutex;
        assert_eq!(m.step(Some(FREE), acquire), Some(Some(HELD)));
        assert_eq!(m.step(Some(HELD), acquire), None, "taking a held lock");
        assert_eq!(m.step(Some(HELD), release), Some(Some(FREE)));
        assert_eq!(m.step(Some(FREE), release), None, "freeing a free lock");
        assert!(m.allows(Function::Acquire, acquire));
        assert!(m.allows(Function::Release, release));
        assert!(
            !m.allows(Function::Cas, acquire),
            "a plain cas is not a lock operation"
        );
        assert!(!m.allows(Function::Read, Step::Read(Some(FREE))));
        for model in [Model::Register, Model::CasRegister, Model::Kv] {
            assert!(!model.allows(Function::Acquire, acquire), "{model}");
        }
        assert_eq!("mutex".parse::<Model>(), Ok(Model::Mutex));
        assert_eq!(Model::Mutex.to_string(), "mutex");
    }
}
