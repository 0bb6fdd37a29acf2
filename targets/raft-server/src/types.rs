//! The Raft type configuration and the commands the state machine applies.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

/// A command replicated through the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Set `key` to `value`.
    Set { key: String, value: i64 },
    /// Set `key` to `new` iff it holds `expected`.
    Cas {
        key: String,
        expected: i64,
        new: i64,
    },
}

/// The data of one log entry: the commands the leader's batcher gathered while the previous
/// entry was being committed (group commit, see `batch`), applied in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch(pub Vec<Command>);

/// What applying a command returned.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Whether the command took effect (always true for `Set`).
    pub ok: bool,
    /// The key's value after the command (for a failed CAS, the value that did not match).
    pub current: Option<i64>,
}

openraft::declare_raft_types!(
    /// Faultline's Raft: u64 node ids, HTTP addresses in `BasicNode`, JSON snapshots.
    pub TypeConfig:
        D = Batch,
        R = Vec<Applied>,
        NodeId = u64,
        Node = openraft::BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = crate::clock::SteadyTokioRuntime,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
