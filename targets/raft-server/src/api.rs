//! The HTTP API: client requests (`/kv/...`, `/status`) and Raft RPCs (`/raft/...`).
//!
//! Status codes are chosen so a client can tell what certainly did not happen from what may
//! have: 503 = not proposed (no leader, not the leader, no quorum for a read); 500/504 on a
//! write = proposed but the outcome is unknown; 409 = a CAS whose compare did not match.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use openraft::error::{CheckIsLeaderError, RaftError};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;

use crate::UnsafeModes;
use crate::batch::{Batcher, ReadBatcher};
use crate::clock::SteadyInstant;
use crate::state_machine::StateMachine;
use crate::types::{Applied, Command, NodeId, Raft, TypeConfig};

/// Marks a request one node forwarded to the leader, so it is never forwarded twice.
const FORWARDED: &str = "x-faultline-forwarded";

/// How long a leader believes its lease after a quorum confirmed it (`--unsafe lease-reads`).
/// Measured on the leader's own clock (Raft's clock, `clock::SteadyInstant`): that is the bug
/// the mode plants.
const LEASE: Duration = Duration::from_secs(2);

pub struct App {
    pub id: NodeId,
    pub raft: Raft,
    /// Proposes writes and CAS in batches (group commit).
    pub batcher: Batcher,
    /// Confirms leadership for linearizable reads, one quorum round for all waiting reads.
    pub reads: ReadBatcher,
    pub state: StateMachine,
    pub unsafe_modes: UnsafeModes,
    pub client: reqwest::Client,
    pub lease_until: Mutex<Option<SteadyInstant>>,
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/kv/{key}", get(read).put(write))
        .route("/kv/{key}/cas", post(cas))
        .route("/status", get(status))
        .route("/raft/append", post(append))
        .route("/raft/vote", post(vote))
        .route("/raft/snapshot", post(snapshot))
        .with_state(app)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn local_value(app: &App, key: &str) -> Response {
    let value = app.state.data.read().await.kv.get(key).copied();
    Json(json!({ "value": value })).into_response()
}

async fn read(
    State(app): State<Arc<App>>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    if app.unsafe_modes.stale_reads {
        return local_value(&app, &key).await;
    }
    if app.unsafe_modes.lease_reads {
        let lease = *app.lease_until.lock().await;
        if lease.is_some_and(|until| <SteadyInstant as openraft::Instant>::now() < until) {
            return local_value(&app, &key).await;
        }
    }
    let confirmed_at = <SteadyInstant as openraft::Instant>::now();
    match app.reads.confirm().await {
        Ok(_) => {
            if app.unsafe_modes.lease_reads {
                *app.lease_until.lock().await = Some(confirmed_at + LEASE);
            }
            local_value(&app, &key).await
        }
        Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => match f.leader_node {
            Some(node) if !headers.contains_key(FORWARDED) => {
                forward(
                    &app,
                    Method::GET,
                    &node.addr,
                    &format!("/kv/{key}"),
                    None,
                    false,
                )
                .await
            }
            _ => error(StatusCode::SERVICE_UNAVAILABLE, "no leader known"),
        },
        Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e))) => {
            error(StatusCode::SERVICE_UNAVAILABLE, format!("no quorum: {e}"))
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

#[derive(Deserialize)]
struct WriteBody {
    value: i64,
}

#[derive(Deserialize)]
struct CasBody {
    expected: i64,
    new: i64,
}

async fn write(
    State(app): State<Arc<App>>,
    Path(key): Path<String>,
    headers: HeaderMap,
    Json(body): Json<WriteBody>,
) -> Response {
    let path = format!("/kv/{key}");
    let command = Command::Set {
        key,
        value: body.value,
    };
    propose(
        &app,
        command,
        Method::PUT,
        &path,
        json!({ "value": body.value }),
        &headers,
    )
    .await
}

async fn cas(
    State(app): State<Arc<App>>,
    Path(key): Path<String>,
    headers: HeaderMap,
    Json(body): Json<CasBody>,
) -> Response {
    let path = format!("/kv/{key}/cas");
    let forwarded_body = json!({ "expected": body.expected, "new": body.new });
    let command = Command::Cas {
        key,
        expected: body.expected,
        new: body.new,
    };
    propose(&app, command, Method::POST, &path, forwarded_body, &headers).await
}

/// Propose a command at the leader, or forward it there.
async fn propose(
    app: &App,
    command: Command,
    method: Method,
    path: &str,
    body: serde_json::Value,
    headers: &HeaderMap,
) -> Response {
    let metrics = app.raft.metrics().borrow().clone();
    match metrics.current_leader {
        Some(leader) if leader == app.id => {}
        Some(leader) if !headers.contains_key(FORWARDED) => {
            let node = metrics
                .membership_config
                .membership()
                .get_node(&leader)
                .cloned();
            return match node {
                Some(node) => forward(app, method, &node.addr, path, Some(body), true).await,
                None => error(StatusCode::SERVICE_UNAVAILABLE, "leader address unknown"),
            };
        }
        Some(_) => return error(StatusCode::SERVICE_UNAVAILABLE, "not the leader"),
        None => return error(StatusCode::SERVICE_UNAVAILABLE, "no leader"),
    }
    if app.unsafe_modes.ack_before_commit {
        // The planted bug: acknowledge before a quorum has the entry.
        let batcher = app.batcher.clone();
        tokio::spawn(async move {
            if let Err(e) = batcher.propose(command).await {
                tracing::debug!("unsafe ack-before-commit write failed after its ack: {e}");
            }
        });
        return Json(json!({ "ok": true })).into_response();
    }
    match app.batcher.propose(command).await {
        Ok(result) => applied(result),
        // We believed we were leader: the entry may or may not have been appended.
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn applied(result: Applied) -> Response {
    if result.ok {
        Json(json!({ "ok": true })).into_response()
    } else {
        (
            StatusCode::CONFLICT,
            Json(json!({ "ok": false, "current": result.current })),
        )
            .into_response()
    }
}

/// Send a client request on to the leader and pass its answer back.
async fn forward(
    app: &App,
    method: Method,
    addr: &str,
    path: &str,
    body: Option<serde_json::Value>,
    is_write: bool,
) -> Response {
    let mut request = app
        .client
        .request(method, format!("http://{addr}{path}"))
        .header(FORWARDED, "1");
    if let Some(body) = body {
        request = request.json(&body);
    }
    match request.send().await {
        Ok(response) => {
            let status =
                StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            match response.bytes().await {
                Ok(bytes) => {
                    (status, [("content-type", "application/json")], bytes).into_response()
                }
                Err(e) if is_write => {
                    error(StatusCode::GATEWAY_TIMEOUT, format!("forwarded write: {e}"))
                }
                Err(e) => error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("forwarded read: {e}"),
                ),
            }
        }
        Err(e) if e.is_connect() => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("leader unreachable: {e}"),
        ),
        Err(e) if is_write => error(
            StatusCode::GATEWAY_TIMEOUT,
            format!("forwarded write, outcome unknown: {e}"),
        ),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("forwarded read failed: {e}"),
        ),
    }
}

async fn status(State(app): State<Arc<App>>) -> Response {
    let m = app.raft.metrics().borrow().clone();
    Json(json!({
        "id": app.id,
        "role": format!("{:?}", m.state),
        "leader": m.current_leader,
        "term": m.current_term,
        "last_log_index": m.last_log_index,
        "commit_index": m.last_applied.map(|l| l.index),
        "applied_index": m.last_applied.map(|l| l.index),
        "unsafe": app.unsafe_modes.names(),
    }))
    .into_response()
}

async fn append(
    State(app): State<Arc<App>>,
    Json(rpc): Json<AppendEntriesRequest<TypeConfig>>,
) -> Response {
    Json(app.raft.append_entries(rpc).await).into_response()
}

async fn vote(State(app): State<Arc<App>>, Json(rpc): Json<VoteRequest<NodeId>>) -> Response {
    Json(app.raft.vote(rpc).await).into_response()
}

async fn snapshot(
    State(app): State<Arc<App>>,
    Json(rpc): Json<InstallSnapshotRequest<TypeConfig>>,
) -> Response {
    Json(app.raft.install_snapshot(rpc).await).into_response()
}
