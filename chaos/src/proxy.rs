//! Loopback proxies between nodes: one TCP forwarder per ordered pair (i→j), through which
//! node i reaches node j's Raft endpoint (node i's routes file names the proxy's address for
//! j). Its mode makes the link work, stall, refuse or lag; switching the mode cuts every open
//! connection, so a partition takes effect at once and a heal starts from fresh connections.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What a link does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Forwards both ways.
    Pass,
    /// Accepts, then neither reads nor forwards (the peer's requests time out).
    Stall,
    /// Accepts and closes at once (the peer sees a connection reset/closed).
    Refuse,
    /// Forwards, each chunk held back this many milliseconds.
    Delay(u64),
}

/// One forwarder, i→j.
struct Link {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    task: JoinHandle<()>,
}

impl Link {
    async fn start(target: SocketAddr) -> Result<Link> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a proxy on loopback")?;
        let addr = listener.local_addr().context("proxy address")?;
        let (mode, watcher) = watch::channel(Mode::Pass);
        let task = tokio::spawn(accept_loop(listener, target, watcher));
        Ok(Link { addr, mode, task })
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, mode: watch::Receiver<Mode>) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            // EMFILE and the like: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(serve(inbound, target, mode.clone()));
    }
}

/// One connection, until it ends or the mode changes.
async fn serve(inbound: TcpStream, target: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let current = *mode.borrow_and_update();
    let work = async move {
        match current {
            Mode::Refuse => {}
            Mode::Stall => {
                // Hold the socket open, unread, until the mode changes (the select below).
                std::future::pending::<()>().await;
            }
            Mode::Pass | Mode::Delay(_) => {
                let delay = match current {
                    Mode::Delay(ms) => Duration::from_millis(ms),
                    _ => Duration::ZERO,
                };
                let Ok(Ok(outbound)) =
                    tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(target)).await
                else {
                    return;
                };
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::select! {
                    _ = pipe(ri, wo, delay) => {}
                    _ = pipe(ro, wi, delay) => {}
                }
            }
        }
    };
    tokio::select! {
        _ = work => {}
        _ = mode.changed() => {}
    }
}

/// Copies `from` to `to`, holding each chunk back `delay`.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Every link between the nodes, and each node's routes file.
pub(crate) struct Mesh {
    dir: PathBuf,
    /// Node id → its Raft/HTTP address.
    nodes: BTreeMap<u64, SocketAddr>,
    links: BTreeMap<(u64, u64), Link>,
}

impl Mesh {
    /// An empty mesh whose routes files live in `dir`.
    pub(crate) fn new(dir: &Path) -> Mesh {
        Mesh {
            dir: dir.to_path_buf(),
            nodes: BTreeMap::new(),
            links: BTreeMap::new(),
        }
    }

    /// Node `id`'s routes file.
    pub(crate) fn routes_file(&self, id: u64) -> PathBuf {
        self.dir.join(format!("routes-{id}.json"))
    }

    /// Adds node `id` at `addr`: links to and from every node, and every routes file
    /// rewritten.
    pub(crate) async fn add(&mut self, id: u64, addr: SocketAddr) -> Result<()> {
        self.nodes.insert(id, addr);
        let others: Vec<(u64, SocketAddr)> = self
            .nodes
            .iter()
            .filter(|(&j, _)| j != id)
            .map(|(&j, &a)| (j, a))
            .collect();
        for (j, a) in others {
            self.links.insert((id, j), Link::start(a).await?);
            self.links.insert((j, id), Link::start(addr).await?);
        }
        self.write_routes()
    }

    /// Drops node `id` and its links (a removed member).
    pub(crate) fn remove(&mut self, id: u64) -> Result<()> {
        self.nodes.remove(&id);
        self.links.retain(|&(i, j), _| i != id && j != id);
        self.write_routes()
    }

    /// Sets the link i→j (no-op for a pair without a link).
    pub(crate) fn set(&self, from: u64, to: u64, mode: Mode) {
        if let Some(link) = self.links.get(&(from, to)) {
            link.mode.send_replace(mode);
        }
    }

    /// Sets every link to and from `id`.
    pub(crate) fn isolate(&self, id: u64, mode: Mode) {
        for (&(i, j), link) in &self.links {
            if i == id || j == id {
                link.mode.send_replace(mode);
            }
        }
    }

    /// Sets every link between a node of `a` and one of `b`, both ways.
    pub(crate) fn split(&self, a: &[u64], b: &[u64], mode: Mode) {
        for &i in a {
            for &j in b {
                self.set(i, j, mode);
                self.set(j, i, mode);
            }
        }
    }

    /// Every link back to `Pass`.
    pub(crate) fn heal(&self) {
        for link in self.links.values() {
            if *link.mode.borrow() != Mode::Pass {
                link.mode.send_replace(Mode::Pass);
            }
        }
    }

    /// Rewrites each node's routes file atomically (a temporary file, then a rename): the node
    /// re-reads it when its mtime changes and must never see half a file.
    fn write_routes(&self) -> Result<()> {
        for &i in self.nodes.keys() {
            let routes: BTreeMap<String, String> = self
                .links
                .iter()
                .filter(|(&(from, _), _)| from == i)
                .map(|(&(_, to), link)| (to.to_string(), link.addr.to_string()))
                .collect();
            let json = serde_json::to_vec_pretty(&routes).context("routes as JSON")?;
            let path = self.routes_file(i);
            let tmp = self.dir.join(format!(".routes-{i}.json.tmp"));
            std::fs::write(&tmp, json).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &path)
                .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server; returns its address.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn roundtrip(addr: SocketAddr) -> Option<Vec<u8>> {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(b"ping").await.ok()?;
        let mut buf = [0u8; 4];
        tokio::time::timeout(Duration::from_millis(500), s.read_exact(&mut buf))
            .await
            .ok()?
            .ok()?;
        Some(buf.to_vec())
    }

    #[tokio::test]
    async fn a_link_forwards_stalls_refuses_and_heals() {
        let target = echo().await;
        let dir = tempfile::tempdir().unwrap();
        let mut mesh = Mesh::new(dir.path());
        mesh.add(1, "127.0.0.1:1".parse().unwrap()).await.unwrap();
        mesh.add(2, target).await.unwrap();
        let routes: BTreeMap<String, String> =
            serde_json::from_slice(&std::fs::read(mesh.routes_file(1)).unwrap()).unwrap();
        let via: SocketAddr = routes["2"].parse().unwrap();
        assert_eq!(roundtrip(via).await.as_deref(), Some(&b"ping"[..]));

        mesh.set(1, 2, Mode::Stall);
        assert_eq!(roundtrip(via).await, None);
        mesh.set(1, 2, Mode::Refuse);
        assert_eq!(roundtrip(via).await, None);
        mesh.set(1, 2, Mode::Delay(100));
        let started = std::time::Instant::now();
        assert_eq!(roundtrip(via).await.as_deref(), Some(&b"ping"[..]));
        assert!(started.elapsed() >= Duration::from_millis(200));
        mesh.heal();
        assert_eq!(roundtrip(via).await.as_deref(), Some(&b"ping"[..]));
    }

    #[tokio::test]
    async fn switching_the_mode_cuts_open_connections() {
        let target = echo().await;
        let dir = tempfile::tempdir().unwrap();
        let mut mesh = Mesh::new(dir.path());
        mesh.add(1, "127.0.0.1:1".parse().unwrap()).await.unwrap();
        mesh.add(2, target).await.unwrap();
        let via = mesh.links[&(1, 2)].addr;
        let mut s = TcpStream::connect(via).await.unwrap();
        s.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.unwrap();
        mesh.isolate(2, Mode::Stall);
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    }
}
