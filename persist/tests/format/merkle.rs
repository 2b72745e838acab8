//! The incremental Merkle tree against a naive recursive transcription of RFC 9162 §2.1.

use std::collections::HashMap;

use proptest::prelude::*;
use snapseal_persist::internals::receipt::{empty_root, node_hash, root_from_proof};
use snapseal_persist::receipt::{leaf_hash, MerkleTree};
use snapseal_persist::Hash;

/// Reference MTH and PATH, written straight from the RFC's recursive definitions. The memo only
/// avoids recomputing identical subranges; it does not change the shape.
struct Reference<'a> {
    leaves: &'a [Hash],
    memo: HashMap<(usize, usize), Hash>,
}

impl<'a> Reference<'a> {
    fn new(leaves: &'a [Hash]) -> Self {
        Reference {
            leaves,
            memo: HashMap::new(),
        }
    }

    /// Largest power of two strictly less than n (n >= 2), by counting up.
    fn split(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    /// MTH(D[lo..hi]).
    fn mth(&mut self, lo: usize, hi: usize) -> Hash {
        if let Some(h) = self.memo.get(&(lo, hi)) {
            return *h;
        }
        let h = match hi - lo {
            0 => *blake3::hash(b"").as_bytes(),
            1 => self.leaves[lo],
            n => {
                let k = Self::split(n);
                let l = self.mth(lo, lo + k);
                let r = self.mth(lo + k, hi);
                let mut bytes = vec![0x01];
                bytes.extend_from_slice(&l);
                bytes.extend_from_slice(&r);
                *blake3::hash(&bytes).as_bytes()
            }
        };
        self.memo.insert((lo, hi), h);
        h
    }

    /// PATH(m, D[lo..hi]), leaf to root.
    fn path(&mut self, m: usize, lo: usize, hi: usize) -> Vec<Hash> {
        let n = hi - lo;
        if n <= 1 {
            return Vec::new();
        }
        let k = Self::split(n);
        if m < k {
            let mut p = self.path(m, lo, lo + k);
            p.push(self.mth(lo + k, hi));
            p
        } else {
            let mut p = self.path(m - k, lo + k, hi);
            p.push(self.mth(lo, lo + k));
            p
        }
    }
}

fn leaves(count: usize, salt: u64) -> Vec<Hash> {
    (0..count as u64)
        .map(|i| {
            let tx = *blake3::hash(&[i.to_le_bytes(), salt.to_le_bytes()].concat()).as_bytes();
            leaf_hash(&tx, &[0u8; 32])
        })
        .collect()
}

fn tree_of(leaves: &[Hash]) -> MerkleTree {
    let mut t = MerkleTree::new();
    for l in leaves {
        t.push(*l);
    }
    t
}

#[test]
fn leaf_and_node_hashes_are_domain_separated_blake3() {
    let (a, b) = ([7u8; 32], [9u8; 32]);
    let mut leaf_input = vec![0x00];
    leaf_input.extend_from_slice(&a);
    leaf_input.extend_from_slice(&b);
    assert_eq!(leaf_hash(&a, &b), *blake3::hash(&leaf_input).as_bytes());
    let mut node_input = vec![0x01];
    node_input.extend_from_slice(&a);
    node_input.extend_from_slice(&b);
    assert_eq!(node_hash(&a, &b), *blake3::hash(&node_input).as_bytes());
    assert_ne!(leaf_hash(&a, &b), node_hash(&a, &b));
}

/// Known answers, also quoted in docs/FORMAT.md §5 (empty root).
#[test]
fn known_answers() {
    let hex = |h: Hash| snapseal_persist::to_hex(&h);
    assert_eq!(
        hex(empty_root()),
        "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    );
    let l1 = leaf_hash(&[1; 32], &[2; 32]);
    let l2 = leaf_hash(&[3; 32], &[0; 32]);
    assert_eq!(
        hex(l1),
        "d1c3fa7c9752dd1e91c8238138884fa0f902dc73e398b911318b072526b495c6"
    );
    assert_eq!(
        hex(node_hash(&l1, &l2)),
        "05bb153b83a658585f6172113d49f496bf4ba30e3c4118976fe45eff12f6e6c1"
    );
}

#[test]
fn empty_tree_root_is_blake3_of_empty_string() {
    let t = MerkleTree::new();
    assert!(t.is_empty());
    assert_eq!(t.len(), 0);
    assert_eq!(empty_root(), *blake3::hash(b"").as_bytes());
    assert_eq!(t.root(0), Some(empty_root()));
    assert_eq!(t.root(1), None);
    assert_eq!(t.proof(0, 0), None);
}

#[test]
fn single_leaf_root_is_the_leaf_and_its_proof_is_empty() {
    let l = leaves(1, 3);
    let t = tree_of(&l);
    assert_eq!(t.root(1), Some(l[0]));
    assert_eq!(t.proof(0, 1), Some(Vec::new()));
    assert_eq!(root_from_proof(&l[0], 0, 1, &[]), Some(l[0]));
}

#[test]
fn out_of_range_queries_return_none() {
    let t = tree_of(&leaves(10, 0));
    assert_eq!(t.root(11), None);
    assert_eq!(t.proof(10, 10), None);
    assert_eq!(t.proof(3, 3), None);
    assert_eq!(t.proof(0, 11), None);
    assert_eq!(t.proof(u64::MAX, u64::MAX), None);
    assert_eq!(root_from_proof(&[0; 32], 5, 5, &[]), None);
    assert_eq!(root_from_proof(&[0; 32], 0, 0, &[]), None);
}

/// For every size below 300 and every index: the proof opens to the root, and every kind of wrong
/// claim (other index, other size, altered, shortened or lengthened path) does not.
#[test]
fn every_proof_opens_to_its_root_and_wrong_claims_do_not() {
    const MAX: u64 = 299;
    let l = leaves(MAX as usize + 1, 11);
    let t = tree_of(&l);
    let roots: Vec<Hash> = (0..=MAX + 1).map(|n| t.root(n).unwrap()).collect();
    for n in 1..=MAX {
        for i in 0..n {
            let leaf = &l[i as usize];
            let path = t.proof(i, n).unwrap();
            assert_eq!(root_from_proof(leaf, i, n, &path), Some(roots[n as usize]));

            if n > 1 {
                let other = (i + 1) % n;
                assert_ne!(
                    root_from_proof(leaf, other, n, &path),
                    Some(roots[n as usize])
                );
            }
            for m in [n - 1, n + 1] {
                if m > i {
                    assert_ne!(root_from_proof(leaf, i, m, &path), Some(roots[m as usize]));
                }
            }
            for k in 0..path.len() {
                let mut bad = path.clone();
                bad[k][k % 32] ^= 0x80;
                assert_ne!(root_from_proof(leaf, i, n, &bad), Some(roots[n as usize]));
            }
            let mut longer = path.clone();
            longer.push([5; 32]);
            assert_eq!(root_from_proof(leaf, i, n, &longer), None, "i={i} n={n}");
            if !path.is_empty() {
                assert_eq!(root_from_proof(leaf, i, n, &path[1..]), None, "i={i} n={n}");
            }
            let mut other_leaf = *leaf;
            other_leaf[0] ^= 1;
            assert_ne!(
                root_from_proof(&other_leaf, i, n, &path),
                Some(roots[n as usize])
            );
        }
    }
}

#[test]
fn overlong_path_is_rejected_outright() {
    let path = vec![[0u8; 32]; 65];
    assert_eq!(root_from_proof(&[0; 32], 0, u64::MAX, &path), None);
}

#[test]
fn proofs_in_a_huge_sparse_position_do_not_overflow() {
    // Positions near u64::MAX exercise the index arithmetic; the path is garbage, so the result
    // only has to be Some(_) of the right shape or None, never a panic.
    let path = vec![[1u8; 32]; 64];
    let _ = root_from_proof(&[0; 32], u64::MAX - 1, u64::MAX, &path);
    let _ = root_from_proof(&[0; 32], 0, u64::MAX, &path[..63]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Roots of every prefix, and every proof of the full tree, equal the reference's.
    #[test]
    fn tree_matches_reference(size in 1usize..300, salt in any::<u64>()) {
        let l = leaves(size, salt);
        let t = tree_of(&l);
        prop_assert_eq!(t.len(), size as u64);
        let mut r = Reference::new(&l);
        for n in 0..=size {
            prop_assert_eq!(t.root(n as u64), Some(r.mth(0, n)));
        }
        for i in 0..size {
            let expected = r.path(i, 0, size);
            prop_assert_eq!(t.proof(i as u64, size as u64), Some(expected));
        }
    }

    /// Proofs for a prefix size of an already larger tree match the reference on that prefix.
    #[test]
    fn prefix_proofs_match_reference(size in 1usize..300, cut in any::<prop::sample::Index>(), salt in any::<u64>()) {
        let l = leaves(size, salt);
        let t = tree_of(&l);
        let n = cut.index(size) + 1;
        let mut r = Reference::new(&l[..n]);
        for i in 0..n {
            prop_assert_eq!(t.proof(i as u64, n as u64), Some(r.path(i, 0, n)));
        }
    }

    /// Truncating (a ledger rollback) leaves exactly the tree of the kept prefix, which then grows
    /// like any other.
    #[test]
    fn truncate_equals_rebuilding_the_prefix(size in 0usize..300, keep in any::<prop::sample::Index>(), extra in 0usize..40, salt in any::<u64>()) {
        let l = leaves(size + extra, salt);
        let keep = if size == 0 { 0 } else { keep.index(size + 1) };
        let mut t = tree_of(&l[..size]);
        t.truncate(keep as u64);
        prop_assert_eq!(t.len(), keep as u64);
        let fresh = tree_of(&l[..keep]);
        for n in 0..=keep as u64 {
            prop_assert_eq!(t.root(n), fresh.root(n));
        }
        prop_assert_eq!(t.root(keep as u64 + 1), None);
        // Regrow past the old size and compare with a tree that never rolled back.
        let other: Vec<Hash> = leaves(size + extra, salt ^ 0xdead).into_iter().skip(keep).collect();
        let mut expected = l[..keep].to_vec();
        expected.extend_from_slice(&other);
        for h in &other {
            t.push(*h);
        }
        let rebuilt = tree_of(&expected);
        prop_assert_eq!(t.len(), rebuilt.len());
        for n in 0..=t.len() {
            prop_assert_eq!(t.root(n), rebuilt.root(n));
        }
    }
}

#[test]
fn truncate_beyond_len_is_a_no_op() {
    let l = leaves(37, 1);
    let mut t = tree_of(&l);
    let before = t.root(37);
    t.truncate(100);
    assert_eq!(t.len(), 37);
    assert_eq!(t.root(37), before);
    t.truncate(0);
    assert!(t.is_empty());
    assert_eq!(t.root(0), Some(empty_root()));
}
