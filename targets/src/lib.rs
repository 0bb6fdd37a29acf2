//! The systems Faultline tests. Today: the bundled Raft store.
//!
//! For each target this crate owns the install check (finding the binary), the cluster
//! lifecycle (configuration, start in the lab, wipe, leader discovery) and the async client the
//! workloads drive. Every client turns what happened on the wire into an [`Outcome`] at one
//! place per target.
//!
//! # Layout
//! - [`outcome`]: [`Request`] and [`Outcome`], the contract with the workers.
//! - [`raft`]: the bundled `faultline-raft` cluster and its client.
//! - [`error`]: lifecycle errors.
//!
//! # Never
//! A target never decides correctness (that is the checker's job) and never connects to a lab
//! address from the root network namespace: its network calls run on the lab's client runtime.

pub mod error;
pub mod outcome;
pub mod raft;

pub use error::Error;
pub use outcome::{Outcome, Request};
