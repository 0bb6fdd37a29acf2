//! The one error type of the nemesis crate.

use std::path::PathBuf;

/// Everything that can go wrong while building the lab, supervising nodes or injecting faults.
///
/// A fault that cannot be injected for a known reason (no leader, libfaketime not applicable,
/// no netem in this kernel) is not an error: it is [`crate::Action::Skipped`]. These variants
/// are the failures that stop a run (exit 3 in the harness).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system command (`ip`, `nft`, `tc`, `ssh`) ran and exited non-zero. Read its stderr;
    /// usually the lab is half gone (run `faultline clean`) or a tool is too old.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },

    /// A system command could not be started at all. Install the package named in the message.
    #[error("cannot run `{program}` ({source}): install the Debian package `{package}`")]
    Spawn {
        program: String,
        package: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// The namespace lab needs root (real, or inside a user namespace). Run as root, let the
    /// program re-execute itself with `ensure_root_or_reexec` (needs unprivileged user
    /// namespaces), or use `Isolation::Loopback`.
    #[error(
        "the namespace lab needs root: run as root, or allow unprivileged user namespaces so faultline can \
         re-run itself inside `unshare -Urnm` (sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces>0), \
         or use loopback isolation (no network faults)"
    )]
    NotRoot,

    /// A node name that is not in this lab (nodes are `n1`..`nN`).
    #[error("no node named {0:?} in this lab (nodes are n1..nN)")]
    UnknownNode(String),

    /// The lab configuration cannot be built (0 nodes, more than the subnet holds).
    #[error("bad lab configuration: {0}")]
    Config(String),

    /// A node process could not be started, signalled or restarted; the message says which
    /// node and why (exited at once, not started, still running).
    #[error("node {node}: {why}")]
    Node { node: String, why: String },

    /// Reading or writing a lab file (logs, pid files, state file, faketime file) failed.
    /// Check permissions and free space of the path.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Every candidate lab subnet was taken (by other labs or by this machine's own routes).
    /// Run `faultline clean` to remove labs that killed runs left behind.
    #[error("no free lab subnet after {0} attempts: run `faultline clean`")]
    NoSubnet(usize),

    /// Entering a network namespace failed (it was deleted under us, or no CAP_SYS_ADMIN).
    #[error("cannot enter network namespace {namespace}: {source}")]
    Setns {
        namespace: String,
        #[source]
        source: nix::Error,
    },

    /// A fault needs libfaketime but its library is not installed. `apt-get install libfaketime`.
    #[error(
        "libfaketime not found (looked in {0}): apt-get install libfaketime, or set FAULTLINE_LIBFAKETIME"
    )]
    NoLibfaketime(String),

    /// Building the client runtime failed.
    #[error("cannot build the client runtime: {0}")]
    Runtime(String),

    /// A `--nemesis` list named an unknown fault kind.
    #[error(
        "unknown fault kind {0:?}: use partition, kill, pause, clock, loss, bandwidth, delay, none or all"
    )]
    UnknownFaultKind(String),

    /// SSH to a remote host failed: check that `ssh <host>` works without a password prompt.
    #[error("ssh to {host}: {why}")]
    Ssh { host: String, why: String },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
