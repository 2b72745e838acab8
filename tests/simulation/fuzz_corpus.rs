//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/`) through the same entry
//! functions the cargo-fuzz targets call, so plain `cargo test` (and CI) exercises every
//! target without cargo-fuzz or a nightly toolchain.
//!
//! `cargo test --test simulation -- --ignored fuzz_corpus::write_seed_corpus` regenerates the
//! seed files (valid files and receipts signed by the fuzz key, names, random event-order
//! inputs).

use std::fs;
use std::path::{Path, PathBuf};

use snapseal::persist::internals::verify_bytes;
use snapseal_sim::harness::fuzz_entry::{self, FuzzFailure, FUZZ_LEDGER_SEED};
use snapseal_sim::harness::{Harness, HarnessConfig, Op, SplitMix64};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target)
}

fn replay(target: &str, entry: fn(&[u8]) -> Result<(), FuzzFailure>) -> usize {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no corpus", dir.display());
    for path in &files {
        let data = fs::read(path).expect("readable corpus file");
        if let Err(failure) = entry(&data) {
            panic!("{}: {failure}", path.display());
        }
    }
    files.len()
}

#[test]
fn event_order_corpus_keeps_every_invariant() {
    replay("event_order", fuzz_entry::event_order);
}

#[test]
fn file_reader_corpus_holds_its_properties() {
    replay("file_reader", fuzz_entry::file_reader);
}

#[test]
fn receipt_corpus_holds_its_properties() {
    replay("receipt", fuzz_entry::receipt);
}

#[test]
fn names_corpus_holds_its_properties() {
    replay("names", fuzz_entry::names);
}

#[test]
fn forge_corpus_never_verifies_a_forgery() {
    replay("forge", fuzz_entry::forge);
}

#[test]
fn ledger_chunk_corpus_never_accepts_a_forged_chunk() {
    replay(
        "ledger_chunk",
        snapseal_sim::harness::fuzz_ledger::ledger_chunk,
    );
}

#[test]
fn archive_import_corpus_never_commits_what_does_not_verify() {
    replay(
        "archive_import",
        snapseal_sim::harness::fuzz_archive::archive_import,
    );
}

/// The forge entry's property can fail: a file that differs from the genuine one in a byte the
/// checks cover must not pass, and the entry reports the genuine file untouched as fine. Here:
/// the untouched file (empty mutation list) passes, and every single-byte flip of it is
/// refused by the verifier (so none reaches the property as a false "verifies").
#[test]
fn forge_starts_from_files_that_verify_and_refuses_each_byte_flip() {
    let verifier = fuzz_entry::fuzz_verifier();
    let genuine = fuzz_entry::genuine_files().expect("genuine files");
    assert_eq!(genuine.len(), 2);
    for g in genuine {
        assert!(verify_bytes(&g.bytes, Some(&g.name), &verifier).is_ok());
        let mut copy = g.bytes.clone();
        for at in 0..copy.len() {
            copy[at] ^= 0x01;
            assert!(
                verify_bytes(&copy, Some(&g.name), &verifier).is_err(),
                "{}: flipping byte {at} still verifies",
                g.name
            );
            copy[at] ^= 0x01;
        }
    }
    fuzz_entry::forge(&[0]).expect("the genuine file itself is fine");
    fuzz_entry::forge(&[1]).expect("the genuine zstd file itself is fine");
}

/// The seed corpus must contain inputs that get past the cheap checks, or fuzzing starts
/// from nothing: at least one file that verifies and one receipt that does.
#[test]
fn the_seed_corpus_contains_inputs_that_verify() {
    let verifier = fuzz_entry::fuzz_verifier();
    let valid_files = fs::read_dir(corpus_dir("file_reader"))
        .expect("corpus")
        .filter_map(|e| fs::read(e.ok()?.path()).ok())
        .filter(|d| verify_bytes(d, None, &verifier).is_ok())
        .count();
    assert!(
        valid_files >= 2,
        "{valid_files} verifying files in the corpus"
    );
}

/// Committed files written by a simulated node keyed by the fuzz ledger seed.
fn genuine_files(compression: Option<i32>) -> Vec<Vec<u8>> {
    let cfg = HarnessConfig {
        compression,
        ..HarnessConfig::default()
    };
    let mut h = Harness::new(FUZZ_LEDGER_SEED, cfg).expect("starts");
    let ops = [
        Op::Append(7),
        Op::Append(0),
        Op::Sign,
        Op::Commit(0),
        Op::RunAll,
        Op::Evidence,
        Op::Sign,
        Op::Commit(0),
        Op::RunAll,
    ];
    for op in &ops {
        h.apply(op).expect("a plain run");
    }
    h.committed_files()
        .iter()
        .filter_map(|n| h.sim().read(h.dir(), &n.file_name()))
        .collect()
}

#[test]
#[ignore = "writes the seed corpus into fuzz/corpus; run by hand"]
fn write_seed_corpus() {
    let write = |target: &str, name: &str, data: &[u8]| {
        let dir = corpus_dir(target);
        fs::create_dir_all(&dir).expect("corpus dir");
        fs::write(dir.join(name), data).expect("write corpus file");
    };
    let verifier = fuzz_entry::fuzz_verifier();
    for (label, compression) in [("plain", None), ("zstd", Some(3))] {
        for (i, file) in genuine_files(compression).iter().enumerate() {
            write("file_reader", &format!("valid-{label}-{i}"), file);
            write(
                "file_reader",
                &format!("truncated-{label}-{i}"),
                &file[..file.len() / 2],
            );
            let v = verify_bytes(file, None, &verifier).expect("genuine file verifies");
            write("receipt", &format!("valid-{label}-{i}"), v.receipt);
            write(
                "receipt",
                &format!("truncated-{label}-{i}"),
                &v.receipt[..v.receipt.len() - 1],
            );
        }
    }
    write("file_reader", "empty", b"");
    write("file_reader", "magic-only", b"SNAPSEAL");
    write("receipt", "empty", b"");
    for (i, name) in [
        "snapshot_10_11",
        "snapshot_10_11.committed",
        "snapshot_10_11.committed.corrupt",
        "snapshot_0_18446744073709551615.committed",
        "snapshot_01_2",
        "snapshot_18446744073709551616_1",
        "snapshot_+1_2",
        ".lock",
        "snapshot_1_2.committed.tmp",
        "snapshot_10.g0.pending",
        "snapshot_10.g3.pending",
        "snapshot_10_0.pending",
        "snapshot_10.g03.pending",
        "snapshot_10.g3.committed",
    ]
    .iter()
    .enumerate()
    {
        write("names", &format!("seed-{i}"), name.as_bytes());
    }
    // Forge inputs: the first byte picks the genuine file, then mutation steps (see
    // `fuzz_entry::forge`): a header field with the checksum recomputed, digests and lengths
    // made consistent again, a receipt spliced from the other file, a body byte, a rename to
    // the header's indices, raw edits, truncation.
    for (name, data) in [
        ("genuine-plain", &[0u8][..]),
        ("genuine-zstd", &[1]),
        ("header-idx", &[0, 0, 0, 0]),
        ("header-idx-renamed", &[0, 0, 0, 0, 6, 0]),
        ("header-evidence-fixed", &[0, 0, 1, 2, 7, 1]),
        ("body-byte-fixed", &[0, 4, 0, 3, 0x40, 1]),
        ("receipt-swap", &[0, 3, 1]),
        ("receipt-swap-header-swap", &[1, 3, 7, 1, 6, 1]),
        ("body-swap-fixed", &[0, 5, 0, 1, 6, 0]),
        ("flags-zstd", &[0, 0, 2, 1, 1]),
        ("raw-len", &[1, 0, 5, 0, 1]),
        ("receipt-byte", &[0, 2, 0, 40, 0x80]),
        ("truncate", &[0, 9, 100, 0, 0, 0, 0, 0, 0, 0, 0]),
        ("raw-xor", &[1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 4]),
    ] {
        write("forge", name, data);
    }
    let mut rng = SplitMix64::new(0xE7E7);
    for (i, len) in [16usize, 64, 256, 512, 1024, 2048].iter().enumerate() {
        let data: Vec<u8> = (0..*len).map(|_| rng.next_u64() as u8).collect();
        write("event_order", &format!("random-{i}"), &data);
    }
}
