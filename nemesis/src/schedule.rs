//! Fault schedules: the nemesis process of a test run.
//!
//! One cycle is Jepsen's (jepsen/nemesis/combined.clj): sleep an interval, start a random
//! fault, sleep an interval, stop it; repeat until the time limit; then heal everything so
//! the cluster can recover before the final reads. [`FaultSchedule`] says whether one cycle
//! draws from every kind (one fault at a time) or each fault package cycles on its own, so
//! that faults of different kinds overlap, as the packages of Jepsen's combined nemesis do.
//! Every start and stop is handed to the caller as a [`FaultEvent`] to write into the history.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::Poll;
use std::time::Duration;

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::error::Result;
use crate::fault::{Action, ClockFault, Fault, FaultKind, NodeSelection, PartitionKind};
use crate::lab::{Lab, lock};

/// Who leads the cluster right now: the harness implements it with the target's
/// `leader()` (the nemesis must not depend on targets). Closures returning a future work.
pub trait LeaderProbe {
    fn leader(&self) -> impl Future<Output = Option<String>> + Send;
}

impl<F, Fut> LeaderProbe for F
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<String>> + Send,
{
    fn leader(&self) -> impl Future<Output = Option<String>> + Send {
        self()
    }
}

/// Where faults are injected: the local [`Lab`] or [`crate::Remote`] hosts. Both offer the
/// same start/stop/heal with the same descriptions, so one schedule drives either.
pub trait FaultTarget {
    fn start_fault(
        &self,
        fault: &Fault,
        rng: &mut rand::rngs::StdRng,
        leader: Option<&str>,
    ) -> impl Future<Output = Result<Action>> + Send;
    fn stop_fault(&self, kind: FaultKind) -> impl Future<Output = Result<Action>> + Send;
    fn heal(&self) -> impl Future<Output = Result<Vec<(FaultKind, Action)>>> + Send;
    /// `Err(why)` when this target cannot run `kind` at all.
    fn supports(
        &self,
        kind: FaultKind,
    ) -> impl Future<Output = std::result::Result<(), String>> + Send;
    /// The nodes whose server exited by itself (no fault stopped it).
    fn exited_nodes(&self) -> impl Future<Output = Vec<String>> + Send;
}

impl FaultTarget for Lab {
    fn start_fault(
        &self,
        fault: &Fault,
        rng: &mut rand::rngs::StdRng,
        leader: Option<&str>,
    ) -> impl Future<Output = Result<Action>> + Send {
        Lab::start_fault(self, fault, rng, leader)
    }
    fn stop_fault(&self, kind: FaultKind) -> impl Future<Output = Result<Action>> + Send {
        Lab::stop_fault(self, kind)
    }
    fn heal(&self) -> impl Future<Output = Result<Vec<(FaultKind, Action)>>> + Send {
        Lab::heal(self)
    }
    fn supports(
        &self,
        kind: FaultKind,
    ) -> impl Future<Output = std::result::Result<(), String>> + Send {
        Lab::supports(self, kind)
    }
    fn exited_nodes(&self) -> impl Future<Output = Vec<String>> + Send {
        std::future::ready(Lab::exited_nodes(self))
    }
}

impl FaultTarget for crate::Remote {
    fn start_fault(
        &self,
        fault: &Fault,
        rng: &mut rand::rngs::StdRng,
        leader: Option<&str>,
    ) -> impl Future<Output = Result<Action>> + Send {
        crate::Remote::start_fault(self, fault, rng, leader)
    }
    fn stop_fault(&self, kind: FaultKind) -> impl Future<Output = Result<Action>> + Send {
        crate::Remote::stop_fault(self, kind)
    }
    fn heal(&self) -> impl Future<Output = Result<Vec<(FaultKind, Action)>>> + Send {
        crate::Remote::heal(self)
    }
    fn supports(
        &self,
        kind: FaultKind,
    ) -> impl Future<Output = std::result::Result<(), String>> + Send {
        std::future::ready(crate::Remote::supports(self, kind))
    }
    fn exited_nodes(&self) -> impl Future<Output = Vec<String>> + Send {
        crate::Remote::exited_nodes(self)
    }
}

/// A probe for clusters without a leader notion: leader faults are skipped.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLeader;

impl LeaderProbe for NoLeader {
    #[allow(clippy::manual_async_fn)] // the trait's `impl Future` signature, spelled out
    fn leader(&self) -> impl Future<Output = Option<String>> + Send {
        async { None }
    }
}

/// Whether an event starts or stops a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Start,
    Stop,
}

/// One nemesis event for the history: `{"process": "nemesis", "type": "info", "f": f,
/// "value": value, "error": error}`. Emitted right after the action completed, so a start
/// event's time is when the fault was certainly in place and a stop event's when it was
/// certainly gone; stamp it with the run clock when it arrives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultEvent {
    pub kind: FaultKind,
    pub phase: Phase,
    /// `start-partition`, `stop-kill`, ...
    pub f: String,
    /// `{"description": "isolate n3 from n1,n2,n4,n5", "nodes": ["n1", ...]}`.
    pub value: serde_json::Value,
    /// Why it was skipped or is indeterminate; None when installed.
    pub error: Option<String>,
    pub action: Action,
}

impl FaultEvent {
    pub fn new(kind: FaultKind, phase: Phase, action: Action) -> FaultEvent {
        let f = match phase {
            Phase::Start => kind.start_f(),
            Phase::Stop => kind.stop_f(),
        };
        let error = match &action {
            Action::Installed(_) => None,
            Action::Skipped(why) => Some(format!("skipped: {why}")),
            Action::Indeterminate(why) => Some(format!("indeterminate: {why}")),
        };
        FaultEvent {
            kind,
            phase,
            f,
            value: action.value(),
            error,
            action,
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct NemesisConfig {
    /// Kinds to draw from (`FaultKind::parse_list("partition,kill")`); empty = no faults.
    pub kinds: Vec<FaultKind>,
    /// Time between a fault's start and its stop, and between a stop and the next start.
    pub interval: Duration,
    pub seed: u64,
    /// The schedule stops by itself after this long (then heals).
    pub time_limit: Duration,
    /// One fault at a time, or each package on its own clock.
    pub schedule: FaultSchedule,
}

/// How the fault kinds of a schedule share the time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultSchedule {
    /// One cycle at a time, its kind drawn from all of them: faults never overlap.
    #[default]
    OneAtATime,
    /// Every package (a kind; bandwidth and delay together, as both set the link's qdisc)
    /// runs its own cycles, each sleep drawn from 0.5–1.5 intervals so the packages drift
    /// apart: a partition can start while a clock fault holds, a kill during a pause.
    Overlapping,
}

impl FaultSchedule {
    pub fn name(self) -> &'static str {
        match self {
            FaultSchedule::OneAtATime => "one-at-a-time",
            FaultSchedule::Overlapping => "overlapping",
        }
    }

    /// The kinds that share one cycle: all of them, or one package each; never an empty one.
    fn packages(self, kinds: &[FaultKind]) -> Vec<Vec<FaultKind>> {
        if kinds.is_empty() {
            return Vec::new();
        }
        match self {
            FaultSchedule::OneAtATime => vec![kinds.to_vec()],
            FaultSchedule::Overlapping => {
                let shaping = |k: &FaultKind| matches!(k, FaultKind::Bandwidth | FaultKind::Delay);
                let mut packages: Vec<Vec<FaultKind>> = kinds
                    .iter()
                    .filter(|k| !shaping(k))
                    .map(|&k| vec![k])
                    .collect();
                let link: Vec<FaultKind> = kinds.iter().copied().filter(shaping).collect();
                if !link.is_empty() {
                    packages.push(link);
                }
                packages
            }
        }
    }
}

impl std::fmt::Display for FaultSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for FaultSchedule {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        match text {
            "one-at-a-time" => Ok(FaultSchedule::OneAtATime),
            "overlapping" => Ok(FaultSchedule::Overlapping),
            other => Err(format!(
                "unknown nemesis schedule `{other}`: use one-at-a-time or overlapping"
            )),
        }
    }
}

/// How a schedule went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NemesisSummary {
    pub cycles: usize,
    pub installed: usize,
    pub skipped: usize,
}

/// Upper bound on cycles whatever the interval: a zero interval must not spin forever.
const MAX_CYCLES: usize = 100_000;

/// A fault schedule. Build with [`Nemesis::new`], run with [`Nemesis::run`].
#[derive(Debug, Clone)]
pub struct Nemesis {
    config: NemesisConfig,
}

/// A random concrete fault of `kind`, as Jepsen's combined nemesis packages draw them.
pub fn random_fault(kind: FaultKind, rng: &mut impl Rng) -> Fault {
    let selection = || {
        [
            NodeSelection::One,
            NodeSelection::Minority,
            NodeSelection::Leader,
            NodeSelection::All,
        ]
    };
    match kind {
        FaultKind::Partition => Fault::Partition(
            [
                PartitionKind::IsolateOne,
                PartitionKind::IsolateLeader,
                PartitionKind::Halves,
                PartitionKind::MajoritiesRing,
                PartitionKind::Bridge,
                PartitionKind::OneWay,
            ]
            .choose(rng)
            .cloned()
            .unwrap_or(PartitionKind::Halves),
        ),
        FaultKind::Kill => Fault::Kill(
            selection()
                .choose(rng)
                .cloned()
                .unwrap_or(NodeSelection::One),
        ),
        FaultKind::Pause => Fault::Pause(
            selection()
                .choose(rng)
                .cloned()
                .unwrap_or(NodeSelection::One),
        ),
        FaultKind::Clock => {
            // Jepsen's clock nemesis (jepsen/nemesis/time.clj, `bump-gen` / `strobe-gen`): a
            // random non-empty subset of the nodes, each bumped or strobed by a random delta
            // of its own; and, beyond Jepsen, the clocks of such a subset running fast or
            // slow (a node whose NTP is broken).
            let clock = match rng.random_range(0..4) {
                0 | 1 => ClockFault::BumpEach,
                2 => ClockFault::StrobeEach,
                _ => ClockFault::Skew {
                    rate: *[0.5, 0.9, 1.1, 2.0].choose(rng).unwrap_or(&2.0),
                },
            };
            Fault::Clock(clock, NodeSelection::Subset)
        }
        FaultKind::Loss => Fault::Loss {
            percent: *[10u8, 25, 50, 90].choose(rng).unwrap_or(&25),
            nodes: selection()
                .choose(rng)
                .cloned()
                .unwrap_or(NodeSelection::One),
        },
        FaultKind::Bandwidth => Fault::Bandwidth {
            kbit: *[100u32, 1_000, 10_000].choose(rng).unwrap_or(&1_000),
            nodes: selection()
                .choose(rng)
                .cloned()
                .unwrap_or(NodeSelection::One),
        },
        FaultKind::Delay => {
            let ms = *[20u32, 100, 500].choose(rng).unwrap_or(&100);
            Fault::Delay {
                ms,
                jitter_ms: ms / 5,
                nodes: selection()
                    .choose(rng)
                    .cloned()
                    .unwrap_or(NodeSelection::One),
            }
        }
    }
}

impl Nemesis {
    pub fn new(config: NemesisConfig) -> Nemesis {
        Nemesis { config }
    }

    pub fn config(&self) -> &NemesisConfig {
        &self.config
    }

    /// Runs start/stop cycles until the time limit, `shutdown` resolving, or an error; then
    /// heals everything (restart killed nodes, resume paused, reset clocks, flush rules) and
    /// emits a stop event for each kind that was still active. Kinds this lab cannot run
    /// (network faults on loopback, delay without netem) are dropped up front with a warning.
    ///
    /// ip/nft/tc failures end the schedule with the error (every package stops), after a
    /// best-effort heal.
    pub async fn run<T: FaultTarget, L: LeaderProbe>(
        &self,
        lab: &T,
        leader: &L,
        emit: impl FnMut(FaultEvent),
        shutdown: impl Future<Output = ()>,
    ) -> Result<NemesisSummary> {
        let mut kinds = Vec::new();
        for &kind in &self.config.kinds {
            match lab.supports(kind).await {
                Ok(()) => kinds.push(kind),
                Err(why) => tracing::warn!(%kind, %why, "nemesis: fault kind dropped"),
            }
        }
        let shared = Shared {
            emit: Mutex::new(emit),
            summary: Mutex::new(NemesisSummary::default()),
            stop: tokio::sync::watch::Sender::new(false),
            deadline: tokio::time::Instant::now() + self.config.time_limit,
            processes: tokio::sync::Mutex::new(()),
        };
        let outcome: Result<()> = {
            let cycles: Vec<_> = self
                .config
                .schedule
                .packages(&kinds)
                .into_iter()
                .enumerate()
                .map(|(index, pool)| {
                    // One package keeps the seed itself, so a one-at-a-time schedule draws
                    // what it always drew for that seed.
                    let seed = self
                        .config
                        .seed
                        .wrapping_add((index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    self.cycles(lab, leader, pool, seed, &shared)
                })
                .collect();
            let all = join_all(cycles);
            tokio::pin!(all);
            tokio::pin!(shutdown);
            let outcomes = tokio::select! {
                outcomes = &mut all => outcomes,
                _ = &mut shutdown => {
                    // Let every package stop its fault and record the stop, then heal.
                    shared.stop.send_replace(true);
                    all.await
                }
            };
            outcomes.into_iter().collect()
        };
        let Shared { emit, summary, .. } = shared;
        let mut emit = emit.into_inner().unwrap_or_else(|p| p.into_inner());
        // The final heal runs on every path, also after an error.
        let healed = lab.heal().await;
        if let Ok(actions) = &healed {
            for (kind, action) in actions {
                emit(FaultEvent::new(*kind, Phase::Stop, action.clone()));
            }
        }
        outcome?;
        healed?;
        Ok(summary.into_inner().unwrap_or_else(|p| p.into_inner()))
    }

    /// Start/stop cycles of one package until the deadline or the stop signal. An error
    /// stops every other package too.
    async fn cycles<T: FaultTarget, L: LeaderProbe, E: FnMut(FaultEvent)>(
        &self,
        lab: &T,
        leader: &L,
        pool: Vec<FaultKind>,
        seed: u64,
        shared: &Shared<E>,
    ) -> Result<()> {
        let outcome = self
            .cycles_until_error(lab, leader, &pool, seed, shared)
            .await;
        if outcome.is_err() {
            shared.stop.send_replace(true);
        }
        outcome
    }

    async fn cycles_until_error<T: FaultTarget, L: LeaderProbe, E: FnMut(FaultEvent)>(
        &self,
        lab: &T,
        leader: &L,
        pool: &[FaultKind],
        seed: u64,
        shared: &Shared<E>,
    ) -> Result<()> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut stopped = shared.stop.subscribe();
        let deadline = shared.deadline;
        for _ in 0..MAX_CYCLES {
            // Sleep, unless the run ends first.
            let wake = (tokio::time::Instant::now() + self.pause(&mut rng)).min(deadline);
            tokio::select! {
                _ = stopped.wait_for(|stop| *stop) => return Ok(()),
                _ = tokio::time::sleep_until(wake) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(());
            }
            let kind = *pool.choose(&mut rng).unwrap_or(&pool[0]);
            let fault = random_fault(kind, &mut rng);
            let current = if fault.needs_leader() {
                leader.leader().await
            } else {
                None
            };
            let action = {
                let _processes = shared.lock_processes(kind).await;
                lab.start_fault(&fault, &mut rng, current.as_deref())
                    .await?
            };
            let installed = action.is_installed();
            {
                let mut summary = lock(&shared.summary);
                summary.cycles += 1;
                if installed {
                    summary.installed += 1;
                } else {
                    summary.skipped += 1;
                }
            }
            (lock(&shared.emit))(FaultEvent::new(kind, Phase::Start, action));
            if !installed {
                continue;
            }
            let wake = (tokio::time::Instant::now() + self.pause(&mut rng)).min(deadline);
            let stop_early = tokio::select! {
                _ = stopped.wait_for(|stop| *stop) => true,
                _ = tokio::time::sleep_until(wake) => false,
            };
            let action = {
                let _processes = shared.lock_processes(kind).await;
                lab.stop_fault(kind).await?
            };
            (lock(&shared.emit))(FaultEvent::new(kind, Phase::Stop, action));
            if stop_early {
                return Ok(());
            }
        }
        Ok(())
    }

    /// How long to sleep before the next start or stop.
    fn pause(&self, rng: &mut impl Rng) -> Duration {
        let interval = self.config.interval;
        match self.config.schedule {
            FaultSchedule::OneAtATime => interval,
            FaultSchedule::Overlapping => interval.mul_f64(rng.random_range(0.5..1.5)),
        }
    }
}

/// What the packages of one schedule share: the caller's event sink, the counts, the stop
/// signal (shutdown or a package's error) and the deadline.
struct Shared<E> {
    emit: Mutex<E>,
    summary: Mutex<NemesisSummary>,
    stop: tokio::sync::watch::Sender<bool>,
    deadline: tokio::time::Instant,
    /// Held while a kill or pause is installed or undone: the kill package must not restart
    /// a node between the pause package picking it and seeing it stop, nor the other way.
    processes: tokio::sync::Mutex<()>,
}

impl<E> Shared<E> {
    async fn lock_processes(&self, kind: FaultKind) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match kind {
            FaultKind::Kill | FaultKind::Pause => Some(self.processes.lock().await),
            _ => None,
        }
    }
}

/// Drives every future to completion on this task and returns their outputs in order.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(outputs.iter_mut().filter_map(Option::take).collect())
        }
    })
    .await
}

/// Installs SIGINT, SIGTERM and SIGHUP handlers now and returns a future that resolves on the
/// first of them, for `tokio::select!` around a run so that teardown still runs (then
/// `Lab::teardown`); pass it (or the harness's own shutdown future) as `shutdown` to
/// [`Nemesis::run`]. Installing eagerly matters: a signal that arrives before the future is
/// first polled is still caught, instead of killing the process with teardown skipped.
/// SIGHUP (the terminal or SSH session went away) is caught only when not ignored: under
/// `nohup` the run goes on, as its user asked. Must be called inside a tokio runtime.
pub fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let io = |e: std::io::Error| {
        crate::error::Error::io("installing signal handler", "SIGINT/SIGTERM/SIGHUP", e)
    };
    let mut interrupt = signal(SignalKind::interrupt()).map_err(io)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(io)?;
    let mut hangup = if crate::procfs::ignores(nix::sys::signal::Signal::SIGHUP) {
        None
    } else {
        Some(signal(SignalKind::hangup()).map_err(io)?)
    };
    Ok(async move {
        let hung_up = async {
            match hangup.as_mut() {
                Some(hangup) => hangup.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = interrupt.recv() => tracing::warn!("SIGINT: stopping and tearing the lab down"),
            _ = terminate.recv() => tracing::warn!("SIGTERM: stopping and tearing the lab down"),
            _ = hung_up => tracing::warn!("SIGHUP (the terminal went away): stopping and tearing the lab down"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_faults_are_of_the_requested_kind_and_seeded() {
        let mut a = rand::rngs::StdRng::seed_from_u64(3);
        let mut b = rand::rngs::StdRng::seed_from_u64(3);
        for kind in FaultKind::HEAL_ORDER {
            for _ in 0..20 {
                let fault = random_fault(kind, &mut a);
                assert_eq!(fault.kind(), kind);
                assert_eq!(fault, random_fault(kind, &mut b));
            }
        }
    }

    #[test]
    fn overlapping_packages_are_one_per_kind_but_link_shaping_shares_one() {
        let kinds = FaultKind::parse_list("partition,clock,bandwidth,delay").unwrap();
        assert_eq!(
            FaultSchedule::Overlapping.packages(&kinds),
            vec![
                vec![FaultKind::Partition],
                vec![FaultKind::Clock],
                vec![FaultKind::Bandwidth, FaultKind::Delay],
            ]
        );
        assert_eq!(FaultSchedule::OneAtATime.packages(&kinds), vec![kinds]);
        assert!(FaultSchedule::OneAtATime.packages(&[]).is_empty());
        assert!(FaultSchedule::Overlapping.packages(&[]).is_empty());
    }

    #[test]
    fn events_carry_history_fields() {
        let action = Action::Skipped("no leader is known right now".to_string());
        let event = FaultEvent::new(FaultKind::Partition, Phase::Start, action);
        assert_eq!(event.f, "start-partition");
        assert_eq!(
            event.error.as_deref(),
            Some("skipped: no leader is known right now")
        );
        assert_eq!(
            event.value["description"],
            "skipped: no leader is known right now"
        );
    }
}
