//! [`body_digest`]: the BLAKE3 digest of a byte range of a file read with `pread`, on all the
//! pool's threads, each reading and hashing its own subtree of the BLAKE3 tree.
//!
//! Reading a piece into a buffer and then hashing it costs a copy on one thread before the
//! hash can start on all of them; here every thread `pread`s a quarter MiB at a time into its
//! own buffer and hashes it while it is still in that core's cache, so the copy is spread over
//! the cores and the hash reads what the copy just wrote. The result is `blake3::hash` of the
//! range (the subtrees are the ones the BLAKE3 tree prescribes, joined with
//! `blake3::hazmat`), in memory of one buffer per thread, and a mapping is never needed.
//!
//! With a pool of one thread (the default on a 2-CPU machine, which leaves the other CPU to
//! the node) that would read and hash on that one thread, one after the other, while the
//! calling thread waits. There the calling thread reads instead: it `pread`s the next 1 MiB
//! leaf while the pool hashes the one before ([`pipelined`]), so the copy and the hash
//! overlap, in memory of two leaves.

use blake3::hazmat::{
    left_subtree_len, merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode,
};

use crate::fs::{Untrusted, UntrustedError};

/// Largest subtree one task reads and hashes by itself.
const LEAF: u64 = 1 << 20;

/// Bytes per `pread` within a subtree: small enough to stay in a core's cache until hashed.
const READ: usize = 256 << 10;

/// The BLAKE3 digest of `file`'s bytes `start..start + len`.
pub(crate) fn body_digest(
    file: &Untrusted,
    start: u64,
    len: u64,
) -> Result<blake3::Hash, UntrustedError> {
    if len <= LEAF {
        let mut hasher = blake3::Hasher::new();
        read_into(file, start, len, &mut hasher)?;
        return Ok(hasher.finalize());
    }
    if crate::body::hashing::pool_threads() <= 1 {
        return pipelined(file, start, len);
    }
    let left = left_subtree_len(len);
    // On the hashing pool: every join below it stays on the granted CPUs.
    let (l, r) = crate::body::hashing::on_pool(|| {
        rayon::join(
            || subtree(file, start, 0, left),
            || subtree(file, start, left, len - left),
        )
    });
    Ok(merge_subtrees_root(&l?, &r?, Mode::Hash))
}

/// [`body_digest`] of a range over [`LEAF`] for a pool of one thread: the calling thread
/// reads leaf `i + 1` while the pool hashes leaf `i`; the leaves' chaining values are then
/// joined as the BLAKE3 tree prescribes ([`join`]).
fn pipelined(file: &Untrusted, start: u64, len: u64) -> Result<blake3::Hash, UntrustedError> {
    let mut leaves = Vec::new();
    leaves_of(0, len, &mut leaves);
    // Both fit in usize: a leaf is at most LEAF.
    let mut reading = vec![0u8; LEAF as usize];
    let mut hashing = vec![0u8; LEAF as usize];
    let mut cvs = Vec::with_capacity(leaves.len());
    let mut ready: Option<(u64, usize)> = None;
    for next in leaves.iter().map(Some).chain([None]) {
        let hash_ready = |buf: &[u8]| {
            ready.map(|(offset, n)| {
                let mut hasher = blake3::Hasher::new();
                hasher.set_input_offset(offset);
                hasher.update(&buf[..n]);
                hasher.finalize_non_root()
            })
        };
        let read_next = |buf: &mut [u8]| -> Result<Option<(u64, usize)>, UntrustedError> {
            let Some(&(offset, n)) = next else {
                return Ok(None);
            };
            let n = n as usize;
            file.read_exact_at(start + offset, &mut buf[..n])?;
            Ok(Some((offset, n)))
        };
        let (cv, read) = crate::body::hashing::join_with_pool(
            || hash_ready(&hashing),
            || read_next(&mut reading),
        );
        // `None` only if the hash panicked, which the pool re-raised already: hash it here.
        if let Some(cv) = cv.unwrap_or_else(|| hash_ready(&hashing)) {
            cvs.push(cv);
        }
        ready = read?;
        std::mem::swap(&mut reading, &mut hashing);
    }
    let mut cvs = cvs.into_iter();
    let left = left_subtree_len(len);
    let l = join(left, &mut cvs);
    let r = join(len - left, &mut cvs);
    match (l, r) {
        (Some(l), Some(r)) => Ok(merge_subtrees_root(&l, &r, Mode::Hash)),
        // Cannot happen (one chaining value per leaf, and `join` walks the same splits as
        // `leaves_of`); were it to, the subtrees read again give the same digest.
        _ => {
            let (l, r) = (
                subtree(file, start, 0, left)?,
                subtree(file, start, left, len - left)?,
            );
            Ok(merge_subtrees_root(&l, &r, Mode::Hash))
        }
    }
}

/// The leaves (offset, length) of the subtree of `len` bytes at `offset`, left to right: the
/// splits [`subtree`] makes, down to [`LEAF`].
fn leaves_of(offset: u64, len: u64, out: &mut Vec<(u64, u64)>) {
    if len <= LEAF {
        out.push((offset, len));
        return;
    }
    let left = left_subtree_len(len);
    leaves_of(offset, left, out);
    leaves_of(offset + left, len - left, out);
}

/// The chaining value of a subtree of `len` bytes from its leaves' values, taken in order from
/// `cvs` (the same splits as [`leaves_of`]).
fn join(len: u64, cvs: &mut impl Iterator<Item = ChainingValue>) -> Option<ChainingValue> {
    if len <= LEAF {
        return cvs.next();
    }
    let left = left_subtree_len(len);
    let l = join(left, cvs)?;
    let r = join(len - left, cvs)?;
    Some(merge_subtrees_non_root(&l, &r, Mode::Hash))
}

/// The chaining value of the subtree of `len` bytes at `offset` into the range at `base`.
/// `offset` and `len` come from [`left_subtree_len`] splits, so each is a whole subtree.
fn subtree(
    file: &Untrusted,
    base: u64,
    offset: u64,
    len: u64,
) -> Result<ChainingValue, UntrustedError> {
    if len <= LEAF {
        let mut hasher = blake3::Hasher::new();
        hasher.set_input_offset(offset);
        read_into(file, base + offset, len, &mut hasher)?;
        return Ok(hasher.finalize_non_root());
    }
    let left = left_subtree_len(len);
    let (l, r) = rayon::join(
        || subtree(file, base, offset, left),
        || subtree(file, base, offset + left, len - left),
    );
    Ok(merge_subtrees_non_root(&l?, &r?, Mode::Hash))
}

/// Reads `len` bytes at `at` (`len` at most [`LEAF`]) in pieces of [`READ`] into `hasher`.
fn read_into(
    file: &Untrusted,
    at: u64,
    len: u64,
    hasher: &mut blake3::Hasher,
) -> Result<(), UntrustedError> {
    // Both fit in usize: len is at most LEAF.
    let mut buf = vec![0u8; READ.min(len as usize)];
    let mut done = 0u64;
    while done < len {
        let n = buf.len().min((len - done) as usize);
        file.read_exact_at(at + done, &mut buf[..n])?;
        hasher.update(&buf[..n]);
        done += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::untrusted::Expect;
    use crate::fs::{FileSystem, RealFs};

    #[test]
    fn the_digest_of_any_range_is_blake3_of_its_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..(5 * LEAF + 3 * 1024 + 777))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        std::fs::write(tmp.path().join("f"), &bytes).unwrap();
        let dir = RealFs.open_dir(tmp.path(), false).unwrap();
        let file = Untrusted::open_in(&*dir, "f", Expect::new("test file", u64::MAX))
            .unwrap()
            .unwrap();
        let leaf = LEAF as usize;
        for (start, len) in [
            (0, 0),
            (160, 1),
            (160, 1024),
            (160, leaf),
            (160, leaf + 1),
            (7, 2 * leaf + 1024),
            (160, 4 * leaf),
            (160, bytes.len() - 160),
        ] {
            let expected = blake3::hash(&bytes[start..start + len]);
            assert_eq!(
                body_digest(&file, start as u64, len as u64).unwrap(),
                expected,
                "{start}+{len}"
            );
            // Both ways of reading, whatever the pool's size on this machine.
            if len as u64 > LEAF {
                assert_eq!(
                    pipelined(&file, start as u64, len as u64).unwrap(),
                    expected,
                    "pipelined {start}+{len}"
                );
                let left = left_subtree_len(len as u64);
                let (l, r) = (
                    subtree(&file, start as u64, 0, left).unwrap(),
                    subtree(&file, start as u64, left, len as u64 - left).unwrap(),
                );
                assert_eq!(
                    merge_subtrees_root(&l, &r, Mode::Hash),
                    expected,
                    "subtrees {start}+{len}"
                );
            }
        }
    }
}
