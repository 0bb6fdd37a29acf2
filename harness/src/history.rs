//! The history writer: one JSON line per event, appended and flushed as events happen, so a
//! crash loses nothing already observed (DESIGN.md, "The history").
//!
//! Workers never touch the disk: they send records over a channel to one writer thread,
//! which assigns `index` in arrival order and flushes every line.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use anyhow::Context;
use faultline_checker::record::{Record, RecordProcess, RecordType};

/// What the writer counted, for the run summary.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    pub events: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    pub faults: u64,
}

/// Counts kept as events are recorded, for the live progress line.
#[derive(Debug, Default)]
pub struct Live {
    pub ok: AtomicU64,
    pub fail: AtomicU64,
    pub info: AtomicU64,
    /// Descriptions of the faults started and not yet stopped, by kind.
    pub faults: Mutex<Vec<(String, String)>>,
}

impl Live {
    /// `1234 ok, 56 fail, 7 info; faults: isolate n3 from n1,n2,n4,n5`.
    pub fn line(&self) -> String {
        let faults = self
            .faults
            .lock()
            .map(|f| {
                f.iter()
                    .map(|(_, d)| d.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        format!(
            "{} ok, {} fail, {} info; faults: {}",
            self.ok.load(Ordering::Relaxed),
            self.fail.load(Ordering::Relaxed),
            self.info.load(Ordering::Relaxed),
            if faults.is_empty() { "none" } else { &faults }
        )
    }

    fn count(&self, record: &Record) {
        match (record.process, record.kind) {
            (RecordProcess::Client(_), RecordType::Ok) => self.ok.fetch_add(1, Ordering::Relaxed),
            (RecordProcess::Client(_), RecordType::Fail) => {
                self.fail.fetch_add(1, Ordering::Relaxed)
            }
            (RecordProcess::Client(_), RecordType::Info) => {
                self.info.fetch_add(1, Ordering::Relaxed)
            }
            (RecordProcess::Nemesis(_), _) => {
                if let Ok(mut faults) = self.faults.lock() {
                    if let Some(kind) = record.f.strip_prefix("start-") {
                        let description = record.value["description"]
                            .as_str()
                            .unwrap_or(kind)
                            .to_string();
                        faults.push((kind.to_string(), description));
                    } else if let Some(kind) = record.f.strip_prefix("stop-") {
                        faults.retain(|(k, _)| k != kind);
                    }
                }
                0
            }
            _ => 0,
        };
    }
}

/// A handle workers clone to record events.
#[derive(Clone)]
pub struct Recorder {
    sender: mpsc::Sender<Record>,
    started: Instant,
    live: Arc<Live>,
}

impl Recorder {
    /// Nanoseconds since the run started.
    pub fn now(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// The counts so far, for progress display.
    pub fn live(&self) -> &Live {
        &self.live
    }

    /// Record one event; `index` is assigned by the writer.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        process: RecordProcess,
        kind: RecordType,
        f: &str,
        key: Option<&str>,
        value: serde_json::Value,
        node: Option<&str>,
        error: Option<String>,
    ) {
        let record = Record {
            index: 0,
            time: self.now(),
            process,
            kind,
            f: f.to_string(),
            key: key.map(str::to_string),
            value,
            node: node.map(str::to_string),
            error,
        };
        self.live.count(&record);
        // The writer outlives every recorder; a closed channel means the run is over.
        let _ = self.sender.send(record);
    }
}

/// The writer thread; [`HistoryWriter::finish`] waits for the last line.
pub struct HistoryWriter {
    thread: std::thread::JoinHandle<std::io::Result<Tally>>,
}

impl HistoryWriter {
    /// Create `path` and start writing to it.
    pub fn create(path: &Path, started: Instant) -> anyhow::Result<(HistoryWriter, Recorder)> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let (sender, receiver) = mpsc::channel::<Record>();
        let thread = std::thread::Builder::new()
            .name("history".into())
            .spawn(move || write_all(file, receiver))
            .context("starting the history writer thread")?;
        Ok((
            HistoryWriter { thread },
            Recorder {
                sender,
                started,
                live: Arc::new(Live::default()),
            },
        ))
    }

    /// Wait until every recorder is dropped and every line is on disk.
    pub fn finish(self) -> anyhow::Result<Tally> {
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the history writer thread panicked"))?
            .context("writing the history")
    }
}

fn write_all(file: File, receiver: mpsc::Receiver<Record>) -> std::io::Result<Tally> {
    let mut out = BufWriter::new(file);
    let mut tally = Tally::default();
    let mut line = Vec::with_capacity(256);
    for mut record in receiver.iter() {
        record.index = tally.events;
        tally.events += 1;
        match (record.process, record.kind) {
            (RecordProcess::Nemesis(_), _) => {
                if record.f.starts_with("start-") {
                    tally.faults += 1;
                }
            }
            (_, RecordType::Ok) => tally.ok += 1,
            (_, RecordType::Fail) => tally.fail += 1,
            (_, RecordType::Info) => tally.info += 1,
            (_, RecordType::Invoke) => {}
        }
        line.clear();
        serde_json::to_writer(&mut line, &record)?;
        line.push(b'\n');
        out.write_all(&line)?;
        // One write(2) per line, so a crash loses nothing observed.
        out.flush()?;
    }
    out.flush()?;
    out.get_ref().sync_all()?;
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_get_indices_in_arrival_order_and_are_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("history.jsonl");
        let (writer, recorder) = HistoryWriter::create(&path, Instant::now()).expect("writer");
        recorder.record(
            RecordProcess::Client(0),
            RecordType::Invoke,
            "write",
            Some("k"),
            1.into(),
            Some("n1"),
            None,
        );
        recorder.record(
            RecordProcess::NEMESIS,
            RecordType::Info,
            "start-kill",
            None,
            serde_json::json!({}),
            None,
            None,
        );
        recorder.record(
            RecordProcess::Client(0),
            RecordType::Ok,
            "write",
            Some("k"),
            1.into(),
            Some("n1"),
            None,
        );
        drop(recorder);
        let tally = writer.finish().expect("finishes");
        assert_eq!((tally.events, tally.ok, tally.faults), (3, 1, 1));
        let text = std::fs::read_to_string(&path).expect("read");
        let records: Vec<Record> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("valid line"))
            .collect();
        assert_eq!(
            records.iter().map(|r| r.index).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert!(records.windows(2).all(|w| w[0].time <= w[1].time));
    }

    #[test]
    fn the_live_line_counts_outcomes_and_shows_faults_until_they_stop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (writer, recorder) =
            HistoryWriter::create(&dir.path().join("h.jsonl"), Instant::now()).expect("writer");
        let nemesis = |f: &str, description: &str| {
            recorder.record(
                RecordProcess::NEMESIS,
                RecordType::Info,
                f,
                None,
                serde_json::json!({ "description": description }),
                None,
                None,
            )
        };
        let client = |kind| {
            recorder.record(
                RecordProcess::Client(1),
                kind,
                "read",
                Some("k"),
                serde_json::Value::Null,
                None,
                None,
            )
        };
        client(RecordType::Ok);
        client(RecordType::Ok);
        client(RecordType::Fail);
        nemesis("start-partition", "isolate n3");
        assert_eq!(
            recorder.live().line(),
            "2 ok, 1 fail, 0 info; faults: isolate n3"
        );
        nemesis("stop-partition", "heal");
        client(RecordType::Info);
        assert_eq!(recorder.live().line(), "2 ok, 1 fail, 1 info; faults: none");
        drop(recorder);
        writer.finish().expect("finishes");
    }
}
