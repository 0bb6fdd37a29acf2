//! Running the namespace lab without root: re-execute inside a user namespace.
//!
//! Decision (issue 4, item 5): a non-root `faultline test` re-executes itself as
//! `unshare -Urnm --pid --fork --mount-proc --propagation private -- sh -c 'mount -t tmpfs
//! tmpfs /run && exec "$@"' faultline <exe> <args>` (targets.md: "the same lab works inside
//! `unshare -Urnm` with a private tmpfs on /run"). Inside, the process is root of its own
//! user, network, mount and PID namespaces:
//! - the "root network namespace" the guard watches is a fresh one with only `lo`, so even a
//!   mistake cannot reach a real network;
//! - state files live on the private /run; nothing needs `faultline clean` afterwards,
//!   because the run is PID 1 of its PID namespace: when it dies, the kernel kills every
//!   node, and the namespaces die with their last process.
//!
//! It needs unprivileged user namespaces (`/proc/sys/user/max_user_namespaces` > 0, and on
//! Debian/Ubuntu kernels that have it `kernel.unprivileged_userns_clone=1`) and `unshare`
//! from util-linux.

use std::os::unix::process::CommandExt;

use crate::error::{Error, Result};
use crate::procfs;

/// Set in the environment of the re-executed process.
pub const USERNS_ENV: &str = "FAULTLINE_IN_USERNS";

/// The namespaces of the re-executed run, which the probe asks for too: a probe that
/// succeeds with fewer would let the exec fail where no useful message can be given.
const UNSHARE_NAMESPACES: [&str; 6] = [
    "--user",
    "--map-root-user",
    "--net",
    "--mount",
    "--pid",
    "--fork",
];

/// Whether this process has uid 0 (real root, or root of a user namespace).
pub fn is_root() -> bool {
    procfs::is_root()
}

/// Whether this process runs inside the user namespace [`ensure_root_or_reexec`] made.
pub fn in_user_namespace() -> bool {
    std::env::var_os(USERNS_ENV).is_some()
}

/// Returns Ok when this process is root. Otherwise re-executes the current program with the
/// same arguments inside `unshare` (see the module docs) and never returns; if that is
/// impossible, or it already happened and we are still not root, returns
/// [`Error::NotRoot`] or [`Error::Spawn`] saying what to do.
///
/// Call it first thing in `main` of a command that needs the namespace lab, before any
/// thread or runtime is started (exec replaces the whole process).
pub fn ensure_root_or_reexec() -> Result<()> {
    if is_root() {
        return Ok(());
    }
    if in_user_namespace() {
        return Err(Error::NotRoot);
    }
    // Probe first: once exec'd, a failing unshare cannot fall back to a useful message.
    let probe = std::process::Command::new("unshare")
        .args(UNSHARE_NAMESPACES)
        .arg("true")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(unshare_failed)?;
    if !probe.success() {
        return Err(Error::NotRoot);
    }
    let exe = std::env::current_exe().map_err(|e| Error::io("finding", "/proc/self/exe", e))?;
    tracing::info!("not root: re-executing inside a user namespace (unshare -Urnm --pid)");
    let error = std::process::Command::new("unshare")
        .args(UNSHARE_NAMESPACES)
        .args([
            "--mount-proc",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            // A private /run: `ip netns` keeps its mounts in /run/netns, our state is in
            // /run/faultline, and neither may touch the host's.
            "mount -t tmpfs tmpfs /run && exec \"$@\"",
            "faultline",
        ])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(USERNS_ENV, "1")
        .exec();
    Err(unshare_failed(error))
}

fn unshare_failed(source: std::io::Error) -> Error {
    Error::Spawn {
        program: "unshare".to_string(),
        package: "util-linux",
        source,
    }
}
