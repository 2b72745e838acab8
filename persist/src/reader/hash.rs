//! [`body_digest`]: the BLAKE3 digest of a byte range of a file read with `pread`, on all the
//! pool's threads, each reading and hashing its own subtree of the BLAKE3 tree.
//!
//! Reading a piece into a buffer and then hashing it costs a copy on one thread before the
//! hash can start on all of them; here every thread `pread`s a quarter MiB at a time into its
//! own buffer and hashes it while it is still in that core's cache, so the copy is spread over
//! the cores and the hash reads what the copy just wrote. The result is `blake3::hash` of the
//! range (the subtrees are the ones the BLAKE3 tree prescribes, joined with
//! `blake3::hazmat`), in memory of one buffer per thread, and a mapping is never needed.

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
            assert_eq!(
                body_digest(&file, start as u64, len as u64).unwrap(),
                blake3::hash(&bytes[start..start + len]),
                "{start}+{len}"
            );
        }
    }
}
