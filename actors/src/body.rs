//! Pending snapshot bodies: what the serialise action produces and the persist action writes.
//!
//! The serialise action streams a [`StateView`](crate::StateView) through a [`BodyBuilder`]:
//! optional zstd compression, then BLAKE3 over the stored bytes in the same pass, into a
//! [`PendingBody`]. The body exists once; nothing copies it afterwards (the writer writes
//! straight from [`PendingBody::bytes`]).

use std::io::{self, Write};

use snapseal_persist::format::Flags;
use snapseal_persist::receipt::merkle::Hash;

/// A serialised snapshot body waiting for its proof. In memory for now; the type keeps the
/// storage choice private so a spill-to-disk variant can be added without touching callers.
#[derive(Debug)]
pub struct PendingBody {
    bytes: Vec<u8>,
    digest: Hash,
    raw_len: u64,
    flags: Flags,
}

impl PendingBody {
    /// The stored body bytes (compressed when [`flags`](Self::flags) say so).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// BLAKE3 of [`bytes`](Self::bytes): the snapshot digest the ledger's evidence tx carries.
    pub fn digest(&self) -> Hash {
        self.digest
    }
    /// Length of the serialised state before compression.
    pub fn raw_len(&self) -> u64 {
        self.raw_len
    }
    /// Header flags describing the body encoding.
    pub fn flags(&self) -> Flags {
        self.flags
    }
    /// Stored length in bytes.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
    /// True for an empty body (an empty state, uncompressed).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Hashes everything written through it, then appends it to the body buffer.
struct HashingSink {
    hasher: blake3::Hasher,
    bytes: Vec<u8>,
}

impl Write for HashingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hasher.update(buf);
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Stage {
    Plain(HashingSink),
    Zstd(zstd::stream::write::Encoder<'static, HashingSink>),
}

/// The `io::Write` a state view streams into.
pub struct BodyBuilder {
    stage: Stage,
    raw_len: u64,
}

impl BodyBuilder {
    /// A builder storing plain bytes (`None`) or zstd at the given level.
    pub fn new(compression: Option<i32>) -> io::Result<Self> {
        let sink = HashingSink {
            hasher: blake3::Hasher::new(),
            bytes: Vec::new(),
        };
        let stage = match compression {
            None => Stage::Plain(sink),
            Some(level) => Stage::Zstd(zstd::stream::write::Encoder::new(sink, level)?),
        };
        Ok(BodyBuilder { stage, raw_len: 0 })
    }

    /// Finish the stream: flush the compressor and seal the digest.
    pub fn finish(self) -> io::Result<PendingBody> {
        let (sink, flags) = match self.stage {
            Stage::Plain(sink) => (sink, Flags::NONE),
            Stage::Zstd(enc) => (enc.finish()?, Flags::ZSTD),
        };
        Ok(PendingBody {
            digest: *sink.hasher.finalize().as_bytes(),
            bytes: sink.bytes,
            raw_len: self.raw_len,
            flags,
        })
    }
}

impl Write for BodyBuilder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.stage {
            Stage::Plain(sink) => sink.write(buf)?,
            Stage::Zstd(enc) => enc.write(buf)?,
        };
        self.raw_len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.stage {
            Stage::Plain(sink) => sink.flush(),
            Stage::Zstd(enc) => enc.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_body_digest_is_blake3_of_the_bytes() {
        let mut b = BodyBuilder::new(None).unwrap();
        b.write_all(b"hello ").unwrap();
        b.write_all(b"world").unwrap();
        let body = b.finish().unwrap();
        assert_eq!(body.bytes(), b"hello world");
        assert_eq!(body.digest(), *blake3::hash(b"hello world").as_bytes());
        assert_eq!(body.raw_len(), 11);
        assert_eq!(body.flags(), Flags::NONE);
    }

    #[test]
    fn zstd_body_hashes_the_stored_bytes_and_round_trips() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let mut b = BodyBuilder::new(Some(3)).unwrap();
        for chunk in data.chunks(4096) {
            b.write_all(chunk).unwrap();
        }
        let body = b.finish().unwrap();
        assert_eq!(body.flags(), Flags::ZSTD);
        assert_eq!(body.raw_len(), data.len() as u64);
        assert!(body.len() < data.len() as u64);
        assert_eq!(body.digest(), *blake3::hash(body.bytes()).as_bytes());
        assert_eq!(zstd::decode_all(body.bytes()).unwrap(), data);
    }
}
