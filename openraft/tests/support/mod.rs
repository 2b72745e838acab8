//! Shared by the tests and the example: a key-value state, an in-memory log store (test
//! only: the log is not durable; the snapshots are the adapter's) and a network over tokio
//! channels between in-process nodes.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::{self, Read, Write};
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex};

use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    BasicNode, Entry, LogId, Raft, RaftLogReader, RaftNetwork, RaftNetworkFactory, StorageError,
    Vote,
};
use serde::{Deserialize, Serialize};
use snapseal_openraft::{SealOptions, SealedData, SealedState};
use snapseal_persist::SigningKey;
use tokio::sync::{mpsc, oneshot};

/// Set `key` to `value`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Put {
    pub key: String,
    pub value: String,
}

openraft::declare_raft_types!(
    pub Cfg: D = Put, R = Option<String>, SnapshotData = SealedData,
);

pub type NodeId = u64;

/// The key-value state: a sorted map, serialised as JSON lines of (key, value).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kv(pub BTreeMap<String, String>);

impl SealedState<Cfg> for Kv {
    fn apply(&mut self, _: &LogId<NodeId>, data: &Put) -> Option<String> {
        self.0.insert(data.key.clone(), data.value.clone())
    }

    fn no_data_response(&self, _: &LogId<NodeId>) -> Option<String> {
        None
    }

    fn serialise(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut out = io::BufWriter::with_capacity(1 << 20, out);
        for (k, v) in &self.0 {
            serde_json::to_writer(&mut out, &(k, v))?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }

    fn restore(input: &mut dyn Read) -> io::Result<Self> {
        let mut map = BTreeMap::new();
        for line in io::BufRead::lines(io::BufReader::new(input)) {
            let (k, v): (String, String) = serde_json::from_str(&line?)?;
            map.insert(k, v);
        }
        Ok(Kv(map))
    }
}

/// Node `id`'s key; every node trusts all of `0..=max`.
pub fn key(id: NodeId) -> SigningKey {
    SigningKey::from_bytes(&[id as u8 + 1; 32])
}

pub fn options(id: NodeId, max: NodeId) -> SealOptions {
    SealOptions::new(key(id), (0..=max).map(|i| key(i).verifying_key()).collect())
}

/// Opens node `id`'s state machine from `dir`. After `Raft::shutdown` the previous one may
/// still be dropping (its last tasks end asynchronously, still owning the directory lock), so
/// a locked directory is retried for a while.
pub async fn reopen(
    dir: &std::path::Path,
    id: NodeId,
    max: NodeId,
) -> snapseal_openraft::SealedStateMachine<Cfg, Kv> {
    for _ in 0..200 {
        match snapseal_openraft::SealedStateMachine::open(dir, options(id, max)) {
            Ok(sm) => return sm,
            Err(snapseal_openraft::Error::Store(snapseal_persist::StoreError::Locked {
                ..
            })) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("opening {}: {e:?}", dir.display()),
        }
    }
    panic!("{} stayed locked", dir.display());
}

#[derive(Debug, Default)]
struct LogInner {
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    last_purged: Option<LogId<NodeId>>,
    log: BTreeMap<u64, Entry<Cfg>>,
}

/// An in-memory log. Clones share it, so a "restarted" node can be given the same log (as
/// if it had been on disk) while its state machine is rebuilt from the snapshot directory.
#[derive(Clone, Debug, Default)]
pub struct MemLog(Arc<Mutex<LogInner>>);

impl RaftLogReader<Cfg> for MemLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<Cfg>>, StorageError<NodeId>> {
        let inner = self.0.lock().unwrap();
        Ok(inner.log.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<Cfg> for MemLog {
    type LogReader = MemLog;

    async fn get_log_state(&mut self) -> Result<LogState<Cfg>, StorageError<NodeId>> {
        let inner = self.0.lock().unwrap();
        let last = inner.log.values().next_back().map(|e| e.log_id);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last.or(inner.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.0.lock().unwrap().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.0.lock().unwrap().vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        self.0.lock().unwrap().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.0.lock().unwrap().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<Cfg>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<Cfg>> + Send,
        I::IntoIter: Send,
    {
        {
            let mut inner = self.0.lock().unwrap();
            for e in entries {
                inner.log.insert(e.log_id.index, e);
            }
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.0.lock().unwrap();
        inner.log.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.0.lock().unwrap();
        inner.log = inner.log.split_off(&(log_id.index + 1));
        inner.last_purged = Some(log_id);
        Ok(())
    }
}

type Reply<T, E> = oneshot::Sender<Result<T, RaftError<NodeId, E>>>;

/// One request to a node, with where its answer goes.
enum Rpc {
    Append(
        AppendEntriesRequest<Cfg>,
        Reply<AppendEntriesResponse<NodeId>, openraft::error::Infallible>,
    ),
    Snapshot(
        InstallSnapshotRequest<Cfg>,
        Reply<InstallSnapshotResponse<NodeId>, InstallSnapshotError>,
    ),
    Vote(
        VoteRequest<NodeId>,
        Reply<VoteResponse<NodeId>, openraft::error::Infallible>,
    ),
}

/// Routes requests between in-process nodes over tokio channels.
#[derive(Clone, Default)]
pub struct Router {
    nodes: Arc<Mutex<BTreeMap<NodeId, mpsc::UnboundedSender<Rpc>>>>,
}

impl Router {
    /// Serves requests for node `id` with `raft` until [`remove`](Self::remove).
    pub fn serve(&self, id: NodeId, raft: Raft<Cfg>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.nodes.lock().unwrap().insert(id, tx);
        tokio::spawn(async move {
            while let Some(rpc) = rx.recv().await {
                let raft = raft.clone();
                // Each request on its own task: a snapshot chunk must not hold up votes.
                tokio::spawn(async move {
                    match rpc {
                        Rpc::Append(req, tx) => {
                            let _ = tx.send(raft.append_entries(req).await);
                        }
                        Rpc::Snapshot(req, tx) => {
                            let _ = tx.send(raft.install_snapshot(req).await);
                        }
                        Rpc::Vote(req, tx) => {
                            let _ = tx.send(raft.vote(req).await);
                        }
                    }
                });
            }
        });
    }

    /// Disconnects node `id`.
    pub fn remove(&self, id: NodeId) {
        self.nodes.lock().unwrap().remove(&id);
    }

    fn sender(&self, id: NodeId) -> Option<mpsc::UnboundedSender<Rpc>> {
        self.nodes.lock().unwrap().get(&id).cloned()
    }
}

/// A connection to one node.
pub struct Conn {
    target: NodeId,
    router: Router,
}

fn unreachable(what: &str) -> Unreachable {
    Unreachable::new(&io::Error::new(
        io::ErrorKind::NotConnected,
        what.to_string(),
    ))
}

impl Conn {
    async fn call<T, E>(
        &self,
        make: impl FnOnce(Reply<T, E>) -> Rpc,
    ) -> Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        E: std::error::Error,
    {
        let tx = self
            .router
            .sender(self.target)
            .ok_or_else(|| RPCError::Unreachable(unreachable("node not connected")))?;
        let (reply, rx) = oneshot::channel();
        tx.send(make(reply))
            .map_err(|_| RPCError::Unreachable(unreachable("node gone")))?;
        match rx.await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            Err(_) => Err(RPCError::Unreachable(unreachable(
                "node dropped the request",
            ))),
        }
    }
}

impl RaftNetwork<Cfg> for Conn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Cfg>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(|tx| Rpc::Append(rpc, tx)).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<Cfg>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(|tx| Rpc::Snapshot(rpc, tx)).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(|tx| Rpc::Vote(rpc, tx)).await
    }
}

impl RaftNetworkFactory<Cfg> for Router {
    type Network = Conn;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Conn {
        Conn {
            target,
            router: self.clone(),
        }
    }
}
