//! The schedule runs bounded start/stop cycles, reports every event, and heals at the end.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_nemesis::{FaultEvent, FaultKind, Nemesis, NemesisConfig, Phase};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn schedule_cycles_faults_emits_events_and_heals_everything() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(3, dir.path()).await;
    let ctl = lab.client_netns();
    for node in lab.nodes() {
        lab.start_node(&node, echo_server(&lab, &node, 7400, true))
            .await
            .unwrap();
        wait_echo(&ctl, lab.node_ip(&node), 7400);
    }
    let nemesis = Nemesis::new(NemesisConfig {
        kinds: FaultKind::parse_list("all").unwrap(),
        interval: Duration::from_millis(80),
        seed: 11,
        time_limit: Duration::from_millis(2500),
    });
    let asked = Arc::new(Mutex::new(0usize));
    let leader = {
        let asked = asked.clone();
        move || {
            *asked.lock().unwrap() += 1;
            async { Some("n2".to_string()) }
        }
    };
    let mut events: Vec<FaultEvent> = Vec::new();
    let started = Instant::now();
    let summary = nemesis
        .run(&lab, &leader, |e| events.push(e), std::future::pending())
        .await
        .unwrap();
    let took = started.elapsed();
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
    let kinds: std::collections::BTreeSet<FaultKind> = events.iter().map(|e| e.kind).collect();
    assert!(kinds.len() >= 2, "several kinds drawn: {kinds:?}");
    // Healed: every node answers, nodes reach each other, clocks are real again.
    for node in lab.nodes() {
        wait_echo(&ctl, lab.node_ip(&node), 7400);
        let n1 = lab.netns("n1").unwrap();
        assert!(connects_from(
            &n1,
            lab.node_ip(&node),
            7400,
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
    lab.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn schedule_stops_on_shutdown_and_heals() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(3, dir.path()).await;
    for node in lab.nodes() {
        lab.start_node(&node, echo_server(&lab, &node, 7401, false))
            .await
            .unwrap();
    }
    let nemesis = Nemesis::new(NemesisConfig {
        kinds: vec![FaultKind::Kill],
        interval: Duration::from_millis(50),
        seed: 5,
        time_limit: Duration::from_secs(600),
    });
    let mut events = Vec::new();
    let started = Instant::now();
    nemesis
        .run(
            &lab,
            &faultline_nemesis::NoLeader,
            |e| events.push(e),
            tokio::time::sleep(Duration::from_millis(400)),
        )
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
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
    lab.teardown().await.unwrap();
}
