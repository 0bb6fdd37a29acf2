//! The systems Faultline tests: the bundled Raft store, etcd and Consul.
//!
//! For each target this crate owns the install check, the cluster lifecycle (configuration,
//! start in the lab, wipe, leader discovery) and the async client the workloads drive. Every
//! client turns what happened on the wire into an [`Outcome`] at one place per target.
//!
//! # Never
//! A target never decides correctness (that is the checker's job) and never connects to a lab
//! address from the root network namespace: clients are built on the lab's client runtime.

pub mod outcome;

pub use outcome::{Outcome, Request};
