//! The statements of docs/FORMAT.md and docs/SPEC.md that an independent reader relies on,
//! each pinned by a test named after the sentence it checks, so the documents cannot drift
//! from the code unnoticed:
//! - the signature check (FORMAT.md §5.4): which Ed25519 equation, and what it refuses, with
//!   signatures crafted by hand (a small-order key, a small-order or non-canonical `R`, `S` not
//!   below `L`, a torsion component);
//! - the zstd body (FORMAT.md §2.1): window limit, frames, dictionaries, checksums, trailing
//!   bytes;
//! - names that are not committed names (FORMAT.md §8, SPEC §5): what the store, its listing,
//!   `latest` and retention do with each.
//!
//! A test marked `#[ignore]` states what the documents say the code should do and does not do
//! yet; its reason names the defect.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;

use crate::fixture::{real_verifier, Snap};
use ed25519_dalek::{Signature, SigningKey, Verifier, VerifyingKey};
use snapseal_persist::fs::RealFs;
use snapseal_persist::internals::format::Header;
use snapseal_persist::internals::receipt::{key_id, verify_signed_root, Receipt, SignedStatement};
use snapseal_persist::internals::{check_body_encoding, classify_dir, EntryClass};
use snapseal_persist::receipt::{
    Ed25519Verifier, Expected, ReceiptError, ReceiptVerifier, SignedRoot,
};
use snapseal_persist::Flags;
use snapseal_persist::{BodyError, FileState, Hash, SnapshotName, SnapshotStore, StoreOptions};

// ---------------------------------------------------------------------------------------------
// FORMAT.md §5.4: the signature check.
// ---------------------------------------------------------------------------------------------

/// The Ed25519 base point `B`, RFC 8032 encoding.
const BASEPOINT: [u8; 32] = {
    let mut b = [0x66u8; 32];
    b[0] = 0x58;
    b
};

/// The identity point (a small-order point), canonical encoding: y = 1, x = 0.
const IDENTITY: [u8; 32] = {
    let mut b = [0u8; 32];
    b[0] = 1;
    b
};

/// The identity again, spelled with y = p + 1 (p = 2^255 - 19): a non-canonical encoding.
const IDENTITY_NON_CANONICAL: [u8; 32] = {
    let mut b = [0xffu8; 32];
    b[0] = 0xee;
    b[31] = 0x7f;
    b
};

/// A point of order 8 (a torsion point).
const ORDER_8: [u8; 32] = [
    0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f,
    0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a,
];

/// The group order L = 2^252 + 27742317777372353535851937790883648493, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fn point(bytes: &[u8; 32]) -> VerifyingKey {
    VerifyingKey::from_bytes(bytes).expect("a curve point")
}

fn signer(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn signature(r: &[u8; 32], s: &[u8; 32]) -> Signature {
    let mut bytes = [0u8; 64];
    bytes[..32].copy_from_slice(r);
    bytes[32..].copy_from_slice(s);
    Signature::from_bytes(&bytes)
}

/// The bytes a Merkle receipt's signature covers, spelled as FORMAT.md §5.2 spells them:
/// `84 6a "Signature1" 53 a3 01 27 04 48 <kid> 3a 00 01 11 6f 01 40 58 28 <sig_idx BE> <root>`.
fn merkle_signed_bytes(kid: &[u8; 8], sig_idx: u64, root: &Hash) -> Vec<u8> {
    let mut m = vec![0x84, 0x6a];
    m.extend_from_slice(b"Signature1");
    m.extend_from_slice(&[0x53, 0xa3, 0x01, 0x27, 0x04, 0x48]);
    m.extend_from_slice(kid);
    m.extend_from_slice(&[0x3a, 0x00, 0x01, 0x11, 0x6f, 0x01, 0x40, 0x58, 0x28]);
    m.extend_from_slice(&sig_idx.to_be_bytes());
    m.extend_from_slice(root);
    m
}

/// What snapseal's Merkle scheme says about `sig` by `key` over the root `[1; 32]` at 4.
fn snapseal_accepts(key: &VerifyingKey, sig: &Signature) -> bool {
    let signed = SignedRoot {
        sig_idx: 4,
        root: [1; 32],
        key_id: key_id(key),
        signature: sig.to_bytes(),
    };
    verify_signed_root(key, &signed).is_ok()
}

/// The message [`snapseal_accepts`] checks `sig` against.
fn message(key: &VerifyingKey) -> Vec<u8> {
    merkle_signed_bytes(&key_id(key), 4, &[1; 32])
}

/// What the permissive `verify` of ed25519-dalek (no small-order checks) says: used to show
/// that a crafted signature does satisfy the equation, so a refusal is the strict check's.
fn permissive_accepts(key: &VerifyingKey, sig: &Signature) -> bool {
    key.verify(&message(key), sig).is_ok()
}

#[test]
fn a_signature_made_by_the_documented_equation_over_the_documented_bytes_verifies() {
    // S = r + k·a with k = SHA-512(R || A || M) mod L, by hand: the check below rests on it.
    let sk = signer(7);
    let (a, key) = (sk.to_scalar(), sk.verifying_key());
    let nonce = signer(9);
    let (r, big_r) = (nonce.to_scalar(), nonce.verifying_key().to_bytes());
    let k = raw::challenge(a, &big_r, key.as_bytes(), &message(&key));
    let sig = signature(&big_r, &(r + k * a).to_bytes());
    assert!(snapseal_accepts(&key, &sig));
    // And the library's own signature over the same bytes.
    use ed25519_dalek::Signer;
    assert!(snapseal_accepts(&key, &sk.sign(&message(&key))));
}

#[test]
fn a_signature_whose_s_is_not_below_l_is_refused() {
    let sk = signer(7);
    let key = sk.verifying_key();
    use ed25519_dalek::Signer;
    let good = sk.sign(&message(&key));
    assert!(snapseal_accepts(&key, &good));
    // S + L: the same scalar mod L, the top three bits still clear (so even a check of only
    // those bits would pass it).
    let mut s = good.s_bytes().to_owned();
    let mut carry = 0u16;
    for (byte, l) in s.iter_mut().zip(L) {
        let sum = u16::from(*byte) + u16::from(l) + carry;
        *byte = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!((carry, s[31] & 0xe0), (0, 0));
    let malleated = signature(good.r_bytes(), &s);
    assert!(!snapseal_accepts(&key, &malleated));
    assert!(!snapseal_accepts(&key, &signature(good.r_bytes(), &L)));
}

#[test]
fn a_small_order_public_key_is_refused_even_when_the_equation_holds() {
    // A = identity: [S]B = R + [k]A holds for R = [r]B, S = r and any message.
    let key = point(&IDENTITY);
    assert!(key.is_weak());
    let nonce = signer(9);
    let forged = signature(
        &nonce.verifying_key().to_bytes(),
        &nonce.to_scalar().to_bytes(),
    );
    assert!(permissive_accepts(&key, &forged), "the equation holds");
    assert!(!snapseal_accepts(&key, &forged));
    // The all-zero forgery: A = R = identity, S = 0.
    let zero = signature(&IDENTITY, &[0; 32]);
    assert!(permissive_accepts(&key, &zero), "the equation holds");
    assert!(!snapseal_accepts(&key, &zero));
    // A = a point of order 8: the equation holds when [k]A = identity (k ≡ 0 mod 8).
    let key = point(&ORDER_8);
    assert!(key.is_weak() && key.to_edwards() != point(&IDENTITY).to_edwards());
    let forged = (1..=255u8)
        .map(signer)
        .map(|n| (n.verifying_key().to_bytes(), n.to_scalar()))
        .find(|(big_r, r)| {
            raw::challenge(*r, big_r, key.as_bytes(), &message(&key)).to_bytes()[0] % 8 == 0
        })
        .map(|(big_r, r)| signature(&big_r, &r.to_bytes()))
        .expect("one in eight nonces gives k ≡ 0 mod 8");
    assert!(permissive_accepts(&key, &forged), "the equation holds");
    assert!(!snapseal_accepts(&key, &forged));
}

#[test]
fn a_signature_whose_r_has_small_order_is_refused() {
    // r = 0: R = identity, S = k·a. The signer can do this; the strict check refuses it.
    let sk = signer(7);
    let (a, key) = (sk.to_scalar(), sk.verifying_key());
    let k = raw::challenge(a, &IDENTITY, key.as_bytes(), &message(&key));
    let sig = signature(&IDENTITY, &(k * a).to_bytes());
    assert!(permissive_accepts(&key, &sig), "the equation holds");
    assert!(!snapseal_accepts(&key, &sig));
}

#[test]
fn a_non_canonical_encoding_of_r_is_refused() {
    // R spelled non-canonically (the identity with y = p + 1), S = k·a over those bytes: the
    // point equation holds, but R is compared as bytes with the canonical encoding.
    let sk = signer(7);
    let (a, key) = (sk.to_scalar(), sk.verifying_key());
    let big_r = IDENTITY_NON_CANONICAL;
    assert_eq!(point(&big_r).to_edwards(), point(&IDENTITY).to_edwards());
    let k = raw::challenge(a, &big_r, key.as_bytes(), &message(&key));
    let sig = signature(&big_r, &(k * a).to_bytes());
    assert!(
        !permissive_accepts(&key, &sig),
        "refused for its encoding alone"
    );
    assert!(!snapseal_accepts(&key, &sig));
}

#[test]
fn verification_is_cofactorless() {
    // R' = [r]B + T (T of order 8), S = r + k·a with k over R': the cofactored equation
    // [8][S]B = [8]R' + [8][k]A holds, the cofactorless one does not.
    let sk = signer(7);
    let (a, key) = (sk.to_scalar(), sk.verifying_key());
    let nonce = signer(9);
    let r = nonce.to_scalar();
    let big_r = (nonce.verifying_key().to_edwards() + point(&ORDER_8).to_edwards()).compress();
    let k = raw::challenge(a, big_r.as_bytes(), key.as_bytes(), &message(&key));
    let s = r + k * a;
    let sig = signature(big_r.as_bytes(), &s.to_bytes());
    let b = point(&BASEPOINT).to_edwards();
    let lhs = b * s - key.to_edwards() * k;
    let r_point = point(big_r.as_bytes()).to_edwards();
    assert_eq!(
        lhs.mul_by_cofactor(),
        r_point.mul_by_cofactor(),
        "cofactored holds"
    );
    assert_ne!(lhs, r_point, "cofactorless does not");
    assert!(!snapseal_accepts(&key, &sig));
}

#[test]
fn a_public_key_with_a_torsion_component_is_accepted_and_checked_cofactorless() {
    // A' = [a]B + T is not of small order, so it is a usable key; a signature by a verifies
    // under A' exactly when [k]T = identity, i.e. k ≡ 0 mod 8.
    let sk = signer(7);
    let a = sk.to_scalar();
    let key = VerifyingKey::from(sk.verifying_key().to_edwards() + point(&ORDER_8).to_edwards());
    assert!(!key.is_weak());
    let sign_with = |n: &SigningKey| {
        let (r, big_r) = (n.to_scalar(), n.verifying_key().to_bytes());
        let k = raw::challenge(a, &big_r, key.as_bytes(), &message(&key));
        (
            k.to_bytes()[0] % 8 == 0,
            signature(&big_r, &(r + k * a).to_bytes()),
        )
    };
    let tries: Vec<_> = (1..=64u8).map(|n| sign_with(&signer(n))).collect();
    let (divisible, other): (Vec<_>, Vec<_>) = tries.iter().partition(|(d, _)| *d);
    assert!(!divisible.is_empty() && !other.is_empty());
    assert!(divisible.iter().all(|(_, sig)| snapseal_accepts(&key, sig)));
    assert!(other.iter().all(|(_, sig)| !snapseal_accepts(&key, sig)));
}

#[test]
fn a_non_canonical_public_key_encoding_is_accepted_as_a_key_and_named_by_its_bytes() {
    // y = p + δ for small δ: some of these decode to points of large order.
    let non_canonical = (2u8..19)
        .flat_map(|delta| [0u8, 0x80].map(|sign| (delta, sign)))
        .map(|(delta, sign)| {
            let mut b = [0xffu8; 32];
            b[0] = 0xed + delta;
            b[31] = 0x7f | sign;
            b
        })
        .find_map(|b| VerifyingKey::from_bytes(&b).ok().filter(|k| !k.is_weak()))
        .expect("a non-canonical encoding of a point of large order");
    let canonical = non_canonical.to_edwards().compress().to_bytes();
    assert_ne!(non_canonical.to_bytes(), canonical);
    assert_ne!(key_id(&non_canonical), key_id(&point(&canonical)));
    // A small-order point spelled non-canonically decodes too, and is weak.
    assert!(point(&IDENTITY_NON_CANONICAL).is_weak());
    let nonce = signer(9);
    let forged = signature(
        &nonce.verifying_key().to_bytes(),
        &nonce.to_scalar().to_bytes(),
    );
    assert!(!snapseal_accepts(&point(&IDENTITY_NON_CANONICAL), &forged));
}

#[test]
fn a_signed_statement_under_a_small_order_key_is_refused() {
    let key = point(&IDENTITY);
    let nonce = signer(9);
    let statement = SignedStatement {
        idx: 2,
        commit_idx: 3,
        term: Some(5),
        claims_digest: [4; 32],
        key_id: key_id(&key),
        signature: signature(
            &nonce.verifying_key().to_bytes(),
            &nonce.to_scalar().to_bytes(),
        )
        .to_bytes(),
    };
    assert!(matches!(
        statement.verify_signature(&key),
        Err(ReceiptError::BadSignature { .. })
    ));
}

#[test]
fn a_receipt_under_a_small_order_trusted_key_fails_as_a_bad_signature() {
    // Through the verifier a store uses: a trusted key of small order verifies nothing.
    let key = point(&IDENTITY);
    let claims = [4; 32];
    let evidence_tx: Hash = [5; 32];
    // One leaf (the evidence at 1), signed at 2: the root is the leaf, the path empty.
    let root = snapseal_persist::receipt::leaf_hash(&evidence_tx, &claims);
    let nonce = signer(9);
    let receipt = Receipt {
        evidence_idx: 1,
        evidence_tx_digest: evidence_tx,
        claims_digest: claims,
        path: Vec::new(),
        signed: SignedRoot {
            sig_idx: 2,
            root,
            key_id: key_id(&key),
            signature: signature(
                &nonce.verifying_key().to_bytes(),
                &nonce.to_scalar().to_bytes(),
            )
            .to_bytes(),
        },
    }
    .encode()
    .unwrap();
    let expected = Expected {
        idx: 0,
        evidence_idx: 1,
        body_digest: [0; 32],
        claims_digest: claims,
    };
    let e = Ed25519Verifier::new(vec![key])
        .verify(&receipt, &expected)
        .unwrap_err();
    assert!(matches!(e, ReceiptError::BadSignature { .. }), "{e}");
}

// ---------------------------------------------------------------------------------------------
// FORMAT.md §2.1: the zstd body.
// ---------------------------------------------------------------------------------------------

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// One RFC 8878 frame by hand: frame header descriptor `fhd`, then `window` (the
/// Window_Descriptor, when the frame is not single-segment), then `extra` header bytes
/// (Dictionary_ID, Frame_Content_Size), then `blocks`.
fn frame(fhd: u8, window: Option<u8>, extra: &[u8], blocks: &[u8]) -> Vec<u8> {
    let mut f = ZSTD_MAGIC.to_vec();
    f.push(fhd);
    f.extend(window);
    f.extend_from_slice(extra);
    f.extend_from_slice(blocks);
    f
}

/// One last raw block holding `data` (at most 2^21 - 1 bytes).
fn raw_block(data: &[u8]) -> Vec<u8> {
    let header = 1 | ((data.len() as u32) << 3);
    let mut b = header.to_le_bytes()[..3].to_vec();
    b.extend_from_slice(data);
    b
}

/// A Window_Descriptor for a window of `2^log`.
fn window(log: u8) -> u8 {
    (log - 10) << 3
}

/// A skippable frame (RFC 8878 §3.1.2) carrying `data`.
fn skippable(data: &[u8]) -> Vec<u8> {
    let mut f = vec![0x50, 0x2a, 0x4d, 0x18];
    f.extend_from_slice(&(data.len() as u32).to_le_bytes());
    f.extend_from_slice(data);
    f
}

/// The body-encoding step (FORMAT.md §7 step 8) on `body` as a zstd body of `raw_len` bytes.
fn decode(body: &[u8], raw_len: u64) -> Result<(), BodyError> {
    let header = Header {
        idx: 1,
        evidence_idx: 2,
        flags: Flags::ZSTD,
        body_len: body.len() as u64,
        receipt_len: 0,
        raw_len,
        body_digest: [0; 32],
        receipt_digest: [0; 32],
    };
    check_body_encoding(&header, body)
}

/// The zstd library's own words for why it refused, if it did.
fn zstd_reason(e: &BodyError) -> String {
    match e {
        BodyError::Decode { source } => source.to_string(),
        other => panic!("expected a decoder error, got {other}"),
    }
}

fn hello() -> Vec<u8> {
    frame(0, Some(window(10)), &[], &raw_block(b"hello"))
}

#[test]
fn a_zstd_body_is_one_frame_that_decodes_to_exactly_raw_len_bytes() {
    decode(&hello(), 5).unwrap();
    decode(&zstd::encode_all(&b"hello"[..], 3).unwrap(), 5).unwrap();
    assert!(matches!(
        decode(&hello(), 6),
        Err(BodyError::Short {
            expected: 6,
            actual: 5
        })
    ));
    assert!(matches!(
        decode(&hello(), 4),
        Err(BodyError::Long { expected: 4 })
    ));
}

#[test]
fn a_frame_whose_window_is_over_128_mib_is_refused_before_any_block() {
    // Window_Descriptor: 2^27 is accepted, the next size up (2^27 + 2^24) is not.
    decode(&frame(0, Some(window(27)), &[], &raw_block(b"hello")), 5).unwrap();
    let over = frame(0, Some(window(27) | 1), &[], &raw_block(b"hello"));
    let e = decode(&over, 5).unwrap_err();
    assert!(zstd_reason(&e).contains("too much memory"), "{e}");
    // Single segment: the window is the Frame_Content_Size (8 bytes here), 2^27 + 2 is over.
    let fcs = ((1u64 << 27) + 2).to_le_bytes();
    let e = decode(&frame(0xe0, None, &fcs, &[]), (1 << 27) + 2).unwrap_err();
    assert!(zstd_reason(&e).contains("too much memory"), "{e}");
}

#[test]
fn a_frame_that_names_a_dictionary_is_refused() {
    // Dictionary_ID_Flag 1: a one-byte Dictionary_ID.
    let named = frame(0x01, Some(window(10)), &[7], &raw_block(b"hello"));
    let e = decode(&named, 5).unwrap_err();
    assert!(zstd_reason(&e).contains("Dictionary"), "{e}");
    // A Dictionary_ID field holding 0 names no dictionary.
    decode(
        &frame(0x01, Some(window(10)), &[0], &raw_block(b"hello")),
        5,
    )
    .unwrap();
}

#[test]
fn a_frame_checksum_is_checked_when_present() {
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    encoder.include_checksum(true).unwrap();
    std::io::Write::write_all(&mut encoder, b"hello").unwrap();
    let mut body = encoder.finish().unwrap();
    decode(&body, 5).unwrap();
    *body.last_mut().unwrap() ^= 1;
    let e = decode(&body, 5).unwrap_err();
    assert!(zstd_reason(&e).contains("checksum"), "{e}");
}

#[test]
fn a_frame_content_size_must_equal_what_the_blocks_decode_to() {
    // Single segment, a one-byte Frame_Content_Size of 6 over a 5-byte block: refused for
    // raw_len 5 and 6 alike. Without the field (above) the size is not declared at all.
    let six = frame(0x20, None, &[6], &raw_block(b"hello"));
    assert!(matches!(decode(&six, 5), Err(BodyError::Decode { .. })));
    assert!(matches!(decode(&six, 6), Err(BodyError::Decode { .. })));
    decode(&frame(0x20, None, &[5], &raw_block(b"hello")), 5).unwrap();
}

#[test]
fn any_byte_after_the_frame_is_refused() {
    for tail in [vec![0u8], hello(), skippable(b"x")] {
        let mut body = hello();
        body.extend_from_slice(&tail);
        let e = decode(&body, 5).unwrap_err();
        assert!(
            matches!(e, BodyError::TrailingData { trailing } if trailing == tail.len() as u64),
            "{e}"
        );
    }
    // Two frames are refused even when raw_len counts both.
    let mut two = hello();
    two.extend_from_slice(&hello());
    assert!(matches!(
        decode(&two, 10),
        Err(BodyError::Short {
            expected: 10,
            actual: 5
        })
    ));
}

#[test]
fn an_empty_zstd_body_is_refused() {
    assert!(matches!(decode(&[], 0), Err(BodyError::NotAFrame)));
}

#[test]
fn a_body_that_starts_with_a_skippable_frame_is_refused_before_decoding() {
    // A skippable frame would decode to nothing and stand in for the body: refused, whatever
    // follows it.
    let mut body = skippable(b"x");
    body.extend_from_slice(&hello());
    assert!(matches!(decode(&body, 5), Err(BodyError::NotAFrame)));
}

#[test]
fn a_zstd_body_that_is_only_a_skippable_frame_is_refused() {
    assert!(decode(&skippable(b"not a frame"), 0).is_err());
}

#[test]
fn a_legacy_zstd_frame_is_refused() {
    // zstd v0.7 (magic 27 b5 2f fd): header descriptor 0, window byte 0, one raw block of
    // "hello" (block type 1 in the top bits), then the end block.
    let mut v07 = vec![0x27, 0xb5, 0x2f, 0xfd, 0x00, 0x00, 0x40, 0x00, 0x05];
    v07.extend_from_slice(b"hello");
    v07.extend_from_slice(&[0xc0, 0x00, 0x00]);
    assert!(decode(&v07, 5).is_err());
}

// ---------------------------------------------------------------------------------------------
// FORMAT.md §8 and SPEC §5: names that are not committed snapshot names.
// ---------------------------------------------------------------------------------------------

/// What a test directory holds under each kind of name (see [`plant_every_kind`]).
const STALE_UNCOMMITTED: &str = "snapshot_2_3";
const STALE_PENDING: &str = "snapshot_2.g1.pending";
const QUARANTINED: &str = "snapshot_0_1.committed.corrupt";
const OUT_OF_ORDER: &str = "snapshot_5_5.committed";
const DIR_UNDER_UNCOMMITTED: &str = "snapshot_4_5";
const LINK_UNDER_PENDING: &str = "snapshot_6.g1.pending";
const FIFO_UNDER_COMMITTED: &str = "snapshot_7_8.committed";
const LINK_UNDER_COMMITTED: &str = "snapshot_9_10.committed";
const NEAR_MISSES: [&str; 7] = [
    "snapshot_02_3.committed",
    "snapshot_2_3.committed.tmp",
    "snapshot_2_3.COMMITTED",
    "snapshot_18446744073709551616_1.committed",
    "snapshot_+2_3",
    "snapshot_2.g01.pending",
    "notes.txt",
];
const NON_UTF8: &[u8] = b"snapshot_2_3.committed\xff";

/// A snapshot directory with one good committed snapshot (`snapshot_1_2.committed`) and one
/// entry of every other kind the tables list. Returns the file outside the directory the
/// links point at.
fn plant_every_kind(dir: &Path) -> std::path::PathBuf {
    let outside = dir.parent().unwrap().join("outside");
    fs::write(&outside, b"outside").unwrap();
    fs::write(
        dir.join("snapshot_1_2.committed"),
        Snap::new(1, 100).file_bytes(),
    )
    .unwrap();
    for name in [STALE_UNCOMMITTED, STALE_PENDING, QUARANTINED, OUT_OF_ORDER] {
        fs::write(dir.join(name), name).unwrap();
    }
    fs::create_dir(dir.join(DIR_UNDER_UNCOMMITTED)).unwrap();
    symlink(&outside, dir.join(LINK_UNDER_PENDING)).unwrap();
    symlink(&outside, dir.join(LINK_UNDER_COMMITTED)).unwrap();
    nix::unistd::mkfifo(
        &dir.join(FIFO_UNDER_COMMITTED),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    for name in NEAR_MISSES {
        fs::write(dir.join(name), name).unwrap();
    }
    fs::write(dir.join(OsStr::from_bytes(NON_UTF8)), NON_UTF8).unwrap();
    outside
}

/// The entries that no component may ever remove, rename or read through.
fn assert_untouched(dir: &Path, outside: &Path) {
    for name in NEAR_MISSES {
        assert_eq!(fs::read(dir.join(name)).unwrap(), name.as_bytes(), "{name}");
    }
    assert_eq!(
        fs::read(dir.join(OsStr::from_bytes(NON_UTF8))).unwrap(),
        NON_UTF8
    );
    for name in [
        DIR_UNDER_UNCOMMITTED,
        LINK_UNDER_PENDING,
        FIFO_UNDER_COMMITTED,
        LINK_UNDER_COMMITTED,
    ] {
        assert!(
            fs::symlink_metadata(dir.join(name)).is_ok(),
            "{name} is still there"
        );
    }
    assert_eq!(fs::read(outside).unwrap(), b"outside");
}

fn open_store(dir: &Path, keep_last: usize) -> SnapshotStore {
    let mut opts = StoreOptions::new(Arc::new(real_verifier()));
    opts.keep_last = keep_last;
    SnapshotStore::open(Arc::new(RealFs), dir, opts).unwrap()
}

fn snapshot_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snapshots");
    fs::create_dir(&dir).unwrap();
    (tmp, dir)
}

#[test]
fn the_listing_classifies_every_name_as_the_tables_say() {
    let (_tmp, dir) = snapshot_dir();
    plant_every_kind(&dir);
    let handle = snapseal_persist::fs::FileSystem::open_dir(&RealFs, &dir, false).unwrap();
    let listed = classify_dir(&*handle).unwrap();
    let class = |name: &[u8]| {
        listed
            .iter()
            .find(|e| e.file_name.as_bytes() == name)
            .map(|e| e.class)
            .unwrap()
    };
    let snapshot = |name: &str| match SnapshotName::parse(name) {
        Some(n) => EntryClass::Snapshot(n),
        None => panic!("{name}"),
    };
    assert_eq!(
        class(b"snapshot_1_2.committed"),
        snapshot("snapshot_1_2.committed")
    );
    assert_eq!(
        class(STALE_UNCOMMITTED.as_bytes()),
        snapshot(STALE_UNCOMMITTED)
    );
    assert_eq!(class(QUARANTINED.as_bytes()), snapshot(QUARANTINED));
    // The name grammar does not order the two numbers: the header check refuses the file.
    assert_eq!(class(OUT_OF_ORDER.as_bytes()), snapshot(OUT_OF_ORDER));
    assert!(matches!(
        class(STALE_PENDING.as_bytes()),
        EntryClass::Pending(_)
    ));
    for name in [
        DIR_UNDER_UNCOMMITTED,
        LINK_UNDER_PENDING,
        FIFO_UNDER_COMMITTED,
        LINK_UNDER_COMMITTED,
    ] {
        assert_eq!(class(name.as_bytes()), EntryClass::NotRegular, "{name}");
    }
    for name in NEAR_MISSES {
        assert_eq!(class(name.as_bytes()), EntryClass::Foreign, "{name}");
    }
    assert_eq!(class(NON_UTF8), EntryClass::Foreign);
}

#[test]
fn opening_a_store_removes_only_regular_files_under_uncommitted_and_pending_names() {
    let (_tmp, dir) = snapshot_dir();
    let outside = plant_every_kind(&dir);
    let store = open_store(&dir, 5);
    assert!(!dir.join(STALE_UNCOMMITTED).exists());
    assert!(!dir.join(STALE_PENDING).exists());
    assert_eq!(store.stats().stale_removed, 2);
    for name in ["snapshot_1_2.committed", QUARANTINED, OUT_OF_ORDER, ".lock"] {
        assert!(dir.join(name).is_file(), "{name}");
    }
    assert_untouched(&dir, &outside);
}

#[test]
fn latest_quarantines_a_failing_committed_file_and_reads_nothing_else() {
    let (_tmp, dir) = snapshot_dir();
    let outside = plant_every_kind(&dir);
    let store = open_store(&dir, 5);
    let latest = store.latest().unwrap().unwrap();
    assert_eq!(latest.name().file_name(), "snapshot_1_2.committed");
    // Newer than the one chosen and failing: moved to its quarantine name, never deleted.
    assert!(!dir.join(OUT_OF_ORDER).exists());
    assert_eq!(
        fs::read(dir.join("snapshot_5_5.committed.corrupt")).unwrap(),
        OUT_OF_ORDER.as_bytes()
    );
    assert_eq!(store.stats().quarantined, 1);
    assert_untouched(&dir, &outside);
}

#[test]
fn retention_deletes_regular_committed_files_older_than_the_oldest_kept_and_nothing_else() {
    let (_tmp, dir) = snapshot_dir();
    let outside = plant_every_kind(&dir);
    fs::write(
        dir.join("snapshot_3_4.committed"),
        Snap::new(3, 100).file_bytes(),
    )
    .unwrap();
    // Older than the snapshot kept: deleted without being read, junk or not.
    fs::write(dir.join("snapshot_0_7.committed"), b"junk").unwrap();
    // Older too, but not a regular file: never deleted.
    symlink(&outside, dir.join("snapshot_0_3.committed")).unwrap();
    let store = open_store(&dir, 1);
    let report = store.apply_retention().unwrap();
    let deleted: Vec<String> = report.deleted.iter().map(SnapshotName::file_name).collect();
    assert_eq!(
        deleted,
        ["snapshot_0_7.committed", "snapshot_1_2.committed"]
    );
    assert!(dir.join("snapshot_3_4.committed").is_file());
    assert!(fs::symlink_metadata(dir.join("snapshot_0_3.committed")).is_ok());
    // Newer than the one kept and failing: quarantined, as by `latest`.
    assert_eq!(
        report
            .quarantined
            .iter()
            .map(|n| n.with_state(FileState::Committed).file_name())
            .collect::<Vec<_>>(),
        [OUT_OF_ORDER]
    );
    assert!(dir.join(QUARANTINED).is_file(), "within max_quarantined");
    assert_untouched(&dir, &outside);
}

#[test]
fn a_lock_file_that_is_not_a_regular_file_keeps_the_store_from_opening() {
    let (_tmp, dir) = snapshot_dir();
    let outside = dir.parent().unwrap().join("outside");
    fs::write(&outside, b"outside").unwrap();
    symlink(&outside, dir.join(".lock")).unwrap();
    let opts = || StoreOptions::new(Arc::new(real_verifier()));
    assert!(SnapshotStore::open(Arc::new(RealFs), &dir, opts()).is_err());
    assert_eq!(fs::read(&outside).unwrap(), b"outside");
    fs::remove_file(dir.join(".lock")).unwrap();
    nix::unistd::mkfifo(
        &dir.join(".lock"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    assert!(SnapshotStore::open(Arc::new(RealFs), &dir, opts()).is_err());
}

/// Ed25519 by hand (RFC 8032 §5.1.7's equation with every value chosen by the test).
mod raw {
    use std::ops::{Add, Mul};

    /// k = SHA-512(R || A || M) read little-endian, mod L, as a scalar of `like`'s type.
    pub(crate) fn challenge<S>(like: S, r: &[u8; 32], a: &[u8; 32], msg: &[u8]) -> S
    where
        S: Copy + From<u64> + Add<Output = S> + Mul<Output = S>,
    {
        let _ = like;
        let digest = sha512(&[r, a, msg]);
        digest.iter().rev().fold(S::from(0), |acc, byte| {
            acc * S::from(256) + S::from(u64::from(*byte))
        })
    }

    /// SHA-512 (FIPS 180-4), which Ed25519 is defined over; the crate does not depend on a
    /// SHA-2 implementation of its own.
    pub(crate) fn sha512(parts: &[&[u8]]) -> [u8; 64] {
        let mut msg = parts.concat();
        let bits = (msg.len() as u128) * 8;
        msg.push(0x80);
        while msg.len() % 128 != 112 {
            msg.push(0);
        }
        msg.extend_from_slice(&bits.to_be_bytes());
        let mut h = H0;
        for block in msg.chunks_exact(128) {
            let mut w = [0u64; 80];
            for (t, word) in block.chunks_exact(8).enumerate() {
                w[t] = u64::from_be_bytes(word.try_into().unwrap());
            }
            for t in 16..80 {
                let s0 = w[t - 15].rotate_right(1) ^ w[t - 15].rotate_right(8) ^ (w[t - 15] >> 7);
                let s1 = w[t - 2].rotate_right(19) ^ w[t - 2].rotate_right(61) ^ (w[t - 2] >> 6);
                w[t] = w[t - 16]
                    .wrapping_add(s0)
                    .wrapping_add(w[t - 7])
                    .wrapping_add(s1);
            }
            let mut v = h;
            for t in 0..80 {
                let [a, b, c, d, e, f, g, hh] = v;
                let s1 = e.rotate_right(14) ^ e.rotate_right(18) ^ e.rotate_right(41);
                let ch = (e & f) ^ (!e & g);
                let t1 = hh
                    .wrapping_add(s1)
                    .wrapping_add(ch)
                    .wrapping_add(K[t])
                    .wrapping_add(w[t]);
                let s0 = a.rotate_right(28) ^ a.rotate_right(34) ^ a.rotate_right(39);
                let maj = (a & b) ^ (a & c) ^ (b & c);
                v = [
                    t1.wrapping_add(s0.wrapping_add(maj)),
                    a,
                    b,
                    c,
                    d.wrapping_add(t1),
                    e,
                    f,
                    g,
                ];
            }
            for (x, y) in h.iter_mut().zip(v) {
                *x = x.wrapping_add(y);
            }
        }
        let mut out = [0u8; 64];
        for (chunk, x) in out.chunks_exact_mut(8).zip(h) {
            chunk.copy_from_slice(&x.to_be_bytes());
        }
        out
    }

    #[test]
    fn sha512_of_abc_is_the_fips_180_example() {
        assert_eq!(
            snapseal_persist::to_hex(&sha512(&[b"abc"])),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }

    const H0: [u64; 8] = [
        0x6a09e667f3bcc908,
        0xbb67ae8584caa73b,
        0x3c6ef372fe94f82b,
        0xa54ff53a5f1d36f1,
        0x510e527fade682d1,
        0x9b05688c2b3e6c1f,
        0x1f83d9abfb41bd6b,
        0x5be0cd19137e2179,
    ];

    const K: [u64; 80] = [
        0x428a2f98d728ae22,
        0x7137449123ef65cd,
        0xb5c0fbcfec4d3b2f,
        0xe9b5dba58189dbbc,
        0x3956c25bf348b538,
        0x59f111f1b605d019,
        0x923f82a4af194f9b,
        0xab1c5ed5da6d8118,
        0xd807aa98a3030242,
        0x12835b0145706fbe,
        0x243185be4ee4b28c,
        0x550c7dc3d5ffb4e2,
        0x72be5d74f27b896f,
        0x80deb1fe3b1696b1,
        0x9bdc06a725c71235,
        0xc19bf174cf692694,
        0xe49b69c19ef14ad2,
        0xefbe4786384f25e3,
        0x0fc19dc68b8cd5b5,
        0x240ca1cc77ac9c65,
        0x2de92c6f592b0275,
        0x4a7484aa6ea6e483,
        0x5cb0a9dcbd41fbd4,
        0x76f988da831153b5,
        0x983e5152ee66dfab,
        0xa831c66d2db43210,
        0xb00327c898fb213f,
        0xbf597fc7beef0ee4,
        0xc6e00bf33da88fc2,
        0xd5a79147930aa725,
        0x06ca6351e003826f,
        0x142929670a0e6e70,
        0x27b70a8546d22ffc,
        0x2e1b21385c26c926,
        0x4d2c6dfc5ac42aed,
        0x53380d139d95b3df,
        0x650a73548baf63de,
        0x766a0abb3c77b2a8,
        0x81c2c92e47edaee6,
        0x92722c851482353b,
        0xa2bfe8a14cf10364,
        0xa81a664bbc423001,
        0xc24b8b70d0f89791,
        0xc76c51a30654be30,
        0xd192e819d6ef5218,
        0xd69906245565a910,
        0xf40e35855771202a,
        0x106aa07032bbd1b8,
        0x19a4c116b8d2d0c8,
        0x1e376c085141ab53,
        0x2748774cdf8eeb99,
        0x34b0bcb5e19b48a8,
        0x391c0cb3c5c95a63,
        0x4ed8aa4ae3418acb,
        0x5b9cca4f7763e373,
        0x682e6ff3d6b2b8a3,
        0x748f82ee5defb2fc,
        0x78a5636f43172f60,
        0x84c87814a1f0ab72,
        0x8cc702081a6439ec,
        0x90befffa23631e28,
        0xa4506cebde82bde9,
        0xbef9a3f7b2c67915,
        0xc67178f2e372532b,
        0xca273eceea26619c,
        0xd186b8c721c0c207,
        0xeada7dd6cde0eb1e,
        0xf57d4f7fee6ed178,
        0x06f067aa72176fba,
        0x0a637dc5a2c898a6,
        0x113f9804bef90dae,
        0x1b710b35131c471b,
        0x28db77f523047d84,
        0x32caab7b40c72493,
        0x3c9ebe0a15c9bebc,
        0x431d67c49c100d4c,
        0x4cc5d4becb3e42b6,
        0x597f299cfc657e2a,
        0x5fcb6fab3ad6faec,
        0x6c44198c4a475817,
    ];
}

#[test]
fn a_committed_name_that_became_a_link_or_a_directory_after_listing_is_not_a_regular_file() {
    // `open_snapshot` is the read `latest` makes after listing: a link or a directory found
    // there now is passed over like a FIFO, not returned as an I/O error.
    let (_tmp, dir) = snapshot_dir();
    let outside = plant_every_kind(&dir);
    let handle = snapseal_persist::fs::FileSystem::open_dir(&RealFs, &dir, false).unwrap();
    let verifier = real_verifier();
    symlink(&outside, dir.join("snapshot_31_32.committed")).unwrap();
    fs::create_dir(dir.join("snapshot_33_34.committed")).unwrap();
    for (name, what) in [
        ("snapshot_31_32.committed", "symbolic link"),
        ("snapshot_33_34.committed", "directory"),
    ] {
        let parsed = SnapshotName::parse(name).unwrap();
        let e =
            snapseal_persist::internals::open_snapshot(&*handle, &parsed, &verifier).unwrap_err();
        assert!(
            matches!(&e, snapseal_persist::VerifyError::NotRegularFile { what: w, .. } if *w == what),
            "{name}: {e}"
        );
    }
}
