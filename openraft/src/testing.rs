//! An in-memory Raft log and an in-process network (feature `testing`): enough to run an
//! openraft cluster in one process around [`SealedStateMachine`](crate::SealedStateMachine)s,
//! as the `openraft_kv` example and the crate's tests do. Neither is for production: the log
//! is not durable (the snapshots are the adapter's, and are), and the network is tokio
//! channels. A real node brings its own log store and network.
//!
//! They are generic over the type config, so one copy serves every state type (openraft 0.9
//! publishes none for a config of the user's).

use std::collections::BTreeMap;
use std::fmt::{self, Debug};
use std::io;
use std::ops::RangeBounds;
use std::sync::Arc;

use openraft::error::{
    Infallible, InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    Entry, LogId, OptionalSend, Raft, RaftLogReader, RaftNetwork, RaftNetworkFactory,
    RaftTypeConfig, StorageError, Vote,
};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::SealedData;

struct LogInner<C: RaftTypeConfig> {
    vote: Option<Vote<C::NodeId>>,
    committed: Option<LogId<C::NodeId>>,
    last_purged: Option<LogId<C::NodeId>>,
    log: BTreeMap<u64, Entry<C>>,
}

/// An in-memory Raft log. Clones share it, so a "restarted" node can be given the same log (as
/// if it had been on disk) while its state machine is rebuilt from the snapshot directory.
pub struct MemLog<C: RaftTypeConfig> {
    inner: Arc<Mutex<LogInner<C>>>,
}

impl<C: RaftTypeConfig> Default for MemLog<C> {
    fn default() -> Self {
        MemLog {
            inner: Arc::new(Mutex::new(LogInner {
                vote: None,
                committed: None,
                last_purged: None,
                log: BTreeMap::new(),
            })),
        }
    }
}

impl<C: RaftTypeConfig> Clone for MemLog<C> {
    fn clone(&self) -> Self {
        MemLog {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: RaftTypeConfig> Debug for MemLog<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemLog")
            .field("entries", &self.inner.lock().log.len())
            .finish_non_exhaustive()
    }
}

impl<C> RaftLogReader<C> for MemLog<C>
where
    C: RaftTypeConfig<Entry = Entry<C>>,
    C::D: Clone,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<C>>, StorageError<C::NodeId>> {
        let inner = self.inner.lock();
        Ok(inner.log.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl<C> RaftLogStorage<C> for MemLog<C>
where
    C: RaftTypeConfig<Entry = Entry<C>>,
    C::D: Clone,
{
    type LogReader = MemLog<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        let inner = self.inner.lock();
        let last = inner.log.values().next_back().map(|e| e.log_id.clone());
        Ok(LogState {
            last_purged_log_id: inner.last_purged.clone(),
            last_log_id: last.or_else(|| inner.last_purged.clone()),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.inner.lock().vote = Some(vote.clone());
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self.inner.lock().vote.clone())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        self.inner.lock().committed = committed;
        Ok(())
    }

    async fn read_committed(
        &mut self,
    ) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self.inner.lock().committed.clone())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = Entry<C>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        {
            let mut inner = self.inner.lock();
            for e in entries {
                inner.log.insert(e.log_id.index, e);
            }
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.inner.lock().log.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let mut inner = self.inner.lock();
        inner.log = inner.log.split_off(&(log_id.index + 1));
        inner.last_purged = Some(log_id);
        Ok(())
    }
}

type Reply<C, T, E> = oneshot::Sender<Result<T, RaftError<<C as RaftTypeConfig>::NodeId, E>>>;

/// One request to a node, with where its answer goes.
enum Rpc<C: RaftTypeConfig> {
    Append(
        AppendEntriesRequest<C>,
        Reply<C, AppendEntriesResponse<C::NodeId>, Infallible>,
    ),
    Snapshot(
        InstallSnapshotRequest<C>,
        Reply<C, InstallSnapshotResponse<C::NodeId>, InstallSnapshotError>,
    ),
    Vote(
        VoteRequest<C::NodeId>,
        Reply<C, VoteResponse<C::NodeId>, Infallible>,
    ),
}

/// Where each served node takes its requests.
type Routes<C> = BTreeMap<<C as RaftTypeConfig>::NodeId, mpsc::UnboundedSender<Rpc<C>>>;

/// Routes requests between in-process nodes over tokio channels; it is every node's
/// network factory (`Raft::new(id, config, router.clone(), ...)`).
pub struct Router<C: RaftTypeConfig> {
    nodes: Arc<Mutex<Routes<C>>>,
}

impl<C: RaftTypeConfig> Default for Router<C> {
    fn default() -> Self {
        Router {
            nodes: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }
}

impl<C: RaftTypeConfig> Clone for Router<C> {
    fn clone(&self) -> Self {
        Router {
            nodes: Arc::clone(&self.nodes),
        }
    }
}

impl<C: RaftTypeConfig> Debug for Router<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("nodes", &self.nodes.lock().keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<C: RaftTypeConfig<SnapshotData = SealedData>> Router<C> {
    /// Serves requests for node `id` with `raft` until [`remove`](Self::remove). Needs a
    /// tokio runtime.
    pub fn serve(&self, id: C::NodeId, raft: Raft<C>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Rpc<C>>();
        self.nodes.lock().insert(id, tx);
        tokio::spawn(async move {
            while let Some(rpc) = rx.recv().await {
                let raft = raft.clone();
                // Each request on its own task: a snapshot chunk must not hold up votes.
                tokio::spawn(async move {
                    // A requester that gave up dropped its receiver: nobody to answer.
                    match rpc {
                        Rpc::Append(req, tx) => drop(tx.send(raft.append_entries(req).await)),
                        Rpc::Snapshot(req, tx) => drop(tx.send(raft.install_snapshot(req).await)),
                        Rpc::Vote(req, tx) => drop(tx.send(raft.vote(req).await)),
                    }
                });
            }
        });
    }
}

impl<C: RaftTypeConfig> Router<C> {
    /// Disconnects node `id`: requests to it fail as unreachable, and its serving task ends
    /// (releasing its `Raft` handle).
    pub fn remove(&self, id: C::NodeId) {
        self.nodes.lock().remove(&id);
    }

    fn sender(&self, id: &C::NodeId) -> Option<mpsc::UnboundedSender<Rpc<C>>> {
        self.nodes.lock().get(id).cloned()
    }
}

/// A connection to one node, made by the [`Router`].
pub struct Conn<C: RaftTypeConfig> {
    target: C::NodeId,
    router: Router<C>,
}

impl<C: RaftTypeConfig> Debug for Conn<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

fn unreachable(what: &str) -> Unreachable {
    Unreachable::new(&io::Error::new(io::ErrorKind::NotConnected, what))
}

impl<C: RaftTypeConfig> Conn<C> {
    async fn call<T, E>(
        &self,
        make: impl FnOnce(Reply<C, T, E>) -> Rpc<C>,
    ) -> Result<T, RPCError<C::NodeId, C::Node, RaftError<C::NodeId, E>>>
    where
        E: std::error::Error,
    {
        let tx = self
            .router
            .sender(&self.target)
            .ok_or_else(|| RPCError::Unreachable(unreachable("node not connected")))?;
        let (reply, rx) = oneshot::channel();
        tx.send(make(reply))
            .map_err(|_| RPCError::Unreachable(unreachable("node gone")))?;
        match rx.await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(
                self.target.clone(),
                e,
            ))),
            Err(_) => Err(RPCError::Unreachable(unreachable(
                "node dropped the request",
            ))),
        }
    }
}

impl<C: RaftTypeConfig> RaftNetwork<C> for Conn<C> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<C::NodeId>, RPCError<C::NodeId, C::Node, RaftError<C::NodeId>>>
    {
        self.call(|tx| Rpc::Append(rpc, tx)).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<C>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<C::NodeId>,
        RPCError<C::NodeId, C::Node, RaftError<C::NodeId, InstallSnapshotError>>,
    > {
        self.call(|tx| Rpc::Snapshot(rpc, tx)).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<C::NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<C::NodeId>, RPCError<C::NodeId, C::Node, RaftError<C::NodeId>>> {
        self.call(|tx| Rpc::Vote(rpc, tx)).await
    }
}

impl<C: RaftTypeConfig> RaftNetworkFactory<C> for Router<C> {
    type Network = Conn<C>;

    async fn new_client(&mut self, target: C::NodeId, _node: &C::Node) -> Conn<C> {
        Conn {
            target,
            router: self.clone(),
        }
    }
}
