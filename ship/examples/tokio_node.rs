//! A node that runs tokio ships its snapshots with the async API, and a fresh node restores
//! from the remote: `cargo run -p snapseal-ship --example tokio_node`.
//!
//! Everything runs on the node's own runtime — no private runtime, no `block_on` inside it:
//! a shipping task wakes after each commit (coalesced through a channel of one) and `.await`s
//! `Shipper::ship`; the fresh node `.await`s `restore_async` into its empty store and checks
//! that the snapshot it got is the one the first node committed last, byte for byte. The
//! remote is a `file://` directory (an `s3://bucket/prefix` URL needs snapseal-ship's `s3`
//! feature and nothing else changes). `cargo test -p snapseal-ship --example tokio_node` runs
//! it as a test, so it cannot rot.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use snapseal_persist::fs::RealFs;
use snapseal_persist::receipt::{statement_receipt, Ed25519Verifier};
use snapseal_persist::{BodyBuilder, SigningKey, SnapshotName, SnapshotStore, StoreOptions};
use snapseal_ship::{restore_async, Remote, RemoteOptions, RestoreOptions, ShipConfig, Shipper};
use tokio::sync::mpsc;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Commits `state` as snapshot `idx`, proven at `idx + 1` by a statement `key` signs: what a
/// node's Snapshotter does once the ledger committed the evidence.
fn commit(store: &SnapshotStore, key: &SigningKey, idx: u64, state: &[u8]) -> Result<SnapshotName> {
    let mut body = BodyBuilder::new(None)?;
    body.write_all(state)?;
    let body = body.finish()?;
    let receipt = statement_receipt(key, &body.claims(idx), idx + 1, None)?;
    Ok(body.commit(store, idx, idx + 1, &receipt)?.name)
}

/// Store options trusting statements signed by `key`.
fn trusting(key: &SigningKey) -> StoreOptions {
    let verifier = Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![key.verifying_key()]);
    StoreOptions::new(Arc::new(verifier))
}

/// The node's shipping task: a pass on the node's runtime for each commit it hears of.
async fn ship_after_commits(shipper: Arc<Shipper>, mut commits: mpsc::Receiver<()>) -> Result<()> {
    while commits.recv().await.is_some() {
        let report = shipper.ship().await?;
        let names: Vec<String> = report.shipped.iter().map(|n| n.to_string()).collect();
        println!("shipped [{}]", names.join(", "));
    }
    Ok(())
}

/// The node: commits five snapshots while a shipping task ships them; returns the last one's
/// name once everything is on the remote.
async fn run_node(dir: &Path, url: &str, key: &SigningKey) -> Result<SnapshotName> {
    let store = Arc::new(SnapshotStore::open(Arc::new(RealFs), dir, trusting(key))?);
    let remote = Arc::new(Remote::open(url, &RemoteOptions::default())?);
    let shipper = Arc::new(Shipper::new(
        remote,
        Arc::clone(&store),
        ShipConfig::new("node-1"),
    )?);

    // A pass after each commit; a commit while a pass is queued adds nothing (capacity 1).
    let (committed, commits) = mpsc::channel(1);
    let shipping = tokio::spawn(ship_after_commits(Arc::clone(&shipper), commits));
    let mut last = None;
    for idx in (10..=50).step_by(10) {
        let state = format!("the state at {idx}");
        last = Some(commit(&store, key, idx, state.as_bytes())?);
        let _ = committed.try_send(());
        tokio::task::yield_now().await;
    }
    // No more commits: the task runs the pass still queued, if any, and ends.
    drop(committed);
    shipping.await??;
    assert_eq!(shipper.stats().queue_depth, 0, "everything shipped");
    last.ok_or_else(|| "nothing committed".into())
}

/// A fresh node (an empty store directory) restores the newest snapshot from the remote.
async fn run_fresh_node(dir: &Path, url: &str, key: &SigningKey) -> Result<SnapshotName> {
    let store = SnapshotStore::open(Arc::new(RealFs), dir, trusting(key))?;
    assert!(store.latest()?.is_none(), "a fresh node has no snapshot");
    let remote = Remote::open(url, &RemoteOptions::default())?;
    let restored = restore_async(&remote, &store, &RestoreOptions::default()).await?;
    println!("restored {} from {}", restored.name, restored.node);
    // `latest` verifies the file again (receipt, claims, body digest) before returning it.
    let latest = store.latest()?.ok_or("restored nothing")?;
    assert_eq!(*latest.name(), restored.name);
    Ok(restored.name)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let key = SigningKey::from_bytes(&[7; 32]);
    let (node_dir, fresh_dir, remote_dir) = (
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    );
    let url = format!("file://{}", remote_dir.path().display());

    let last = run_node(node_dir.path(), &url, &key).await?;
    let restored = run_fresh_node(fresh_dir.path(), &url, &key).await?;
    assert_eq!(restored, last, "the fresh node has the newest snapshot");
    let file = last.file_name();
    let (shipped, got) = (
        std::fs::read(node_dir.path().join(&file))?,
        std::fs::read(fresh_dir.path().join(&file))?,
    );
    assert_eq!(shipped, got, "byte for byte");
    println!("{file}: {} bytes, the same on both nodes", got.len());
    Ok(())
}

#[cfg(test)]
#[test]
fn a_tokio_node_ships_and_a_fresh_node_restores_the_newest_snapshot() {
    main().unwrap();
}
