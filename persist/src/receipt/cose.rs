//! The built-in receipt scheme: a COSE_Sign1 (RFC 9052) over the signed Merkle root, carrying
//! the evidence leaf's inclusion proof in private-use unprotected header labels.
//!
//! ```text
//! COSE_Sign1 (tag 18) = [
//!   protected:   bstr .cbor { 1 (alg): -8 (EdDSA), 4 (kid): bstr(8), -70000 (scheme): 1 },
//!   unprotected: { -70001: 2 (version), -70002: uint (evidence_idx),
//!                  -70003: bstr(32) (evidence tx digest), -70004: bstr(32) (snapshot digest),
//!                  -70005: [* bstr(32)] (proof path, leaf to root) },
//!   payload:     bstr(40) = sig_idx as u64 big-endian || root,
//!   signature:   bstr(64) = Ed25519 over Sig_structure("Signature1", protected, h'', payload),
//! ]
//! ```
//!
//! The scheme parameter (see [`super::SchemeId`]) is protected, so the ledger's signature over
//! the root can never be presented as a signed statement, nor the other way round.
//!
//! Decoding is strict: the only accepted bytes for a receipt are exactly what [`Receipt::encode`]
//! produces for it (deterministic CBOR, labels in that order), so no two byte strings mean the same
//! receipt and no flipped bit goes unnoticed.

use coset::cbor::value::Value;
use coset::iana::{self, EnumI64};
use coset::{
    sig_structure_data, CoseSign1, Header, HeaderBuilder, Label, ProtectedHeader,
    RegisteredLabelWithPrivate, SignatureContext, TaggedCborSerializable,
};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::error::ReceiptError;
use super::merkle::{receipt_position, MerkleTree, MAX_PROOF_LEN};
use super::scheme::{SchemeId, LABEL_SCHEME};
use crate::format::Claims;
use crate::hex::to_hex;
use crate::Hash;

/// Receipt encoding version carried under [`LABEL_VERSION`]. Version 1 had no scheme parameter
/// in its protected header; version 2 names the scheme ([`SchemeId::MERKLE`]).
pub const RECEIPT_VERSION: u64 = 2;
/// Unprotected label: receipt encoding version (uint).
pub const LABEL_VERSION: i64 = -70001;
/// Unprotected label: evidence transaction index (uint).
pub const LABEL_EVIDENCE_IDX: i64 = -70002;
/// Unprotected label: evidence transaction digest (bstr, 32 bytes).
pub const LABEL_EVIDENCE_TX_DIGEST: i64 = -70003;
/// Unprotected label: the snapshot's claims digest (`format::Claims::digest`; bstr, 32 bytes).
pub const LABEL_CLAIMS_DIGEST: i64 = -70004;
/// Unprotected label: inclusion path, leaf to root (array of bstr, 32 bytes each).
pub const LABEL_PROOF_PATH: i64 = -70005;
/// Upper bound on an encoded receipt. A maximal one (64-hash path) is under 2.5 KiB; the bound
/// keeps a hostile length field from steering allocation before parsing even starts.
pub const MAX_RECEIPT_LEN: usize = 16 * 1024;

/// Length of the signed payload: sig_idx (8, big-endian) || root (32).
const PAYLOAD_LEN: usize = 40;

/// What a ledger's signature transaction carries: a root over txs `1 ..= sig_idx - 1`, signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedRoot {
    /// Index of the signature transaction.
    pub sig_idx: u64,
    /// Merkle root of the tree of size `sig_idx - 1`.
    pub root: Hash,
    /// Id of the signing key: the first 8 bytes of BLAKE3 over its public key bytes.
    pub key_id: [u8; 8],
    /// Ed25519 signature over the COSE Sig_structure.
    pub signature: [u8; 64],
}

/// The 8-byte key id: first 8 bytes of BLAKE3(public key bytes). Lets a verifier pick the key
/// without trying them all; it is not a security boundary (the signature is).
pub fn key_id(key: &VerifyingKey) -> [u8; 8] {
    let digest = blake3::hash(key.as_bytes());
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest.as_bytes()[..8]);
    id
}

/// Sign the root of the tree at `sig_idx` (covering txs `1 ..= sig_idx - 1`).
pub fn sign_root(key: &SigningKey, sig_idx: u64, root: &Hash) -> SignedRoot {
    let key_id = key_id(&key.verifying_key());
    let tbs = to_be_signed(&key_id, sig_idx, root);
    SignedRoot {
        sig_idx,
        root: *root,
        key_id,
        signature: key.sign(&tbs).to_bytes(),
    }
}

/// Check `sr` was signed by `key` (strict Ed25519: no malleable or small-order signatures).
pub fn verify_signed_root(key: &VerifyingKey, sr: &SignedRoot) -> Result<(), ReceiptError> {
    let actual = key_id(key);
    if actual != sr.key_id {
        return Err(ReceiptError::KeyIdMismatch {
            expected: to_hex(&sr.key_id),
            actual: to_hex(&actual),
        });
    }
    let tbs = to_be_signed(&sr.key_id, sr.sig_idx, &sr.root);
    key.verify_strict(&tbs, &Signature::from_bytes(&sr.signature))
        .map_err(|_| ReceiptError::BadSignature {
            key_id: to_hex(&sr.key_id),
        })
}

/// An inclusion proof of one ledger entry in the tree a signature covers: what a Merkle
/// ledger hands over for the evidence tx of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    /// Digest of the evidence tx itself (the leaf's `tx_digest`).
    pub tx_digest: Hash,
    /// Audit path from the leaf up to the signed root (RFC 9162 order, leaf to root).
    pub path: Vec<Hash>,
}

/// The Merkle receipt of the snapshot with `claims`: proof that the evidence tx at
/// `evidence_idx` — the ledger entry recording the claims' digest — is in the tree whose root
/// the ledger signed in `signed`, by the inclusion `proof` of its leaf
/// ([`leaf_hash`](super::leaf_hash)`(proof.tx_digest, claims.digest())`). This is the
/// receipt the Snapshotter writes; [`Ed25519Verifier`](super::Ed25519Verifier) checks it
/// against the ledger's keys. Fails only for a proof longer than a receipt may carry.
///
/// ```
/// use snapseal_persist::receipt::{
///     leaf_hash, merkle_receipt, sign_root, Ed25519Verifier, Expected, InclusionProof,
///     MerkleTree, ReceiptVerifier,
/// };
/// use snapseal_persist::{Claims, Flags, SigningKey};
///
/// let ledger_key = SigningKey::from_bytes(&[9; 32]);
/// let claims = Claims {
///     idx: 3,
///     flags: Flags::NONE,
///     body_len: 5,
///     raw_len: 5,
///     body_digest: *blake3::hash(b"state").as_bytes(),
/// };
/// // The ledger: txs 1 to 3, the evidence tx recording the claims at 4, its signature at 5
/// // (which signs the tree of txs 1 to 4).
/// let mut tree = MerkleTree::new();
/// for tx in 1..=3u64 {
///     tree.push(leaf_hash(blake3::hash(&tx.to_le_bytes()).as_bytes(), &[0; 32]));
/// }
/// let evidence_tx = *blake3::hash(b"evidence tx").as_bytes();
/// tree.push(leaf_hash(&evidence_tx, &claims.digest()));
/// let signed = sign_root(&ledger_key, 5, &tree.root(4).unwrap());
/// let proof = InclusionProof { tx_digest: evidence_tx, path: tree.proof(3, 4).unwrap() };
///
/// let receipt = merkle_receipt(&claims, 4, proof, signed)?;
/// let verifier = Ed25519Verifier::new(vec![ledger_key.verifying_key()]);
/// let expected = Expected {
///     idx: 3,
///     evidence_idx: 4,
///     body_digest: claims.body_digest,
///     claims_digest: claims.digest(),
/// };
/// assert_eq!(verifier.verify(&receipt, &expected)?.sig_idx, 5);
/// # Ok::<(), snapseal_persist::receipt::ReceiptError>(())
/// ```
pub fn merkle_receipt(
    claims: &Claims,
    evidence_idx: u64,
    proof: InclusionProof,
    signed: SignedRoot,
) -> Result<Vec<u8>, ReceiptError> {
    Receipt {
        evidence_idx,
        evidence_tx_digest: proof.tx_digest,
        claims_digest: claims.digest(),
        path: proof.path,
        signed,
    }
    .encode()
}

/// A snapshot's receipt: proof that the evidence tx recording the snapshot's claims digest is
/// under a signed root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// Ledger index of the evidence transaction.
    pub evidence_idx: u64,
    /// Digest of the evidence transaction (opaque to snapseal; part of its leaf).
    pub evidence_tx_digest: Hash,
    /// Claims digest of the evidence leaf: the snapshot's
    /// [`Claims::digest`](crate::format::Claims::digest) (idx, flags, lengths, body digest).
    pub claims_digest: Hash,
    /// Inclusion path of leaf `evidence_idx - 1` in the tree of size `sig_idx - 1`, leaf to root.
    pub path: Vec<Hash>,
    /// The signature transaction's signed root.
    pub signed: SignedRoot,
}

impl Receipt {
    /// Build a receipt from the ledger's tree: the proof of leaf `evidence_idx - 1` up to the
    /// tree size signed in `signed`. Fails if the tree does not reproduce the signed root (the
    /// caller passed the wrong tree or signature) or the indices make no proof possible.
    pub fn prove(
        tree: &MerkleTree,
        evidence_idx: u64,
        evidence_tx_digest: Hash,
        claims_digest: Hash,
        signed: SignedRoot,
    ) -> Result<Receipt, ReceiptError> {
        let (index, size) = receipt_position(evidence_idx, signed.sig_idx)?;
        let mismatch = ReceiptError::TreeMismatch {
            len: tree.len(),
            leaf_index: index,
            sig_idx: signed.sig_idx,
        };
        if tree.root(size) != Some(signed.root) {
            return Err(mismatch);
        }
        let path = tree.proof(index, size).ok_or(mismatch)?;
        Ok(Receipt {
            evidence_idx,
            evidence_tx_digest,
            claims_digest,
            path,
            signed,
        })
    }

    /// The tagged COSE_Sign1 bytes (deterministic: equal receipts give equal bytes).
    pub fn encode(&self) -> Result<Vec<u8>, ReceiptError> {
        if self.path.len() > MAX_PROOF_LEN {
            return Err(ReceiptError::Encode(format!(
                "proof path has {} hashes, at most {MAX_PROOF_LEN} allowed",
                self.path.len()
            )));
        }
        let path = self.path.iter().map(|h| Value::Bytes(h.to_vec())).collect();
        let unprotected = HeaderBuilder::new()
            .value(LABEL_VERSION, Value::Integer(RECEIPT_VERSION.into()))
            .value(LABEL_EVIDENCE_IDX, Value::Integer(self.evidence_idx.into()))
            .value(
                LABEL_EVIDENCE_TX_DIGEST,
                Value::Bytes(self.evidence_tx_digest.to_vec()),
            )
            .value(
                LABEL_CLAIMS_DIGEST,
                Value::Bytes(self.claims_digest.to_vec()),
            )
            .value(LABEL_PROOF_PATH, Value::Array(path))
            .build();
        let sign1 = CoseSign1 {
            protected: protected(&self.signed.key_id),
            unprotected,
            payload: Some(payload(self.signed.sig_idx, &self.signed.root).to_vec()),
            signature: self.signed.signature.to_vec(),
        };
        encode_tagged(sign1)
    }

    /// Parse receipt bytes strictly. Does not verify anything cryptographic; see
    /// [`super::Ed25519Verifier`].
    pub fn decode(bytes: &[u8]) -> Result<Receipt, ReceiptError> {
        let sign1 = parse_tagged(bytes)?;
        let key_id = decode_protected(&sign1.protected)?;
        let (sig_idx, root) = decode_payload(sign1.payload.as_deref())?;
        let signature: [u8; 64] = sign1.signature.as_slice().try_into().map_err(|_| {
            decode_err(format!(
                "signature is {} bytes, expected 64",
                sign1.signature.len()
            ))
        })?;
        let fields = UnprotectedFields::decode(sign1.unprotected)?;
        let receipt = Receipt {
            evidence_idx: fields.evidence_idx,
            evidence_tx_digest: fields.evidence_tx_digest,
            claims_digest: fields.claims_digest,
            path: fields.path,
            signed: SignedRoot {
                sig_idx,
                root,
                key_id,
                signature,
            },
        };
        // One meaning, one encoding: reject anything our encoder would not have written
        // (non-minimal integers, reordered or indefinite-length items, ...).
        if receipt.encode()? != bytes {
            return Err(decode_err("not in canonical encoding".into()));
        }
        Ok(receipt)
    }
}

/// The unprotected header's fields, before they join the signed part.
struct UnprotectedFields {
    evidence_idx: u64,
    evidence_tx_digest: Hash,
    claims_digest: Hash,
    path: Vec<Hash>,
}

impl UnprotectedFields {
    fn decode(mut header: Header) -> Result<Self, ReceiptError> {
        let mut rest = std::mem::take(&mut header.rest);
        // Standard COSE parameters have no place in this receipt's unprotected header.
        if header != Header::default() {
            return Err(decode_err("unexpected standard unprotected header".into()));
        }
        // Version first, so a future receipt with other labels reports its version.
        let version = take(&mut rest, LABEL_VERSION)?;
        let version = match version {
            Value::Integer(i) => i128::from(i),
            other => return Err(type_err(LABEL_VERSION, "uint", &other)),
        };
        if version != i128::from(RECEIPT_VERSION) {
            return Err(ReceiptError::UnsupportedVersion {
                supported: RECEIPT_VERSION,
                actual: version,
            });
        }
        let evidence_idx = match take(&mut rest, LABEL_EVIDENCE_IDX)? {
            Value::Integer(i) => u64::try_from(i).map_err(|_| {
                decode_err(format!(
                    "label {LABEL_EVIDENCE_IDX}: evidence index {} is not a u64",
                    i128::from(i)
                ))
            })?,
            other => return Err(type_err(LABEL_EVIDENCE_IDX, "uint", &other)),
        };
        let evidence_tx_digest = hash32(
            LABEL_EVIDENCE_TX_DIGEST,
            take(&mut rest, LABEL_EVIDENCE_TX_DIGEST)?,
        )?;
        let claims_digest = hash32(LABEL_CLAIMS_DIGEST, take(&mut rest, LABEL_CLAIMS_DIGEST)?)?;
        let path = match take(&mut rest, LABEL_PROOF_PATH)? {
            Value::Array(items) if items.len() > MAX_PROOF_LEN => {
                return Err(decode_err(format!(
                    "label {LABEL_PROOF_PATH}: {} hashes, at most {MAX_PROOF_LEN}",
                    items.len()
                )))
            }
            Value::Array(items) => items
                .into_iter()
                .map(|v| hash32(LABEL_PROOF_PATH, v))
                .collect::<Result<Vec<_>, _>>()?,
            other => return Err(type_err(LABEL_PROOF_PATH, "array", &other)),
        };
        if let Some((label, _)) = rest.first() {
            return Err(decode_err(format!(
                "unexpected unprotected label {label:?}"
            )));
        }
        Ok(UnprotectedFields {
            evidence_idx,
            evidence_tx_digest,
            claims_digest,
            path,
        })
    }
}

/// Remove and return the value under `label`; missing is an error (every label is required).
fn take(rest: &mut Vec<(Label, Value)>, label: i64) -> Result<Value, ReceiptError> {
    let pos = rest
        .iter()
        .position(|(l, _)| *l == Label::Int(label))
        .ok_or_else(|| decode_err(format!("missing unprotected label {label}")))?;
    Ok(rest.remove(pos).1)
}

/// A 32-byte bstr.
fn hash32(label: i64, value: Value) -> Result<Hash, ReceiptError> {
    match value {
        Value::Bytes(b) => b.as_slice().try_into().map_err(|_| {
            decode_err(format!(
                "label {label}: {} bytes, expected a 32-byte hash",
                b.len()
            ))
        }),
        other => Err(type_err(label, "bstr", &other)),
    }
}

/// The protected header must be exactly `{alg: EdDSA, kid: 8 bytes, scheme: 1}`; returns the
/// kid.
fn decode_protected(p: &ProtectedHeader) -> Result<[u8; 8], ReceiptError> {
    let key_id: [u8; 8] = p.header.key_id.as_slice().try_into().map_err(|_| {
        decode_err(format!(
            "protected kid is {} bytes, expected 8",
            p.header.key_id.len()
        ))
    })?;
    if p.header.alg != Some(RegisteredLabelWithPrivate::Assigned(iana::Algorithm::EdDSA)) {
        return Err(decode_err(format!(
            "protected alg is {:?}, expected EdDSA ({})",
            p.header.alg,
            iana::Algorithm::EdDSA.to_i64()
        )));
    }
    if p.header != protected(&key_id).header {
        return Err(decode_err(
            "protected header is not exactly alg, kid and scheme 1 (Merkle)".into(),
        ));
    }
    Ok(key_id)
}

/// `sig_idx (u64 BE) || root`.
fn decode_payload(payload: Option<&[u8]>) -> Result<(u64, Hash), ReceiptError> {
    let payload: &[u8; PAYLOAD_LEN] = payload
        .ok_or_else(|| decode_err("payload is detached, expected it attached".into()))?
        .try_into()
        .map_err(|_| decode_err(format!("payload is not {PAYLOAD_LEN} bytes")))?;
    let mut idx = [0u8; 8];
    idx.copy_from_slice(&payload[..8]);
    let mut root: Hash = [0u8; 32];
    root.copy_from_slice(&payload[8..]);
    Ok((u64::from_be_bytes(idx), root))
}

/// The protected header for `key_id`: `{1: -8, 4: h'<kid>', -70000: 1}`.
fn protected(key_id: &[u8; 8]) -> ProtectedHeader {
    ProtectedHeader {
        original_data: None,
        header: HeaderBuilder::new()
            .algorithm(iana::Algorithm::EdDSA)
            .key_id(key_id.to_vec())
            .value(LABEL_SCHEME, Value::Integer(SchemeId::MERKLE.0.into()))
            .build(),
    }
}

fn payload(sig_idx: u64, root: &Hash) -> [u8; PAYLOAD_LEN] {
    let mut p = [0u8; PAYLOAD_LEN];
    p[..8].copy_from_slice(&sig_idx.to_be_bytes());
    p[8..].copy_from_slice(root);
    p
}

/// The COSE Sig_structure bytes that Ed25519 signs, external_aad empty.
fn to_be_signed(key_id: &[u8; 8], sig_idx: u64, root: &Hash) -> Vec<u8> {
    sig_structure_data(
        SignatureContext::CoseSign1,
        protected(key_id),
        None,
        &[],
        &payload(sig_idx, root),
    )
}

/// The tagged COSE_Sign1 inside receipt bytes of either scheme, size-capped before parsing.
pub(super) fn parse_tagged(bytes: &[u8]) -> Result<CoseSign1, ReceiptError> {
    if bytes.len() > MAX_RECEIPT_LEN {
        return Err(decode_err(format!(
            "{} bytes, at most {MAX_RECEIPT_LEN} allowed",
            bytes.len()
        )));
    }
    CoseSign1::from_tagged_slice(bytes)
        .map_err(|e| decode_err(format!("not a tagged COSE_Sign1: {e}")))
}

/// `sign1` as tagged CBOR, the encoding both schemes store.
pub(super) fn encode_tagged(sign1: CoseSign1) -> Result<Vec<u8>, ReceiptError> {
    sign1
        .to_tagged_vec()
        .map_err(|e| ReceiptError::Encode(format!("COSE_Sign1: {e}")))
}

pub(super) fn decode_err(detail: String) -> ReceiptError {
    ReceiptError::Decode(detail)
}

pub(super) fn type_err(label: i64, expected: &str, found: &Value) -> ReceiptError {
    let found = match found {
        Value::Integer(_) => "int",
        Value::Bytes(_) => "bstr",
        Value::Float(_) => "float",
        Value::Text(_) => "tstr",
        Value::Bool(_) => "bool",
        Value::Null => "null",
        Value::Tag(..) => "tag",
        Value::Array(_) => "array",
        Value::Map(_) => "map",
        _ => "other",
    };
    decode_err(format!("label {label}: expected {expected}, found {found}"))
}
