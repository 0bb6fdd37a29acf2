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
//! - [`jsonl`]: our history format → [`history::Event`]s, with line-numbered errors.
//! - [`edn`]: Jepsen / Knossos `history.edn` (op maps, independent keys, comments).
//! - [`jepsen_log`]: Jepsen text logs of one register (Porcupine's etcd data set).
//! - [`history`]: pairing invokes with completions, per-key operations, semantics options.
//! - [`model`]: the register, cas-register, kv, mutex and multi-register sequential
//!   specifications.
//! - [`search`]: just-in-time linearization for one key, within a time and memory budget.
//! - [`multi_register`]: the search for transactions over several registers, which share one
//!   state and so cannot be checked per key.
//! - [`zones`]: the O(n log n) check for read/write histories with unique values.
//! - [`orders`]: the two writer orders of a key's last search, raced or in turns.
//! - [`counterexample`]: the failing op, prefix, window and a plain sentence.
//! - `core`: the few reads that refute an op together, for sentences no single op explains,
//!   or the values a read refuted by the writes alone could have returned; for a lock, the
//!   operation that truly cannot be placed and the few that refute it.
//! - [`check`]: a whole history, keys in parallel, `results.json`.
//! - [`synth`]: seeded synthetic histories for benchmarks and tests.
//! - [`report`]: `report.html` and the latency / throughput plots (PNG and SVG).
//! - [`error`]: what can be wrong with an input.
//! - `fast_hash`: a cheap hasher for the integer keys the checker hashes millions of times.
//!
//! # Never
//! The checker depends on no other crate of Faultline and on no async runtime; it never blocks
//! on the network and never panics on bad input: malformed histories are errors with a line
//! number.

pub mod check;
mod core;
pub mod counterexample;
pub mod edn;
pub mod error;
mod fast_hash;
pub mod history;
pub mod jepsen_log;
pub mod jsonl;
pub mod model;
pub mod multi_register;
pub mod orders;
pub mod record;
pub mod report;
pub mod search;
pub mod synth;
pub mod verdict;
pub mod zones;

pub use check::{
    CheckOptions, CheckReport, Format, LoadedHistory, check_path, load_history, load_history_as,
};
pub use error::Error;
pub use model::Model;
pub use verdict::Verdict;
