//! The schedule runs bounded start/stop cycles, reports every event, and heals at the end.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_nemesis::{
    FaultEvent, FaultKind, FaultSchedule, Lab, LeaderProbe, Nemesis, NemesisConfig, NemesisSummary,
    Phase,
};

use crate::common::*;

/// What one nemesis run did.
struct Run {
    summary: NemesisSummary,
    /// Every event it emitted, in order.
    events: Vec<FaultEvent>,
    /// From start until `run` returned, healing included.
    took: Duration,
}

/// Runs a nemesis with `config` against `lab` until it stops by itself (its time limit) or
/// `shutdown` completes.
async fn run_nemesis(
    lab: &Lab,
    config: NemesisConfig,
    leader: &impl LeaderProbe,
    shutdown: impl Future<Output = ()>,
) -> Run {
    let mut events = Vec::new();
    let started = Instant::now();
    let summary = Nemesis::new(config)
        .run(lab, leader, |e| events.push(e), shutdown)
        .await
        .unwrap();
    Run {
        summary,
        events,
        took: started.elapsed(),
    }
}

/// The fault kinds the events name, drawn at least once.
fn kinds_drawn(events: &[FaultEvent]) -> BTreeSet<FaultKind> {
    events.iter().map(|e| e.kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn schedule_cycles_faults_emits_events_and_heals_everything() {
    let dir = tempfile::tempdir().unwrap();
    let lab = echo_lab(dir.path(), 7400).await;
    let config = NemesisConfig {
        kinds: FaultKind::parse_list("all").unwrap(),
        interval: Duration::from_millis(80),
        seed: 11,
        time_limit: Duration::from_millis(2500),
        schedule: FaultSchedule::OneAtATime,
    };
    let asked = Arc::new(Mutex::new(0usize));
    let leader = {
        let asked = asked.clone();
        move || {
            *asked.lock().unwrap() += 1;
            async { Some("n2".to_string()) }
        }
    };
    let Run {
        summary,
        events,
        took,
    } = run_nemesis(&lab, config, &leader, std::future::pending()).await;
    assert!(took < Duration::from_secs(5), "stops by itself: {took:?}");
    assert!(summary.cycles >= 3, "{summary:?}");
    assert!(summary.installed >= 2, "{summary:?}");
    // Every installed start is followed by a stop of the same kind before the next start.
    let mut open: Option<FaultKind> = None;
    for event in &events {
        match event.phase {
            Phase::Start if event.action.is_installed() => {
                assert_eq!(open, None, "overlapping faults: {events:#?}");
                assert!(event.f.starts_with("start-"));
                assert!(
                    event.value["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty())
                );
                open = Some(event.kind);
            }
            Phase::Start => assert!(event.error.as_deref().unwrap().starts_with("skipped")),
            Phase::Stop => {
                assert_eq!(open.take(), Some(event.kind), "{events:#?}");
                assert_eq!(event.f, format!("stop-{}", event.kind));
            }
        }
    }
    assert_eq!(open, None);
    let kinds = kinds_drawn(&events);
    assert!(kinds.len() >= 2, "several kinds drawn: {kinds:?}");
    assert_healed(&lab, 7400).await;
    lab.teardown().await.unwrap();
}

/// A 3-node lab whose nodes run echo servers on `port` (under libfaketime), all answering.
async fn echo_lab(dir: &std::path::Path, port: u16) -> Lab {
    let lab = lab(3, dir).await;
    start_echo_servers(&lab, port, true).await;
    wait_echo_servers(&lab, port);
    lab
}

/// Healed: every node answers, nodes reach each other, clocks are real again, nothing exited
/// and no packet left the lab.
async fn assert_healed(lab: &Lab, port: u16) {
    let n1 = lab.netns("n1").unwrap();
    for node in lab.nodes() {
        wait_node_echo(lab, &node, port);
        assert!(connects_from(
            &n1,
            lab.node_ip(&node),
            port,
            Duration::from_secs(2)
        ));
        // `+0` as written at start (a clock no fault touched), `+0.000` once reset.
        let spec = std::fs::read_to_string(lab.faketime_path(&node)).unwrap();
        assert!(
            ["+0", "+0.000"].contains(&spec.trim()),
            "{node} clock reset: {spec:?}"
        );
    }
    assert!(lab.unexpected_exits().is_empty());
    assert_eq!(lab.guard_packets().await.unwrap(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn schedule_stops_on_shutdown_and_heals() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(3, dir.path()).await;
    start_echo_servers(&lab, 7401, false).await;
    let config = NemesisConfig {
        kinds: FaultKind::parse_list("kill,pause,clock").unwrap(),
        interval: Duration::from_millis(50),
        seed: 5,
        time_limit: Duration::from_secs(600),
        schedule: FaultSchedule::Overlapping,
    };
    let shutdown = tokio::time::sleep(Duration::from_millis(400));
    let Run { events, took, .. } =
        run_nemesis(&lab, config, &faultline_nemesis::NoLeader, shutdown).await;
    assert!(took < Duration::from_secs(3), "stops on shutdown: {took:?}");
    assert!(!events.is_empty());
    for node in lab.nodes() {
        assert!(
            matches!(
                lab.node_status(&node).unwrap(),
                faultline_nemesis::NodeStatus::Running { .. }
            ),
            "{node}"
        );
    }
    assert_pairs_per_kind(&events);
    lab.teardown().await.unwrap();
}

/// Per kind, installed starts and stops alternate, and nothing is left open.
fn assert_pairs_per_kind(events: &[FaultEvent]) {
    let mut open = BTreeSet::new();
    for event in events {
        match event.phase {
            Phase::Start if event.action.is_installed() => {
                assert!(
                    open.insert(event.kind),
                    "{} started twice: {events:#?}",
                    event.kind
                );
            }
            Phase::Start => {}
            Phase::Stop => {
                assert!(
                    open.remove(&event.kind),
                    "{} stopped unstarted: {events:#?}",
                    event.kind
                );
            }
        }
    }
    assert!(open.is_empty(), "left open: {open:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn overlapping_schedule_runs_each_kind_on_its_own_cycle_and_heals() {
    let dir = tempfile::tempdir().unwrap();
    let lab = echo_lab(dir.path(), 7402).await;
    let config = NemesisConfig {
        kinds: FaultKind::parse_list("partition,pause,clock").unwrap(),
        interval: Duration::from_millis(100),
        seed: 4,
        time_limit: Duration::from_millis(3000),
        schedule: FaultSchedule::Overlapping,
    };
    let leader = || async { Some("n1".to_string()) };
    let Run {
        summary,
        events,
        took,
    } = run_nemesis(&lab, config, &leader, std::future::pending()).await;
    assert!(took < Duration::from_secs(6), "stops by itself: {took:?}");
    assert_pairs_per_kind(&events);
    // Faults of different kinds were in force at once.
    let mut open = BTreeSet::new();
    let mut overlapped = 0;
    for event in &events {
        match event.phase {
            Phase::Start if event.action.is_installed() => {
                if !open.is_empty() {
                    overlapped += 1;
                }
                open.insert(event.kind);
            }
            Phase::Start => {}
            Phase::Stop => {
                open.remove(&event.kind);
            }
        }
    }
    assert!(
        overlapped >= 3,
        "{overlapped} overlapping starts: {events:#?}"
    );
    let kinds = kinds_drawn(&events);
    assert_eq!(kinds.len(), 3, "every package cycled: {kinds:?}");
    assert!(summary.installed >= 6, "{summary:?}");
    assert_healed(&lab, 7402).await;
    lab.teardown().await.unwrap();
}
