//! The node's ledger and state on disk: a [`DiskLedger`] plus the KV map at its commit index.
//!
//! Memory is bounded by the key space, not the ledger's length: the map holds one value per
//! key, and a snapshot point the Snapshotter accepted keeps a copy of the map as of that
//! point until it is released (at most the points it tracks). Writes are applied to the map
//! when they commit, once the ledger made them durable (a failed commit leaves the map at the
//! ledger's commit index); captures only ever ask for committed points.
//!
//! Reopening ([`DiskKv::open`]) rebuilds the map without replaying the ledger from its start:
//! the newest snapshot that verifies gives the state at its index, and the committed txs
//! after it are replayed up to the ledger's commit index, from chunks the ledger verified
//! (docs/LEDGER.md). The snapshot is tied to the ledger first: the signature tx its receipt
//! proves against must be in the ledger, byte for byte, so a ledger of another history (one
//! whose chunks are all signed with the same key and link up among themselves) is refused
//! instead of replayed onto the snapshot's state.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use parking_lot::Mutex;
use snapseal_actors::{CaptureError, ProofSource, StateSource, StateView};
use snapseal_persist::receipt::SignedRoot;
use snapseal_persist::Hash;

use crate::disk_ledger::DiskLedger;
use crate::ledger::TxKind;
use crate::node::{NodeLedger, KV_MAGIC};

/// The KV map: key to value.
pub type KvMap = BTreeMap<u64, Arc<[u8]>>;

#[derive(Debug, Default)]
struct KvInner {
    /// Every committed write applied, up to here.
    applied_idx: u64,
    map: KvMap,
    /// Accepted snapshot points, with the map as of the point once the commit passed it.
    kept: BTreeMap<u64, Option<Arc<KvMap>>>,
}

/// A [`DiskLedger`] and the KV state over it; the [`NodeLedger`] the demo runs on.
///
/// A node on the disk ledger, stopped and started again: the state comes back from the
/// ledger's verified chunks.
///
/// ```
/// use std::sync::Arc;
/// use snapseal_actors::SnapshotterConfig;
/// use snapseal_engine::TaskSystem;
/// use snapseal_ledger::disk_ledger::DiskLedger;
/// use snapseal_ledger::disk_node::DiskKv;
/// use snapseal_ledger::node::{SimConfig, SimNode};
/// use snapseal_persist::fs::RealFs;
/// use snapseal_persist::receipt::Ed25519Verifier;
/// use snapseal_persist::{SigningKey, SnapshotStore, StoreOptions};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let ledger_dir = dir.path().join("ledger");
/// let key = SigningKey::from_bytes(&[4; 32]);
/// let opts = StoreOptions::new(Arc::new(Ed25519Verifier::new(vec![key.verifying_key()])));
/// let store = Arc::new(SnapshotStore::open(Arc::new(RealFs), dir.path(), opts)?);
/// let kv = DiskKv::open(DiskLedger::open(&RealFs, &ledger_dir, key.clone(), 4096)?, None)?;
///
/// let tasks = TaskSystem::manual(1);
/// let cfg = SimConfig { txs: 300, sig_every: 10, keys: 20, ..SimConfig::default() };
/// let snap = SnapshotterConfig { tx_interval: 100, ..SnapshotterConfig::default() };
/// let mut node = SimNode::with_ledger(cfg, kv.clone(), snap, tasks.clone(), store)?;
/// while node.step() {
///     tasks.run_until_idle();
/// }
/// assert!(node.finish(100));
/// let (applied, state) = (kv.applied_idx(), kv.state_hash());
/// assert_eq!(applied, node.commit_idx());
/// drop((node, kv));
///
/// // Restart: every chunk is verified against the key, then replayed into the state.
/// let kv = DiskKv::open(DiskLedger::open(&RealFs, &ledger_dir, key, 4096)?, None)?;
/// assert_eq!((kv.applied_idx(), kv.state_hash()), (applied, state));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct DiskKv {
    ledger: DiskLedger,
    state: Arc<Mutex<KvInner>>,
}

/// The snapshot a reopened node starts from.
#[derive(Clone, Debug)]
pub struct StartPoint {
    /// Its index.
    pub idx: u64,
    /// The KV map at that index (its body).
    pub map: BTreeMap<u64, Vec<u8>>,
    /// The signed root its receipt proves the snapshot's evidence against.
    pub signed: SignedRoot,
}

/// Why the state could not be rebuilt at open.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReopenError {
    /// The snapshot to start from, or the signature its receipt proves against, lies past
    /// the ledger's commit index (the ledger lost txs a committed snapshot depends on, or
    /// belongs to another node).
    #[error(
        "the snapshot at {snapshot_idx} (its receipt's signature at {sig_idx}) lies past the \
         ledger's commit index {commit_idx}"
    )]
    SnapshotAhead {
        /// The snapshot's index.
        snapshot_idx: u64,
        /// The index of the signature tx its receipt proves against.
        sig_idx: u64,
        /// The ledger's commit index.
        commit_idx: u64,
    },
    /// The ledger's tx at the snapshot's receipt's signature index is not that signature: the
    /// ledger and the snapshot are of different histories.
    #[error(
        "the snapshot at {snapshot_idx} was signed at {sig_idx} over another history than the \
         ledger's: {why}"
    )]
    OtherHistory {
        /// The snapshot's index.
        snapshot_idx: u64,
        /// The index of the signature tx its receipt proves against.
        sig_idx: u64,
        /// What the ledger holds there instead.
        why: String,
    },
    /// Replaying the ledger from the snapshot (or from the start) failed.
    #[error("replaying the ledger from {from} to {to}: {why}")]
    Replay {
        /// First index replayed.
        from: u64,
        /// Last index to replay.
        to: u64,
        /// What went wrong (a missing range, an unreadable chunk).
        why: String,
    },
}

impl DiskKv {
    /// The state over a reopened (or new) `ledger`, starting from `snapshot` (the newest
    /// snapshot that verifies) and replaying the ledger's committed txs after it. The
    /// ledger must hold the signature tx the snapshot's receipt proves against. Without a
    /// snapshot the ledger is replayed from its start, which must be 1.
    pub fn open(ledger: DiskLedger, snapshot: Option<StartPoint>) -> Result<Self, ReopenError> {
        let commit_idx = ledger.commit_idx();
        let (from, mut map) = match snapshot {
            Some(start) => {
                check_ties(&ledger, &start)?;
                let map: KvMap = start
                    .map
                    .into_iter()
                    .map(|(k, v)| (k, Arc::from(v)))
                    .collect();
                (start.idx + 1, map)
            }
            None => (1, KvMap::new()),
        };
        if from <= commit_idx {
            let want = commit_idx - from + 1;
            let seen = ledger
                .for_each(from, commit_idx, |_, tx| {
                    if let TxKind::Write { key, value } = tx {
                        map.insert(*key, Arc::clone(value));
                    }
                })
                .map_err(|e| ReopenError::Replay {
                    from,
                    to: commit_idx,
                    why: e.to_string(),
                })?;
            if seen != want {
                return Err(ReopenError::Replay {
                    from,
                    to: commit_idx,
                    why: format!(
                        "the ledger holds {seen} of the {want} txs (it starts after {})",
                        ledger.base()
                    ),
                });
            }
        }
        Ok(DiskKv {
            ledger,
            state: Arc::new(Mutex::new(KvInner {
                applied_idx: commit_idx,
                map,
                kept: BTreeMap::new(),
            })),
        })
    }

    /// The ledger.
    pub fn ledger(&self) -> &DiskLedger {
        &self.ledger
    }

    /// The index the state is at (the ledger's commit index).
    pub fn applied_idx(&self) -> u64 {
        self.state.lock().applied_idx
    }

    /// The state hash at [`applied_idx`](Self::applied_idx)
    /// ([`state_hash`](crate::disk_ledger::state_hash) of the map).
    pub fn state_hash(&self) -> Hash {
        crate::disk_ledger::state_hash(&self.state.lock().map)
    }

    /// Commits txs up to `idx`: their writes are read from the ledger's tail first, and
    /// applied to the map (a copy kept at every accepted point passed) only once the ledger
    /// made them durable, so after a failed commit the state is still the one at the ledger's
    /// commit index. Only the node's thread commits; the lock is not held across the fsync,
    /// so captures go on meanwhile.
    fn commit_to(&self, idx: u64) -> Result<(), String> {
        let from = self.state.lock().applied_idx + 1;
        let mut writes = Vec::new();
        if idx >= from {
            let seen = self
                .ledger
                .for_each(from, idx, |i, tx| {
                    if let TxKind::Write { key, value } = tx {
                        writes.push((i, *key, Arc::clone(value)));
                    }
                })
                .map_err(|e| e.to_string())?;
            if seen != idx - from + 1 {
                return Err(format!(
                    "applying {from}..={idx}: the ledger holds {seen} of those txs"
                ));
            }
        }
        self.ledger.commit(idx).map_err(|e| e.to_string())?;
        if idx < from {
            return Ok(());
        }
        let mut st = self.state.lock();
        let inner = &mut *st;
        let points: Vec<u64> = inner.kept.range(from..=idx).map(|(k, _)| *k).collect();
        let mut points = points.into_iter().peekable();
        for (i, key, value) in writes {
            while let Some(p) = points.next_if(|&p| p < i) {
                inner.kept.insert(p, Some(Arc::new(inner.map.clone())));
            }
            inner.map.insert(key, value);
        }
        for p in points {
            inner.kept.insert(p, Some(Arc::new(inner.map.clone())));
        }
        inner.applied_idx = idx;
        Ok(())
    }
}

/// Checks `start` belongs to `ledger`'s history: the signature tx its receipt proves against
/// is committed in the ledger, identical.
fn check_ties(ledger: &DiskLedger, start: &StartPoint) -> Result<(), ReopenError> {
    let (snapshot_idx, sig_idx) = (start.idx, start.signed.sig_idx);
    let commit_idx = ledger.commit_idx();
    if snapshot_idx > commit_idx || sig_idx > commit_idx {
        return Err(ReopenError::SnapshotAhead {
            snapshot_idx,
            sig_idx,
            commit_idx,
        });
    }
    let other = |why: String| ReopenError::OtherHistory {
        snapshot_idx,
        sig_idx,
        why,
    };
    match ledger.tx(sig_idx) {
        Ok(Some(TxKind::Signature(s))) if s == start.signed => Ok(()),
        Ok(Some(TxKind::Signature(s))) => Err(other(format!(
            "the ledger's signature tx there signs root {}",
            snapseal_persist::to_hex(&s.root)
        ))),
        Ok(Some(_)) => Err(other("the ledger's tx there is not a signature".into())),
        Ok(None) => Err(other(format!(
            "the ledger does not hold that tx (it starts after {})",
            ledger.base()
        ))),
        Err(e) => Err(ReopenError::Replay {
            from: sig_idx,
            to: sig_idx,
            why: e.to_string(),
        }),
    }
}

impl NodeLedger for DiskKv {
    fn last_idx(&self) -> u64 {
        self.ledger.last_idx()
    }
    fn start_idx(&self) -> u64 {
        self.ledger.commit_idx()
    }
    fn append(&self, kind: TxKind) -> u64 {
        self.ledger.append(kind)
    }
    fn append_signature(&self) -> SignedRoot {
        self.ledger.append_signature()
    }
    fn truncate(&self, idx: u64) -> Result<(), String> {
        self.ledger.truncate(idx).map_err(|e| e.to_string())
    }
    fn commit(&self, idx: u64) -> Result<(), String> {
        self.commit_to(idx)
    }
    fn proofs(&self) -> Arc<dyn ProofSource> {
        self.ledger.proofs()
    }
    fn state(&self) -> Arc<dyn StateSource> {
        Arc::new(self.clone())
    }
    fn keep(&self, idx: u64) {
        let mut st = self.state.lock();
        let now = (idx == st.applied_idx).then(|| Arc::new(st.map.clone()));
        st.kept.insert(idx, now);
    }
}

impl StateSource for DiskKv {
    fn capture(&self, idx: u64) -> Result<Box<dyn StateView>, CaptureError> {
        let st = self.state.lock();
        let map = match st.kept.get(&idx) {
            Some(Some(v)) => Arc::clone(v),
            _ if idx == st.applied_idx => Arc::new(st.map.clone()),
            _ => {
                return Err(CaptureError {
                    idx,
                    reason: format!(
                        "no state kept at {idx} (the state is at {})",
                        st.applied_idx
                    ),
                })
            }
        };
        Ok(Box::new(MapView { idx, map }))
    }

    fn release(&self, idx: u64) {
        self.state.lock().kept.remove(&idx);
    }
}

/// A frozen map at `idx`, serialised exactly as the in-memory node's views are.
struct MapView {
    idx: u64,
    map: Arc<KvMap>,
}

impl StateView for MapView {
    fn write_to(&mut self, out: &mut dyn io::Write) -> io::Result<()> {
        out.write_all(KV_MAGIC)?;
        out.write_all(&self.idx.to_le_bytes())?;
        out.write_all(&(self.map.len() as u64).to_le_bytes())?;
        for (k, v) in self.map.iter() {
            out.write_all(&k.to_le_bytes())?;
            out.write_all(&(v.len() as u64).to_le_bytes())?;
            out.write_all(v)?;
        }
        Ok(())
    }
}
