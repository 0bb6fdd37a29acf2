//! Errors of cluster lifecycle (clients never error: they return an `Outcome`).

/// Why a cluster could not be started, found or stopped. Each says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A server binary is missing.
    #[error("cannot find `{name}`: {hint}")]
    MissingBinary { name: String, hint: String },
    /// The spec asks for something the target cannot do.
    #[error("{0}")]
    Config(String),
    /// The cluster did not elect a leader in time.
    #[error("{0}")]
    NoLeader(String),
    /// A file or directory operation failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// Starting or stopping processes in the lab failed.
    #[error(transparent)]
    Lab(#[from] faultline_nemesis::Error),
    /// The HTTP client could not be built.
    #[error("building an HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}
