//! [`Cutter`]: FastCDC 2020 (normalisation level 1, the crate's default gear table) over a
//! body that arrives in writes of any size, giving exactly the chunks FastCDC gives over the
//! whole body at once.
//!
//! A cut found with at least `MAX_CHUNK` bytes after the chunk's start cannot change with
//! more input (FastCDC never looks past `MAX_CHUNK` bytes from a chunk's start), so those
//! chunks are handed out as soon as they are known; the rest waits for more input or the end.
//! Memory: at most `2 * MAX_CHUNK` bytes buffered.

use fastcdc::v2020::FastCDC;

use super::{AVG_CHUNK, MAX_CHUNK, MIN_CHUNK};

/// Cuts a stream into chunks.
#[derive(Default)]
pub(crate) struct Cutter {
    buf: Vec<u8>,
}

impl Cutter {
    /// Takes `data` and hands every chunk that is now final to `each`, in order.
    pub(crate) fn write<E>(
        &mut self,
        mut data: &[u8],
        each: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        while !data.is_empty() {
            let room = 2 * MAX_CHUNK - self.buf.len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == 2 * MAX_CHUNK {
                self.drain(false, each)?;
            }
        }
        Ok(())
    }

    /// The end of the stream: hands out the remaining chunks.
    pub(crate) fn finish<E>(
        mut self,
        each: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.drain(true, each)
    }

    /// Hands out the chunks of the buffer that are final (all of them at the end) and keeps
    /// the rest at the front of the buffer.
    fn drain<E>(
        &mut self,
        at_end: bool,
        each: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut done = 0;
        for chunk in FastCDC::new(&self.buf, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK) {
            if !at_end && self.buf.len() - chunk.offset < MAX_CHUNK {
                break;
            }
            each(&self.buf[chunk.offset..chunk.offset + chunk.length])?;
            done = chunk.offset + chunk.length;
        }
        self.buf.drain(..done);
        Ok(())
    }
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
        let mut each = |c: &[u8]| -> Result<(), ()> {
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
        let data: Vec<u8> = (0..3_000_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let expect = whole(&data);
        assert!(expect.len() > 10);
        for piece in [1, 7, 4096, 65_537, MAX_CHUNK, 3 * MAX_CHUNK + 5, data.len()] {
            assert_eq!(streamed(&data, piece), expect, "pieces of {piece}");
        }
        // Zeros never match the gear mask: every chunk is MAX_CHUNK but the last.
        let zeros = vec![0u8; MAX_CHUNK * 3 + 10];
        assert_eq!(streamed(&zeros, 1000), whole(&zeros));
        assert!(streamed(&[], 10).is_empty());
    }
}
