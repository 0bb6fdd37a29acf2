//! Each fault takes effect on the wire (or on the process, or on the clock) and its stop
//! undoes it. Every test ends by asserting the root-namespace guard counted nothing.

use std::time::{Duration, Instant};

use faultline_nemesis::{
    Action, ClockFault, Fault, FaultKind, Isolation, Lab, LabConfig, NodeSelection, PartitionKind,
};

use crate::common::*;

const CUT: Duration = Duration::from_millis(250);
const OK: Duration = Duration::from_secs(2);

fn nodes(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn description(action: &Action) -> String {
    match action {
        Action::Installed(applied) => applied.description.clone(),
        other => panic!("expected Installed, got {other:?}"),
    }
}

async fn assert_guard_zero(lab: &Lab) {
    assert_eq!(
        lab.guard_packets().await.unwrap(),
        Some(0),
        "root-namespace guard counted packets"
    );
}

#[tokio::test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn partition_components_cut_tcp_between_nodes_and_heal_restores_it() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(3, dir.path()).await;
    let ns = |n: &str| lab.netns(n).unwrap();
    for node in ["n1", "n3"] {
        sink_in_netns(&ns(node), lab.node_ip(node), 7100);
    }
    assert!(connects_from(&ns("n2"), lab.node_ip("n1"), 7100, OK));
    let fault = Fault::Partition(PartitionKind::Components(vec![
        nodes(&["n1"]),
        nodes(&["n2", "n3"]),
    ]));
    let action = lab.start_fault(&fault, &mut seeded(), None).await.unwrap();
    assert_eq!(description(&action), "partition n1 | n2,n3");
    assert!(
        !connects_from(&ns("n2"), lab.node_ip("n1"), 7100, CUT),
        "n2 -> n1 must time out"
    );
    assert!(
        connects_from(&ns("n2"), lab.node_ip("n3"), 7100, OK),
        "n2 -> n3 stays up"
    );
    assert!(
        connects_from(&lab.client_netns(), lab.node_ip("n1"), 7100, OK),
        "clients still reach n1"
    );
    let healed = lab.stop_fault(FaultKind::Partition).await.unwrap();
    assert!(description(&healed).starts_with("heal partition (partition n1 | n2,n3)"));
    assert!(connects_from(&ns("n2"), lab.node_ip("n1"), 7100, OK));
    assert_guard_zero(&lab).await;
    lab.teardown().await.unwrap();
}

#[tokio::test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn isolate_leader_and_one_way_cut() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(3, dir.path()).await;
    let ns = |n: &str| lab.netns(n).unwrap();
    let skipped = lab
        .start_fault(
            &Fault::Partition(PartitionKind::IsolateLeader),
            &mut seeded(),
            None,
        )
        .await
        .unwrap();
    assert!(
        matches!(&skipped, Action::Skipped(why) if why.contains("no leader")),
        "{skipped:?}"
    );
    let action = lab
        .start_fault(
            &Fault::Partition(PartitionKind::IsolateLeader),
            &mut seeded(),
            Some("n2"),
        )
        .await
        .unwrap();
    assert_eq!(description(&action), "isolate leader n2 from n1,n3");
    sink_in_netns(&ns("n2"), lab.node_ip("n2"), 7101);
    assert!(!connects_from(&ns("n1"), lab.node_ip("n2"), 7101, CUT));

    // One-way replaces the partition atomically. UDP shows the direction: the sender's
    // datagrams are lost, the others' reach it.
    let action = lab
        .start_fault(
            &Fault::Partition(PartitionKind::OneWay),
            &mut seeded(),
            None,
        )
        .await
        .unwrap();
    let text = description(&action);
    let sender = text
        .split("cannot hear ")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let other = lab.nodes().into_iter().find(|n| *n != sender).unwrap();
    let from_sender = udp_delivered(
        &ns(&sender),
        &ns(&other),
        lab.node_ip(&sender),
        lab.node_ip(&other),
        7200,
        20,
    );
    let to_sender = udp_delivered(
        &ns(&other),
        &ns(&sender),
        lab.node_ip(&other),
        lab.node_ip(&sender),
        7201,
        20,
    );
    assert_eq!(from_sender, 0, "{text}");
    assert_eq!(to_sender, 20, "{text}");
    lab.stop_fault(FaultKind::Partition).await.unwrap();
    assert_eq!(
        udp_delivered(
            &ns(&sender),
            &ns(&other),
            lab.node_ip(&sender),
            lab.node_ip(&other),
            7202,
            20
        ),
        20
    );
    assert_guard_zero(&lab).await;
    lab.teardown().await.unwrap();
}

#[tokio::test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn majorities_ring_halves_and_bridge_leave_the_right_links() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(5, dir.path()).await;
    let all = lab.nodes();
    for node in &all {
        sink_in_netns(&lab.netns(node).unwrap(), lab.node_ip(node), 7102);
    }
    // Which nodes each node reaches, probed in parallel (cut links cost one timeout).
    let reach = |lab: &Lab| {
        let probes: Vec<_> = all
            .iter()
            .flat_map(|a| {
                all.iter()
                    .filter(move |b| *b != a)
                    .map(move |b| (a.clone(), b.clone()))
            })
            .map(|(a, b)| {
                let (ns, ip) = (lab.netns(&a).unwrap(), lab.node_ip(&b));
                std::thread::spawn(move || (a, b, connects_from(&ns, ip, 7102, CUT)))
            })
            .collect();
        let mut seen = std::collections::BTreeMap::<String, usize>::new();
        for probe in probes {
            let (a, _, ok) = probe.join().unwrap();
            *seen.entry(a).or_default() += usize::from(ok);
        }
        seen
    };
    let ring = lab
        .start_fault(
            &Fault::Partition(PartitionKind::MajoritiesRing),
            &mut seeded(),
            None,
        )
        .await
        .unwrap();
    assert!(description(&ring).starts_with("majorities ring: "));
    // 5 nodes: each hears itself and 2 neighbours (a majority of 3), and connects only to them.
    assert!(
        reach(&lab).values().all(|&n| n == 2),
        "{:?} {}",
        reach(&lab),
        description(&ring)
    );

    let halves = lab
        .start_fault(
            &Fault::Partition(PartitionKind::Halves),
            &mut seeded(),
            None,
        )
        .await
        .unwrap();
    assert!(description(&halves).starts_with("halves: minority "));
    let mut counts: Vec<usize> = reach(&lab).into_values().collect();
    counts.sort();
    assert_eq!(counts, vec![1, 1, 2, 2, 2], "{}", description(&halves));

    let bridge = lab
        .start_fault(
            &Fault::Partition(PartitionKind::Bridge),
            &mut seeded(),
            None,
        )
        .await
        .unwrap();
    let mut counts: Vec<usize> = reach(&lab).into_values().collect();
    counts.sort();
    // Sides of 2: each reaches its partner and the bridge node; the bridge node reaches all 4.
    assert_eq!(counts, vec![2, 2, 2, 2, 4], "{}", description(&bridge));
    lab.heal().await.unwrap();
    assert!(reach(&lab).values().all(|&n| n == 4));
    assert_guard_zero(&lab).await;
    lab.teardown().await.unwrap();
}

#[tokio::test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn kill_and_pause_faults_stop_answers_and_stop_undoes_them() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(3, dir.path()).await;
    let ctl = lab.client_netns();
    for node in lab.nodes() {
        lab.start_node(&node, echo_server(&lab, &node, 7103, false))
            .await
            .unwrap();
        wait_echo(&ctl, lab.node_ip(&node), 7103);
    }
    let killed = lab
        .start_fault(&Fault::Kill(NodeSelection::Minority), &mut seeded(), None)
        .await
        .unwrap();
    let Action::Installed(applied) = &killed else {
        panic!("{killed:?}")
    };
    assert_eq!(applied.nodes.len(), 1, "a minority of 3 is 1");
    let victim = applied.nodes[0].clone();
    assert_eq!(applied.description, format!("kill {victim} (SIGKILL)"));
    assert_eq!(ask_from(&ctl, lab.node_ip(&victim), 7103, "x", CUT), None);
    let restarted = lab.stop_fault(FaultKind::Kill).await.unwrap();
    assert_eq!(description(&restarted), format!("restart {victim}"));
    wait_echo(&ctl, lab.node_ip(&victim), 7103);

    let paused = lab
        .start_fault(
            &Fault::Pause(NodeSelection::Leader),
            &mut seeded(),
            Some("n3"),
        )
        .await
        .unwrap();
    assert_eq!(description(&paused), "pause n3 (SIGSTOP)");
    assert_eq!(
        ask_from(&ctl, lab.node_ip("n3"), 7103, "x", CUT),
        None,
        "a paused node does not answer"
    );
    assert_eq!(
        ask_from(&ctl, lab.node_ip("n1"), 7103, "x", OK).as_deref(),
        Some("x")
    );
    let resumed = lab.stop_fault(FaultKind::Pause).await.unwrap();
    assert_eq!(description(&resumed), "resume n3 (SIGCONT)");
    wait_echo(&ctl, lab.node_ip("n3"), 7103);

    let all = lab
        .start_fault(&Fault::Kill(NodeSelection::All), &mut seeded(), None)
        .await
        .unwrap();
    assert_eq!(description(&all), "kill n1,n2,n3 (SIGKILL)");
    assert!(matches!(
        lab.stop_fault(FaultKind::Pause).await.unwrap(),
        Action::Skipped(_)
    ));
    let healed = lab.heal().await.unwrap();
    assert_eq!(healed.len(), 1);
    assert_eq!(healed[0].0, FaultKind::Kill);
    for node in lab.nodes() {
        wait_echo(&ctl, lab.node_ip(&node), 7103);
    }
    assert!(lab.unexpected_exits().is_empty());
    assert_guard_zero(&lab).await;
    lab.teardown().await.unwrap();
}

/// Asks the echo server for its `time.time()` and returns (node clock − our clock) in ms.
fn clock_offset_ms(ns: &str, lab: &Lab, node: &str, port: u16) -> f64 {
    let reply = ask_from(ns, lab.node_ip(node), port, "time", OK).expect("time reply");
    let theirs: f64 = reply.parse().expect("a float");
    let ours = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    (theirs - ours) * 1000.0
}

#[tokio::test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn clock_faults_bump_strobe_skew_and_reset_a_libfaketime_node() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(2, dir.path()).await;
    let ctl = lab.client_netns();
    lab.start_node("n1", echo_server(&lab, "n1", 7104, true))
        .await
        .unwrap();
    lab.start_node("n2", echo_server(&lab, "n2", 7104, false))
        .await
        .unwrap();
    wait_echo(&ctl, lab.node_ip("n1"), 7104);
    wait_echo(&ctl, lab.node_ip("n2"), 7104);
    assert!(clock_offset_ms(&ctl, &lab, "n1", 7104).abs() < 500.0);

    let bump = Fault::Clock(ClockFault::Bump { delta_ms: 5000 }, NodeSelection::All);
    let action = lab.start_fault(&bump, &mut seeded(), None).await.unwrap();
    assert_eq!(
        description(&action),
        "bump clock of n1 by +5000 ms",
        "only the libfaketime node"
    );
    let offset = clock_offset_ms(&ctl, &lab, "n1", 7104);
    assert!((4500.0..5500.0).contains(&offset), "offset {offset}");
    assert!(
        clock_offset_ms(&ctl, &lab, "n2", 7104).abs() < 500.0,
        "n2 runs without libfaketime"
    );
    let back = Fault::Clock(
        ClockFault::Bump { delta_ms: -7000 },
        NodeSelection::Nodes(vec!["n1".into()]),
    );
    lab.start_fault(&back, &mut seeded(), None).await.unwrap();
    let offset = clock_offset_ms(&ctl, &lab, "n1", 7104);
    assert!((-2500.0..-1500.0).contains(&offset), "offset {offset}");
    let reset = lab.stop_fault(FaultKind::Clock).await.unwrap();
    assert_eq!(description(&reset), "reset clock of n1");
    assert!(clock_offset_ms(&ctl, &lab, "n1", 7104).abs() < 500.0);

    // Jepsen's shape: each node its own random delta, named in the description.
    let each = Fault::Clock(ClockFault::BumpEach, NodeSelection::Subset);
    let action = lab.start_fault(&each, &mut seeded(), None).await.unwrap();
    let text = description(&action);
    let delta: f64 = text
        .strip_prefix("bump clock of n1 by ")
        .and_then(|d| d.strip_suffix(" ms"))
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("one delta for n1, the only libfaketime node: {text}"));
    let offset = clock_offset_ms(&ctl, &lab, "n1", 7104);
    assert!((offset - delta).abs() < 500.0, "offset {offset}, {text}");
    lab.stop_fault(FaultKind::Clock).await.unwrap();
    assert!(clock_offset_ms(&ctl, &lab, "n1", 7104).abs() < 500.0);

    let strobe = Fault::Clock(
        ClockFault::Strobe {
            delta_ms: 60_000,
            period_ms: 20,
        },
        NodeSelection::One,
    );
    lab.start_fault(&strobe, &mut seeded(), None).await.unwrap();
    let samples: Vec<f64> = (0..30)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(7));
            clock_offset_ms(&ctl, &lab, "n1", 7104)
        })
        .collect();
    assert!(samples.iter().any(|o| *o > 50_000.0), "{samples:?}");
    assert!(samples.iter().any(|o| o.abs() < 5_000.0), "{samples:?}");
    lab.stop_fault(FaultKind::Clock).await.unwrap();

    let skew = Fault::Clock(ClockFault::Skew { rate: 5.0 }, NodeSelection::All);
    lab.start_fault(&skew, &mut seeded(), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let offset = clock_offset_ms(&ctl, &lab, "n1", 7104);
    // 1000 ms at 5x is 4000 ms ahead, minus the 50 ms tick and the request's round trip
    // (long on a loaded 2-core machine, hence the wide lower bound; a plain bump would
    // not grow at all).
    assert!((1500.0..4500.0).contains(&offset), "offset {offset}");
    lab.heal().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(clock_offset_ms(&ctl, &lab, "n1", 7104).abs() < 500.0);
    assert_guard_zero(&lab).await;
    lab.teardown().await.unwrap();
}

#[tokio::test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn clock_fault_is_refused_for_nodes_without_libfaketime() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(1, dir.path()).await;
    lab.start_node("n1", echo_server(&lab, "n1", 7105, false))
        .await
        .unwrap();
    let fault = Fault::Clock(ClockFault::Bump { delta_ms: 100 }, NodeSelection::All);
    let action = lab.start_fault(&fault, &mut seeded(), None).await.unwrap();
    assert!(
        matches!(&action, Action::Skipped(why) if why.contains("libc") && why.contains("vDSO")),
        "{action:?}"
    );
    lab.teardown().await.unwrap();
}

#[tokio::test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn loss_drops_the_given_share_of_packets_and_stop_restores() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(2, dir.path()).await;
    let (n1, ctl) = (lab.netns("n1").unwrap(), lab.client_netns());
    let all = Fault::Loss {
        percent: 100,
        nodes: NodeSelection::Nodes(vec!["n1".into()]),
    };
    let action = lab.start_fault(&all, &mut seeded(), None).await.unwrap();
    assert_eq!(
        description(&action),
        "drop 100% of packets to and from n1 (nft numgen)"
    );
    assert_eq!(
        udp_delivered(&ctl, &n1, lab.client_ip(), lab.node_ip("n1"), 7300, 50),
        0
    );
    let half = Fault::Loss {
        percent: 50,
        nodes: NodeSelection::Nodes(vec!["n1".into()]),
    };
    lab.start_fault(&half, &mut seeded(), None).await.unwrap();
    let got = udp_delivered(&ctl, &n1, lab.client_ip(), lab.node_ip("n1"), 7301, 400);
    // Binomial(400, 0.5): 200 ± 10 sd; 140..260 is 6 sd.
    assert!(
        (140..=260).contains(&got),
        "{got} of 400 arrived at 50% loss"
    );
    lab.stop_fault(FaultKind::Loss).await.unwrap();
    assert_eq!(
        udp_delivered(&ctl, &n1, lab.client_ip(), lab.node_ip("n1"), 7302, 50),
        50
    );
    assert_guard_zero(&lab).await;
    lab.teardown().await.unwrap();
}

#[tokio::test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn bandwidth_limit_slows_a_transfer_and_stop_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(1, dir.path()).await;
    let ctl = lab.client_netns();
    let ip = lab.node_ip("n1");
    sink_in_netns(&lab.netns("n1").unwrap(), ip, 7106);
    let send = |bytes: usize| {
        in_netns(&ctl, move || {
            use std::io::{Read, Write};
            let started = Instant::now();
            let mut s = std::net::TcpStream::connect((ip, 7106)).unwrap();
            s.write_all(&vec![7u8; bytes]).unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut reply = String::new();
            s.read_to_string(&mut reply).unwrap();
            assert_eq!(reply, bytes.to_string());
            started.elapsed()
        })
    };
    let fast = send(200_000);
    let fault = Fault::Bandwidth {
        kbit: 1000,
        nodes: NodeSelection::All,
    };
    let action = lab.start_fault(&fault, &mut seeded(), None).await.unwrap();
    assert_eq!(
        description(&action),
        "limit n1 to 1000 kbit/s each way (tc tbf)"
    );
    // 200 kB at 125 kB/s is 1.6 s; minus the 16 kB burst, still well above 1 s.
    let slow = send(200_000);
    assert!(
        slow > Duration::from_secs(1),
        "shaped transfer took {slow:?} (unshaped {fast:?})"
    );
    lab.stop_fault(FaultKind::Bandwidth).await.unwrap();
    let again = send(200_000);
    assert!(again < slow / 3, "unshaped again: {again:?}");
    assert_guard_zero(&lab).await;
    lab.teardown().await.unwrap();
}

#[tokio::test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn delay_is_refused_with_a_reason_when_the_kernel_has_no_netem() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(1, dir.path()).await;
    let netem = std::process::Command::new("tc")
        .args([
            "-n",
            &lab.netns("n1").unwrap(),
            "qdisc",
            "add",
            "dev",
            "lo",
            "root",
            "netem",
            "delay",
            "1ms",
        ])
        .status()
        .unwrap()
        .success();
    let fault = Fault::Delay {
        ms: 50,
        jitter_ms: 5,
        nodes: NodeSelection::All,
    };
    let action = lab.start_fault(&fault, &mut seeded(), None).await.unwrap();
    if netem {
        assert_eq!(
            description(&action),
            "delay packets to and from n1 by 50 ms ± 5 ms (tc netem)"
        );
        lab.stop_fault(FaultKind::Delay).await.unwrap();
    } else {
        assert!(
            matches!(&action, Action::Skipped(why) if why.contains("netem")),
            "{action:?}"
        );
        assert!(lab.supports(FaultKind::Delay).await.is_err());
    }
    lab.teardown().await.unwrap();
}

#[tokio::test]
async fn loopback_lab_kills_and_restarts_but_refuses_network_faults() {
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab::create(LabConfig {
        nodes: 2,
        isolation: Isolation::Loopback,
        run_dir: dir.path().to_path_buf(),
    })
    .await
    .unwrap();
    lab.start_node("n1", echo_server(&lab, "n1", 7107, false))
        .await
        .unwrap();
    let ip = lab.node_ip("n1");
    let answers = || ask(ip, 7107, "hi", Duration::from_millis(300)).as_deref() == Some("hi");
    for _ in 0..200 {
        if answers() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(answers());
    let partition = lab
        .start_fault(
            &Fault::Partition(PartitionKind::Halves),
            &mut seeded(),
            None,
        )
        .await
        .unwrap();
    assert!(
        matches!(&partition, Action::Skipped(why) if why.contains("namespace")),
        "{partition:?}"
    );
    let kill = lab
        .start_fault(&Fault::Kill(NodeSelection::One), &mut seeded(), None)
        .await
        .unwrap();
    assert_eq!(description(&kill), "kill n1 (SIGKILL)", "only n1 runs");
    assert!(!answers());
    lab.heal().await.unwrap();
    let mut back = false;
    for _ in 0..200 {
        if answers() {
            back = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(back, "restarted node answers again");
    lab.teardown().await.unwrap();
}

#[tokio::test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn fault_actions_take_milliseconds() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(5, dir.path()).await;
    for node in lab.nodes() {
        lab.start_node(&node, echo_server(&lab, &node, 7108, false))
            .await
            .unwrap();
    }
    let timed = |started: Instant| started.elapsed();
    let mut rng = seeded();
    let t = Instant::now();
    lab.start_fault(
        &Fault::Partition(PartitionKind::MajoritiesRing),
        &mut rng,
        None,
    )
    .await
    .unwrap();
    let partition = timed(t);
    let t = Instant::now();
    lab.stop_fault(FaultKind::Partition).await.unwrap();
    let heal = timed(t);
    let t = Instant::now();
    lab.start_fault(&Fault::Kill(NodeSelection::All), &mut rng, None)
        .await
        .unwrap();
    let kill = timed(t);
    let t = Instant::now();
    lab.stop_fault(FaultKind::Kill).await.unwrap();
    let restart = timed(t);
    let t = Instant::now();
    lab.start_fault(&Fault::Pause(NodeSelection::All), &mut rng, None)
        .await
        .unwrap();
    let pause = timed(t);
    lab.heal().await.unwrap();
    println!(
        "5 nodes: partition {partition:?}, heal {heal:?}, kill all {kill:?}, restart all {restart:?}, pause all {pause:?}"
    );
    for (what, took) in [
        ("partition", partition),
        ("heal", heal),
        ("kill", kill),
        ("restart", restart),
        ("pause", pause),
    ] {
        assert!(took < Duration::from_secs(2), "{what} took {took:?}");
    }
    assert_guard_zero(&lab).await;
    lab.teardown().await.unwrap();
}
