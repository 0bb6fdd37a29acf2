//! `faultline bench harness`: recorded operations per second of the harness itself.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::routing::{get, post};
use faultline_targets::Client;
use faultline_targets::raft::RaftClient;
use faultline_workloads::{Generator, Mix, Workload, WorkloadSpec};

use super::tempfile_dir;
use crate::history::HistoryWriter;
use crate::run::Worker;

pub(super) fn harness(clients: usize, seconds: f64) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let started = Instant::now();
    let (writer, recorder) = HistoryWriter::create(&dir.join("history.jsonl"), started)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let elapsed = runtime.block_on(async move {
        // The stand-in target: every read finds nothing, every write and CAS succeeds.
        let app = Router::new()
            .route(
                "/kv/{key}",
                get(|| async { axum::Json(serde_json::json!({ "value": null })) })
                    .put(|| async { axum::Json(serde_json::json!({ "ok": true })) }),
            )
            .route(
                "/kv/{key}/cas",
                post(|| async { axum::Json(serde_json::json!({ "ok": true })) }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let generator = Arc::new(Mutex::new(Generator::new(WorkloadSpec {
            workload: Workload::CasRegister,
            keys: 8,
            mix: "2:1:1".parse::<Mix>()?,
            ops_per_key: None,
            seed: 1,
        })?));
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        let next_process = Arc::new(AtomicU64::new(clients as u64));
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
        let began = Instant::now();
        let mut workers = Vec::new();
        for process in 0..clients {
            let worker = Worker {
                client: Client::Raft(RaftClient::at(&base, Duration::from_secs(2))?),
                key_prefix: "".into(),
                node: "n1".into(),
                process: process as u64,
                next_process: next_process.clone(),
                recorder: recorder.clone(),
                latencies: latencies.clone(),
            };
            workers.push(tokio::spawn(worker.run(
                generator.clone(),
                deadline,
                None,
                stop.clone(),
            )));
        }
        for worker in workers {
            worker.await?;
        }
        let elapsed = began.elapsed();
        server.abort();
        drop(recorder);
        anyhow::Ok(elapsed)
    })?;
    let tally = writer.finish()?;
    let ops = tally.ok + tally.fail + tally.info;
    println!(
        "harness: {ops} operations recorded ({} history lines) by {clients} clients in {:.2} s: {:.0} ops/s",
        tally.events,
        elapsed.as_secs_f64(),
        ops as f64 / elapsed.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
