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

use crate::history::{Step, Value};

/// Which sequential specification a history is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Model {
    /// Read and write only.
    Register,
    /// Read, write and compare-and-set.
    CasRegister,
}

impl Model {
    /// Apply `step` to `state`: the new state if the step is legal there, `None` if not.
    pub fn step(self, state: Value, step: Step) -> Option<Value> {
        match step {
            Step::Read(v) => (state == v).then_some(state),
            Step::Write(v) => Some(Some(v)),
            Step::Cas { expected, new } => (state == Some(expected)).then_some(Some(new)),
            Step::CasMismatch { expected } => (state != Some(expected)).then_some(state),
            Step::Nothing => Some(state),
        }
    }

    /// Whether the model knows this kind of step.
    pub fn allows(self, step: Step) -> bool {
        match self {
            Model::CasRegister => true,
            Model::Register => !matches!(step, Step::Cas { .. } | Step::CasMismatch { .. }),
        }
    }
}

impl std::fmt::Display for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Model::Register => "register",
            Model::CasRegister => "cas-register",
        })
    }
}

impl std::str::FromStr for Model {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "register" => Ok(Model::Register),
            "cas-register" => Ok(Model::CasRegister),
            other => Err(format!(
                "unknown model `{other}`: use `register` or `cas-register`"
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
}
