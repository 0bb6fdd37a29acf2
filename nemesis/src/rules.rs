//! The rules network faults put in the kernel, as text: nftables scripts for partitions and
//! packet loss, tc qdisc specs for bandwidth and delay. The lab and remote hosts compose
//! them here and differ only in where the text runs: the lab loads its scripts into one
//! `bridge faultline` table in its bridge namespace (`ip netns exec … nft -f -`), a remote
//! host into `inet` tables of its own (`nft -f -` over SSH).

use std::net::Ipv4Addr;

/// The lab's table, loaded once into the bridge namespace. Partitions and loss live in one
/// bridge-family table: pairs in a set allow one-way cuts and atomic changes; drops here
/// look like silent loss, as a real partition does (targets.md). IPv6 is dropped outright
/// because every rule speaks IPv4 only.
pub(crate) const LAB_TABLE: &str = "table bridge faultline {\n  set cut { type ipv4_addr . ipv4_addr; }\n  chain partition {\n    type filter hook forward priority 0; policy accept;\n    ether type ip6 drop\n    ip saddr . ip daddr @cut drop\n  }\n  chain loss {\n    type filter hook forward priority 10; policy accept;\n  }\n}\n";

/// Heals every partition in the lab.
pub(crate) const LAB_HEAL_PARTITION: &str = "flush set bridge faultline cut\n";

/// Ends all packet loss in the lab.
pub(crate) const LAB_STOP_LOSS: &str = "flush chain bridge faultline loss\n";

/// Replaces the lab's partition by one that drops every packet from `src` to `dst` of
/// `cuts`, in one transaction, so no moment has both partitions or neither.
pub(crate) fn lab_partition(cuts: &[(Ipv4Addr, Ipv4Addr)]) -> String {
    let mut script = LAB_HEAL_PARTITION.to_string();
    if !cuts.is_empty() {
        let pairs: Vec<String> = cuts
            .iter()
            .map(|(src, dst)| format!("{src} . {dst}"))
            .collect();
        script.push_str(&format!(
            "add element bridge faultline cut {{ {} }}\n",
            pairs.join(", ")
        ));
    }
    script
}

/// Replaces the lab's loss rules by `verdict` ([`loss_verdict`]) for packets from and to
/// `nodes`.
pub(crate) fn lab_loss(nodes: &[Ipv4Addr], verdict: &str) -> String {
    let set = address_set(nodes);
    // Two rules, but each packet meets one coin flip: the second skips packets the first
    // already judged (source in the set).
    format!(
        "{LAB_STOP_LOSS}\
         add rule bridge faultline loss ip saddr {{ {set} }} {verdict}\n\
         add rule bridge faultline loss ip saddr != {{ {set} }} ip daddr {{ {set} }} {verdict}\n"
    )
}

/// A remote host's partition table (family `inet`). Each kind has a table of its own, so
/// its stop deletes it without touching the other.
pub(crate) const HOST_PARTITION_TABLE: &str = "faultline";

/// A remote host's packet-loss table (family `inet`).
pub(crate) const HOST_LOSS_TABLE: &str = "faultline_loss";

/// Replaces table `inet <table>` on a host by one with `body` (None: no table).
pub(crate) fn host_table(table: &str, body: Option<&str>) -> String {
    // Create-then-delete makes the delete safe when the table is absent; the new table
    // follows in the same transaction, so the change is atomic on the host.
    let mut script = format!("table inet {table} {{}}\ndelete table inet {table}\n");
    if let Some(body) = body {
        script.push_str(&format!("table inet {table} {{\n{body}\n}}\n"));
    }
    script
}

/// The body of [`HOST_PARTITION_TABLE`] on a host that cannot hear `peers` (Jepsen's
/// node-local drop).
pub(crate) fn host_partition(peers: &[Ipv4Addr]) -> String {
    format!(
        "  chain input {{ type filter hook input priority -10; policy accept; ip saddr {{ {} }} drop; }}",
        address_set(peers)
    )
}

/// The body of [`HOST_LOSS_TABLE`]: `verdict` ([`loss_verdict`]) for packets from and to
/// `peers`.
pub(crate) fn host_loss(peers: &[Ipv4Addr], verdict: &str) -> String {
    let peers = address_set(peers);
    format!(
        "  chain input {{ type filter hook input priority -5; policy accept; ip saddr {{ {peers} }} {verdict}; }}\n  chain output {{ type filter hook output priority -5; policy accept; ip daddr {{ {peers} }} {verdict}; }}"
    )
}

/// The nft verdict that drops `percent` % of packets, one coin flip per packet.
pub(crate) fn loss_verdict(percent: u8) -> String {
    // numgen's range is 0..99: "< 100" does not parse, and 100 % means every packet.
    if percent >= 100 {
        "drop".to_string()
    } else {
        format!("numgen random mod 100 < {percent} drop")
    }
}

fn address_set(ips: &[Ipv4Addr]) -> String {
    ips.iter()
        .map(Ipv4Addr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The root qdisc that limits a link to `kbit` kbit/s (token bucket).
pub(crate) fn bandwidth_qdisc(kbit: u32) -> String {
    format!("tbf rate {kbit}kbit burst 16kb latency 100ms")
}

/// The root qdisc that delays every packet by `ms` ± `jitter_ms`.
pub(crate) fn delay_qdisc(ms: u32, jitter_ms: u32) -> String {
    format!("netem delay {ms}ms {jitter_ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    const N1: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
    const N2: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);

    #[test]
    fn lab_scripts_replace_the_whole_partition_or_loss_at_once() {
        assert_eq!(lab_partition(&[]), "flush set bridge faultline cut\n");
        assert_eq!(
            lab_partition(&[(N1, N2), (N2, N1)]),
            "flush set bridge faultline cut\n\
             add element bridge faultline cut { 10.200.0.1 . 10.200.0.2, 10.200.0.2 . 10.200.0.1 }\n"
        );
        assert_eq!(
            lab_loss(&[N1, N2], &loss_verdict(30)),
            "flush chain bridge faultline loss\n\
             add rule bridge faultline loss ip saddr { 10.200.0.1, 10.200.0.2 } numgen random mod 100 < 30 drop\n\
             add rule bridge faultline loss ip saddr != { 10.200.0.1, 10.200.0.2 } ip daddr { 10.200.0.1, 10.200.0.2 } numgen random mod 100 < 30 drop\n"
        );
        assert_eq!(loss_verdict(100), "drop");
        assert_eq!(loss_verdict(255), "drop");
    }

    #[test]
    fn host_tables_are_replaced_in_one_transaction() {
        assert_eq!(
            host_table(HOST_PARTITION_TABLE, None),
            "table inet faultline {}\ndelete table inet faultline\n"
        );
        assert_eq!(
            host_table(HOST_PARTITION_TABLE, Some(&host_partition(&[N2]))),
            "table inet faultline {}\ndelete table inet faultline\ntable inet faultline {\n  \
             chain input { type filter hook input priority -10; policy accept; ip saddr { 10.200.0.2 } drop; }\n}\n"
        );
        assert_eq!(
            host_loss(&[N1, N2], "drop"),
            "  chain input { type filter hook input priority -5; policy accept; ip saddr { 10.200.0.1, 10.200.0.2 } drop; }\n  \
             chain output { type filter hook output priority -5; policy accept; ip daddr { 10.200.0.1, 10.200.0.2 } drop; }"
        );
    }
}
