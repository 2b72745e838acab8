//! The node's ledger and state on disk: a [`DiskLedger`] plus the KV map at its commit index.
//!
//! Memory is bounded by the key space, not the ledger's length: the map holds one value per
//! key, and a snapshot point the Snapshotter accepted keeps a copy of the map as of that
//! point until it is released (at most the points it tracks). Writes are applied to the map
//! when they commit, just before the ledger makes them durable; captures only ever ask for
//! committed points.
//!
//! Reopening ([`DiskKv::open`]) rebuilds the map without reading the ledger from its start:
//! the newest snapshot that verifies gives the state at its index, and the sealed chunks
//! after it are replayed up to the ledger's commit index.

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
#[derive(Clone, Debug)]
pub struct DiskKv {
    ledger: DiskLedger,
    state: Arc<Mutex<KvInner>>,
}

/// Why the state could not be rebuilt at open.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReopenError {
    /// The snapshot to start from lies past the ledger's commit index (the ledger lost txs
    /// a committed snapshot depends on, or belongs to another node).
    #[error("the snapshot at {snapshot_idx} lies past the ledger's commit index {commit_idx}")]
    SnapshotAhead {
        /// The snapshot's index.
        snapshot_idx: u64,
        /// The ledger's commit index.
        commit_idx: u64,
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
    /// The state over a reopened (or new) `ledger`, starting from `snapshot` (its index and
    /// KV map, the newest snapshot that verifies) and replaying the ledger's committed txs
    /// after it. Without a snapshot the ledger is replayed from its start, which must be 1.
    pub fn open(
        ledger: DiskLedger,
        snapshot: Option<(u64, BTreeMap<u64, Vec<u8>>)>,
    ) -> Result<Self, ReopenError> {
        let commit_idx = ledger.commit_idx();
        let (from, mut map) = match snapshot {
            Some((idx, map)) => {
                if idx > commit_idx {
                    return Err(ReopenError::SnapshotAhead {
                        snapshot_idx: idx,
                        commit_idx,
                    });
                }
                let map: KvMap = map.into_iter().map(|(k, v)| (k, Arc::from(v))).collect();
                (idx + 1, map)
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

    /// Applies the writes of txs `applied + 1 ..= idx` (still in the ledger's tail), keeping
    /// a copy of the map at every accepted point it passes.
    fn apply_to(&self, idx: u64) -> Result<(), String> {
        let mut st = self.state.lock();
        let from = st.applied_idx + 1;
        if idx < from {
            return Ok(());
        }
        let inner = &mut *st;
        let mut next_point = inner.kept.range(from..).next().map(|(k, _)| *k);
        let mut versions = Vec::new();
        let seen = self
            .ledger
            .for_each(from, idx, |i, tx| {
                if let TxKind::Write { key, value } = tx {
                    inner.map.insert(*key, Arc::clone(value));
                }
                if next_point == Some(i) {
                    versions.push((i, Arc::new(inner.map.clone())));
                    next_point = inner.kept.range(i + 1..).next().map(|(k, _)| *k);
                }
            })
            .map_err(|e| e.to_string())?;
        if seen != idx - from + 1 {
            return Err(format!(
                "applying {from}..={idx}: the ledger holds {seen} of those txs"
            ));
        }
        for (i, v) in versions {
            inner.kept.insert(i, Some(v));
        }
        inner.applied_idx = idx;
        Ok(())
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
        self.apply_to(idx)?;
        self.ledger.commit(idx).map_err(|e| e.to_string())
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
