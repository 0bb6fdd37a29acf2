//! The nemesis: Faultline's local fault lab and the faults that run in it.
//!
//! It owns the lab (one network namespace per node, a bridge namespace, a client namespace
//! without a default route), the process supervisor (start, kill, pause, resume, restart
//! nodes inside their namespaces), the fault kinds (partitions with nftables, kills, pauses,
//! clock faults through libfaketime, packet loss and bandwidth, delay via netem where the
//! kernel has it), fault schedules, and the same faults on remote hosts over SSH.
//!
//! Main types: [`Lab`] (built from a [`LabConfig`]), [`NodeCommand`], [`NodeStatus`],
//! and [`clean`] for what killed runs left behind.
//!
//! # Layout
//! - `lab` — [`Lab::create`], topology, addresses, the client runtime, guard, teardown.
//! - `supervisor` — node processes: start, kill, pause, resume, stop, restart, status.
//! - `fault` — fault kinds, start/stop, heal.
//! - `remote` — [`Remote`]: the same faults on real hosts over SSH (ControlMaster).
//! - `schedule` — [`Nemesis`]: seeded start/stop cycles, events for the history, final heal.
//! - `state` — the state file under `/run/faultline` and [`clean`].
//! - `procfs` — `/proc/PID/stat`: liveness by PID + start time, zombies.
//! - `userns` — [`ensure_root_or_reexec`]: the same lab without root, in a user namespace.
//! - `sys` — running `ip`, `nft`, `tc`.
//! - `error` — [`Error`].
//!
//! # Never
//! Nothing here sends traffic to a lab address from the root network namespace, signals a
//! process it did not start (PID and start time are checked first), or leaves a namespace,
//! rule or process behind: teardown runs on every path and `faultline clean` removes what a
//! killed run left.

mod error;
mod fault;
mod lab;
mod procfs;
mod remote;
mod schedule;
mod state;
mod supervisor;
mod sys;
mod userns;

pub use error::{Error, Result};
pub use fault::{Action, Applied, ClockFault, Fault, FaultKind, NodeSelection, PartitionKind};
pub use lab::{Isolation, Lab, LabConfig, MAX_NODES};
pub use remote::{Remote, RemoteNode, RemoteOptions};
pub use schedule::{
    FaultEvent, FaultTarget, LeaderProbe, Nemesis, NemesisConfig, NemesisSummary, NoLeader, Phase,
    random_fault, shutdown_signal,
};
pub use state::{CleanReport, clean, state_dir};
pub use supervisor::{NodeCommand, NodeStatus, find_libfaketime};
pub use userns::{USERNS_ENV, ensure_root_or_reexec, in_user_namespace, is_root};
