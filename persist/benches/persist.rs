//! snapseal's persist and verify against their floors, on the same bytes in the same run.
//!
//! - `persist/ours` (SnapshotStore::persist on RealFs) vs `persist/floor` (bare
//!   openat(O_EXCL) + write + fsync + close + renameat2(NOREPLACE) + fsync(dir) of the same
//!   header|body|receipt bytes with std/nix), same temporary directory;
//! - `verify/ours` (verify_bytes of a whole 256 MiB file: header, receipt, Ed25519, body
//!   digest) vs `verify/blake3` (BLAKE3 of the same body alone); both hash with
//!   `update_rayon`.
//!
//! Files from the previous iteration are removed outside the timed section. Run with
//! `cargo bench -p snapseal-persist --bench persist` (`SNAPSEAL_BENCH_DIR` picks the
//! filesystem; default the system temp dir).

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use divan::Bencher;
use ed25519_dalek::SigningKey;
use nix::fcntl::{self, OFlag, RenameFlags};
use nix::sys::stat::Mode;
use snapseal_persist::format::{body_digest, Flags, Header};
use snapseal_persist::fs::RealFs;
use snapseal_persist::receipt::{leaf_hash, sign_root, Ed25519Verifier, MerkleTree, Receipt};
use snapseal_persist::Hash;
use snapseal_persist::{
    verify_bytes, FileState, PersistRequest, SnapshotName, SnapshotStore, StoreOptions,
};

fn main() {
    divan::main();
}

const SIZES: [usize; 4] = [4 << 10, 1 << 20, 64 << 20, 256 << 20];
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

fn committed_name(idx: u64) -> String {
    SnapshotName {
        idx,
        evidence_idx: EVIDENCE,
        state: FileState::Committed,
    }
    .file_name()
}

/// A fresh directory under `SNAPSEAL_BENCH_DIR` (default: the system temp dir), so the
/// filesystem under test can be chosen.
fn bench_dir() -> tempfile::TempDir {
    let base = std::env::var_os("SNAPSEAL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    tempfile::tempdir_in(base).unwrap()
}

/// Unique indices across iterations (a committed name is never reused).
static NEXT_IDX: AtomicU64 = AtomicU64::new(1);

/// Removes the previous iteration's file (untimed) and hands out a fresh index.
fn next_idx(dir: &Path, last: &mut Option<PathBuf>) -> u64 {
    if let Some(p) = last.take() {
        let _ = std::fs::remove_file(p);
    }
    let idx = NEXT_IDX.fetch_add(1, Ordering::Relaxed);
    *last = Some(dir.join(committed_name(idx)));
    idx
}

#[divan::bench_group(sample_count = 5, sample_size = 1)]
mod persist {
    use super::*;

    #[divan::bench(args = SIZES)]
    fn ours(bencher: Bencher, size: usize) {
        let fx = Fixture::new(size);
        let tmp = bench_dir();
        let mut opts = StoreOptions::new(verifier());
        // Retention lists but never deletes: deleting is the input closure's (untimed) job.
        opts.keep_last = usize::MAX;
        let store = SnapshotStore::open(Arc::new(RealFs), tmp.path(), opts).unwrap();
        let mut last = None;
        bencher
            .with_inputs(|| next_idx(tmp.path(), &mut last))
            .bench_local_values(|idx| {
                store
                    .persist(&PersistRequest {
                        idx,
                        evidence_idx: EVIDENCE,
                        flags: Flags::NONE,
                        raw_len: fx.body.len() as u64,
                        body_digest: fx.digest,
                        body: &fx.body,
                        receipt: &fx.receipt,
                    })
                    .unwrap()
            });
    }

    #[divan::bench(args = SIZES)]
    fn floor(bencher: Bencher, size: usize) {
        let fx = Fixture::new(size);
        let tmp = bench_dir();
        let dir = unsafe {
            OwnedFd::from_raw_fd(
                fcntl::open(
                    tmp.path(),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .unwrap(),
            )
        };
        let mut last = None;
        bencher
            .with_inputs(|| {
                let idx = next_idx(tmp.path(), &mut last);
                (idx, fx.header(idx).encode())
            })
            .bench_local_values(|(idx, header)| {
                let tmp_name = format!("snapshot_{idx}_{EVIDENCE}");
                let fd = fcntl::openat(
                    Some(dir.as_raw_fd()),
                    tmp_name.as_str(),
                    OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_WRONLY
                        | OFlag::O_CLOEXEC
                        | OFlag::O_NOFOLLOW,
                    Mode::from_bits_truncate(0o600),
                )
                .unwrap();
                let mut file = unsafe { File::from_raw_fd(fd) };
                file.write_all(&header).unwrap();
                file.write_all(&fx.body).unwrap();
                file.write_all(&fx.receipt).unwrap();
                nix::unistd::fsync(file.as_raw_fd()).unwrap();
                nix::unistd::close(file.into_raw_fd()).unwrap();
                fcntl::renameat2(
                    Some(dir.as_raw_fd()),
                    tmp_name.as_str(),
                    Some(dir.as_raw_fd()),
                    committed_name(idx).as_str(),
                    RenameFlags::RENAME_NOREPLACE,
                )
                .unwrap();
                nix::unistd::fsync(dir.as_raw_fd()).unwrap();
            });
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
        let body = &bytes[snapseal_persist::format::HEADER_LEN..][..SIZE];
        bencher.bench_local(|| {
            let mut h = ::blake3::Hasher::new();
            h.update_rayon(divan::black_box(body));
            *h.finalize().as_bytes()
        });
    }
}
