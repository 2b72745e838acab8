//! The node's HTTP server: the client API (`/kv/*`), observation (`/status`, `/state`),
//! administration (`/admin/*`) and the Raft RPCs between nodes (`/raft/*`). Shapes and
//! status codes are those of the cluster contract (cluster/README.md).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use openraft::error::{ClientWriteError, ForwardToLeader, RaftError};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::{BasicNode, Raft};
use serde::Deserialize;
use serde_json::{json, Value};
use snapseal_ship::Shipper;

use crate::kv::{Cfg, Cmd, NodeId};
use crate::machine::{Counts, View};

/// How long a client request may take before it is answered 503 (its outcome unknown).
const CLIENT_DEADLINE: Duration = Duration::from_secs(5);

/// How long adding a learner may take (it returns once the learner caught up).
const ADMIN_DEADLINE: Duration = Duration::from_secs(120);

/// Largest request body accepted.
const MAX_BODY: usize = 32 << 20;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct Node {
    pub(crate) id: NodeId,
    pub(crate) raft: Raft<Cfg>,
    pub(crate) view: View,
    pub(crate) counts: Arc<Counts>,
    pub(crate) shipper: Arc<Shipper>,
    pub(crate) restored_index: Option<u64>,
}

/// The router of every endpoint.
pub(crate) fn router(node: Node) -> Router {
    Router::new()
        .route("/kv/put", post(put))
        .route("/kv/get", post(get_key))
        .route("/kv/cas", post(cas))
        .route("/status", get(status))
        .route("/state", get(state))
        .route("/admin/add-learner", post(add_learner))
        .route("/admin/change-membership", post(change_membership))
        .route("/admin/snapshot", post(snapshot))
        .route("/raft/append", post(raft_append))
        .route("/raft/vote", post(raft_vote))
        .route("/raft/snapshot", post(raft_snapshot))
        // A snapshot chunk is a JSON array of bytes (about 4 bytes of JSON per byte).
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(node)
}

/// A failure as the contract answers it.
enum Failure {
    NotLeader(Option<NodeId>, Option<String>),
    Unavailable(String),
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::NotLeader(leader, addr) => (
                StatusCode::CONFLICT,
                Json(json!({"error": "not_leader", "leader": leader, "leader_addr": addr})),
            )
                .into_response(),
            Failure::Unavailable(text) => (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": text})),
            )
                .into_response(),
        }
    }
}

fn forward(f: &ForwardToLeader<NodeId, BasicNode>) -> Failure {
    Failure::NotLeader(f.leader_id, f.leader_node.as_ref().map(|n| n.addr.clone()))
}

fn write_failure(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> Failure {
    match &e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => forward(f),
        _ => Failure::Unavailable(e.to_string()),
    }
}

/// `fut` within `deadline`, a timeout being a 503.
async fn within<T>(
    deadline: Duration,
    fut: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    tokio::time::timeout(deadline, fut)
        .await
        .unwrap_or_else(|_| {
            Err(Failure::Unavailable(format!(
                "timed out after {deadline:?}"
            )))
        })
}

async fn write(node: &Node, cmd: Cmd) -> Result<crate::kv::Applied, Failure> {
    within(CLIENT_DEADLINE, async {
        node.raft
            .client_write(cmd)
            .await
            .map(|r| r.data)
            .map_err(write_failure)
    })
    .await
}

#[derive(Deserialize)]
struct PutReq {
    key: String,
    value: String,
}

async fn put(State(node): State<Node>, Json(req): Json<PutReq>) -> Result<Json<Value>, Failure> {
    write(
        &node,
        Cmd::Put {
            key: req.key,
            value: req.value,
        },
    )
    .await?;
    Ok(Json(json!({"ok": true})))
}

#[derive(Deserialize)]
struct CasReq {
    key: String,
    from: Option<String>,
    to: String,
}

async fn cas(State(node): State<Node>, Json(req): Json<CasReq>) -> Result<Json<Value>, Failure> {
    let applied = write(
        &node,
        Cmd::Cas {
            key: req.key,
            from: req.from,
            to: req.to,
        },
    )
    .await?;
    Ok(Json(json!({"ok": applied.ok, "value": applied.before})))
}

#[derive(Deserialize)]
struct GetReq {
    key: String,
}

/// A linearizable read: the leader confirms with a quorum that it still leads, waits until
/// it applied up to the read index, then reads its state.
async fn get_key(
    State(node): State<Node>,
    Json(req): Json<GetReq>,
) -> Result<Json<Value>, Failure> {
    within(CLIENT_DEADLINE, async {
        node.raft.ensure_linearizable().await.map_err(|e| match &e {
            RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(f)) => {
                forward(f)
            }
            _ => Failure::Unavailable(e.to_string()),
        })
    })
    .await?;
    let value = node.view.now(|kv| kv.0.get(&req.key).cloned());
    Ok(Json(json!({"value": value})))
}

async fn status(State(node): State<Node>) -> Json<Value> {
    let m = node.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let nodes: BTreeMap<String, String> = membership
        .nodes()
        .map(|(id, n)| (id.to_string(), n.addr.clone()))
        .collect();
    Json(json!({
        "id": node.id,
        "state": format!("{:?}", m.state),
        "leader": m.current_leader,
        "term": m.current_term,
        "last_log_index": m.last_log_index,
        "last_applied": m.last_applied.map(|l| l.index),
        "snapshot_index": m.snapshot.map(|l| l.index),
        "purged_index": m.purged.map(|l| l.index),
        "voters": membership.voter_ids().collect::<Vec<_>>(),
        "learners": membership.learner_ids().collect::<Vec<_>>(),
        "nodes": nodes,
        "snapshots_built": node.counts.built.load(Ordering::Relaxed),
        "snapshots_installed": node.counts.installed.load(Ordering::Relaxed),
        "restored_index": node.restored_index,
        "shipped": node.shipper.stats().shipped,
    }))
}

async fn state(State(node): State<Node>) -> Json<Value> {
    node.view
        .read(|kv, applied| {
            Json(json!({"last_applied": applied, "len": kv.0.len(), "digest": kv.digest()}))
        })
        .await
}

#[derive(Deserialize)]
struct AddLearnerReq {
    id: NodeId,
    addr: String,
}

async fn add_learner(
    State(node): State<Node>,
    Json(req): Json<AddLearnerReq>,
) -> Result<Json<Value>, Failure> {
    within(ADMIN_DEADLINE, async {
        node.raft
            .add_learner(req.id, BasicNode { addr: req.addr }, true)
            .await
            .map_err(write_failure)
    })
    .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct MembershipReq {
    voters: BTreeSet<NodeId>,
}

async fn change_membership(
    State(node): State<Node>,
    Json(req): Json<MembershipReq>,
) -> Result<Json<Value>, Failure> {
    within(ADMIN_DEADLINE, async {
        node.raft
            .change_membership(req.voters, false)
            .await
            .map_err(write_failure)
    })
    .await?;
    Ok(Json(json!({})))
}

/// Asks openraft for a snapshot now; any node may (each node snapshots its own state).
async fn snapshot(State(node): State<Node>) -> Result<Json<Value>, Failure> {
    node.raft
        .trigger()
        .snapshot()
        .await
        .map_err(|e| Failure::Unavailable(e.to_string()))?;
    Ok(Json(json!({})))
}

async fn raft_append(
    State(node): State<Node>,
    Json(req): Json<AppendEntriesRequest<Cfg>>,
) -> impl IntoResponse {
    Json(node.raft.append_entries(req).await)
}

async fn raft_vote(
    State(node): State<Node>,
    Json(req): Json<VoteRequest<NodeId>>,
) -> impl IntoResponse {
    Json(node.raft.vote(req).await)
}

async fn raft_snapshot(
    State(node): State<Node>,
    Json(req): Json<InstallSnapshotRequest<Cfg>>,
) -> impl IntoResponse {
    Json(node.raft.install_snapshot(req).await)
}
