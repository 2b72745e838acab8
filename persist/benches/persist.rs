//! snapseal's verify against its floor, on the same bytes in the same run. (Persist against
//! its floor and a peer crate is `benches/persist_peers.rs` at the workspace root.)
//!
//! - `verify/ours` (verify_bytes of a whole 256 MiB file: header, receipt, Ed25519, body
//!   digest) vs `verify/blake3` (BLAKE3 of the same body alone); both hash with
//!   `update_rayon`.
//!
//! - `chunked/*` (a 64 MiB state committed to a real directory): `plain_full` a plain
//!   snapshot, `chunked_full` the first chunked one (every chunk new), `chunked_one_percent`
//!   a chunked one after 1% of the bytes changed in one contiguous range (a different range
//!   each iteration). The bytes the 1% snapshot wrote against a full one are printed once.
//!
//! - `chunked-goals` (not a divan row: ratios within one run, see `chunked/goals.rs`): the
//!   chunked-snapshot goals of issue 24 on a paged state handed out as frozen chunks.
//!
//! Run with `cargo bench -p snapseal-persist --bench persist`; the goals with
//! `cargo bench -p snapseal-persist --bench persist -- chunked-goals [MiB [page KiB]]`.

use std::sync::Arc;

use divan::Bencher;
use ed25519_dalek::SigningKey;
use snapseal_persist::internals::format::{body_digest, Header};
use snapseal_persist::internals::receipt::Receipt;
use snapseal_persist::internals::verify_bytes;
use snapseal_persist::receipt::{leaf_hash, sign_root, Ed25519Verifier, MerkleTree};
use snapseal_persist::Flags;
use snapseal_persist::Hash;
use snapseal_persist::{FileState, SnapshotName};

#[path = "chunked/goals.rs"]
mod chunked_goals;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let num = |i: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(1024);
    if let Some(i) = args.iter().position(|a| a == "chunked-goals") {
        return chunked_goals::run(num(i + 1), num(i + 2));
    }
    if let Some(i) = args.iter().position(|a| a == "chunked-rss") {
        return chunked_goals::rss(num(i + 1), num(i + 2));
    }
    divan::main();
}

const EVIDENCE: u64 = 1000;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn verifier() -> Arc<Ed25519Verifier> {
    Arc::new(Ed25519Verifier::new(vec![key().verifying_key()]))
}

/// A body, its digest and a receipt proving it at evidence index `EVIDENCE`.
struct Fixture {
    body: Vec<u8>,
    digest: Hash,
    receipt: Vec<u8>,
}

impl Fixture {
    fn new(len: usize) -> Fixture {
        let body: Vec<u8> = (0..len).map(|i| (i * 131 + i / 4099) as u8).collect();
        let digest = body_digest(&body);
        let mut tree = MerkleTree::new();
        for i in 1..=EVIDENCE + 5 {
            let claims = if i == EVIDENCE { digest } else { [0; 32] };
            let tx = *blake3::hash(&i.to_le_bytes()).as_bytes();
            tree.push(leaf_hash(&tx, &claims));
        }
        let sig_idx = EVIDENCE + 6;
        let root = tree.root(sig_idx - 1).unwrap();
        let receipt = Receipt::prove(
            &tree,
            EVIDENCE,
            *blake3::hash(&EVIDENCE.to_le_bytes()).as_bytes(),
            digest,
            sign_root(&key(), sig_idx, &root),
        )
        .unwrap()
        .encode()
        .unwrap();
        Fixture {
            body,
            digest,
            receipt,
        }
    }

    fn header(&self, idx: u64) -> Header {
        Header {
            idx,
            evidence_idx: EVIDENCE,
            flags: Flags::NONE,
            body_len: self.body.len() as u64,
            receipt_len: self.receipt.len() as u64,
            raw_len: self.body.len() as u64,
            body_digest: self.digest,
            receipt_digest: *blake3::hash(&self.receipt).as_bytes(),
        }
    }
}

#[divan::bench_group(sample_count = 5, sample_size = 1)]
mod verify {
    use super::*;

    const SIZE: usize = 256 << 20;

    fn file_bytes(fx: &Fixture) -> Vec<u8> {
        let mut bytes = fx.header(1).encode().to_vec();
        bytes.extend_from_slice(&fx.body);
        bytes.extend_from_slice(&fx.receipt);
        bytes
    }

    #[divan::bench]
    fn ours(bencher: Bencher) {
        let fx = Fixture::new(SIZE);
        let bytes = file_bytes(&fx);
        drop(fx);
        let name = SnapshotName {
            idx: 1,
            evidence_idx: EVIDENCE,
            state: FileState::Committed,
        };
        let v = verifier();
        bencher.bench_local(|| {
            verify_bytes(divan::black_box(&bytes), Some(&name), &*v)
                .unwrap()
                .header
                .body_len
        });
    }

    #[divan::bench]
    fn blake3(bencher: Bencher) {
        let fx = Fixture::new(SIZE);
        let bytes = file_bytes(&fx);
        drop(fx);
        let body = &bytes[snapseal_persist::internals::format::HEADER_LEN..][..SIZE];
        bencher.bench_local(|| {
            let mut h = ::blake3::Hasher::new();
            h.update_rayon(divan::black_box(body));
            *h.finalize().as_bytes()
        });
    }
}

#[divan::bench_group(sample_count = 5, sample_size = 1)]
mod chunked {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};

    use snapseal_persist::fs::RealFs;
    use snapseal_persist::receipt::statement_receipt;
    use snapseal_persist::{BodyBuilder, MemoryBudget, SnapshotStore, SpillTarget, StoreOptions};

    use super::*;

    const SIZE: usize = 64 << 20;

    fn state() -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..SIZE)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn store(dir: &std::path::Path, chunked: bool) -> Arc<SnapshotStore> {
        let trusted =
            Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![key().verifying_key()]);
        let mut opts = StoreOptions::new(Arc::new(trusted));
        opts.chunked = chunked;
        opts.keep_last = 2;
        Arc::new(SnapshotStore::open(Arc::new(RealFs), dir, opts).unwrap())
    }

    /// Streams `state` into a body for `store` (chunked if the store is) and commits it.
    fn commit(store: &Arc<SnapshotStore>, idx: u64, state: &[u8]) {
        let target = SpillTarget {
            store: Arc::clone(store),
            idx,
            generation: idx,
            budget: MemoryBudget::new(u64::MAX),
        };
        let mut b = BodyBuilder::with_spill(None, target).unwrap();
        for piece in state.chunks(1 << 20) {
            b.write_all(piece).unwrap();
        }
        let body = b.finish().unwrap();
        let receipt = statement_receipt(&key(), &body.claims(idx), idx + 1, None).unwrap();
        body.commit(store, idx, idx + 1, &receipt).unwrap();
    }

    static IDX: AtomicU64 = AtomicU64::new(10);

    fn next_idx() -> u64 {
        IDX.fetch_add(10, Ordering::Relaxed)
    }

    #[divan::bench]
    fn plain_full(bencher: Bencher) {
        let s = state();
        let dir = tempfile::tempdir().unwrap();
        let st = store(dir.path(), false);
        bencher.bench_local(|| commit(&st, next_idx(), &s));
    }

    #[divan::bench]
    fn chunked_full(bencher: Bencher) {
        let s = state();
        bencher
            .with_inputs(|| tempfile::tempdir().unwrap())
            .bench_local_values(|dir| {
                let st = store(dir.path(), true);
                commit(&st, next_idx(), &s);
                dir
            });
    }

    #[divan::bench]
    fn chunked_one_percent(bencher: Bencher) {
        let base = state();
        let dir = tempfile::tempdir().unwrap();
        let st = store(dir.path(), true);
        commit(&st, next_idx(), &base);
        let full = st.stats().chunk_bytes_written;
        let round = AtomicU64::new(0);
        let edited = || {
            let r = round.fetch_add(1, Ordering::Relaxed);
            let mut s = base.clone();
            let len = SIZE / 100;
            let at = (r as usize * 7_919_113) % (SIZE - len);
            for b in &mut s[at..at + len] {
                *b = b.wrapping_add(1 + r as u8);
            }
            s
        };
        let before = st.stats().chunk_bytes_written;
        commit(&st, next_idx(), &edited());
        let one = st.stats().chunk_bytes_written - before;
        eprintln!(
            "chunked 1% contiguous change: {one} chunk bytes written vs {full} for a full \
             snapshot ({:.2}%)",
            one as f64 * 100.0 / full as f64
        );
        bencher
            .with_inputs(edited)
            .bench_local_values(|s| commit(&st, next_idx(), &s));
    }
}
