//! `body_reader`: the decoded body, streamed; a zstd body must be exactly one frame of
//! exactly `raw_len` bytes. And the error chain of a failed write names its cause once.

use std::error::Error as _;
use std::io::{self, Read};

use crate::fixture::{self, key, real_verifier, Ledger};
use snapseal_persist::fs::{Fault, FaultKind, Op, SimFs};
use snapseal_persist::internals::format::{body_digest, Header};
use snapseal_persist::internals::{verify_bytes, PersistRequest};
use snapseal_persist::BodyError;
use snapseal_persist::Flags;
use snapseal_persist::VerifyError;

/// A valid committed file (good digests and receipt) storing `stored` with `flags`/`raw_len`.
fn file(flags: Flags, raw_len: u64, stored: &[u8]) -> Vec<u8> {
    let digest = body_digest(stored);
    let mut header = Header {
        idx: 3,
        evidence_idx: 4,
        flags,
        body_len: stored.len() as u64,
        receipt_len: 0,
        raw_len,
        body_digest: digest,
        receipt_digest: [0; 32],
    };
    // The ledger records the claims the header states, so only the body can be wrong.
    let claims = header.claims().digest();
    let receipt = Ledger::new(4, claims).receipt(&key(), claims);
    header.receipt_len = receipt.len() as u64;
    header.receipt_digest = *blake3::hash(&receipt).as_bytes();
    let mut out = header.encode().to_vec();
    out.extend_from_slice(stored);
    out.extend_from_slice(&receipt);
    out
}

fn raw() -> Vec<u8> {
    (0..200_000u32)
        .map(|i| (i % 251) as u8 ^ (i / 977) as u8)
        .collect()
}

/// The decoded body of a file that verifies; a body that breaks its encoding promise fails
/// `verify_bytes` itself (the body encoding check), reported here as the reader would.
fn decode(bytes: &[u8]) -> io::Result<Vec<u8>> {
    match verify_bytes(bytes, None, &real_verifier()) {
        Ok(v) => {
            let mut out = Vec::new();
            v.body_reader()?.read_to_end(&mut out)?;
            Ok(out)
        }
        Err(VerifyError::Body { source, .. }) => {
            Err(io::Error::new(io::ErrorKind::InvalidData, source))
        }
        Err(e) => panic!("refused before the body encoding check: {e}"),
    }
}

fn body_error(e: &io::Error) -> &BodyError {
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    e.get_ref()
        .and_then(|e| e.downcast_ref::<BodyError>())
        .unwrap_or_else(|| panic!("no BodyError in {e:?}"))
}

#[test]
fn compressed_body_round_trips() {
    let raw = raw();
    let stored = zstd::encode_all(&raw[..], 3).unwrap();
    assert!(stored.len() < raw.len());
    assert_eq!(
        decode(&file(Flags::ZSTD, raw.len() as u64, &stored)).unwrap(),
        raw
    );
}

#[test]
fn uncompressed_body_round_trips() {
    let raw = raw();
    assert_eq!(
        decode(&file(Flags::NONE, raw.len() as u64, &raw)).unwrap(),
        raw
    );
}

#[test]
fn raw_len_one_too_large_is_a_short_body() {
    let raw = raw();
    let stored = zstd::encode_all(&raw[..], 3).unwrap();
    let err = decode(&file(Flags::ZSTD, raw.len() as u64 + 1, &stored)).unwrap_err();
    assert!(
        matches!(body_error(&err), BodyError::Short { actual, .. } if *actual == raw.len() as u64),
        "{err:?}"
    );
}

#[test]
fn raw_len_one_too_small_is_a_long_body() {
    let raw = raw();
    let stored = zstd::encode_all(&raw[..], 3).unwrap();
    let err = decode(&file(Flags::ZSTD, raw.len() as u64 - 1, &stored)).unwrap_err();
    assert!(
        matches!(body_error(&err), BodyError::Long { .. }),
        "{err:?}"
    );
}

#[test]
fn two_concatenated_frames_are_refused() {
    let raw = raw();
    let mut stored = zstd::encode_all(&raw[..], 3).unwrap();
    let second = zstd::encode_all(&b"more"[..], 3).unwrap();
    stored.extend_from_slice(&second);
    // raw_len counts both frames, as a decoder of concatenated frames would see it.
    let err = decode(&file(Flags::ZSTD, raw.len() as u64 + 4, &stored)).unwrap_err();
    assert!(
        matches!(
            body_error(&err),
            BodyError::Short { .. } | BodyError::TrailingData { .. }
        ),
        "{err:?}"
    );
    // With raw_len of the first frame only, the second frame is trailing data.
    let err = decode(&file(Flags::ZSTD, raw.len() as u64, &stored)).unwrap_err();
    assert!(
        matches!(body_error(&err), BodyError::TrailingData { trailing } if *trailing == second.len() as u64),
        "{err:?}"
    );
}

#[test]
fn garbage_after_the_frame_is_refused() {
    let raw = raw();
    let mut stored = zstd::encode_all(&raw[..], 3).unwrap();
    stored.push(0);
    let err = decode(&file(Flags::ZSTD, raw.len() as u64, &stored)).unwrap_err();
    assert!(
        matches!(body_error(&err), BodyError::TrailingData { trailing: 1 }),
        "{err:?}"
    );
}

#[test]
fn store_latest_body_reader_decodes_a_persisted_compressed_body() {
    let sim = SimFs::new(7);
    let store = fixture::open(&sim, fixture::opts());
    let raw = raw();
    let stored = zstd::encode_all(&raw[..], 3).unwrap();
    let digest = body_digest(&stored);
    let claims = snapseal_persist::Claims {
        idx: 3,
        flags: Flags::ZSTD,
        body_len: stored.len() as u64,
        raw_len: raw.len() as u64,
        body_digest: digest,
    }
    .digest();
    let receipt = Ledger::new(4, claims).receipt(&key(), claims);
    store
        .persist(&PersistRequest {
            idx: 3,
            evidence_idx: 4,
            flags: Flags::ZSTD,
            raw_len: raw.len() as u64,
            body_digest: digest,
            body: &stored,
            receipt: &receipt,
        })
        .unwrap();
    let latest = store.latest().unwrap().expect("a snapshot");
    assert_eq!(
        latest.read_body().unwrap(),
        &stored[..],
        "read_body() reads the stored bytes"
    );
    let mut out = Vec::new();
    latest.body_reader().unwrap().read_to_end(&mut out).unwrap();
    assert_eq!(out, raw);
}

/// The whole chain, as anyhow's `{:#}` prints it.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out = format!("{out}: {c}");
        cause = c.source();
    }
    out
}

#[test]
fn a_failed_write_names_its_cause_once_in_the_chain() {
    let sim = SimFs::new(9);
    let store = fixture::open(&sim, fixture::opts());
    sim.inject(Fault::always(Op::Write, FaultKind::Enospc));
    let snap = fixture::Snap::new(3, 1000);
    let err = store.persist(&snap.request()).unwrap_err();
    let enospc = io::Error::from_raw_os_error(nix::libc::ENOSPC).to_string();
    let text = chain(&err);
    assert_eq!(text.matches(&enospc).count(), 1, "{text}");
    assert!(
        text.contains(&snap.file_name(snapseal_persist::FileState::Uncommitted)),
        "{text}"
    );
    assert!(err.source().is_some(), "the cause is in source()");
    // The umbrella error keeps the same chain.
    let umbrella = snapseal_persist::internals::Error::from(err);
    assert_eq!(chain(&umbrella).matches(&enospc).count(), 1);
}

/// `verify_file`: the same checks on a file read with `pread`, in bounded memory.
mod streamed {
    use super::*;
    use snapseal_persist::fs::{FileSystem, RealFs};
    use snapseal_persist::internals::fs::{Expect, Untrusted};
    use snapseal_persist::internals::verify_file;

    fn chain(e: &dyn std::error::Error) -> String {
        let mut out = e.to_string();
        let mut cur = e.source();
        while let Some(c) = cur {
            out.push_str(": ");
            out.push_str(&c.to_string());
            cur = c.source();
        }
        out
    }

    /// The outcome of both readers on `bytes`, file label made equal.
    fn both(bytes: &[u8]) -> (Result<Header, String>, Result<Header, String>, Vec<u8>) {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("f"), bytes).unwrap();
        let dir = RealFs.open_dir(tmp.path(), false).unwrap();
        let file = Untrusted::open_in(&*dir, "f", Expect::new("snapshot file", 1 << 30))
            .unwrap()
            .unwrap();
        let mut seen = Vec::new();
        let streamed = verify_file(&file, None, &real_verifier(), &mut |p| {
            seen.extend_from_slice(p)
        })
        .map(|v| v.header)
        .map_err(|e| chain(&e).replace(&file.path().display().to_string(), "<bytes>"));
        let in_memory = verify_bytes(bytes, None, &real_verifier())
            .map(|v| v.header)
            .map_err(|e| chain(&e));
        (streamed, in_memory, seen)
    }

    fn zstd_file() -> Vec<u8> {
        let raw = raw();
        file(
            Flags::ZSTD,
            raw.len() as u64,
            &zstd::encode_all(&raw[..], 3).unwrap(),
        )
    }

    #[test]
    fn verify_file_agrees_with_verify_bytes_on_every_damage_and_sees_every_byte_of_a_good_file() {
        let plain = file(Flags::NONE, 5000, &raw()[..5000]);
        let mut cases = vec![plain.clone(), zstd_file()];
        let raw = raw();
        let mut trailing = zstd::encode_all(&raw[..], 3).unwrap();
        trailing.push(0);
        cases.push(file(Flags::ZSTD, raw.len() as u64, &trailing));
        cases.push(file(
            Flags::ZSTD,
            raw.len() as u64 + 1,
            &zstd::encode_all(&raw[..], 3).unwrap(),
        ));
        cases.push(file(Flags::ZSTD, 5, b"\x00\x01\x02\x03junk"));
        for base in [plain, zstd_file()] {
            for at in [
                0,
                7,
                40,
                100,
                159,
                160,
                161,
                2000,
                base.len() - 300,
                base.len() - 1,
            ] {
                let mut b = base.clone();
                b[at] ^= 0x40;
                cases.push(b);
            }
            cases.push(base[..base.len() - 1].to_vec());
            cases.push(base[..100].to_vec());
            let mut longer = base.clone();
            longer.push(1);
            cases.push(longer);
        }
        let mut good = 0;
        for (i, bytes) in cases.iter().enumerate() {
            let (streamed, in_memory, seen) = both(bytes);
            assert_eq!(streamed, in_memory, "case {i}");
            if streamed.is_ok() {
                good += 1;
                assert_eq!(&seen, bytes, "case {i}: each saw the whole file in order");
            }
        }
        assert_eq!(good, 2, "the two undamaged files verify");
    }

    #[test]
    fn a_file_truncated_while_verify_file_reads_it_is_a_read_error_not_bad_contents() {
        let bytes = zstd_file();
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        std::fs::write(&path, &bytes).unwrap();
        let dir = RealFs.open_dir(tmp.path(), false).unwrap();
        let file = Untrusted::open_in(&*dir, "f", Expect::new("snapshot file", 1 << 30))
            .unwrap()
            .unwrap();
        // Truncated after the digest pass read it whole and before the decoding pass: the
        // decoder's source fails, which is a read error, not a bad encoding.
        let truncate = || {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(1000)
                .unwrap()
        };
        let e = verify_file(&file, None, &real_verifier(), &mut |_| truncate()).unwrap_err();
        assert!(matches!(e, VerifyError::Read { .. }), "{e}");
        assert!(e.source().unwrap().to_string().contains("truncated"), "{e}");
        // And before anything was read: the receipt read fails the same way.
        let e = verify_file(&file, None, &real_verifier(), &mut |_| {}).unwrap_err();
        assert!(matches!(e, VerifyError::Read { .. }), "{e}");
    }
}
