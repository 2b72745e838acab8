//! One generation: a snapshot point on its way from serialisation to a `.committed` file.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use snapseal_engine::OrderedTasks;
use snapseal_persist::receipt::SignedRoot;
use snapseal_persist::{PendingBody, SigningKey};

use crate::actions::{GenerationError, Proof};
use crate::node::ProofSource;

/// State shared between the consensus thread and the generation's actions.
#[derive(Debug, Default)]
pub(crate) struct GenShared {
    /// Set by the serialise action; taken by the persist action.
    pub body: Mutex<Option<PendingBody>>,
    /// Set when serialisation finished (the body may already have been taken since).
    pub serialised: AtomicBool,
    /// Set by rollback or close: the serialise action stops streaming and must not announce
    /// evidence for it any more.
    pub dropped: AtomicBool,
    /// The typed error of the action that failed, for the `Failed` event.
    pub error: Mutex<Option<Arc<GenerationError>>>,
}

impl GenShared {
    pub(crate) fn is_serialised(&self) -> bool {
        self.serialised.load(Ordering::Acquire)
    }
    pub(crate) fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }
}

/// The consensus thread's record of one pending generation.
pub(crate) struct Generation {
    pub number: u64,
    pub idx: u64,
    pub queue: OrderedTasks,
    pub shared: Arc<GenShared>,
    pub span: tracing::Span,
    pub evidence_idx: Option<u64>,
    /// The log term of the evidence tx, when the node gave one (statement mode signs it).
    pub term: Option<u64>,
    pub digest: Option<[u8; 32]>,
    pub signature: Option<SignedRoot>,
    pub tree: Option<(u64, Arc<dyn ProofSource>)>,
    pub persist_scheduled: bool,
}

impl Generation {
    /// Has evidence and no persist action yet: waits for its proof (a committed signature and
    /// its tree, or in statement mode the evidence committed).
    pub(crate) fn awaits_proof(&self) -> bool {
        self.evidence_idx.is_some() && !self.persist_scheduled
    }

    /// The SPEC §3.3 gate; `statement_key` is the Snapshotter's mode. Merkle mode (`None`):
    /// serialised, evidence, a signature after it and that signature's tree, and the signature
    /// itself committed. Statement mode: serialised, evidence, and the evidence committed.
    /// Returns the evidence index and what the receipt is made from when the gate holds.
    pub(crate) fn gate(
        &self,
        commit_idx: u64,
        statement_key: Option<&Arc<SigningKey>>,
    ) -> Option<(u64, Proof)> {
        // The generation's own fields first: most calls end here without reading the shared
        // state, which another thread wrote (a cache miss on the consensus thread).
        if !self.awaits_proof() || !self.shared.is_serialised() {
            return None;
        }
        let evidence_idx = self.evidence_idx?;
        if let Some(key) = statement_key {
            return (commit_idx >= evidence_idx).then(|| {
                let proof = Proof::Statement {
                    key: Arc::clone(key),
                    term: self.term,
                };
                (evidence_idx, proof)
            });
        }
        let sig = self.signature.as_ref()?;
        let (tree_idx, tree) = self.tree.as_ref()?;
        let ok =
            sig.sig_idx > evidence_idx && *tree_idx == sig.sig_idx && commit_idx >= sig.sig_idx;
        ok.then(|| {
            let proof = Proof::Merkle {
                signature: sig.clone(),
                tree: Arc::clone(tree),
            };
            (evidence_idx, proof)
        })
    }
}
