//! Built-in receipts: COSE encoding, strict decoding, and verification against trusted keys.

use coset::cbor::value::Value;
use coset::{iana, CoseSign1, HeaderBuilder, Label, ProtectedHeader, TaggedCborSerializable};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use proptest::prelude::*;
use snapseal_persist::internals::format;
use snapseal_persist::internals::format::Header;
use snapseal_persist::internals::receipt::{key_id, verify_signed_root, Receipt, LABEL_SCHEME};
use snapseal_persist::receipt::{
    leaf_hash, sign_root, Ed25519Verifier, Expected, MerkleTree, ReceiptError, ReceiptVerifier,
    SignedRoot,
};
use snapseal_persist::Flags;
use snapseal_persist::Hash;

fn signing_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn tx_digest(i: u64) -> Hash {
    *blake3::hash(&i.to_le_bytes()).as_bytes()
}

/// A toy ledger of `len` txs (1-based) whose tx `evidence_idx` carries `snapshot` as claims.
struct Ledger {
    tree: MerkleTree,
    evidence_idx: u64,
    snapshot: Hash,
}

impl Ledger {
    fn new(len: u64, evidence_idx: u64, snapshot: Hash) -> Self {
        let mut tree = MerkleTree::new();
        for i in 1..=len {
            let claims = if i == evidence_idx { snapshot } else { [0; 32] };
            tree.push(leaf_hash(&tx_digest(i), &claims));
        }
        Ledger {
            tree,
            evidence_idx,
            snapshot,
        }
    }

    fn signed(&self, key: &SigningKey, sig_idx: u64) -> SignedRoot {
        sign_root(key, sig_idx, &self.tree.root(sig_idx - 1).unwrap())
    }

    fn receipt(&self, key: &SigningKey, sig_idx: u64) -> Receipt {
        Receipt::prove(
            &self.tree,
            self.evidence_idx,
            tx_digest(self.evidence_idx),
            self.snapshot,
            self.signed(key, sig_idx),
        )
        .unwrap()
    }

    fn expected(&self) -> Expected {
        Expected {
            idx: 1000,
            evidence_idx: self.evidence_idx,
            body_digest: [0; 32],
            claims_digest: self.snapshot,
        }
    }
}

fn snapshot_digest() -> Hash {
    *blake3::hash(b"snapshot body").as_bytes()
}

fn verifier(keys: &[&SigningKey]) -> Ed25519Verifier {
    Ed25519Verifier::new(keys.iter().map(|k| k.verifying_key()).collect())
}

#[test]
fn honest_receipts_verify_for_every_evidence_and_signature_position() {
    let key = signing_key(1);
    let v = verifier(&[&signing_key(9), &key]);
    for evidence_idx in 1..20 {
        let ledger = Ledger::new(24, evidence_idx, snapshot_digest());
        for sig_idx in evidence_idx + 1..=25 {
            let bytes = ledger.receipt(&key, sig_idx).encode().unwrap();
            let ok = v.verify(&bytes, &ledger.expected()).unwrap();
            assert_eq!(ok.sig_idx, sig_idx);
            assert_eq!(
                ok.signer,
                snapseal_persist::to_hex(&key_id(&key.verifying_key()))
            );
        }
    }
}

#[test]
fn key_id_is_first_eight_bytes_of_blake3_of_the_public_key() {
    let vk = signing_key(3).verifying_key();
    assert_eq!(
        key_id(&vk).as_slice(),
        &blake3::hash(vk.as_bytes()).as_bytes()[..8]
    );
}

/// The encoding as FORMAT.md describes it, checked byte by byte without the crate's encoder: tag
/// 18, protected `{1: -8, 4: kid, -70000: 1}`, payload `sig_idx BE || root`, and an Ed25519 signature over the
/// hand-built Sig_structure.
#[test]
fn encoding_matches_the_documented_cose_layout() {
    let key = signing_key(4);
    let ledger = Ledger::new(10, 3, snapshot_digest());
    let r = ledger.receipt(&key, 7);
    let bytes = r.encode().unwrap();
    assert_eq!(bytes[0], 0xd2, "tag 18");
    assert_eq!(bytes[1], 0x84, "array of 4");
    let kid = key_id(&key.verifying_key());
    let mut protected = vec![0xa3, 0x01, 0x27, 0x04, 0x48];
    protected.extend_from_slice(&kid);
    // -70000 (scheme) is CBOR negative 69999 = 0x1116f; value 1 (Merkle).
    protected.extend_from_slice(&[0x3a, 0x00, 0x01, 0x11, 0x6f, 0x01]);
    assert_eq!(bytes[2], 0x40 | protected.len() as u8, "protected bstr");
    assert_eq!(&bytes[3..3 + protected.len()], protected.as_slice());

    let mut payload = 7u64.to_be_bytes().to_vec();
    payload.extend_from_slice(&ledger.tree.root(6).unwrap());
    // Sig_structure = ["Signature1", protected, h'', payload]
    let mut tbs = vec![0x84, 0x6a];
    tbs.extend_from_slice(b"Signature1");
    tbs.push(0x40 | protected.len() as u8);
    tbs.extend_from_slice(&protected);
    tbs.push(0x40);
    tbs.extend_from_slice(&[0x58, 40]);
    tbs.extend_from_slice(&payload);
    key.verifying_key()
        .verify_strict(&tbs, &Signature::from_bytes(&r.signed.signature))
        .unwrap();

    let sign1 = CoseSign1::from_tagged_slice(&bytes).unwrap();
    assert_eq!(sign1.payload.as_deref(), Some(payload.as_slice()));
    let labels: Vec<Label> = sign1
        .unprotected
        .rest
        .iter()
        .map(|(l, _)| l.clone())
        .collect();
    assert_eq!(
        labels,
        [-70001, -70002, -70003, -70004, -70005].map(Label::Int)
    );
    assert_eq!(sign1.unprotected.rest[0].1, Value::Integer(2.into()));
    assert_eq!(sign1.unprotected.rest[1].1, Value::Integer(3.into()));
    assert_eq!(
        sign1.unprotected.rest[2].1,
        Value::Bytes(tx_digest(3).to_vec())
    );
    assert_eq!(
        sign1.unprotected.rest[3].1,
        Value::Bytes(snapshot_digest().to_vec())
    );
    let path: Vec<Value> = r.path.iter().map(|h| Value::Bytes(h.to_vec())).collect();
    assert_eq!(sign1.unprotected.rest[4].1, Value::Array(path));
}

fn arb_receipt() -> impl Strategy<Value = Receipt> {
    (
        any::<u64>(),
        any::<Hash>(),
        any::<Hash>(),
        prop::collection::vec(any::<Hash>(), 0..=64),
        any::<u64>(),
        any::<Hash>(),
        any::<[u8; 8]>(),
        prop::collection::vec(any::<u8>(), 64),
    )
        .prop_map(|(e, txd, sd, path, s, root, kid, sig)| Receipt {
            evidence_idx: e,
            evidence_tx_digest: txd,
            claims_digest: sd,
            path,
            signed: SignedRoot {
                sig_idx: s,
                root,
                key_id: kid,
                signature: sig.try_into().unwrap(),
            },
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn receipt_round_trips(r in arb_receipt()) {
        let bytes = r.encode().unwrap();
        prop_assert_eq!(Receipt::decode(&bytes), Ok(r.clone()));
        prop_assert_eq!(r.encode().unwrap(), bytes, "encoding is deterministic");
    }

    /// Fuzz-style: neither decoding nor verifying arbitrary bytes panics.
    #[test]
    fn decode_and_verify_of_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = Receipt::decode(&bytes);
        let v = verifier(&[&signing_key(1)]);
        let e = Expected { idx: 1, evidence_idx: 1, body_digest: [0; 32], claims_digest: [0; 32] };
        prop_assert!(v.verify(&bytes, &e).is_err());
    }

    /// Fuzz-style, closer to the target: an honest receipt with random bytes overwritten is never
    /// accepted unless the edit changed nothing.
    #[test]
    fn random_edits_of_an_honest_receipt_are_never_accepted(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let key = signing_key(1);
        let ledger = Ledger::new(30, 11, snapshot_digest());
        let good = ledger.receipt(&key, 29).encode().unwrap();
        let mut b = good.clone();
        for (at, byte) in edits {
            let i = at.index(b.len());
            b[i] = byte;
        }
        let res = verifier(&[&key]).verify(&b, &ledger.expected());
        prop_assert!(res.is_err() || b == good);
    }
}

#[test]
fn every_single_bit_flip_of_an_encoded_receipt_is_rejected() {
    let key = signing_key(1);
    let ledger = Ledger::new(40, 13, snapshot_digest());
    let good = ledger.receipt(&key, 37).encode().unwrap();
    let v = verifier(&[&key]);
    v.verify(&good, &ledger.expected()).unwrap();
    for bit in 0..good.len() * 8 {
        let mut b = good.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        assert!(
            v.verify(&b, &ledger.expected()).is_err(),
            "bit {bit} flipped and still verified"
        );
    }
}

#[test]
fn every_truncation_of_an_encoded_receipt_is_rejected() {
    let key = signing_key(1);
    let ledger = Ledger::new(40, 13, snapshot_digest());
    let good = ledger.receipt(&key, 37).encode().unwrap();
    for len in 0..good.len() {
        assert!(
            matches!(Receipt::decode(&good[..len]), Err(ReceiptError::Decode(_))),
            "truncated to {len}"
        );
    }
    let mut longer = good.clone();
    longer.push(0);
    assert!(matches!(
        Receipt::decode(&longer),
        Err(ReceiptError::Decode(_))
    ));
}

#[test]
fn untrusted_key_is_rejected() {
    let ledger = Ledger::new(10, 4, snapshot_digest());
    let bytes = ledger.receipt(&signing_key(2), 8).encode().unwrap();
    let err = verifier(&[&signing_key(1)])
        .verify(&bytes, &ledger.expected())
        .unwrap_err();
    assert_eq!(
        err,
        ReceiptError::UntrustedKey {
            key_id: snapseal_persist::to_hex(&key_id(&signing_key(2).verifying_key()))
        }
    );
    // No keys at all: nothing is trusted.
    assert!(matches!(
        Ed25519Verifier::new(Vec::new()).verify(&bytes, &ledger.expected()),
        Err(ReceiptError::UntrustedKey { .. })
    ));
}

#[test]
fn signature_by_another_key_under_a_trusted_key_id_is_rejected() {
    let trusted = signing_key(1);
    let forger = signing_key(2);
    let ledger = Ledger::new(10, 4, snapshot_digest());
    let mut r = ledger.receipt(&forger, 8);
    r.signed.key_id = key_id(&trusted.verifying_key());
    let err = verifier(&[&trusted])
        .verify(&r.encode().unwrap(), &ledger.expected())
        .unwrap_err();
    assert!(matches!(err, ReceiptError::BadSignature { .. }), "{err:?}");
}

#[test]
fn proof_for_another_leaf_is_rejected() {
    let key = signing_key(1);
    let ledger = Ledger::new(20, 6, snapshot_digest());
    let v = verifier(&[&key]);
    let honest = ledger.receipt(&key, 17);
    for other in (1..=16).filter(|&i| i != 6) {
        let mut r = honest.clone();
        r.path = ledger.tree.proof(other - 1, 16).unwrap();
        let err = v
            .verify(&r.encode().unwrap(), &ledger.expected())
            .unwrap_err();
        assert!(
            matches!(
                err,
                ReceiptError::RootMismatch { .. } | ReceiptError::BadProof { .. }
            ),
            "path of leaf {other}: {err:?}"
        );
    }
    // Claiming another evidence index (with that leaf's path) is caught against the file.
    let mut r = honest.clone();
    r.evidence_idx = 7;
    r.path = ledger.tree.proof(6, 16).unwrap();
    assert_eq!(
        v.verify(&r.encode().unwrap(), &ledger.expected()),
        Err(ReceiptError::EvidenceIndexMismatch {
            expected: 6,
            actual: 7
        })
    );
    // And when the file agrees with that claim, the leaf does not match the proof.
    let wrong = Expected {
        evidence_idx: 7,
        ..ledger.expected()
    };
    assert!(matches!(
        v.verify(&r.encode().unwrap(), &wrong),
        Err(ReceiptError::RootMismatch { .. })
    ));
}

#[test]
fn snapshot_digest_mismatch_is_rejected() {
    let key = signing_key(1);
    let ledger = Ledger::new(10, 4, snapshot_digest());
    let bytes = ledger.receipt(&key, 8).encode().unwrap();
    let other = *blake3::hash(b"another body").as_bytes();
    let expected = Expected {
        claims_digest: other,
        ..ledger.expected()
    };
    assert_eq!(
        verifier(&[&key]).verify(&bytes, &expected),
        Err(ReceiptError::DigestMismatch {
            expected: other,
            actual: snapshot_digest()
        })
    );
    // A receipt that claims the other digest does not fit the ledger's leaf.
    let mut r = ledger.receipt(&key, 8);
    r.claims_digest = other;
    assert!(matches!(
        verifier(&[&key]).verify(&r.encode().unwrap(), &expected),
        Err(ReceiptError::RootMismatch { .. })
    ));
}

#[test]
fn signature_not_after_evidence_is_rejected() {
    let key = signing_key(1);
    let ledger = Ledger::new(10, 5, snapshot_digest());
    let v = verifier(&[&key]);
    for sig_idx in [0, 1, 4, 5] {
        let mut r = ledger.receipt(&key, 8);
        r.signed = sign_root(&key, sig_idx, &r.signed.root);
        assert_eq!(
            v.verify(&r.encode().unwrap(), &ledger.expected()),
            Err(ReceiptError::SigBeforeEvidence {
                sig_idx,
                evidence_idx: 5
            })
        );
    }
}

#[test]
fn evidence_index_zero_is_rejected() {
    let key = signing_key(1);
    let ledger = Ledger::new(10, 5, snapshot_digest());
    let mut r = ledger.receipt(&key, 8);
    r.evidence_idx = 0;
    let e = Expected {
        evidence_idx: 0,
        ..ledger.expected()
    };
    assert_eq!(
        verifier(&[&key]).verify(&r.encode().unwrap(), &e),
        Err(ReceiptError::EvidenceIndexZero)
    );
}

#[test]
fn proof_of_the_wrong_length_is_rejected_as_malformed() {
    let key = signing_key(1);
    let ledger = Ledger::new(20, 6, snapshot_digest());
    let v = verifier(&[&key]);
    let mut r = ledger.receipt(&key, 17);
    r.path.pop();
    assert_eq!(
        v.verify(&r.encode().unwrap(), &ledger.expected()),
        Err(ReceiptError::BadProof {
            leaf_index: 5,
            tree_size: 16,
            path_len: 3
        })
    );
}

#[test]
fn signed_root_verifies_only_under_its_key_and_content() {
    let key = signing_key(5);
    let root = [42u8; 32];
    let sr = sign_root(&key, 77, &root);
    assert_eq!(sr.key_id, key_id(&key.verifying_key()));
    verify_signed_root(&key.verifying_key(), &sr).unwrap();
    assert!(matches!(
        verify_signed_root(&signing_key(6).verifying_key(), &sr),
        Err(ReceiptError::KeyIdMismatch { .. })
    ));
    let mut moved = sr.clone();
    moved.sig_idx = 78;
    assert!(matches!(
        verify_signed_root(&key.verifying_key(), &moved),
        Err(ReceiptError::BadSignature { .. })
    ));
    let mut other_root = sr.clone();
    other_root.root[31] ^= 1;
    assert!(matches!(
        verify_signed_root(&key.verifying_key(), &other_root),
        Err(ReceiptError::BadSignature { .. })
    ));
}

#[test]
fn prove_refuses_a_tree_without_the_signed_root() {
    let key = signing_key(1);
    let ledger = Ledger::new(10, 4, snapshot_digest());
    let wrong_root = sign_root(&key, 8, &[0; 32]);
    assert!(matches!(
        Receipt::prove(&ledger.tree, 4, tx_digest(4), snapshot_digest(), wrong_root),
        Err(ReceiptError::TreeMismatch { .. })
    ));
    let beyond = sign_root(&key, 12, &[0; 32]);
    assert!(matches!(
        Receipt::prove(&ledger.tree, 4, tx_digest(4), snapshot_digest(), beyond),
        Err(ReceiptError::TreeMismatch { .. })
    ));
    let early = ledger.signed(&key, 4);
    assert!(matches!(
        Receipt::prove(&ledger.tree, 4, tx_digest(4), snapshot_digest(), early),
        Err(ReceiptError::SigBeforeEvidence { .. })
    ));
}

#[test]
fn encode_refuses_an_overlong_path() {
    let key = signing_key(1);
    let mut r = Ledger::new(10, 4, snapshot_digest()).receipt(&key, 8);
    r.path = vec![[0; 32]; 65];
    assert!(matches!(r.encode(), Err(ReceiptError::Encode(_))));
}

// --- strict decoding: hand-built COSE objects that differ from the canonical form in one way ---

/// The canonical pieces of an honest receipt, for tests to alter one at a time.
struct Parts {
    protected: coset::Header,
    rest: Vec<(Label, Value)>,
    payload: Option<Vec<u8>>,
    signature: Vec<u8>,
}

fn parts() -> Parts {
    let key = signing_key(1);
    let r = Ledger::new(10, 4, snapshot_digest()).receipt(&key, 8);
    let sign1 = CoseSign1::from_tagged_slice(&r.encode().unwrap()).unwrap();
    Parts {
        protected: sign1.protected.header,
        rest: sign1.unprotected.rest,
        payload: sign1.payload,
        signature: sign1.signature,
    }
}

fn build(p: Parts) -> Vec<u8> {
    let mut unprotected = HeaderBuilder::new().build();
    unprotected.rest = p.rest;
    CoseSign1 {
        protected: ProtectedHeader {
            original_data: None,
            header: p.protected,
        },
        unprotected,
        payload: p.payload,
        signature: p.signature,
    }
    .to_tagged_vec()
    .unwrap()
}

fn decode_error(bytes: &[u8]) -> String {
    match Receipt::decode(bytes) {
        Err(ReceiptError::Decode(detail)) => detail,
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[test]
fn canonical_parts_rebuild_an_accepted_receipt() {
    // Guards the tests below: only the one alteration each makes can cause their rejection.
    assert!(Receipt::decode(&build(parts())).is_ok());
}

#[test]
fn missing_labels_are_rejected() {
    for i in 0..5 {
        let mut p = parts();
        let (label, _) = p.rest.remove(i);
        let detail = decode_error(&build(p));
        assert!(detail.contains("missing"), "{label:?}: {detail}");
    }
}

#[test]
fn extra_labels_are_rejected() {
    for extra in [
        (Label::Int(-70006), Value::Integer(0.into())),
        (Label::Text("x".into()), Value::Null),
    ] {
        let mut p = parts();
        p.rest.push(extra);
        assert!(decode_error(&build(p)).contains("unexpected"));
    }
    let mut p = parts();
    let mut unprotected = HeaderBuilder::new().key_id(vec![1]).build();
    unprotected.rest = std::mem::take(&mut p.rest);
    let bytes = CoseSign1 {
        protected: ProtectedHeader {
            original_data: None,
            header: p.protected,
        },
        unprotected,
        payload: p.payload,
        signature: p.signature,
    }
    .to_tagged_vec()
    .unwrap();
    assert!(decode_error(&bytes).contains("unexpected standard"));
}

#[test]
fn wrong_types_and_lengths_are_rejected() {
    let cases: Vec<(usize, Value)> = vec![
        (0, Value::Text("1".into())),
        (1, Value::Bytes(vec![4])),
        (1, Value::Integer((-4).into())),
        (2, Value::Bytes(vec![0; 31])),
        (2, Value::Bytes(vec![0; 33])),
        (2, Value::Integer(1.into())),
        (3, Value::Bytes(vec![0; 31])),
        (3, Value::Text("digest".into())),
        (4, Value::Bytes(vec![0; 32])),
        (4, Value::Array(vec![Value::Bytes(vec![0; 31])])),
        (4, Value::Array(vec![Value::Integer(0.into())])),
        (4, Value::Array(vec![Value::Bytes(vec![0; 32]); 65])),
    ];
    for (i, value) in cases {
        let mut p = parts();
        p.rest[i].1 = value.clone();
        let detail = decode_error(&build(p));
        assert!(detail.contains("label -7000"), "{i} {value:?}: {detail}");
    }
}

#[test]
fn unsupported_receipt_versions_are_rejected() {
    // Version 1 is the encoding without the scheme parameter, no longer read.
    for v in [0i64, 1, 3, -1, 1 << 40] {
        let mut p = parts();
        p.rest[0].1 = Value::Integer(v.into());
        assert_eq!(
            Receipt::decode(&build(p)),
            Err(ReceiptError::UnsupportedVersion {
                supported: 2,
                actual: v.into()
            })
        );
    }
}

#[test]
fn protected_header_must_be_exactly_eddsa_kid_and_scheme() {
    let kid = parts().protected.key_id;
    let scheme = |n: i64| (LABEL_SCHEME, Value::Integer(n.into()));
    // Each variant differs from the accepted `{1: -8, 4: kid, -70000: 1}` in one way only.
    let with = |alg: Option<iana::Algorithm>, kid: Vec<u8>, extra: Vec<(i64, Value)>| {
        let mut b = HeaderBuilder::new().key_id(kid);
        if let Some(alg) = alg {
            b = b.algorithm(alg);
        }
        for (label, value) in extra {
            b = b.value(label, value);
        }
        b.build()
    };
    let eddsa = Some(iana::Algorithm::EdDSA);
    let variants = [
        with(Some(iana::Algorithm::ES256), kid.clone(), vec![scheme(1)]),
        with(None, kid.clone(), vec![scheme(1)]),
        with(eddsa, kid[..7].to_vec(), vec![scheme(1)]),
        with(
            eddsa,
            kid.clone(),
            vec![scheme(1), (-70001, Value::Integer(1.into()))],
        ),
        with(eddsa, kid.clone(), vec![]),
        with(eddsa, kid.clone(), vec![scheme(2)]),
        with(
            eddsa,
            kid.clone(),
            vec![(LABEL_SCHEME, Value::Text("merkle".into()))],
        ),
        HeaderBuilder::new()
            .algorithm(iana::Algorithm::EdDSA)
            .key_id(kid.clone())
            .content_type("a/b".into())
            .value(LABEL_SCHEME, Value::Integer(1.into()))
            .build(),
    ];
    for header in variants {
        let mut p = parts();
        p.protected = header.clone();
        let detail = decode_error(&build(p));
        assert!(detail.contains("protected"), "{header:?}: {detail}");
    }
}

#[test]
fn payload_and_signature_shapes_are_enforced() {
    let mut p = parts();
    p.payload = None;
    assert!(decode_error(&build(p)).contains("detached"));
    let mut p = parts();
    p.payload.as_mut().unwrap().push(0);
    assert!(decode_error(&build(p)).contains("payload"));
    let mut p = parts();
    p.signature.pop();
    assert!(decode_error(&build(p)).contains("signature"));
}

#[test]
fn untagged_or_non_canonical_encodings_are_rejected() {
    let good = build(parts());
    // Without the tag 18 prefix.
    decode_error(&good[1..]);
    // The same receipt with a non-minimal integer: evidence_idx 4 written as a 2-byte uint.
    let needle = [0x3a, 0x00, 0x01, 0x11, 0x71, 0x04];
    let at = good
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("evidence_idx label");
    let mut wide = good[..at + 5].to_vec();
    wide.extend_from_slice(&[0x19, 0x00, 0x04]);
    wide.extend_from_slice(&good[at + 6..]);
    assert!(decode_error(&wide).contains("canonical"));
}

#[test]
fn oversized_input_is_rejected_before_parsing() {
    let big = vec![0u8; snapseal_persist::internals::receipt::MAX_RECEIPT_LEN + 1];
    assert!(decode_error(&big).contains("at most"));
}

/// A whole committed file: split, body digest, receipt — what a reader does, in that order.
#[test]
fn committed_file_verifies_end_to_end() {
    let key = signing_key(1);
    let body = b"serialized state".repeat(100);
    let digest = format::body_digest(&body);
    let claims = format::Claims {
        idx: 20,
        flags: Flags::NONE,
        body_len: body.len() as u64,
        raw_len: body.len() as u64,
        body_digest: digest,
    }
    .digest();
    let ledger = Ledger::new(50, 21, claims);
    let receipt = ledger.receipt(&key, 43).encode().unwrap();
    let header = Header {
        idx: 20,
        evidence_idx: 21,
        flags: Flags::NONE,
        body_len: body.len() as u64,
        receipt_len: receipt.len() as u64,
        raw_len: body.len() as u64,
        body_digest: digest,
        receipt_digest: *blake3::hash(&receipt).as_bytes(),
    };
    let mut file = header.encode().to_vec();
    file.extend_from_slice(&body);
    file.extend_from_slice(&receipt);

    let (h, b, r) = format::split(&file).unwrap();
    format::verify_body(&h, b).unwrap();
    let expected = Expected {
        idx: h.idx,
        evidence_idx: h.evidence_idx,
        body_digest: h.body_digest,
        claims_digest: h.claims().digest(),
    };
    let ok = verifier(&[&key]).verify(r, &expected).unwrap();
    assert_eq!(ok.sig_idx, 43);
}

#[test]
fn verifier_is_a_shareable_trait_object() {
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    let v: Box<dyn ReceiptVerifier> = Box::new(verifier(&[&signing_key(1)]));
    assert_send_sync(&v);
    let _: VerifyingKey = signing_key(1).verifying_key();
    assert!(format!("{v:?}").contains("Ed25519Verifier"));
}
