//! The durable Raft log: an append-only file of checksummed records, replayed at start.
//!
//! Each record is `len: u32 LE | crc32(payload): u32 LE | payload (JSON)`. Appends, truncations
//! and votes are written and `fsync`ed before openraft is told they are durable
//! (`LogFlushed::log_io_completed`), so an acknowledged write survives `kill -9`. At start the
//! file is replayed; the first record whose length or checksum does not hold ends the log: the
//! file is truncated there and the truncation is logged, never silently used.
//!
//! Purges (after a snapshot) rewrite the file with what remains, so it does not grow without
//! bound.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, StorageIOError};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::crc::crc32;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

#[derive(Serialize, Deserialize)]
enum Record {
    Entry(Entry),
    /// Entries at and after this index are gone (a conflicting suffix).
    Truncate(u64),
    /// Entries up to and including this log id are gone (covered by a snapshot).
    Purge(LogId),
    Vote(Vote),
    Committed(Option<LogId>),
}

struct Inner {
    path: PathBuf,
    file: File,
    bytes: u64,
    entries: BTreeMap<u64, Entry>,
    vote: Option<Vote>,
    purged: Option<LogId>,
    committed: Option<LogId>,
}

/// The log store handed to openraft; clones share one file.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

/// Rewrite the file once it is this much bigger than what it holds, at a purge.
const COMPACT_BYTES: u64 = 8 << 20;

fn io_error(e: impl std::error::Error + 'static) -> StorageError {
    StorageError::IO {
        source: StorageIOError::write_logs(&e),
    }
}

impl LogStore {
    /// Open (or create) `dir/raft.log` and replay it.
    pub fn open(dir: &Path) -> io::Result<LogStore> {
        let path = dir.join("raft.log");
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        let mut inner = Inner {
            path,
            bytes: 0,
            file,
            entries: BTreeMap::new(),
            vote: None,
            purged: None,
            committed: None,
        };
        let mut offset = 0usize;
        while offset < data.len() {
            match decode(&data[offset..]) {
                Some((record, used)) => {
                    inner.replay(record);
                    offset += used;
                }
                None => {
                    tracing::warn!(
                        path = %inner.path.display(),
                        valid_bytes = offset,
                        dropped_bytes = data.len() - offset,
                        "raft log has a torn or corrupt tail: truncating it"
                    );
                    inner.file.set_len(offset as u64)?;
                    inner.file.sync_all()?;
                    break;
                }
            }
        }
        inner.bytes = offset as u64;
        tracing::info!(
            entries = inner.entries.len(),
            vote = ?inner.vote,
            purged = ?inner.purged,
            "raft log replayed"
        );
        Ok(LogStore {
            inner: Arc::new(Mutex::new(inner)),
        })
    }
}

fn encode(record: &Record, out: &mut Vec<u8>) -> io::Result<()> {
    let payload = serde_json::to_vec(record).map_err(io::Error::other)?;
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(())
}

fn decode(data: &[u8]) -> Option<(Record, usize)> {
    let len = u32::from_le_bytes(data.get(0..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(data.get(4..8)?.try_into().ok()?);
    let payload = data.get(8..8 + len)?;
    if crc32(payload) != crc {
        return None;
    }
    Some((serde_json::from_slice(payload).ok()?, 8 + len))
}

impl Inner {
    fn replay(&mut self, record: Record) {
        match record {
            Record::Entry(entry) => {
                self.entries.insert(entry.log_id.index, entry);
            }
            Record::Truncate(index) => {
                self.entries.split_off(&index);
            }
            Record::Purge(log_id) => {
                self.entries = self.entries.split_off(&(log_id.index + 1));
                self.purged = Some(log_id);
            }
            Record::Vote(vote) => self.vote = Some(vote),
            Record::Committed(c) => self.committed = c,
        }
    }

    /// Append records to the file and make them durable.
    fn write(&mut self, records: &[Record], sync: bool) -> io::Result<()> {
        let mut buf = Vec::new();
        for r in records {
            encode(r, &mut buf)?;
        }
        self.file.write_all(&buf)?;
        if sync {
            self.file.sync_data()?;
        }
        self.bytes += buf.len() as u64;
        Ok(())
    }

    /// Replace the file by one holding only the current state (atomic rename + fsync).
    fn compact(&mut self) -> io::Result<()> {
        let mut buf = Vec::new();
        if let Some(v) = self.vote {
            encode(&Record::Vote(v), &mut buf)?;
        }
        if let Some(p) = self.purged {
            encode(&Record::Purge(p), &mut buf)?;
        }
        for e in self.entries.values() {
            encode(&Record::Entry(e.clone()), &mut buf)?;
        }
        let tmp = self.path.with_extension("log.tmp");
        let mut file = File::create(&tmp)?;
        file.write_all(&buf)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.file = OpenOptions::new()
            .append(true)
            .read(true)
            .open(&self.path)?;
        self.bytes = buf.len() as u64;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let inner = self.inner.lock().await;
        Ok(inner.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let inner = self.inner.lock().await;
        let last = inner
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(inner.purged);
        Ok(LogState {
            last_purged_log_id: inner.purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let mut inner = self.inner.lock().await;
        inner
            .write(&[Record::Vote(*vote)], true)
            .map_err(|e| StorageError::IO {
                source: StorageIOError::write_vote(&e),
            })?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.inner.lock().await.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not fsynced: losing it only means re-learning the commit index from the leader.
        let mut inner = self.inner.lock().await;
        inner
            .write(&[Record::Committed(committed)], false)
            .map_err(io_error)?;
        inner.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.inner.lock().await.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.inner.lock().await;
        let entries: Vec<Entry> = entries.into_iter().collect();
        let records: Vec<Record> = entries.iter().cloned().map(Record::Entry).collect();
        // One write and one fsync per batch: group commit.
        let result = inner.write(&records, true);
        if result.is_ok() {
            for e in entries {
                inner.entries.insert(e.log_id.index, e);
            }
        }
        let error = result
            .as_ref()
            .err()
            .map(|e| io::Error::new(e.kind(), e.to_string()));
        callback.log_io_completed(match error {
            None => Ok(()),
            Some(e) => Err(e),
        });
        result.map_err(io_error)
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut inner = self.inner.lock().await;
        inner
            .write(&[Record::Truncate(log_id.index)], true)
            .map_err(io_error)?;
        inner.entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut inner = self.inner.lock().await;
        inner
            .write(&[Record::Purge(log_id)], true)
            .map_err(io_error)?;
        inner.replay(Record::Purge(log_id));
        if inner.bytes > COMPACT_BYTES {
            inner.compact().map_err(io_error)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::types::{Batch, Command};

    fn entry(index: u64) -> Record {
        Record::Entry(Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Batch(vec![Command::Set {
                key: format!("k{index}"),
                value: index as i64,
            }])),
        })
    }

    /// A log file holding entries 1..=n; returns its path and the offset where each record ends.
    fn log_with_entries(dir: &Path, n: u64) -> (PathBuf, Vec<usize>) {
        let mut buf = Vec::new();
        let mut ends = Vec::new();
        for i in 1..=n {
            encode(&entry(i), &mut buf).expect("encodes");
            ends.push(buf.len());
        }
        let path = dir.join("raft.log");
        std::fs::write(&path, &buf).expect("writes");
        (path, ends)
    }

    async fn indices(store: &LogStore) -> Vec<u64> {
        store.inner.lock().await.entries.keys().copied().collect()
    }

    #[tokio::test]
    async fn an_intact_log_replays_every_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, ends) = log_with_entries(dir.path(), 3);
        let store = LogStore::open(dir.path()).expect("opens");
        assert_eq!(indices(&store).await, vec![1, 2, 3]);
        assert_eq!(
            std::fs::metadata(&path).expect("exists").len(),
            ends[2] as u64
        );
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_off_and_the_rest_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, ends) = log_with_entries(dir.path(), 3);
        // A crash in the middle of writing the third record.
        let torn = ends[1] + (ends[2] - ends[1]) / 2;
        let data = std::fs::read(&path).expect("reads");
        std::fs::write(&path, &data[..torn]).expect("writes");
        let store = LogStore::open(dir.path()).expect("opens");
        assert_eq!(indices(&store).await, vec![1, 2]);
        assert_eq!(
            std::fs::metadata(&path).expect("exists").len(),
            ends[1] as u64
        );
    }

    #[tokio::test]
    async fn a_corrupt_record_ends_the_log_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, ends) = log_with_entries(dir.path(), 3);
        let mut data = std::fs::read(&path).expect("reads");
        // Flip a bit inside the third record's payload: its checksum no longer holds.
        data[ends[2] - 3] ^= 0x01;
        std::fs::write(&path, &data).expect("writes");
        let store = LogStore::open(dir.path()).expect("opens");
        assert_eq!(indices(&store).await, vec![1, 2]);
        assert_eq!(
            std::fs::metadata(&path).expect("exists").len(),
            ends[1] as u64
        );

        // Appends after the cut land where the good records end, and survive a reopen.
        {
            let mut inner = store.inner.lock().await;
            inner.write(&[entry(3)], true).expect("appends");
        }
        drop(store);
        let reopened = LogStore::open(dir.path()).expect("reopens");
        assert_eq!(indices(&reopened).await, vec![1, 2, 3]);
    }
}
