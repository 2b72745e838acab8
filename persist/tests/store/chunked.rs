//! Chunked snapshots (docs/FORMAT.md §2.2, §10) in the store: round trip, incremental writes,
//! damaged and missing chunks, chunk retention with shared chunks and in-flight claims, and a
//! crash at every step of a chunked persist and of the sweep after it.

use std::io::{Read, Write};
use std::sync::Arc;

use proptest::prelude::*;
use snapseal_persist::fs::{Fault, FaultKind, Op, SimFs};
use snapseal_persist::internals::chunks::decode_list;
use snapseal_persist::{
    BodyBuilder, Committed, FileState, Flags, MemoryBudget, PendingBody, SnapshotName,
    SnapshotStore, SpillTarget, StoreOptions,
};

use crate::fixture::*;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn chunked_opts(keep_last: usize) -> StoreOptions {
    let mut o = opts();
    o.chunked = true;
    o.keep_last = keep_last;
    o
}

pub(crate) fn open_chunked(sim: &SimFs, keep_last: usize) -> Arc<SnapshotStore> {
    Arc::new(open(sim, chunked_opts(keep_last)))
}

/// Deterministic incompressible bytes.
pub(crate) fn state(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `base` with `n` bytes at `at` changed.
pub(crate) fn edited(base: &[u8], at: usize, n: usize) -> Vec<u8> {
    let mut out = base.to_vec();
    for b in &mut out[at..at + n] {
        *b = b.wrapping_add(1);
    }
    out
}

/// Streams `state` into a chunked body for `store` (in uneven pieces, as a node writes).
fn build(store: &Arc<SnapshotStore>, idx: u64, state: &[u8]) -> Result<PendingBody> {
    build_within(store, idx, state, 1 << 20)
}

/// [`build`] with a memory budget of `budget` bytes (a small one spills the list).
fn build_within(
    store: &Arc<SnapshotStore>,
    idx: u64,
    state: &[u8],
    budget: u64,
) -> Result<PendingBody> {
    let target = SpillTarget {
        store: Arc::clone(store),
        idx,
        generation: idx,
        budget: MemoryBudget::new(budget),
    };
    let mut builder = BodyBuilder::with_spill(None, target)?;
    for piece in state.chunks(77_777) {
        builder.write_all(piece)?;
    }
    Ok(builder.finish()?)
}

/// Commits `body` as the snapshot at `idx`, proven at `idx + 1`.
fn commit(store: &SnapshotStore, idx: u64, body: PendingBody) -> Result<Committed> {
    let claims = body.claims(idx).digest();
    let receipt = Ledger::new(idx + 1, claims).receipt(&key(), claims);
    Ok(body.commit(store, idx, idx + 1, &receipt)?)
}

pub(crate) fn persist(store: &Arc<SnapshotStore>, idx: u64, state: &[u8]) -> Result<Committed> {
    let body = build(store, idx, state)?;
    commit(store, idx, body)
}

pub(crate) fn read_back(store: &SnapshotStore, name: &SnapshotName) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    store.read(name)?.body_reader()?.read_to_end(&mut out)?;
    Ok(out)
}

fn packs(sim: &SimFs) -> Vec<String> {
    let mut p: Vec<String> = sim
        .names(dir())
        .into_iter()
        .filter(|n| n.starts_with("chunks_"))
        .collect();
    p.sort();
    p
}

fn pack_bytes(sim: &SimFs) -> u64 {
    packs(sim)
        .iter()
        .map(|p| sim.read(dir(), p).map_or(0, |b| b.len() as u64))
        .sum()
}

/// Every committed snapshot in the directory verifies (its chunks are all there) and
/// reads back as one of `states` (by idx).
fn all_committed_verify(store: &SnapshotStore, states: &[(u64, &[u8])]) {
    for entry in store.list().unwrap() {
        if entry.name.state != FileState::Committed {
            continue;
        }
        let got = read_back(store, &entry.name)
            .unwrap_or_else(|e| panic!("{} does not verify: {e}", entry.name));
        let want = states
            .iter()
            .find(|(i, _)| *i == entry.name.idx)
            .map(|(_, s)| *s)
            .expect("a snapshot of a known state");
        assert_eq!(got, want, "{} reads back its state", entry.name);
    }
}

#[test]
fn a_chunked_snapshot_round_trips_and_its_file_holds_only_the_chunk_list() -> Result<()> {
    let sim = SimFs::new(1);
    let s = state(3 << 20, 1);
    let store = open_chunked(&sim, 5);
    let committed = persist(&store, 10, &s)?;
    drop(store);

    let store = open_chunked(&sim, 5);
    let latest = store.latest()?.expect("the chunked snapshot");
    assert_eq!(*latest.name(), committed.name);
    assert!(latest.header().flags.contains(Flags::CHUNKED));
    assert_eq!(latest.header().raw_len, s.len() as u64);
    assert_eq!(latest.header().body_len % 36, 0);
    // A 3 MiB state in chunks of 16..256 KiB: a list of at most 192 entries.
    assert!(latest.file_len() < 160 + 192 * 36 + 1024);
    let mut read = Vec::new();
    latest.body_reader()?.read_to_end(&mut read)?;
    assert_eq!(read, s);
    assert_eq!(store.newest_verified()?, Some(committed.name));
    Ok(())
}

#[test]
fn a_chunk_list_past_the_memory_budget_spills_like_any_body_and_commits() -> Result<()> {
    let sim = SimFs::new(11);
    let store = open_chunked(&sim, 5);
    let s = state(2 << 20, 11);
    // A budget smaller than two list entries: the list goes to a pending file.
    let target = SpillTarget {
        store: Arc::clone(&store),
        idx: 10,
        generation: 1,
        budget: MemoryBudget::new(64),
    };
    let mut builder = BodyBuilder::with_spill(None, target)?;
    builder.write_all(&s)?;
    let body = builder.finish()?;
    assert!(body.is_spilled());
    let c = commit(&store, 10, body)?;
    assert_eq!(read_back(&store, &c.name)?, s);
    assert!(
        store.list_pending()?.is_empty(),
        "the pending file became the snapshot"
    );
    Ok(())
}

#[test]
fn a_second_snapshot_after_a_small_change_writes_only_the_changed_chunks() -> Result<()> {
    let sim = SimFs::new(2);
    let store = open_chunked(&sim, 5);
    let first = state(4 << 20, 2);
    persist(&store, 10, &first)?;
    let full = store.stats().chunk_bytes_written;
    assert_eq!(
        full,
        first.len() as u64,
        "the first snapshot writes every byte once"
    );

    let second = edited(&first, 2 << 20, 1000);
    let c = persist(&store, 20, &second)?;
    let written = store.stats().chunk_bytes_written - full;
    // The edit touches one or two chunks (at most 256 KiB each) and FastCDC re-synchronises
    // within a chunk or two after it.
    assert!(written > 0, "the changed chunk is written");
    assert!(
        written <= 4 * 256 * 1024,
        "wrote {written} bytes for a 1000-byte edit"
    );
    assert_eq!(read_back(&store, &c.name)?, second);

    // The same state again writes nothing new.
    persist(&store, 30, &second)?;
    assert_eq!(store.stats().chunk_bytes_written - full, written);
    Ok(())
}

/// Two chunked snapshots of unrelated states (so the newer has a pack of its own): the older
/// one's name and the newer one's pack. The store is closed.
fn two_snapshots(sim: &SimFs, seed: u64) -> Result<(Committed, Committed, String)> {
    let store = open_chunked(sim, 5);
    let old = persist(&store, 10, &state(1 << 20, seed))?;
    let before = packs(sim);
    let new = persist(&store, 20, &state(1 << 20, seed + 1))?;
    let new_pack = packs(sim)
        .into_iter()
        .find(|p| !before.contains(p))
        .expect("the newer snapshot's own pack");
    Ok((old, new, new_pack))
}

#[test]
fn a_damaged_chunk_fails_its_snapshot_and_latest_falls_back() -> Result<()> {
    let sim = SimFs::new(3);
    let (old, _, new_pack) = two_snapshots(&sim, 3)?;
    // A bit of the first chunk's bytes (after the 8-byte magic): the trailer still checks out.
    assert!(sim.flip_bit(dir(), &new_pack, 8 * 100));

    let store = open_chunked(&sim, 5);
    let latest = store.latest()?.expect("the older snapshot");
    assert_eq!(*latest.name(), old.name);
    assert_eq!(store.stats().quarantined, 1);
    Ok(())
}

#[test]
fn a_missing_chunk_fails_its_snapshot_and_latest_falls_back() -> Result<()> {
    let sim = SimFs::new(4);
    let (old, _, new_pack) = two_snapshots(&sim, 5)?;
    // Torn: its trailer is gone, so the store skips the pack and never trusts it.
    assert!(sim.truncate(dir(), &new_pack, 1000));

    let store = open_chunked(&sim, 5);
    assert_eq!(store.latest()?.map(|f| *f.name()), Some(old.name));
    assert_eq!(store.stats().quarantined, 1);
    Ok(())
}

#[test]
fn retention_keeps_every_chunk_a_retained_snapshot_names_and_deletes_the_rest() -> Result<()> {
    let sim = SimFs::new(5);
    let store = open_chunked(&sim, 2);
    let mut states = vec![state(2 << 20, 7)];
    for i in 1..6 {
        let prev = states[i - 1].clone();
        states.push(edited(&prev, (i * 300_000) % (2 << 20), 5000));
    }
    // Then a wholly different state: everything older becomes dead after two more.
    states.push(state(2 << 20, 8));
    states.push(state(2 << 20, 9));
    for (i, s) in states.iter().enumerate() {
        persist(&store, 10 * (i as u64 + 1), s)?;
        let known: Vec<(u64, &[u8])> = states
            .iter()
            .enumerate()
            .map(|(j, s)| (10 * (j as u64 + 1), s.as_slice()))
            .collect();
        all_committed_verify(&store, &known);
    }
    assert_eq!(store.list()?.len(), 2);
    // Only the last two states' chunks remain (packs rewritten or deleted): about 4 MiB.
    let left = pack_bytes(&sim);
    assert!(left <= (4 << 20) + (64 << 10), "{left} bytes of packs left");
    // And after a restart the index rebuilt from the trailers serves them.
    drop(store);
    let store = open_chunked(&sim, 2);
    let known = [(70, states[6].as_slice()), (80, states[7].as_slice())];
    all_committed_verify(&store, &known);
    Ok(())
}

#[test]
fn a_dropped_generation_leaves_no_chunk_behind_and_a_pending_one_keeps_its_chunks() -> Result<()> {
    let sim = SimFs::new(6);
    let store = open_chunked(&sim, 1);
    persist(&store, 10, &state(1 << 20, 10))?;
    // A generation serialised, then rolled back: its chunks are durable but named by nothing.
    drop(build(&store, 20, &state(1 << 20, 11))?);
    // Another is serialised and waits for its proof while a newer snapshot commits and its
    // retention sweep runs: the waiting one's chunks are claimed, so they stay.
    let waiting_state = state(1 << 20, 12);
    let waiting = build(&store, 30, &waiting_state)?;
    persist(&store, 40, &state(1 << 20, 13))?;
    let late = commit(&store, 30, waiting)?;
    assert_eq!(read_back(&store, &late.name)?, waiting_state);
    // One more commit: only the newest (keep_last 1) snapshot's chunks are left, the rolled
    // back generation's included in what was swept.
    let last_state = state(1 << 20, 14);
    let last = persist(&store, 50, &last_state)?;
    assert_eq!(read_back(&store, &last.name)?, last_state);
    let left = pack_bytes(&sim);
    assert!(left <= (1 << 20) + (64 << 10), "{left} bytes of packs left");
    Ok(())
}

/// Crash after `halt` seam calls of `step` (run on a store over `sim`), reopen, and check the
/// invariant: every committed snapshot verifies, none references a missing chunk, no
/// half-written pack is left; then a retention pass changes nothing of that. Returns whether
/// `step` finished before the halt.
fn crash_during(
    sim: &SimFs,
    keep_last: usize,
    halt: u64,
    step: impl FnOnce(&Arc<SnapshotStore>) -> Result<Committed>,
    known: &[(u64, &[u8])],
) -> bool {
    let store = open_chunked(sim, keep_last);
    let start = sim.op_count();
    sim.halt_after(halt);
    let ok = step(&store).is_ok();
    // No call reached the halt: the whole sequence (retention included) ran.
    let survived = ok && sim.op_count() <= start + halt;
    drop(store);
    sim.crash();
    let store = open_chunked(sim, keep_last);
    assert!(
        !sim.names(dir())
            .iter()
            .any(|n| n.ends_with(".pack.pending")),
        "a half-written pack is left after recovery (halt {halt})"
    );
    all_committed_verify(&store, known);
    store.apply_retention().expect("retention after recovery");
    all_committed_verify(&store, known);
    assert!(
        store.latest().unwrap().is_some(),
        "the first snapshot always survives"
    );
    survived
}

#[test]
fn a_crash_at_any_step_of_a_chunked_persist_and_its_sweep_loses_no_retained_chunk() -> Result<()> {
    let first = state(1 << 20, 20);
    let second = edited(&first, 300_000, 4000);
    // Unrelated to the others: every older pack dies at keep_last 1.
    let unrelated = state(1 << 20, 21);
    // The first 60% changed: the first snapshot's pack keeps under half its bytes live, so the
    // sweep rewrites it (and deletes the second's small pack).
    let mostly_new = edited(&second, 0, 600_000);
    // keep_last 1 deletes packs, keep_last 2 keeps them, `mostly_new` rewrites one; without
    // RENAME_NOREPLACE the packs are linked and unlinked instead.
    // The last one spills its list (a 64-byte budget): the pending file is completed.
    let scenarios: [(usize, bool, &[u8], u64); 5] = [
        (1, true, &unrelated, 1 << 20),
        (2, true, &unrelated, 1 << 20),
        (1, false, &unrelated, 1 << 20),
        (1, true, &mostly_new, 1 << 20),
        (1, true, &unrelated, 64),
    ];
    for (keep_last, noreplace, third, budget) in scenarios {
        let known = [(10, first.as_slice()), (20, second.as_slice()), (30, third)];
        let mut halt = 0;
        loop {
            let sim = SimFs::new(100 + halt);
            sim.set_rename_noreplace_supported(noreplace);
            {
                let store = open_chunked(&sim, keep_last);
                persist(&store, 10, &first)?;
                persist(&store, 20, &second)?;
            }
            // The third commit writes a new pack and its snapshot, then retention deletes the
            // oldest snapshot(s) and sweeps (deleting or rewriting packs).
            let step = |s: &Arc<SnapshotStore>| commit(s, 30, build_within(s, 30, third, budget)?);
            let done = crash_during(&sim, keep_last, halt, step, &known);
            if done {
                if third == mostly_new.as_slice() {
                    assert!(
                        !packs(&sim).contains(&"chunks_0.pack".to_string()),
                        "the mostly dead first pack was rewritten: {:?}",
                        packs(&sim)
                    );
                }
                break;
            }
            halt += 1;
            assert!(halt < 400, "the persist never finished");
        }
        assert!(halt > 10, "the halts covered the sequence ({halt} steps)");
    }
    Ok(())
}

#[test]
fn a_failed_pack_write_or_fsync_fails_the_body_leaves_no_pack_and_the_store_goes_on() -> Result<()>
{
    for (op, kind) in [
        (Op::Sync, FaultKind::Eio),
        (Op::Write, FaultKind::Enospc),
        (Op::Rename, FaultKind::Eio),
    ] {
        let sim = SimFs::new(8);
        let store = open_chunked(&sim, 5);
        let s = state(1 << 20, 30);
        sim.inject(Fault::nth(op, 1, kind));
        assert!(
            build(&store, 10, &s).is_err(),
            "{op:?} {kind:?} fails the body"
        );
        assert!(
            packs(&sim).is_empty(),
            "{op:?}: nothing of the pack is left"
        );
        sim.clear_faults();
        // The store goes on: the same state is written afresh, in full.
        let c = persist(&store, 10, &s)?;
        assert_eq!(read_back(&store, &c.name)?, s);
    }
    Ok(())
}

#[test]
fn a_pack_starts_its_writeback_every_8_mib_and_a_failed_start_fails_the_body() -> Result<()> {
    let s = state(40 << 20, 31);
    let sim = SimFs::new(11);
    let store = open_chunked(&sim, 5);
    let c = persist(&store, 10, &s)?;
    let hints = sim.trace().iter().filter(|r| r.op == Op::Writeback).count();
    // 40 MiB of chunks: a full pack (32 MiB) and the rest, a start every 8 MiB of each.
    assert!(hints >= 4, "{hints} writeback starts");
    assert_eq!(read_back(&store, &c.name)?, s);

    let sim = SimFs::new(12);
    let store = open_chunked(&sim, 5);
    sim.inject(Fault::nth(Op::Writeback, 1, FaultKind::Eio));
    assert!(
        build(&store, 10, &s).is_err(),
        "a failed start fails the body"
    );
    assert!(packs(&sim).is_empty(), "nothing of the pack is left");
    Ok(())
}

#[test]
fn the_read_only_plan_verifies_chunked_snapshots_against_the_directorys_packs() -> Result<()> {
    use snapseal_persist::fs::FileSystem;
    use snapseal_persist::internals::{open_snapshot, plan_latest, PassOverReason};
    let sim = SimFs::new(9);
    let (old, new, new_pack) = two_snapshots(&sim, 40)?;
    let handle = sim.open_dir(dir(), false)?;
    // Without the store (what `snapseal latest` and `verify` use): the packs are scanned.
    let plan = plan_latest(&*handle, &real_verifier())?;
    assert_eq!(plan.chosen.map(|f| *f.name()), Some(new.name));
    assert!(open_snapshot(&*handle, &old.name, &real_verifier()).is_ok());

    assert!(sim.flip_bit(dir(), &new_pack, 8 * 100));
    let plan = plan_latest(&*handle, &real_verifier())?;
    assert_eq!(plan.chosen.map(|f| *f.name()), Some(old.name));
    assert!(matches!(
        plan.passed_over.first().map(|p| &p.reason),
        Some(PassOverReason::Failed(_))
    ));
    Ok(())
}

#[test]
fn a_chunked_file_is_refused_by_ingest_where_its_chunks_are_not_and_one_already_present_is_present(
) -> Result<()> {
    use snapseal_persist::{BodyError, IngestError, Ingested, VerifyError};
    let sim = SimFs::new(12);
    let store = open_chunked(&sim, 5);
    let c = persist(&store, 10, &state(1 << 20, 12))?;
    let file = store.read(&c.name)?;
    let first = snapseal_persist::internals::chunks::chunk_list(&file)?.expect("chunked")[0].1;
    // Sent again to the store that has it (and its chunks): already present, not refused.
    let again = store.ingest(&mut file.file_reader(), 1 << 30)?;
    assert!(matches!(again, Ingested::AlreadyPresent(_)));
    drop(file);
    drop(store);
    // Where its chunks are not, it is refused naming the first one (chunks do not travel
    // with the file), and nothing is left.
    let bytes = sim
        .read(dir(), &c.name.file_name())
        .expect("the committed file");
    let other = SimFs::new(13);
    let receiver = open_chunked(&other, 5);
    let refused = receiver.ingest(&mut &bytes[..], 1 << 30);
    let names_first = |e: &VerifyError| {
        matches!(
            e,
            VerifyError::Body {
                source: BodyError::ChunkMissing { index: 0, hash },
                ..
            } if *hash == first
        )
    };
    assert!(
        matches!(&refused, Err(IngestError::Refused { source, .. }) if names_first(source)),
        "{refused:?}"
    );
    assert!(receiver.list()?.is_empty());
    assert!(receiver.list_pending()?.is_empty());
    Ok(())
}

fn encode(entries: &[(u32, [u8; 32])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (len, hash) in entries {
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(hash);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// An edit anywhere — bytes changed, inserted or removed — costs the chunks around it,
    /// not the state: both snapshots read back, and the second writes at most the edit plus
    /// a few chunks on either side (FastCDC re-synchronises after a shift).
    #[test]
    fn a_snapshot_after_any_edit_writes_about_the_edit_and_both_read_back(
        seed in 0u64..1000,
        at in 0usize..(1 << 20),
        len in 1usize..50_000,
        kind in 0u8..3,
    ) {
        let sim = SimFs::new(seed);
        let store = open_chunked(&sim, 5);
        let base = state(1 << 20, seed);
        let mut next = base.clone();
        let at = at.min(next.len());
        match kind {
            0 => {
                let end = (at + len).min(next.len());
                for b in &mut next[at..end] {
                    *b = !*b;
                }
            }
            1 => {
                let insert = state(len, seed + 1);
                next.splice(at..at, insert);
            }
            _ => {
                let end = (at + len).min(next.len());
                next.drain(at..end);
            }
        }
        let a = persist(&store, 10, &base).unwrap();
        let full = store.stats().chunk_bytes_written;
        let b = persist(&store, 20, &next).unwrap();
        let written = store.stats().chunk_bytes_written - full;
        prop_assert!(
            written <= (len + 4 * 256 * 1024) as u64,
            "an edit of {} bytes wrote {}", len, written
        );
        prop_assert_eq!(read_back(&store, &a.name).unwrap(), base);
        prop_assert_eq!(read_back(&store, &b.name).unwrap(), next);
    }
}

proptest! {
    #[test]
    fn a_chunk_list_decodes_to_the_entries_it_encodes(
        entries in proptest::collection::vec((1u32..=256 * 1024, any::<[u8; 32]>()), 0..64)
    ) {
        let raw: u64 = entries.iter().map(|(l, _)| u64::from(*l)).sum();
        let list = encode(&entries);
        prop_assert_eq!(decode_list(&list, raw).unwrap(), entries.clone());
        // Any other raw_len is refused.
        prop_assert!(decode_list(&list, raw + 1).is_err());
        if raw > 0 {
            prop_assert!(decode_list(&list, raw - 1).is_err());
        }
        // A list cut anywhere but at an entry boundary is refused.
        if !list.is_empty() {
            prop_assert!(decode_list(&list[..list.len() - 1], raw).is_err());
        }
    }

    #[test]
    fn a_chunk_list_with_a_length_out_of_range_is_refused(
        bad in prop_oneof![Just(0u32), (256 * 1024 + 1)..=u32::MAX],
        hash in any::<[u8; 32]>(),
    ) {
        let list = encode(&[(bad, hash)]);
        prop_assert!(decode_list(&list, u64::from(bad)).is_err());
    }

    #[test]
    fn any_bytes_decode_as_a_chunk_list_or_are_refused_without_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..400), raw in any::<u64>()
    ) {
        let _ = decode_list(&bytes, raw);
    }
}
