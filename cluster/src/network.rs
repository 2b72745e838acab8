//! The Raft transport: openraft's RPCs as JSON over HTTP (reqwest to the peers' axum
//! servers), each with a deadline, so a paused or cut-off peer costs a timeout, never a hang.
//! Where a peer is reached comes from the membership (`BasicNode::addr`) unless the routes
//! file says otherwise.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use snapseal_persist::internals::fs::{Expect, Untrusted};
use snapseal_persist::ErrorChain;
use tracing::{info, warn};

use crate::kv::{Cfg, NodeId};

/// Largest routes file read.
const MAX_ROUTES: u64 = 1 << 20;

/// Longest connect attempt to a peer (loopback: a refused or black-holed connect shows fast).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// A file's inode, size and mtime (seconds, nanoseconds): when any differs, it changed.
type Stamp = (u64, u64, i64, i64);

/// The `--routes` file: `{"<id>": "host:port", ...}`, re-read whenever it is replaced or
/// changed (its inode, size or mtime differ), so a driver can rewrite it atomically
/// (temporary file + rename) while the node runs.
#[derive(Debug)]
pub(crate) struct Routes {
    path: Option<PathBuf>,
    /// The file's identity when last read, and the routes it gave.
    cache: Mutex<(Option<Stamp>, BTreeMap<NodeId, String>)>,
}

impl Routes {
    /// Routes from `path` (none: the membership's addresses only).
    pub(crate) fn new(path: Option<PathBuf>) -> Routes {
        Routes {
            path,
            cache: Mutex::new((None, BTreeMap::new())),
        }
    }

    /// Where to send node `id`'s RPCs, if the routes file says.
    fn lookup(&self, id: NodeId) -> Option<String> {
        let path = self.path.as_ref()?;
        let mut cache = self.cache.lock();
        // A stat per RPC: a few microseconds, and a rewrite takes effect on the next RPC.
        let stamp = std::fs::metadata(path)
            .ok()
            .map(|m| (m.ino(), m.size(), m.mtime(), m.mtime_nsec()));
        if stamp.is_some() && stamp != cache.0 {
            cache.0 = stamp;
            match read_routes(path) {
                Ok(map) => {
                    info!(routes = ?map, "routes file read");
                    cache.1 = map;
                }
                // The last good routes stay in force until the file is fixed.
                Err(e) => warn!(file = %path.display(), error = %e, "routes file ignored"),
            }
        }
        cache.1.get(&id).cloned()
    }
}

fn read_routes(path: &std::path::Path) -> io::Result<BTreeMap<NodeId, String>> {
    let file = Untrusted::open_path(path, Expect::new("routes file", MAX_ROUTES))
        .map_err(|e| io::Error::other(ErrorChain(&e).to_string()))?;
    let bytes = file
        .read_all()
        .map_err(|e| io::Error::other(ErrorChain(&e).to_string()))?;
    let raw: BTreeMap<String, String> = serde_json::from_slice(&bytes)?;
    raw.into_iter()
        .map(|(k, v)| {
            k.parse::<NodeId>().map(|id| (id, v)).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("node id {k:?}: {e}"))
            })
        })
        .collect()
}

/// Makes a [`Peer`] per target; openraft's network factory.
#[derive(Clone, Debug)]
pub(crate) struct Network {
    client: reqwest::Client,
    routes: Arc<Routes>,
}

impl Network {
    /// A network reaching peers through `routes` where it names them.
    pub(crate) fn new(routes: Arc<Routes>) -> anyhow::Result<Network> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(10))
            .build()?;
        Ok(Network { client, routes })
    }
}

impl RaftNetworkFactory<Cfg> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        Peer {
            target,
            addr: node.addr.clone(),
            net: self.clone(),
        }
    }
}

/// One peer's end of the transport.
#[derive(Debug)]
pub(crate) struct Peer {
    target: NodeId,
    addr: String,
    net: Network,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl Peer {
    /// POSTs `req` to the peer's `/raft/<path>` within `ttl`; the body of the answer is the
    /// peer's `Result` as JSON.
    async fn call<Req, Resp, E>(&self, path: &str, req: &Req, ttl: Duration) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let addr = self
            .net
            .routes
            .lookup(self.target)
            .unwrap_or_else(|| self.addr.clone());
        let url = format!("http://{addr}/raft/{path}");
        let sent = self
            .net
            .client
            .post(&url)
            .timeout(ttl)
            .json(req)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(e) => return Err(RPCError::Network(NetworkError::new(&e))),
        };
        if !resp.status().is_success() {
            let e = io::Error::other(format!("{url}: HTTP {}", resp.status()));
            return Err(RPCError::Network(NetworkError::new(&e)));
        }
        match resp.json::<Result<Resp, RaftError<NodeId, E>>>().await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }
}

impl RaftNetwork<Cfg> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Cfg>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        self.call("append", &rpc, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<Cfg>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call("snapshot", &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        self.call("vote", &rpc, option.hard_ttl()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_routes_file_is_read_again_and_a_broken_one_keeps_the_last_good_routes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routes.json");
        let routes = Routes::new(Some(path.clone()));
        assert_eq!(routes.lookup(2), None, "no file: the membership's address");
        std::fs::write(dir.path().join("tmp"), r#"{"2": "127.0.0.1:9002"}"#).unwrap();
        std::fs::rename(dir.path().join("tmp"), &path).unwrap();
        assert_eq!(routes.lookup(2).as_deref(), Some("127.0.0.1:9002"));
        std::fs::write(
            dir.path().join("tmp"),
            r#"{"2": "127.0.0.1:9102", "3": "x:1"}"#,
        )
        .unwrap();
        std::fs::rename(dir.path().join("tmp"), &path).unwrap();
        assert_eq!(routes.lookup(2).as_deref(), Some("127.0.0.1:9102"));
        std::fs::write(dir.path().join("tmp"), "not json").unwrap();
        std::fs::rename(dir.path().join("tmp"), &path).unwrap();
        assert_eq!(routes.lookup(3).as_deref(), Some("x:1"));
    }
}
