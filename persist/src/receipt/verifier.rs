//! The built-in verifiers: [`MerkleScheme`] (COSE Merkle receipts under a root signed by a
//! trusted Ed25519 key) and [`Ed25519Verifier`], the ready-made [`ReceiptVerifier`] over the
//! built-in schemes.

use std::sync::Arc;

use ed25519_dalek::VerifyingKey;

use super::cose::{key_id, verify_signed_root, Receipt};
use super::error::ReceiptError;
use super::merkle::{leaf_hash, receipt_position, root_from_proof};
use super::scheme::{ReceiptScheme, SchemeId, Schemes};
use super::statement::StatementScheme;
use super::{Expected, ReceiptVerifier, VerifiedReceipt};
use crate::hex::to_hex;

/// The built-in CCF-style scheme ([`SchemeId::MERKLE`]): verifies Merkle receipts against a
/// fixed set of trusted ledger signing keys.
#[derive(Clone, Debug)]
pub struct MerkleScheme {
    /// Trusted keys with their key ids, computed once.
    keys: Vec<([u8; 8], VerifyingKey)>,
}

impl MerkleScheme {
    /// Trust roots signed by exactly `keys` (duplicates are harmless).
    pub fn new(keys: Vec<VerifyingKey>) -> Self {
        let keys = keys.into_iter().map(|k| (key_id(&k), k)).collect();
        MerkleScheme { keys }
    }
}

impl ReceiptScheme for MerkleScheme {
    fn id(&self) -> SchemeId {
        SchemeId::MERKLE
    }

    /// Order: decode; the receipt's evidence index and claims digest equal the file's; the
    /// signature follows the evidence; the proof leads to the signed root; a trusted key with
    /// that key id verifies the signature (strict Ed25519). Cheap checks first, so a mismatched
    /// file costs no signature verification.
    fn verify(&self, receipt: &[u8], expected: &Expected) -> Result<VerifiedReceipt, ReceiptError> {
        let r = Receipt::decode(receipt)?;
        if r.evidence_idx != expected.evidence_idx {
            return Err(ReceiptError::EvidenceIndexMismatch {
                expected: expected.evidence_idx,
                actual: r.evidence_idx,
            });
        }
        if r.claims_digest != expected.claims_digest {
            return Err(ReceiptError::DigestMismatch {
                expected: expected.claims_digest,
                actual: r.claims_digest,
            });
        }
        let sig_idx = r.signed.sig_idx;
        // Tx i is leaf i - 1; the tree signed at sig_idx has sig_idx - 1 leaves.
        let (leaf_index, tree_size) = receipt_position(r.evidence_idx, sig_idx)?;
        let leaf = leaf_hash(&r.evidence_tx_digest, &r.claims_digest);
        let computed = root_from_proof(&leaf, leaf_index, tree_size, &r.path).ok_or(
            ReceiptError::BadProof {
                leaf_index,
                tree_size,
                path_len: r.path.len(),
            },
        )?;
        if computed != r.signed.root {
            return Err(ReceiptError::RootMismatch {
                signed: r.signed.root,
                computed,
            });
        }
        let signer = to_hex(&r.signed.key_id);
        let mut candidates = self
            .keys
            .iter()
            .filter(|(id, _)| *id == r.signed.key_id)
            .peekable();
        if candidates.peek().is_none() {
            return Err(ReceiptError::UntrustedKey { key_id: signer });
        }
        // Key ids are 8-byte prefixes, so two trusted keys may share one: any of them may sign.
        if candidates.any(|(_, key)| verify_signed_root(key, &r.signed).is_ok()) {
            Ok(VerifiedReceipt {
                sig_idx,
                signer,
                scheme: SchemeId::MERKLE,
                term: None,
            })
        } else {
            Err(ReceiptError::BadSignature { key_id: signer })
        }
    }
}

/// The built-in [`ReceiptVerifier`]: dispatches on the scheme each receipt names (see
/// [`Schemes`]) to [`MerkleScheme`] and, when configured, [`StatementScheme`].
///
/// [`new`](Self::new) trusts Merkle receipts only; a signed statement is then refused with
/// [`ReceiptError::SchemeNotTrusted`] (passed over by a store, like an untrusted key).
/// [`with_statement_keys`](Self::with_statement_keys) also trusts statements signed by the
/// given node keys. The two key sets are separate on purpose: a ledger's root-signing key and
/// a node's statement key are different roles.
#[derive(Clone, Debug)]
pub struct Ed25519Verifier {
    schemes: Schemes,
}

impl Ed25519Verifier {
    /// Trust Merkle receipts whose root is signed by one of `keys` (duplicates are harmless).
    pub fn new(keys: Vec<VerifyingKey>) -> Self {
        Ed25519Verifier {
            schemes: Schemes::new().with(Arc::new(MerkleScheme::new(keys))),
        }
    }

    /// Also trust signed statements made by one of `keys`.
    pub fn with_statement_keys(self, keys: Vec<VerifyingKey>) -> Self {
        Ed25519Verifier {
            schemes: self.schemes.with(Arc::new(StatementScheme::new(keys))),
        }
    }

    internals_pub! {
        /// The schemes this verifier accepts.
        fn schemes(&self) -> Vec<SchemeId> {
            self.schemes.ids()
        }
    }
}

impl ReceiptVerifier for Ed25519Verifier {
    fn verify(&self, receipt: &[u8], expected: &Expected) -> Result<VerifiedReceipt, ReceiptError> {
        self.schemes.verify(receipt, expected)
    }
}
