//! Persist against the physical floor: `SnapshotStore::persist` (body in memory) and the
//! spilled path (body streamed into the pending file, then completed) against a bare
//! `openat(O_EXCL)` + write + fsync + close + `renameat2(NOREPLACE)` + directory fsync of the
//! same header | body | receipt bytes, in the same directory, alternating.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use snapseal_persist::fs::RealFs;
use snapseal_persist::internals::PersistRequest;
use snapseal_persist::internals::SpillCommit;
use snapseal_persist::receipt::Ed25519Verifier;
use snapseal_persist::Flags;
use snapseal_persist::{SnapshotStore, StoreOptions};

use super::fixture::{alternate, committed_name, key, timed, Fixture, WorkDir, EVIDENCE};
use super::floor::Floor;
use super::table::BenchRow;
use super::BenchError;
use crate::units::bytes;

/// Spilled bodies reach the pending file in writes of this size: what the body builder issues
/// (it gathers the state view's writes into a buffer of this size before hashing and writing).
const STREAM_CHUNK: usize = snapseal_persist::internals::SPILL_BUFFER;

/// Our persist (in memory, and spilled) against the floor at `size`; rows only for the
/// in-memory path carry the persist target, the spilled one is compared to the same bound.
pub(crate) fn rows(
    dir: &Path,
    size: usize,
    reps: usize,
    bound: f64,
) -> Result<Vec<BenchRow>, BenchError> {
    let fx = Fixture::new(size)?;
    let work = WorkDir::new(dir, "persist")?;
    let store_dir = work.path().join("store");
    let floor_dir = work.path().join("floor");
    let mut opts = StoreOptions::new(Arc::new(Ed25519Verifier::new(vec![key().verifying_key()])));
    // Retention lists the directory (that cost stays in) but never deletes: deleting the
    // previous repetition's file is untimed, below.
    opts.keep_last = usize::MAX;
    let store = SnapshotStore::open(Arc::new(RealFs::new()), &store_dir, opts)
        .map_err(|e| BenchError::Setup(format!("open store: {e}")))?;
    std::fs::create_dir_all(&floor_dir).map_err(|e| BenchError::io(&floor_dir, "mkdir", e))?;
    let floor = Floor::open(&floor_dir)?;
    let counter = std::cell::Cell::new(0u64);
    let next = || {
        counter.set(counter.get() + 1);
        counter.get()
    };

    let mut ours_mem = || -> Result<Duration, BenchError> {
        let idx = next();
        let (r, t) = timed(|| {
            store.persist(&PersistRequest {
                idx,
                evidence_idx: EVIDENCE,
                flags: Flags::NONE,
                raw_len: fx.body.len() as u64,
                body_digest: fx.digest,
                body: &fx.body,
                receipt: &fx.receipt,
            })
        });
        let c = r.map_err(|e| BenchError::Run(format!("persist: {e}")))?;
        remove(&c.path)?;
        Ok(t)
    };
    let mut floor_run = || -> Result<Duration, BenchError> {
        let idx = next();
        let (r, t) = timed(|| floor_write(&floor, idx, &fx));
        r?;
        remove(&floor_dir.join(committed_name(idx)))?;
        Ok(t)
    };
    let runs = alternate(reps, &mut ours_mem, &mut floor_run)?;
    let mut out = vec![BenchRow::times(
        format!(
            "persist {} (body in memory) vs bare write+fsync+rename+dir fsync",
            bytes(size as u64)
        ),
        &runs,
        bound,
    )];

    let mut ours_spill = || -> Result<Duration, BenchError> {
        let idx = next();
        let (r, t) = timed(|| -> Result<_, BenchError> {
            let run = |e| BenchError::Run(format!("spilled persist: {e}"));
            let mut spill = store.create_spill(idx, 0).map_err(run)?;
            for chunk in fx.body.chunks(STREAM_CHUNK) {
                spill.write_body(chunk).map_err(run)?;
            }
            store
                .commit_spill(
                    spill,
                    &SpillCommit {
                        evidence_idx: EVIDENCE,
                        flags: Flags::NONE,
                        raw_len: fx.body.len() as u64,
                        body_digest: fx.digest,
                        receipt: &fx.receipt,
                    },
                )
                .map_err(run)
        });
        let c = r?;
        remove(&c.path)?;
        Ok(t)
    };
    let runs = alternate(reps, &mut ours_spill, &mut floor_run)?;
    out.push(
        BenchRow::times(
            format!("persist {} spilled (stream to pending file + complete) vs the same floor", bytes(size as u64)),
            &runs,
            bound,
        )
        .with_note("the body is written once, in 4 MiB writes as the body builder issues them, while serialising; the commit adds receipt, header pwrite, fsync, rename, dir fsync"),
    );
    Ok(out)
}

/// `count` persists of `size` each, all at once from `count` threads, against two others,
/// each alternating with it: `count` bare write+fsync+rename sequences of the same bytes at
/// once from `count` threads, in a sibling directory on the same disk (the floor, ≤ 1.05×:
/// what the disk allows for that many crash-safe writes at once), and the same persists one
/// after another through the same store (for information: on one disk already
/// bandwidth-bound, the hardware decides that ratio, not snapseal).
pub(crate) fn parallel_rows(
    dir: &Path,
    count: usize,
    size: usize,
    reps: usize,
) -> Result<Vec<BenchRow>, BenchError> {
    let fx = Fixture::new(size)?;
    let work = WorkDir::new(dir, "persist-parallel")?;
    let store_dir = work.path().join("store");
    let floor_dir = work.path().join("floor");
    let mut opts = StoreOptions::new(Arc::new(Ed25519Verifier::new(vec![key().verifying_key()])));
    opts.keep_last = usize::MAX;
    let store = SnapshotStore::open(Arc::new(RealFs::new()), &store_dir, opts)
        .map_err(|e| BenchError::Setup(format!("open store: {e}")))?;
    std::fs::create_dir_all(&floor_dir).map_err(|e| BenchError::io(&floor_dir, "mkdir", e))?;
    let floor = Floor::open(&floor_dir)?;
    // Every file must verify: a retention pass of one persist may look at another's file
    // before that persist has recorded it as its own. So a real receipt per index, made
    // before anything is timed. Ours runs in both alternations, and serially in the second.
    let runs = (reps.max(1) + 1) * 3 * count;
    let receipts = (1..=runs as u64)
        .map(|idx| fx.receipt_at(idx))
        .collect::<Result<Vec<_>, _>>()?;
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let one = |store: &SnapshotStore| -> Result<std::path::PathBuf, BenchError> {
        let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let receipt = receipts
            .get(i)
            .ok_or_else(|| BenchError::Setup("ran out of fixture receipts".into()))?;
        store
            .persist(&PersistRequest {
                idx: i as u64 + 1,
                evidence_idx: EVIDENCE,
                flags: Flags::NONE,
                raw_len: fx.body.len() as u64,
                body_digest: fx.digest,
                body: &fx.body,
                receipt,
            })
            .map(|c| c.path)
            .map_err(|e| BenchError::Run(format!("persist: {e}")))
    };
    let floor_counter = std::sync::atomic::AtomicU64::new(0);
    let floor_one = || -> Result<std::path::PathBuf, BenchError> {
        let idx = floor_counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        floor_write(&floor, idx, &fx)?;
        Ok(floor_dir.join(committed_name(idx)))
    };
    let remove_all = |paths: Vec<std::path::PathBuf>| paths.iter().try_for_each(|p| remove(p));
    // `count` threads each running `f` once, timed from the first spawn to the last join.
    let at_once = |f: &(dyn Fn() -> Result<std::path::PathBuf, BenchError> + Sync)| {
        let (paths, t) = timed(|| {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..count).map(|_| s.spawn(f)).collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(BenchError::Run("writer thread panicked".into()))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
        });
        remove_all(paths?)?;
        Ok(t)
    };
    let ours = || one(&store);
    let mut parallel = || at_once(&ours);
    let mut floor_parallel = || at_once(&floor_one);
    let vs_floor = alternate(reps, &mut parallel, &mut floor_parallel)?;
    let mut serial = || -> Result<Duration, BenchError> {
        let (paths, t) = timed(|| {
            (0..count)
                .map(|_| one(&store))
                .collect::<Result<Vec<_>, _>>()
        });
        remove_all(paths?)?;
        Ok(t)
    };
    let vs_serial = alternate(reps, &mut parallel, &mut serial)?;
    let size = bytes(size as u64);
    Ok(vec![
        BenchRow::times(
            format!("persist {count} × {size} at once vs {count} bare write+fsync+rename+dir fsync at once"),
            &vs_floor,
            1.05,
        )
        .with_note("the floor: the same bytes through the same syscalls (O_EXCL create, write, fsync, close, rename, dir fsync) from as many threads, same disk; no hashing, no receipt check, no retention"),
        BenchRow::times(
            format!("persist {count} × {size} at once vs one after another (same store, same disk)"),
            &vs_serial,
            f64::INFINITY,
        )
        .for_information()
        .with_note("information: on one bandwidth-bound disk the hardware, not snapseal, sets this ratio (the floor row above is the goal)"),
    ])
}

fn remove(path: &Path) -> Result<(), BenchError> {
    std::fs::remove_file(path).map_err(|e| BenchError::io(path, "remove", e))
}

/// The floor for one snapshot: the same header | body | receipt bytes through [`Floor`].
fn floor_write(floor: &Floor, idx: u64, fx: &Fixture) -> Result<(), BenchError> {
    let header = fx.header(idx).encode();
    let tmp = format!("snapshot_{idx}_{EVIDENCE}");
    floor
        .write(
            &tmp,
            &committed_name(idx),
            &[&header[..], &fx.body, &fx.receipt],
        )
        .map_err(|(step, e)| BenchError::Run(format!("floor {step}: {e}")))
}
