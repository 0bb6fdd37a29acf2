//! The same faults over SSH, against sshd instances running as nodes inside a lab: each lab
//! namespace plays a remote host, and the SSH client runs in `ctl` (on the client runtime).

use std::path::Path;
use std::time::Duration;

use faultline_nemesis::{
    Action, ClockFault, Fault, FaultKind, Lab, NodeSelection, PartitionKind, ProcessMatch, Remote,
    RemoteNode,
};

use crate::common::*;
use crate::sshd::{SshHosts, start_sshd};

const PORT: u16 = 7700;

/// The echo server as a "remote" daemon: started over SSH, writing its PID file first, marked
/// by `echo-<node>` on its command line (what the PID check looks for), under libfaketime with
/// a per-node timestamp file.
fn remote_node(lab: &Lab, dir: &Path, node: &str) -> RemoteNode {
    let script = "import socket,sys,time\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind((sys.argv[1],int(sys.argv[2])));s.listen(64)\nwhile True:\n    c,_=s.accept();c.settimeout(5)\n    try:\n        d=c.recv(100)\n        if d.strip()==b'time': d=repr(time.time()).encode()+b'\\n'\n        c.sendall(d)\n    except Exception: pass\n    c.close()\n";
    let script_path = dir.join("echo.py");
    std::fs::write(&script_path, script).unwrap();
    let clock = dir.join(format!("remote-{node}.faketime"));
    std::fs::write(&clock, "+0\n").unwrap();
    let library = faultline_nemesis::find_libfaketime().unwrap();
    RemoteNode {
        name: node.to_string(),
        destination: format!("root@{}", lab.node_ip(node)),
        port: None,
        ip: lab.node_ip(node),
        process: ProcessMatch::PidFile {
            path: dir.join(format!("echo-{node}.pid")).display().to_string(),
            cmdline: Some(format!("{PORT} echo-{node}")),
        },
        start: format!(
            "echo $$ > {} && LD_PRELOAD={} FAKETIME_TIMESTAMP_FILE={} FAKETIME_NO_CACHE=1 exec {} {} {} {PORT} echo-{node} >>{} 2>&1",
            dir.join(format!("echo-{node}.pid")).display(),
            library.display(),
            clock.display(),
            python(),
            script_path.display(),
            lab.node_ip(node),
            dir.join(format!("echo-{node}.log")).display()
        ),
        faketime_file: Some(clock.display().to_string()),
    }
}

/// A 3-node lab whose nodes run `sshd` (the hosts), the echo daemon described on each, and
/// the runtime that built them (for the teardown).
fn sshd_hosts(dir: &Path) -> (tokio::runtime::Runtime, Lab, SshHosts, Vec<RemoteNode>) {
    let setup = tokio::runtime::Runtime::new().unwrap();
    let lab = setup.block_on(lab(3, dir));
    let hosts = setup.block_on(start_sshd(&lab, dir));
    let nodes = lab
        .nodes()
        .iter()
        .map(|n| remote_node(&lab, dir, n))
        .collect();
    (setup, lab, hosts, nodes)
}

fn installed(action: &Action) -> String {
    match action {
        Action::Installed(applied) => applied.description.clone(),
        other => panic!("expected Installed, got {other:?}"),
    }
}

#[test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
fn remote_faults_over_ssh_take_effect_and_heal() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().to_path_buf();
    let (setup, lab, hosts, nodes) = sshd_hosts(&dir);
    let options = hosts.options();
    // The ssh client (and its ControlMaster) must start inside ctl: on the client runtime.
    let clients = lab.client_runtime(2).unwrap();
    let on_clients = |f: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>| {
        clients.block_on(clients.spawn(f)).unwrap()
    };
    let remote = std::sync::Arc::new(
        clients
            .block_on(clients.spawn(async move { Remote::connect(nodes, &options).await }))
            .unwrap()
            .unwrap(),
    );
    let (ctl, ip) = (lab.client_netns(), |n: &str| lab.node_ip(n));
    // Each "host" answers over SSH from inside its own namespace.
    for node in lab.nodes() {
        let remote = remote.clone();
        let want = lab.node_ip(&node).to_string();
        on_clients(Box::pin(async move {
            let out = remote
                .exec(&node, "ip -4 -o addr show dev eth0", None)
                .await
                .unwrap();
            assert!(out.contains(&want), "{out}");
        }));
    }
    // Start the daemons over SSH, as on real hosts: start_node returns once the PID file
    // names the live process.
    let mut first_pids = Vec::new();
    for node in lab.nodes() {
        let remote = remote.clone();
        let pid = clients
            .block_on(clients.spawn(async move {
                remote.start_node(&node).await.unwrap();
                remote.node_pid(&node).await.unwrap()
            }))
            .unwrap()
            .expect("a live PID");
        first_pids.push(pid);
    }
    for node in lab.nodes() {
        let answered = (0..300).any(|_| {
            ask_from(&ctl, ip(&node), PORT, "ping", Duration::from_millis(200)).as_deref()
                == Some("ping")
                || {
                    std::thread::sleep(Duration::from_millis(20));
                    false
                }
        });
        let log = std::fs::read_to_string(dir.join(format!("echo-{node}.log"))).unwrap_or_default();
        let sshd =
            std::fs::read_to_string(dir.join(format!("sshd-{node}.log"))).unwrap_or_default();
        let ps = std::process::Command::new("pgrep")
            .args(["-af", &format!("echo-{node}")])
            .output()
            .unwrap();
        assert!(
            answered,
            "daemon on {node} never answered\nlog: {log}\nsshd: {sshd}\nps: {}",
            String::from_utf8_lossy(&ps.stdout)
        );
    }
    let n2 = lab.netns("n2").unwrap();

    let call = |fault: Fault, leader: Option<&'static str>| {
        let remote = remote.clone();
        clients
            .block_on(
                clients
                    .spawn(async move { remote.start_fault(&fault, &mut seeded(), leader).await }),
            )
            .unwrap()
            .unwrap()
    };
    let stop = |kind: FaultKind| {
        let remote = remote.clone();
        clients
            .block_on(clients.spawn(async move { remote.stop_fault(kind).await }))
            .unwrap()
            .unwrap()
    };

    // Partition: node-local input drops on the hosts.
    let part = call(
        Fault::Partition(PartitionKind::Components(vec![
            vec!["n1".into()],
            vec!["n2".into(), "n3".into()],
        ])),
        None,
    );
    assert_eq!(installed(&part), "partition n1 | n2,n3");
    assert!(!connects_from(
        &n2,
        ip("n1"),
        PORT,
        Duration::from_millis(250)
    ));
    assert!(connects_from(&n2, ip("n3"), PORT, Duration::from_secs(2)));
    assert!(
        connects_from(&ctl, ip("n1"), PORT, Duration::from_secs(2)),
        "control host not cut"
    );
    assert!(installed(&stop(FaultKind::Partition)).starts_with("heal partition"));
    assert!(connects_from(&n2, ip("n1"), PORT, Duration::from_secs(2)));

    // Kill and restart.
    let kill = call(Fault::Kill(NodeSelection::Nodes(vec!["n2".into()])), None);
    assert_eq!(installed(&kill), "kill n2 (SIGKILL)");
    assert_eq!(
        ask_from(&ctl, ip("n2"), PORT, "x", Duration::from_millis(300)),
        None
    );
    assert_eq!(installed(&stop(FaultKind::Kill)), "restart n2");
    wait_echo(&ctl, ip("n2"), PORT);

    // Pause the leader and resume.
    let pause = call(Fault::Pause(NodeSelection::Leader), Some("n3"));
    assert_eq!(installed(&pause), "pause n3 (SIGSTOP)");
    assert_eq!(
        ask_from(&ctl, ip("n3"), PORT, "x", Duration::from_millis(300)),
        None
    );
    stop(FaultKind::Pause);
    wait_echo(&ctl, ip("n3"), PORT);

    // Loss between n1 and its peers.
    let loss = call(
        Fault::Loss {
            percent: 100,
            nodes: NodeSelection::Nodes(vec!["n1".into()]),
        },
        None,
    );
    assert!(installed(&loss).starts_with("drop 100% of packets between n1"));
    assert!(!connects_from(
        &n2,
        ip("n1"),
        PORT,
        Duration::from_millis(250)
    ));
    stop(FaultKind::Loss);
    assert!(connects_from(&n2, ip("n1"), PORT, Duration::from_secs(2)));

    // Clock through the host's libfaketime file.
    let bump = call(
        Fault::Clock(
            ClockFault::Bump { delta_ms: 5000 },
            NodeSelection::Nodes(vec!["n1".into()]),
        ),
        None,
    );
    assert_eq!(installed(&bump), "bump clock of n1 by +5000 ms");
    let reply = ask_from(&ctl, ip("n1"), PORT, "time", Duration::from_secs(2)).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let offset = reply.parse::<f64>().unwrap() - now;
    assert!((4.5..5.5).contains(&offset), "offset {offset}");
    let node_offset = |node: &str| {
        let reply = ask_from(&ctl, ip(node), PORT, "time", Duration::from_secs(2)).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        reply.parse::<f64>().unwrap() - now
    };
    assert_eq!(installed(&stop(FaultKind::Clock)), "reset clock of n1");
    assert!(node_offset("n1").abs() < 0.5);

    // Strobe and skew run as loops on the host.
    let strobe = call(
        Fault::Clock(
            ClockFault::Strobe {
                delta_ms: 60_000,
                period_ms: 20,
            },
            NodeSelection::Nodes(vec!["n1".into()]),
        ),
        None,
    );
    assert_eq!(
        installed(&strobe),
        "strobe clock of n1 between +0 and +60000 ms every 20 ms"
    );
    let samples: Vec<f64> = (0..30)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(7));
            node_offset("n1")
        })
        .collect();
    assert!(samples.iter().any(|o| *o > 50.0), "{samples:?}");
    assert!(samples.iter().any(|o| o.abs() < 5.0), "{samples:?}");
    stop(FaultKind::Clock);
    let after: Vec<f64> = (0..5).map(|_| node_offset("n1")).collect();
    assert!(
        after.iter().all(|o| o.abs() < 0.5),
        "strobe stopped: {after:?}"
    );
    let skew = call(
        Fault::Clock(
            ClockFault::Skew { rate: 5.0 },
            NodeSelection::Nodes(vec!["n1".into()]),
        ),
        None,
    );
    assert_eq!(installed(&skew), "skew clock of n1 to run at 5x real time");
    std::thread::sleep(Duration::from_millis(1000));
    let offset = node_offset("n1");
    // 1000 ms at 5x is 4 s ahead, minus the loop's start-up and 50 ms ticks and the
    // request's round trip (long on a loaded 2-core machine).
    assert!((1.5..4.5).contains(&offset), "offset {offset}");
    stop(FaultKind::Clock);
    assert!(node_offset("n1").abs() < 0.5);
    let bump = call(
        Fault::Clock(
            ClockFault::Bump { delta_ms: 5000 },
            NodeSelection::Nodes(vec!["n1".into()]),
        ),
        None,
    );
    assert_eq!(
        installed(&bump),
        "bump clock of n1 by +5000 ms",
        "left for close() to reset"
    );

    // Bandwidth: tbf on the host's interface toward its peers slows a 200 kB upload from n1.
    sink_in_netns(&n2, ip("n2"), PORT + 1);
    let n1 = lab.netns("n1").unwrap();
    let upload = || {
        let to = ip("n2");
        in_netns(&n1, move || {
            use std::io::{Read, Write};
            let started = std::time::Instant::now();
            let mut s = std::net::TcpStream::connect((to, PORT + 1)).unwrap();
            s.write_all(&vec![1u8; 200_000]).unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut reply = String::new();
            s.read_to_string(&mut reply).unwrap();
            assert_eq!(reply, "200000");
            started.elapsed()
        })
    };
    let bandwidth = call(
        Fault::Bandwidth {
            kbit: 1000,
            nodes: NodeSelection::Nodes(vec!["n1".into()]),
        },
        None,
    );
    assert_eq!(
        installed(&bandwidth),
        "limit n1 to 1000 kbit/s outgoing toward peers (tc tbf)"
    );
    let slow = upload();
    assert!(slow > Duration::from_secs(1), "{slow:?}");
    assert_eq!(
        installed(&stop(FaultKind::Bandwidth)),
        "remove bandwidth limits from n1"
    );
    let fast = upload();
    assert!(fast < slow / 3, "{fast:?} vs {slow:?}");
    let delay = call(
        Fault::Delay {
            ms: 20,
            jitter_ms: 0,
            nodes: NodeSelection::All,
        },
        None,
    );
    match &delay {
        Action::Skipped(why) => assert!(why.contains("netem"), "{why}"),
        Action::Installed(_) => {
            assert!(installed(&stop(FaultKind::Delay)).starts_with("remove delay"))
        }
        other => panic!("{other:?}"),
    }

    // One schedule drives remote hosts like a lab (FaultTarget), here with its packages
    // overlapping (kill, pause and partition at once over the same SSH connections), and
    // heals at the end.
    let schedule = {
        let remote = remote.clone();
        clients
            .block_on(clients.spawn(async move {
                let nemesis = faultline_nemesis::Nemesis::new(faultline_nemesis::NemesisConfig {
                    kinds: FaultKind::parse_list("partition,kill,pause").unwrap(),
                    interval: Duration::from_millis(100),
                    seed: 3,
                    time_limit: Duration::from_millis(1500),
                    schedule: faultline_nemesis::FaultSchedule::Overlapping,
                });
                let mut events = Vec::new();
                let leader = || async { Some("n1".to_string()) };
                let summary = nemesis
                    .run(
                        &*remote,
                        &leader,
                        |e| events.push(e),
                        std::future::pending(),
                    )
                    .await
                    .unwrap();
                (summary, events)
            }))
            .unwrap()
    };
    assert!(schedule.0.installed >= 1, "{:?}", schedule.0);
    assert!(
        schedule
            .1
            .iter()
            .any(|e| e.f == "stop-partition" || e.f == "stop-kill" || e.f == "stop-pause")
    );
    for node in lab.nodes() {
        wait_echo(&ctl, ip(&node), PORT);
    }
    assert!(connects_from(&n2, ip("n1"), PORT, Duration::from_secs(2)));

    // A PID file naming another program is not signalled: n1's file is pointed at this test
    // process, whose command line lacks n1's marker, so n1 counts as not running and a stop
    // does nothing to either.
    let n1_pid_file = dir.join("echo-n1.pid");
    let echo_n1 = std::fs::read_to_string(&n1_pid_file).unwrap();
    std::fs::write(&n1_pid_file, format!("{}\n", std::process::id())).unwrap();
    {
        let remote = remote.clone();
        let (running, stopped) = clients
            .block_on(clients.spawn(async move {
                (
                    remote.node_running("n1").await.unwrap(),
                    remote
                        .stop_nodes(&["n1".to_string()], Duration::from_secs(1))
                        .await
                        .unwrap(),
                )
            }))
            .unwrap();
        assert!(!running && stopped.is_empty(), "{running} {stopped:?}");
    }
    wait_echo(&ctl, ip("n1"), PORT);
    std::fs::write(&n1_pid_file, echo_n1).unwrap();

    // Stop: SIGTERM by PID; every daemon this test started over SSH is gone afterwards,
    // including the ones restarted after kills (checked by the PIDs their files named).
    let remote_ = remote.clone();
    let (pids, stopped) = clients
        .block_on(clients.spawn(async move {
            let mut pids = Vec::new();
            for node in remote_.nodes() {
                pids.push(remote_.node_pid(&node).await.unwrap().expect("a live PID"));
            }
            let stopped = remote_
                .stop_nodes(&remote_.nodes(), Duration::from_secs(3))
                .await
                .unwrap();
            for node in remote_.nodes() {
                assert!(!remote_.node_running(&node).await.unwrap(), "{node} runs");
            }
            (pids, stopped)
        }))
        .unwrap();
    assert_eq!(stopped, lab.nodes());
    for pid in first_pids.into_iter().chain(pids) {
        assert!(!process_alive(pid), "daemon {pid} still runs");
    }

    // Close heals what is left (the clock) and ends the ControlMasters.
    let remote = std::sync::Arc::try_unwrap(remote).unwrap();
    clients
        .block_on(clients.spawn(async move { remote.close().await }))
        .unwrap()
        .unwrap();
    // The reset reached n1's faketime file.
    let clock = std::fs::read_to_string(dir.join("remote-n1.faketime")).unwrap();
    let offset: f64 = clock.trim().trim_start_matches('+').parse().unwrap();
    assert_eq!(offset, 0.0, "{clock}");
    assert_eq!(setup.block_on(lab.guard_packets()).unwrap(), Some(0));
    drop(clients);
    setup.block_on(lab.teardown()).unwrap();
}

/// A run that dies (here: its `Remote` dropped, never healed) leaves its faults on the hosts;
/// a new connection that never saw them undoes every one with `heal_abandoned`, and a second
/// pass finds nothing left.
#[test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
fn a_dead_runs_faults_are_healed_by_a_connection_that_never_saw_them() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().to_path_buf();
    let (setup, lab, hosts, nodes) = sshd_hosts(&dir);
    let clients = lab.client_runtime(2).unwrap();
    let (ctl, ip) = (lab.client_netns(), |n: &str| lab.node_ip(n));

    let (dead_run, survivor) = (nodes.clone(), nodes);
    let options = hosts.options();
    clients
        .block_on(clients.spawn(async move {
            let remote = Remote::connect(dead_run, &options).await.unwrap();
            for node in remote.nodes() {
                remote.start_node(&node).await.unwrap();
            }
            let mut rng = seeded();
            let faults = [
                Fault::Partition(PartitionKind::Components(vec![
                    vec!["n1".into()],
                    vec!["n2".into(), "n3".into()],
                ])),
                Fault::Loss {
                    percent: 50,
                    nodes: NodeSelection::Nodes(vec!["n2".into()]),
                },
                Fault::Bandwidth {
                    kbit: 1000,
                    nodes: NodeSelection::Nodes(vec!["n1".into()]),
                },
                // A bump under the strobe: both of its phases are off real time, so the
                // reset has something to undo whichever phase the loop ends in.
                Fault::Clock(
                    ClockFault::Bump { delta_ms: 2000 },
                    NodeSelection::Nodes(vec!["n1".into()]),
                ),
                Fault::Clock(
                    ClockFault::Strobe {
                        delta_ms: 60_000,
                        period_ms: 20,
                    },
                    NodeSelection::Nodes(vec!["n1".into()]),
                ),
                Fault::Clock(
                    ClockFault::Bump { delta_ms: 5000 },
                    NodeSelection::Nodes(vec!["n3".into()]),
                ),
                Fault::Pause(NodeSelection::Nodes(vec!["n3".into()])),
                Fault::Kill(NodeSelection::Nodes(vec!["n2".into()])),
            ];
            for fault in &faults {
                let action = remote.start_fault(fault, &mut rng, None).await.unwrap();
                assert!(
                    matches!(action, Action::Installed(_)),
                    "{fault:?}: {action:?}"
                );
            }
            // Dies: no heal, no close.
            drop(remote);
        }))
        .unwrap();
    let n2 = lab.netns("n2").unwrap();
    assert!(
        !connects_from(&n2, ip("n1"), PORT, Duration::from_millis(250)),
        "the partition outlives its run"
    );

    let options = hosts.options();
    let every_kind = FaultKind::HEAL_ORDER;
    let (remote, first, second) = clients
        .block_on(clients.spawn(async move {
            let remote = Remote::connect(survivor, &options).await.unwrap();
            let first = remote.heal_abandoned(&every_kind, true).await.unwrap();
            let second = remote.heal_abandoned(&every_kind, true).await.unwrap();
            (remote, first, second)
        }))
        .unwrap();
    // The paused node runs again, the killed one was restarted, the partition is gone.
    for node in lab.nodes() {
        wait_echo(&ctl, ip(&node), PORT);
    }
    assert!(connects_from(&n2, ip("n1"), PORT, Duration::from_secs(2)));
    // A fetch that fails (clean fetching logs the run already fetched) keeps the copy there.
    let (clock, local) = (dir.join("remote-n2.faketime"), dir.join("fetched"));
    let (fetched, failed) = clients
        .block_on(clients.spawn(async move {
            let clock = clock.display().to_string();
            let fetched = remote.fetch_file("n2", &clock, &local).await;
            let failed = remote
                .fetch_file("n2", "/nonexistent/faultline-fetch", &local)
                .await;
            remote
                .stop_nodes(&remote.nodes(), Duration::from_secs(3))
                .await
                .unwrap();
            remote.close().await.unwrap();
            (fetched, failed)
        }))
        .unwrap();
    fetched.unwrap();
    assert!(failed.is_err());
    assert_eq!(
        std::fs::read_to_string(dir.join("fetched")).unwrap(),
        "+0\n"
    );
    assert!(!dir.join("fetched.part").exists());
    let mut undone = first.undone.clone();
    undone.sort();
    assert_eq!(
        undone,
        [
            "n1: deleted nft table inet faultline",
            "n1: ended 1 clock loop(s)",
            "n1: removed the tbf/netem root qdisc of eth0",
            "n1: reset its clock to real time",
            "n2: deleted nft table inet faultline",
            "n2: deleted nft table inet faultline_loss",
            "n2: restarted its server",
            "n3: deleted nft table inet faultline",
            "n3: reset its clock to real time",
            "n3: resumed its stopped server (SIGCONT)",
        ],
        "{first:?}"
    );
    assert!(first.failed.is_empty(), "{first:?}");
    assert_eq!(
        second,
        faultline_nemesis::HealReport::default(),
        "nothing left"
    );

    for node in lab.nodes() {
        let netns = lab.netns(&node).unwrap();
        let tables = std::process::Command::new("ip")
            .args(["netns", "exec", &netns, "nft", "list", "tables"])
            .output()
            .unwrap();
        let tables = String::from_utf8_lossy(&tables.stdout);
        assert!(!tables.contains("faultline"), "{node}: {tables}");
        let qdisc = std::process::Command::new("ip")
            .args([
                "netns", "exec", &netns, "tc", "qdisc", "show", "dev", "eth0", "root",
            ])
            .output()
            .unwrap();
        let qdisc = String::from_utf8_lossy(&qdisc.stdout);
        assert!(!qdisc.contains("tbf"), "{node}: {qdisc}");
        // The strobe loop is gone: the clock stays at real time.
        for _ in 0..5 {
            let clock =
                std::fs::read_to_string(dir.join(format!("remote-{node}.faketime"))).unwrap();
            let offset: f64 = clock.trim().parse().unwrap();
            assert_eq!(offset, 0.0, "{node}: {clock}");
            std::thread::sleep(Duration::from_millis(30));
        }
    }
    assert_eq!(setup.block_on(lab.guard_packets()).unwrap(), Some(0));
    drop(clients);
    setup.block_on(lab.teardown()).unwrap();
}

/// A server that writes its PID file and exits a moment later (a wrong flag, a missing
/// library) is not started: the start waits until the PID it saw has stayed alive, so one
/// look during the server's short life does not count.
#[test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
fn a_server_that_exits_soon_after_writing_its_pid_file_is_not_started() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().to_path_buf();
    let (setup, lab, hosts, mut nodes) = sshd_hosts(&dir);
    let clients = lab.client_runtime(2).unwrap();
    let mut node = nodes.remove(0);
    node.start = format!(
        "echo $$ > {} && exec {} -c 'import time; time.sleep(0.2)' {PORT} echo-{}",
        dir.join(format!("echo-{}.pid", node.name)).display(),
        python(),
        node.name
    );
    let options = hosts.options();
    let name = node.name.clone();
    let started = clients
        .block_on(clients.spawn(async move {
            let remote = Remote::connect(vec![node], &options).await.unwrap();
            let started = std::time::Instant::now();
            let result = remote.start_node(&name).await;
            (result, started.elapsed())
        }))
        .unwrap();
    match started {
        (Err(e), waited) => {
            let e = e.to_string();
            assert!(e.contains("no live process in its PID file"), "{e}");
            assert!(waited >= Duration::from_secs(10), "{waited:?}");
        }
        (Ok(()), waited) => panic!("started after {waited:?}, but the server had exited"),
    }
    drop(clients);
    setup.block_on(lab.teardown()).unwrap();
}
