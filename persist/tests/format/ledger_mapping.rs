//! The ledger index mapping `MerkleTree` and `ProofSource` document — tx `e` is leaf `e - 1`,
//! the signature at `s` signs the tree of `s - 1` leaves — is the one receipts are checked by:
//! a node that follows it with the public API gets receipts that verify, and the same bytes the
//! library's own proof path (`leaf_position`, `Receipt::prove`) gives.

use ed25519_dalek::SigningKey;
use snapseal_persist::internals::receipt::{leaf_position, Receipt};
use snapseal_persist::receipt::{
    leaf_hash, merkle_receipt, sign_root, Ed25519Verifier, Expected, InclusionProof, MerkleTree,
    ReceiptVerifier,
};
use snapseal_persist::{Claims, Flags, Hash};

/// Txs of the test ledger.
const LEN: u64 = 24;

fn tx_digest(i: u64) -> Hash {
    *blake3::hash(&i.to_le_bytes()).as_bytes()
}

fn claims() -> Claims {
    Claims {
        idx: 0,
        flags: Flags::NONE,
        body_len: 5,
        raw_len: 5,
        body_digest: *blake3::hash(b"state").as_bytes(),
    }
}

/// A ledger of `LEN` txs whose tx `e` is the evidence of a snapshot at `e - 1` with `claims`,
/// built as the docs say: one leaf per tx, zeros as the claims of every other tx.
fn ledger(e: u64, claims: &Claims) -> MerkleTree {
    let mut tree = MerkleTree::new();
    for i in 1..=LEN {
        let carried = if i == e { claims.digest() } else { [0; 32] };
        tree.push(leaf_hash(&tx_digest(i), &carried));
    }
    tree
}

/// The receipt for the evidence at `e` under the signature at `s`, its proof taken at
/// `(leaf, size)` of the tree.
fn receipt(tree: &MerkleTree, claims: &Claims, e: u64, s: u64, leaf: u64, size: u64) -> Vec<u8> {
    let key = SigningKey::from_bytes(&[4; 32]);
    let signed = sign_root(&key, s, &tree.root(s - 1).unwrap());
    let path = tree.proof(leaf, size).unwrap();
    let proof = InclusionProof {
        tx_digest: tx_digest(e),
        path,
    };
    merkle_receipt(claims, e, proof, signed).unwrap()
}

fn expected(claims: &Claims, e: u64) -> Expected {
    Expected {
        idx: claims.idx,
        evidence_idx: e,
        body_digest: claims.body_digest,
        claims_digest: claims.digest(),
    }
}

fn verifier() -> Ed25519Verifier {
    Ed25519Verifier::new(vec![SigningKey::from_bytes(&[4; 32]).verifying_key()])
}

#[test]
fn the_documented_mapping_proves_every_evidence_tx_under_every_later_signature() {
    for e in 1..LEN {
        let claims = Claims {
            idx: e - 1,
            ..claims()
        };
        let tree = ledger(e, &claims);
        for s in e + 1..=LEN + 1 {
            assert_eq!(leaf_position(e, s), Some((e - 1, s - 1)), "e {e}, s {s}");
            let bytes = receipt(&tree, &claims, e, s, e - 1, s - 1);
            let verified = verifier().verify(&bytes, &expected(&claims, e)).unwrap();
            assert_eq!(verified.sig_idx, s);
            // The library's own proof path (the reference ledger's) gives the same receipt.
            let key = SigningKey::from_bytes(&[4; 32]);
            let signed = sign_root(&key, s, &tree.root(s - 1).unwrap());
            let own = Receipt::prove(&tree, e, tx_digest(e), claims.digest(), signed).unwrap();
            assert_eq!(own.encode().unwrap(), bytes, "e {e}, s {s}");
        }
    }
}

#[test]
fn a_proof_taken_one_leaf_or_one_size_off_does_not_verify() {
    let e = 7;
    let claims = Claims { idx: 6, ..claims() };
    let tree = ledger(e, &claims);
    for s in e + 2..=LEN {
        for (leaf, size) in [(e, s - 1), (e - 1, s), (e, s)] {
            let bytes = receipt(&tree, &claims, e, s, leaf, size);
            assert!(
                verifier().verify(&bytes, &expected(&claims, e)).is_err(),
                "proof at ({leaf}, {size}) for e {e}, s {s} verified"
            );
        }
    }
}
