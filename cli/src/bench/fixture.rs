//! What the comparisons share, `snapseal bench` and the workspace's divan benches alike:
//! deterministic bytes, a real receipt for them, the committed file they make, a state source
//! that generates its bytes on the fly, and interleaved timing.

use std::io;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use snapseal_actors::{CaptureError, StateSource, StateView};
use snapseal_persist::internals::format::{body_digest, Header};
use snapseal_persist::internals::receipt::Receipt;
use snapseal_persist::receipt::{leaf_hash, sign_root, MerkleTree};
use snapseal_persist::Flags;
use snapseal_persist::{FileState, Hash, SnapshotName};

use super::BenchError;

/// Evidence index of every fixture snapshot.
pub const EVIDENCE: u64 = 1000;

/// The signing key fixtures are signed with.
pub fn key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

/// Fills `buf` with xorshift bytes continuing from `state`: cheap to make, costly to compress
/// or hash (nothing in it is shortcut-able).
pub fn fill(buf: &mut [u8], state: &mut u64) {
    let mut x = *state | 1;
    for word in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        word.copy_from_slice(&bytes[..word.len()]);
    }
    *state = x;
}

/// `len` deterministic pseudo-random bytes.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut state = seed;
    fill(&mut out, &mut state);
    out
}

/// An encoded receipt proving `digest` at evidence index [`EVIDENCE`], signed by [`key`].
pub fn receipt_for(digest: Hash) -> Result<Vec<u8>, BenchError> {
    let mut tree = MerkleTree::new();
    let tx = |i: u64| *blake3::hash(&i.to_le_bytes()).as_bytes();
    for i in 1..=EVIDENCE + 5 {
        let claims = if i == EVIDENCE { digest } else { [0; 32] };
        tree.push(leaf_hash(&tx(i), &claims));
    }
    let sig_idx = EVIDENCE + 6;
    let root = tree
        .root(sig_idx - 1)
        .ok_or_else(|| BenchError::Setup("fixture tree has no root".into()))?;
    Receipt::prove(
        &tree,
        EVIDENCE,
        tx(EVIDENCE),
        digest,
        sign_root(&key(), sig_idx, &root),
    )
    .and_then(|r| r.encode())
    .map_err(|e| BenchError::Setup(format!("fixture receipt: {e}")))
}

/// A body of `len` bytes with its digest and receipt.
#[derive(Debug)]
pub struct Fixture {
    /// The body: [`bytes()`] of the length asked for.
    pub body: Vec<u8>,
    /// Its BLAKE3 digest.
    pub digest: Hash,
    /// A receipt proving [`digest`](Self::digest) at [`EVIDENCE`], signed by [`key`].
    pub receipt: Vec<u8>,
}

impl Fixture {
    /// A receipt proving this body as the uncompressed snapshot at `idx` (its claims digest),
    /// so the committed file verifies.
    pub fn receipt_at(&self, idx: u64) -> Result<Vec<u8>, BenchError> {
        let claims = snapseal_persist::Claims {
            idx,
            flags: snapseal_persist::Flags::NONE,
            body_len: self.body.len() as u64,
            raw_len: self.body.len() as u64,
            body_digest: self.digest,
        };
        receipt_for(claims.digest())
    }

    /// A body of `len` bytes (seeded by its length) with its digest and receipt.
    pub fn new(len: usize) -> Result<Self, BenchError> {
        let body = bytes(len, len as u64 ^ 0x5EED);
        let digest = body_digest(&body);
        let receipt = receipt_for(digest)?;
        Ok(Fixture {
            body,
            digest,
            receipt,
        })
    }

    /// The header of the committed file holding this body (uncompressed) and
    /// [`receipt`](Self::receipt) as snapshot `idx`: what a bare write of that file starts with.
    pub fn header(&self, idx: u64) -> Header {
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

    /// The whole committed file of snapshot `idx` in one buffer (header | body | receipt),
    /// for a peer that writes one buffer.
    pub fn file_bytes(&self, idx: u64) -> Vec<u8> {
        let mut out = self.header(idx).encode().to_vec();
        out.extend_from_slice(&self.body);
        out.extend_from_slice(&self.receipt);
        out
    }
}

/// The committed file name of fixture snapshot `idx`.
pub fn committed_name(idx: u64) -> String {
    SnapshotName {
        idx,
        evidence_idx: EVIDENCE,
        state: FileState::Committed,
    }
    .file_name()
}

/// A state of `len` bytes that exists nowhere: each view generates it on the fly in 1 MiB
/// chunks, so the node's own state costs no memory and a snapshot's memory is all ours.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GeneratedState {
    pub len: u64,
}

struct GeneratedView {
    len: u64,
    seed: u64,
}

impl StateSource for GeneratedState {
    fn capture(&self, idx: u64) -> Result<Box<dyn StateView>, CaptureError> {
        Ok(Box::new(GeneratedView {
            len: self.len,
            seed: idx,
        }))
    }
}

impl StateView for GeneratedView {
    fn write_to(&mut self, out: &mut dyn io::Write) -> io::Result<()> {
        let mut chunk = vec![0u8; 1 << 20];
        let mut left = self.len;
        let mut state = self.seed;
        while left > 0 {
            let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
            fill(&mut chunk[..n], &mut state);
            out.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        Ok(())
    }
}

/// The times (seconds) of one alternating measurement: repetition `i` of ours ran right
/// before repetition `i` of the floor or peer, so each pair saw the same moment of a noisy
/// machine and their ratio is one sample of the row's ratio.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Runs {
    /// Our time in each repetition.
    pub ours: Vec<f64>,
    /// The floor's or peer's time in each repetition.
    pub floor: Vec<f64>,
}

impl Runs {
    /// The median of ours and of the floor (what a row reports).
    pub fn medians(&self) -> (f64, f64) {
        (
            median(&mut self.ours.clone()),
            median(&mut self.floor.clone()),
        )
    }

    /// Each repetition's `ours / floor`: samples of a ratio of times.
    pub fn time_ratios(&self) -> Vec<f64> {
        self.ours
            .iter()
            .zip(&self.floor)
            .map(|(o, f)| o / f)
            .collect()
    }

    /// Each repetition's `floor / ours`: samples of a ratio of throughputs of the same work.
    pub fn rate_ratios(&self) -> Vec<f64> {
        self.ours
            .iter()
            .zip(&self.floor)
            .map(|(o, f)| f / o)
            .collect()
    }
}

/// Runs `a` and `b` alternately `reps` times each (after one untimed warm-up of each) and
/// returns every repetition's times. Alternating spreads slow phases of a noisy machine over
/// both.
pub(crate) fn alternate(
    reps: usize,
    mut a: impl FnMut() -> Result<Duration, BenchError>,
    mut b: impl FnMut() -> Result<Duration, BenchError>,
) -> Result<Runs, BenchError> {
    a()?;
    b()?;
    let mut runs = Runs::default();
    for _ in 0..reps.max(1) {
        runs.ours.push(a()?.as_secs_f64());
        runs.floor.push(b()?.as_secs_f64());
    }
    Ok(runs)
}

/// The median (upper one for an even count).
pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Times `f`.
pub(crate) fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

/// A scratch directory under the bench directory, removed (with everything in it) on drop.
pub(crate) struct WorkDir {
    path: std::path::PathBuf,
}

impl WorkDir {
    /// Creates `<base>/snapseal-bench-<what>-<pid>`.
    pub(crate) fn new(base: &std::path::Path, what: &str) -> Result<Self, BenchError> {
        let path = base.join(format!("snapseal-bench-{what}-{}", std::process::id()));
        // A leftover of a killed run of this pid is ours to replace.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(|e| BenchError::io(&path, "create", e))?;
        Ok(WorkDir { path })
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove bench directory");
        }
    }
}
