//! The ledger's Merkle tree: RFC 6962 / RFC 9162 shape with snapseal's BLAKE3 hashes.
//!
//! - leaf of tx `i`: `BLAKE3(0x00 || tx_digest_i || claims_digest_i)`
//! - inner node: `BLAKE3(0x01 || left || right)`
//! - empty tree: `BLAKE3("")` (RFC 9162's `MTH({}) = HASH()`)
//! - a tree of `n > 1` leaves splits at `k`, the largest power of two `< n`.
//!
//! The tree signed at `sig_idx` covers ledger txs `1 ..= sig_idx - 1`: tx `i` is leaf `i - 1`.

use crate::Hash;

/// Longest proof a u64-sized tree can have; longer paths are malformed by definition.
pub const MAX_PROOF_LEN: usize = 64;

/// Domain-separation prefix for leaves (RFC 6962 §2.1), so a leaf can never pose as a node.
const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix for inner nodes.
const NODE_PREFIX: u8 = 0x01;

/// Hash of a ledger transaction's leaf: `BLAKE3(0x00 || tx_digest || claims_digest)`.
pub fn leaf_hash(tx_digest: &Hash, claims_digest: &Hash) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&[LEAF_PREFIX]);
    h.update(tx_digest);
    h.update(claims_digest);
    *h.finalize().as_bytes()
}

/// Hash of an inner node: `BLAKE3(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&[NODE_PREFIX]);
    h.update(left);
    h.update(right);
    *h.finalize().as_bytes()
}

/// Root of the empty tree: `BLAKE3` of the empty string.
pub fn empty_root() -> Hash {
    *blake3::hash(&[]).as_bytes()
}

/// Incremental Merkle tree over a ledger's leaves.
///
/// Keeps every level of complete, aligned subtrees (`levels[h][j]` = root of leaves
/// `j * 2^h .. (j + 1) * 2^h`), about 2n hashes in all. Any prefix of size `n` is then a left-to-right
/// run of at most 64 complete subtrees (the set bits of `n`), so roots and proofs for any prefix
/// cost O(log n) hashes, without recomputing: the reference ledger asks for a root at every
/// signature over 10^5..10^6 leaves.
#[derive(Clone, Debug, Default)]
pub struct MerkleTree {
    /// `levels[0]` are the leaves; `levels[h]` has `len >> h` entries.
    levels: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append a leaf (see [`leaf_hash`]), completing any subtrees it closes.
    pub fn push(&mut self, leaf: Hash) {
        let mut carry = leaf;
        let mut h = 0;
        loop {
            if self.levels.len() == h {
                self.levels.push(Vec::new());
            }
            let level = &mut self.levels[h];
            level.push(carry);
            // An even count means the two last entries form a complete subtree one level up.
            if level.len() % 2 != 0 {
                break;
            }
            carry = node_hash(&level[level.len() - 2], &level[level.len() - 1]);
            h += 1;
        }
    }

    /// Number of leaves.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// True when there are no leaves.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Root of the first `size` leaves; `None` if `size > len`.
    pub fn root(&self, size: u64) -> Option<Hash> {
        if size > self.len() {
            return None;
        }
        if size == 0 {
            return Some(empty_root());
        }
        self.range_root(0, size)
    }

    /// Inclusion proof (RFC 9162 §2.1.3.1 `PATH`) of leaf `index` in the tree of the first `size`
    /// leaves, siblings ordered from the leaf up. `None` if `index >= size` or `size > len`.
    pub fn proof(&self, index: u64, size: u64) -> Option<Vec<Hash>> {
        if index >= size || size > self.len() {
            return None;
        }
        // Walk down from the root, recording the sibling of the side that holds `index`.
        let mut path = Vec::new();
        let (mut start, mut n) = (0u64, size);
        while n > 1 {
            let k = largest_power_of_two_below(n);
            if index - start < k {
                // The sibling is the right part, which may be incomplete (at most once per proof,
                // as every later range is a complete subtree).
                path.push(self.range_root(start + k, n - k)?);
                n = k;
            } else {
                path.push(self.complete(start, k)?);
                start += k;
                n -= k;
            }
        }
        path.reverse();
        Some(path)
    }

    /// Drop leaves from `len` on (a ledger tail rollback). No-op if `len >= self.len()`.
    pub fn truncate(&mut self, len: u64) {
        for (h, level) in self.levels.iter_mut().enumerate() {
            let above = u32::try_from(h)
                .ok()
                .and_then(|h| len.checked_shr(h))
                .unwrap_or(0);
            let keep = usize::try_from(above).unwrap_or(usize::MAX);
            level.truncate(keep);
        }
        while self.levels.last().is_some_and(Vec::is_empty) {
            self.levels.pop();
        }
    }

    /// Root of the complete subtree of `width` (a power of two) leaves starting at `start`
    /// (a multiple of `width`).
    fn complete(&self, start: u64, width: u64) -> Option<Hash> {
        let h = width.trailing_zeros() as usize;
        let j = usize::try_from(start >> h).ok()?;
        self.levels.get(h)?.get(j).copied()
    }

    /// RFC 9162 `MTH` of leaves `start .. start + n` (`n >= 1`), where `start` is a multiple of
    /// the largest power of two `<= n`: true for every range the recursion visits. The range is
    /// the set bits of `n` as complete subtrees, folded right to left.
    fn range_root(&self, start: u64, n: u64) -> Option<Hash> {
        let mut parts = Vec::with_capacity(n.count_ones() as usize);
        let mut offset = start;
        for bit in (0..64).rev() {
            let width = 1u64 << bit;
            if n & width != 0 {
                parts.push(self.complete(offset, width)?);
                offset += width;
            }
        }
        let mut acc = parts.pop()?;
        while let Some(left) = parts.pop() {
            acc = node_hash(&left, &acc);
        }
        Some(acc)
    }
}

/// The root implied by `leaf` at `index` in a tree of `size` leaves and its inclusion `path`
/// (RFC 9162 §2.1.3.2). `None` when the path cannot be a proof for that position: `index >= size`,
/// too short, too long.
pub fn root_from_proof(leaf: &Hash, index: u64, size: u64, path: &[Hash]) -> Option<Hash> {
    if index >= size || path.len() > MAX_PROOF_LEN {
        return None;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if s == 0 {
            return None; // path longer than the tree is deep
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            // Right-edge node with no right sibling at these levels: climb past them.
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    (s == 0).then_some(r)
}

/// Largest power of two strictly below `n` (`n >= 2`): RFC 9162's split point `k`.
fn largest_power_of_two_below(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}
