//! The compact Merkle frontier: the roots of the complete subtrees that make up a prefix of
//! the ledger's tree (at most 64 hashes), and inclusion proofs computed from a frontier plus
//! the leaves after it.
//!
//! The tree is the one of `snapseal_persist::receipt` (RFC 9162 shape, BLAKE3), and so are
//! the walks: [`tree_root`] and [`inclusion_path`] ask this module only for the roots of
//! complete subtrees. A prefix of `n` leaves is the left-to-right run of complete subtrees
//! given by the set bits of `n`; that run is all a ledger needs to keep in memory to go on
//! appending and signing roots. A proof for leaf `i` only needs the frontier at some `c <= i`
//! (its left siblings are blocks of that frontier, parts of one, or lie after `c`) and the
//! leaves from `c` up to the tree size.

use snapseal_persist::internals::receipt::{empty_root, node_hash};
use snapseal_persist::internals::receipt::{inclusion_path, tree_root};
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
        // The blocks are exactly the subtrees `tree_root` asks for (one per set bit of `len`,
        // as `new`, `push` and `from_parts` keep them), so it never lacks one.
        tree_root(self.len, |start, width| self.block(start, width)).unwrap_or_else(empty_root)
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

/// The root of the complete subtree of leaves `start .. start + width` (`width` a power of
/// two, `start` a multiple of it), given the frontier at `c = at.len()` and the leaves from `c`
/// on; `None` when it needs leaves neither holds.
fn subtree(at: &Frontier, leaves: &[Hash], start: u64, width: u64) -> Option<Hash> {
    let c = at.len();
    if start >= c {
        let from = usize::try_from(start - c).ok()?;
        let to = from.checked_add(usize::try_from(width).ok()?)?;
        let mut f = Frontier::new();
        for leaf in leaves.get(from..to)? {
            f.push(*leaf);
        }
        return Some(f.root());
    }
    if let Some(h) = at.block(start, width) {
        return Some(h);
    }
    // Straddles `c` (or lies inside a block): its halves are complete subtrees too.
    if width < 2 {
        return None;
    }
    let half = width / 2;
    Some(node_hash(
        &subtree(at, leaves, start, half)?,
        &subtree(at, leaves, start + half, half)?,
    ))
}

/// Inclusion proof (RFC 9162 `PATH`, siblings from the leaf up) of leaf `index` in the tree
/// of the first `size` leaves, from the frontier `at` and the leaves that follow it. `None`
/// if `index` is before the frontier's end, `index >= size`, or the leaves do not reach
/// `size`. Equal to what a full [`MerkleTree`](snapseal_persist::receipt::MerkleTree) gives.
pub fn proof_from(at: &Frontier, leaves: &[Hash], index: u64, size: u64) -> Option<Vec<Hash>> {
    if index < at.len() || size > at.len() + leaves.len() as u64 {
        return None;
    }
    inclusion_path(index, size, |start, width| {
        subtree(at, leaves, start, width)
    })
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
