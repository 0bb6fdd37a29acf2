//! `faultline-raft`: the bundled Raft key-value server.
fn main() {}
