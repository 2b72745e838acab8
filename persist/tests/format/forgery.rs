//! Format version 2: a genuine file whose header is edited (checksum recomputed, file renamed to
//! match) never verifies, because the ledger proves the claims digest over the header's fields;
//! `idx < evidence_idx` is enforced on both sides; a body must be what its flags and `raw_len`
//! say; version 1 files are refused with a clear message.

use crate::fixture::{self, key, real_verifier, Ledger, Snap};
use proptest::prelude::*;
use snapseal_persist::fs::SimFs;
use snapseal_persist::internals::format::{body_digest, header_checksum, Header, HEADER_LEN};
use snapseal_persist::internals::{verify_bytes, PersistRequest};
use snapseal_persist::receipt::ReceiptError;
use snapseal_persist::{BodyError, Check, FileState, PersistError, SnapshotName, VerifyError};
use snapseal_persist::{Claims, Flags, FormatError};

/// A genuine committed file whose ledger recorded exactly the claims of `header` (lengths and
/// receipt fields are filled in here).
fn genuine(mut header: Header, stored: &[u8]) -> Vec<u8> {
    header.body_len = stored.len() as u64;
    header.body_digest = body_digest(stored);
    let claims = header.claims().digest();
    let receipt = Ledger::new(header.evidence_idx, claims).receipt(&key(), claims);
    header.receipt_len = receipt.len() as u64;
    header.receipt_digest = *blake3::hash(&receipt).as_bytes();
    let mut out = header.encode().to_vec();
    out.extend_from_slice(stored);
    out.extend_from_slice(&receipt);
    out
}

fn raw() -> Vec<u8> {
    (0..50_000u32)
        .map(|i| (i % 13) as u8 ^ (i / 101) as u8)
        .collect()
}

fn header(idx: u64, evidence_idx: u64, flags: Flags, raw_len: u64) -> Header {
    Header {
        idx,
        evidence_idx,
        flags,
        body_len: 0,
        receipt_len: 0,
        raw_len,
        body_digest: [0; 32],
        receipt_digest: [0; 32],
    }
}

/// A genuine zstd-compressed snapshot at idx 10, evidence 20.
fn compressed() -> Vec<u8> {
    let raw = raw();
    let stored = zstd::encode_all(&raw[..], 3).unwrap();
    genuine(header(10, 20, Flags::ZSTD, raw.len() as u64), &stored)
}

/// A genuine uncompressed snapshot at idx 10, evidence 20.
fn plain() -> Vec<u8> {
    genuine(header(10, 20, Flags::NONE, 5), b"hello")
}

/// What a forger does: edit the decoded header, re-encode it (the checksum is recomputed).
fn forge(file: &[u8], edit: impl FnOnce(&mut Header)) -> Vec<u8> {
    let mut h = Header::decode(file).unwrap();
    edit(&mut h);
    let mut out = h.encode().to_vec();
    out.extend_from_slice(&file[HEADER_LEN..]);
    out
}

/// The committed name matching the file's header (the forger renames the file to it).
fn name_of(file: &[u8]) -> SnapshotName {
    SnapshotName {
        idx: u64::from_le_bytes(file[16..24].try_into().unwrap()),
        evidence_idx: u64::from_le_bytes(file[24..32].try_into().unwrap()),
        state: FileState::Committed,
    }
}

fn verify(file: &[u8]) -> Result<(), VerifyError> {
    verify_bytes(file, Some(&name_of(file)), &real_verifier()).map(|_| ())
}

fn claims_mismatch(e: &VerifyError) -> bool {
    matches!(
        e,
        VerifyError::Receipt {
            source: ReceiptError::DigestMismatch { .. },
            ..
        }
    )
}

#[test]
fn the_genuine_files_verify() {
    verify(&plain()).unwrap();
    verify(&compressed()).unwrap();
}

#[test]
fn a_raised_idx_is_refused() {
    let forged = forge(&plain(), |h| h.idx = 15);
    let e = verify(&forged).unwrap_err();
    assert!(claims_mismatch(&e), "{e:?}");
    // The message says what is wrong.
    let VerifyError::Receipt { source, .. } = &e else {
        unreachable!()
    };
    assert!(
        source.to_string().contains("claims digest mismatch"),
        "{source}"
    );
}

#[test]
fn a_changed_evidence_idx_is_refused() {
    let forged = forge(&plain(), |h| h.evidence_idx = 21);
    let e = verify(&forged).unwrap_err();
    assert!(
        matches!(
            e,
            VerifyError::Receipt {
                source: ReceiptError::EvidenceIndexMismatch { .. },
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn cleared_zstd_flag_on_a_compressed_file_is_refused() {
    let forged = forge(&compressed(), |h| {
        h.flags = Flags::NONE;
        h.raw_len = h.body_len;
    });
    let e = verify(&forged).unwrap_err();
    assert!(claims_mismatch(&e), "{e:?}");
}

#[test]
fn a_changed_raw_len_is_refused() {
    for delta in [1i64, -1] {
        let forged = forge(&compressed(), |h| {
            h.raw_len = h.raw_len.checked_add_signed(delta).unwrap()
        });
        let e = verify(&forged).unwrap_err();
        assert!(claims_mismatch(&e), "{delta}: {e:?}");
    }
}

#[test]
fn idx_at_or_after_evidence_idx_is_refused_on_read() {
    for (idx, evidence_idx) in [(20, 20), (21, 20), (u64::MAX, 20), (u64::MAX, u64::MAX)] {
        let forged = forge(&plain(), |h| {
            h.idx = idx;
            h.evidence_idx = evidence_idx;
        });
        let e = verify(&forged).unwrap_err();
        assert!(
            matches!(
                e,
                VerifyError::Format {
                    check: Check::Header,
                    source: FormatError::IdxNotBeforeEvidence { .. },
                    ..
                }
            ),
            "{idx} {evidence_idx}: {e:?}"
        );
    }
}

#[test]
fn idx_at_or_after_evidence_idx_is_refused_on_write() {
    let sim = SimFs::new(3);
    let store = fixture::open(&sim, fixture::opts());
    let snap = Snap::new(10, 5);
    for (idx, evidence_idx) in [(11, 11), (12, 11), (u64::MAX, 11)] {
        let e = store
            .persist(&PersistRequest {
                idx,
                evidence_idx,
                ..snap.request()
            })
            .unwrap_err();
        assert!(
            matches!(
                e,
                PersistError::InvalidRequest {
                    source: FormatError::IdxNotBeforeEvidence { .. },
                    ..
                }
            ),
            "{e:?}"
        );
    }
    assert!(sim.names(fixture::dir()).iter().all(|n| n == ".lock"));
}

/// The ledger recorded these claims, so only the body encoding check can catch them.
fn encoding_error(file: &[u8]) -> BodyError {
    match verify(file).unwrap_err() {
        VerifyError::Body { source, .. } => source,
        e => panic!("expected a body encoding failure, got {e:?}"),
    }
}

#[test]
fn two_zstd_frames_are_refused_by_verify() {
    let raw = raw();
    let mut stored = zstd::encode_all(&raw[..], 3).unwrap();
    stored.extend_from_slice(&zstd::encode_all(&b"more"[..], 3).unwrap());
    for raw_len in [raw.len() as u64, raw.len() as u64 + 4] {
        let file = genuine(header(10, 20, Flags::ZSTD, raw_len), &stored);
        let e = encoding_error(&file);
        assert!(
            matches!(e, BodyError::TrailingData { .. } | BodyError::Short { .. }),
            "{e:?}"
        );
    }
}

#[test]
fn raw_len_off_by_one_is_refused_by_verify() {
    let raw = raw();
    let stored = zstd::encode_all(&raw[..], 3).unwrap();
    let n = raw.len() as u64;
    let short = genuine(header(10, 20, Flags::ZSTD, n + 1), &stored);
    assert!(matches!(encoding_error(&short), BodyError::Short { .. }));
    let long = genuine(header(10, 20, Flags::ZSTD, n - 1), &stored);
    assert!(matches!(encoding_error(&long), BodyError::Long { .. }));
}

#[test]
fn a_body_that_is_not_zstd_is_refused_by_verify() {
    let file = genuine(header(10, 20, Flags::ZSTD, 5), b"hello");
    assert!(matches!(encoding_error(&file), BodyError::NotAFrame));
}

#[test]
fn a_version_1_file_is_refused_with_the_re_snapshot_message() {
    let mut file = plain();
    file[8..10].copy_from_slice(&1u16.to_le_bytes());
    let mut h: [u8; HEADER_LEN] = file[..HEADER_LEN].try_into().unwrap();
    let sum = header_checksum(&h);
    h[128..].copy_from_slice(&sum);
    file[..HEADER_LEN].copy_from_slice(&h);
    let e = verify(&file).unwrap_err();
    assert!(
        matches!(
            e,
            VerifyError::Format {
                source: FormatError::Version1Unsupported,
                ..
            }
        ),
        "{e:?}"
    );
    let VerifyError::Format { source, .. } = &e else {
        unreachable!()
    };
    assert_eq!(
        source.to_string(),
        "format version 1 is not supported: idx unproven; re-snapshot"
    );
}

#[test]
fn latest_never_returns_a_relabelled_file() {
    let sim = SimFs::new(9);
    let old = plain();
    let forged = forge(&old, |h| h.idx = 15);
    for (file, name) in [(&old, name_of(&old)), (&forged, name_of(&forged))] {
        sim.plant_file(fixture::dir(), &name.file_name(), file, true);
    }
    let store = fixture::open(&sim, fixture::opts());
    let latest = store.latest().unwrap().expect("the genuine snapshot");
    assert_eq!(latest.name().idx, 10, "the genuine, older snapshot");
    assert_eq!(
        fixture::names_in(&sim, FileState::Corrupt),
        [name_of(&forged).with_state(FileState::Corrupt)],
        "the forged one is quarantined"
    );
}

#[test]
fn the_claims_digest_is_the_documented_derive_key() {
    let c = Claims {
        idx: 1,
        flags: Flags::ZSTD,
        body_len: 2,
        raw_len: 3,
        body_digest: [4; 32],
    };
    let mut material = Vec::new();
    material.extend_from_slice(&1u64.to_le_bytes());
    material.extend_from_slice(&1u32.to_le_bytes());
    material.extend_from_slice(&2u64.to_le_bytes());
    material.extend_from_slice(&3u64.to_le_bytes());
    material.extend_from_slice(&[4; 32]);
    assert_eq!(c.material().as_slice(), material.as_slice());
    assert_eq!(
        c.digest(),
        blake3::derive_key("snapseal 2026 snapshot claims v2", &material)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any edit of header bytes 0..128 of a genuine file, checksum recomputed and the file
    /// named after the edited header: never verifies.
    #[test]
    fn a_forged_header_never_verifies(
        compressed_body in any::<bool>(),
        edits in prop::collection::vec((0..128usize, 1..=255u8), 1..4),
    ) {
        let file = if compressed_body { compressed() } else { plain() };
        let mut forged = file.clone();
        for (at, x) in edits {
            forged[at] ^= x;
        }
        prop_assume!(forged[..128] != file[..128]);
        let mut h: [u8; HEADER_LEN] = forged[..HEADER_LEN].try_into().unwrap();
        let sum = header_checksum(&h);
        h[128..].copy_from_slice(&sum);
        forged[..HEADER_LEN].copy_from_slice(&h);
        prop_assert!(verify(&forged).is_err());
        prop_assert!(verify_bytes(&forged, None, &real_verifier()).is_err());
    }

    /// The same at the level of fields: any single field of the decoded header changed.
    #[test]
    fn a_forged_field_never_verifies(
        compressed_body in any::<bool>(),
        field in 0..8usize,
        value in any::<u64>(),
        digest in any::<[u8; 32]>(),
    ) {
        let file = if compressed_body { compressed() } else { plain() };
        let forged = forge(&file, |h| match field {
            0 => h.idx = value,
            1 => h.evidence_idx = value,
            2 => h.flags = if h.flags == Flags::ZSTD { Flags::NONE } else { Flags::ZSTD },
            3 => h.body_len = value,
            4 => h.receipt_len = value,
            5 => h.raw_len = value,
            6 => h.body_digest = digest,
            _ => h.receipt_digest = digest,
        });
        prop_assume!(forged[..HEADER_LEN] != file[..HEADER_LEN]);
        prop_assert!(verify(&forged).is_err());
    }
}
