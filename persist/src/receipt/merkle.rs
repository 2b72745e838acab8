//! The ledger's Merkle tree: RFC 6962 / RFC 9162 shape with snapseal's BLAKE3 hashes.
//!
//! - leaf of tx `i`: `BLAKE3(0x00 || tx_digest_i || claims_digest_i)`
//! - inner node: `BLAKE3(0x01 || left || right)`
//! - empty tree: `BLAKE3("")` (RFC 9162's `MTH({}) = HASH()`)
//! - a tree of `n > 1` leaves splits at `k`, the largest power of two `< n`.
//!
//! The tree signed at `sig_idx` covers ledger txs `1 ..= sig_idx - 1`: tx `i` is leaf `i - 1`
//! ([`leaf_position`]).
//!
//! The RFC 9162 walks live here once: [`tree_root`] and [`inclusion_path`] take the roots of
//! complete subtrees from whoever holds them, so the full [`MerkleTree`] and a ledger that
//! keeps only a compact frontier plus recent leaves compute roots and proofs the same way.

use super::error::ReceiptError;
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

/// Incremental Merkle tree over a ledger's leaves: the RFC 9162 tree a CCF-style node keeps
/// for Merkle receipts ([`SchemeId::MERKLE`](super::SchemeId::MERKLE)), and the one
/// snapseal's reference ledger uses.
///
/// # A ledger's tree: the index mapping
///
/// Ledger indices start at 1, leaves at 0, and a signature tx signs the tree of the txs
/// *before* it:
/// - push one leaf per ledger tx, in order, signature txs included:
///   [`leaf_hash`]`(tx_digest, claims)`, where `claims` is the snapshot's claims digest for an
///   evidence tx and 32 zero bytes for any other tx. Tx `i` is then leaf `i - 1`;
/// - the signature tx at `s` signs `root(s - 1)` ([`sign_root`](super::sign_root)`(key, s,
///   &root)`): the tree of txs `1 ..= s - 1`;
/// - the proof of the evidence tx at `e` under the signature at `s` (`e < s`) is
///   `proof(e - 1, s - 1)`: what a node's `ProofSource::inclusion_proof(e, s)` (snapseal-actors)
///   returns, with the evidence tx's digest, and what [`merkle_receipt`](super::merkle_receipt)
///   takes;
/// - a ledger rolled back to `idx` keeps txs `1 ..= idx`: `truncate(idx)`.
///
/// Roots and proofs of every earlier size stay available as the tree grows, so one tree shared
/// behind a lock serves every signature's proofs.
///
/// ```
/// use snapseal_persist::receipt::{
///     leaf_hash, merkle_receipt, sign_root, Ed25519Verifier, Expected, InclusionProof,
///     MerkleTree, ReceiptVerifier,
/// };
/// use snapseal_persist::{Claims, Flags, SigningKey};
///
/// let claims = Claims {
///     idx: 2,
///     flags: Flags::NONE,
///     body_len: 5,
///     raw_len: 5,
///     body_digest: *blake3::hash(b"state").as_bytes(),
/// };
/// let tx = |i: u64| *blake3::hash(&i.to_le_bytes()).as_bytes();
/// // Txs 1 and 2, the evidence tx at 3, another tx at 4; the signature tx at 5 signs 1 ..= 4.
/// let mut tree = MerkleTree::new();
/// for i in 1..=4 {
///     let carried = if i == 3 { claims.digest() } else { [0; 32] };
///     tree.push(leaf_hash(&tx(i), &carried));
/// }
/// let ledger_key = SigningKey::from_bytes(&[5; 32]);
/// let (e, s) = (3, 5);
/// let signed = sign_root(&ledger_key, s, &tree.root(s - 1).unwrap());
/// let proof = InclusionProof { tx_digest: tx(e), path: tree.proof(e - 1, s - 1).unwrap() };
///
/// let receipt = merkle_receipt(&claims, e, proof, signed)?;
/// let expected = Expected {
///     idx: 2,
///     evidence_idx: e,
///     body_digest: claims.body_digest,
///     claims_digest: claims.digest(),
/// };
/// let verifier = Ed25519Verifier::new(vec![ledger_key.verifying_key()]);
/// assert_eq!(verifier.verify(&receipt, &expected)?.sig_idx, s);
/// # Ok::<(), snapseal_persist::receipt::ReceiptError>(())
/// ```
///
/// Inside, it keeps every level of complete, aligned subtrees (`levels[h][j]` = root of leaves
/// `j * 2^h .. (j + 1) * 2^h`), about 2n hashes in all. Any prefix of size `n` is then a
/// left-to-right run of at most 64 complete subtrees (the set bits of `n`), so roots and proofs
/// for any prefix cost O(log n) hashes, without recomputing: the reference ledger asks for a
/// root at every signature over 10^5..10^6 leaves.
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
            if level.len() & 1 == 1 {
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
        tree_root(size, |start, width| self.complete(start, width))
    }

    /// Inclusion proof (RFC 9162 §2.1.3.1 `PATH`) of leaf `index` in the tree of the first `size`
    /// leaves, siblings ordered from the leaf up. `None` if `index >= size` or `size > len`.
    pub fn proof(&self, index: u64, size: u64) -> Option<Vec<Hash>> {
        if size > self.len() {
            return None;
        }
        inclusion_path(index, size, |start, width| self.complete(start, width))
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
}

/// Where the evidence tx at ledger index `evidence_idx` sits in the tree signed by the
/// signature tx at `sig_idx`: `(leaf_index, tree_size)`.
///
/// Ledger indices start at 1 and a signature tx signs the root over every tx before it, so
/// tx `i` is leaf `i - 1`, and the signature at `s` covers leaves `0 .. s - 1` (txs
/// `1 ..= s - 1`): a tree of size `s - 1`. `None` when no proof can exist: `evidence_idx` is
/// 0, or the signature does not come after the evidence.
///
/// ```
/// use snapseal_persist::internals::receipt::leaf_position;
///
/// // Tx 3 under the signature at tx 8: leaf 2 of a tree of 7 leaves (txs 1 ..= 7).
/// assert_eq!(leaf_position(3, 8), Some((2, 7)));
/// assert_eq!(leaf_position(8, 8), None);
/// assert_eq!(leaf_position(0, 8), None);
/// ```
pub fn leaf_position(evidence_idx: u64, sig_idx: u64) -> Option<(u64, u64)> {
    (evidence_idx >= 1 && sig_idx > evidence_idx).then(|| (evidence_idx - 1, sig_idx - 1))
}

/// [`leaf_position`] for a receipt, or the receipt error saying why no proof can exist: the
/// one mapping both building a receipt and checking one use.
pub(crate) fn receipt_position(
    evidence_idx: u64,
    sig_idx: u64,
) -> Result<(u64, u64), ReceiptError> {
    leaf_position(evidence_idx, sig_idx).ok_or(if evidence_idx == 0 {
        ReceiptError::EvidenceIndexZero
    } else {
        ReceiptError::SigBeforeEvidence {
            sig_idx,
            evidence_idx,
        }
    })
}

/// RFC 9162 `MTH` of the first `size` leaves (the empty root for 0), from the roots of the
/// complete subtrees it is made of: `subtree(start, width)` must give the root of leaves
/// `start .. start + width`, where `width` is a power of two and `start` a multiple of it (the
/// leaf itself for width 1), or `None` if the caller does not hold it. Only subtrees inside
/// `0 .. size` are asked for: one per set bit of `size`, largest (leftmost) first.
///
/// ```
/// use snapseal_persist::internals::receipt::{empty_root, node_hash, tree_root};
/// use snapseal_persist::receipt::leaf_hash;
///
/// let leaves: Vec<_> = (0u8..3).map(|i| leaf_hash(&[i; 32], &[0; 32])).collect();
/// // Three leaves: the complete subtree of leaves 0..2, then leaf 2.
/// let pair = node_hash(&leaves[0], &leaves[1]);
/// let root = tree_root(3, |start, width| match (start, width) {
///     (0, 2) => Some(pair),
///     (2, 1) => Some(leaves[2]),
///     _ => None,
/// });
/// assert_eq!(root, Some(node_hash(&pair, &leaves[2])));
/// assert_eq!(tree_root(0, |_, _| None), Some(empty_root()));
/// ```
pub fn tree_root(size: u64, mut subtree: impl FnMut(u64, u64) -> Option<Hash>) -> Option<Hash> {
    if size == 0 {
        return Some(empty_root());
    }
    range_root(0, size, &mut subtree)
}

/// Inclusion proof (RFC 9162 §2.1.3.1 `PATH`, siblings ordered from the leaf up) of leaf
/// `index` in the tree of the first `size` leaves, from the roots of complete subtrees
/// (`subtree` as for [`tree_root`]; only ranges inside `0 .. size` that do not contain
/// `index` are asked for). `None` if `index >= size` or `subtree` lacks a root the path needs.
/// For a ledger's tx indices see [`leaf_position`]; [`root_from_proof`] checks a path.
///
/// ```
/// use snapseal_persist::internals::receipt::{inclusion_path, node_hash, root_from_proof};
/// use snapseal_persist::receipt::leaf_hash;
/// use snapseal_persist::receipt::MerkleTree;
/// use snapseal_persist::Hash;
///
/// /// The root of a complete subtree, hashed pairwise up from its leaves.
/// fn complete(leaves: &[Hash]) -> Hash {
///     match leaves {
///         [leaf] => *leaf,
///         _ => {
///             let (left, right) = leaves.split_at(leaves.len() / 2);
///             node_hash(&complete(left), &complete(right))
///         }
///     }
/// }
///
/// let leaves: Vec<Hash> = (0u8..5).map(|i| leaf_hash(&[i; 32], &[0; 32])).collect();
/// let path = inclusion_path(3, 5, |start, width| {
///     let range = usize::try_from(start).ok()?..usize::try_from(start + width).ok()?;
///     Some(complete(leaves.get(range)?))
/// })
/// .unwrap();
///
/// let mut tree = MerkleTree::new();
/// leaves.iter().for_each(|leaf| tree.push(*leaf));
/// assert_eq!(Some(path.clone()), tree.proof(3, 5));
/// assert_eq!(root_from_proof(&leaves[3], 3, 5, &path), tree.root(5));
/// ```
pub fn inclusion_path(
    index: u64,
    size: u64,
    mut subtree: impl FnMut(u64, u64) -> Option<Hash>,
) -> Option<Vec<Hash>> {
    if index >= size {
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
            path.push(range_root(start + k, n - k, &mut subtree)?);
            n = k;
        } else {
            path.push(subtree(start, k)?);
            start += k;
            n -= k;
        }
    }
    path.reverse();
    Some(path)
}

/// RFC 9162 `MTH` of leaves `start .. start + n` (`n >= 1`), where `start` is a multiple of
/// the largest power of two `<= n`: true for every range the walks visit. The range is the set
/// bits of `n` as complete subtrees, folded right to left.
fn range_root(
    start: u64,
    n: u64,
    subtree: &mut impl FnMut(u64, u64) -> Option<Hash>,
) -> Option<Hash> {
    let mut parts = Vec::with_capacity(n.count_ones() as usize);
    let mut offset = start;
    for bit in (0..64).rev() {
        let width = 1u64 << bit;
        if n & width != 0 {
            parts.push(subtree(offset, width)?);
            offset += width;
        }
    }
    let mut acc = parts.pop()?;
    while let Some(left) = parts.pop() {
        acc = node_hash(&left, &acc);
    }
    Some(acc)
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
