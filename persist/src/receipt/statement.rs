//! The signed-statement scheme, for ledgers without a Merkle tree (e.g. Raft logs): the node's
//! Ed25519 key signs the snapshot's claims digest together with its index and the commit
//! index, directly. No proof path; trust rests entirely on the key.
//!
//! ```text
//! COSE_Sign1 (tag 18) = [
//!   protected:   bstr .cbor { 1 (alg): -8 (EdDSA), 4 (kid): bstr(8), -70000 (scheme): 2,
//!                             -70010: uint (idx), -70011: uint (commit_idx = evidence_idx),
//!                             ? -70012: uint (term) },
//!   unprotected: {},
//!   payload:     bstr(32) = claims digest,
//!   signature:   bstr(64) = Ed25519 over Sig_structure("Signature1", protected, h'', payload),
//! ]
//! ```
//!
//! Every field is signed. Decoding is strict in the same way as the Merkle receipt's: only the
//! bytes [`SignedStatement::encode`] produces are accepted.

use coset::cbor::value::Value;
use coset::iana;
use coset::{
    sig_structure_data, CoseSign1, Header, HeaderBuilder, Label, ProtectedHeader,
    RegisteredLabelWithPrivate, SignatureContext,
};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::cose::{decode_err, encode_tagged, key_id, parse_tagged, type_err};
use super::error::ReceiptError;
use super::scheme::{ReceiptScheme, SchemeId, LABEL_SCHEME};
use super::{Expected, VerifiedReceipt};
use crate::format::Claims;
use crate::hex::to_hex;
use crate::Hash;

/// Protected label: the snapshot index the statement is about (uint).
pub const LABEL_STATEMENT_IDX: i64 = -70010;
/// Protected label: the commit index the statement vouches for; the file's `evidence_idx`
/// (uint).
pub const LABEL_STATEMENT_COMMIT_IDX: i64 = -70011;
/// Protected label, optional: the term of the entry at the commit index, for a Raft-style log
/// (uint). Signed and reported, not compared with anything in the file.
pub const LABEL_STATEMENT_TERM: i64 = -70012;

/// The receipt of the [`SchemeId::STATEMENT`] scheme for the snapshot with `claims`: `key`'s
/// signed statement that it is committed at `commit_idx` (the file's `evidence_idx`, which
/// must follow `claims.idx`), in log term `term` when the ledger has terms. A store trusts it
/// when `key`'s verifying key is among its statement keys
/// ([`Ed25519Verifier::with_statement_keys`](super::Ed25519Verifier::with_statement_keys), or
/// a [`StatementScheme`] in [`Schemes`](super::Schemes)); the term is reported in
/// [`VerifiedReceipt::term`].
///
/// ```
/// use snapseal_persist::receipt::{statement_receipt, Ed25519Verifier, Expected, ReceiptVerifier};
/// use snapseal_persist::{Claims, Flags, SigningKey};
///
/// let key = SigningKey::from_bytes(&[7; 32]);
/// let claims = Claims {
///     idx: 41,
///     flags: Flags::NONE,
///     body_len: 5,
///     raw_len: 5,
///     body_digest: *blake3::hash(b"state").as_bytes(),
/// };
/// let receipt = statement_receipt(&key, &claims, 42, Some(3))?;
///
/// let verifier = Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![key.verifying_key()]);
/// let expected = Expected {
///     idx: 41,
///     evidence_idx: 42,
///     body_digest: claims.body_digest,
///     claims_digest: claims.digest(),
/// };
/// let verified = verifier.verify(&receipt, &expected)?;
/// assert_eq!((verified.sig_idx, verified.term), (42, Some(3)));
/// // The same receipt does not prove other claims.
/// let other = Expected { idx: 40, ..expected };
/// assert!(verifier.verify(&receipt, &other).is_err());
/// # Ok::<(), snapseal_persist::receipt::ReceiptError>(())
/// ```
pub fn statement_receipt(
    key: &SigningKey,
    claims: &Claims,
    commit_idx: u64,
    term: Option<u64>,
) -> Result<Vec<u8>, ReceiptError> {
    SignedStatement::sign(key, claims, commit_idx, term)?.encode()
}

/// A node's signed statement that the snapshot with these claims is committed at
/// `commit_idx`: the receipt of the [`SchemeId::STATEMENT`] scheme.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedStatement {
    /// The snapshot index (the header's `idx`; also inside the claims digest).
    pub idx: u64,
    /// The commit index vouched for: the file's `evidence_idx`, always greater than `idx`.
    pub commit_idx: u64,
    /// The log term at `commit_idx`, when the ledger has terms.
    pub term: Option<u64>,
    /// The snapshot's [`Claims::digest`].
    pub claims_digest: Hash,
    /// [`key_id`] of the signing key.
    pub key_id: [u8; 8],
    /// Ed25519 signature over the COSE Sig_structure.
    pub signature: [u8; 64],
}

impl SignedStatement {
    /// Sign a statement that the snapshot described by `claims` is committed at `commit_idx`
    /// (the file's `evidence_idx`). Refuses `commit_idx <= claims.idx`, which no file may
    /// carry (the format requires `idx < evidence_idx`).
    pub fn sign(
        key: &SigningKey,
        claims: &Claims,
        commit_idx: u64,
        term: Option<u64>,
    ) -> Result<SignedStatement, ReceiptError> {
        if commit_idx <= claims.idx {
            return Err(ReceiptError::Encode(format!(
                "statement for idx {} at commit index {commit_idx}: the commit index must \
                 follow the snapshot",
                claims.idx
            )));
        }
        let key_id = key_id(&key.verifying_key());
        let claims_digest = claims.digest();
        let tbs = to_be_signed(&key_id, claims.idx, commit_idx, term, &claims_digest);
        Ok(SignedStatement {
            idx: claims.idx,
            commit_idx,
            term,
            claims_digest,
            key_id,
            signature: key.sign(&tbs).to_bytes(),
        })
    }

    /// Check the signature was made by `key` (strict Ed25519).
    pub fn verify_signature(&self, key: &VerifyingKey) -> Result<(), ReceiptError> {
        let actual = key_id(key);
        if actual != self.key_id {
            return Err(ReceiptError::KeyIdMismatch {
                expected: to_hex(&self.key_id),
                actual: to_hex(&actual),
            });
        }
        let tbs = to_be_signed(
            &self.key_id,
            self.idx,
            self.commit_idx,
            self.term,
            &self.claims_digest,
        );
        key.verify_strict(&tbs, &Signature::from_bytes(&self.signature))
            .map_err(|_| ReceiptError::BadSignature {
                key_id: to_hex(&self.key_id),
            })
    }

    /// The tagged COSE_Sign1 bytes (deterministic: equal statements give equal bytes).
    pub fn encode(&self) -> Result<Vec<u8>, ReceiptError> {
        let sign1 = CoseSign1 {
            protected: protected(&self.key_id, self.idx, self.commit_idx, self.term),
            unprotected: Header::default(),
            payload: Some(self.claims_digest.to_vec()),
            signature: self.signature.to_vec(),
        };
        encode_tagged(sign1)
    }

    /// Parse statement bytes strictly. Verifies nothing cryptographic; see
    /// [`StatementScheme`].
    pub fn decode(bytes: &[u8]) -> Result<SignedStatement, ReceiptError> {
        let sign1 = parse_tagged(bytes)?;
        if sign1.unprotected != Header::default() {
            return Err(decode_err(
                "a signed statement's unprotected header must be empty".into(),
            ));
        }
        let (key_id, idx, commit_idx, term) = decode_protected(&sign1.protected)?;
        let claims_digest = match sign1.payload {
            Some(p) => p.as_slice().try_into().map_err(|_| {
                decode_err(format!(
                    "payload is {} bytes, expected a 32-byte claims digest",
                    p.len()
                ))
            })?,
            None => {
                return Err(decode_err(
                    "payload is detached, expected it attached".into(),
                ))
            }
        };
        let signature: [u8; 64] = sign1.signature.as_slice().try_into().map_err(|_| {
            decode_err(format!(
                "signature is {} bytes, expected 64",
                sign1.signature.len()
            ))
        })?;
        let statement = SignedStatement {
            idx,
            commit_idx,
            term,
            claims_digest,
            key_id,
            signature,
        };
        // One meaning, one encoding, as for the Merkle receipt.
        if statement.encode()? != bytes {
            return Err(decode_err("not in canonical encoding".into()));
        }
        Ok(statement)
    }
}

/// Verifies signed statements against a fixed set of trusted node keys.
#[derive(Clone, Debug)]
pub struct StatementScheme {
    keys: Vec<([u8; 8], VerifyingKey)>,
}

impl StatementScheme {
    /// Trust statements signed by exactly `keys`.
    pub fn new(keys: Vec<VerifyingKey>) -> Self {
        let keys = keys.into_iter().map(|k| (key_id(&k), k)).collect();
        StatementScheme { keys }
    }
}

impl ReceiptScheme for StatementScheme {
    fn id(&self) -> SchemeId {
        SchemeId::STATEMENT
    }

    /// Order: decode; the commit index equals the file's `evidence_idx`; the claims digest
    /// equals the one recomputed from the header; the idx equals the header's; a trusted key
    /// with that key id verifies the signature (strict Ed25519).
    fn verify(&self, receipt: &[u8], expected: &Expected) -> Result<VerifiedReceipt, ReceiptError> {
        let s = SignedStatement::decode(receipt)?;
        if s.commit_idx != expected.evidence_idx {
            return Err(ReceiptError::EvidenceIndexMismatch {
                expected: expected.evidence_idx,
                actual: s.commit_idx,
            });
        }
        if s.claims_digest != expected.claims_digest {
            return Err(ReceiptError::DigestMismatch {
                expected: expected.claims_digest,
                actual: s.claims_digest,
            });
        }
        if s.idx != expected.idx {
            return Err(ReceiptError::IdxMismatch {
                expected: expected.idx,
                actual: s.idx,
            });
        }
        let signer = to_hex(&s.key_id);
        let mut candidates = self
            .keys
            .iter()
            .filter(|(id, _)| *id == s.key_id)
            .peekable();
        if candidates.peek().is_none() {
            return Err(ReceiptError::UntrustedKey { key_id: signer });
        }
        if candidates.any(|(_, key)| s.verify_signature(key).is_ok()) {
            Ok(VerifiedReceipt {
                sig_idx: s.commit_idx,
                signer,
                scheme: SchemeId::STATEMENT,
                term: s.term,
            })
        } else {
            Err(ReceiptError::BadSignature { key_id: signer })
        }
    }
}

/// `{1: -8, 4: kid, -70000: 2, -70010: idx, -70011: commit_idx, ? -70012: term}`.
fn protected(key_id: &[u8; 8], idx: u64, commit_idx: u64, term: Option<u64>) -> ProtectedHeader {
    let mut header = HeaderBuilder::new()
        .algorithm(iana::Algorithm::EdDSA)
        .key_id(key_id.to_vec())
        .value(LABEL_SCHEME, Value::Integer(SchemeId::STATEMENT.0.into()))
        .value(LABEL_STATEMENT_IDX, Value::Integer(idx.into()))
        .value(
            LABEL_STATEMENT_COMMIT_IDX,
            Value::Integer(commit_idx.into()),
        );
    if let Some(term) = term {
        header = header.value(LABEL_STATEMENT_TERM, Value::Integer(term.into()));
    }
    ProtectedHeader {
        original_data: None,
        header: header.build(),
    }
}

/// The protected header must be exactly what [`protected`] builds for its values; returns
/// `(kid, idx, commit_idx, term)`.
fn decode_protected(p: &ProtectedHeader) -> Result<([u8; 8], u64, u64, Option<u64>), ReceiptError> {
    let key_id: [u8; 8] = p.header.key_id.as_slice().try_into().map_err(|_| {
        decode_err(format!(
            "protected kid is {} bytes, expected 8",
            p.header.key_id.len()
        ))
    })?;
    if p.header.alg != Some(RegisteredLabelWithPrivate::Assigned(iana::Algorithm::EdDSA)) {
        return Err(decode_err(format!(
            "protected alg is {:?}, expected EdDSA",
            p.header.alg
        )));
    }
    let uint = |label: i64| -> Result<Option<u64>, ReceiptError> {
        match p.header.rest.iter().find(|(l, _)| *l == Label::Int(label)) {
            None => Ok(None),
            Some((_, Value::Integer(i))) => u64::try_from(*i)
                .map(Some)
                .map_err(|_| decode_err(format!("label {label}: {} is not a u64", i128::from(*i)))),
            Some((_, other)) => Err(type_err(label, "uint", other)),
        }
    };
    let missing = |label: i64| decode_err(format!("missing protected label {label}"));
    let idx = uint(LABEL_STATEMENT_IDX)?.ok_or_else(|| missing(LABEL_STATEMENT_IDX))?;
    let commit_idx =
        uint(LABEL_STATEMENT_COMMIT_IDX)?.ok_or_else(|| missing(LABEL_STATEMENT_COMMIT_IDX))?;
    let term = uint(LABEL_STATEMENT_TERM)?;
    // Anything else (another parameter, another scheme id, another order) is refused.
    if p.header != protected(&key_id, idx, commit_idx, term).header {
        return Err(decode_err(
            "protected header is not exactly alg, kid, scheme 2 (statement), idx, commit index \
             and optional term"
                .into(),
        ));
    }
    Ok((key_id, idx, commit_idx, term))
}

/// The COSE Sig_structure bytes that Ed25519 signs, external_aad empty.
fn to_be_signed(
    key_id: &[u8; 8],
    idx: u64,
    commit_idx: u64,
    term: Option<u64>,
    claims_digest: &Hash,
) -> Vec<u8> {
    sig_structure_data(
        SignatureContext::CoseSign1,
        protected(key_id, idx, commit_idx, term),
        None,
        &[],
        claims_digest,
    )
}
