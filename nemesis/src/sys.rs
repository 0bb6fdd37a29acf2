//! Running the system tools the lab is made of (`ip`, `nft`, `tc`), blocking and async.
//!
//! Shelling out (not netlink) is the STYLE pick: the same commands a person would type, proven
//! by lab-etcd.sh, and `nft -f -` loads a whole rule set atomically.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::process::Stdio;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Which Debian package provides a program, for the "install it" message.
fn package_of(program: &str) -> &'static str {
    match program {
        "ip" | "tc" => "iproute2",
        "nft" => "nftables",
        "ssh" => "openssh-client",
        "unshare" => "util-linux",
        _ => "the package that provides it",
    }
}

fn command_line(program: &str, args: &[&str]) -> String {
    let mut line = program.to_string();
    for arg in args {
        line.push(' ');
        line.push_str(arg);
    }
    line
}

fn check(
    program: &str,
    args: &[&str],
    output: std::io::Result<std::process::Output>,
) -> Result<String> {
    let output = output.map_err(|source| Error::Spawn {
        program: program.to_string(),
        package: package_of(program),
        source,
    })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(Error::Command {
            command: command_line(program, args),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// The network namespace of the process's main thread: "outside" the lab. The client
/// runtime moves its own threads into `ctl`; a command for the root namespace (the guard
/// table, the root's addresses) must not run wherever the calling thread happens to be.
/// /proc/<tgid>/ns/net names the main thread's namespace, which this crate never changes.
fn outside_netns() -> Option<&'static OwnedFd> {
    static OUTSIDE: OnceLock<Option<OwnedFd>> = OnceLock::new();
    OUTSIDE
        .get_or_init(|| {
            std::fs::File::open(format!("/proc/{}/ns/net", std::process::id()))
                .ok()
                .map(OwnedFd::from)
        })
        .as_ref()
}

/// Makes a command's child enter the outside namespace before exec.
fn enter_outside(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    if let Some(fd) = outside_netns() {
        let raw = fd.as_raw_fd();
        // SAFETY: runs in the forked child before exec; setns(2) is a plain syscall and
        // the fd stays open in the parent (a 'static) for the child's whole pre-exec phase.
        unsafe {
            command.pre_exec(move || {
                let fd = BorrowedFd::borrow_raw(raw);
                nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)
            });
        }
    }
}

/// [`run_blocking`] in the outside (root) network namespace, whatever thread calls it.
pub(crate) fn run_blocking_outside(
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String> {
    let mut command = std::process::Command::new(program);
    enter_outside(&mut command);
    run_command_blocking(command, program, args, stdin)
}

/// [`run`] in the outside (root) network namespace, whatever thread calls it.
pub(crate) async fn run_outside(
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String> {
    let mut command = std::process::Command::new(program);
    enter_outside(&mut command);
    run_command(command, program, args, stdin).await
}

/// Runs `program args` to completion (blocking), feeding `stdin` if given; stdout on success.
/// Used by `Drop` and `clean`, which cannot await.
pub(crate) fn run_blocking(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    run_command_blocking(std::process::Command::new(program), program, args, stdin)
}

/// Adds `args` and captures stdout and stderr. Stdin is a pipe only when there is input to
/// feed, else /dev/null: no tool may wait on the caller's terminal.
fn with_pipes(command: &mut std::process::Command, args: &[&str], stdin: Option<&str>) {
    command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
}

fn run_command_blocking(
    mut command: std::process::Command,
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String> {
    use std::io::Write;
    with_pipes(&mut command, args, stdin);
    let output = command.spawn().and_then(|mut child| {
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())?;
        }
        child.wait_with_output()
    });
    check(program, args, output)
}

/// Async twin of [`run_blocking`], for everything on the lab's hot paths.
pub(crate) async fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    run_command(std::process::Command::new(program), program, args, stdin).await
}

async fn run_command(
    mut command: std::process::Command,
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String> {
    use tokio::io::AsyncWriteExt;
    with_pipes(&mut command, args, stdin);
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    let output = async {
        let mut child = command.spawn()?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes()).await?;
            drop(pipe);
        }
        child.wait_with_output().await
    }
    .await;
    check(program, args, output)
}

/// `nft -f -` inside network namespace `ns` (or the outside one when `ns` is None): the whole
/// script is applied as one transaction or not at all.
pub(crate) async fn nft_script(ns: Option<&str>, script: &str) -> Result<String> {
    match ns {
        Some(ns) => run("ip", &["netns", "exec", ns, "nft", "-f", "-"], Some(script)).await,
        None => run_outside("nft", &["-f", "-"], Some(script)).await,
    }
}
