//! Lab integration tests: real namespaces, nft rules and processes. They need root, nftables,
//! iproute2, python3 and libfaketime, so they are ignored by default and run by
//! scripts/test.sh (`--run-ignored all`). Each builds its own lab (unique names and subnet),
//! so they run in parallel with each other and with other runs.

mod clean;
mod common;
mod faults;
mod issue_4_clean_races_lab_creation;
mod lab;
mod remote;
mod schedule;
mod sshd;
mod teardown;
mod userns;
