//! The systems Faultline tests: the bundled Raft store, etcd and Consul.
//!
//! For each target this crate owns the install check (finding the binary), the cluster
//! lifecycle (configuration, start in the lab or on remote hosts, stop, wipe, leader
//! discovery) and the async client the workloads drive. Every client turns what happened on
//! the wire into an [`Outcome`] at one place per target.
//!
//! # Layout
//! - [`outcome`]: [`Request`] and [`Outcome`], the contract with the workers.
//! - [`cluster`]: [`TargetSpec`], [`Cluster`] and [`Client`], one interface over every target.
//! - [`raft`]: the bundled `faultline-raft` cluster and its client.
//! - [`etcd`]: etcd 3.4 over its v3 JSON gateway (linearizable or serializable reads).
//! - [`attached`]: a running cluster reached through `--endpoints` (clients only).
//! - [`hosts`]: the same clusters on remote hosts over SSH: start, stop, wipe, fetch logs.
//! - [`consul`]: Consul 1.8 over its KV API (consistent, default or stale reads).
//! - [`error`]: lifecycle errors.
//!
//! # Never
//! A target never decides correctness (that is the checker's job) and never connects to a lab
//! address from the root network namespace: its network calls run on the lab's client runtime.

pub mod attached;
pub mod cluster;
pub mod consul;
mod discover;
pub mod error;
pub mod etcd;
pub mod hosts;
mod http;
mod nodes;
pub mod outcome;
pub mod raft;

pub use cluster::{Client, Cluster, TargetSpec};
pub use error::Error;
pub use outcome::{Outcome, Request};
