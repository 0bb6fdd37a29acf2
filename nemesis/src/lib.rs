//! The nemesis: Faultline's local fault lab and the faults that run in it.
//!
//! It owns the lab (one network namespace per node, a bridge namespace, a client namespace
//! without a default route), the process supervisor (start, kill, pause, resume, restart
//! nodes inside their namespaces), the fault kinds (partitions with nftables, kills, pauses,
//! clock faults through libfaketime, packet loss and bandwidth, delay via netem where the
//! kernel has it), fault schedules, and the same faults on remote hosts over SSH.
//!
//! Main types: [`Lab`] (built from a [`LabConfig`]), [`NodeCommand`], [`NodeStatus`],
//! [`Fault`] / [`FaultKind`] / [`Action`], [`Nemesis`] (the schedule) with [`FaultEvent`]s for
//! the history, [`Remote`] for real hosts, and [`clean`] for what killed runs left behind.
//!
//! # A run, as the harness drives it
//! ```no_run
//! use std::time::Duration;
//! use faultline_nemesis::*;
//!
//! # async fn run() -> Result<()> {
//! ensure_root_or_reexec()?; // first thing in main, before any runtime: may exec unshare
//! let lab = Lab::create(LabConfig {
//!     nodes: 5,
//!     isolation: Isolation::Namespaces,
//!     run_dir: "results/run/".into(),
//! })
//! .await?;
//! let shutdown = shutdown_signal()?; // SIGINT/SIGTERM/SIGHUP end the run, teardown still runs
//! // Targets start their servers (faketime: true only if they read time through libc).
//! let ip = lab.node_ip("n1");
//! lab.start_node("n1", NodeCommand {
//!     program: "/usr/bin/faultline-raft".into(),
//!     args: vec!["--listen".into(), format!("{ip}:8080")],
//!     env: vec![],
//!     log_path: "results/run/nodes/n1.log".into(),
//!     faketime: true,
//! })
//! .await?;
//! // Clients: a runtime whose threads live in `ctl`. Spawn client work onto it; never
//! // `block_on` a future that opens sockets (block_on runs on the calling thread).
//! let clients = lab.client_runtime(4)?;
//! let worker = clients.spawn(async move { tokio::net::TcpStream::connect((ip, 8080)).await.is_ok() });
//! // The nemesis: seeded start/stop cycles; events go into the history.
//! let nemesis = Nemesis::new(NemesisConfig {
//!     kinds: FaultKind::parse_list("partition,kill,pause,clock,loss")?,
//!     interval: Duration::from_secs(10),
//!     seed: 42,
//!     time_limit: Duration::from_secs(60),
//!     schedule: FaultSchedule::OneAtATime, // or Overlapping: each kind on its own cycle
//! });
//! let leader = || async { Some("n1".to_string()) }; // the target's leader(), in the harness
//! nemesis
//!     .run(&lab, &leader, |event: FaultEvent| {
//!         // history line: {"process":"nemesis","type":"info","f":event.f,"value":event.value,"error":event.error}
//!         let _ = (event.f, event.value, event.error);
//!     }, shutdown)
//!     .await?; // ends with a heal of everything
//! let _ = worker.await;
//! clients.shutdown_background(); // (dropping a runtime inside async code panics)
//! assert_eq!(lab.guard_packets().await?, Some(0));
//! lab.teardown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - `lab` — [`Lab::create`], topology, addresses, the client runtime, guard, teardown.
//! - `supervisor` — node processes: start, kill, pause, resume, stop, restart, status.
//! - `fault` — fault kinds, start/stop, heal.
//! - `remote` — [`Remote`]: the same faults on real hosts over SSH (ControlMaster).
//! - `rules` — the nft scripts and tc qdiscs that network faults install, in the lab and on
//!   remote hosts alike.
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
mod rules;
mod schedule;
mod state;
mod supervisor;
mod sys;
mod userns;

pub use error::{Error, Result};
pub use fault::{Action, Applied, ClockFault, Fault, FaultKind, NodeSelection, PartitionKind};
pub use lab::{Isolation, Lab, LabConfig, MAX_NODES, current_netns_name, runtime_in_netns};
pub use remote::{
    HealReport, ProcessMatch, Remote, RemoteNode, RemoteOptions, close_abandoned_master,
};
pub use schedule::{
    FaultEvent, FaultSchedule, FaultTarget, LeaderProbe, Nemesis, NemesisConfig, NemesisSummary,
    NoLeader, Phase, random_fault, shutdown_signal,
};
pub use state::{CleanReport, RunOwner, clean, state_dir};
pub use supervisor::{NodeCommand, NodeStatus, find_libfaketime};
pub use userns::{USERNS_ENV, ensure_root_or_reexec, in_user_namespace, is_root};
