//! Why a receipt was refused.

use thiserror::Error;

use super::scheme::SchemeId;
use crate::hex::to_hex;

/// Everything that can be wrong with a receipt, from its bytes to its signature. Variants carry
/// the values compared so the reason is visible in a log line.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReceiptError {
    /// The bytes are not a well-formed receipt of this scheme (CBOR, COSE structure, a label's
    /// type or length, missing or extra labels, non-canonical encoding).
    #[error("receipt decode: {0}")]
    Decode(String),
    /// The receipt's protected header names no scheme (label -70000). Receipts written before
    /// schemes were named (Merkle receipt version 1) are not read.
    #[error("receipt names no scheme (protected label -70000); receipts from before schemes were named are not read: re-snapshot")]
    MissingScheme,
    /// The receipt names a scheme this reader does not know and none is configured for.
    #[error("unknown receipt scheme {scheme}: this reader has no verifier for it")]
    UnknownScheme {
        /// The identifier in the receipt.
        scheme: SchemeId,
    },
    /// The receipt's scheme is one snapseal knows, but the verifier was not configured to
    /// trust it (no keys for it). Like [`UntrustedKey`](Self::UntrustedKey), a configuration
    /// matter rather than a bad file.
    #[error("receipt scheme {scheme} is not trusted by this configuration")]
    SchemeNotTrusted {
        /// The identifier in the receipt.
        scheme: SchemeId,
    },
    /// A signed statement names another snapshot index than the file's header.
    #[error("snapshot index mismatch: file header gives {expected}, statement has {actual}")]
    IdxMismatch {
        /// idx from the file header.
        expected: u64,
        /// idx in the statement.
        actual: u64,
    },
    /// A receipt could not be encoded (e.g. a proof longer than any tree can need).
    #[error("receipt encode: {0}")]
    Encode(String),
    /// A receipt encoding version this verifier does not know.
    #[error("unsupported receipt version {actual} (this verifier supports {supported})")]
    UnsupportedVersion {
        /// The version this verifier supports.
        supported: u64,
        /// The version the receipt carries.
        actual: i128,
    },
    /// The receipt is for another evidence transaction than the file claims.
    #[error("evidence index mismatch: expected {expected}, receipt has {actual}")]
    EvidenceIndexMismatch {
        /// Evidence index from the file header.
        expected: u64,
        /// Evidence index in the receipt.
        actual: u64,
    },
    /// Evidence index 0 does not exist (ledger indices start at 1).
    #[error("evidence index 0 is not a ledger transaction")]
    EvidenceIndexZero,
    /// The receipt proves another claims digest than the one recomputed from the file's header:
    /// the header's idx, flags, lengths or body digest are not what the ledger recorded.
    #[error("claims digest mismatch: file header gives {}, receipt proves {} (idx, flags, lengths or body digest differ from what the ledger recorded)", to_hex(.expected), to_hex(.actual))]
    DigestMismatch {
        /// Claims digest recomputed from the file's header.
        expected: [u8; 32],
        /// Claims digest in the receipt.
        actual: [u8; 32],
    },
    /// The signature does not come after the evidence, so its tree cannot cover it.
    #[error("signature at {sig_idx} does not follow evidence at {evidence_idx}")]
    SigBeforeEvidence {
        /// Signature transaction index.
        sig_idx: u64,
        /// Evidence transaction index.
        evidence_idx: u64,
    },
    /// The inclusion path has the wrong shape for the leaf position and tree size.
    #[error("malformed inclusion proof: {path_len} hashes for leaf {leaf_index} of {tree_size}")]
    BadProof {
        /// Leaf position (evidence_idx - 1).
        leaf_index: u64,
        /// Tree size (sig_idx - 1).
        tree_size: u64,
        /// Hashes in the path.
        path_len: usize,
    },
    /// The inclusion proof leads to a different root than the one signed.
    #[error("inclusion proof gives root {}, signed root is {}", to_hex(.computed), to_hex(.signed))]
    RootMismatch {
        /// Root in the signed payload.
        signed: [u8; 32],
        /// Root computed from the leaf and path.
        computed: [u8; 32],
    },
    /// No trusted key has this key id.
    #[error("untrusted signing key id {key_id}")]
    UntrustedKey {
        /// Hex key id from the receipt.
        key_id: String,
    },
    /// The key given is not the one the signed root names.
    #[error("key id mismatch: signed root names {expected}, key is {actual}")]
    KeyIdMismatch {
        /// Hex key id in the signed root.
        expected: String,
        /// Hex key id of the key offered.
        actual: String,
    },
    /// The signature does not verify under the trusted key with that id.
    #[error("bad Ed25519 signature for key id {key_id}")]
    BadSignature {
        /// Hex key id.
        key_id: String,
    },
    /// The tree given to build a receipt does not have the root that was signed.
    #[error(
        "tree of {len} leaves cannot prove leaf {leaf_index} under the root signed at {sig_idx}"
    )]
    TreeMismatch {
        /// Leaves in the tree offered.
        len: u64,
        /// Leaf position wanted.
        leaf_index: u64,
        /// Signature index whose root was expected.
        sig_idx: u64,
    },
}

impl ReceiptError {
    internals_pub! {
        /// The receipt may well be genuine, but nothing this verifier trusts signed it (an unknown
        /// key, or a scheme not configured): the likely fault is the configuration, so a store
        /// passes such a file over instead of quarantining it.
        fn is_untrusted(&self) -> bool {
            matches!(
                self,
                ReceiptError::UntrustedKey { .. } | ReceiptError::SchemeNotTrusted { .. }
            )
        }
    }
}
