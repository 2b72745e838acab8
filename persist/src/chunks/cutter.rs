//! [`Cutter`]: FastCDC 2020 (normalisation level 1, the crate's default gear table) over a
//! body that arrives in writes of any size, giving exactly the chunks FastCDC gives over the
//! whole body at once.
//!
//! A cut found with at least `MAX_CHUNK` bytes after the chunk's start cannot change with
//! more input (FastCDC never looks past `MAX_CHUNK` bytes from a chunk's start), so those
//! chunks are final; the rest waits for more input or the end. The input is gathered into
//! batches of [`BATCH`] bytes: the final chunks of a batch are found (FastCDC, one pass),
//! hashed together on the hashing pool (BLAKE3 of each chunk, in parallel), then handed out
//! in order with their hashes. Memory: at most `BATCH + MAX_CHUNK` bytes buffered.

use fastcdc::v2020::FastCDC;
use rayon::prelude::*;

use crate::Hash;

use super::{AVG_CHUNK, MAX_CHUNK, MIN_CHUNK};

/// Bytes gathered before a batch is cut and hashed: enough chunks (about 128) to keep the
/// hashing pool busy, little enough to be no memory concern.
const BATCH: usize = 8 << 20;

/// Cuts a stream into chunks.
#[derive(Default)]
pub(crate) struct Cutter {
    buf: Vec<u8>,
}

impl Cutter {
    /// Takes `data` and hands every chunk that is now final, with its BLAKE3, to `each`, in
    /// order.
    pub(crate) fn write<E>(
        &mut self,
        mut data: &[u8],
        each: &mut impl FnMut(&[u8], Hash) -> Result<(), E>,
    ) -> Result<(), E> {
        while !data.is_empty() {
            let room = BATCH + MAX_CHUNK - self.buf.len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == BATCH + MAX_CHUNK {
                self.drain(false, each)?;
            }
        }
        Ok(())
    }

    /// The end of the stream: hands out the remaining chunks.
    pub(crate) fn finish<E>(
        mut self,
        each: &mut impl FnMut(&[u8], Hash) -> Result<(), E>,
    ) -> Result<(), E> {
        self.drain(true, each)
    }

    /// Hands out the chunks of the buffer that are final (all of them at the end) and keeps
    /// the rest at the front of the buffer.
    fn drain<E>(
        &mut self,
        at_end: bool,
        each: &mut impl FnMut(&[u8], Hash) -> Result<(), E>,
    ) -> Result<(), E> {
        let buf = &self.buf;
        let cuts = cut_and_hash(buf, at_end);
        for &(from, to, hash) in &cuts {
            each(&buf[from..to], hash)?;
        }
        let done = cuts.last().map_or(0, |&(_, to, _)| to);
        self.buf.drain(..done);
        Ok(())
    }
}

/// The chunks of `data` as a whole (FastCDC from its first byte to its last), with their
/// BLAKE3, cut and hashed where the bytes are (no copy): how a frozen chunk of the state is
/// cut (`body::frozen_cuts`). Each is `(from, to, hash)`.
pub(crate) fn cut_whole(data: &[u8]) -> Vec<(usize, usize, Hash)> {
    cut_and_hash(data, true)
}

/// The chunks of `buf` that are final (all of them when `at_end`): found in one FastCDC
/// pass, then hashed in parallel on the hashing pool.
fn cut_and_hash(buf: &[u8], at_end: bool) -> Vec<(usize, usize, Hash)> {
    let cuts: Vec<(usize, usize)> = FastCDC::new(buf, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK)
        .take_while(|c| at_end || buf.len() - c.offset >= MAX_CHUNK)
        .map(|c| (c.offset, c.offset + c.length))
        .collect();
    crate::body::hashing::on_pool(|| {
        cuts.par_iter()
            .map(|&(from, to)| (from, to, *blake3::hash(&buf[from..to]).as_bytes()))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(data: &[u8]) -> Vec<usize> {
        FastCDC::new(data, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK)
            .map(|c| c.length)
            .collect()
    }

    fn streamed(data: &[u8], piece: usize) -> Vec<usize> {
        let mut cutter = Cutter::default();
        let mut out = Vec::new();
        let mut each = |c: &[u8], h: Hash| -> Result<(), ()> {
            assert_eq!(h, *blake3::hash(c).as_bytes());
            out.push(c.len());
            Ok(())
        };
        for p in data.chunks(piece) {
            cutter.write(p, &mut each).unwrap();
        }
        cutter.finish(&mut each).unwrap();
        out
    }

    #[test]
    fn a_streamed_body_is_cut_exactly_as_the_whole_body_is() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let data: Vec<u8> = (0..20_000_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let expect = whole(&data);
        assert!(expect.len() > 10);
        for piece in [
            7,
            4096,
            65_537,
            MAX_CHUNK,
            3 * MAX_CHUNK + 5,
            BATCH + 1,
            data.len(),
        ] {
            assert_eq!(streamed(&data, piece), expect, "pieces of {piece}");
        }
        // Zeros never match the gear mask: every chunk is MAX_CHUNK but the last.
        let zeros = vec![0u8; MAX_CHUNK * 3 + 10];
        assert_eq!(streamed(&zeros, 1000), whole(&zeros));
        assert!(streamed(&[], 10).is_empty());
    }
}
