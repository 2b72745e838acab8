//! A committed snapshot file checked as it streams past, in bounded memory: what export
//! checks before it includes a file and import before it stages one, and where the proof
//! that ties a snapshot to its ledger comes from.
//!
//! The checks are the reader's (docs/FORMAT.md §7), on a stream: header (decoded from the
//! first 160 bytes and compared with the file's name and length before anything else is
//! read), receipt digest, receipt against the trusted keys for the claims recomputed from the
//! header, body digest. The body-encoding step (a zstd body decodes as one frame of
//! `raw_len` bytes) needs the body whole: import leaves it to the store's ingest, which
//! runs the complete verification again on the file before it gets its committed name.

use snapseal_persist::internals::format::{Flags, Header, HEADER_LEN};
use snapseal_persist::internals::receipt::{Receipt, MAX_RECEIPT_LEN};
use snapseal_persist::receipt::{Expected, ReceiptVerifier, SchemeId};
use snapseal_persist::{Hash, SnapshotName};

/// What a snapshot's receipt proves about its ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SnapshotProof {
    /// The snapshot.
    pub(crate) name: SnapshotName,
    /// The signature index the receipt proves committed (a statement receipt: the commit
    /// index it vouches for).
    pub(crate) sig_idx: u64,
    /// The Merkle root over entries `1 ..= sig_idx - 1` the ledger signed at `sig_idx`
    /// (built-in Merkle receipts only; a signed statement carries no root).
    pub(crate) root: Option<Hash>,
    /// Its body is a chunk list (flag bit 1, docs/FORMAT.md §2.2): the snapshot's bytes are
    /// chunks kept beside it.
    pub(crate) chunked: bool,
}

/// A snapshot file being checked as its bytes pass.
pub(crate) struct SnapshotCheck<'v> {
    verifier: &'v dyn ReceiptVerifier,
    name: SnapshotName,
    len: u64,
    pos: u64,
    head: Vec<u8>,
    header: Option<Header>,
    body: blake3::Hasher,
    receipt: Vec<u8>,
}

impl<'v> SnapshotCheck<'v> {
    /// Checks the file called `name`, `len` bytes long, with `verifier`.
    pub(crate) fn new(name: SnapshotName, len: u64, verifier: &'v dyn ReceiptVerifier) -> Self {
        SnapshotCheck {
            verifier,
            name,
            len,
            pos: 0,
            head: Vec::with_capacity(HEADER_LEN),
            header: None,
            body: blake3::Hasher::new(),
            receipt: Vec::new(),
        }
    }

    /// The next bytes of the file. Fails as soon as the header is complete and wrong.
    pub(crate) fn update(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        if self.header.is_none() {
            let take = bytes.len().min(HEADER_LEN - self.head.len());
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            self.pos += take as u64;
            if self.head.len() < HEADER_LEN {
                return Ok(());
            }
            self.header = Some(self.check_header()?);
        }
        let Some(h) = &self.header else {
            return Ok(());
        };
        let body_end = HEADER_LEN as u64 + h.body_len;
        let left = self.len - self.pos;
        if bytes.len() as u64 > left {
            return Err(format!(
                "longer than the {} bytes its header gives",
                self.len
            ));
        }
        let in_body = usize::try_from(body_end.saturating_sub(self.pos))
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        self.body.update(&bytes[..in_body]);
        self.receipt.extend_from_slice(&bytes[in_body..]);
        self.pos += bytes.len() as u64;
        Ok(())
    }

    fn check_header(&self) -> Result<Header, String> {
        let h = Header::decode(&self.head).map_err(|e| format!("header: {e}"))?;
        if (h.idx, h.evidence_idx) != (self.name.idx, self.name.evidence_idx) {
            return Err(format!(
                "its header is for snapshot {} at evidence {}, its name says {}",
                h.idx, h.evidence_idx, self.name
            ));
        }
        let file_len = h.file_len().map_err(|e| format!("header: {e}"))?;
        if file_len != self.len {
            return Err(format!("{} bytes, its header gives {file_len}", self.len));
        }
        if h.receipt_len > MAX_RECEIPT_LEN as u64 {
            return Err(format!(
                "a receipt of {} bytes, more than any receipt ({MAX_RECEIPT_LEN})",
                h.receipt_len
            ));
        }
        Ok(h)
    }

    /// All bytes have passed: checks the receipt and the body digest.
    pub(crate) fn finish(self) -> Result<SnapshotProof, String> {
        let Some(h) = self.header else {
            return Err(format!(
                "{} bytes, shorter than a snapshot header",
                self.head.len()
            ));
        };
        if self.pos != self.len {
            return Err(format!("ends after {} of {} bytes", self.pos, self.len));
        }
        if *blake3::hash(&self.receipt).as_bytes() != h.receipt_digest {
            return Err("the receipt does not match the header's receipt digest".into());
        }
        let verified = self
            .verifier
            .verify(&self.receipt, &Expected::of(&h))
            .map_err(|e| format!("receipt: {e}"))?;
        if *self.body.finalize().as_bytes() != h.body_digest {
            return Err("the body does not match the header's body digest".into());
        }
        let root = if verified.scheme == SchemeId::MERKLE {
            let r = Receipt::decode(&self.receipt).map_err(|e| format!("receipt: {e}"))?;
            if r.signed.sig_idx != verified.sig_idx {
                return Err("the receipt's signature index is not the one it proves".into());
            }
            Some(r.signed.root)
        } else {
            None
        };
        Ok(SnapshotProof {
            name: self.name,
            sig_idx: verified.sig_idx,
            root,
            chunked: h.flags.contains(Flags::CHUNKED),
        })
    }
}
