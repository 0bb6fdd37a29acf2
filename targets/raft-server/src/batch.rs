//! Batching in front of openraft: group commit of writes, and one leadership confirmation
//! for every read that is waiting.
//!
//! **Writes** ([`Batcher`]): one Raft entry carries every command that reached the leader
//! while the entries before it were being committed.
//!
//! openraft 0.9 turns each `client_write` into its own log entry and its core waits for that
//! entry's fsync before it handles the next message (`RaftCore::append_to_log` awaits the
//! flush callback), so one command per entry costs one leader fsync per write: about 280
//! writes/s on this project's machines whatever the number of clients. Batching in front of
//! openraft makes the fsync and the replication round per batch instead.
//!
//! Durability is unchanged: a command is answered only when the entry holding it is
//! committed (fsynced on a quorum) and applied, exactly as a lone `client_write` would be.
//!
//! **Reads** ([`ReadBatcher`]): a linearizable read needs the leader to confirm with a quorum
//! that it still leads, after the read arrived (ReadIndex; Ongaro, "Consensus: Bridging Theory
//! and Practice", 2014, §6.4, which also describes this batching). openraft sends a heartbeat
//! to every follower per `ensure_linearizable` call; here every read that is waiting shares
//! the next call. Invariant: a read is answered only from a confirmation that *started after
//! the read arrived* (a confirmation already under way when it arrives is not used), so its
//! read index is at least the commit index of every write acknowledged before it.

use std::sync::Arc;

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::types::{Applied, Batch, Command, NodeId, Raft};

/// At most this many commands go into one entry (an AppendEntries request carries up to
/// openraft's `max_payload_entries` entries, so this bounds a request's size too).
const MAX_BATCH: usize = 512;

/// Entries proposed and not yet committed at once. Two let the next batch be appended and
/// fsynced on the leader while the previous one is still replicating.
const IN_FLIGHT: usize = 2;

/// Why a proposed command has no answer: its outcome is unknown (it may have been appended).
#[derive(Debug, thiserror::Error)]
pub enum Unknown {
    /// Leadership moved while the entry was proposed.
    #[error("leadership changed while the write was in flight; outcome unknown")]
    LeaderChanged,
    /// Raft failed otherwise (stopped, storage error).
    #[error("outcome unknown: {0}")]
    Raft(String),
}

struct Pending {
    command: Command,
    answer: oneshot::Sender<Result<Applied, Unknown>>,
}

/// The leader's batcher: hands commands to Raft in batches. Cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    queue: mpsc::UnboundedSender<Pending>,
}

impl Batcher {
    /// Starts the batching task for `raft`; it ends when every `Batcher` clone is dropped.
    pub fn start(raft: Raft) -> Batcher {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(run(raft, pending));
        Batcher { queue }
    }

    /// Proposes `command` and waits until the entry holding it is committed and applied.
    pub async fn propose(&self, command: Command) -> Result<Applied, Unknown> {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Pending { command, answer })
            .map_err(|_| Unknown::Raft("the batcher has stopped".into()))?;
        answered
            .await
            .map_err(|_| Unknown::Raft("the batcher dropped the command".into()))?
    }
}

async fn run(raft: Raft, mut pending: mpsc::UnboundedReceiver<Pending>) {
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = pending.recv().await {
        // Waiting for a slot is what lets a batch grow: commands queue up meanwhile.
        let Ok(slot) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match pending.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            commit(&raft, batch).await;
            drop(slot);
        });
    }
}

async fn commit(raft: &Raft, batch: Vec<Pending>) {
    let (commands, answers): (Vec<Command>, Vec<_>) =
        batch.into_iter().map(|p| (p.command, p.answer)).unzip();
    match raft.client_write(Batch(commands)).await {
        Ok(response) => {
            let mut results = response.data.into_iter();
            for answer in answers {
                let result = results
                    .next()
                    .ok_or_else(|| Unknown::Raft("the entry's results are missing".into()));
                // The client may have gone away (its request timed out): nothing to tell.
                let _ = answer.send(result);
            }
        }
        Err(e) => {
            for answer in answers {
                let _ = answer.send(Err(match &e {
                    RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
                        Unknown::LeaderChanged
                    }
                    other => Unknown::Raft(other.to_string()),
                }));
            }
        }
    }
}

/// Why a leadership confirmation failed: openraft's own error (not the leader, no quorum).
pub type ConfirmError = RaftError<NodeId, CheckIsLeaderError<NodeId, openraft::BasicNode>>;

/// Shares leadership confirmations between the reads waiting for one. Cheap to clone.
#[derive(Clone)]
pub struct ReadBatcher {
    queue: mpsc::UnboundedSender<oneshot::Sender<Result<(), ConfirmError>>>,
}

impl ReadBatcher {
    /// Starts the confirming task for `raft`; it ends when every clone is dropped.
    pub fn start(raft: Raft) -> ReadBatcher {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(confirm_rounds(raft, waiting));
        ReadBatcher { queue }
    }

    /// Waits until this node has confirmed with a quorum, in a round that began after this
    /// call, that it leads, and has applied everything committed before that round: a read of
    /// the local state is then linearizable (`Raft::ensure_linearizable`).
    pub async fn confirm(&self) -> Result<(), ConfirmError> {
        let (tell, told) = oneshot::channel();
        if self.queue.send(tell).is_err() {
            return Err(RaftError::Fatal(openraft::error::Fatal::Stopped));
        }
        told.await
            .unwrap_or(Err(RaftError::Fatal(openraft::error::Fatal::Stopped)))
    }
}

/// One confirmation at a time, for everyone who was waiting when it started.
async fn confirm_rounds(
    raft: Raft,
    mut waiting: mpsc::UnboundedReceiver<oneshot::Sender<Result<(), ConfirmError>>>,
) {
    while let Some(first) = waiting.recv().await {
        let mut round = vec![first];
        while let Ok(next) = waiting.try_recv() {
            round.push(next);
        }
        // Everyone in `round` arrived before this call: the invariant above.
        let result = raft.ensure_linearizable().await.map(|_| ());
        for tell in round {
            let _ = tell.send(result.clone());
        }
    }
}
