//! The state file of a lab (`/run/faultline/<lab>.json`) and `clean`, which removes what a
//! killed run left behind.
//!
//! Invariant: the state file exists before the first namespace or rule is made and is removed
//! only after the last one is gone, so a namespace or guard table named `flXXXX…` without a
//! state file is always an orphan, and a lab whose owner process is dead is always abandoned.

use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::procfs;
use crate::sys;

/// Where state files live: `FAULTLINE_STATE_DIR` if set, else `/run/faultline` as root (the
/// well-known place `faultline clean` looks), else `$XDG_RUNTIME_DIR/faultline` or
/// `/tmp/faultline-<uid>` (loopback labs need no root).
pub fn state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FAULTLINE_STATE_DIR") {
        return PathBuf::from(dir);
    }
    if procfs::is_root() {
        return PathBuf::from("/run/faultline");
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
        return PathBuf::from(dir).join("faultline");
    }
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("faultline-{uid}"))
}

/// The process a run is, by PID and start time: what a state file outside this module (a run
/// on remote hosts, say) records so that `faultline clean` can tell a live run from one that
/// died.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunOwner {
    pub pid: u32,
    pub start_time: u64,
}

impl RunOwner {
    /// This process.
    pub fn current() -> RunOwner {
        let (pid, start_time) = procfs::own_identity();
        RunOwner { pid, start_time }
    }

    /// Whether that process still runs (a recycled PID has another start time).
    pub fn is_alive(&self) -> bool {
        procfs::is_alive(self.pid, self.start_time)
    }
}

/// One process the lab started: PID plus start time, so a recycled PID is never signalled.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct ProcessRecord {
    pub node: String,
    pub pid: u32,
    pub start_time: u64,
}

/// Everything a lab made that must be undone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LabState {
    pub lab: String,
    pub owner_pid: u32,
    pub owner_start_time: u64,
    pub isolation: String,
    pub subnet: String,
    /// Network namespaces (names under /run/netns).
    pub namespaces: Vec<String>,
    /// nft tables in the ROOT namespace, as `family name` (the guard table).
    pub nft_tables: Vec<String>,
    pub processes: Vec<ProcessRecord>,
    pub run_dir: PathBuf,
}

impl LabState {
    /// Atomic replace (write + rename) so `clean` never reads half a file.
    pub(crate) fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::io("serialising", path, std::io::Error::other(e.to_string())))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).map_err(|e| Error::io("writing", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io("renaming", path, e))
    }
}

/// Lab names are `fl` + 4 lowercase hex digits; namespaces are `<lab>-<node>`, guard tables
/// `<lab>_guard`.
pub(crate) fn is_lab_name(name: &str) -> bool {
    name.len() == 6
        && name.starts_with("fl")
        && name[2..]
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

fn lab_of_namespace(ns: &str) -> Option<&str> {
    let (lab, _) = ns.split_once('-')?;
    is_lab_name(lab).then_some(lab)
}

fn lab_of_table(table: &str) -> Option<&str> {
    let lab = table.strip_suffix("_guard")?;
    is_lab_name(lab).then_some(lab)
}

pub(crate) fn netns_exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

/// Namespaces under /run/netns.
fn list_namespaces() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect()
}

/// Root-namespace nft tables as `family name`.
fn list_tables() -> Vec<String> {
    let Ok(text) = sys::run_blocking_outside("nft", &["list", "tables"], None) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| line.strip_prefix("table "))
        .map(str::to_string)
        .collect()
}

/// SIGKILLs every process inside namespace `ns` (`ip netns pids`): they are the lab's, by
/// construction, even ones started after the last state write.
fn kill_namespace_processes(ns: &str, removed: &mut Vec<String>) {
    let Ok(text) = sys::run_blocking("ip", &["netns", "pids", ns], None) else {
        return;
    };
    for pid in text
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
    {
        if let Some(stat) = procfs::stat(pid)
            && stat.state != 'Z'
            && procfs::signal_group(pid, stat.start_time, Signal::SIGKILL)
        {
            removed.push(format!("killed process {pid} in namespace {ns}"));
        }
    }
}

/// Waits (bounded) until the given processes are gone or zombies.
fn wait_gone(pids: &[(u32, u64)]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while pids.iter().any(|&(p, s)| procfs::is_alive(p, s)) && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Removes everything `state` lists (processes, namespaces, root tables), then the state file.
/// Best effort: keeps going past failures and returns what it removed and what it could not.
pub(crate) fn remove_lab(state: &LabState, path: &Path) -> (Vec<String>, Vec<String>) {
    let mut removed = Vec::new();
    let mut failed = Vec::new();
    let mut killed = Vec::new();
    for p in &state.processes {
        // SIGCONT first is unnecessary: SIGKILL ends a stopped process too.
        if procfs::is_alive(p.pid, p.start_time)
            && procfs::signal_group(p.pid, p.start_time, Signal::SIGKILL)
        {
            removed.push(format!("killed process {} (node {})", p.pid, p.node));
            killed.push((p.pid, p.start_time));
        }
    }
    for ns in &state.namespaces {
        if netns_exists(ns) {
            kill_namespace_processes(ns, &mut removed);
        }
    }
    wait_gone(&killed);
    for ns in &state.namespaces {
        if netns_exists(ns) {
            match sys::run_blocking("ip", &["netns", "delete", ns], None) {
                Ok(_) => removed.push(format!("deleted network namespace {ns}")),
                // Gone meanwhile (a concurrent clean): that is the goal, not a failure.
                Err(_) if !netns_exists(ns) => {}
                Err(e) => failed.push(format!("network namespace {ns}: {e}")),
            }
        }
    }
    let tables = list_tables();
    for table in &state.nft_tables {
        if tables.contains(table) {
            let mut args = vec!["delete", "table"];
            args.extend(table.split_whitespace());
            match sys::run_blocking_outside("nft", &args, None) {
                Ok(_) => removed.push(format!("deleted nft table {table}")),
                Err(e) => failed.push(format!("nft table {table}: {e}")),
            }
        }
    }
    if failed.is_empty() {
        match std::fs::remove_file(path) {
            Ok(()) => removed.push(format!("removed state file {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => failed.push(format!("state file {}: {e}", path.display())),
        }
    }
    (removed, failed)
}

fn modified_within(path: &Path, age: std::time::Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|elapsed| elapsed < age)
}

/// What `clean` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CleanReport {
    /// One line per thing removed ("deleted network namespace fl3a07-n2").
    pub removed: Vec<String>,
    /// Labs still owned by a live process, left alone ("fl3a07 (pid 4242 is running)").
    pub left_alone: Vec<String>,
    /// Things that could not be removed, with why.
    pub failed: Vec<String>,
}

/// Removes every lab whose owning process is gone: its processes (checked by PID and start
/// time), namespaces, root-namespace nft tables and state file; then any `flXXXX-*` namespace
/// or `flXXXX_guard` table that has no state file at all. Labs of live runs are left alone.
pub fn clean() -> Result<CleanReport> {
    let dir = state_dir();
    let mut report = CleanReport::default();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
    // One clean at a time (flock, released when the guard drops): two concurrent cleans
    // would otherwise split one orphan lab's removal between their reports.
    let lock_path = dir.join(".clean.lock");
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io("opening", &lock_path, e))?;
    let _guard = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| Error::io("locking", &lock_path, std::io::Error::from(errno)))?;
    // List namespaces and tables BEFORE reading state files: a lab writes its state file
    // before making anything, so everything listed here whose lab is live has a state file
    // by the time we read the directory. (The other order races with labs being built.)
    let namespaces = list_namespaces();
    let tables = list_tables();
    let mut known = std::collections::BTreeSet::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            let Some(stem) = path
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            let Some(lab) = stem.strip_suffix(".json").filter(|l| is_lab_name(l)) else {
                continue;
            };
            known.insert(lab.to_string());
            let parsed = std::fs::read_to_string(&path)
                .ok()
                .and_then(|text| serde_json::from_str::<LabState>(&text).ok());
            match parsed {
                Some(state) if procfs::is_alive(state.owner_pid, state.owner_start_time) => {
                    report.left_alone.push(format!(
                        "{lab} (its run, pid {}, is still running)",
                        state.owner_pid
                    ));
                }
                Some(state) => {
                    let (removed, failed) = remove_lab(&state, &path);
                    report.removed.extend(removed);
                    report.failed.extend(failed);
                }
                None if modified_within(&path, std::time::Duration::from_secs(60)) => {
                    // Writes are atomic (link, rename), so this should not happen; a fresh
                    // file might still belong to a live run, so leave it for a later clean.
                    report.left_alone.push(format!(
                        "{lab} (unreadable state file, changed in the last minute)"
                    ));
                }
                None => {
                    // Unreadable: treat as orphan; the sweep below removes its namespaces.
                    known.remove(lab);
                    if std::fs::remove_file(&path).is_ok() {
                        report
                            .removed
                            .push(format!("removed unreadable state file {}", path.display()));
                    }
                }
            }
        }
    }
    // Orphans: lab-named namespaces and tables with no state file (never made by a live lab,
    // see the module invariant).
    for ns in namespaces {
        if let Some(lab) = lab_of_namespace(&ns)
            && !known.contains(lab)
            && netns_exists(&ns)
        {
            kill_namespace_processes(&ns, &mut report.removed);
            match sys::run_blocking("ip", &["netns", "delete", &ns], None) {
                Ok(_) => report
                    .removed
                    .push(format!("deleted orphan network namespace {ns}")),
                // Its lab finished teardown meanwhile.
                Err(_) if !netns_exists(&ns) => {}
                Err(e) => report.failed.push(format!("network namespace {ns}: {e}")),
            }
        }
    }
    let current_tables = list_tables();
    for table in tables.into_iter().filter(|t| current_tables.contains(t)) {
        let name = table.split_whitespace().nth(1).unwrap_or_default();
        if let Some(lab) = lab_of_table(name)
            && !known.contains(lab)
        {
            let mut args = vec!["delete", "table"];
            args.extend(table.split_whitespace());
            match sys::run_blocking_outside("nft", &args, None) {
                Ok(_) => report
                    .removed
                    .push(format!("deleted orphan nft table {table}")),
                Err(e) => report.failed.push(format!("nft table {table}: {e}")),
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_run_is_alive_and_a_recycled_pid_is_not() {
        let me = RunOwner::current();
        assert!(me.is_alive());
        let recycled = RunOwner {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!recycled.is_alive());
    }

    #[test]
    fn lab_names_are_recognised_and_foreign_ones_are_not() {
        assert!(is_lab_name("fl3a07"));
        assert!(!is_lab_name("fl3A07"));
        assert!(!is_lab_name("flx"));
        assert_eq!(lab_of_namespace("fl3a07-n2"), Some("fl3a07"));
        assert_eq!(lab_of_namespace("docker-1"), None);
        assert_eq!(lab_of_table("fl3a07_guard"), Some("fl3a07"));
        assert_eq!(lab_of_table("filter"), None);
    }
}
