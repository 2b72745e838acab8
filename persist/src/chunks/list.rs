//! The chunk list: the body of a chunked snapshot (docs/FORMAT.md §2.2).
//!
//! `n` entries of 36 bytes, nothing before or after: `len (u32 LE) || BLAKE3(chunk bytes)`.
//! Every `len` is `1 ..= MAX_CHUNK`; the snapshot's bytes are the chunks in list order, and
//! `raw_len` is the sum of the lengths. The same 36-byte entry is a pack's index entry.

use crate::error::BodyError;
use crate::format::FormatError;
use crate::Hash;

use super::MAX_CHUNK;

/// Bytes of one entry: length (4) and BLAKE3 (32).
pub(crate) const ENTRY_LEN: usize = 36;

/// Most entries a chunk list may have: 151 MiB of list, at least 64 GiB of state at the
/// smallest chunk size and 1 TiB at the largest.
pub(crate) const MAX_ENTRIES: u64 = 1 << 22;

/// One chunk of a list: its length and the BLAKE3 of its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Entry {
    /// Length in bytes, `1 ..= MAX_CHUNK`.
    pub(crate) len: u32,
    /// BLAKE3 of the chunk's bytes: its name.
    pub(crate) hash: Hash,
}

impl Entry {
    /// The 36 bytes of the entry.
    pub(crate) fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        out[..4].copy_from_slice(&self.len.to_le_bytes());
        out[4..].copy_from_slice(&self.hash);
        out
    }

    /// Decodes one entry, refusing a length of 0 or above `MAX_CHUNK`; `index` labels the error.
    pub(crate) fn decode(bytes: &[u8; ENTRY_LEN], index: u64) -> Result<Entry, BodyError> {
        let mut len = [0u8; 4];
        len.copy_from_slice(&bytes[..4]);
        let len = u32::from_le_bytes(len);
        if len == 0 || len as usize > MAX_CHUNK {
            return Err(BodyError::ChunkLength {
                index,
                len,
                max: MAX_CHUNK as u32,
            });
        }
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&bytes[4..]);
        Ok(Entry { len, hash })
    }
}

/// The header check of a chunked body's length: a whole number of entries, at most
/// [`MAX_ENTRIES`].
pub(crate) fn check_list_len(body_len: u64) -> Result<(), FormatError> {
    let entry = ENTRY_LEN as u64;
    if !body_len.is_multiple_of(entry) || body_len / entry > MAX_ENTRIES {
        return Err(FormatError::ChunkListLength {
            body_len,
            entry,
            max: MAX_ENTRIES,
        });
    }
    Ok(())
}

/// Decodes a whole chunk list held in memory and checks it against `raw_len`: the length
/// rule of `check_list_len`, every entry's length, and the sum of the lengths. Never panics.
pub fn decode_list(list: &[u8], raw_len: u64) -> Result<Vec<(u32, Hash)>, BodyError> {
    check_list_len(list.len() as u64).map_err(|_| BodyError::ChunkListLength {
        len: list.len() as u64,
    })?;
    let mut sum = RawSum::new(raw_len);
    let mut out = Vec::with_capacity(list.len() / ENTRY_LEN);
    for (i, raw) in list.chunks_exact(ENTRY_LEN).enumerate() {
        let mut bytes = [0u8; ENTRY_LEN];
        bytes.copy_from_slice(raw);
        let entry = Entry::decode(&bytes, i as u64)?;
        sum.add(entry.len)?;
        out.push((entry.len, entry.hash));
    }
    sum.finish()?;
    Ok(out)
}

/// The running sum of a list's chunk lengths, held against `raw_len` as entries arrive.
pub(crate) struct RawSum {
    expected: u64,
    sum: u64,
}

impl RawSum {
    pub(crate) fn new(expected: u64) -> RawSum {
        RawSum { expected, sum: 0 }
    }

    /// Adds one chunk; fails as soon as the sum passes `raw_len`.
    pub(crate) fn add(&mut self, len: u32) -> Result<(), BodyError> {
        self.sum += u64::from(len);
        if self.sum > self.expected {
            return Err(BodyError::Long {
                expected: self.expected,
            });
        }
        Ok(())
    }

    /// Fails when the chunks add up to less than `raw_len`.
    pub(crate) fn finish(&self) -> Result<(), BodyError> {
        if self.sum != self.expected {
            return Err(BodyError::Short {
                expected: self.expected,
                actual: self.sum,
            });
        }
        Ok(())
    }
}
