//! `snapseal-cluster node`: one KV node — its durable log, its sealed state machine, its
//! shipping, its HTTP server — from start to a clean stop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use openraft::{BasicNode, Config, Raft, SnapshotPolicy};
use snapseal_openraft::{SealOptions, SealedStateMachine};
use snapseal_persist::fs::RealFs;
use snapseal_persist::receipt::{ReceiptVerifier, Schemes, StatementScheme};
use snapseal_persist::{SigningKey, SnapshotStore, StoreOptions};
use snapseal_ship::{describe, restore_async, Remote, RemoteOptions, RestoreOptions, ShipError};
use tracing::{error, info, warn};

use crate::journal::LogStore;
use crate::kv::{Cfg, Kv, NodeId};
use crate::machine::{Counts, Machine};
use crate::network::{Network, Routes};
use crate::{api, outbox};

/// The key seed used when `--key-seed` is not given. A TEST-ONLY choice: every node of every
/// cluster started without the flag shares this published key, so anyone can sign snapshots
/// it trusts. A real deployment passes its own secret seed.
pub(crate) const DEFAULT_KEY_SEED: &str =
    "5ea15ea15ea15ea15ea15ea15ea15ea15ea15ea15ea15ea15ea15ea15ea15ea1";

/// What a node is started with (the `node` command's flags).
#[derive(Debug, clap::Args)]
pub(crate) struct NodeArgs {
    /// This node's id.
    #[arg(long)]
    pub(crate) id: NodeId,
    /// Address to serve on (the client API, admin, and Raft RPCs); also this node's address in
    /// the membership.
    #[arg(long)]
    pub(crate) listen: String,
    /// The node's directory: raft/ (log), snapshots/ (snapseal store), outbox/ (to ship).
    #[arg(long)]
    pub(crate) dir: PathBuf,
    /// Object storage for snapshots: file:///path or s3://bucket/prefix.
    #[arg(long)]
    pub(crate) remote: String,
    /// A remote option `key=value` (e.g. the S3 endpoint), repeatable.
    #[arg(long = "remote-opt")]
    pub(crate) remote_opts: Vec<String>,
    /// JSON file mapping peer ids to host:port, overriding where Raft RPCs to a peer go; re-read when
    /// it changes.
    #[arg(long)]
    pub(crate) routes: Option<PathBuf>,
    /// Initialise a new cluster with these voters: `1=ADDR,2=ADDR,...` (first start only).
    #[arg(long)]
    pub(crate) bootstrap: Option<String>,
    /// Before starting on a new directory, restore the newest verified snapshot of any node
    /// from the remote.
    #[arg(long)]
    pub(crate) restore: bool,
    /// Snapshot after this many log entries since the last one.
    #[arg(long, default_value_t = 100)]
    pub(crate) snapshot_every: u64,
    /// Log entries kept behind a snapshot (older ones are purged).
    #[arg(long, default_value_t = 50)]
    pub(crate) keep_logs: u64,
    /// The cluster's shared Ed25519 signing key seed, 64 hex digits (default: a fixed,
    /// published test seed).
    #[arg(long)]
    pub(crate) key_seed: Option<String>,
    /// Stop as on SIGTERM once standard input reaches its end: a parent that starts the node
    /// with a pipe on its stdin (`up`, the chaos driver) takes it down with it, even when the
    /// parent is killed with SIGKILL.
    #[arg(long)]
    pub(crate) stop_with_stdin: bool,
}

/// The signing key from a 64-hex-digit seed.
fn signing_key(seed: &str) -> anyhow::Result<SigningKey> {
    let seed = seed.trim();
    if seed.len() != 64 || !seed.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("--key-seed: expected 64 hex digits");
    }
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&seed[2 * i..2 * i + 2], 16)?;
    }
    Ok(SigningKey::from_bytes(&bytes))
}

/// `1=ADDR,2=ADDR` as a voter map.
fn parse_bootstrap(spec: &str) -> anyhow::Result<BTreeMap<NodeId, BasicNode>> {
    let mut voters = BTreeMap::new();
    for part in spec.split(',').filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| anyhow!("--bootstrap: {part:?} is not ID=ADDR"))?;
        let id: NodeId = id
            .trim()
            .parse()
            .with_context(|| format!("--bootstrap: id {id:?}"))?;
        voters.insert(
            id,
            BasicNode {
                addr: addr.trim().to_string(),
            },
        );
    }
    if voters.is_empty() {
        bail!("--bootstrap: no voters");
    }
    Ok(voters)
}

fn remote_options(opts: &[String]) -> anyhow::Result<RemoteOptions> {
    let mut options = RemoteOptions::default();
    for o in opts {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| anyhow!("--remote-opt: {o:?} is not KEY=VALUE"))?;
        options = options.with_option(k, v);
    }
    Ok(options)
}

/// The store options of every snapseal store of the node: trust the cluster key's signed
/// statements (the adapter's receipts), as `SealedStateMachine` does.
fn store_options(key: &SigningKey) -> StoreOptions {
    let verifier: Arc<dyn ReceiptVerifier> =
        Arc::new(Schemes::new().with(Arc::new(StatementScheme::new(vec![key.verifying_key()]))));
    StoreOptions::new(verifier)
}

/// The Raft timing and snapshot policy.
fn raft_config(args: &NodeArgs) -> anyhow::Result<Arc<Config>> {
    Ok(Arc::new(
        Config {
            cluster_name: "snapseal-cluster".into(),
            heartbeat_interval: 100,
            election_timeout_min: 500,
            election_timeout_max: 1000,
            install_snapshot_timeout: 3000,
            // JSON carries a chunk at about 4 bytes per byte.
            snapshot_max_chunk_size: 256 << 10,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(args.snapshot_every),
            max_in_snapshot_log_to_keep: args.keep_logs,
            purge_batch_size: 1,
            ..Default::default()
        }
        .validate()?,
    ))
}

/// Restores the newest verified snapshot from the remote into the snapshot directory;
/// its snapseal index, or `None` when the remote holds none (a new node then starts empty
/// and gets the leader's snapshot).
async fn restore(
    remote: &Remote,
    snapshots: &Path,
    key: &SigningKey,
) -> anyhow::Result<Option<u64>> {
    let store = SnapshotStore::open(Arc::new(RealFs), snapshots, store_options(key))
        .with_context(|| format!("opening {}", snapshots.display()))?;
    match restore_async(remote, &store, &RestoreOptions::default()).await {
        Ok(r) => {
            if !r.failed_locally.is_empty() {
                bail!(
                    "restoring from the remote: got {} from {}, but newer ones could not be stored here: {:?}",
                    r.name,
                    r.node,
                    r.failed_locally
                );
            }
            info!(name = %r.name, from = %r.node, passed_over = r.passed_over.len(), "restored from the remote");
            Ok(Some(r.name.idx))
        }
        Err(ShipError::NothingRestored {
            passed_over,
            failed_locally,
            ..
        }) if passed_over.is_empty() && failed_locally.is_empty() => {
            warn!("the remote holds no snapshot to restore");
            Ok(None)
        }
        Err(e) => Err(anyhow!("restoring from the remote: {}", describe(&e))),
    }
}

/// Opens the state machine on the snapshot directory (recovering its newest snapshot that
/// verifies).
fn open_machine(snapshots: &Path, key: &SigningKey) -> anyhow::Result<SealedStateMachine<Cfg, Kv>> {
    SealedStateMachine::open(
        snapshots,
        SealOptions::new(key.clone(), vec![key.verifying_key()]),
    )
    .with_context(|| format!("opening {}", snapshots.display()))
}

/// Why the recovered state cannot continue the log, if it cannot: it is older than the log's
/// purge point, so the entries between the two are nowhere on this node.
async fn behind_the_log(
    sm: &mut SealedStateMachine<Cfg, Kv>,
    log: &LogStore,
) -> anyhow::Result<Option<String>> {
    use openraft::storage::RaftStateMachine;
    let (applied, _) = sm.applied_state().await?;
    let applied = applied.map(|l| l.index);
    Ok(match log.purged() {
        Some(p) if applied.is_none_or(|a| a < p.index) => Some(format!(
            "the newest snapshot that verifies is at log index {applied:?}, the raft log is purged up to {}",
            p.index
        )),
        _ => None,
    })
}

/// The state machine on DIR/snapshots, and the snapseal index restored from the remote if
/// one was: with `--restore` on a new node (an empty log), and whenever the newest local
/// snapshot that verifies is older than the log's purge point.
async fn open_state(
    args: &NodeArgs,
    remote: &Remote,
    key: &SigningKey,
    log: &LogStore,
) -> anyhow::Result<(SealedStateMachine<Cfg, Kv>, Option<u64>)> {
    let snapshots = args.dir.join("snapshots");
    let mut restored = match (args.restore, log.is_empty()) {
        (true, true) => restore(remote, &snapshots, key).await?,
        (true, false) => {
            info!("--restore ignored: this node has a raft log already");
            None
        }
        (false, _) => None,
    };
    let mut sm = open_machine(&snapshots, key)?;
    if let Some(gap) = behind_the_log(&mut sm, log).await? {
        // The newest snapshot here did not verify and recovery fell back to an older one,
        // but the log was purged up to the newer one: the entries in between are gone here,
        // and openraft refuses to start on such a state. The remote may hold the snapshot.
        warn!(%gap, "the local snapshot is older than the raft log's purge point; restoring from the remote");
        let released = sm.released();
        drop(sm);
        released.wait().await;
        restored = restore(remote, &snapshots, key).await?;
        sm = open_machine(&snapshots, key)?;
        if let Some(gap) = behind_the_log(&mut sm, log).await? {
            bail!(
                "{gap}, here and on the remote: the log entries in between are gone; wipe {} and rejoin it with --restore",
                args.dir.display()
            );
        }
    }
    Ok((sm, restored))
}

/// Runs node `args` until SIGTERM or SIGINT (then a clean stop, `Ok`), or a fatal error.
pub(crate) async fn run(args: NodeArgs) -> anyhow::Result<()> {
    if args.stop_with_stdin {
        stop_when_stdin_closes()?;
    }
    let key = signing_key(args.key_seed.as_deref().unwrap_or(DEFAULT_KEY_SEED))?;
    let config = raft_config(&args)?;
    if let Some(path) = args.remote.strip_prefix("file://") {
        std::fs::create_dir_all(path).with_context(|| format!("creating the remote {path}"))?;
    }
    let remote = Arc::new(
        Remote::open(&args.remote, &remote_options(&args.remote_opts)?)
            .map_err(|e| anyhow!("remote {}: {}", args.remote, describe(&e)))?,
    );
    let log = LogStore::open(&args.dir.join("raft"))
        .with_context(|| format!("opening the raft log in {}", args.dir.display()))?;
    let (sm, restored_index) = open_state(&args, &remote, &key, &log).await?;
    let released = sm.released();
    let (outbox, shipper, woken) = outbox::open(
        &args.dir.join("outbox"),
        store_options(&key),
        Arc::clone(&remote),
        &format!("n{}", args.id),
    )?;
    let shipping = tokio::spawn(outbox::ship_loop(Arc::clone(&shipper), woken));
    let counts = Arc::new(Counts::default());
    let machine = Machine::new(sm, Arc::clone(&counts), outbox).await?;
    let view = machine.view();
    // The snapseal name counts entries (log index + 1); the status reports the log index the
    // restored state is at, as recovered by the machine.
    let restored_index = match restored_index {
        Some(_) => view.read(|_, applied| applied).await,
        None => None,
    };
    let network = Network::new(Arc::new(Routes::new(args.routes.clone())))?;
    let raft = Raft::new(args.id, config, network, log, machine).await?;

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    info!(id = args.id, listen = %args.listen, "node serving");
    if let Some(spec) = &args.bootstrap {
        bootstrap(&raft, spec).await?;
    }
    let node = api::Node {
        id: args.id,
        raft: raft.clone(),
        view,
        counts,
        shipper,
        restored_index,
    };
    let fatal = tokio::spawn(watch_fatal(raft.clone()));
    axum::serve(listener, api::router(node))
        .with_graceful_shutdown(stop_signal())
        .await
        .context("serving HTTP")?;
    info!("stopping");
    fatal.abort();
    snapseal_openraft::shutdown(&raft, released)
        .await
        .map_err(|e| anyhow!("stopping raft: {e}"))?;
    shipping.abort();
    info!("stopped");
    Ok(())
}

/// Initialises the cluster unless this node already is.
async fn bootstrap(raft: &Raft<Cfg>, spec: &str) -> anyhow::Result<()> {
    let voters = parse_bootstrap(spec)?;
    if raft.is_initialized().await? {
        info!("--bootstrap ignored: this node is initialised already");
        return Ok(());
    }
    match raft.initialize(voters).await {
        Ok(()) => info!("cluster initialised"),
        Err(e) => info!(error = %e, "--bootstrap ignored"),
    }
    Ok(())
}

/// Raises SIGTERM in this process once standard input reaches its end (or fails), so the node
/// stops the way it does when told to. A plain thread, not a tokio task: the read blocks, and
/// the runtime must not wait for it when the node exits. Before the node installs its SIGTERM
/// handler (while it starts) the default action ends the process at once, which is as well:
/// whoever started it is gone.
fn stop_when_stdin_closes() -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("stdin-watch".into())
        .spawn(|| {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 256];
            loop {
                match std::io::Read::read(&mut stdin, &mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        warn!(error = %e, "reading standard input failed: stopping");
                        break;
                    }
                }
            }
            info!("standard input closed: stopping");
            if let Err(e) = nix::sys::signal::raise(nix::sys::signal::Signal::SIGTERM) {
                error!(error = %e, "cannot raise SIGTERM; stop the node with SIGKILL");
            }
        })
        .context("starting the standard input watcher")?;
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("cannot install signal handlers; stop the node with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Exits the process, non-zero with one line, when Raft stops on a fatal error (a storage
/// error such as a full disk on a log append): a node that cannot make its log durable must
/// not go on answering.
async fn watch_fatal(raft: Raft<Cfg>) {
    let mut metrics = raft.metrics();
    loop {
        if let Err(e) = &metrics.borrow().running_state {
            eprintln!("snapseal-cluster node: fatal: {e}");
            std::process::exit(2);
        }
        if metrics.changed().await.is_err() {
            eprintln!("snapseal-cluster node: fatal: raft stopped");
            std::process::exit(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_or_are_refused_with_a_reason() {
        assert!(signing_key(DEFAULT_KEY_SEED).is_ok());
        assert!(signing_key("12").is_err());
        let v = parse_bootstrap("1=127.0.0.1:1,2=127.0.0.1:2").unwrap();
        assert_eq!(v.len(), 2);
        assert!(parse_bootstrap("1:127.0.0.1:1").is_err());
        assert!(remote_options(&["endpoint=http://x".into()]).is_ok());
        assert!(remote_options(&["endpoint".into()]).is_err());
    }
}
