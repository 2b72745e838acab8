//! Receipt schemes: a file names its scheme in its receipt, the verifier dispatches on that name,
//! and the signed-statement scheme is as strict as the Merkle one (docs/FORMAT.md §5).

use std::sync::Arc;

use crate::fixture::{assemble, dir, key, open, untrusted_key, Snap};
use coset::cbor::value::Value;
use coset::{CoseSign1, Label, ProtectedHeader, TaggedCborSerializable};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use snapseal_persist::fs::SimFs;
use snapseal_persist::internals::format::body_digest;
use snapseal_persist::internals::receipt::{scheme_of, SignedStatement, LABEL_SCHEME};
use snapseal_persist::internals::{verify_bytes, PassOverReason, PersistRequest, SpillCommit};
use snapseal_persist::receipt::{
    Ed25519Verifier, Expected, ReceiptError, ReceiptScheme, ReceiptVerifier, SchemeId, Schemes,
    StatementScheme, VerifiedReceipt,
};
use snapseal_persist::{Claims, Flags};
use snapseal_persist::{FileState, SnapshotName, StoreOptions, VerifyError};

/// The node key statements are signed with (trusted where a test says so).
fn node_key() -> SigningKey {
    SigningKey::from_bytes(&[11u8; 32])
}

fn claims_of(idx: u64, body: &[u8]) -> Claims {
    Claims {
        idx,
        flags: Flags::NONE,
        body_len: body.len() as u64,
        raw_len: body.len() as u64,
        body_digest: body_digest(body),
    }
}

fn body(idx: u64) -> Vec<u8> {
    format!("state of the service at {idx}").into_bytes()
}

/// The receipt bytes of a statement over the snapshot at `idx` committed at `commit_idx`.
fn statement(key: &SigningKey, idx: u64, commit_idx: u64) -> Vec<u8> {
    SignedStatement::sign(key, &claims_of(idx, &body(idx)), commit_idx, Some(3))
        .unwrap()
        .encode()
        .unwrap()
}

/// A whole committed file for `idx` at `commit_idx` with a statement signed by `key`.
fn statement_file(key: &SigningKey, idx: u64, commit_idx: u64) -> Vec<u8> {
    assemble(
        idx,
        commit_idx,
        &body(idx),
        &statement(key, idx, commit_idx),
    )
}

fn name(idx: u64, evidence_idx: u64) -> SnapshotName {
    SnapshotName {
        idx,
        evidence_idx,
        state: FileState::Committed,
    }
}

/// Trusts the fixture's ledger key for Merkle receipts and [`node_key`] for statements.
fn both() -> Ed25519Verifier {
    Ed25519Verifier::new(vec![key().verifying_key()])
        .with_statement_keys(vec![node_key().verifying_key()])
}

fn receipt_error(bytes: &[u8], n: SnapshotName, v: &dyn ReceiptVerifier) -> ReceiptError {
    match verify_bytes(bytes, Some(&n), v) {
        Err(VerifyError::Receipt { source, .. }) => source,
        other => panic!("expected a receipt error, got {other:?}"),
    }
}

#[test]
fn both_schemes_verify_honest_receipts_and_report_their_scheme() {
    let v = both();
    let merkle = Snap::new(5, 100);
    let merkle_file = merkle.file_bytes();
    let ok = verify_bytes(&merkle_file, Some(&merkle.name()), &v).unwrap();
    assert_eq!(ok.verified.scheme, SchemeId::MERKLE);
    assert_eq!(scheme_of(ok.receipt), Ok(SchemeId::MERKLE));

    let file = statement_file(&node_key(), 5, 9);
    let ok = verify_bytes(&file, Some(&name(5, 9)), &v).unwrap();
    assert_eq!(ok.verified.scheme, SchemeId::STATEMENT);
    assert_eq!(ok.verified.sig_idx, 9, "the commit index vouched for");
    assert_eq!(ok.body, body(5).as_slice());
    assert_eq!(scheme_of(ok.receipt), Ok(SchemeId::STATEMENT));

    // Without a term, too.
    let receipt = SignedStatement::sign(&node_key(), &claims_of(5, &body(5)), 9, None)
        .unwrap()
        .encode()
        .unwrap();
    let file = assemble(5, 9, &body(5), &receipt);
    assert_eq!(SignedStatement::decode(&receipt).unwrap().term, None);
    verify_bytes(&file, Some(&name(5, 9)), &v).unwrap();
}

#[test]
fn a_statement_is_written_through_the_store_and_found_by_latest() {
    let sim = SimFs::new(1);
    let opts = StoreOptions::new(Arc::new(both()));
    let store = open(&sim, opts);
    let b = body(7);
    let receipt = statement(&node_key(), 7, 8);
    store
        .persist(&PersistRequest {
            idx: 7,
            evidence_idx: 8,
            flags: Flags::NONE,
            raw_len: b.len() as u64,
            body_digest: body_digest(&b),
            body: &b,
            receipt: &receipt,
        })
        .unwrap();
    let latest = store.latest().unwrap().expect("the statement snapshot");
    assert_eq!(*latest.name(), name(7, 8));
    assert_eq!(latest.receipt().scheme, SchemeId::STATEMENT);
}

#[test]
fn a_statement_completes_a_spilled_body() {
    let sim = SimFs::new(4);
    let store = open(&sim, StoreOptions::new(Arc::new(both())));
    let b = body(12);
    let mut spill = store.create_spill(12, 1).unwrap();
    spill.write_body(&b).unwrap();
    let receipt = statement(&node_key(), 12, 14);
    store
        .commit_spill(
            spill,
            &SpillCommit {
                evidence_idx: 14,
                flags: Flags::NONE,
                raw_len: b.len() as u64,
                body_digest: body_digest(&b),
                receipt: &receipt,
            },
        )
        .unwrap();
    let latest = store
        .latest()
        .unwrap()
        .expect("the spilled statement snapshot");
    assert_eq!(*latest.name(), name(12, 14));
    assert_eq!(latest.receipt().scheme, SchemeId::STATEMENT);
}

#[test]
fn signing_refuses_a_commit_index_not_after_the_snapshot() {
    for commit_idx in [0, 6, 7] {
        let r = SignedStatement::sign(&node_key(), &claims_of(7, &body(7)), commit_idx, None);
        assert!(
            matches!(r, Err(ReceiptError::Encode(_))),
            "{commit_idx}: {r:?}"
        );
    }
}

#[test]
fn a_statement_by_an_untrusted_key_is_untrusted_and_passed_over_not_quarantined() {
    let file = statement_file(&untrusted_key(), 5, 6);
    assert!(matches!(
        receipt_error(&file, name(5, 6), &both()),
        ReceiptError::UntrustedKey { .. }
    ));
    // A store that trusts Merkle receipts only: the scheme is not configured, which is the
    // same kind of fault (configuration), so the file is passed over too.
    let merkle_only = Ed25519Verifier::new(vec![key().verifying_key()]);
    let good = statement_file(&node_key(), 5, 6);
    let e = receipt_error(&good, name(5, 6), &merkle_only);
    assert_eq!(
        e,
        ReceiptError::SchemeNotTrusted {
            scheme: SchemeId::STATEMENT
        }
    );
    assert!(e.is_untrusted());

    for (bytes, verifier) in [
        (file, Arc::new(both())),
        (good, Arc::new(merkle_only.clone())),
    ] {
        let sim = SimFs::new(2);
        let older = Snap::new(2, 50);
        sim.plant_file(
            dir(),
            &older.file_name(FileState::Committed),
            &older.file_bytes(),
            true,
        );
        let victim = name(5, 6).file_name();
        sim.plant_file(dir(), &victim, &bytes, true);
        let store = open(&sim, StoreOptions::new(verifier));
        let plan = store.plan_latest().unwrap();
        assert!(matches!(
            plan.passed_over[0].reason,
            PassOverReason::Untrusted(_)
        ));
        drop(plan);
        let latest = store.latest().unwrap().expect("the older Merkle snapshot");
        assert_eq!(*latest.name(), older.name());
        assert_eq!(
            sim.read(dir(), &victim).as_deref(),
            Some(&bytes[..]),
            "left in place"
        );
        assert_eq!(store.stats().quarantined, 0);
        assert_eq!(store.stats().untrusted_skipped, 1);
    }
}

#[test]
fn a_statement_whose_claims_differ_from_the_header_is_refused() {
    let v = both();
    // A genuine statement for the snapshot at 5, in a file relabelled as 6 (header and name).
    let receipt = statement(&node_key(), 5, 9);
    let relabelled = assemble(6, 9, &body(5), &receipt);
    assert!(matches!(
        receipt_error(&relabelled, name(6, 9), &v),
        ReceiptError::DigestMismatch { .. }
    ));
    // The same statement under another commit index.
    let moved = assemble(5, 10, &body(5), &receipt);
    assert_eq!(
        receipt_error(&moved, name(5, 10), &v),
        ReceiptError::EvidenceIndexMismatch {
            expected: 10,
            actual: 9
        }
    );
    // The genuine statement put with another body (header made consistent with that body).
    let swapped_body = assemble(5, 9, b"some other state", &receipt);
    assert!(matches!(
        receipt_error(&swapped_body, name(5, 9), &v),
        ReceiptError::DigestMismatch { .. }
    ));
    // A statement whose signed idx disagrees with its own claims (a careless signer): refused
    // on idx even though the claims digest matches the header.
    let claims = claims_of(5, &body(5));
    let mut s = SignedStatement::sign(&node_key(), &claims, 9, None).unwrap();
    s.idx = 4;
    let resigned = resign(&node_key(), &s);
    assert_eq!(
        receipt_error(&assemble(5, 9, &body(5), &resigned), name(5, 9), &v),
        ReceiptError::IdxMismatch {
            expected: 5,
            actual: 4
        }
    );
}

/// `s` signed again by `key` as it stands (so only its content, not its signature, is wrong).
fn resign(key: &SigningKey, s: &SignedStatement) -> Vec<u8> {
    let bytes = s.encode().unwrap();
    let sign1 = CoseSign1::from_tagged_slice(&bytes).unwrap();
    let tbs = sign1.tbs_data(&[]);
    let sig = ed25519_dalek::Signer::sign(key, &tbs);
    SignedStatement {
        signature: sig.to_bytes(),
        ..s.clone()
    }
    .encode()
    .unwrap()
}

/// `receipt` with its protected scheme parameter set to `scheme` (or removed), signed again by
/// `key` over the new protected header, so the signature is not what refuses it.
fn with_scheme(receipt: &[u8], scheme: Option<u64>, key: &SigningKey) -> Vec<u8> {
    let mut sign1 = CoseSign1::from_tagged_slice(receipt).unwrap();
    let mut header = sign1.protected.header.clone();
    header.rest.retain(|(l, _)| *l != Label::Int(LABEL_SCHEME));
    if let Some(id) = scheme {
        // Keep the parameter where it was (after kid, before the statement's fields).
        header
            .rest
            .insert(0, (Label::Int(LABEL_SCHEME), Value::Integer(id.into())));
    }
    sign1.protected = ProtectedHeader {
        original_data: None,
        header,
    };
    let tbs = sign1.tbs_data(&[]);
    sign1.signature = ed25519_dalek::Signer::sign(key, &tbs).to_bytes().to_vec();
    sign1.to_tagged_vec().unwrap()
}

#[test]
fn swapping_the_scheme_id_is_refused_both_ways() {
    // The same key trusted for both schemes: the strongest case for a confusion.
    let shared = key();
    let v = Ed25519Verifier::new(vec![shared.verifying_key()])
        .with_statement_keys(vec![shared.verifying_key()]);
    let merkle = Snap::new(5, 64);
    let statement = statement(&shared, 5, 6);
    let stmt_file = assemble(5, 6, &body(5), &statement);
    verify_bytes(&merkle.file_bytes(), Some(&merkle.name()), &v).unwrap();
    verify_bytes(&stmt_file, Some(&name(5, 6)), &v).unwrap();

    // Relabelled but with the old signature kept, and re-signed under the new label.
    let cases = [
        ("merkle as statement", merkle.receipt.clone(), 2u64),
        ("statement as merkle", statement.clone(), 1u64),
    ];
    for (what, receipt, to) in cases {
        let resigned = with_scheme(&receipt, Some(to), &shared);
        assert_eq!(scheme_of(&resigned), Ok(SchemeId(to)), "{what}");
        let mut kept = resigned.clone();
        // Put the original signature back (the last 64 bytes of both encodings).
        let n = kept.len();
        kept[n - 64..].copy_from_slice(&receipt[receipt.len() - 64..]);
        for bytes in [resigned, kept] {
            let (idx, ev, b) = if to == 2 {
                (merkle.idx, merkle.evidence_idx, merkle.body.clone())
            } else {
                (5, 6, body(5))
            };
            let file = assemble(idx, ev, &b, &bytes);
            let e = receipt_error(&file, name(idx, ev), &v);
            assert!(matches!(e, ReceiptError::Decode(_)), "{what}: {e}");
        }
    }
}

#[test]
fn a_missing_or_unknown_scheme_is_a_clear_error() {
    let v = both();
    let merkle = Snap::new(5, 64);
    let none = with_scheme(&merkle.receipt, None, &key());
    let file = assemble(merkle.idx, merkle.evidence_idx, &merkle.body, &none);
    assert_eq!(
        receipt_error(&file, merkle.name(), &v),
        ReceiptError::MissingScheme
    );
    for id in [0u64, 3, 1023, 1024, u64::MAX] {
        let other = with_scheme(&merkle.receipt, Some(id), &key());
        let file = assemble(merkle.idx, merkle.evidence_idx, &merkle.body, &other);
        let e = receipt_error(&file, merkle.name(), &v);
        assert_eq!(
            e,
            ReceiptError::UnknownScheme {
                scheme: SchemeId(id)
            }
        );
        assert!(!e.is_untrusted(), "an unknown scheme is not a key matter");
        assert!(e.to_string().contains("unknown receipt scheme"), "{e}");
    }
    // Not a COSE_Sign1 at all.
    let file = assemble(merkle.idx, merkle.evidence_idx, &merkle.body, b"no receipt");
    assert!(matches!(
        receipt_error(&file, merkle.name(), &v),
        ReceiptError::Decode(_)
    ));
}

/// A toy scheme of an embedding node (id 1024): accepts a tagged COSE_Sign1 whose payload is the
/// claims digest, with no signature at all. Only here to show dispatch.
#[derive(Debug)]
struct Toy;

impl ReceiptScheme for Toy {
    fn id(&self) -> SchemeId {
        SchemeId(1024)
    }
    fn verify(&self, receipt: &[u8], e: &Expected) -> Result<VerifiedReceipt, ReceiptError> {
        let sign1 = CoseSign1::from_tagged_slice(receipt)
            .map_err(|err| ReceiptError::Decode(err.to_string()))?;
        if sign1.payload.as_deref() != Some(&e.claims_digest[..]) {
            return Err(ReceiptError::DigestMismatch {
                expected: e.claims_digest,
                actual: [0; 32],
            });
        }
        Ok(VerifiedReceipt {
            sig_idx: e.evidence_idx,
            signer: "toy".into(),
            // Deliberately wrong: the dispatcher reports the scheme the receipt names.
            scheme: SchemeId::MERKLE,
            term: None,
        })
    }
}

#[test]
fn an_embedding_nodes_own_scheme_is_dispatched_on_its_id() {
    let v = Schemes::new()
        .with(Arc::new(Toy))
        .with(Arc::new(StatementScheme::new(vec![
            node_key().verifying_key()
        ])));
    assert_eq!(v.ids(), [SchemeId(1024), SchemeId::STATEMENT]);
    let claims = claims_of(5, &body(5));
    let toy = CoseSign1 {
        protected: ProtectedHeader {
            original_data: None,
            header: coset::HeaderBuilder::new()
                .value(LABEL_SCHEME, Value::Integer(1024.into()))
                .build(),
        },
        payload: Some(claims.digest().to_vec()),
        ..Default::default()
    }
    .to_tagged_vec()
    .unwrap();
    let toy_file = assemble(5, 6, &body(5), &toy);
    let ok = verify_bytes(&toy_file, Some(&name(5, 6)), &v).unwrap();
    assert_eq!(
        (ok.verified.scheme, ok.verified.signer.as_str()),
        (SchemeId(1024), "toy")
    );
    verify_bytes(&statement_file(&node_key(), 5, 6), Some(&name(5, 6)), &v).unwrap();
    // The Merkle scheme is not configured here.
    let merkle = Snap::new(5, 64);
    assert_eq!(
        receipt_error(&merkle.file_bytes(), merkle.name(), &v),
        ReceiptError::SchemeNotTrusted {
            scheme: SchemeId::MERKLE
        }
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any change to a statement's bytes — a flipped bit, a cut, an inserted byte — and the
    /// file no longer verifies (the header is rebuilt each time, so only the receipt differs).
    #[test]
    fn a_mutated_statement_never_verifies(
        pos in any::<prop::sample::Index>(),
        bit in 0u8..8,
        kind in 0u8..3,
        extra in any::<u8>(),
    ) {
        let good = statement(&node_key(), 5, 6);
        let at = pos.index(good.len());
        let mut bad = good.clone();
        match kind {
            0 => bad[at] ^= 1 << bit,
            1 => bad.truncate(at),
            _ => bad.insert(at, extra),
        }
        prop_assume!(bad != good);
        let file = assemble(5, 6, &body(5), &bad);
        let r = verify_bytes(&file, Some(&name(5, 6)), &both());
        prop_assert!(r.is_err(), "mutation {kind} at {at} verified");
    }
}
