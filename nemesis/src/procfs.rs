//! Reading `/proc/PID/stat`: the only way to tell a live process from a zombie or from a
//! recycled PID (targets.md: "never `kill -0` alone"); and `/proc/self/status`, to learn which
//! signals this process was started ignoring.

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// What `/proc/PID/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// The state letter: R, S, D running/sleeping; T stopped; Z zombie; X dead.
    pub state: char,
    /// Start time in clock ticks after boot (field 22): with the PID, it names one process
    /// for the lifetime of the machine.
    pub start_time: u64,
}

/// Reads `/proc/PID/stat`, or None when there is no such process.
pub(crate) fn stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// proc(5): `pid (comm) state ppid ...`; comm may hold spaces and parentheses, so split after
/// the LAST `)`. Field 3 is the state, field 22 the start time.
fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start_time = fields.get(19)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

/// True when `pid` is still the process that started at `start_time` and has not exited
/// (a zombie has exited: it only waits to be reaped).
pub(crate) fn is_alive(pid: u32, start_time: u64) -> bool {
    matches!(stat(pid), Some(s) if s.start_time == start_time && s.state != 'Z' && s.state != 'X')
}

/// Signals the process group led by `pid` (nodes are started as group leaders so helper
/// children get the signal too) — only if `pid` is still the process we started. Returns
/// whether a signal was sent.
pub(crate) fn signal_group(pid: u32, start_time: u64, signal: Signal) -> bool {
    if !matches!(stat(pid), Some(s) if s.start_time == start_time) {
        return false;
    }
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    // The group may be gone while the leader is a zombie; then signal the leader alone.
    killpg(Pid::from_raw(raw), signal).is_ok() || kill(Pid::from_raw(raw), signal).is_ok()
}

/// Start time of this process, to mark state files with an owner that cannot be confused
/// with a later process reusing the PID.
pub(crate) fn own_identity() -> (u32, u64) {
    let pid = std::process::id();
    (pid, stat(pid).map(|s| s.start_time).unwrap_or(0))
}

/// Whether this process has effective uid 0 (root, or root inside a user namespace): /proc/self
/// is owned by the effective uid, which saves a dependency on nix's `user` feature.
pub(crate) fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Whether this process ignores `signal` (as `nohup` makes it ignore SIGHUP), read from the
/// `SigIgn` mask of `/proc/self/status`; false when that cannot be read.
pub(crate) fn ignores(signal: Signal) -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| ignored_in(&status, signal))
        .unwrap_or(false)
}

/// proc(5): `SigIgn:` is a hex mask in which bit N-1 stands for signal N.
fn ignored_in(status: &str, signal: Signal) -> Option<bool> {
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))?
        .trim();
    let mask = u64::from_str_radix(mask, 16).ok()?;
    Some(mask & (1 << (signal as i32 - 1)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_and_parens_in_comm() {
        let line = "4242 (my (odd) name) T 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        let parsed = parse_stat(line).expect("parses");
        assert_eq!(parsed.state, 'T');
        assert_eq!(parsed.start_time, 987654);
    }

    #[test]
    fn reads_ignored_signals_from_the_sigign_mask() {
        // SIGHUP is 1 (bit 0), SIGPIPE 13 (bit 12).
        let status = "Name:\tnohup\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000001001\n";
        assert_eq!(ignored_in(status, Signal::SIGHUP), Some(true));
        assert_eq!(ignored_in(status, Signal::SIGPIPE), Some(true));
        assert_eq!(ignored_in(status, Signal::SIGINT), Some(false));
        assert_eq!(ignored_in("Name:\tx\n", Signal::SIGHUP), None);
    }

    #[test]
    fn own_process_is_alive_and_a_wrong_start_time_is_not() {
        let (pid, start) = own_identity();
        assert!(is_alive(pid, start));
        assert!(!is_alive(pid, start + 1));
    }
}
