//! `sshd` as the nodes of a lab: each node namespace plays a remote host that answers SSH on
//! its lab address, with one client key and one host key for all. Shared by the nemesis's
//! remote tests and the harness's remote-host tests (which include this file by path), so both
//! set hosts up the same way.

// Each including test crate uses its own part (the nemesis tests connect with `options`, the
// harness tests write the same settings into a config file).
#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use faultline_nemesis::{Lab, NodeCommand, RemoteOptions};

/// The keys and files an SSH client needs to log in to the lab's hosts as root.
pub struct SshHosts {
    /// The client's private key (`ssh -i`).
    pub key: PathBuf,
    /// Starts empty; filled as the client accepts the host key on first contact.
    pub known_hosts: PathBuf,
    /// Where the ControlMaster sockets may live.
    pub control_dir: PathBuf,
}

impl SshHosts {
    /// Options for `Remote::connect`: this key, accept-new host keys, no user ssh config.
    pub fn options(&self) -> RemoteOptions {
        RemoteOptions {
            keyfile: Some(self.key.clone()),
            known_hosts: Some(self.known_hosts.clone()),
            accept_new_hosts: true,
            ssh_config: Some("/dev/null".into()),
            control_dir: Some(self.control_dir.clone()),
            connect_timeout: Some(Duration::from_secs(5)),
        }
    }
}

fn run(program: &str, args: &[&str]) {
    let status = std::process::Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(status.success(), "{program} {args:?}");
}

fn keygen(path: &Path) {
    let path = path.to_str().expect("utf-8 path");
    run("ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-f", path]);
}

/// Can a TCP connection be made from namespace `ns` to `ip:port` within `timeout`?
fn connects_from(ns: &str, ip: std::net::Ipv4Addr, port: u16, timeout: Duration) -> bool {
    let file = std::fs::File::open(Path::new("/run/netns").join(ns)).expect("netns exists");
    std::thread::spawn(move || {
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        TcpStream::connect_timeout(&SocketAddr::from((ip, port)), timeout).is_ok()
    })
    .join()
    .expect("probe thread")
}

/// Keys and an sshd config per node in `dir`; one sshd per node, started by the lab
/// supervisor inside the node's namespace (so the lab's teardown ends it), listening on the
/// node's address, port 22. Returns once every sshd accepts connections from the client
/// namespace.
pub async fn start_sshd(lab: &Lab, dir: &Path) -> SshHosts {
    // sshd insists on its privilege separation directory.
    std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
    keygen(&dir.join("client"));
    keygen(&dir.join("host"));
    std::fs::copy(dir.join("client.pub"), dir.join("authorized_keys")).expect("authorized_keys");
    // `SetEnv SHLVL=1`: bash sources ~/.bashrc for every command sshd runs (Debian builds it
    // so) unless it is a nested shell, and this machine's root ~/.bashrc runs `pyenv init`,
    // 0.3-0.9 s per command; with SHLVL set the command's shell counts as nested and skips
    // it (~30 ms a command), as on a host whose shell starts quickly.
    for node in lab.nodes() {
        let config = dir.join(format!("sshd-{node}.conf"));
        std::fs::write(
            &config,
            format!(
                "ListenAddress {}\nPort 22\nHostKey {}\nAuthorizedKeysFile {}\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                 PidFile none\nLogLevel ERROR\nPrintMotd no\nMaxSessions 100\nMaxStartups 100\nSetEnv SHLVL=1\n",
                lab.node_ip(&node),
                dir.join("host").display(),
                dir.join("authorized_keys").display()
            ),
        )
        .expect("sshd config");
        let command = NodeCommand {
            program: "/usr/sbin/sshd".into(),
            args: vec![
                "-D".into(),
                "-e".into(),
                "-f".into(),
                config.display().to_string(),
            ],
            env: vec![],
            log_path: dir.join(format!("sshd-{node}.log")),
            faketime: false,
        };
        lab.start_node(&node, command).await.expect("sshd starts");
    }
    for node in lab.nodes() {
        let listening = (0..200).any(|_| {
            connects_from(
                &lab.client_netns(),
                lab.node_ip(&node),
                22,
                Duration::from_millis(200),
            ) || {
                std::thread::sleep(Duration::from_millis(20));
                false
            }
        });
        assert!(listening, "sshd on {node} listens");
    }
    SshHosts {
        key: dir.join("client"),
        known_hosts: dir.join("known_hosts"),
        control_dir: dir.to_path_buf(),
    }
}
