//! snapseal's verify against its floor, on the same bytes in the same run. (Persist against
//! its floor and a peer crate is `benches/persist_peers.rs` at the workspace root.)
//!
//! - `verify/ours` (verify_bytes of a whole 256 MiB file: header, receipt, Ed25519, body
//!   digest) vs `verify/blake3` (BLAKE3 of the same body alone); both hash with
//!   `update_rayon`.
//!
//! Run with `cargo bench -p snapseal-persist --bench persist`.

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

fn main() {
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
