//! Each fault takes effect on the wire (or on the process, or on the clock) and its stop
//! undoes it. Every test ends by asserting the root-namespace guard counted nothing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use faultline_nemesis::{
    Action, Applied, ClockFault, Fault, FaultKind, Lab, NodeSelection, PartitionKind,
};

use crate::common::*;

const CUT: Duration = Duration::from_millis(250);
const OK: Duration = Duration::from_secs(2);

fn nodes(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// What an action that must have installed did.
fn installed(action: &Action) -> &Applied {
    match action {
        Action::Installed(applied) => applied,
        other => panic!("expected Installed, got {other:?}"),
    }
}

fn description(action: &Action) -> String {
    installed(action).description.clone()
}

/// Asserts `action` did nothing, for a reason that names every one of `words`.
fn assert_skipped_because(action: &Action, words: &[&str]) {
    assert!(
        matches!(action, Action::Skipped(why) if words.iter().all(|w| why.contains(w))),
        "{action:?}"
    );
}

/// Starts `fault` with the tests' fixed seed, telling the lab no leader is known.
async fn start(lab: &Lab, fault: Fault) -> Action {
    lab.start_fault(&fault, &mut seeded(), None).await.unwrap()
}

/// Starts `fault` with the tests' fixed seed, telling the lab `leader` leads.
async fn start_with_leader(lab: &Lab, fault: Fault, leader: &str) -> Action {
    lab.start_fault(&fault, &mut seeded(), Some(leader))
        .await
        .unwrap()
}

/// Starts `fault`, which must install; returns its description.
async fn install(lab: &Lab, fault: Fault) -> String {
    description(&start(lab, fault).await)
}

/// Stops the fault of `kind`, which must undo something; returns the undo's description.
async fn undo(lab: &Lab, kind: FaultKind) -> String {
    description(&lab.stop_fault(kind).await.unwrap())
}

async fn assert_guard_zero(lab: &Lab) {
    assert_eq!(
        lab.guard_packets().await.unwrap(),
        Some(0),
        "root-namespace guard counted packets"
    );
}

/// Starts a byte-counting TCP sink on `port` at each of `nodes`' own addresses.
fn start_sinks(lab: &Lab, nodes: &[&str], port: u16) {
    for node in nodes {
        sink_in_netns(&lab.netns(node).unwrap(), lab.node_ip(node), port);
    }
}

/// Can node `from` open a TCP connection to node `to`'s `port` within `timeout`?
fn node_connects(lab: &Lab, from: &str, to: &str, port: u16, timeout: Duration) -> bool {
    connects_from(&lab.netns(from).unwrap(), lab.node_ip(to), port, timeout)
}

/// How many of `count` UDP datagrams from node `from` reach node `to` on `port`.
fn udp_node_to_node(lab: &Lab, from: &str, to: &str, port: u16, count: usize) -> usize {
    udp_delivered(
        &lab.netns(from).unwrap(),
        &lab.netns(to).unwrap(),
        lab.node_ip(from),
        lab.node_ip(to),
        port,
        count,
    )
}

/// How many of `count` UDP datagrams from the client namespace reach node `to` on `port`.
fn udp_client_to_node(lab: &Lab, to: &str, port: u16, count: usize) -> usize {
    udp_delivered(
        &lab.client_netns(),
        &lab.netns(to).unwrap(),
        lab.client_ip(),
        lab.node_ip(to),
        port,
        count,
    )
}

/// Sends `message` from the client namespace to `node`'s echo server on `port`; the reply,
/// or None on timeout/refusal.
fn ask_node(lab: &Lab, node: &str, port: u16, message: &str, timeout: Duration) -> Option<String> {
    ask_from(
        &lab.client_netns(),
        lab.node_ip(node),
        port,
        message,
        timeout,
    )
}

#[tokio::test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn partition_components_cut_tcp_between_nodes_and_heal_restores_it() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(3, dir.path()).await;
    start_sinks(&lab, &["n1", "n3"], 7100);
    assert!(node_connects(&lab, "n2", "n1", 7100, OK));
    let fault = Fault::Partition(PartitionKind::Components(vec![
        nodes(&["n1"]),
        nodes(&["n2", "n3"]),
    ]));
    assert_eq!(install(&lab, fault).await, "partition n1 | n2,n3");
    assert!(
        !node_connects(&lab, "n2", "n1", 7100, CUT),
        "n2 -> n1 must time out"
    );
    assert!(
        node_connects(&lab, "n2", "n3", 7100, OK),
        "n2 -> n3 stays up"
    );
    assert!(
        connects_from(&lab.client_netns(), lab.node_ip("n1"), 7100, OK),
        "clients still reach n1"
    );
    let healed = undo(&lab, FaultKind::Partition).await;
    assert!(healed.starts_with("heal partition (partition n1 | n2,n3)"));
    assert!(node_connects(&lab, "n2", "n1", 7100, OK));
    assert_guard_zero(&lab).await;
    lab.teardown().await.unwrap();
}

/// The node a one-way partition's description names as unheard: `n2` in
/// "one-way: n1,n3 cannot hear n2; n2 still hears them".
fn one_way_sender(description: &str) -> String {
    let (_, sender_on) = description
        .split_once("cannot hear ")
        .unwrap_or_else(|| panic!("not a one-way partition: {description}"));
    sender_on.split(';').next().unwrap_or_default().to_string()
}

#[tokio::test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn isolate_leader_and_one_way_cut() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(3, dir.path()).await;
    let skipped = start(&lab, Fault::Partition(PartitionKind::IsolateLeader)).await;
    assert_skipped_because(&skipped, &["no leader"]);
    let action =
        start_with_leader(&lab, Fault::Partition(PartitionKind::IsolateLeader), "n2").await;
    assert_eq!(description(&action), "isolate leader n2 from n1,n3");
    start_sinks(&lab, &["n2"], 7101);
    assert!(!node_connects(&lab, "n1", "n2", 7101, CUT));

    // One-way replaces the partition atomically. UDP shows the direction: the sender's
    // datagrams are lost, the others' reach it.
    let text = install(&lab, Fault::Partition(PartitionKind::OneWay)).await;
    let sender = one_way_sender(&text);
    let other = lab.nodes().into_iter().find(|n| *n != sender).unwrap();
    let from_sender = udp_node_to_node(&lab, &sender, &other, 7200, 20);
    let to_sender = udp_node_to_node(&lab, &other, &sender, 7201, 20);
    assert_eq!(from_sender, 0, "{text}");
    assert_eq!(to_sender, 20, "{text}");
    lab.stop_fault(FaultKind::Partition).await.unwrap();
    assert_eq!(udp_node_to_node(&lab, &sender, &other, 7202, 20), 20);
    assert_guard_zero(&lab).await;
    lab.teardown().await.unwrap();
}

/// How many other nodes each node can connect to on `port`, probed in parallel (cut links
/// cost one timeout).
fn reach(lab: &Lab, port: u16) -> BTreeMap<String, usize> {
    let all = lab.nodes();
    let probes: Vec<_> = all
        .iter()
        .flat_map(|a| {
            all.iter()
                .filter(move |b| *b != a)
                .map(move |b| (a.clone(), b.clone()))
        })
        .map(|(a, b)| {
            let (ns, ip) = (lab.netns(&a).unwrap(), lab.node_ip(&b));
            std::thread::spawn(move || (a, b, connects_from(&ns, ip, port, CUT)))
        })
        .collect();
    let mut seen = BTreeMap::<String, usize>::new();
    for probe in probes {
        let (a, _, ok) = probe.join().unwrap();
        *seen.entry(a).or_default() += usize::from(ok);
    }
    seen
}

/// The counts of [`reach`], smallest first: the shape of a partition, whichever nodes it
/// picked.
fn sorted_reach(lab: &Lab, port: u16) -> Vec<usize> {
    let mut counts: Vec<usize> = reach(lab, port).into_values().collect();
    counts.sort();
    counts
}

#[tokio::test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn majorities_ring_halves_and_bridge_leave_the_right_links() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(5, dir.path()).await;
    let all = lab.nodes();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    start_sinks(&lab, &all, 7102);
    let ring = install(&lab, Fault::Partition(PartitionKind::MajoritiesRing)).await;
    assert!(ring.starts_with("majorities ring: "));
    // 5 nodes: each hears itself and 2 neighbours (a majority of 3), and connects only to them.
    let reached = reach(&lab, 7102);
    assert!(reached.values().all(|&n| n == 2), "{reached:?} {ring}");

    let halves = install(&lab, Fault::Partition(PartitionKind::Halves)).await;
    assert!(halves.starts_with("halves: minority "));
    assert_eq!(sorted_reach(&lab, 7102), vec![1, 1, 2, 2, 2], "{halves}");

    let bridge = install(&lab, Fault::Partition(PartitionKind::Bridge)).await;
    // Sides of 2: each reaches its partner and the bridge node; the bridge node reaches all 4.
    assert_eq!(sorted_reach(&lab, 7102), vec![2, 2, 2, 2, 4], "{bridge}");
    lab.heal().await.unwrap();
    assert!(reach(&lab, 7102).values().all(|&n| n == 4));
    assert_guard_zero(&lab).await;
    lab.teardown().await.unwrap();
}

#[tokio::test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn kill_and_pause_faults_stop_answers_and_stop_undoes_them() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(3, dir.path()).await;
    start_echo_servers(&lab, 7103, false).await;
    wait_echo_servers(&lab, 7103);
    let killed = start(&lab, Fault::Kill(NodeSelection::Minority)).await;
    let applied = installed(&killed);
    assert_eq!(applied.nodes.len(), 1, "a minority of 3 is 1");
    let victim = applied.nodes[0].clone();
    assert_eq!(applied.description, format!("kill {victim} (SIGKILL)"));
    assert_eq!(ask_node(&lab, &victim, 7103, "x", CUT), None);
    assert_eq!(
        undo(&lab, FaultKind::Kill).await,
        format!("restart {victim}")
    );
    wait_node_echo(&lab, &victim, 7103);

    let paused = start_with_leader(&lab, Fault::Pause(NodeSelection::Leader), "n3").await;
    assert_eq!(description(&paused), "pause n3 (SIGSTOP)");
    assert_eq!(
        ask_node(&lab, "n3", 7103, "x", CUT),
        None,
        "a paused node does not answer"
    );
    assert_eq!(ask_node(&lab, "n1", 7103, "x", OK).as_deref(), Some("x"));
    assert_eq!(undo(&lab, FaultKind::Pause).await, "resume n3 (SIGCONT)");
    wait_node_echo(&lab, "n3", 7103);

    assert_eq!(
        install(&lab, Fault::Kill(NodeSelection::All)).await,
        "kill n1,n2,n3 (SIGKILL)"
    );
    assert_skipped_because(&lab.stop_fault(FaultKind::Pause).await.unwrap(), &[]);
    let healed = lab.heal().await.unwrap();
    assert_eq!(healed.len(), 1);
    assert_eq!(healed[0].0, FaultKind::Kill);
    wait_echo_servers(&lab, 7103);
    assert!(lab.unexpected_exits().is_empty());
    assert_guard_zero(&lab).await;
    lab.teardown().await.unwrap();
}

/// Asks `node`'s echo server on `port` for its `time.time()` and returns (node clock − our
/// clock) in ms.
fn clock_offset_ms(lab: &Lab, node: &str, port: u16) -> f64 {
    let reply = ask_node(lab, node, port, "time", OK).expect("time reply");
    let theirs: f64 = reply.parse().expect("a float");
    let ours = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    (theirs - ours) * 1000.0
}

/// Asserts `node`'s clock reads within 500 ms of ours (no clock fault in force on it);
/// `why` says why it should.
fn assert_clock_real(lab: &Lab, node: &str, port: u16, why: &str) {
    let offset = clock_offset_ms(lab, node, port);
    assert!(
        offset.abs() < 500.0,
        "{node} clock off by {offset} ms: {why}"
    );
}

#[tokio::test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn clock_faults_bump_strobe_skew_and_reset_a_libfaketime_node() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(2, dir.path()).await;
    lab.start_node("n1", echo_server(&lab, "n1", 7104, true))
        .await
        .unwrap();
    lab.start_node("n2", echo_server(&lab, "n2", 7104, false))
        .await
        .unwrap();
    wait_echo_servers(&lab, 7104);
    assert_clock_real(&lab, "n1", 7104, "no fault yet");

    let bump = Fault::Clock(ClockFault::Bump { delta_ms: 5000 }, NodeSelection::All);
    assert_eq!(
        install(&lab, bump).await,
        "bump clock of n1 by +5000 ms",
        "only the libfaketime node"
    );
    let offset = clock_offset_ms(&lab, "n1", 7104);
    assert!((4500.0..5500.0).contains(&offset), "offset {offset}");
    assert_clock_real(&lab, "n2", 7104, "n2 runs without libfaketime");
    let back = Fault::Clock(
        ClockFault::Bump { delta_ms: -7000 },
        NodeSelection::Nodes(nodes(&["n1"])),
    );
    start(&lab, back).await;
    let offset = clock_offset_ms(&lab, "n1", 7104);
    assert!((-2500.0..-1500.0).contains(&offset), "offset {offset}");
    assert_eq!(undo(&lab, FaultKind::Clock).await, "reset clock of n1");
    assert_clock_real(&lab, "n1", 7104, "the bumps were reset");

    // Jepsen's shape: each node its own random delta, named in the description.
    let text = install(
        &lab,
        Fault::Clock(ClockFault::BumpEach, NodeSelection::Subset),
    )
    .await;
    let delta: f64 = text
        .strip_prefix("bump clock of n1 by ")
        .and_then(|d| d.strip_suffix(" ms"))
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("one delta for n1, the only libfaketime node: {text}"));
    let offset = clock_offset_ms(&lab, "n1", 7104);
    assert!((offset - delta).abs() < 500.0, "offset {offset}, {text}");
    lab.stop_fault(FaultKind::Clock).await.unwrap();
    assert_clock_real(&lab, "n1", 7104, "bump-each was stopped");

    let strobe = Fault::Clock(
        ClockFault::Strobe {
            delta_ms: 60_000,
            period_ms: 20,
        },
        NodeSelection::One,
    );
    start(&lab, strobe).await;
    let samples: Vec<f64> = (0..30)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(7));
            clock_offset_ms(&lab, "n1", 7104)
        })
        .collect();
    assert!(samples.iter().any(|o| *o > 50_000.0), "{samples:?}");
    assert!(samples.iter().any(|o| o.abs() < 5_000.0), "{samples:?}");
    lab.stop_fault(FaultKind::Clock).await.unwrap();

    let skew = Fault::Clock(ClockFault::Skew { rate: 5.0 }, NodeSelection::All);
    start(&lab, skew).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let offset = clock_offset_ms(&lab, "n1", 7104);
    // 1000 ms at 5x is 4000 ms ahead, minus the 50 ms tick and the request's round trip
    // (long on a loaded 2-core machine, hence the wide lower bound; a plain bump would
    // not grow at all).
    assert!((1500.0..4500.0).contains(&offset), "offset {offset}");
    lab.heal().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_clock_real(&lab, "n1", 7104, "the skew was healed");
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
    assert_skipped_because(&start(&lab, fault).await, &["libc", "vDSO"]);
    lab.teardown().await.unwrap();
}

#[tokio::test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn loss_drops_the_given_share_of_packets_and_stop_restores() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(2, dir.path()).await;
    let all = Fault::Loss {
        percent: 100,
        nodes: NodeSelection::Nodes(nodes(&["n1"])),
    };
    assert_eq!(
        install(&lab, all).await,
        "drop 100% of packets to and from n1 (nft numgen)"
    );
    assert_eq!(udp_client_to_node(&lab, "n1", 7300, 50), 0);
    let half = Fault::Loss {
        percent: 50,
        nodes: NodeSelection::Nodes(nodes(&["n1"])),
    };
    start(&lab, half).await;
    let got = udp_client_to_node(&lab, "n1", 7301, 400);
    // Binomial(400, 0.5): 200 ± 10 sd; 140..260 is 6 sd.
    assert!(
        (140..=260).contains(&got),
        "{got} of 400 arrived at 50% loss"
    );
    lab.stop_fault(FaultKind::Loss).await.unwrap();
    assert_eq!(udp_client_to_node(&lab, "n1", 7302, 50), 50);
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
    start_sinks(&lab, &["n1"], 7106);
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
    assert_eq!(
        install(&lab, fault).await,
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
    let action = start(&lab, fault).await;
    if netem {
        assert_eq!(
            description(&action),
            "delay packets to and from n1 by 50 ms ± 5 ms (tc netem)"
        );
        lab.stop_fault(FaultKind::Delay).await.unwrap();
    } else {
        assert_skipped_because(&action, &["netem"]);
        assert!(lab.supports(FaultKind::Delay).await.is_err());
    }
    lab.teardown().await.unwrap();
}

#[tokio::test]
async fn loopback_lab_kills_and_restarts_but_refuses_network_faults() {
    let dir = tempfile::tempdir().unwrap();
    let lab = loopback_lab(2, dir.path()).await;
    lab.start_node("n1", echo_server(&lab, "n1", 7107, false))
        .await
        .unwrap();
    let ip = lab.node_ip("n1");
    let answers = || ask(ip, 7107, "hi", Duration::from_millis(300)).as_deref() == Some("hi");
    assert!(eventually(answers), "started node answers");
    let partition = start(&lab, Fault::Partition(PartitionKind::Halves)).await;
    assert_skipped_because(&partition, &["namespace"]);
    assert_eq!(
        install(&lab, Fault::Kill(NodeSelection::One)).await,
        "kill n1 (SIGKILL)",
        "only n1 runs"
    );
    assert!(!answers());
    lab.heal().await.unwrap();
    assert!(eventually(answers), "restarted node answers again");
    lab.teardown().await.unwrap();
}
