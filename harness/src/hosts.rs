//! Remote hosts in the test spec: `--hosts` or `hosts` in `--config` (a list like the flag, or
//! `[[hosts]]` tables), with the SSH options, the working directory and the server binary on
//! the hosts, resolved into [`RemoteHosts`] before any work starts.
//!
//! ```toml
//! target = "etcd"
//! ssh-key = "/root/.ssh/faultline"
//! remote-dir = "/var/tmp/faultline"
//!
//! [[hosts]]
//! ssh = "root@10.0.0.1"        # the SSH destination; the node listens on its address
//! [[hosts]]
//! ssh = "admin@db2"            # not an IPv4 address: say which address the node uses
//! address = "10.0.0.2"
//! port = 2222
//! name = "db2"
//! ```

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use faultline_nemesis::{FaultKind, ProcessMatch, RemoteNode, RemoteOptions};
use faultline_targets::hosts::{Host, HostsSpec};
use serde::{Deserialize, Serialize};

/// Where the hosts keep this run's files when `--remote-dir` is not given: not `/tmp`, which
/// is often a small tmpfs (etcd preallocates ~120 MB per node).
pub const DEFAULT_REMOTE_DIR: &str = "/var/tmp/faultline";

/// One `[[hosts]]` table of `--config`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct HostTable {
    /// SSH destination: `root@10.0.0.1`, `10.0.0.1`, a `~/.ssh/config` alias; `:PORT` optional.
    pub ssh: String,
    pub port: Option<u16>,
    /// The IPv4 address the node listens on (default: the destination's host part).
    pub address: Option<String>,
    /// The node's name [default: n1, n2, … in order].
    pub name: Option<String>,
    /// `--endpoints` only: the server's PID file on the host (kill, pause signal its PID).
    pub pid_file: Option<String>,
    /// `--endpoints` only: text the server's command line contains, checked before a signal.
    pub cmdline: Option<String>,
    /// `--endpoints` only, the fallback without a PID file: a `pgrep -f` pattern.
    pub process: Option<String>,
    /// `--endpoints` only: the shell command that starts the server again after a kill.
    pub start: Option<String>,
    /// `--endpoints` only: the libfaketime file the server reads (clock faults write it).
    pub faketime_file: Option<String>,
}

/// The SSH and host settings of `--config`, beside `hosts`.
#[derive(Debug, Default, Clone)]
pub struct HostOptions {
    pub ssh_key: Option<PathBuf>,
    pub ssh_known_hosts: Option<PathBuf>,
    pub ssh_accept_new_hosts: bool,
    pub ssh_config: Option<PathBuf>,
    pub remote_dir: Option<String>,
    pub remote_bin: Option<String>,
}

/// One resolved host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEntry {
    pub name: String,
    pub destination: String,
    pub port: Option<u16>,
    pub address: Ipv4Addr,
    pub pid_file: Option<String>,
    pub cmdline: Option<String>,
    pub process: Option<String>,
    pub start: Option<String>,
    pub faketime_file: Option<String>,
}

/// The hosts a run uses, and how to reach them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RemoteHosts {
    pub hosts: Vec<HostEntry>,
    pub ssh_key: Option<PathBuf>,
    pub ssh_known_hosts: Option<PathBuf>,
    pub ssh_accept_new_hosts: bool,
    pub ssh_config: Option<PathBuf>,
    pub remote_dir: String,
    pub remote_bin: Option<String>,
}

/// What resolving the hosts needs to know about the rest of the spec.
pub struct HostsContext<'a> {
    pub endpoints: Option<&'a [String]>,
    pub fault_kinds: &'a [FaultKind],
}

/// `user@host:port` → (`user@host`, port). Only an all-digit tail after a colon is a port, and
/// only when the host part has no other colon.
fn split_port(text: &str) -> anyhow::Result<(String, Option<u16>)> {
    if let Some((host, port)) = text.rsplit_once(':')
        && !host.contains(':')
        && !port.is_empty()
        && port.chars().all(|c| c.is_ascii_digit())
    {
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .with_context(|| format!("host {text}: {port} is not a port (1-65535)"))?;
        return Ok((host.to_string(), Some(port)));
    }
    Ok((text.to_string(), None))
}

/// The IPv4 address in an SSH destination's host part, if it is one.
fn address_in(destination: &str) -> Option<Ipv4Addr> {
    let host = destination.rsplit('@').next().unwrap_or(destination);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The hosts of `--hosts` (which wins) or `hosts` in the config, checked against the mode:
/// Faultline starts the nodes (no endpoints), or attaches to nodes the user runs.
pub fn resolve(
    flag: Option<&str>,
    config: Option<&toml::Value>,
    options: HostOptions,
    context: &HostsContext<'_>,
) -> anyhow::Result<Option<RemoteHosts>> {
    let tables: Vec<HostTable> = match (flag, config) {
        (Some(list), _) => tables_of_list(list),
        (None, Some(toml::Value::String(list))) => tables_of_list(list),
        (None, Some(toml::Value::Array(items))) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                HostTable::deserialize(item.clone()).with_context(|| {
                    format!(
                        "--config: [[hosts]] table {}: give `ssh = \"root@10.0.0.1\"` and optionally port, address, name (and for --endpoints: pid-file, cmdline, process, start, faketime-file)",
                        i + 1
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?,
        (None, Some(_)) => bail!(
            "--config: `hosts` is a list like --hosts (\"root@10.0.0.1,root@10.0.0.2\") or [[hosts]] tables"
        ),
        (None, None) => {
            let stray = [
                (options.ssh_key.is_some(), "--ssh-key"),
                (options.ssh_known_hosts.is_some(), "--ssh-known-hosts"),
                (options.ssh_accept_new_hosts, "--ssh-accept-new-hosts"),
                (options.ssh_config.is_some(), "--ssh-config"),
                (options.remote_dir.is_some(), "--remote-dir"),
                (options.remote_bin.is_some(), "--remote-bin"),
            ];
            if let Some((_, flag)) = stray.iter().find(|(given, _)| *given) {
                bail!(
                    "{flag} is for remote hosts: give them with --hosts or [[hosts]] in --config"
                );
            }
            return Ok(None);
        }
    };
    if tables.is_empty() {
        bail!("--hosts needs at least one SSH destination, e.g. root@10.0.0.1,root@10.0.0.2");
    }
    let mut hosts = Vec::new();
    for (i, table) in tables.into_iter().enumerate() {
        hosts.push(resolve_one(i, table)?);
    }
    for (i, host) in hosts.iter().enumerate() {
        if hosts[..i].iter().any(|h| h.name == host.name) {
            bail!(
                "two hosts are named {}: give each [[hosts]] table its own name",
                host.name
            );
        }
        if hosts[..i].iter().any(|h| h.address == host.address) {
            bail!(
                "two hosts have the address {}: one node runs per host, and each node needs its own address",
                host.address
            );
        }
    }
    let remote_dir = options
        .remote_dir
        .unwrap_or_else(|| DEFAULT_REMOTE_DIR.to_string());
    if !remote_dir.starts_with('/') || remote_dir.trim_end_matches('/').is_empty() {
        bail!(
            "--remote-dir {remote_dir}: give an absolute directory on the hosts other than /, e.g. {DEFAULT_REMOTE_DIR}"
        );
    }
    check_mode(&hosts, context)?;
    if context.endpoints.is_some() && options.remote_bin.is_some() {
        bail!(
            "--remote-bin names the server Faultline starts on the hosts; with --endpoints the cluster is yours (give `start` per host to restart it after a kill)"
        );
    }
    Ok(Some(RemoteHosts {
        hosts,
        ssh_key: options.ssh_key,
        ssh_known_hosts: options.ssh_known_hosts,
        ssh_accept_new_hosts: options.ssh_accept_new_hosts,
        ssh_config: options.ssh_config,
        remote_dir,
        remote_bin: options.remote_bin,
    }))
}

fn tables_of_list(list: &str) -> Vec<HostTable> {
    list.split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| HostTable {
            ssh: d.to_string(),
            ..Default::default()
        })
        .collect()
}

fn resolve_one(i: usize, table: HostTable) -> anyhow::Result<HostEntry> {
    let (destination, port_in_destination) = split_port(table.ssh.trim())?;
    if destination.is_empty() || destination.contains(char::is_whitespace) {
        bail!(
            "host {}: `{}` is not an SSH destination (user@host or host)",
            i + 1,
            table.ssh
        );
    }
    let port = match (table.port, port_in_destination) {
        (Some(a), Some(b)) if a != b => {
            bail!("host {destination}: port {a} and :{b} in the destination disagree; give one")
        }
        (a, b) => a.or(b),
    };
    let address = match &table.address {
        Some(text) => text.trim().parse::<Ipv4Addr>().with_context(|| {
            format!("host {destination}: address `{text}` is not an IPv4 address")
        })?,
        None => address_in(&destination).with_context(|| {
            format!(
                "host {destination}: give the IPv4 address its node listens on (`address = \"10.0.0.1\"` in its [[hosts]] table): peers and clients need one, and `{destination}` does not name one"
            )
        })?,
    };
    let name = table.name.unwrap_or_else(|| format!("n{}", i + 1));
    if !valid_name(&name) {
        bail!(
            "host {destination}: name `{name}` must be 1-32 letters, digits, - or _ (it names files and the node in the history)"
        );
    }
    Ok(HostEntry {
        name,
        destination,
        port,
        address,
        pid_file: table.pid_file,
        cmdline: table.cmdline,
        process: table.process,
        start: table.start,
        faketime_file: table.faketime_file,
    })
}

/// Faultline starts the nodes itself (and writes their PID files), or, with `--endpoints`, the
/// user says how to find and restart theirs for the faults asked for.
fn check_mode(hosts: &[HostEntry], context: &HostsContext<'_>) -> anyhow::Result<()> {
    let Some(endpoints) = context.endpoints else {
        if let Some(host) = hosts.iter().find(|h| {
            h.pid_file.is_some()
                || h.cmdline.is_some()
                || h.process.is_some()
                || h.start.is_some()
                || h.faketime_file.is_some()
        }) {
            bail!(
                "host {}: pid-file, cmdline, process, start and faketime-file describe a cluster you run (with --endpoints); without --endpoints Faultline starts the nodes and writes their PID files itself",
                host.destination
            );
        }
        return Ok(());
    };
    if endpoints.len() != hosts.len() {
        bail!(
            "--endpoints lists {} URLs but {} hosts are given: give one host per endpoint, in the same order",
            endpoints.len(),
            hosts.len()
        );
    }
    let kinds = context.fault_kinds;
    for host in hosts {
        let signalled = kinds.contains(&FaultKind::Kill) || kinds.contains(&FaultKind::Pause);
        if signalled && host.pid_file.is_none() && host.process.is_none() {
            bail!(
                "host {}: kill and pause faults need the server's PID file (`pid-file = \"/run/etcd.pid\"` in its [[hosts]] table; `process`, a pgrep -f pattern, is the fallback)",
                host.destination
            );
        }
        if host.pid_file.is_some() && host.process.is_some() {
            bail!(
                "host {}: give pid-file or process, not both",
                host.destination
            );
        }
        if kinds.contains(&FaultKind::Kill) && host.start.as_deref().is_none_or(str::is_empty) {
            bail!(
                "host {}: kill faults need the command that starts the server again (`start = \"systemctl start etcd\"` in its [[hosts]] table)",
                host.destination
            );
        }
    }
    if kinds.contains(&FaultKind::Clock) && hosts.iter().all(|h| h.faketime_file.is_none()) {
        bail!(
            "--nemesis clock on a running cluster: give `faketime-file` for the hosts whose server runs under libfaketime (FAKETIME_TIMESTAMP_FILE), or leave clock out"
        );
    }
    Ok(())
}

impl RemoteHosts {
    /// How `ssh` reaches the hosts.
    pub fn options(&self) -> RemoteOptions {
        RemoteOptions {
            keyfile: self.ssh_key.clone(),
            known_hosts: self.ssh_known_hosts.clone(),
            accept_new_hosts: self.ssh_accept_new_hosts,
            ssh_config: self.ssh_config.clone(),
            control_dir: None,
            connect_timeout: None,
        }
    }

    /// The node names, in order.
    pub fn names(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.name.clone()).collect()
    }

    /// Where a cluster Faultline starts runs: this run's directory on the hosts is
    /// `<remote dir>/<run_id>`; logs and PIDs come back into `run_dir`'s `nodes/` and `pids/`.
    pub fn hosts_spec(&self, run_dir: &Path, run_id: String) -> HostsSpec {
        HostsSpec {
            hosts: self
                .hosts
                .iter()
                .map(|h| Host {
                    name: h.name.clone(),
                    destination: h.destination.clone(),
                    port: h.port,
                    address: h.address,
                })
                .collect(),
            ssh: self.options(),
            remote_dir: self.remote_dir.clone(),
            run_id,
            binary: self.remote_bin.clone(),
            log_dir: run_dir.join("nodes"),
            pid_dir: run_dir.join("pids"),
        }
    }

    /// The user's nodes (`--endpoints`), as the faults find and restart them.
    pub fn remote_nodes(&self) -> Vec<RemoteNode> {
        self.hosts
            .iter()
            .map(|h| RemoteNode {
                name: h.name.clone(),
                destination: h.destination.clone(),
                port: h.port,
                ip: h.address,
                process: match (&h.pid_file, &h.process) {
                    (Some(path), _) => ProcessMatch::PidFile {
                        path: path.clone(),
                        cmdline: h.cmdline.clone(),
                    },
                    (None, Some(pattern)) => ProcessMatch::Pattern(pattern.clone()),
                    // Checked while resolving: without kill or pause faults nothing signals
                    // it, and a PID file that does not exist matches nothing.
                    (None, None) => ProcessMatch::PidFile {
                        path: format!("/nonexistent/faultline-no-pid-file-for-{}", h.name),
                        cmdline: None,
                    },
                },
                start: h.start.clone().unwrap_or_default(),
                faketime_file: h.faketime_file.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context<'a>(endpoints: Option<&'a [String]>, kinds: &'a [FaultKind]) -> HostsContext<'a> {
        HostsContext {
            endpoints,
            fault_kinds: kinds,
        }
    }

    fn from_flag(list: &str) -> anyhow::Result<Option<RemoteHosts>> {
        resolve(
            Some(list),
            None,
            HostOptions::default(),
            &context(None, &[]),
        )
    }

    #[test]
    fn the_flag_names_hosts_n1_to_nn_at_their_destinations_addresses() {
        let hosts = from_flag("root@10.0.0.1, 10.0.0.2:2222,admin@10.0.0.3")
            .expect("resolves")
            .expect("hosts");
        let view: Vec<(String, String, Option<u16>, String)> = hosts
            .hosts
            .iter()
            .map(|h| {
                (
                    h.name.clone(),
                    h.destination.clone(),
                    h.port,
                    h.address.to_string(),
                )
            })
            .collect();
        assert_eq!(
            view,
            [
                ("n1".into(), "root@10.0.0.1".into(), None, "10.0.0.1".into()),
                (
                    "n2".into(),
                    "10.0.0.2".into(),
                    Some(2222),
                    "10.0.0.2".into()
                ),
                (
                    "n3".into(),
                    "admin@10.0.0.3".into(),
                    None,
                    "10.0.0.3".into()
                ),
            ]
        );
        assert_eq!(hosts.remote_dir, DEFAULT_REMOTE_DIR);
    }

    #[test]
    fn user_errors_say_what_to_do() {
        for (list, says) in [
            ("root@db1", "address = "),
            ("root@10.0.0.1,root@10.0.0.1", "its own address"),
            ("root@10.0.0.1:99999", "not a port"),
            (",", "at least one"),
        ] {
            let error = format!("{:#}", from_flag(list).unwrap_err());
            assert!(error.contains(says), "{list}: {error}");
        }
        let error = resolve(
            None,
            None,
            HostOptions {
                remote_dir: Some("/x".into()),
                ..Default::default()
            },
            &context(None, &[]),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("--hosts"), "{error}");
        let error = resolve(
            Some("10.0.0.1"),
            None,
            HostOptions {
                remote_dir: Some("relative".into()),
                ..Default::default()
            },
            &context(None, &[]),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("absolute"), "{error}");
    }

    fn tables(text: &str) -> toml::Value {
        let doc: toml::Table = toml::from_str(text).expect("toml");
        doc["hosts"].clone()
    }

    #[test]
    fn tables_give_names_ports_and_addresses_and_check_the_mode() {
        let config = tables(
            "[[hosts]]\nssh = \"admin@db1\"\naddress = \"10.1.0.1\"\nport = 2200\nname = \"db1\"\n\
             [[hosts]]\nssh = \"root@10.1.0.2\"\n",
        );
        let hosts = resolve(
            None,
            Some(&config),
            HostOptions::default(),
            &context(None, &[]),
        )
        .expect("resolves")
        .expect("hosts");
        assert_eq!(hosts.names(), ["db1", "n2"]);
        assert_eq!(hosts.hosts[0].port, Some(2200));
        assert_eq!(hosts.hosts[0].address.to_string(), "10.1.0.1");

        // Faultline's own nodes need no PID files from the user.
        let config = tables("[[hosts]]\nssh = \"root@10.1.0.1\"\npid-file = \"/run/x.pid\"\n");
        let error = resolve(
            None,
            Some(&config),
            HostOptions::default(),
            &context(None, &[]),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("--endpoints"), "{error}");

        // A running cluster: one host per endpoint, a PID file and a start command for kills.
        let endpoints = vec!["http://10.1.0.1:7000".to_string()];
        let kill = [FaultKind::Kill];
        let config = tables("[[hosts]]\nssh = \"root@10.1.0.1\"\npid-file = \"/run/x.pid\"\n");
        let error = resolve(
            None,
            Some(&config),
            HostOptions::default(),
            &context(Some(&endpoints), &kill),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("start ="), "{error}");
        let config = tables(
            "[[hosts]]\nssh = \"root@10.1.0.1\"\npid-file = \"/run/x.pid\"\nstart = \"x\"\n",
        );
        let hosts = resolve(
            None,
            Some(&config),
            HostOptions::default(),
            &context(Some(&endpoints), &kill),
        )
        .expect("resolves")
        .expect("hosts");
        assert_eq!(
            hosts.remote_nodes()[0].process,
            ProcessMatch::PidFile {
                path: "/run/x.pid".into(),
                cmdline: None
            }
        );
        let two = vec![endpoints[0].clone(), "http://10.1.0.2:7000".to_string()];
        let error = resolve(
            None,
            Some(&config),
            HostOptions::default(),
            &context(Some(&two), &kill),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("one host per endpoint"), "{error}");

        let config = tables("[[hosts]]\nssh = \"root@10.1.0.1\"\npidfile = \"/run/x.pid\"\n");
        let error = format!(
            "{:#}",
            resolve(
                None,
                Some(&config),
                HostOptions::default(),
                &context(None, &[])
            )
            .unwrap_err()
        );
        assert!(error.contains("pidfile"), "{error}");
    }
}
