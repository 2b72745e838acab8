//! Receipts: proof from the ledger that a snapshot's claims are committed (SPEC §4).
//!
//! Every receipt names its scheme in its protected COSE header ([`SchemeId`]); a
//! [`ReceiptVerifier`] dispatches on that name, never on configuration. Two schemes are
//! built in:
//! - [`SchemeId::MERKLE`], CCF-style: an inclusion proof of the evidence transaction under a
//!   ledger-signed Merkle root. The ledger keeps a [`MerkleTree`] of [`leaf_hash`]es and
//!   signs its roots ([`sign_root`]); [`merkle_receipt`] makes the receipt from its
//!   [`InclusionProof`] and [`SignedRoot`] (the Snapshotter's path), [`MerkleScheme`] checks
//!   it;
//! - [`SchemeId::STATEMENT`], for ledgers without a Merkle tree (a Raft log): the node's key
//!   signs the claims digest and commit index directly ([`statement_receipt`],
//!   [`StatementScheme`]).
//!
//! [`ReceiptScheme`] is the seam a node uses to plug in its own ledger scheme, combined with
//! others in [`Schemes`]; [`Ed25519Verifier`] is the ready-made verifier over the built-in
//! ones. The byte layouts are written down in `docs/FORMAT.md`.

// The decoded receipts, COSE labels, limits and proof-walking functions are
// `internals::receipt`'s.
pub(crate) mod cose;
mod error;
pub(crate) mod merkle;
pub(crate) mod scheme;
pub(crate) mod statement;
mod verifier;

use crate::Hash;

pub use cose::{merkle_receipt, sign_root, InclusionProof, SignedRoot};
pub use error::ReceiptError;
pub use merkle::{leaf_hash, MerkleTree};
pub use scheme::{ReceiptScheme, SchemeId, Schemes};
pub use statement::{statement_receipt, StatementScheme};
pub use verifier::{Ed25519Verifier, MerkleScheme};

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
    /// ([`Claims::digest`](crate::Claims::digest)): what the ledger's evidence tx must
    /// carry. The built-in scheme requires the receipt to prove exactly this value, which binds
    /// `idx`, the flags and the lengths as well as the body.
    pub claims_digest: Hash,
}

impl Expected {
    internals_pub! {
        /// What a file with `header` claims: its indices, body digest and the claims digest
        /// recomputed from it. Every reader builds the receipt check's input this one way.
        fn of(header: &crate::format::Header) -> Expected {
            Expected {
                idx: header.idx,
                evidence_idx: header.evidence_idx,
                body_digest: header.body_digest,
                claims_digest: header.claims().digest(),
            }
        }
    }
}

/// What a successful verification established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedReceipt {
    /// Index of the signature transaction whose root covers the evidence (Merkle scheme), or
    /// the commit index a signed statement vouches for (statement scheme).
    pub sig_idx: u64,
    /// Who signed, in the scheme's own words (built-in: hex key id).
    pub signer: String,
    /// The scheme the receipt names (and was verified by).
    pub scheme: SchemeId,
    /// The log term the receipt vouches for, when its scheme signs one (a signed statement
    /// from a ledger with terms); `None` otherwise.
    pub term: Option<u64>,
}

/// What a store verifies receipts with: checks that `receipt` proves `expected` is committed.
/// The built-in implementations ([`Ed25519Verifier`], [`Schemes`]) read the scheme the
/// receipt names and dispatch on it.
pub trait ReceiptVerifier: Send + Sync + std::fmt::Debug {
    /// Verify `receipt` against what the file claims. Must not panic on any bytes.
    fn verify(&self, receipt: &[u8], expected: &Expected) -> Result<VerifiedReceipt, ReceiptError>;
}
