//! Faultline's checker: reads histories, decides whether they are linearizable, explains why
//! not, and draws the report.
//!
//! It owns the history model and its readers (our JSONL, Jepsen EDN and text logs, Porcupine
//! logs), the sequential models, the linearizability search with its budgets, the
//! counterexamples, the performance statistics and plots, and the HTML report.
//!
//! # Layout
//! - [`record`]: one line of `history.jsonl`, the contract with the harness.
//! - [`verdict`]: valid / invalid / unknown and their exit codes.
//!
//! # Never
//! The checker depends on no other crate of Faultline and on no async runtime; it never blocks
//! on the network and never panics on bad input: malformed histories are errors with a line
//! number.

pub mod record;
pub mod verdict;

pub use verdict::Verdict;
