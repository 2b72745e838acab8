//! The committed file format: header encoding, damage detection, split and body verification.

use proptest::prelude::*;
use snapseal_persist::internals::format::{
    body_digest, split, verify_body, Header, FORMAT_VERSION, HEADER_LEN, MAGIC,
    PARALLEL_HASH_THRESHOLD,
};
use snapseal_persist::{Flags, FormatError};

/// The checksum as FORMAT.md defines it, computed here independently of the crate.
fn reseal(bytes: &mut [u8; HEADER_LEN]) {
    let sum = blake3::derive_key("snapseal 2026 header checksum v1", &bytes[..128]);
    bytes[128..].copy_from_slice(&sum);
}

fn sample_header(body: &[u8], receipt: &[u8]) -> Header {
    Header {
        idx: 0x0102_0304_0506_0708,
        evidence_idx: 0x1112_1314_1516_1718,
        flags: Flags::NONE,
        body_len: body.len() as u64,
        receipt_len: receipt.len() as u64,
        raw_len: body.len() as u64,
        body_digest: *blake3::hash(body).as_bytes(),
        receipt_digest: *blake3::hash(receipt).as_bytes(),
    }
}

fn file(body: &[u8], receipt: &[u8]) -> Vec<u8> {
    let mut f = sample_header(body, receipt).encode().to_vec();
    f.extend_from_slice(body);
    f.extend_from_slice(receipt);
    f
}

fn arb_header() -> impl Strategy<Value = Header> {
    (
        0..u64::MAX,
        any::<u64>(),
        any::<bool>(),
        0..u64::MAX / 2,
        0..u64::MAX / 4,
        any::<u64>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
    )
        .prop_map(
            |(idx, gap, zstd, body_len, receipt_len, raw, bd, rd)| Header {
                idx,
                // Any evidence index after idx: idx + 1 ..= u64::MAX.
                evidence_idx: idx + 1 + gap % (u64::MAX - idx),
                flags: if zstd { Flags::ZSTD } else { Flags::NONE },
                body_len,
                receipt_len,
                raw_len: if zstd { raw } else { body_len },
                body_digest: bd,
                receipt_digest: rd,
            },
        )
}

#[test]
fn layout_matches_documented_offsets() {
    let h = sample_header(b"body", b"receipt");
    let b = h.encode();
    assert_eq!(&b[0..8], b"SNAPSEAL");
    assert_eq!(&b[8..10], &2u16.to_le_bytes());
    assert_eq!(&b[10..12], &160u16.to_le_bytes());
    assert_eq!(&b[12..16], &0u32.to_le_bytes());
    assert_eq!(&b[16..24], &h.idx.to_le_bytes());
    assert_eq!(&b[24..32], &h.evidence_idx.to_le_bytes());
    assert_eq!(&b[32..40], &4u64.to_le_bytes());
    assert_eq!(&b[40..48], &7u64.to_le_bytes());
    assert_eq!(&b[48..56], &4u64.to_le_bytes());
    assert_eq!(&b[56..88], blake3::hash(b"body").as_bytes());
    assert_eq!(&b[88..120], blake3::hash(b"receipt").as_bytes());
    assert_eq!(&b[120..128], &[0u8; 8]);
    let mut resealed = b;
    reseal(&mut resealed);
    assert_eq!(resealed, b, "checksum is derive_key(context, bytes 0..128)");
    assert_eq!((MAGIC, FORMAT_VERSION, HEADER_LEN), (*b"SNAPSEAL", 2, 160));
    let z = Header {
        flags: Flags::ZSTD,
        raw_len: 99,
        ..h
    };
    assert_eq!(&z.encode()[12..16], &1u32.to_le_bytes());
}

#[test]
fn flags_know_only_bits_zero_and_one() {
    assert_eq!(Flags::NONE.bits(), 0);
    assert_eq!(Flags::ZSTD.bits(), 1);
    assert_eq!(Flags::CHUNKED.bits(), 2);
    assert!(Flags::ZSTD.contains(Flags::ZSTD));
    assert!(Flags::ZSTD.contains(Flags::NONE));
    assert!(!Flags::NONE.contains(Flags::ZSTD));
    assert_eq!(Flags::from_bits(1), Some(Flags::ZSTD));
    assert_eq!(Flags::from_bits(2), Some(Flags::CHUNKED));
    for bit in 2..32 {
        assert_eq!(Flags::from_bits(1 << bit), None);
    }
}

#[test]
fn zstd_and_chunked_together_are_rejected_even_with_a_valid_checksum() {
    let mut b = sample_header(b"b", b"r").encode();
    b[12..16].copy_from_slice(&3u32.to_le_bytes());
    reseal(&mut b);
    assert_eq!(
        Header::decode(&b),
        Err(FormatError::ExclusiveFlags { bits: 3 })
    );
}

#[test]
fn a_chunked_header_needs_a_whole_number_of_list_entries() {
    let mut b = sample_header(b"b", b"r").encode();
    b[12..16].copy_from_slice(&2u32.to_le_bytes());
    reseal(&mut b);
    // Body length 1: not a multiple of 36.
    assert!(matches!(
        Header::decode(&b),
        Err(FormatError::ChunkListLength { body_len: 1, .. })
    ));
}

proptest! {
    #[test]
    fn header_round_trips(h in arb_header()) {
        let bytes = h.encode();
        prop_assert_eq!(Header::decode(&bytes), Ok(h.clone()));
        // Trailing bytes (the rest of a file) are ignored by Header::decode.
        let mut longer = bytes.to_vec();
        longer.extend_from_slice(b"tail");
        prop_assert_eq!(Header::decode(&longer), Ok(h));
    }

    /// Fuzz-style: arbitrary bytes, and arbitrary bytes behind a valid magic, never panic.
    #[test]
    fn decode_and_split_never_panic(mut bytes in prop::collection::vec(any::<u8>(), 0..400), magic in any::<bool>()) {
        if magic && bytes.len() >= 8 {
            bytes[..8].copy_from_slice(&MAGIC);
        }
        let _ = Header::decode(&bytes);
        let _ = split(&bytes);
    }

    /// Random valid-looking headers with random fields resealed: decode either accepts exactly
    /// what it read or reports an error; never panics.
    #[test]
    fn resealed_random_headers_never_panic(zstd in 0u8..2, fill in prop::collection::vec(any::<u8>(), HEADER_LEN)) {
        let mut b = [0u8; HEADER_LEN];
        b.copy_from_slice(&fill);
        b[..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&1u16.to_le_bytes());
        b[10..12].copy_from_slice(&160u16.to_le_bytes());
        b[12] = zstd;
        b[13..16].fill(0);
        b[120..128].fill(0);
        reseal(&mut b);
        if let Ok(h) = Header::decode(&b) {
            prop_assert_eq!(h.encode(), b);
        }
    }
}

#[test]
fn every_single_bit_flip_of_a_header_is_rejected() {
    for h in [
        sample_header(b"some body", b"a receipt"),
        Header {
            flags: Flags::ZSTD,
            raw_len: 12345,
            ..sample_header(&[0u8; 1000], b"")
        },
    ] {
        let good = h.encode();
        for bit in 0..HEADER_LEN * 8 {
            let mut b = good;
            b[bit / 8] ^= 1 << (bit % 8);
            let err = Header::decode(&b).expect_err("flipped header accepted");
            let byte = bit / 8;
            let ok = match byte {
                0..=7 => matches!(err, FormatError::BadMagic { .. }),
                8..=9 => matches!(err, FormatError::UnsupportedVersion { .. }),
                10..=11 => matches!(err, FormatError::BadHeaderLen { .. }),
                _ => matches!(err, FormatError::HeaderChecksum { .. }),
            };
            assert!(ok, "bit {bit}: unexpected error {err:?}");
        }
    }
}

#[test]
fn every_truncation_of_a_header_is_rejected() {
    let good = sample_header(b"b", b"r").encode();
    for len in 0..HEADER_LEN {
        assert_eq!(
            Header::decode(&good[..len]),
            Err(FormatError::TooShort {
                needed: HEADER_LEN,
                actual: len
            })
        );
    }
}

#[test]
fn unknown_flag_bits_are_rejected_even_with_a_valid_checksum() {
    let good = sample_header(b"b", b"r").encode();
    for bit in 2..32 {
        let mut b = good;
        let flags = 1u32 << bit;
        b[12..16].copy_from_slice(&flags.to_le_bytes());
        reseal(&mut b);
        assert_eq!(
            Header::decode(&b),
            Err(FormatError::UnknownFlags {
                bits: flags,
                unknown: flags
            })
        );
    }
}

#[test]
fn unknown_versions_are_rejected_even_with_a_valid_checksum() {
    let good = sample_header(b"b", b"r").encode();
    for v in [0u16, 3, 0x100, u16::MAX] {
        let mut b = good;
        b[8..10].copy_from_slice(&v.to_le_bytes());
        reseal(&mut b);
        assert_eq!(
            Header::decode(&b),
            Err(FormatError::UnsupportedVersion {
                supported: 2,
                actual: v
            })
        );
    }
}

#[test]
fn a_version_1_header_is_refused_with_the_re_snapshot_message() {
    let mut b = sample_header(b"b", b"r").encode();
    b[8..10].copy_from_slice(&1u16.to_le_bytes());
    reseal(&mut b);
    let e = Header::decode(&b).unwrap_err();
    assert_eq!(e, FormatError::Version1Unsupported);
    assert_eq!(
        e.to_string(),
        "format version 1 is not supported: idx unproven; re-snapshot"
    );
}

#[test]
fn other_header_lengths_are_rejected() {
    let good = sample_header(b"b", b"r").encode();
    for len in [0u16, 128, 159, 161, 192, u16::MAX] {
        let mut b = good;
        b[10..12].copy_from_slice(&len.to_le_bytes());
        reseal(&mut b);
        assert_eq!(
            Header::decode(&b),
            Err(FormatError::BadHeaderLen {
                expected: 160,
                actual: len
            })
        );
    }
}

#[test]
fn nonzero_reserved_field_is_rejected() {
    let good = sample_header(b"b", b"r").encode();
    let mut b = good;
    b[127] = 0x80;
    reseal(&mut b);
    assert_eq!(
        Header::decode(&b),
        Err(FormatError::ReservedNonZero {
            actual: 0x8000_0000_0000_0000
        })
    );
}

#[test]
fn overflowing_lengths_are_rejected() {
    let h = Header {
        body_len: u64::MAX - 100,
        raw_len: u64::MAX - 100,
        receipt_len: 101,
        ..sample_header(b"", b"")
    };
    assert!(matches!(
        h.file_len(),
        Err(FormatError::LengthOverflow { .. })
    ));
    assert!(matches!(
        Header::decode(&h.encode()),
        Err(FormatError::LengthOverflow { .. })
    ));
    let boundary = Header {
        body_len: u64::MAX - 160 - 5,
        raw_len: u64::MAX - 160 - 5,
        receipt_len: 5,
        ..sample_header(b"", b"")
    };
    assert_eq!(boundary.file_len(), Ok(u64::MAX));
}

#[test]
fn uncompressed_raw_len_must_equal_body_len() {
    let h = Header {
        raw_len: 5,
        ..sample_header(b"four", b"")
    };
    assert_eq!(
        Header::decode(&h.encode()),
        Err(FormatError::LengthMismatch {
            what: "raw (uncompressed body)",
            expected: 4,
            actual: 5
        })
    );
    // Compressed bodies may have any raw length.
    let z = Header {
        flags: Flags::ZSTD,
        ..h
    };
    assert_eq!(Header::decode(&z.encode()), Ok(z));
}

#[test]
fn split_returns_the_three_parts() {
    let f = file(b"the body", b"the receipt");
    let (h, body, receipt) = split(&f).unwrap();
    assert_eq!(h, sample_header(b"the body", b"the receipt"));
    assert_eq!(body, b"the body");
    assert_eq!(receipt, b"the receipt");
    assert_eq!(h.file_len(), Ok(f.len() as u64));
    verify_body(&h, body).unwrap();
}

#[test]
fn split_accepts_empty_body_and_receipt() {
    let f = file(b"", b"");
    let (h, body, receipt) = split(&f).unwrap();
    assert!(body.is_empty() && receipt.is_empty());
    verify_body(&h, body).unwrap();
}

#[test]
fn split_rejects_every_wrong_length() {
    let f = file(b"body bytes", b"receipt bytes");
    for len in 0..f.len() {
        let err = split(&f[..len]).expect_err("truncated file accepted");
        if len < HEADER_LEN {
            assert!(
                matches!(err, FormatError::TooShort { .. }),
                "{len}: {err:?}"
            );
        } else {
            assert_eq!(
                err,
                FormatError::LengthMismatch {
                    what: "file",
                    expected: f.len() as u64,
                    actual: len as u64
                }
            );
        }
    }
    let mut longer = f.clone();
    longer.push(0);
    assert_eq!(
        split(&longer).unwrap_err(),
        FormatError::LengthMismatch {
            what: "file",
            expected: f.len() as u64,
            actual: f.len() as u64 + 1
        }
    );
}

#[test]
fn every_single_bit_flip_in_the_receipt_is_caught_by_split() {
    let receipt = b"a small receipt region, 40 bytes long!!";
    let f = file(b"body", receipt);
    let start = f.len() - receipt.len();
    for bit in start * 8..f.len() * 8 {
        let mut b = f.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        assert!(
            matches!(split(&b), Err(FormatError::ReceiptDigest { .. })),
            "bit {bit}"
        );
    }
}

#[test]
fn every_single_bit_flip_in_the_body_is_caught_by_verify_body() {
    let body = b"a small body";
    let f = file(body, b"r");
    for bit in HEADER_LEN * 8..(HEADER_LEN + body.len()) * 8 {
        let mut b = f.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        // split does not hash the body, so it still succeeds ...
        let (h, body, _) = split(&b).unwrap();
        // ... and verify_body is what catches the damage.
        assert!(
            matches!(verify_body(&h, body), Err(FormatError::BodyDigest { .. })),
            "bit {bit}"
        );
    }
}

#[test]
fn verify_body_rejects_a_body_of_the_wrong_length() {
    let h = sample_header(b"four", b"");
    assert_eq!(
        verify_body(&h, b"fourr"),
        Err(FormatError::LengthMismatch {
            what: "body",
            expected: 4,
            actual: 5
        })
    );
}

#[test]
fn large_bodies_hash_the_same_on_all_cores() {
    let body: Vec<u8> = (0..PARALLEL_HASH_THRESHOLD * 2 + 12345)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let digest = body_digest(&body);
    assert_eq!(digest, *blake3::hash(&body).as_bytes());
    let h = Header {
        body_len: body.len() as u64,
        raw_len: body.len() as u64,
        body_digest: digest,
        ..sample_header(b"", b"")
    };
    verify_body(&h, &body).unwrap();
    let mut damaged = body;
    damaged[PARALLEL_HASH_THRESHOLD + 7] ^= 4;
    assert!(matches!(
        verify_body(&h, &damaged),
        Err(FormatError::BodyDigest { .. })
    ));
}

#[test]
fn errors_name_expected_and_actual_values() {
    let e = FormatError::LengthMismatch {
        what: "file",
        expected: 10,
        actual: 9,
    };
    assert_eq!(e.to_string(), "file length mismatch: expected 10, actual 9");
    let e = FormatError::BadMagic {
        actual: *b"NOTSNAPS",
    };
    assert!(e.to_string().contains("534e41505345414c"), "{e}");
}
