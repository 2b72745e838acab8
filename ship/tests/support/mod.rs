//! What the ship tests (the `local` and `s3` binaries) share: real signed snapshots in a real
//! store, and a local remote; the S3 server, a misbehaving proxy and what the fault tests
//! check.
#![allow(dead_code)] // each binary uses a part of it

pub(crate) mod check;
pub(crate) mod chunked;
pub(crate) mod faulty;
pub(crate) mod moto;
pub(crate) mod proxy;
pub(crate) mod s3;
pub(crate) mod sweep_on_put;

use std::path::Path;
use std::sync::Arc;

use snapseal_persist::fs::RealFs;
use snapseal_persist::internals::format::{body_digest, Header, HEADER_LEN};
use snapseal_persist::internals::receipt::Receipt;
use snapseal_persist::internals::PersistRequest;
use snapseal_persist::receipt::{leaf_hash, sign_root, Ed25519Verifier, MerkleTree};
use snapseal_persist::{Claims, Flags};
use snapseal_persist::{Hash, SigningKey, SnapshotName, SnapshotStore, StoreOptions};
use snapseal_ship::{Remote, RemoteOptions};

/// The ledger's signing key (trusted).
pub(crate) fn key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

/// A key nobody trusts.
pub(crate) fn untrusted_key() -> SigningKey {
    SigningKey::from_bytes(&[8u8; 32])
}

fn tx_digest(i: u64) -> Hash {
    *blake3::hash(&i.to_le_bytes()).as_bytes()
}

/// A receipt for `claims` at `evidence_idx`, signed by `key`.
pub(crate) fn receipt(evidence_idx: u64, claims: Hash, key: &SigningKey) -> Vec<u8> {
    let len = evidence_idx + 2;
    let mut tree = MerkleTree::new();
    for i in 1..=len {
        let c = if i == evidence_idx { claims } else { [0; 32] };
        tree.push(leaf_hash(&tx_digest(i), &c));
    }
    let sig_idx = len + 1;
    let root = tree.root(sig_idx - 1).unwrap();
    Receipt::prove(
        &tree,
        evidence_idx,
        tx_digest(evidence_idx),
        claims,
        sign_root(key, sig_idx, &root),
    )
    .unwrap()
    .encode()
    .unwrap()
}

/// A body of `len` bytes depending on `idx`.
pub(crate) fn body(idx: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64).wrapping_mul(31).wrapping_add(idx * 7) as u8)
        .collect()
}

/// The store options trusting [`key`].
pub(crate) fn options() -> StoreOptions {
    let mut o = StoreOptions::new(Arc::new(Ed25519Verifier::new(vec![key().verifying_key()])));
    o.keep_last = 100;
    o
}

/// Opens a store in `dir`.
pub(crate) fn store(dir: &Path) -> Arc<SnapshotStore> {
    Arc::new(SnapshotStore::open(Arc::new(RealFs::new()), dir, options()).unwrap())
}

/// Persists snapshot `idx` (evidence `idx + 1`) of `len` bytes, signed by `key`.
pub(crate) fn persist_signed(
    store: &SnapshotStore,
    idx: u64,
    len: usize,
    key: &SigningKey,
) -> SnapshotName {
    let body = body(idx, len);
    let digest = body_digest(&body);
    let claims = Claims {
        idx,
        flags: Flags::NONE,
        body_len: body.len() as u64,
        raw_len: body.len() as u64,
        body_digest: digest,
    }
    .digest();
    let receipt = receipt(idx + 1, claims, key);
    store
        .persist(&PersistRequest {
            idx,
            evidence_idx: idx + 1,
            flags: Flags::NONE,
            raw_len: body.len() as u64,
            body_digest: digest,
            body: &body,
            receipt: &receipt,
        })
        .unwrap()
        .name
}

/// Writes snapshot `idx` (evidence `idx + 1`) with a body of `body_len` zero bytes, signed by
/// the trusted key, straight into the store directory `dir` as a committed file whose body is
/// a hole: a valid snapshot of any size that costs neither the memory nor the disk of its
/// body to make.
pub(crate) fn write_sparse_committed(dir: &Path, idx: u64, body_len: u64) -> SnapshotName {
    use std::os::unix::fs::FileExt;
    let mut hasher = blake3::Hasher::new();
    let zeros = vec![0u8; 1 << 20];
    let mut left = body_len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        hasher.update(&zeros[..n]);
        left -= n as u64;
    }
    let digest = *hasher.finalize().as_bytes();
    let claims = Claims {
        idx,
        flags: Flags::NONE,
        body_len,
        raw_len: body_len,
        body_digest: digest,
    };
    let receipt = receipt(idx + 1, claims.digest(), &key());
    let header = Header {
        idx,
        evidence_idx: idx + 1,
        flags: Flags::NONE,
        body_len,
        receipt_len: receipt.len() as u64,
        raw_len: body_len,
        body_digest: digest,
        receipt_digest: *blake3::hash(&receipt).as_bytes(),
    };
    let name = SnapshotName::parse(&format!("snapshot_{idx}_{}.committed", idx + 1)).unwrap();
    let file = std::fs::File::create(dir.join(name.file_name())).unwrap();
    file.write_all_at(&header.encode(), 0).unwrap();
    file.write_all_at(&receipt, HEADER_LEN as u64 + body_len)
        .unwrap();
    file.sync_all().unwrap();
    name
}

/// Persists snapshot `idx` signed by the trusted key.
pub(crate) fn persist(store: &SnapshotStore, idx: u64, len: usize) -> SnapshotName {
    persist_signed(store, idx, len, &key())
}

/// The `file://` URL of `dir`.
pub(crate) fn file_url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

/// A local remote at `dir`.
pub(crate) fn local_remote(dir: &Path) -> Arc<Remote> {
    Arc::new(Remote::open(&file_url(dir), &RemoteOptions::default()).unwrap())
}

/// The bytes of committed file `name` in `dir`.
pub(crate) fn file_bytes(dir: &Path, name: &SnapshotName) -> Vec<u8> {
    std::fs::read(dir.join(name.file_name())).unwrap()
}
