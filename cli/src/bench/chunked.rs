//! Chunked snapshots (issue 24) against what they replace, on a paged state that hands its
//! pages out as frozen chunks (a node that keeps its state copy-on-write, so a snapshot's
//! unchanged pages are the last one's):
//!
//! - persist of the next snapshot after 1% of the bytes changed in one contiguous range, on a
//!   chunked store, against a full (plain) persist of the same state: time (≤ 10%) and bytes
//!   written (new chunk bytes plus the file, ≤ 3%);
//! - the first chunked persist (every chunk new) against the plain one (≤ 1.2×);
//! - bytes shipped to a `file://` remote for that 1% change against a full ship (chunk objects
//!   uploaded plus the snapshot object, ≤ 3%);
//! - a full restore of the chunked snapshot from that remote into an empty store against a raw
//!   parallel download: get + BLAKE3 of the same chunk objects, as many in flight as restore
//!   fetches, and against that download followed by one bare durable write of the bytes
//!   (≥ 0.9×: of the raw download from a server; of the download + durable write from a local
//!   directory, whose "download" is a page-cache copy faster than the disk can make the same
//!   bytes durable, so no restore could reach the raw one);
//! - with an S3-compatible test server, the ship and restore rows again against it (at the
//!   ship rows' size: every object goes through the server's HTTP).
//!
//! Every persist is timed from the frozen pages to the committed file (cutting, hashing, the
//! chunk packs, every fsync), after a `sync(2)` so no persist pays the write-back of the one
//! before.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::ObjectStoreExt;
use snapseal_persist::fs::RealFs;
use snapseal_persist::internals::chunks::chunk_list;
use snapseal_persist::receipt::{statement_receipt, Ed25519Verifier};
use snapseal_persist::{
    FrozenChunk, MemoryBudget, PendingBody, SnapshotName, SnapshotStore, SpillTarget, StoreOptions,
};
use snapseal_ship::{restore, Remote, RemoteOptions, RestoreOptions, ShipConfig, Shipper};

use super::fixture::{fill, key, Runs, WorkDir};
use super::table::{BenchRow, Rate};
use super::BenchError;
use crate::units::bytes;

/// The node name the ship rows use on the remote.
const NODE: &str = "bench";

/// Chunk objects a restore fetches at once (`snapseal_ship`'s restore keeps this many in
/// flight); the raw download uses as many.
const IN_FLIGHT: usize = 8;

fn run_err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Run(e.to_string())
}

fn setup(e: impl std::fmt::Display) -> BenchError {
    BenchError::Setup(e.to_string())
}

/// A state kept as pages of `page` bytes, each an `Arc` a write replaces (copy on write).
#[derive(Clone)]
struct Paged {
    page: usize,
    pages: Vec<Arc<Vec<u8>>>,
}

impl Paged {
    fn new(size: usize, page: usize) -> Paged {
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        let pages = (0..size.div_ceil(page))
            .map(|p| {
                let mut v = vec![0u8; page.min(size - p * page)];
                fill(&mut v, &mut seed);
                Arc::new(v)
            })
            .collect();
        Paged { page, pages }
    }

    /// Adds `by` to each byte of `at..at + len`: the pages it touches are replaced.
    fn change(&mut self, at: usize, len: usize, by: u8) {
        let end = (at + len).min(self.pages.len() * self.page);
        for (p, page) in self.pages.iter_mut().enumerate() {
            let start = p * self.page;
            let (lo, hi) = (at.max(start), end.min(start + page.len()));
            if lo < hi {
                let bytes = &mut Arc::make_mut(page)[lo - start..hi - start];
                bytes.iter_mut().for_each(|b| *b = b.wrapping_add(by));
            }
        }
    }

    fn frozen(&self) -> Vec<FrozenChunk> {
        self.pages
            .iter()
            .cloned()
            .map(|p| p as FrozenChunk)
            .collect()
    }
}

fn options(chunked: bool) -> StoreOptions {
    let trusted = Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![key().verifying_key()]);
    let mut opts = StoreOptions::new(Arc::new(trusted));
    opts.chunked = chunked;
    opts.keep_last = 2;
    opts
}

fn open(dir: &std::path::Path, chunked: bool) -> Result<Arc<SnapshotStore>, BenchError> {
    Ok(Arc::new(
        SnapshotStore::open(Arc::new(RealFs::new()), dir, options(chunked)).map_err(setup)?,
    ))
}

/// Persists `state` as snapshot `idx` from its frozen pages: the time to the committed file,
/// the bytes written (new chunk bytes plus the file) and its name.
fn persist(
    store: &Arc<SnapshotStore>,
    idx: u64,
    state: &Paged,
) -> Result<(Duration, u64, SnapshotName), BenchError> {
    // The write-back of the previous persist is not charged to this one.
    nix::unistd::sync();
    let before = store.stats().chunk_bytes_written;
    let chunks = state.frozen();
    let start = Instant::now();
    let target = SpillTarget {
        store: Arc::clone(store),
        idx,
        generation: idx,
        budget: MemoryBudget::new(64 << 20),
    };
    let body = PendingBody::from_frozen_in(chunks, target).map_err(run_err)?;
    let receipt = statement_receipt(&key(), &body.claims(idx), idx + 1, None).map_err(run_err)?;
    let committed = body
        .commit(store, idx, idx + 1, &receipt)
        .map_err(run_err)?;
    let took = start.elapsed();
    let written = store.stats().chunk_bytes_written - before + committed.file_len;
    Ok((took, written, committed.name))
}

/// The rows for a state of `size` bytes in pages of `page` bytes, `reps` repetitions.
pub(crate) fn rows(
    dir: &std::path::Path,
    size: usize,
    page: usize,
    reps: usize,
    s3: Option<(&str, usize)>,
) -> Result<Vec<BenchRow>, BenchError> {
    let work = WorkDir::new(dir, "chunked")?;
    let base = Paged::new(size, page);
    let one_percent = size / 100;
    let (mut delta, mut first, mut written) = (Runs::default(), Runs::default(), Runs::default());
    for rep in 0..reps.max(1) {
        let plain_dir = work.path().join(format!("plain{rep}"));
        let (t_plain, full_bytes, _) = persist(&open(&plain_dir, false)?, 10, &base)?;
        remove(&plain_dir)?;
        let chunked_dir = work.path().join(format!("chunked{rep}"));
        let store = open(&chunked_dir, true)?;
        let (t_first, _, _) = persist(&store, 10, &base)?;
        let mut next = base.clone();
        // A different range each repetition, in the middle third.
        next.change(size / 3 + rep * one_percent / 2, one_percent, 1);
        let (t_delta, delta_bytes, _) = persist(&store, 20, &next)?;
        drop(store);
        remove(&chunked_dir)?;
        let t = |d: Duration| d.as_secs_f64();
        delta.ours.push(t(t_delta));
        delta.floor.push(t(t_plain));
        first.ours.push(t(t_first));
        first.floor.push(t(t_plain));
        written.ours.push(delta_bytes as f64);
        written.floor.push(full_bytes as f64);
    }
    let s = bytes(size as u64);
    let mut out = vec![
        BenchRow::times(format!("chunked persist {s}: 1% contiguous change vs a full persist"), &delta, 0.10)
            .with_note("ours: the next snapshot on a chunked store after 1% of the bytes changed in one range (frozen pages, unchanged ones a lookup); peer: a plain persist of the whole state"),
        BenchRow::byte_counts(format!("chunked persist {s}: bytes written, 1% change vs full"), &written, 0.03)
            .with_note("ours: new chunk bytes in packs plus the snapshot file (its chunk list); peer: the plain file"),
        BenchRow::times(format!("chunked persist {s}: first chunked vs plain"), &first, 1.2)
            .with_note("every chunk new: cut, hashed and written into packs, against the plain whole-body persist"),
    ];
    let remote_dir = work.path().join("remote");
    std::fs::create_dir_all(&remote_dir).map_err(|e| BenchError::io(&remote_dir, "create", e))?;
    let url = format!("file://{}", remote_dir.display());
    let remote = Arc::new(Remote::open(&url, &RemoteOptions::default()).map_err(setup)?);
    out.extend(ship_rows(
        &work,
        &base,
        size,
        reps,
        (&remote, "file:// remote", true),
    )?);
    if let Some((endpoint, size)) = s3 {
        // Smaller: every object goes through the test server's HTTP.
        let work = WorkDir::new(dir, "chunked-s3")?;
        let base = Paged::new(size, page);
        let remote = super::ship::s3_remote(endpoint, "chunked")?;
        let rows = ship_rows(&work, &base, size, reps, (&remote, "S3 remote", false));
        let _ = super::ship::clear(&remote);
        out.extend(rows?);
    }
    Ok(out)
}

fn remove(dir: &std::path::Path) -> Result<(), BenchError> {
    std::fs::remove_dir_all(dir).map_err(|e| BenchError::io(dir, "remove", e))
}

/// Bytes shipped to the empty `remote` (`what` names it in the rows; `local`: a directory on
/// this machine) for a 1% change against a full ship, then restore against a raw download.
fn ship_rows(
    work: &WorkDir,
    base: &Paged,
    size: usize,
    reps: usize,
    (remote, what, local): (&Arc<Remote>, &str, bool),
) -> Result<Vec<BenchRow>, BenchError> {
    let store = open(&work.path().join("local"), true)?;
    let shipper = Shipper::new(
        Arc::clone(remote),
        Arc::clone(&store),
        // A bench reports a server that keeps failing instead of waiting on it forever.
        ShipConfig::new(NODE).with_max_attempts(5),
    )
    .map_err(setup)?;
    let ship = || -> Result<u64, BenchError> {
        let before = shipper.stats().chunk_bytes_uploaded;
        let report = shipper.ship_pending().map_err(run_err)?;
        if report.uploaded.len() != 1 {
            return Err(BenchError::Run("ship uploaded no snapshot".into()));
        }
        Ok(shipper.stats().chunk_bytes_uploaded - before + report.bytes)
    };
    persist(&store, 10, base)?;
    let full = ship()?;
    let mut next = base.clone();
    next.change(size / 3, size / 100, 1);
    let (_, _, newest) = persist(&store, 20, &next)?;
    let changed = ship()?;
    let shipped = Runs {
        ours: vec![changed as f64],
        floor: vec![full as f64],
    };

    // The chunk objects the newest snapshot names, each once: what a full restore fetches.
    let file = store.read(&newest).map_err(run_err)?;
    let mut list = chunk_list(&file)
        .map_err(run_err)?
        .ok_or_else(|| BenchError::Run("the snapshot read back unchunked".into()))?;
    drop(file);
    list.sort_unstable_by_key(|(_, h)| *h);
    list.dedup_by_key(|(_, h)| *h);
    let keys: Vec<(ObjPath, [u8; 32])> = list
        .iter()
        .map(|(_, h)| {
            let key = ObjPath::from(NODE)
                .join("chunks")
                .join(snapseal_persist::to_hex(h));
            (key, *h)
        })
        .collect();
    let chunk_bytes: u64 = list.iter().map(|(len, _)| u64::from(*len)).sum();
    let target = work.path().join("target");
    let mut ours = || -> Result<Duration, BenchError> {
        let _ = std::fs::remove_dir_all(&target);
        let into = open(&target, true)?;
        nix::unistd::sync();
        let start = Instant::now();
        let restored = restore(remote, &into, &RestoreOptions::default()).map_err(run_err)?;
        let t = start.elapsed();
        if !restored.written || restored.name != newest {
            return Err(BenchError::Run(
                "restore did not write the newest snapshot".into(),
            ));
        }
        Ok(t)
    };
    // Get + BLAKE3 of every chunk object, `IN_FLIGHT` at once; each hands its bytes to
    // `keep` (in the order they arrive).
    let download = |keep: &mut dyn FnMut(bytes::Bytes)| -> Result<(), BenchError> {
        let store = remote.store();
        let fetched = super::ship::raw(async {
            futures::stream::iter(&keys)
                .map(|(key, hash)| async move {
                    let got = store.get(key).await?.bytes().await?;
                    let ok = blake3::hash(&got).as_bytes() == hash;
                    Ok::<_, object_store::Error>((got, ok))
                })
                .buffer_unordered(IN_FLIGHT)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<Vec<_>, _>>()
        })?;
        for (got, ok) in fetched {
            if !ok {
                return Err(BenchError::Run(
                    "a chunk object does not match its hash".into(),
                ));
            }
            keep(got);
        }
        Ok(())
    };
    let mut raw = || -> Result<Duration, BenchError> {
        let start = Instant::now();
        download(&mut drop)?;
        Ok(start.elapsed())
    };
    let restored = super::fixture::alternate(reps, &mut ours, &mut raw)?;
    // The floor of any crash-safe restore: the same download, then one bare write + fsync +
    // rename + directory fsync of the bytes.
    let floor_dir = work.path().join("floor");
    std::fs::create_dir_all(&floor_dir).map_err(|e| BenchError::io(&floor_dir, "create", e))?;
    let floor = super::floor::Floor::open(&floor_dir)?;
    let mut round = 0u32;
    let mut durable = || -> Result<Duration, BenchError> {
        round += 1;
        let done = format!("r{round}.committed");
        let start = Instant::now();
        let mut pieces = Vec::with_capacity(keys.len());
        download(&mut |b| pieces.push(b))?;
        let parts: Vec<&[u8]> = pieces.iter().map(|p| &p[..]).collect();
        floor
            .write(&format!("r{round}.tmp"), &done, &parts)
            .map_err(|(step, e)| BenchError::Run(format!("floor {step}: {e}")))?;
        let t = start.elapsed();
        drop(pieces);
        let _ = std::fs::remove_file(floor_dir.join(done));
        Ok(t)
    };
    let restored_durable = super::fixture::alternate(reps, &mut ours, &mut durable)?;
    let s = bytes(size as u64);
    let raw = BenchRow::throughputs(format!("chunked restore {s} ({what}) vs raw parallel download"), chunk_bytes as f64, &restored, 0.9, Rate::Bytes)
        .with_note(format!("ours: restore into an empty store (index, snapshot object, every chunk fetched {IN_FLIGHT} at a time, checked once, sealed into packs, the file verified and committed); peer: get + BLAKE3 of the same chunk objects, {IN_FLIGHT} in flight, nothing written"));
    let durable = BenchRow::throughputs(format!("chunked restore {s} ({what}) vs download + durable write"), chunk_bytes as f64, &restored_durable, 0.9, Rate::Bytes)
        .with_note("peer: the same download, then a bare write + fsync + rename + dir fsync of the bytes: what any crash-safe restore must do");
    // Which of the two holds the goal: against a remote that is a local directory the
    // "download" is a copy out of the page cache, faster than the disk can make the same
    // bytes durable, so the raw download is no floor a restore could reach (the durable
    // write alone bounds it: see docs/PERFORMANCE.md); against a server it is.
    let (raw, durable) = if local {
        (
            raw.with_note_suffix(" (for information: a local remote's download outruns the disk's durable write, so the goal is the row below)")
                .for_information(),
            durable,
        )
    } else {
        (
            raw,
            durable
                .with_note_suffix(" (for information: the goal is the row above)")
                .for_information(),
        )
    };
    Ok(vec![
        BenchRow::byte_counts(format!("chunked ship {s} ({what}): bytes, 1% change vs full"), &shipped, 0.03)
            .with_note("ours: the chunk objects the remote lacked plus the snapshot object, after 1% of the bytes changed in one range; peer: the first (full) ship of the same store"),
        raw,
        durable,
    ])
}
