//! The compact Merkle frontier: the roots of the complete subtrees that make up a prefix of
//! the ledger's tree (at most 64 hashes), and inclusion proofs computed from a frontier plus
//! the leaves after it.
//!
//! The tree is the one of `snapseal_persist::receipt` (RFC 9162 shape, BLAKE3). A prefix of
//! `n` leaves is the left-to-right run of complete subtrees given by the set bits of `n`; that
//! run is all a ledger needs to keep in memory to go on appending and signing roots. A proof
//! for leaf `i` only needs the frontier at some `c <= i` (its left siblings are exactly blocks
//! of that frontier or lie after `c`) and the leaves from `c` up to the tree size.

use snapseal_persist::receipt::{empty_root, node_hash};
use snapseal_persist::Hash;

/// The frontier of a tree prefix: complete-subtree roots, largest (leftmost) first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    len: u64,
    blocks: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A frontier from its parts; `None` unless there is one block per set bit of `len`.
    pub fn from_parts(len: u64, blocks: Vec<Hash>) -> Option<Self> {
        (blocks.len() == len.count_ones() as usize).then_some(Frontier { len, blocks })
    }

    /// Number of leaves covered.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for the empty tree.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The complete-subtree roots, largest first.
    pub fn blocks(&self) -> &[Hash] {
        &self.blocks
    }

    /// Appends a leaf hash, merging the subtrees it completes.
    pub fn push(&mut self, leaf: Hash) {
        let mut carry = leaf;
        // Each trailing one bit of the old length is a block of the same size to merge with.
        let mut n = self.len;
        while n & 1 == 1 {
            // The loop runs once per set trailing bit, and each set bit has a block.
            let Some(left) = self.blocks.pop() else { break };
            carry = node_hash(&left, &carry);
            n >>= 1;
        }
        self.blocks.push(carry);
        self.len += 1;
    }

    /// The root of the covered prefix (the empty root for no leaves).
    pub fn root(&self) -> Hash {
        let mut it = self.blocks.iter().rev();
        let Some(last) = it.next() else {
            return empty_root();
        };
        it.fold(*last, |acc, left| node_hash(left, &acc))
    }

    /// The block covering exactly leaves `start .. start + n`, if it is one of ours.
    fn block(&self, start: u64, n: u64) -> Option<Hash> {
        let mut offset = 0u64;
        let mut i = 0usize;
        for bit in (0..64).rev() {
            let width = 1u64 << bit;
            if self.len & width != 0 {
                if offset == start && width == n {
                    return self.blocks.get(i).copied();
                }
                offset += width;
                i += 1;
            }
        }
        None
    }
}

/// RFC 9162 root of `leaves` (all of them).
fn root_of(leaves: &[Hash]) -> Hash {
    let mut f = Frontier::new();
    for l in leaves {
        f.push(*l);
    }
    f.root()
}

/// The tree hash of leaves `start .. start + n` given the frontier at `c = at.len()` and the
/// leaves from `c` on; `None` when the range needs leaves neither holds.
fn mth(at: &Frontier, leaves: &[Hash], start: u64, n: u64) -> Option<Hash> {
    let c = at.len();
    if start >= c {
        let from = usize::try_from(start - c).ok()?;
        let to = from.checked_add(usize::try_from(n).ok()?)?;
        return leaves.get(from..to).map(root_of);
    }
    if let Some(h) = at.block(start, n) {
        return Some(h);
    }
    if n < 2 {
        return None;
    }
    let k = largest_power_of_two_below(n);
    Some(node_hash(
        &mth(at, leaves, start, k)?,
        &mth(at, leaves, start + k, n - k)?,
    ))
}

/// Inclusion proof (RFC 9162 `PATH`, siblings from the leaf up) of leaf `index` in the tree
/// of the first `size` leaves, from the frontier `at` and the leaves that follow it. `None`
/// if `index` is before the frontier's end, `index >= size`, or the leaves do not reach
/// `size`. Equal to what a full [`MerkleTree`](snapseal_persist::receipt::MerkleTree) gives.
pub fn proof_from(at: &Frontier, leaves: &[Hash], index: u64, size: u64) -> Option<Vec<Hash>> {
    if index < at.len() || index >= size || size > at.len() + leaves.len() as u64 {
        return None;
    }
    let mut path = Vec::new();
    let (mut start, mut n) = (0u64, size);
    while n > 1 {
        let k = largest_power_of_two_below(n);
        if index - start < k {
            path.push(mth(at, leaves, start + k, n - k)?);
            n = k;
        } else {
            path.push(mth(at, leaves, start, k)?);
            start += k;
            n -= k;
        }
    }
    path.reverse();
    Some(path)
}

/// Largest power of two strictly below `n` (`n >= 2`).
fn largest_power_of_two_below(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;
    use snapseal_persist::receipt::{leaf_hash, MerkleTree};

    fn leaf(i: u64) -> Hash {
        leaf_hash(blake3::hash(&i.to_le_bytes()).as_bytes(), &[0; 32])
    }

    #[test]
    fn frontier_roots_match_the_full_tree_at_every_size() {
        let mut tree = MerkleTree::new();
        let mut f = Frontier::new();
        assert_eq!(f.root(), empty_root());
        for i in 0..300u64 {
            tree.push(leaf(i));
            f.push(leaf(i));
            assert_eq!(Some(f.root()), tree.root(i + 1), "size {}", i + 1);
            assert_eq!(f.blocks().len(), f.len().count_ones() as usize);
        }
    }

    #[test]
    fn proofs_from_a_frontier_match_the_full_tree() {
        let mut tree = MerkleTree::new();
        let all: Vec<Hash> = (0..70u64).map(leaf).collect();
        for l in &all {
            tree.push(*l);
        }
        for c in 0..70u64 {
            let mut at = Frontier::new();
            for l in &all[..c as usize] {
                at.push(*l);
            }
            let rest = &all[c as usize..];
            for size in c + 1..=70 {
                for index in c..size {
                    assert_eq!(
                        proof_from(&at, rest, index, size),
                        tree.proof(index, size),
                        "c {c} index {index} size {size}"
                    );
                }
                if c > 0 {
                    assert_eq!(proof_from(&at, rest, c - 1, size), None, "before c");
                }
            }
            assert_eq!(proof_from(&at, rest, c, 71), None, "beyond the leaves");
        }
    }
}
