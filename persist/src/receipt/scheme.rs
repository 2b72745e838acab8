//! Receipt schemes: which ledger scheme a receipt belongs to, read from the receipt itself, and
//! the dispatch from a receipt to the scheme that verifies it.
//!
//! Every receipt is a tagged COSE_Sign1 whose protected header carries the scheme identifier
//! under [`LABEL_SCHEME`]. Being protected, the identifier is covered by the signature: a
//! signature made for one scheme cannot be presented as another's.

use std::fmt;
use std::sync::Arc;

use coset::cbor::value::Value;
use coset::{CoseSign1, Label, TaggedCborSerializable};

use super::cose::MAX_RECEIPT_LEN;
use super::error::ReceiptError;
use super::{Expected, ReceiptVerifier, VerifiedReceipt};

/// Protected header label of the receipt scheme identifier (uint). In COSE's private-use range.
pub const LABEL_SCHEME: i64 = -70000;

/// Identifies a receipt scheme; carried in every receipt's protected header under the
/// private-use label -70000. Values `1..=1023` are reserved for snapseal's own schemes; an embedding
/// node's own scheme takes a value from 1024 on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchemeId(pub u64);

impl SchemeId {
    /// The built-in CCF-style scheme: a Merkle inclusion proof of the evidence transaction
    /// under a root the ledger signed ([`merkle_receipt`](super::merkle_receipt)).
    pub const MERKLE: SchemeId = SchemeId(1);
    /// The signed-statement scheme for ledgers without a Merkle tree (e.g. Raft logs): a node
    /// key signs the claims digest and the commit index directly
    /// ([`statement_receipt`](super::statement_receipt)).
    pub const STATEMENT: SchemeId = SchemeId(2);

    internals_pub! {
        /// A short name for logs and tools: `merkle`, `statement`, or `scheme <n>`.
        fn name(self) -> String {
            match self {
                SchemeId::MERKLE => "merkle".into(),
                SchemeId::STATEMENT => "statement".into(),
                SchemeId(n) => format!("scheme {n}"),
            }
        }
    }

    internals_pub! {
        /// Whether snapseal itself defines this identifier.
        fn is_builtin(self) -> bool {
            matches!(self, SchemeId::MERKLE | SchemeId::STATEMENT)
        }
    }
}

impl fmt::Display for SchemeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SchemeId::MERKLE | SchemeId::STATEMENT => write!(f, "{} ({})", self.name(), self.0),
            SchemeId(n) => write!(f, "{n}"),
        }
    }
}

/// The scheme a receipt names: decodes the COSE_Sign1 envelope and reads the protected
/// [`LABEL_SCHEME`] parameter. Checks nothing else; the scheme's own decoder is strict.
pub fn scheme_of(receipt: &[u8]) -> Result<SchemeId, ReceiptError> {
    if receipt.len() > MAX_RECEIPT_LEN {
        return Err(ReceiptError::Decode(format!(
            "{} bytes, at most {MAX_RECEIPT_LEN} allowed",
            receipt.len()
        )));
    }
    let sign1 = CoseSign1::from_tagged_slice(receipt)
        .map_err(|e| ReceiptError::Decode(format!("not a tagged COSE_Sign1: {e}")))?;
    let value = sign1
        .protected
        .header
        .rest
        .iter()
        .find(|(label, _)| *label == Label::Int(LABEL_SCHEME))
        .map(|(_, value)| value)
        .ok_or(ReceiptError::MissingScheme)?;
    match value {
        Value::Integer(i) => u64::try_from(*i).map(SchemeId).map_err(|_| {
            ReceiptError::Decode(format!(
                "protected label {LABEL_SCHEME}: scheme {} is not a u64",
                i128::from(*i)
            ))
        }),
        _ => Err(ReceiptError::Decode(format!(
            "protected label {LABEL_SCHEME}: scheme is not a uint"
        ))),
    }
}

/// One ledger receipt scheme: the seam through which an embedding node uses another ledger
/// scheme. Its receipts must be tagged COSE_Sign1 objects naming [`id`](ReceiptScheme::id)
/// under the protected parameter -70000 (see [`SchemeId`]), and must bind the file's claims
/// digest
/// ([`Expected::claims_digest`]) and evidence index.
///
/// How a receipt is built is the scheme's own business (its inputs differ: a Merkle proof and
/// a ledger signature, or a signing key); the built-in ones are made by
/// [`merkle_receipt`](super::merkle_receipt) and [`statement_receipt`](super::statement_receipt).
pub trait ReceiptScheme: Send + Sync + fmt::Debug {
    /// The identifier this scheme's receipts carry.
    fn id(&self) -> SchemeId;

    /// Verify `receipt` (which names this scheme) against what the file claims. Must not
    /// panic on any bytes. A signer outside the trusted set is
    /// [`ReceiptError::UntrustedKey`], so a store passes the file over instead of
    /// quarantining it.
    fn verify(&self, receipt: &[u8], expected: &Expected) -> Result<VerifiedReceipt, ReceiptError>;
}

/// A [`ReceiptVerifier`] over several schemes: reads the scheme a receipt names and hands it
/// to the configured scheme with that identifier.
///
/// - no scheme configured for a built-in identifier: [`ReceiptError::SchemeNotTrusted`] (a
///   configuration matter: a store passes such a file over);
/// - an identifier snapseal does not define and no scheme is configured for:
///   [`ReceiptError::UnknownScheme`].
#[derive(Clone, Debug, Default)]
pub struct Schemes {
    schemes: Vec<Arc<dyn ReceiptScheme>>,
}

impl Schemes {
    /// No scheme at all: every receipt is refused. Add schemes with [`with`](Self::with).
    pub fn new() -> Self {
        Self::default()
    }

    /// Also accept receipts of `scheme`; it replaces an earlier scheme with the same id.
    pub fn with(mut self, scheme: Arc<dyn ReceiptScheme>) -> Self {
        self.schemes.retain(|s| s.id() != scheme.id());
        self.schemes.push(scheme);
        self
    }

    internals_pub! {
        /// The configured scheme identifiers, in the order added.
        fn ids(&self) -> Vec<SchemeId> {
            self.schemes.iter().map(|s| s.id()).collect()
        }
    }
}

impl ReceiptVerifier for Schemes {
    fn verify(&self, receipt: &[u8], expected: &Expected) -> Result<VerifiedReceipt, ReceiptError> {
        let id = scheme_of(receipt)?;
        match self.schemes.iter().find(|s| s.id() == id) {
            // The id read from the receipt is the authority on which scheme it is.
            Some(scheme) => scheme
                .verify(receipt, expected)
                .map(|verified| VerifiedReceipt {
                    scheme: id,
                    ..verified
                }),
            None if id.is_builtin() => Err(ReceiptError::SchemeNotTrusted { scheme: id }),
            None => Err(ReceiptError::UnknownScheme { scheme: id }),
        }
    }
}
