//! The key-value state machine and its snapshots.
//!
//! The map is shared (`Arc<RwLock>`) between openraft, which applies committed entries, and
//! the HTTP handlers, which read it after a linearizability check (or, in the unsafe modes,
//! without one). Snapshots are the whole map as JSON, written to `snapshot.json` atomically
//! (temp file, fsync, rename) so a restarted node that purged its log still has its data.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use crate::types::{
    Applied, Batch, Command, Entry, LogId, NodeId, StorageError, StoredMembership, TypeConfig,
};

type Meta = SnapshotMeta<NodeId, openraft::BasicNode>;
/// The latest snapshot: its metadata and the serialised map.
type SnapshotBytes = (Meta, Vec<u8>);

/// What the state machine holds; also the snapshot format.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Data {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    pub kv: BTreeMap<String, i64>,
}

/// The state machine handed to openraft; clones share the data.
#[derive(Clone)]
pub struct StateMachine {
    pub data: Arc<RwLock<Data>>,
    snapshot_path: PathBuf,
    snapshot: Arc<RwLock<Option<SnapshotBytes>>>,
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: Meta,
    data: Data,
}

fn snapshot_error(e: impl std::error::Error + 'static) -> StorageError {
    StorageError::IO {
        source: StorageIOError::write_snapshot(None, &e),
    }
}

impl StateMachine {
    /// Start from `dir/snapshot.json` if there is one, empty otherwise.
    pub fn open(dir: &Path) -> std::io::Result<StateMachine> {
        let snapshot_path = dir.join("snapshot.json");
        let (data, snapshot) = match std::fs::read(&snapshot_path) {
            Ok(bytes) => {
                let stored: StoredSnapshot =
                    serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
                let raw = serde_json::to_vec(&stored.data).map_err(std::io::Error::other)?;
                (stored.data, Some((stored.meta, raw)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Data::default(), None),
            Err(e) => return Err(e),
        };
        Ok(StateMachine {
            data: Arc::new(RwLock::new(data)),
            snapshot_path,
            snapshot: Arc::new(RwLock::new(snapshot)),
        })
    }

    async fn persist(&self, meta: &Meta, data: &Data) -> std::io::Result<()> {
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        let bytes = serde_json::to_vec(&stored).map_err(std::io::Error::other)?;
        let tmp = self.snapshot_path.with_extension("json.tmp");
        tokio::fs::write(&tmp, &bytes).await?;
        tokio::fs::File::open(&tmp).await?.sync_all().await?;
        tokio::fs::rename(&tmp, &self.snapshot_path).await?;
        Ok(())
    }
}

/// Apply one command to the map.
pub fn apply(kv: &mut BTreeMap<String, i64>, command: &Command) -> Applied {
    match command {
        Command::Set { key, value } => {
            kv.insert(key.clone(), *value);
            Applied {
                ok: true,
                current: Some(*value),
            }
        }
        Command::Cas { key, expected, new } => {
            let current = kv.get(key).copied();
            if current == Some(*expected) {
                kv.insert(key.clone(), *new);
                Applied {
                    ok: true,
                    current: Some(*new),
                }
            } else {
                Applied { ok: false, current }
            }
        }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let data = self.data.read().await.clone();
        let last = data.last_applied;
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: data.membership.clone(),
            snapshot_id: format!(
                "{}-{}",
                last.map_or(0, |l| l.leader_id.term),
                last.map_or(0, |l| l.index)
            ),
        };
        self.persist(&meta, &data).await.map_err(snapshot_error)?;
        let raw = serde_json::to_vec(&data).map_err(snapshot_error)?;
        *self.snapshot.write().await = Some((meta.clone(), raw.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(raw)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let data = self.data.read().await;
        Ok((data.last_applied, data.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<Applied>>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut data = self.data.write().await;
        let mut out = Vec::new();
        for entry in entries {
            data.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => out.push(Vec::new()),
                EntryPayload::Normal(Batch(commands)) => out.push(
                    commands
                        .iter()
                        .map(|command| apply(&mut data.kv, command))
                        .collect(),
                ),
                EntryPayload::Membership(m) => {
                    data.membership = StoredMembership::new(Some(entry.log_id), m);
                    out.push(Vec::new());
                }
            }
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let raw = snapshot.into_inner();
        let mut data: Data = serde_json::from_slice(&raw).map_err(snapshot_error)?;
        data.last_applied = meta.last_log_id;
        data.membership = meta.last_membership.clone();
        self.persist(meta, &data).await.map_err(snapshot_error)?;
        *self.data.write().await = data;
        *self.snapshot.write().await = Some((meta.clone(), raw));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self
            .snapshot
            .read()
            .await
            .as_ref()
            .map(|(meta, raw)| Snapshot {
                meta: meta.clone(),
                snapshot: Box::new(Cursor::new(raw.clone())),
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    #[test]
    fn commands_follow_the_register_spec() {
        let mut kv = BTreeMap::new();
        let set = |k: &str, v| Command::Set { key: k.into(), value: v };
        let cas = |k: &str, a, b| Command::Cas { key: k.into(), expected: a, new: b };
        assert_eq!(apply(&mut kv, &cas("a", 1, 2)), Applied { ok: false, current: None });
        assert_eq!(apply(&mut kv, &set("a", 1)),    Applied { ok: true,  current: Some(1) });
        assert_eq!(apply(&mut kv, &cas("a", 1, 2)), Applied { ok: true,  current: Some(2) });
        assert_eq!(apply(&mut kv, &cas("a", 1, 3)), Applied { ok: false, current: Some(2) });
    }

    #[tokio::test]
    async fn a_batch_applies_its_commands_in_order_and_answers_each() {
        use openraft::CommittedLeaderId;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sm = StateMachine::open(dir.path()).expect("opens");
        let set = |k: &str, v| Command::Set {
            key: k.into(),
            value: v,
        };
        let cas = |k: &str, a, b| Command::Cas {
            key: k.into(),
            expected: a,
            new: b,
        };
        let entry = |index, commands| Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Batch(commands)),
        };
        let results = sm
            .apply(vec![
                entry(1, vec![set("a", 1), cas("a", 1, 2), cas("a", 1, 3)]),
                entry(2, vec![cas("a", 2, 4)]),
            ])
            .await
            .expect("applies");
        assert_eq!(
            results,
            vec![
                vec![
                    Applied {
                        ok: true,
                        current: Some(1)
                    },
                    Applied {
                        ok: true,
                        current: Some(2)
                    },
                    Applied {
                        ok: false,
                        current: Some(2)
                    },
                ],
                vec![Applied {
                    ok: true,
                    current: Some(4)
                }],
            ]
        );
        let data = sm.data.read().await;
        assert_eq!(data.kv.get("a"), Some(&4));
        assert_eq!(data.last_applied.map(|l| l.index), Some(2));
    }
}
