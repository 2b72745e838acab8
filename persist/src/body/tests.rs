//! The body pipeline, piece by piece: chunking, the shared budget and its spare pool,
//! spilling mid-stream, frozen chunks, compression and the failure paths.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use super::budget::{MemoryBudget, SpillTarget};
use super::builder::BodyBuilder;
use super::pending::{FrozenChunk, PendingBody};
use super::{MEMORY_CHUNK, SPILL_BUFFER};
use crate::format::{Flags, HEADER_LEN};
use crate::fs::{Fault, FaultKind, Op, SimFs};
use crate::receipt::Ed25519Verifier;
use crate::{SnapshotStore, StoreOptions};

const DIR: &str = "/snapshots";

fn sim_store(seed: u64) -> (SimFs, Arc<SnapshotStore>) {
    let sim = SimFs::new(seed);
    let opts = StoreOptions::new(Arc::new(Ed25519Verifier::new(Vec::new())));
    let store = SnapshotStore::open(Arc::new(sim.clone()), Path::new(DIR), opts).unwrap();
    (sim, Arc::new(store))
}

fn target(store: &Arc<SnapshotStore>, generation: u64, budget: &MemoryBudget) -> SpillTarget {
    SpillTarget {
        store: Arc::clone(store),
        idx: 7,
        generation,
        budget: budget.clone(),
    }
}

fn pending_names(sim: &SimFs) -> Vec<String> {
    sim.names(Path::new(DIR))
        .into_iter()
        .filter(|n| n.ends_with(".pending"))
        .collect()
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Writes `data` in uneven pieces, so chunk boundaries fall inside writes.
fn write_uneven(b: &mut BodyBuilder, data: &[u8]) {
    let mut rest = data;
    let mut step = 1usize;
    while !rest.is_empty() {
        let n = rest.len().min(step);
        b.write_all(&rest[..n]).unwrap();
        rest = &rest[n..];
        step = step * 3 + 7919;
    }
}

#[test]
fn a_large_in_memory_body_is_whole_chunks_and_hashes_as_one_stream() {
    let data = data(2 * MEMORY_CHUNK + 12345);
    let mut b = BodyBuilder::new(None).unwrap();
    write_uneven(&mut b, &data);
    let body = b.finish().unwrap();
    assert_eq!(body.digest(), *blake3::hash(&data).as_bytes());
    let parts = body.memory_parts().unwrap();
    assert_eq!(parts.len(), 3);
    assert!(parts[..2].iter().all(|p| p.len() == MEMORY_CHUNK));
    assert_eq!(parts.concat(), data);
    assert!(body.bytes().is_none(), "several chunks are not one slice");
}

#[test]
fn finished_bodies_leave_their_chunks_for_the_next_within_the_limit() {
    let (_sim, store) = sim_store(3);
    let limit = 64 << 20;
    let budget = MemoryBudget::new(limit);
    let data = data(3 * MEMORY_CHUNK + 10);
    for generation in 0..3 {
        let mut b = BodyBuilder::with_spill(None, target(&store, generation, &budget)).unwrap();
        write_uneven(&mut b, &data);
        assert!(budget.used() + budget.spare() <= limit);
        let body = b.finish().unwrap();
        assert!(!body.is_spilled());
        assert_eq!(body.digest(), *blake3::hash(&data).as_bytes());
        drop(body);
        assert_eq!(budget.used(), 0, "generation {generation}");
        // Four chunks: the first (grown to exactly one chunk), two whole ones and the
        // last partial one, which still has a whole chunk's capacity.
        assert_eq!(
            budget.spare(),
            4 * MEMORY_CHUNK as u64,
            "generation {generation}"
        );
    }
}

#[test]
fn spare_chunks_give_way_when_a_body_needs_fresh_memory() {
    let (_sim, store) = sim_store(4);
    let limit = 3 * MEMORY_CHUNK as u64;
    let budget = MemoryBudget::new(limit);
    let big = data(2 * MEMORY_CHUNK);
    let mut b = BodyBuilder::with_spill(None, target(&store, 1, &budget)).unwrap();
    b.write_all(&big).unwrap();
    drop(b.finish().unwrap());
    assert_eq!(budget.spare(), 2 * MEMORY_CHUNK as u64);
    // A growing first chunk needs fresh memory: the spares make room rather than spill.
    let mut b = BodyBuilder::with_spill(None, target(&store, 2, &budget)).unwrap();
    b.write_all(&big[..MEMORY_CHUNK + 5]).unwrap();
    assert!(budget.used() + budget.spare() <= limit);
    let body = b.finish().unwrap();
    assert!(
        !body.is_spilled(),
        "the spare chunks were freed to make room"
    );
    assert_eq!(
        body.digest(),
        *blake3::hash(&big[..MEMORY_CHUNK + 5]).as_bytes()
    );
}

#[test]
fn a_body_past_the_budget_spills_mid_chunk_with_every_byte_in_order() {
    let (sim, store) = sim_store(5);
    let budget = MemoryBudget::new(MEMORY_CHUNK as u64 + MEMORY_CHUNK as u64 / 2);
    let data = data(3 * MEMORY_CHUNK + 99);
    let mut b = BodyBuilder::with_spill(None, target(&store, 9, &budget)).unwrap();
    write_uneven(&mut b, &data);
    let body = b.finish().unwrap();
    assert!(body.is_spilled());
    assert_eq!(body.digest(), *blake3::hash(&data).as_bytes());
    let name = pending_names(&sim).pop().unwrap();
    let file = sim.read(Path::new(DIR), &name).unwrap();
    assert_eq!(&file[HEADER_LEN..], &data[..]);
    assert_eq!(
        budget.used(),
        0,
        "the in-memory part was given back when it spilled"
    );
}

#[test]
fn a_frozen_body_has_the_digest_and_claims_of_the_same_bytes_streamed() {
    // A chunk above the parallel-hash threshold, a small one and an empty one.
    let big = data(3 << 20);
    let small = data(1000);
    let chunks: Vec<FrozenChunk> = vec![
        Arc::new(big.clone()),
        Arc::new(small.clone()),
        Arc::new(Vec::<u8>::new()),
    ];
    let frozen = PendingBody::from_frozen(chunks);
    let mut streamed = BodyBuilder::new(None).unwrap();
    streamed.write_all(&big).unwrap();
    streamed.write_all(&small).unwrap();
    let streamed = streamed.finish().unwrap();
    assert_eq!(frozen.digest(), streamed.digest());
    assert_eq!(frozen.len(), streamed.len());
    assert_eq!(frozen.claims(9), streamed.claims(9));
    assert!(frozen.bytes().is_none() && frozen.frozen_chunks().is_some());
}

#[test]
fn plain_body_digest_is_blake3_of_the_bytes() {
    let mut b = BodyBuilder::new(None).unwrap();
    b.write_all(b"hello ").unwrap();
    b.write_all(b"world").unwrap();
    let body = b.finish().unwrap();
    assert_eq!(body.bytes(), Some(&b"hello world"[..]));
    assert_eq!(body.digest(), *blake3::hash(b"hello world").as_bytes());
    assert_eq!(body.claims(0).raw_len, 11);
    assert_eq!(body.claims(0).flags, Flags::NONE);
    assert!(!body.is_spilled());
}

#[test]
fn zstd_body_hashes_the_stored_bytes_and_round_trips() {
    let data: Vec<u8> = (0..100_000u32)
        .flat_map(|i| (i % 251).to_le_bytes())
        .collect();
    let mut b = BodyBuilder::new(Some(3)).unwrap();
    for chunk in data.chunks(4096) {
        b.write_all(chunk).unwrap();
    }
    let body = b.finish().unwrap();
    let bytes = body.bytes().unwrap();
    assert_eq!(body.claims(0).flags, Flags::ZSTD);
    assert_eq!(body.claims(0).raw_len, data.len() as u64);
    assert!(body.len() < data.len() as u64);
    assert_eq!(body.digest(), *blake3::hash(bytes).as_bytes());
    assert_eq!(zstd::decode_all(bytes).unwrap(), data);
}

#[test]
fn a_large_body_hashes_the_same_in_batches_on_all_cores() {
    // Above HASH_BATCH and PARALLEL_HASH_THRESHOLD, in uneven writes.
    let data = data(9 << 20 | 12345);
    let mut b = BodyBuilder::new(None).unwrap();
    for chunk in data.chunks(1_000_003) {
        b.write_all(chunk).unwrap();
    }
    let body = b.finish().unwrap();
    assert_eq!(body.digest(), *blake3::hash(&data).as_bytes());
    assert_eq!(body.len(), data.len() as u64);
}

#[test]
fn a_body_within_the_budget_stays_in_memory_and_holds_its_share_until_dropped() {
    let (sim, store) = sim_store(1);
    let budget = MemoryBudget::new(10_000);
    let mut b = BodyBuilder::with_spill(None, target(&store, 0, &budget)).unwrap();
    b.write_all(&data(6000)).unwrap();
    let body = b.finish().unwrap();
    assert!(!body.is_spilled());
    assert_eq!(budget.used(), 6000);
    assert!(pending_names(&sim).is_empty());
    drop(body);
    assert_eq!(budget.used(), 0);
}

#[test]
fn a_body_beyond_the_budget_spills_mid_stream_and_frees_its_memory() {
    let (sim, store) = sim_store(2);
    let budget = MemoryBudget::new(10_000);
    let data = data(SPILL_BUFFER + 50_000);
    let mut b = BodyBuilder::with_spill(None, target(&store, 3, &budget)).unwrap();
    // Small writes first (buffered in memory), then past the budget, then a write larger
    // than the spill buffer (written where it is).
    let (small, rest) = data.split_at(9_000);
    for chunk in small.chunks(1000) {
        b.write_all(chunk).unwrap();
    }
    assert_eq!(budget.used(), 9_000);
    let (mid, big) = rest.split_at(41_000);
    b.write_all(mid).unwrap();
    assert_eq!(budget.used(), 0, "spilling gives the memory back");
    b.write_all(big).unwrap();
    let body = b.finish().unwrap();
    assert!(body.is_spilled());
    assert_eq!(body.bytes(), None);
    assert_eq!(body.len(), data.len() as u64);
    assert_eq!(body.digest(), *blake3::hash(&data).as_bytes());
    assert_eq!(
        pending_names(&sim),
        vec!["snapshot_7.g3.pending".to_string()]
    );
    let on_disk = sim.read(Path::new(DIR), "snapshot_7.g3.pending").unwrap();
    assert_eq!(&on_disk[..160], &[0u8; 160][..], "placeholder header");
    assert_eq!(&on_disk[160..], &data[..], "the body, exactly once");
    assert_eq!(
        body.spill_file().map(|f| f.body_len()),
        Some(data.len() as u64)
    );
    drop(body);
    assert!(
        pending_names(&sim).is_empty(),
        "a dropped body removes its file"
    );
}

#[test]
fn the_budget_is_shared_so_a_second_body_spills_while_the_first_holds_it() {
    let (sim, store) = sim_store(3);
    let budget = MemoryBudget::new(10_000);
    let mut first = BodyBuilder::with_spill(None, target(&store, 0, &budget)).unwrap();
    first.write_all(&data(8_000)).unwrap();
    let first = first.finish().unwrap();
    let mut second = BodyBuilder::with_spill(None, target(&store, 1, &budget)).unwrap();
    second.write_all(&data(3_000)).unwrap();
    let second = second.finish().unwrap();
    assert!(!first.is_spilled());
    assert!(second.is_spilled());
    assert_eq!(budget.used(), 8_000);
    assert_eq!(
        pending_names(&sim),
        vec!["snapshot_7.g1.pending".to_string()]
    );
}

#[test]
fn a_zero_budget_spills_compressed_bytes_that_decode_to_the_state() {
    let (sim, store) = sim_store(4);
    let budget = MemoryBudget::new(0);
    let data: Vec<u8> = (0..200_000u32)
        .flat_map(|i| (i % 97).to_le_bytes())
        .collect();
    let mut b = BodyBuilder::with_spill(Some(3), target(&store, 5, &budget)).unwrap();
    for chunk in data.chunks(10_000) {
        b.write_all(chunk).unwrap();
    }
    let body = b.finish().unwrap();
    assert!(body.is_spilled());
    assert_eq!(body.claims(0).flags, Flags::ZSTD);
    let on_disk = sim.read(Path::new(DIR), "snapshot_7.g5.pending").unwrap();
    let stored = &on_disk[160..];
    assert_eq!(stored.len() as u64, body.len());
    assert_eq!(body.digest(), *blake3::hash(stored).as_bytes());
    assert_eq!(zstd::decode_all(stored).unwrap(), data);
}

#[test]
fn a_failing_spill_write_is_an_error_naming_the_file_and_leaves_no_file() {
    let (sim, store) = sim_store(5);
    let budget = MemoryBudget::new(0);
    let mut b = BodyBuilder::with_spill(None, target(&store, 2, &budget)).unwrap();
    b.write_all(b"first").unwrap();
    sim.inject(Fault::nth(Op::Write, 1, FaultKind::Enospc));
    let big = data(SPILL_BUFFER + 1);
    let err = b.write_all(&big).expect_err("ENOSPC");
    assert!(err.to_string().contains("snapshot_7.g2.pending"), "{err}");
    drop(b);
    assert!(pending_names(&sim).is_empty());
    assert_eq!(sim.open_files(), 0);
}
