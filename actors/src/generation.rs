//! One generation: a snapshot point on its way from serialisation to a `.committed` file.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use snapseal_engine::OrderedTasks;
use snapseal_persist::receipt::SignedRoot;
use snapseal_persist::PendingBody;

use crate::actions::GenerationError;
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
    pub digest: Option<[u8; 32]>,
    pub signature: Option<SignedRoot>,
    pub tree: Option<(u64, Arc<dyn ProofSource>)>,
    pub persist_scheduled: bool,
}

impl Generation {
    /// The SPEC §3 gate: serialised, evidence, a signature after it and its tree, and the
    /// signature itself committed. Returns the signature index when the gate holds.
    pub(crate) fn gate(&self, commit_idx: u64) -> Option<u64> {
        if self.persist_scheduled || !self.shared.is_serialised() {
            return None;
        }
        let evidence_idx = self.evidence_idx?;
        let sig = self.signature.as_ref()?;
        let (tree_idx, _) = self.tree.as_ref()?;
        let ok =
            sig.sig_idx > evidence_idx && *tree_idx == sig.sig_idx && commit_idx >= sig.sig_idx;
        ok.then_some(sig.sig_idx)
    }
}
