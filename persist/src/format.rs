//! The committed file format: `header | body | receipt`.
//!
//! Pure bytes in, bytes out: nothing here touches the filesystem, so the writer, the reader, the
//! CLI and the fuzzers all share one definition. The authoritative description (offsets,
//! checksum, versioning rule) is `docs/FORMAT.md`; keep the two in step.
//!
//! Header layout (160 bytes, all integers little-endian):
//!
//! | off | len | field |
//! |----:|----:|-------|
//! |   0 |   8 | magic `b"SNAPSEAL"` |
//! |   8 |   2 | format_version (2) |
//! |  10 |   2 | header_len (160) |
//! |  12 |   4 | flags (bit 0: body is one zstd frame of raw_len bytes; bit 1: body is a chunk list) |
//! |  16 |   8 | idx |
//! |  24 |   8 | evidence_idx |
//! |  32 |   8 | body_len |
//! |  40 |   8 | receipt_len |
//! |  48 |   8 | raw_len |
//! |  56 |  32 | body_digest = BLAKE3(stored body) |
//! |  88 |  32 | receipt_digest = BLAKE3(receipt) |
//! | 120 |   8 | reserved, zero |
//! | 128 |  32 | header_checksum = BLAKE3 derive_key([`HEADER_CHECKSUM_CONTEXT`], bytes 0..128) |
//!
//! The checksum has no key: it reports accidental damage only. What the ledger proves is the
//! [`Claims`] digest over `idx`, `flags`, `body_len`, `raw_len` and `body_digest`; the reader
//! recomputes it from the header, so a header edited after the fact (checksum recomputed, file
//! renamed) fails verification.

use thiserror::Error;

use crate::hex::to_hex;

/// The first eight bytes of every committed file.
pub const MAGIC: [u8; 8] = *b"SNAPSEAL";

/// The only layout version this reader understands; any layout change bumps it. Version 2
/// put `idx`, `flags` and the lengths under the ledger's proof (the [`Claims`] digest).
pub const FORMAT_VERSION: u16 = 2;

/// Length of the fixed header in bytes (versions 1 and 2).
pub const HEADER_LEN: usize = 160;

/// BLAKE3 `derive_key` context string for the header checksum. Domain-separates the checksum from
/// every other BLAKE3 use in snapseal (body digest, Merkle nodes), so a header can never be passed
/// off as one of those.
pub const HEADER_CHECKSUM_CONTEXT: &str = "snapseal 2026 header checksum v1";

/// BLAKE3 `derive_key` context string for the [`Claims`] digest, the value the ledger's evidence
/// transaction records. Separates it from the body digest, the header checksum and Merkle nodes.
pub const CLAIMS_CONTEXT: &str = "snapseal 2026 snapshot claims v2";

/// Length of the [`Claims`] digest's key material: idx, flags, body_len, raw_len, body_digest.
pub const CLAIMS_MATERIAL_LEN: usize = 8 + 4 + 8 + 8 + 32;

/// Bodies at least this long are hashed on all cores (`update_rayon`); below it the thread
/// hand-off costs more than it saves.
pub const PARALLEL_HASH_THRESHOLD: usize = 1 << 20;

/// Byte range covered by the header checksum.
const CHECKSUMMED_LEN: usize = 128;

// Field offsets, named once so encode and decode cannot disagree.
const OFF_VERSION: usize = 8;
const OFF_HEADER_LEN: usize = 10;
const OFF_FLAGS: usize = 12;
const OFF_IDX: usize = 16;
const OFF_EVIDENCE_IDX: usize = 24;
const OFF_BODY_LEN: usize = 32;
const OFF_RECEIPT_LEN: usize = 40;
const OFF_RAW_LEN: usize = 48;
const OFF_BODY_DIGEST: usize = 56;
const OFF_RECEIPT_DIGEST: usize = 88;
const OFF_RESERVED: usize = 120;
const OFF_CHECKSUM: usize = 128;

/// Every flag bit this version knows ([`Flags::ZSTD`], [`Flags::CHUNKED`]).
const KNOWN_BITS: u32 = 0b11;

/// Header flags. Only known bits can be represented, so a `Header` in memory is always writable
/// and readable by this version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Flags(u32);

impl Flags {
    /// No optional behaviour.
    pub const NONE: Flags = Flags(0);
    /// The body is exactly one zstd frame that decodes to exactly `raw_len` bytes.
    pub const ZSTD: Flags = Flags(1);
    /// The body is a chunk list (docs/FORMAT.md §2.2): the snapshot's bytes are the
    /// concatenation of the chunks it names, `raw_len` of them, kept in the store's chunk
    /// packs. Never together with [`ZSTD`](Self::ZSTD).
    pub const CHUNKED: Flags = Flags(2);
    /// Every bit this version knows; any other set bit makes a header unreadable.
    #[cfg(feature = "internals")]
    pub const KNOWN: Flags = Flags(KNOWN_BITS);

    internals_pub! {
        /// The raw bit pattern as stored in the header.
        fn bits(self) -> u32 {
            self.0
        }
    }

    internals_pub! {
        /// Flags from a stored bit pattern; `None` if any bit is unknown to this version.
        fn from_bits(bits: u32) -> Option<Flags> {
            (bits & !KNOWN_BITS == 0).then_some(Flags(bits))
        }
    }

    /// True when every bit of `other` is set in `self`.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    internals_pub! {
        /// Both sets of bits.
        fn union(self, other: Flags) -> Flags {
            Flags(self.0 | other.0)
        }
    }
}

/// Everything that can be wrong with a committed file's bytes. Each variant carries the expected
/// and actual values so an operator can tell a truncated copy from a forged or foreign file.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// Fewer bytes than a header needs.
    #[error("too short for a snapseal header: need {needed} bytes, have {actual}")]
    TooShort {
        /// Bytes required.
        needed: usize,
        /// Bytes present.
        actual: usize,
    },
    /// The file does not start with `SNAPSEAL`.
    #[error("bad magic: expected {}, found {}", to_hex(&MAGIC), to_hex(.actual))]
    BadMagic {
        /// The first eight bytes found.
        actual: [u8; 8],
    },
    /// A version 1 file: its `idx`, `flags` and `raw_len` are not proven by the ledger, so it
    /// could be an older snapshot relabelled as newer. Not read; take a new snapshot.
    #[error("format version 1 is not supported: idx unproven; re-snapshot")]
    Version1Unsupported,
    /// `idx >= evidence_idx`: the evidence transaction must come after the state it records.
    #[error("idx {idx} is not before evidence_idx {evidence_idx}")]
    IdxNotBeforeEvidence {
        /// The snapshot index.
        idx: u64,
        /// The evidence transaction index.
        evidence_idx: u64,
    },
    /// A format version this reader does not know.
    #[error("unsupported format version {actual} (this reader supports {supported})")]
    UnsupportedVersion {
        /// The version this reader supports.
        supported: u16,
        /// The version stored in the header.
        actual: u16,
    },
    /// The header_len field disagrees with the version's fixed header length.
    #[error("bad header_len: expected {expected}, found {actual}")]
    BadHeaderLen {
        /// The length this version defines.
        expected: u16,
        /// The stored value.
        actual: u16,
    },
    /// Flag bits this version does not define (optional behaviour we cannot honour).
    #[error("unknown flag bits {unknown:#010x} (stored flags {bits:#010x})")]
    UnknownFlags {
        /// All stored flag bits.
        bits: u32,
        /// The bits this version does not know.
        unknown: u32,
    },
    /// Flag bits that this version defines but never allows together (zstd and chunked).
    #[error("flag bits {bits:#010x} may not be set together")]
    ExclusiveFlags {
        /// All stored flag bits.
        bits: u32,
    },
    /// A chunked body whose length is not a whole number of chunk list entries, or names
    /// more chunks than a chunk list may.
    #[error("chunk list of {body_len} bytes: not a whole number of {entry}-byte entries, or more than {max} of them")]
    ChunkListLength {
        /// The stored body length.
        body_len: u64,
        /// Bytes per entry.
        entry: u64,
        /// Most entries a chunk list may have.
        max: u64,
    },
    /// The reserved field is not zero.
    #[error("reserved header field must be zero, found {actual:#018x}")]
    ReservedNonZero {
        /// The stored value.
        actual: u64,
    },
    /// The header checksum does not match bytes 0..128.
    #[error("header checksum mismatch: stored {}, computed {}", to_hex(.stored), to_hex(.computed))]
    HeaderChecksum {
        /// Checksum stored at offset 128.
        stored: [u8; 32],
        /// Checksum computed over the header bytes.
        computed: [u8; 32],
    },
    /// header_len + body_len + receipt_len does not fit in a u64 (or in memory on this platform).
    #[error("lengths overflow: header {HEADER_LEN} + body {body_len} + receipt {receipt_len}")]
    LengthOverflow {
        /// Stored body length.
        body_len: u64,
        /// Stored receipt length.
        receipt_len: u64,
    },
    /// A length disagrees with what the header says.
    #[error("{what} length mismatch: expected {expected}, actual {actual}")]
    LengthMismatch {
        /// Which length: "file", "body" or "raw (uncompressed body)".
        what: &'static str,
        /// The length the header implies.
        expected: u64,
        /// The length found.
        actual: u64,
    },
    /// BLAKE3 of the receipt bytes differs from the header's receipt_digest.
    #[error("receipt digest mismatch: header {}, computed {}", to_hex(.expected), to_hex(.actual))]
    ReceiptDigest {
        /// Digest stored in the header.
        expected: [u8; 32],
        /// Digest of the receipt bytes present.
        actual: [u8; 32],
    },
    /// BLAKE3 of the body bytes differs from the header's body_digest.
    #[error("body digest mismatch: header {}, computed {}", to_hex(.expected), to_hex(.actual))]
    BodyDigest {
        /// Digest stored in the header.
        expected: [u8; 32],
        /// Digest of the body bytes present.
        actual: [u8; 32],
    },
}

/// The fixed-size header of a committed file, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Ledger index the snapshot captures.
    pub idx: u64,
    /// Ledger index of the evidence transaction that records the claims digest; always
    /// greater than `idx`.
    pub evidence_idx: u64,
    /// Optional behaviour (compression).
    pub flags: Flags,
    /// Stored body length in bytes.
    pub body_len: u64,
    /// Receipt length in bytes.
    pub receipt_len: u64,
    /// Uncompressed body length; equals `body_len` when the body is not compressed.
    pub raw_len: u64,
    /// BLAKE3 of the stored body bytes (part of the [`Claims`] the ledger records).
    pub body_digest: [u8; 32],
    /// BLAKE3 of the receipt bytes, so a damaged receipt is caught before it is parsed.
    pub receipt_digest: [u8; 32],
}

impl Header {
    /// The 160 header bytes, checksum included. Writers should `validate` first: a header that
    /// fails validation encodes but will not decode.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..OFF_VERSION].copy_from_slice(&MAGIC);
        put(&mut out, OFF_VERSION, &FORMAT_VERSION.to_le_bytes());
        // HEADER_LEN is 160, which fits a u16; the cast cannot truncate.
        put(&mut out, OFF_HEADER_LEN, &(HEADER_LEN as u16).to_le_bytes());
        put(&mut out, OFF_FLAGS, &self.flags.bits().to_le_bytes());
        put(&mut out, OFF_IDX, &self.idx.to_le_bytes());
        put(&mut out, OFF_EVIDENCE_IDX, &self.evidence_idx.to_le_bytes());
        put(&mut out, OFF_BODY_LEN, &self.body_len.to_le_bytes());
        put(&mut out, OFF_RECEIPT_LEN, &self.receipt_len.to_le_bytes());
        put(&mut out, OFF_RAW_LEN, &self.raw_len.to_le_bytes());
        put(&mut out, OFF_BODY_DIGEST, &self.body_digest);
        put(&mut out, OFF_RECEIPT_DIGEST, &self.receipt_digest);
        // Reserved bytes 120..128 stay zero.
        let checksum = header_checksum(&out);
        put(&mut out, OFF_CHECKSUM, &checksum);
        out
    }

    /// Parse and check the first 160 bytes of `bytes` (extra bytes are ignored, so a whole file
    /// may be passed). Checks, in order: length, magic, version, header_len, checksum, flags,
    /// reserved, then [`Header::validate`]. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Header, FormatError> {
        let Some(h) = bytes.first_chunk::<HEADER_LEN>() else {
            return Err(FormatError::TooShort {
                needed: HEADER_LEN,
                actual: bytes.len(),
            });
        };
        let magic: [u8; 8] = field(h, 0);
        if magic != MAGIC {
            return Err(FormatError::BadMagic { actual: magic });
        }
        // Version and header_len come before the checksum: a future version may checksum
        // differently, and "unsupported version" is the useful message for such a file.
        let version = u16::from_le_bytes(field(h, OFF_VERSION));
        if version == 1 {
            return Err(FormatError::Version1Unsupported);
        }
        if version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion {
                supported: FORMAT_VERSION,
                actual: version,
            });
        }
        let header_len = u16::from_le_bytes(field(h, OFF_HEADER_LEN));
        if usize::from(header_len) != HEADER_LEN {
            return Err(FormatError::BadHeaderLen {
                expected: HEADER_LEN as u16,
                actual: header_len,
            });
        }
        let stored: [u8; 32] = field(h, OFF_CHECKSUM);
        let computed = header_checksum(h);
        if stored != computed {
            return Err(FormatError::HeaderChecksum { stored, computed });
        }
        let bits = u32::from_le_bytes(field(h, OFF_FLAGS));
        let flags = Flags::from_bits(bits).ok_or(FormatError::UnknownFlags {
            bits,
            unknown: bits & !KNOWN_BITS,
        })?;
        let reserved = u64::from_le_bytes(field(h, OFF_RESERVED));
        if reserved != 0 {
            return Err(FormatError::ReservedNonZero { actual: reserved });
        }
        let header = Header {
            idx: u64::from_le_bytes(field(h, OFF_IDX)),
            evidence_idx: u64::from_le_bytes(field(h, OFF_EVIDENCE_IDX)),
            flags,
            body_len: u64::from_le_bytes(field(h, OFF_BODY_LEN)),
            receipt_len: u64::from_le_bytes(field(h, OFF_RECEIPT_LEN)),
            raw_len: u64::from_le_bytes(field(h, OFF_RAW_LEN)),
            body_digest: field(h, OFF_BODY_DIGEST),
            receipt_digest: field(h, OFF_RECEIPT_DIGEST),
        };
        header.validate()?;
        Ok(header)
    }

    /// Consistency of the fields: `idx < evidence_idx`, the file length fits a u64, zstd and
    /// chunked not both set, a chunked body a whole number of chunk list entries (at most
    /// the maximum), and a plain body's raw_len equal to its body_len. The writer refuses a header that fails
    /// this, and [`Header::decode`] does too.
    pub fn validate(&self) -> Result<(), FormatError> {
        if self.idx >= self.evidence_idx {
            return Err(FormatError::IdxNotBeforeEvidence {
                idx: self.idx,
                evidence_idx: self.evidence_idx,
            });
        }
        self.file_len()?;
        if self.flags.contains(Flags::ZSTD.union(Flags::CHUNKED)) {
            return Err(FormatError::ExclusiveFlags {
                bits: self.flags.bits(),
            });
        }
        if self.flags.contains(Flags::CHUNKED) {
            // raw_len is the sum of the chunk lengths, checked when the list is read.
            return crate::chunks::list::check_list_len(self.body_len);
        }
        if !self.flags.contains(Flags::ZSTD) && self.raw_len != self.body_len {
            return Err(FormatError::LengthMismatch {
                what: "raw (uncompressed body)",
                expected: self.body_len,
                actual: self.raw_len,
            });
        }
        Ok(())
    }

    /// What the ledger must prove about this header: its claims (see [`Claims`]).
    pub fn claims(&self) -> Claims {
        Claims {
            idx: self.idx,
            flags: self.flags,
            body_len: self.body_len,
            raw_len: self.raw_len,
            body_digest: self.body_digest,
        }
    }

    /// Total file length `HEADER_LEN + body_len + receipt_len`, checked.
    pub fn file_len(&self) -> Result<u64, FormatError> {
        (HEADER_LEN as u64)
            .checked_add(self.body_len)
            .and_then(|n| n.checked_add(self.receipt_len))
            .ok_or(FormatError::LengthOverflow {
                body_len: self.body_len,
                receipt_len: self.receipt_len,
            })
    }
}

/// A snapshot's identity as the ledger records it: the fields of the header a reader acts on,
/// and the body digest. Its [`digest`](Claims::digest) is what the evidence transaction carries,
/// what the evidence leaf's claims digest is, and what the receipt proves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Claims {
    /// Ledger index the snapshot captures.
    pub idx: u64,
    /// Header flags (how the body is encoded).
    pub flags: Flags,
    /// Stored body length.
    pub body_len: u64,
    /// Decoded body length.
    pub raw_len: u64,
    /// BLAKE3 of the stored body bytes.
    pub body_digest: [u8; 32],
}

impl Claims {
    internals_pub! {
        /// The 60 bytes of key material: `idx LE || flags LE || body_len LE || raw_len LE ||
        /// body_digest`.
        fn material(&self) -> [u8; CLAIMS_MATERIAL_LEN] {
            let mut out = [0u8; CLAIMS_MATERIAL_LEN];
            out[0..8].copy_from_slice(&self.idx.to_le_bytes());
            out[8..12].copy_from_slice(&self.flags.bits().to_le_bytes());
            out[12..20].copy_from_slice(&self.body_len.to_le_bytes());
            out[20..28].copy_from_slice(&self.raw_len.to_le_bytes());
            out[28..60].copy_from_slice(&self.body_digest);
            out
        }
    }

    /// The claims digest: BLAKE3 `derive_key` with the context `"snapseal 2026 snapshot claims
    /// v2"` over the 60 bytes `idx LE || flags LE || body_len LE || raw_len LE || body_digest`
    /// (docs/FORMAT.md §3).
    pub fn digest(&self) -> [u8; 32] {
        blake3::derive_key(CLAIMS_CONTEXT, &self.material())
    }
}

/// Parse a whole committed file held in memory: checks the header, that the file
/// is exactly as long as the header says, and the receipt digest. Does NOT hash the body (the
/// expensive part; see [`verify_body`]).
pub fn split(file: &[u8]) -> Result<(Header, &[u8], &[u8]), FormatError> {
    let header = Header::decode(file)?;
    let expected = header.file_len()?;
    let actual = file.len() as u64;
    if actual != expected {
        return Err(FormatError::LengthMismatch {
            what: "file",
            expected,
            actual,
        });
    }
    // The total fits in `file.len()`, so both parts fit in usize; the error arm is unreachable
    // but kept so no input can panic here.
    let overflow = FormatError::LengthOverflow {
        body_len: header.body_len,
        receipt_len: header.receipt_len,
    };
    let body_len = usize::try_from(header.body_len).map_err(|_| overflow.clone())?;
    let rest = file.get(HEADER_LEN..).ok_or(overflow.clone())?;
    let (body, receipt) = rest.split_at_checked(body_len).ok_or(overflow)?;
    let actual = *blake3::hash(receipt).as_bytes();
    if actual != header.receipt_digest {
        return Err(FormatError::ReceiptDigest {
            expected: header.receipt_digest,
            actual,
        });
    }
    Ok((header, body, receipt))
}

/// Check `body` against the header: its length, then its BLAKE3 digest (hashed on all cores for
/// large bodies).
pub fn verify_body(header: &Header, body: &[u8]) -> Result<(), FormatError> {
    let actual_len = body.len() as u64;
    if actual_len != header.body_len {
        return Err(FormatError::LengthMismatch {
            what: "body",
            expected: header.body_len,
            actual: actual_len,
        });
    }
    let actual = body_digest(body);
    if actual != header.body_digest {
        return Err(FormatError::BodyDigest {
            expected: header.body_digest,
            actual,
        });
    }
    Ok(())
}

/// BLAKE3 of the stored body bytes, multi-threaded at or above [`PARALLEL_HASH_THRESHOLD`]. The
/// result is the same either way; only the speed differs.
pub fn body_digest(body: &[u8]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    // On the hashing pool (the granted CPUs) when large, here when small.
    crate::body::hashing::hash(&mut hasher, body);
    *hasher.finalize().as_bytes()
}

/// The header checksum over the first 128 bytes of `header`.
pub fn header_checksum(header: &[u8; HEADER_LEN]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(HEADER_CHECKSUM_CONTEXT);
    hasher.update(&header[..CHECKSUMMED_LEN]);
    *hasher.finalize().as_bytes()
}

/// Copy `src` into `out` at `off`. Offsets are compile-time constants inside the header.
fn put(out: &mut [u8; HEADER_LEN], off: usize, src: &[u8]) {
    out[off..off + src.len()].copy_from_slice(src);
}

/// The `N` bytes of the header at `off`. Offsets are compile-time constants inside the header.
fn field<const N: usize>(h: &[u8; HEADER_LEN], off: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&h[off..off + N]);
    out
}
