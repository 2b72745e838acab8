//! The `ledger_chunk` fuzz target's entry: forged disk ledger chunks against the chunk
//! verifier and the ledger's open, starting from genuine signed chunks, so mutations reach
//! the signature and continuity checks rather than dying at the check bytes (structure-aware,
//! like [`forge`](super::fuzz_entry::forge)). `tests/simulation/fuzz_corpus.rs` replays its
//! corpus through the same function with plain `cargo test`.
//!
//! The input's first bytes pick a genuine chunk ([`genuine_ledger`]) and where the result goes
//! (verified alone, placed as a sealed chunk, or as the open chunk a crash left); each further
//! step edits the chunk taken apart ([`ChunkParts`]), every check byte recomputed on encoding:
//! the header's start and frontier (set to another genuine frontier, or a block changed), an
//! entry's index or fields, a signature tx's fields, a signature made again with an untrusted
//! key over the right root, entries removed, duplicated, swapped or replaced by other genuine
//! txs, the file name's range, and raw byte edits or a cut of the encoded file.
//!
//! Properties: whatever [`verify_chunk`] accepts with the trusted key is a run of the genuine
//! history, each tx at its own index, from the genuine frontier there; whatever ledger
//! [`DiskLedger::open`] accepts reads back as the genuine history and signs the genuine root
//! next. Nothing panics.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use snapseal_persist::fs::SimFs;
use snapseal_persist::receipt::sign_root;

use super::fuzz_entry::{FuzzFailure, FUZZ_LEDGER_SEED};
use snapseal_ledger::disk_ledger::{verify_chunk, ChunkName, ChunkParts, DiskLedger};
use snapseal_ledger::frontier::Frontier;
use snapseal_ledger::ledger::{Ledger, TxKind};

const T: &str = "ledger_chunk";

/// Most edits one input applies.
pub const MAX_LEDGER_STEPS: usize = 32;

/// Rounds of the genuine history: 4 writes, an evidence tx and a signature each, each round
/// sealed in a chunk of its own.
const ROUNDS: u64 = 3;

/// Where the genuine chunks are, in the simulated filesystem.
const DIR: &str = "/ledger";

fn fail(detail: String) -> FuzzFailure {
    FuzzFailure::Property { target: T, detail }
}

/// The genuine history the mutations start from, signed with [`FUZZ_LEDGER_SEED`]'s key.
#[derive(Debug)]
pub struct GenuineLedger {
    /// Its sealed chunks, in order: `(start, end, bytes)`.
    pub chunks: Vec<(u64, u64, Vec<u8>)>,
    /// Tx `i + 1` is `txs[i]`.
    pub txs: Vec<TxKind>,
    /// The frontier after the first `k` txs is `frontiers[k]`.
    pub frontiers: Vec<Frontier>,
}

/// The genuine history, written once by a [`DiskLedger`] on a [`SimFs`].
pub fn genuine_ledger() -> Result<&'static GenuineLedger, FuzzFailure> {
    static GENUINE: OnceLock<GenuineLedger> = OnceLock::new();
    if let Some(g) = GENUINE.get() {
        return Ok(g);
    }
    let g = write_genuine()?;
    Ok(GENUINE.get_or_init(|| g))
}

fn write_genuine() -> Result<GenuineLedger, FuzzFailure> {
    let err =
        |e: snapseal_ledger::disk_ledger::LedgerError| fail(format!("the genuine ledger: {e}"));
    let sim = SimFs::new(FUZZ_LEDGER_SEED);
    let dir = Path::new(DIR);
    // A seal threshold of one byte: every committed signature ends a chunk.
    let disk = DiskLedger::open(&sim, dir, Ledger::seed_key(FUZZ_LEDGER_SEED), 1).map_err(err)?;
    for r in 0..ROUNDS {
        for k in 0..4u64 {
            disk.append(TxKind::Write {
                key: r * 4 + k,
                value: Arc::from(vec![r as u8; k as usize + 1]),
            });
        }
        disk.append(TxKind::Evidence {
            snapshot_idx: r * 6 + 2,
            digest: [r as u8; 32],
        });
        let s = disk.append_signature();
        disk.commit(s.sig_idx).map_err(err)?;
    }
    let mut txs = Vec::new();
    disk.for_each(1, disk.commit_idx(), |_, tx| txs.push(tx.clone()))
        .map_err(err)?;
    let mut frontiers = vec![Frontier::new()];
    let mut f = Frontier::new();
    for (i, tx) in txs.iter().enumerate() {
        f.push(tx.leaf(i as u64 + 1));
        frontiers.push(f.clone());
    }
    let mut chunks = Vec::new();
    for (start, end) in disk.sealed() {
        let name = ChunkName::Committed { start, end }.file_name();
        let bytes = sim
            .read(dir, &name)
            .ok_or_else(|| fail(format!("the genuine chunk {name} is missing")))?;
        chunks.push((start, end, bytes));
    }
    Ok(GenuineLedger {
        chunks,
        txs,
        frontiers,
    })
}

/// The fuzzer's choices, a byte at a time; zeros once the input is used up.
struct Picks<'a> {
    data: &'a [u8],
}

impl Picks<'_> {
    fn next(&mut self) -> u8 {
        let (first, rest) = self
            .data
            .split_first()
            .map_or((0, &[][..]), |(f, r)| (*f, r));
        self.data = rest;
        first
    }

    /// An index below `n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        usize::from(self.next()) % n.max(1)
    }

    /// A new value for a field: one more, one less, or any.
    fn nudge(&mut self, old: u64) -> u64 {
        match self.next() % 3 {
            0 => old.wrapping_add(1),
            1 => old.wrapping_sub(1),
            _ => u64::from_le_bytes(std::array::from_fn(|_| self.next())),
        }
    }

    /// A non-zero byte to xor with.
    fn flip(&mut self) -> u8 {
        self.next() | 1
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Where the forged chunk goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// Verified on its own only.
    Alone,
    /// A sealed chunk after the genuine chunks before it.
    Sealed,
    /// The open chunk a crash left after the genuine chunks before it.
    Open,
}

/// Applies one edit, chosen by the input, to `parts`.
fn edit(p: &mut Picks<'_>, g: &GenuineLedger, parts: &mut ChunkParts, name: &mut (u64, u64)) {
    let n = parts.entries.len();
    let i = p.below(n);
    match p.next() % 10 {
        0 => parts.start = p.nudge(parts.start),
        1 => {
            if let Some(f) = g.frontiers.get(p.below(g.frontiers.len())) {
                parts.frontier = f.clone();
            }
        }
        2 => {
            let mut blocks = parts.frontier.blocks().to_vec();
            let b = p.below(blocks.len());
            if let Some(block) = blocks.get_mut(b) {
                block[p.below(32)] ^= p.flip();
            }
            if let Some(f) = Frontier::from_parts(parts.frontier.len(), blocks) {
                parts.frontier = f;
            }
        }
        3 => {
            if let Some(e) = parts.entries.get_mut(i) {
                e.0 = p.nudge(e.0);
            }
        }
        4 => {
            if let Some((_, tx)) = parts.entries.get_mut(i) {
                edit_tx(p, tx);
            }
        }
        5 => resign(p, parts, i),
        6 => match p.next() % 3 {
            0 if n > 0 => {
                parts.entries.remove(i);
            }
            1 => {
                if let Some(e) = parts.entries.get(i).cloned() {
                    parts.entries.insert(i, e);
                }
            }
            _ => {
                let j = p.below(n);
                if i < n && j < n {
                    parts.entries.swap(i, j);
                }
            }
        },
        7 => {
            // Another genuine tx, at its own index or at this entry's.
            let k = p.below(g.txs.len());
            if let (Some(tx), Some(e)) = (g.txs.get(k), parts.entries.get_mut(i)) {
                e.1 = tx.clone();
                if p.next().is_multiple_of(2) {
                    e.0 = k as u64 + 1;
                }
            }
        }
        8 => parts.entries.truncate(i),
        _ => {
            if p.next().is_multiple_of(2) {
                name.0 = p.nudge(name.0);
            } else {
                name.1 = p.nudge(name.1);
            }
        }
    }
}

/// Changes one field of `tx`.
fn edit_tx(p: &mut Picks<'_>, tx: &mut TxKind) {
    match tx {
        TxKind::Write { key, value } => match p.next() % 3 {
            0 => *key = p.nudge(*key),
            1 => {
                let mut v = value.to_vec();
                let at = p.below(v.len());
                if let Some(b) = v.get_mut(at) {
                    *b ^= p.flip();
                }
                *value = Arc::from(v);
            }
            _ => {
                let mut v = value.to_vec();
                v.push(p.next());
                *value = Arc::from(v);
            }
        },
        TxKind::Evidence {
            snapshot_idx,
            digest,
        } => {
            if p.next().is_multiple_of(2) {
                *snapshot_idx = p.nudge(*snapshot_idx);
            } else {
                digest[p.below(32)] ^= p.flip();
            }
        }
        TxKind::Signature(s) => match p.next() % 4 {
            0 => s.sig_idx = p.nudge(s.sig_idx),
            1 => s.root[p.below(32)] ^= p.flip(),
            2 => s.key_id[p.below(8)] ^= p.flip(),
            _ => s.signature[p.below(64)] ^= p.flip(),
        },
    }
}

/// Turns entry `i` into a signature tx over the right root, signed with a key nobody
/// trusts: what a forger without the node's key can do at best.
fn resign(p: &mut Picks<'_>, parts: &mut ChunkParts, i: usize) {
    let untrusted = Ledger::seed_key(FUZZ_LEDGER_SEED ^ u64::from(p.flip()));
    let mut tree = parts.frontier.clone();
    for (idx, tx) in parts.entries.iter().take(i) {
        tree.push(tx.leaf(*idx));
    }
    if let Some((idx, tx)) = parts.entries.get_mut(i) {
        *tx = TxKind::Signature(sign_root(&untrusted, *idx, &tree.root()));
    }
}

/// Ledger chunk target (see the module docs).
pub fn ledger_chunk(data: &[u8]) -> Result<(), FuzzFailure> {
    let g = genuine_ledger()?;
    let mut p = Picks { data };
    let which = p.below(g.chunks.len());
    let Some((start, end, bytes)) = g.chunks.get(which) else {
        return Err(fail("no genuine chunks".into()));
    };
    let place = match p.next() % 3 {
        0 => Place::Alone,
        1 => Place::Sealed,
        _ => Place::Open,
    };
    let mut parts = ChunkParts::decode(bytes).map_err(|e| {
        fail(format!(
            "the genuine chunk {start}..={end} does not decode: {e}"
        ))
    })?;
    let mut name = (*start, *end);
    let mut raw: Vec<(u64, u8)> = Vec::new();
    let mut cut = None;
    let mut steps = 0;
    while !p.is_empty() && steps < MAX_LEDGER_STEPS {
        steps += 1;
        match p.next() % 8 {
            0 => raw.push((p.nudge(0), p.flip())),
            1 => cut = Some(p.nudge(0)),
            _ => edit(&mut p, g, &mut parts, &mut name),
        }
    }
    let mut file = parts.encode();
    for (at, x) in raw {
        let len = file.len() as u64;
        if let Some(b) = file.get_mut((at % len.max(1)) as usize) {
            *b ^= x;
        }
    }
    if let Some(c) = cut {
        file.truncate((c % (file.len() as u64 + 1)) as usize);
    }
    verified_is_genuine(g, &file, name)?;
    if place != Place::Alone {
        opened_is_genuine(g, which, &file, name, place)?;
    }
    Ok(())
}

/// Property 1: a chunk that verifies (under its name's range, and with none) is genuine.
fn verified_is_genuine(
    g: &GenuineLedger,
    file: &[u8],
    name: (u64, u64),
) -> Result<(), FuzzFailure> {
    let key = Ledger::seed_key(FUZZ_LEDGER_SEED).verifying_key();
    for range in [Some(name), None] {
        let Ok(v) = verify_chunk(file, &[key], range) else {
            continue;
        };
        let parts = ChunkParts::decode(file)
            .map_err(|e| fail(format!("verifies ({range:?}) but does not decode: {e}")))?;
        let genuine_frontier = v
            .start
            .checked_sub(1)
            .and_then(|k| usize::try_from(k).ok().and_then(|k| g.frontiers.get(k)));
        if genuine_frontier != Some(&v.start_frontier) {
            return Err(fail(format!(
                "a chunk starting at {} with a frontier of {} leaves that is not the genuine one \
                 verifies ({range:?})",
                v.start,
                v.start_frontier.len()
            )));
        }
        for (idx, tx) in &parts.entries {
            if genuine_tx(g, *idx) != Some(tx) {
                return Err(fail(format!(
                    "a chunk verifies ({range:?}) whose tx {idx} is not the genuine one: {tx:?}"
                )));
            }
        }
    }
    Ok(())
}

fn genuine_tx(g: &GenuineLedger, idx: u64) -> Option<&TxKind> {
    g.txs.get(usize::try_from(idx.checked_sub(1)?).ok()?)
}

/// Property 2: a ledger directory holding the genuine chunks before `which` and the forged
/// one (as a sealed chunk named after `name`, or as the open chunk) either is refused, or
/// opens as a prefix of the genuine history: every tx it reads back genuine, the next root
/// it signs the genuine one.
fn opened_is_genuine(
    g: &GenuineLedger,
    which: usize,
    file: &[u8],
    name: (u64, u64),
    place: Place,
) -> Result<(), FuzzFailure> {
    let sim = SimFs::new(FUZZ_LEDGER_SEED);
    let dir = Path::new(DIR);
    for (start, end, bytes) in g.chunks.iter().take(which) {
        let genuine = ChunkName::Committed {
            start: *start,
            end: *end,
        };
        sim.plant_file(dir, &genuine.file_name(), bytes, true);
    }
    let forged = match place {
        Place::Open => ChunkName::Open { start: name.0 },
        _ => ChunkName::Committed {
            start: name.0,
            end: name.1,
        },
    };
    sim.plant_file(dir, &forged.file_name(), file, true);
    let Ok(disk) = DiskLedger::open(&sim, dir, Ledger::seed_key(FUZZ_LEDGER_SEED), 1) else {
        return Ok(());
    };
    let (base, commit) = (disk.base(), disk.commit_idx());
    let mut bad = None;
    let seen = disk
        .for_each(base + 1, commit, |idx, tx| {
            if bad.is_none() && genuine_tx(g, idx) != Some(tx) {
                bad = Some(idx);
            }
        })
        .map_err(|e| fail(format!("opened ({place:?} {name:?}), then unreadable: {e}")))?;
    if let Some(idx) = bad {
        return Err(fail(format!(
            "opened ({place:?} {name:?}) holding a tx {idx} that is not the genuine one"
        )));
    }
    if seen != commit - base {
        return Err(fail(format!(
            "opened ({place:?} {name:?}) with txs {base}..={commit}, but {seen} read back"
        )));
    }
    let genuine_root = usize::try_from(commit)
        .ok()
        .and_then(|c| g.frontiers.get(c))
        .map(Frontier::root);
    if genuine_root != Some(disk.append_signature().root) {
        return Err(fail(format!(
            "opened ({place:?} {name:?}) at {commit}, signing a root that is not the genuine one"
        )));
    }
    Ok(())
}
