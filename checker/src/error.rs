//! The checker's errors: all of them are about the input, never about the checker's state.

use std::path::PathBuf;

use crate::history::PairingError;

/// Why a history could not be checked. Each says what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A line is not what its format requires.
    #[error("line {line}: expected {expected}")]
    Malformed { line: usize, expected: String },
    /// Events do not pair up into operations (a writer bug or a truncated middle).
    #[error(transparent)]
    Pairing(#[from] PairingError),
    /// The history uses an operation the chosen model does not know.
    #[error("key {key}: {what} is not part of the `{model}` model; {hint}")]
    UnsupportedOperation {
        key: String,
        what: String,
        model: String,
        /// What to do: the model to check with, or why none fits.
        hint: String,
    },
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The report (plots or page) could not be written.
    #[error("writing the report in {dir}: {reason}")]
    Report { dir: PathBuf, reason: String },
    /// An error inside a named file.
    #[error("{path}: {error}")]
    InFile { path: PathBuf, error: Box<Error> },
}
