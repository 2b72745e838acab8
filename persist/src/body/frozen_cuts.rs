//! A chunked body from the node's frozen chunks (`PendingBody::from_frozen_in`), and
//! [`FrozenCuts`]: each frozen chunk's cut remembered for the next generation, so an unchanged
//! frozen chunk costs a lookup, not a pass over its bytes.
//!
//! The rule. A frozen chunk is immutable (its bytes never change while any clone of its `Arc`
//! lives: the contract of [`FrozenChunk`]). Its cut — FastCDC from its first byte to its
//! last, each chunk's length and BLAKE3 — is therefore a function of its identity: the address
//! and length of its bytes. The chunk store keeps, per frozen chunk of the newest body built
//! this way, a clone of the `Arc` (so those bytes stay where they are, and no other chunk can
//! get their address while the entry lives) and its cut. The next body looks each of its
//! frozen chunks up by address and length: found, its cut is used as it is. Not found (a
//! chunk the node changed is a new allocation): when the last body had a chunk of the same
//! length at the same place, the two are compared and that one's boundaries kept, each
//! unchanged piece keeping its hash and the changed ones hashed anew (a comparison runs at
//! memory speed, FastCDC and BLAKE3 do not); when fewer than half the pieces are unchanged
//! (the bytes moved, so old boundaries would find nothing again), or there is no such chunk,
//! it is cut and hashed whole. The frozen chunks' boundaries are chunk boundaries, so a
//! change costs only the frozen chunks it touched.
//!
//! What the cache does not remember: whether a chunk is stored. Every chunk of the body is
//! claimed in the store as any chunk is, and written from the frozen chunk's bytes when no
//! durable pack has it (a generation that was rolled back or dropped, a sweep since): the
//! cache can only save hashing, never decide what is durable.
//!
//! Memory: the previous body's frozen chunks stay alive until the next body replaces them.
//! Chunks the node shares between generations cost nothing; a chunk it replaced is kept one
//! generation longer. Per chunk of the body, 36 bytes of cut (as its list entry).
//!
//! Frozen chunks shorter than `MIN_CHUNK` (but the last) would make chunks that small: then
//! the bytes stream through the chunked builder instead, as if written.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::Arc;

use parking_lot::Mutex;
use rayon::prelude::*;

use super::budget::SpillTarget;
use super::builder::{BodyBuilder, HashingSink};
use super::hashing::on_pool;
use super::pending::{FrozenChunk, PendingBody};
use crate::chunks::cutter::cut_whole;
use crate::chunks::sink::ChunkingSink;
use crate::chunks::MIN_CHUNK;
use crate::Hash;

/// One frozen chunk's cut: each chunk's length and BLAKE3, in order.
type Cut = Arc<[(u32, Hash)]>;

/// A frozen chunk's identity: the address and length of its bytes.
type Key = (usize, usize);

fn key(bytes: &[u8]) -> Key {
    (bytes.as_ptr() as usize, bytes.len())
}

/// A remembered cut, with the frozen chunk it belongs to (kept alive, so its address is not
/// reused while the entry exists).
#[derive(Clone)]
struct Remembered {
    chunk: FrozenChunk,
    cut: Cut,
}

/// The newest body's frozen chunks in order, and where each is by identity.
#[derive(Default)]
struct Last {
    in_order: Vec<Remembered>,
    by_key: HashMap<Key, usize>,
}

/// What is known of a frozen chunk before it is stored.
enum Known {
    /// The same chunk as in the last body: its cut.
    Cut(Cut),
    /// A different chunk of the same length at the same place in the last body: its bytes
    /// are compared with that one's, and the chunks that did not change keep their entries.
    Was(Remembered),
    /// Nothing: cut and hashed whole.
    New,
}

/// The cuts of the newest body's frozen chunks, by identity (see the module docs).
#[derive(Default)]
pub(crate) struct FrozenCuts {
    last: Mutex<Last>,
}

impl std::fmt::Debug for FrozenCuts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrozenCuts")
            .field("chunks", &self.last.lock().in_order.len())
            .finish()
    }
}

impl FrozenCuts {
    /// What is known of each of `chunks`.
    fn lookup(&self, chunks: &[FrozenChunk]) -> Vec<Known> {
        let last = self.last.lock();
        chunks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let bytes = (**c).as_ref();
                if let Some(&j) = last.by_key.get(&key(bytes)) {
                    return Known::Cut(Arc::clone(&last.in_order[j].cut));
                }
                match last.in_order.get(i) {
                    Some(was)
                        if (*was.chunk).as_ref().len() == bytes.len() && !bytes.is_empty() =>
                    {
                        Known::Was(was.clone())
                    }
                    _ => Known::New,
                }
            })
            .collect()
    }

    /// Remembers `now` (a body's chunks in order) instead of what was remembered.
    fn replace(&self, in_order: Vec<Remembered>) {
        let by_key = in_order
            .iter()
            .enumerate()
            .filter(|(_, r)| !(*r.chunk).as_ref().is_empty())
            .map(|(i, r)| (key((*r.chunk).as_ref()), i))
            .collect();
        let old = std::mem::replace(&mut *self.last.lock(), Last { in_order, by_key });
        // The old chunks are dropped outside the lock: dropping the last clone of a large
        // chunk (unmapping, freeing) must not hold up a concurrent lookup.
        drop(old);
    }

    /// How many frozen chunks' cuts are remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.last.lock().by_key.len()
    }
}

/// True when every frozen chunk but the last is empty or at least `MIN_CHUNK` long, so cutting
/// at their boundaries makes no chunk smaller than FastCDC would (but one per frozen chunk).
fn stable_boundaries(chunks: &[FrozenChunk]) -> bool {
    let Some((_, rest)) = chunks.split_last() else {
        return true;
    };
    rest.iter().all(|c| {
        let len = (**c).as_ref().len();
        len == 0 || len >= MIN_CHUNK
    })
}

/// A chunked body from `chunks` for `target`'s chunked store (see the module docs).
pub(crate) fn chunked(chunks: Vec<FrozenChunk>, target: SpillTarget) -> io::Result<PendingBody> {
    if !stable_boundaries(&chunks) {
        let mut builder = BodyBuilder::with_spill(None, target)?;
        for chunk in &chunks {
            builder.write_all((**chunk).as_ref())?;
        }
        return builder.finish();
    }
    let store = Arc::clone(target.store.chunk_store());
    let known = store.frozen.lookup(&chunks);
    let mut work: Vec<(&[u8], Option<&Remembered>)> = Vec::new();
    for (chunk, known) in chunks.iter().zip(&known) {
        match known {
            Known::Cut(_) => {}
            Known::Was(was) => work.push(((**chunk).as_ref(), Some(was))),
            Known::New => work.push(((**chunk).as_ref(), None)),
        }
    }
    let mut sink = ChunkingSink::new(Arc::clone(&store), HashingSink::new(Some(target)));
    let mut remembered = Vec::with_capacity(chunks.len());
    // The chunks not remembered are cut (or compared) and hashed on the hashing pool, a
    // batch ahead of this thread storing the previous one; every file operation stays on
    // this thread, in list order.
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Cut>>(1);
        let work = &work;
        scope.spawn(move || {
            for batch in batches(work) {
                let cuts = on_pool(|| {
                    batch
                        .par_iter()
                        .map(|&(bytes, was)| {
                            was.and_then(|was| rehash_changed(was, bytes))
                                .unwrap_or_else(|| cut(bytes))
                        })
                        .collect()
                });
                if tx.send(cuts).is_err() {
                    // This thread stopped on an error: nothing more is wanted.
                    return;
                }
            }
        });
        let mut fresh = rx.into_iter().flatten();
        for (chunk, known) in chunks.iter().zip(&known) {
            let bytes = (**chunk).as_ref();
            let cut = match known {
                Known::Cut(cut) => Arc::clone(cut),
                Known::Was(_) | Known::New => match fresh.next() {
                    Some(cut) => cut,
                    None => return Err(io::Error::other("a frozen chunk was left uncut")),
                },
            };
            let mut at = 0usize;
            for &(len, hash) in cut.iter() {
                let end = at + len as usize;
                let Some(piece) = bytes.get(at..end) else {
                    return Err(changed());
                };
                sink.add_chunk(piece, hash)?;
                at = end;
            }
            if at != bytes.len() {
                return Err(changed());
            }
            remembered.push(Remembered {
                chunk: Arc::clone(chunk),
                cut,
            });
        }
        Ok(())
    })?;
    store.frozen.replace(remembered);
    Ok(PendingBody::chunked(sink.finish()?))
}

/// Bytes of frozen chunks cut together: enough chunks to keep the hashing pool busy, few
/// enough that storing them overlaps with cutting the next batch.
const BATCH: usize = 16 << 20;

/// `work` in consecutive batches of about [`BATCH`] bytes (a larger chunk is one batch).
fn batches<'a, T>(work: &'a [(&'a [u8], T)]) -> impl Iterator<Item = &'a [(&'a [u8], T)]> {
    let mut rest = work;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let n = rest
            .iter()
            .take_while(|(c, _)| {
                let take = bytes < BATCH;
                bytes += c.len();
                take
            })
            .count();
        let (batch, after) = rest.split_at(n.max(1));
        rest = after;
        Some(batch)
    })
}

/// A frozen chunk's cut: FastCDC over its bytes, each chunk hashed.
fn cut(bytes: &[u8]) -> Cut {
    cut_whole(bytes)
        .into_iter()
        // A FastCDC chunk is 1 ..= MAX_CHUNK bytes: it fits a u32.
        .map(|(from, to, hash)| ((to - from) as u32, hash))
        .collect()
}

/// The cut of `bytes`, a frozen chunk that replaced `was` (of the same length, at the same
/// place): `was`'s boundaries, each chunk whose bytes are unchanged keeping its hash, the
/// others hashed anew — a comparison, not a pass of FastCDC and BLAKE3 over every byte. `None`
/// when fewer than half of the chunks are unchanged (the bytes moved rather than changed in
/// place: a fresh cut finds the old chunks again where the old boundaries would not).
fn rehash_changed(was: &Remembered, bytes: &[u8]) -> Option<Cut> {
    let old = (*was.chunk).as_ref();
    if old.len() != bytes.len() {
        return None;
    }
    let mut at = 0usize;
    let mut pieces = Vec::with_capacity(was.cut.len());
    for &(len, hash) in was.cut.iter() {
        let end = at + len as usize;
        let same = old.get(at..end)? == bytes.get(at..end)?;
        pieces.push((at, end, same.then_some(hash)));
        at = end;
    }
    let unchanged = pieces.iter().filter(|p| p.2.is_some()).count();
    if at != bytes.len() || unchanged * 2 < pieces.len() {
        return None;
    }
    Some(
        pieces
            .par_iter()
            .map(|&(from, to, hash)| {
                let hash = hash.unwrap_or_else(|| *blake3::hash(&bytes[from..to]).as_bytes());
                ((to - from) as u32, hash)
            })
            .collect(),
    )
}

/// A remembered cut that does not fit its frozen chunk: the node changed a chunk's bytes (or
/// handed out a different length at the same address) while a clone of it lived.
fn changed() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "a frozen chunk's length changed since it was cut (frozen chunks are immutable: see FrozenChunk)",
    )
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::path::Path;
    use std::sync::Arc;

    use super::super::budget::{MemoryBudget, SpillTarget};
    use super::super::builder::BodyBuilder;
    use super::super::pending::{FrozenChunk, PendingBody};
    use crate::chunks::cutter::cut_whole;
    use crate::chunks::list::Entry;
    use crate::fs::RealFs;
    use crate::receipt::{statement_receipt, Ed25519Verifier};
    use crate::{SigningKey, SnapshotStore, StoreOptions};

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[24; 32])
    }

    fn chunked_store(dir: &Path) -> Arc<SnapshotStore> {
        let verifier =
            Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![key().verifying_key()]);
        let mut opts = StoreOptions::new(Arc::new(verifier));
        opts.chunked = true;
        Arc::new(SnapshotStore::open(Arc::new(RealFs::new()), dir, opts).unwrap())
    }

    fn target(store: &Arc<SnapshotStore>, idx: u64) -> SpillTarget {
        SpillTarget {
            store: Arc::clone(store),
            idx,
            generation: idx,
            budget: MemoryBudget::new(1 << 20),
        }
    }

    fn bytes(len: usize, seed: u64) -> Vec<u8> {
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

    fn frozen(v: &[u8]) -> FrozenChunk {
        Arc::new(v.to_vec())
    }

    fn body(store: &Arc<SnapshotStore>, idx: u64, chunks: &[FrozenChunk]) -> PendingBody {
        PendingBody::from_frozen_in(chunks.to_vec(), target(store, idx)).unwrap()
    }

    fn commit(store: &SnapshotStore, idx: u64, body: PendingBody) {
        let receipt = statement_receipt(&key(), &body.claims(idx), idx + 1, None).unwrap();
        body.commit(store, idx, idx + 1, &receipt).unwrap();
    }

    fn latest_state(store: &SnapshotStore) -> Vec<u8> {
        let mut out = Vec::new();
        let latest = store.latest().unwrap().expect("a committed snapshot");
        latest.body_reader().unwrap().read_to_end(&mut out).unwrap();
        out
    }

    fn written(store: &SnapshotStore) -> u64 {
        store.stats().chunk_bytes_written
    }

    fn packs(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                let name = name.to_string_lossy();
                name.starts_with("chunks_") && name.ends_with(".pack")
            })
            .count()
    }

    /// The digest of the list made by cutting each piece on its own.
    fn list_digest(pieces: &[&[u8]]) -> crate::Hash {
        let mut hasher = blake3::Hasher::new();
        for piece in pieces {
            for (from, to, hash) in cut_whole(piece) {
                let len = (to - from) as u32;
                hasher.update(&Entry { len, hash }.encode());
            }
        }
        *hasher.finalize().as_bytes()
    }

    #[test]
    fn a_remembered_cut_gives_the_list_a_fresh_cut_gives() {
        let (a, b, c) = (bytes(300_000, 1), bytes(1_100_000, 2), bytes(50_000, 3));
        let chunks = [frozen(&a), frozen(&b), frozen(&c)];
        let dir = tempfile::tempdir().unwrap();
        let store = chunked_store(dir.path());
        let first = body(&store, 1, &chunks);
        let after_first = written(&store);
        assert_eq!(store.chunk_store().frozen.len(), 3);
        let again = body(&store, 2, &chunks);
        assert_eq!(written(&store), after_first, "nothing new to write");

        let cold_dir = tempfile::tempdir().unwrap();
        let cold = chunked_store(cold_dir.path());
        let fresh = body(&cold, 2, &[frozen(&a), frozen(&b), frozen(&c)]);
        let expect = list_digest(&[&a, &b, &c]);
        assert_eq!(first.digest(), expect);
        assert_eq!(again.digest(), expect);
        assert_eq!(fresh.digest(), expect);
        assert_eq!(again.claims(2), fresh.claims(2));
        commit(&store, 2, again);
        assert_eq!(latest_state(&store), [a, b, c].concat());
    }

    #[test]
    fn a_frozen_chunk_whose_bytes_moved_is_cut_again() {
        let (a, b, c) = (bytes(300_000, 4), bytes(1_100_000, 5), bytes(200_000, 6));
        let dir = tempfile::tempdir().unwrap();
        let store = chunked_store(dir.path());
        let (fa, fc) = (frozen(&a), frozen(&c));
        commit(
            &store,
            1,
            body(&store, 1, &[fa.clone(), frozen(&b), fc.clone()]),
        );
        let before = written(&store);

        // The same length at the same place, but every byte moved: the old boundaries would
        // find nothing again, a fresh cut finds all but the chunks around the seam.
        let mut b2 = b.clone();
        b2.rotate_left(1000);
        let second = body(&store, 3, &[fa, frozen(&b2), fc]);
        assert_eq!(second.digest(), list_digest(&[&a, &b2, &c]));
        let new = written(&store) - before;
        assert!(
            new > 0 && new < 600_000,
            "the moved piece wrote {new} bytes of chunks"
        );
        commit(&store, 3, second);
        assert_eq!(latest_state(&store), [a, b2, c].concat());
    }

    #[test]
    fn a_frozen_chunk_changed_in_place_rehashes_only_its_changed_chunks() {
        let (a, b) = (bytes(300_000, 11), bytes(1_100_000, 12));
        let dir = tempfile::tempdir().unwrap();
        let store = chunked_store(dir.path());
        let fa = frozen(&a);
        commit(&store, 1, body(&store, 1, &[fa.clone(), frozen(&b)]));
        let before = written(&store);

        // Zeros across 40 KiB: whatever FastCDC would make of them, the old boundaries stay.
        let (from, to) = (500_000, 540_960);
        let mut b2 = b.clone();
        b2[from..to].fill(0);
        let second = body(&store, 3, &[fa, frozen(&b2)]);
        let touched: usize = cut_whole(&b)
            .into_iter()
            .filter(|&(f, t, _)| f < to && t > from)
            .map(|(f, t, _)| t - f)
            .sum();
        assert_eq!(written(&store) - before, touched as u64);
        let mut hasher = blake3::Hasher::new();
        for piece in [&a[..]] {
            for (f, t, hash) in cut_whole(piece) {
                hasher.update(
                    &Entry {
                        len: (t - f) as u32,
                        hash,
                    }
                    .encode(),
                );
            }
        }
        for (f, t, _) in cut_whole(&b) {
            let hash = *blake3::hash(&b2[f..t]).as_bytes();
            hasher.update(
                &Entry {
                    len: (t - f) as u32,
                    hash,
                }
                .encode(),
            );
        }
        assert_eq!(second.digest(), *hasher.finalize().as_bytes());
        commit(&store, 3, second);
        assert_eq!(latest_state(&store), [a, b2].concat());
    }

    #[test]
    fn a_remembered_cut_whose_chunks_were_swept_writes_them_again() {
        let (a, b) = (bytes(400_000, 7), bytes(600_000, 8));
        let b2 = bytes(600_000, 9);
        let dir = tempfile::tempdir().unwrap();
        let store = chunked_store(dir.path());
        let fa = frozen(&a);
        commit(&store, 1, body(&store, 1, &[fa.clone(), frozen(&b)]));
        assert_eq!(packs(dir.path()), 1);

        // A generation cut [a, b2] (remembered), stored b2's chunks, then was rolled back.
        let fb2 = frozen(&b2);
        drop(body(&store, 3, &[fa.clone(), fb2.clone()]));
        assert_eq!(packs(dir.path()), 2);
        // A later snapshot (streamed, so the remembered cuts stay) commits; its sweep
        // deletes the rolled-back generation's pack, which nothing names.
        let mut streamed = BodyBuilder::with_spill(None, target(&store, 5)).unwrap();
        streamed.write_all(&a).unwrap();
        commit(&store, 5, streamed.finish().unwrap());
        assert_eq!(packs(dir.path()), 1, "the dead pack was swept");

        // The same frozen chunks again: every cut is remembered, b2's chunks are not stored.
        let before = written(&store);
        let again = body(&store, 7, &[fa, fb2]);
        assert_eq!(written(&store) - before, b2.len() as u64);
        commit(&store, 7, again);
        assert_eq!(latest_state(&store), [a, b2].concat());
        let latest = store.latest().unwrap().expect("the newest snapshot");
        assert_eq!(latest.name().idx, 7);
    }

    #[test]
    fn small_frozen_chunks_stream_as_one_body() {
        let whole = bytes(900_000, 10);
        let pieces: Vec<FrozenChunk> = whole.chunks(1000).map(frozen).collect();
        let dir = tempfile::tempdir().unwrap();
        let store = chunked_store(dir.path());
        let b = body(&store, 1, &pieces);
        assert_eq!(b.digest(), list_digest(&[&whole]));
        assert_eq!(store.chunk_store().frozen.len(), 0);
    }
}
