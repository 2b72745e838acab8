//! Damaged and forged files: every single-bit flip of the header and the receipt, sampled
//! flips of the body, every truncation, and receipts that prove the wrong thing. Each is
//! refused by `verify_bytes` and, through the store, never returned by `latest()`: it is
//! quarantined and the previous snapshot is returned.

use std::sync::OnceLock;

use crate::fixture::*;
use proptest::prelude::*;
use snapseal_persist::fs::SimFs;
use snapseal_persist::internals::format::HEADER_LEN;
use snapseal_persist::internals::receipt::Receipt;
use snapseal_persist::internals::verify_bytes;
use snapseal_persist::receipt::{leaf_hash, sign_root, MerkleTree, ReceiptError, ReceiptVerifier};
use snapseal_persist::Hash;
use snapseal_persist::{Check, FileState, SnapshotName, VerifyError};

/// The good, older snapshot recovery should fall back to.
fn previous() -> &'static Snap {
    static SNAP: OnceLock<Snap> = OnceLock::new();
    SNAP.get_or_init(|| Snap::new(10, 256))
}

/// The newest snapshot, which the tests damage.
fn victim() -> &'static Snap {
    static SNAP: OnceLock<Snap> = OnceLock::new();
    SNAP.get_or_init(|| Snap::new(20, 1024))
}

fn victim_name() -> SnapshotName {
    victim().name()
}

/// Plants `previous()` and `bytes` under the victim's committed name, opens a store and
/// checks: latest() is the previous snapshot, the bytes were quarantined as they were.
fn assert_store_rejects(bytes: &[u8], ctx: &str) {
    let sim = SimFs::new(5);
    plant(&sim, previous());
    let victim_file = victim().file_name(FileState::Committed);
    sim.plant_file(dir(), &victim_file, bytes, true);
    let store = open(&sim, opts());
    let latest = store
        .latest()
        .unwrap()
        .unwrap_or_else(|| panic!("{ctx}: nothing found"));
    assert_eq!(*latest.name(), previous().name(), "{ctx}");
    assert_eq!(
        sim.read(dir(), &victim_file),
        None,
        "{ctx}: not quarantined"
    );
    assert_eq!(
        sim.read(dir(), &victim().file_name(FileState::Corrupt))
            .as_deref(),
        Some(bytes),
        "{ctx}: quarantined copy differs"
    );
}

fn assert_rejected(bytes: &[u8], ctx: &str) -> VerifyError {
    match verify_bytes(bytes, Some(&victim_name()), &real_verifier()) {
        Ok(_) => panic!("{ctx}: accepted"),
        Err(e) => {
            assert!(!e.is_io(), "{ctx}: {e}");
            assert!(
                e.to_string().contains("snapshot_20_21.committed"),
                "{ctx}: {e}"
            );
            e
        }
    }
}

fn flipped(bit: usize) -> Vec<u8> {
    let mut bytes = victim().file_bytes();
    bytes[bit / 8] ^= 1 << (bit % 8);
    bytes
}

#[test]
fn the_untouched_files_verify() {
    let bytes = victim().file_bytes();
    let v = verify_bytes(&bytes, Some(&victim_name()), &real_verifier()).unwrap();
    assert_eq!(v.body, &victim().body[..]);
    assert_eq!(v.receipt, &victim().receipt[..]);
    verify_bytes(&previous().file_bytes(), None, &real_verifier()).unwrap();
}

#[test]
fn every_bit_flip_of_the_header_is_detected() {
    for bit in 0..HEADER_LEN * 8 {
        let ctx = format!("header bit {bit}");
        let bytes = flipped(bit);
        let e = assert_rejected(&bytes, &ctx);
        // The header checksum (or a check before it) catches it: the body is never hashed.
        assert_eq!(e.check(), Some(Check::Header), "{ctx}: {e}");
        assert_store_rejects(&bytes, &ctx);
    }
}

#[test]
fn every_bit_flip_of_the_receipt_is_detected() {
    let start = HEADER_LEN + victim().body.len();
    let end = start + victim().receipt.len();
    assert!(end - start > 100);
    for bit in start * 8..end * 8 {
        let ctx = format!("receipt bit {bit}");
        let bytes = flipped(bit);
        let e = assert_rejected(&bytes, &ctx);
        assert_eq!(e.check(), Some(Check::ReceiptDigest), "{ctx}: {e}");
        assert_store_rejects(&bytes, &ctx);
    }
}

#[test]
fn sampled_bit_flips_of_the_body_are_detected() {
    let body = HEADER_LEN..HEADER_LEN + victim().body.len();
    let mut bits: Vec<usize> = body.clone().step_by(37).map(|b| b * 8 + b % 8).collect();
    bits.extend([body.start * 8, body.end * 8 - 1]);
    for bit in bits {
        let ctx = format!("body bit {bit}");
        let bytes = flipped(bit);
        let e = assert_rejected(&bytes, &ctx);
        assert_eq!(e.check(), Some(Check::BodyDigest), "{ctx}: {e}");
        assert_store_rejects(&bytes, &ctx);
    }
}

#[test]
fn every_truncation_is_detected() {
    let full = victim().file_bytes();
    for len in 0..full.len() {
        let ctx = format!("truncated to {len}");
        let e = assert_rejected(&full[..len], &ctx);
        let expected = if len < HEADER_LEN {
            Check::Header
        } else {
            Check::Length
        };
        assert_eq!(e.check(), Some(expected), "{ctx}: {e}");
        assert_store_rejects(&full[..len], &ctx);
    }
    // Appended garbage too.
    let mut longer = full.clone();
    longer.push(0);
    assert_eq!(
        assert_rejected(&longer, "appended").check(),
        Some(Check::Length)
    );
    assert_store_rejects(&longer, "appended");
}

#[test]
fn truncation_by_the_medium_is_quarantined() {
    // Same through SimFs::truncate on a file the writer produced.
    let sim = SimFs::new(5);
    let store = open(&sim, opts());
    store.persist(&previous().request()).unwrap();
    store.persist(&victim().request()).unwrap();
    let full = victim().file_bytes().len() as u64;
    assert!(sim.truncate(dir(), "snapshot_20_21.committed", full - 1));
    assert_eq!(*store.latest().unwrap().unwrap().name(), previous().name());
    assert!(
        names_in(&sim, FileState::Corrupt).contains(&victim_name().with_state(FileState::Corrupt))
    );
}

/// A file for the victim's indices and body whose header is consistent with `receipt`, so
/// only the receipt check can refuse it.
fn with_receipt(receipt: &[u8]) -> Vec<u8> {
    assemble(victim().idx, victim().evidence_idx, &victim().body, receipt)
}

fn assert_receipt_refused(receipt: &[u8], ctx: &str, want: impl Fn(&ReceiptError) -> bool) {
    let bytes = with_receipt(receipt);
    match assert_rejected(&bytes, ctx) {
        VerifyError::Receipt { source, .. } => assert!(want(&source), "{ctx}: {source}"),
        e => panic!("{ctx}: wrong check: {e}"),
    }
    assert_store_rejects(&bytes, ctx);
}

#[test]
fn a_receipt_signed_by_an_untrusted_key_is_refused_but_left_in_place() {
    let ledger = Ledger::new(victim().evidence_idx, victim().claims);
    let receipt = ledger.receipt(&untrusted_key(), victim().claims);
    let bytes = with_receipt(&receipt);
    match assert_rejected(&bytes, "untrusted key") {
        VerifyError::Receipt { source, .. } => {
            assert!(
                matches!(source, ReceiptError::UntrustedKey { .. }),
                "{source}"
            )
        }
        e => panic!("untrusted key: wrong check: {e}"),
    }
    // Never returned by latest(), but not quarantined either: a wrong trusted-key set must not
    // be able to destroy good snapshots.
    let sim = SimFs::new(5);
    plant(&sim, previous());
    let victim_file = victim().file_name(FileState::Committed);
    sim.plant_file(dir(), &victim_file, &bytes, true);
    let store = open(&sim, opts());
    let latest = store.latest().unwrap().expect("the previous snapshot");
    assert_eq!(*latest.name(), previous().name());
    assert_eq!(
        sim.read(dir(), &victim_file).as_deref(),
        Some(&bytes[..]),
        "left in place"
    );
    assert_eq!(
        sim.read(dir(), &victim().file_name(FileState::Corrupt)),
        None
    );
    assert_eq!(store.stats().untrusted_skipped, 1);
}

#[test]
fn a_receipt_proving_another_leaf_is_refused() {
    let ev = victim().evidence_idx;
    let ledger = Ledger::new(ev, victim().claims);
    let sig_idx = ledger.sig_idx;
    let root = ledger.tree.root(sig_idx - 1).unwrap();
    // An honest, signed proof... of the leaf next door, presented as the evidence leaf.
    let other_path = ledger.tree.proof(ev, sig_idx - 1).unwrap(); // leaf index ev = tx ev + 1
    let forged = Receipt {
        evidence_idx: ev,
        evidence_tx_digest: tx_digest(ev),
        claims_digest: victim().claims,
        path: other_path,
        signed: sign_root(&key(), sig_idx, &root),
    }
    .encode()
    .unwrap();
    assert_receipt_refused(&forged, "proof of another leaf", |e| {
        matches!(
            e,
            ReceiptError::RootMismatch { .. } | ReceiptError::BadProof { .. }
        )
    });

    // And a genuine receipt for another evidence index.
    let elsewhere = Ledger::new(ev + 1, victim().claims);
    let receipt = Receipt::prove(
        &elsewhere.tree,
        ev + 1,
        tx_digest(ev + 1),
        victim().claims,
        sign_root(
            &key(),
            elsewhere.sig_idx,
            &elsewhere.tree.root(elsewhere.sig_idx - 1).unwrap(),
        ),
    )
    .unwrap()
    .encode()
    .unwrap();
    assert_receipt_refused(&receipt, "another evidence index", |e| {
        matches!(e, ReceiptError::EvidenceIndexMismatch { .. })
    });
}

#[test]
fn a_receipt_for_another_digest_is_refused() {
    let other: Hash = *blake3::hash(b"some other snapshot").as_bytes();
    let ledger = Ledger::new(victim().evidence_idx, other);
    let receipt = ledger.receipt(&key(), other);
    assert_receipt_refused(&receipt, "digest mismatch", |e| {
        matches!(e, ReceiptError::DigestMismatch { .. })
    });
}

#[test]
fn a_receipt_whose_tree_lies_about_the_claims_is_refused() {
    // The receipt claims the victim's digest, but the signed tree holds another digest in
    // the evidence leaf: the proof cannot reach the signed root.
    let ev = victim().evidence_idx;
    let mut tree = MerkleTree::new();
    for i in 1..=ev + 2 {
        let claims = if i == ev { [9u8; 32] } else { [0; 32] };
        tree.push(leaf_hash(&tx_digest(i), &claims));
    }
    let sig_idx = ev + 3;
    let root = tree.root(sig_idx - 1).unwrap();
    let forged = Receipt {
        evidence_idx: ev,
        evidence_tx_digest: tx_digest(ev),
        claims_digest: victim().claims,
        path: tree.proof(ev - 1, sig_idx - 1).unwrap(),
        signed: sign_root(&key(), sig_idx, &root),
    }
    .encode()
    .unwrap();
    assert_receipt_refused(&forged, "lying tree", |e| {
        matches!(e, ReceiptError::RootMismatch { .. })
    });
}

#[test]
fn a_file_under_another_name_is_refused() {
    let bytes = victim().file_bytes();
    for (idx, ev, field) in [(21, 21, "idx"), (20, 22, "evidence_idx")] {
        let name = SnapshotName {
            idx,
            evidence_idx: ev,
            state: FileState::Committed,
        };
        match verify_bytes(&bytes, Some(&name), &real_verifier()) {
            Err(VerifyError::NameMismatch { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
        // Through the store: planted under the wrong name, quarantined.
        let sim = SimFs::new(5);
        plant(&sim, previous());
        sim.plant_file(dir(), &name.file_name(), &bytes, true);
        let store = open(&sim, opts());
        assert_eq!(*store.latest().unwrap().unwrap().name(), previous().name());
        assert!(sim
            .read(dir(), &name.with_state(FileState::Corrupt).file_name())
            .is_some());
    }
}

#[test]
fn verification_checks_cheap_things_first() {
    // A header flip is refused without consulting the verifier at all.
    #[derive(Debug)]
    struct Panics;
    impl ReceiptVerifier for Panics {
        fn verify(
            &self,
            _: &[u8],
            _: &snapseal_persist::receipt::Expected,
        ) -> Result<snapseal_persist::receipt::VerifiedReceipt, ReceiptError> {
            panic!("the receipt must not be checked for a damaged header or length");
        }
    }
    let e = verify_bytes(&flipped(3), Some(&victim_name()), &Panics).unwrap_err();
    assert_eq!(e.check(), Some(Check::Header));
    let full = victim().file_bytes();
    let e = verify_bytes(&full[..full.len() - 1], Some(&victim_name()), &Panics).unwrap_err();
    assert_eq!(e.check(), Some(Check::Length));
    let e = verify_bytes(
        &full,
        Some(&SnapshotName {
            idx: 1,
            ..victim_name()
        }),
        &Panics,
    )
    .unwrap_err();
    assert_eq!(e.check(), Some(Check::Name));
    // Without a name, errors still say what they are about.
    let e = verify_bytes(&full[..10], None, &Panics).unwrap_err();
    assert!(e.to_string().contains("<bytes>"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary bytes, and a valid file with a few arbitrary bytes overwritten: never a
    /// panic, never accepted unless unchanged.
    #[test]
    fn arbitrary_damage_never_panics_and_never_verifies(
        random in prop::collection::vec(any::<u8>(), 0..600),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        prop_assert!(verify_bytes(&random, Some(&victim_name()), &*verifier()).is_err());
        let original = victim().file_bytes();
        let mut bytes = original.clone();
        for (at, value) in &edits {
            let i = at.index(bytes.len());
            bytes[i] = *value;
        }
        let result = verify_bytes(&bytes, Some(&victim_name()), &*verifier());
        prop_assert_eq!(result.is_ok(), bytes == original);
    }
}
