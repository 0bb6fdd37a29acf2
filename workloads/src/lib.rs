//! Workloads: the operations Faultline's clients send.
//!
//! It owns the generators for the register and cas-register workloads over many keys: the
//! read/write/CAS mix, values unique per key, key rotation and seeded randomness, so that a
//! run's operation stream is reproducible from its seed.
//!
//! # Layout
//! - [`Workload`], [`Mix`], [`WorkloadSpec`]: what to generate.
//! - [`Generator`]: the seeded stream of [`Operation`]s.
//! - [`Error`]: a spec that cannot be generated.
//!
//! # Never
//! A generator does no I/O and knows nothing of targets or of the network.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Which operations a workload sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Workload {
    /// Reads and writes.
    Register,
    /// Reads, writes and compare-and-set.
    CasRegister,
}

impl Workload {
    /// The name used in result paths and `test.json`.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Register => "register",
            Workload::CasRegister => "cas-register",
        }
    }
}

/// Relative weights of reads, writes and CAS (`--mix r:w:cas`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mix {
    pub read: u32,
    pub write: u32,
    pub cas: u32,
}

impl std::str::FromStr for Mix {
    type Err = Error;

    fn from_str(s: &str) -> Result<Mix, Error> {
        let parts: Vec<&str> = s.split(':').collect();
        let weights: Option<Vec<u32>> = parts.iter().map(|p| p.trim().parse().ok()).collect();
        match weights.as_deref() {
            Some(&[read, write, cas]) if read + write + cas > 0 => Ok(Mix { read, write, cas }),
            _ => Err(Error::BadMix(s.to_string())),
        }
    }
}

/// What to generate.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkloadSpec {
    pub workload: Workload,
    /// Keys in use at any time.
    pub keys: usize,
    pub mix: Mix,
    /// Retire a key after this many operations and start a fresh one (keeps per-key histories
    /// short, so checking stays fast on long runs).
    pub ops_per_key: Option<u64>,
    pub seed: u64,
}

/// One operation to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    Read {
        key: String,
    },
    Write {
        key: String,
        value: i64,
    },
    Cas {
        key: String,
        expected: i64,
        new: i64,
    },
}

/// A spec the generator cannot honour.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `--mix` is not three weights.
    #[error(
        "--mix `{0}`: expected three non-negative weights read:write:cas, e.g. 2:1:1, not all zero"
    )]
    BadMix(String),
    /// No keys.
    #[error("--keys must be at least 1")]
    NoKeys,
    /// Keys rotated before any operation used them.
    #[error("--ops-per-key must be at least 1 (or leave it out: keys are then never rotated)")]
    NoOpsPerKey,
    /// CAS weight in a register workload.
    #[error("the register workload has no cas: use --mix r:w:0 or the cas-register workload")]
    CasInRegister,
}

struct Key {
    name: String,
    /// The next value to write: values are unique per key (1, 2, 3, …).
    next_value: i64,
    ops: u64,
}

/// The seeded operation stream. Shared by all workers of a run (behind a lock), so the stream
/// as a whole is a function of the seed; which worker sends which op depends on timing.
pub struct Generator {
    spec: WorkloadSpec,
    rng: StdRng,
    active: Vec<Key>,
    next_key: usize,
}

impl Generator {
    pub fn new(spec: WorkloadSpec) -> Result<Generator, Error> {
        if spec.keys == 0 {
            return Err(Error::NoKeys);
        }
        if spec.ops_per_key == Some(0) {
            return Err(Error::NoOpsPerKey);
        }
        if spec.workload == Workload::Register && spec.mix.cas > 0 {
            return Err(Error::CasInRegister);
        }
        if spec.mix.read + spec.mix.write + spec.mix.cas == 0 {
            return Err(Error::BadMix("0:0:0".into()));
        }
        let active = (0..spec.keys).map(new_key).collect();
        Ok(Generator {
            rng: StdRng::seed_from_u64(spec.seed),
            next_key: spec.keys,
            active,
            spec,
        })
    }

    /// The next operation.
    pub fn next_op(&mut self) -> Operation {
        let slot = self.rng.random_range(0..self.active.len());
        let Mix { read, write, cas } = self.spec.mix;
        let pick = self.rng.random_range(0..read + write + cas);
        let key = &mut self.active[slot];
        key.ops += 1;
        let name = key.name.clone();
        let op = if pick < read || (key.next_value == 1 && pick >= read + write) {
            // A CAS on a never-written key could only fail: read instead.
            Operation::Read { key: name }
        } else if pick < read + write {
            let value = key.next_value;
            key.next_value += 1;
            Operation::Write { key: name, value }
        } else {
            let expected = self.rng.random_range(1..key.next_value);
            let new = key.next_value;
            key.next_value += 1;
            Operation::Cas {
                key: name,
                expected,
                new,
            }
        };
        if self
            .spec
            .ops_per_key
            .is_some_and(|limit| self.active[slot].ops >= limit)
        {
            self.active[slot] = new_key(self.next_key);
            self.next_key += 1;
        }
        op
    }

    /// Every key used so far, in order: the final reads cover them all.
    pub fn keys(&self) -> Vec<String> {
        (0..self.next_key).map(key_name).collect()
    }
}

fn key_name(i: usize) -> String {
    format!("k{i}")
}

fn new_key(i: usize) -> Key {
    Key {
        name: key_name(i),
        next_value: 1,
        ops: 0,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    fn spec(seed: u64) -> WorkloadSpec {
        WorkloadSpec {
            workload: Workload::CasRegister,
            keys: 3,
            mix: "2:1:1".parse().expect("mix"),
            ops_per_key: None,
            seed,
        }
    }

    fn stream(spec: WorkloadSpec, n: usize) -> Vec<Operation> {
        let mut g = Generator::new(spec).expect("generator");
        (0..n).map(|_| g.next_op()).collect()
    }

    #[test]
    fn same_seed_same_stream_other_seed_other_stream() {
        assert_eq!(stream(spec(7), 500), stream(spec(7), 500));
        assert_ne!(stream(spec(7), 500), stream(spec(8), 500));
    }

    #[test]
    fn written_values_are_unique_per_key() {
        let mut seen: HashMap<String, HashSet<i64>> = HashMap::new();
        for op in stream(spec(1), 5000) {
            let (key, value) = match op {
                Operation::Write { key, value } => (key, value),
                Operation::Cas { key, new, .. } => (key, new),
                Operation::Read { .. } => continue,
            };
            assert!(
                seen.entry(key).or_default().insert(value),
                "value written twice"
            );
        }
    }

    #[test]
    fn mix_is_roughly_respected() {
        let ops = stream(spec(3), 20_000);
        let reads = ops
            .iter()
            .filter(|o| matches!(o, Operation::Read { .. }))
            .count();
        let cas = ops
            .iter()
            .filter(|o| matches!(o, Operation::Cas { .. }))
            .count();
        // 2:1:1 → half reads, a quarter CAS (first ops on a key read instead of CAS).
        assert!((9_500..11_000).contains(&reads), "{reads} reads");
        assert!((4_500..5_200).contains(&cas), "{cas} cas");
    }

    #[test]
    fn keys_rotate_after_ops_per_key() {
        let mut s = spec(4);
        s.ops_per_key = Some(10);
        let mut g = Generator::new(s).expect("generator");
        for _ in 0..300 {
            g.next_op();
        }
        // 300 ops = 10 per retired key + fewer than 10 on each of the 3 live keys.
        let retired = g.keys().len() - 3;
        assert!((28..=30).contains(&retired), "{retired} keys retired");
    }

    #[test]
    fn zero_ops_per_key_is_refused() {
        let mut s = spec(4);
        s.ops_per_key = Some(0);
        let error = Generator::new(s).err().expect("refused").to_string();
        assert!(
            error.contains("--ops-per-key must be at least 1"),
            "{error}"
        );
    }

    #[test]
    fn bad_specs_are_refused() {
        assert_eq!("1:1".parse::<Mix>(), Err(Error::BadMix("1:1".into())));
        assert_eq!("0:0:0".parse::<Mix>(), Err(Error::BadMix("0:0:0".into())));
        let mut s = spec(1);
        s.workload = Workload::Register;
        assert!(matches!(Generator::new(s), Err(Error::CasInRegister)));
    }
}
