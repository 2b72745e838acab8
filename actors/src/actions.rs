//! The two actions of a generation's `OrderedTasks`: serialise, then (once the gate holds)
//! persist. Both run on engine workers, never on the consensus thread.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::Sender;
use snapseal_engine::ActionResult;
use snapseal_persist::receipt::{merkle_receipt, statement_receipt, SignedRoot};
use snapseal_persist::{
    BodyBuilder, Claims, MemoryBudget, PendingBody, SigningKey, SnapshotStore, SpillTarget,
};
use tracing::{debug, info};

use crate::events::EventHub;
use crate::events::{CommittedSnapshot, Counters, SnapshotEvent};
use crate::generation::GenShared;
use crate::node::{CaptureError, EvidenceSink, ProofSource, StateView};

/// Why a generation failed (carried by [`SnapshotEvent::Failed`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenerationError {
    /// The node's [`StateSource::capture`](crate::StateSource::capture) refused the point.
    #[error("generation {generation} (idx {idx}): {source}")]
    Capture {
        /// Generation number.
        generation: u64,
        /// Snapshot index.
        idx: u64,
        /// The node's error.
        source: CaptureError,
    },
    /// An action failed without a typed error (it panicked, or the engine reported it).
    #[error("generation {generation} (idx {idx}): {action} action {how}: {message}", how = if *.panicked { "panicked" } else { "failed" })]
    Action {
        /// Generation number.
        generation: u64,
        /// Snapshot index.
        idx: u64,
        /// The action's name (`serialise` or `persist`).
        action: String,
        /// The engine's report.
        message: String,
        /// Whether the action panicked.
        panicked: bool,
    },
    /// Streaming or compressing the state failed.
    #[error("generation {generation} (idx {idx}): serialising the state: {source}")]
    Serialise {
        /// Generation number.
        generation: u64,
        /// Snapshot index.
        idx: u64,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The persist action found no body (an internal ordering bug; reported, never panics).
    #[error("generation {generation} (idx {idx}): no serialised body to persist")]
    BodyMissing {
        /// Generation number.
        generation: u64,
        /// Snapshot index.
        idx: u64,
    },
    /// The node's proof source could not produce the inclusion proof.
    #[error("generation {generation} (idx {idx}): inclusion proof for evidence {evidence_idx} under signature {sig_idx}: {reason}")]
    Proof {
        /// Generation number.
        generation: u64,
        /// Snapshot index.
        idx: u64,
        /// Evidence index.
        evidence_idx: u64,
        /// Signature index.
        sig_idx: u64,
        /// The proof source's explanation.
        reason: String,
    },
    /// Encoding the receipt failed.
    #[error("generation {generation} (idx {idx}): encoding the receipt: {source}")]
    Receipt {
        /// Generation number.
        generation: u64,
        /// Snapshot index.
        idx: u64,
        /// Underlying error.
        source: snapseal_persist::receipt::ReceiptError,
    },
    /// Writing the snapshot failed (the error names the file and the step).
    #[error("generation {generation} (idx {idx}): {source}")]
    Persist {
        /// Generation number.
        generation: u64,
        /// Snapshot index.
        idx: u64,
        /// Underlying error.
        source: snapseal_persist::PersistError,
    },
}

/// Everything the serialise action needs, moved onto the worker.
pub(crate) struct SerialiseJob {
    pub generation: u64,
    pub idx: u64,
    pub view: Box<dyn StateView>,
    pub compression: Option<i32>,
    /// Where a body beyond the in-memory budget spills (`None`: never spill).
    pub spill: Option<(Arc<SnapshotStore>, MemoryBudget)>,
    pub shared: Arc<GenShared>,
    pub sink: Arc<dyn EvidenceSink>,
    pub span: tracing::Span,
}

/// Keeps the typed error for the `Failed` event and hands the engine the same error.
fn keep_error(shared: &GenShared, result: Result<(), GenerationError>) -> ActionResult {
    result.map_err(|e| {
        let e = Arc::new(e);
        *shared.error.lock() = Some(Arc::clone(&e));
        Box::new(e) as snapseal_engine::ActionError
    })
}

/// The serialise action's output: stops the node's `write_to` as soon as the generation is
/// dropped (rollback or close), so cancelled work does not run to the end.
struct Cancellable<'a> {
    inner: &'a mut BodyBuilder,
    shared: &'a GenShared,
}

impl std::io::Write for Cancellable<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.shared.is_dropped() {
            // Not `Interrupted`: `write_all` would retry that forever.
            return Err(std::io::Error::other("generation cancelled"));
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl SerialiseJob {
    pub(crate) fn run(self) -> ActionResult {
        let shared = Arc::clone(&self.shared);
        keep_error(&shared, self.serialise())
    }

    fn serialise(mut self) -> Result<(), GenerationError> {
        let _entered = self.span.clone().entered();
        let _action = tracing::debug_span!("serialise").entered();
        // The zero-copy path: the node's frozen chunks, hashed where they are. Over a chunked
        // store they are cut at their own boundaries, and a chunk handed out again unchanged
        // costs a lookup of its remembered cut (PendingBody::from_frozen_in).
        let frozen = match self.compression {
            None => self.view.frozen_chunks(),
            Some(_) => None,
        };
        let body = match frozen {
            Some(chunks) => match self.spill.take() {
                Some((store, budget)) => {
                    let (generation, idx) = (self.generation, self.idx);
                    let target = SpillTarget {
                        store,
                        idx,
                        generation,
                        budget,
                    };
                    PendingBody::from_frozen_in(chunks, target).map_err(|source| {
                        GenerationError::Serialise {
                            generation,
                            idx,
                            source,
                        }
                    })?
                }
                None => PendingBody::from_frozen(chunks),
            },
            None => match self.stream()? {
                Some(body) => body,
                None => return Ok(()),
            },
        };
        if self.shared.is_dropped() {
            debug!("dropped while serialising; stopped");
            return Ok(());
        }
        self.announce(body);
        Ok(())
    }

    /// Streams the view's `write_to` through a body builder; `None` when the generation was
    /// dropped meanwhile (a spilled body's pending file is discarded with the builder).
    fn stream(&mut self) -> Result<Option<PendingBody>, GenerationError> {
        let (generation, idx) = (self.generation, self.idx);
        let serialise_err = |source| GenerationError::Serialise {
            generation,
            idx,
            source,
        };
        let mut builder = match self.spill.take() {
            None => BodyBuilder::new(self.compression),
            Some((store, budget)) => BodyBuilder::with_spill(
                self.compression,
                SpillTarget {
                    store,
                    idx,
                    generation,
                    budget,
                },
            ),
        }
        .map_err(serialise_err)?;
        let written = self.view.write_to(&mut Cancellable {
            inner: &mut builder,
            shared: &self.shared,
        });
        if self.shared.is_dropped() {
            // Dropping the builder discards a spilled body's pending file.
            return Ok(None);
        }
        written.map_err(serialise_err)?;
        builder.finish().map(Some).map_err(serialise_err)
    }

    /// Hands the finished body to the generation and announces its claims digest.
    fn announce(&self, body: PendingBody) {
        let idx = self.idx;
        // The ledger records the claims digest (idx, flags, lengths, body digest), not the bare
        // body digest, so the committed file's header is proven along with its body.
        let claims = body.claims(idx);
        let digest = claims.digest();
        self.span.record("bytes", body.len());
        self.span
            .record("digest", tracing::field::display(hex_prefix(&digest)));
        debug!(
            bytes = body.len(),
            raw = claims.raw_len,
            spilled = body.is_spilled(),
            "serialised"
        );
        *self.shared.body.lock() = Some(body);
        self.shared.serialised.store(true, Ordering::Release);
        // A generation rolled back while we streamed must not put evidence in the ledger.
        if self.shared.is_dropped() {
            self.shared.body.lock().take();
            debug!("dropped while serialising; no evidence announced");
            return;
        }
        self.sink.append_evidence(idx, digest);
    }
}

/// What the persist action makes the snapshot's receipt from (SPEC §4).
pub(crate) enum Proof {
    /// Merkle mode: the first signature after the evidence, and the tree it signed, which
    /// proves the evidence tx under its root (receipt scheme 1).
    Merkle {
        signature: SignedRoot,
        tree: Arc<dyn ProofSource>,
    },
    /// Statement mode: the node's key signs the claims, the committed evidence index and the
    /// evidence tx's term (receipt scheme 2).
    Statement {
        key: Arc<SigningKey>,
        term: Option<u64>,
    },
}

/// Everything the persist action needs, moved onto the worker.
pub(crate) struct PersistJob {
    pub generation: u64,
    pub idx: u64,
    pub evidence_idx: u64,
    pub proof: Proof,
    pub shared: Arc<GenShared>,
    pub store: Arc<SnapshotStore>,
    pub span: tracing::Span,
    pub events: Arc<EventHub>,
    pub done: Sender<(u64, SnapshotEvent)>,
    pub counters: Arc<Counters>,
}

impl PersistJob {
    pub(crate) fn run(self) -> ActionResult {
        let shared = Arc::clone(&self.shared);
        keep_error(&shared, self.persist())
    }

    fn persist(self) -> Result<(), GenerationError> {
        let _entered = self.span.clone().entered();
        let _action = tracing::debug_span!("persist").entered();
        let (generation, idx) = (self.generation, self.idx);
        let body = self
            .shared
            .body
            .lock()
            .take()
            .ok_or(GenerationError::BodyMissing { generation, idx })?;
        let claims = body.claims(idx);
        let (receipt, sig_idx) = self.receipt(&claims)?;
        let body_claims = claims.digest();
        let new_chunk_bytes = body.new_chunk_bytes();
        let committed = body
            .commit(&self.store, idx, self.evidence_idx, &receipt)
            .map_err(|source| GenerationError::Persist {
                generation,
                idx,
                source,
            })?;
        Counters::bump(
            &self.counters.persisted,
            "snapseal_snapshots_committed_total",
        );
        info!(path = %committed.path.display(), bytes = committed.file_len, "snapshot committed");
        let event = SnapshotEvent::Committed(CommittedSnapshot {
            generation,
            idx,
            evidence_idx: self.evidence_idx,
            sig_idx,
            path: committed.path,
            digest: committed.body_digest,
            claims_digest: body_claims,
            file_len: committed.file_len,
            new_chunk_bytes,
        });
        // The node may have dropped its receiver; that only means nobody listens.
        let _ = self.done.send((generation, event.clone()));
        self.events.emit(event);
        Ok(())
    }

    /// The receipt for `claims`, and the index it is proven at: the signature's (Merkle) or
    /// the evidence's, which the statement vouches is committed.
    fn receipt(&self, claims: &Claims) -> Result<(Vec<u8>, u64), GenerationError> {
        let (generation, idx, evidence_idx) = (self.generation, self.idx, self.evidence_idx);
        let encoding = |source| GenerationError::Receipt {
            generation,
            idx,
            source,
        };
        match &self.proof {
            Proof::Merkle { signature, tree } => {
                let sig_idx = signature.sig_idx;
                let proof = tree
                    .inclusion_proof(evidence_idx, sig_idx)
                    .map_err(|reason| GenerationError::Proof {
                        generation,
                        idx,
                        evidence_idx,
                        sig_idx,
                        reason,
                    })?;
                let receipt = merkle_receipt(claims, evidence_idx, proof, signature.clone())
                    .map_err(encoding)?;
                Ok((receipt, sig_idx))
            }
            Proof::Statement { key, term } => {
                let receipt =
                    statement_receipt(key, claims, evidence_idx, *term).map_err(encoding)?;
                Ok((receipt, evidence_idx))
            }
        }
    }
}

/// First 8 hex digits of a digest, for logs.
pub(crate) fn hex_prefix(digest: &[u8; 32]) -> String {
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}
