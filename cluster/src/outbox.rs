//! Shipping: each snapshot the node builds is copied into DIR/outbox, a snapseal store of
//! its own, and a task on the node's runtime ships that store with snapseal-ship.
//!
//! Why a second store: snapseal-ship's `Shipper` shares the store it ships (`Arc<SnapshotStore>`,
//! for holds against retention), and `SealedStateMachine` lends its store only by reference
//! (the store holds the directory lock, which must go with the machine), while openraft owns
//! the machine. So the built file is ingested into the outbox: verified again, committed with
//! the crash-safe sequence, retained like any snapseal store. It costs one copy per snapshot.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use snapseal_openraft::SealedData;
use snapseal_persist::fs::RealFs;
use snapseal_persist::{ErrorChain, SnapshotStore, StoreOptions};
use snapseal_ship::{describe, Remote, ShipConfig, Shipper};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// Largest snapshot file copied into the outbox.
const MAX_SNAPSHOT: u64 = 1 << 40;

/// Committed snapshots the outbox keeps (the shipper holds unshipped ones beyond this).
const OUTBOX_KEEP: usize = 3;

/// A pass at least this often while snapshots may be waiting.
const RETRY_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The outbox: where built snapshots wait for the shipper.
#[derive(Clone)]
pub(crate) struct Outbox {
    store: Arc<SnapshotStore>,
    wake: mpsc::Sender<()>,
    /// Snapshots copied in.
    pub(crate) taken: Arc<AtomicU64>,
}

impl Outbox {
    /// Copies a built snapshot's committed file into the outbox (verified on the way) and
    /// wakes the shipper. Blocking. A failure is logged: it costs this shipment only.
    pub(crate) fn take(&self, data: &SealedData) {
        let Some(file) = data.file() else {
            warn!("a built snapshot could not be opened for the outbox");
            return;
        };
        match self.store.ingest(&mut file.file_reader(), MAX_SNAPSHOT) {
            Ok(ingested) => {
                self.taken.fetch_add(1, Ordering::Relaxed);
                info!(name = %ingested.name(), "snapshot in the outbox");
                // A pass already queued ships this one too.
                let _ = self.wake.try_send(());
            }
            Err(e) => warn!(error = %ErrorChain(&e), "snapshot not copied to the outbox"),
        }
    }
}

/// Opens the outbox store at `dir` with `options`, and the shipper for it as node `node`.
/// The returned receiver wakes the shipping task.
pub(crate) fn open(
    dir: &Path,
    mut options: StoreOptions,
    remote: Arc<Remote>,
    node: &str,
) -> anyhow::Result<(Outbox, Arc<Shipper>, mpsc::Receiver<()>)> {
    options.keep_last = OUTBOX_KEEP;
    let store = Arc::new(
        SnapshotStore::open(Arc::new(RealFs), dir, options)
            .with_context(|| format!("opening the outbox {}", dir.display()))?,
    );
    let shipper = Shipper::new(remote, Arc::clone(&store), ShipConfig::new(node))
        .map_err(|e| anyhow::anyhow!("{}", describe(&e)))?;
    let (wake, woken) = mpsc::channel(1);
    Ok((
        Outbox {
            store,
            wake,
            taken: Arc::new(AtomicU64::new(0)),
        },
        Arc::new(shipper),
        woken,
    ))
}

/// The shipping task: a pass at start (whatever a previous run left), then one per wake-up,
/// and every [`RETRY_EVERY`], until the outbox is dropped. Passes run on the node's runtime (`Shipper::ship`).
pub(crate) async fn ship_loop(shipper: Arc<Shipper>, mut woken: mpsc::Receiver<()>) {
    loop {
        match shipper.ship().await {
            Ok(report) if !report.shipped.is_empty() => {
                info!(
                    shipped = report.shipped.len(),
                    bytes = report.bytes,
                    "snapshots shipped"
                );
            }
            Ok(_) => {}
            Err(e) => warn!(error = %describe(&e), "shipping pass failed"),
        }
        // Also a pass now and then, to retry what a failed pass left.
        tokio::select! {
            w = woken.recv() => if w.is_none() { return },
            () = tokio::time::sleep(RETRY_EVERY) => {}
        }
    }
}
