//! Receipts: proof from the ledger that a snapshot's digest is committed (SPEC §4).
//!
//! [`ReceiptVerifier`] is the seam a node uses to plug in its own ledger scheme; the built-in
//! scheme ([`Receipt`], [`MerkleTree`], [`Ed25519Verifier`]) is what the demo, CLI and tests use. The
//! byte layout is written down in `docs/FORMAT.md`.

mod cose;
mod error;
mod merkle;
mod verifier;

use crate::Hash;

pub use cose::{
    key_id, sign_root, verify_signed_root, Receipt, SignedRoot, LABEL_CLAIMS_DIGEST,
    LABEL_EVIDENCE_IDX, LABEL_EVIDENCE_TX_DIGEST, LABEL_PROOF_PATH, LABEL_VERSION, MAX_RECEIPT_LEN,
    RECEIPT_VERSION,
};
pub use error::ReceiptError;
pub use merkle::{empty_root, leaf_hash, node_hash, root_from_proof, MerkleTree, MAX_PROOF_LEN};
pub use verifier::Ed25519Verifier;

/// What the committed file claims, which the receipt must back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// Snapshot index from the header (the built-in scheme binds it through
    /// `claims_digest`).
    pub idx: u64,
    /// Evidence transaction index from the header.
    pub evidence_idx: u64,
    /// BLAKE3 of the stored body (the header's body_digest).
    pub body_digest: Hash,
    /// The claims digest recomputed from the header
    /// ([`Claims::digest`](crate::format::Claims::digest)): what the ledger's evidence tx must
    /// carry. The built-in scheme requires the receipt to prove exactly this value, which binds
    /// `idx`, the flags and the lengths as well as the body.
    pub claims_digest: Hash,
}

/// What a successful verification established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedReceipt {
    /// Index of the signature transaction whose root covers the evidence.
    pub sig_idx: u64,
    /// Who signed, in the scheme's own words (built-in: hex key id).
    pub signer: String,
}

/// A ledger receipt scheme: checks that `receipt` proves `expected` is committed.
pub trait ReceiptVerifier: Send + Sync + std::fmt::Debug {
    /// Verify `receipt` against what the file claims. Must not panic on any bytes.
    fn verify(&self, receipt: &[u8], expected: &Expected) -> Result<VerifiedReceipt, ReceiptError>;
}
