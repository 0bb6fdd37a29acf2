//! Shared pieces of the lab tests: small servers started as real node processes, probes
//! that open sockets inside a chosen namespace.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use faultline_nemesis::{Isolation, Lab, LabConfig, NodeCommand};

pub fn python() -> String {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3".to_string()
    } else {
        "python3".to_string()
    }
}

pub async fn lab(nodes: usize, dir: &Path) -> Lab {
    Lab::create(LabConfig {
        nodes,
        isolation: Isolation::Namespaces,
        run_dir: dir.to_path_buf(),
    })
    .await
    .expect("lab builds")
}

/// A lab of `nodes` nodes on distinct `127.X.Y.i` addresses in our own namespace: it needs
/// no root, and refuses network faults.
pub async fn loopback_lab(nodes: usize, dir: &Path) -> Lab {
    Lab::create(LabConfig {
        nodes,
        isolation: Isolation::Loopback,
        run_dir: dir.to_path_buf(),
    })
    .await
    .expect("loopback lab builds")
}

/// A TCP echo server on `ip:port` (one line in, the same line out), as a real node process.
pub fn echo_server(lab: &Lab, node: &str, port: u16, faketime: bool) -> NodeCommand {
    // Raw string: indentation is Python syntax and must survive.
    let script = r#"import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(64)
while True:
    c, _ = s.accept(); c.settimeout(5)
    try:
        d = c.recv(100)
        if d.strip() == b'time': d = repr(time.time()).encode() + b'\n'
        c.sendall(d)
    except Exception: pass
    c.close()
"#;
    NodeCommand {
        program: python().into(),
        args: vec![
            "-c".into(),
            script.into(),
            lab.node_ip(node).to_string(),
            port.to_string(),
        ],
        env: vec![],
        log_path: lab.run_dir().join(format!("{node}.log")),
        faketime,
    }
}

/// Runs `f` on a thread inside network namespace `ns` (the test process stays where it is).
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = std::fs::File::open(Path::new("/run/netns").join(ns)).expect("netns exists");
    std::thread::spawn(move || {
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("probe thread")
}

/// Sends `message` to `ip:port` from inside `ns`; the reply, or None on timeout/refusal.
pub fn ask_from(
    ns: &str,
    ip: Ipv4Addr,
    port: u16,
    message: &str,
    timeout: Duration,
) -> Option<String> {
    let message = message.to_string();
    in_netns(ns, move || ask(ip, port, &message, timeout))
}

/// Same, from the current namespace (loopback labs).
pub fn ask(ip: Ipv4Addr, port: u16, message: &str, timeout: Duration) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect_timeout(&SocketAddr::from((ip, port)), timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.write_all(format!("{message}\n").as_bytes()).ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    Some(reply.trim().to_string())
}

/// Polls `check` until it holds: true as soon as it does, false after 200 tries 20 ms apart
/// (bounded, so a node that never comes up fails its test instead of hanging it).
pub fn eventually(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Polls (bounded) until the echo server on `ip:port` answers from `ns`.
pub fn wait_echo(ns: &str, ip: Ipv4Addr, port: u16) {
    let answers =
        || ask_from(ns, ip, port, "ping", Duration::from_millis(200)).as_deref() == Some("ping");
    if !eventually(answers) {
        panic!("echo server on {ip}:{port} never answered from {ns}");
    }
}

/// Polls (bounded) until `node`'s echo server on `port` answers from the client namespace.
pub fn wait_node_echo(lab: &Lab, node: &str, port: u16) {
    wait_echo(&lab.client_netns(), lab.node_ip(node), port);
}

/// Starts an echo server on `port` as the process of every node of `lab`, without waiting
/// for them to answer (see [`wait_echo_servers`]).
pub async fn start_echo_servers(lab: &Lab, port: u16, faketime: bool) {
    for node in lab.nodes() {
        lab.start_node(&node, echo_server(lab, &node, port, faketime))
            .await
            .unwrap();
    }
}

/// Polls (bounded) until every node's echo server on `port` answers from the client namespace.
pub fn wait_echo_servers(lab: &Lab, port: u16) {
    for node in lab.nodes() {
        wait_node_echo(lab, &node, port);
    }
}

pub fn namespaces_of(lab_name: &str) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(&format!("{lab_name}-")))
                .collect()
        })
        .unwrap_or_default()
}

pub fn nft_tables() -> String {
    let out = std::process::Command::new("nft")
        .args(["list", "tables"])
        .output()
        .expect("nft runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .chars()
                .next();
            state != Some('Z')
        })
        .unwrap_or(false)
}

/// A TCP server on a thread inside `ns` bound to `ip:port`: reads everything, replies with
/// the byte count. Returns once it listens.
pub fn sink_in_netns(ns: &str, ip: Ipv4Addr, port: u16) {
    let file = std::fs::File::open(Path::new("/run/netns").join(ns)).expect("netns exists");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let listener = std::net::TcpListener::bind((ip, port)).expect("bind");
        tx.send(()).expect("send");
        for stream in listener.incoming().take(100) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = Vec::new();
            let _ = stream.read_to_end(&mut buf);
            let _ = stream.write_all(buf.len().to_string().as_bytes());
        }
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("sink listens");
}

/// Sends `count` UDP datagrams from `from_ns` to `ip:port` where a receiver in `to_ns`
/// counts them for `window`; returns how many arrived.
pub fn udp_delivered(
    from_ns: &str,
    to_ns: &str,
    from_ip: Ipv4Addr,
    ip: Ipv4Addr,
    port: u16,
    count: usize,
) -> usize {
    let to = std::fs::File::open(Path::new("/run/netns").join(to_ns)).expect("netns exists");
    let (tx, rx) = std::sync::mpsc::channel();
    let receiver = std::thread::spawn(move || {
        nix::sched::setns(to.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let socket = std::net::UdpSocket::bind((ip, port)).expect("bind udp");
        socket
            .set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        tx.send(()).expect("ready");
        let mut got = 0;
        let mut buf = [0u8; 64];
        while socket.recv(&mut buf).is_ok() {
            got += 1;
        }
        got
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("receiver ready");
    in_netns(from_ns, move || {
        let socket = std::net::UdpSocket::bind((from_ip, 0)).expect("bind sender");
        for i in 0..count {
            let _ = socket.send_to(&i.to_le_bytes(), (ip, port));
            if i % 50 == 49 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    receiver.join().expect("receiver")
}

/// Can a TCP connection be made from `ns` to `ip:port` within `timeout`?
pub fn connects_from(ns: &str, ip: Ipv4Addr, port: u16, timeout: Duration) -> bool {
    in_netns(ns, move || {
        TcpStream::connect_timeout(&SocketAddr::from((ip, port)), timeout).is_ok()
    })
}

pub fn seeded() -> rand::rngs::StdRng {
    use rand::SeedableRng;
    rand::rngs::StdRng::seed_from_u64(7)
}
