//! Shared by the resident-memory test (`reader_rss`) and bench (`benches/restart_rss.rs`): a
//! store on a real directory holding one large snapshot of incompressible bytes, and the
//! process's resident set from `/proc/self/status`.

#![allow(dead_code)] // each user takes what it needs

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use snapseal_persist::fs::RealFs;
use snapseal_persist::receipt::{statement_receipt, Ed25519Verifier};
use snapseal_persist::{BodyBuilder, SigningKey, SnapshotStore, StoreOptions};

/// The key the snapshots are signed with.
pub(crate) fn key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

/// A store in `dir` trusting statements signed by [`key`].
pub(crate) fn open_store(dir: &Path) -> SnapshotStore {
    let trusted = Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![key().verifying_key()]);
    SnapshotStore::open(Arc::new(RealFs), dir, StoreOptions::new(Arc::new(trusted))).unwrap()
}

/// `len` pseudo-random bytes (xorshift64): nothing for zstd to squeeze, so a compressed body
/// is as large as the state.
pub(crate) struct Noise {
    left: u64,
    x: u64,
}

impl Noise {
    pub(crate) fn new(len: u64) -> Noise {
        Noise {
            left: len,
            x: 0x9e37_79b9_7f4a_7c15,
        }
    }
}

impl Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        for chunk in buf[..n].chunks_mut(8) {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            chunk.copy_from_slice(&self.x.to_le_bytes()[..chunk.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Commits snapshot `idx` of `len` noise bytes (zstd at `compression`, if given) into `store`
/// (the body is built in memory: take the peak after this) and returns the BLAKE3 digest of
/// the state.
pub(crate) fn commit_noise(
    store: &SnapshotStore,
    idx: u64,
    len: u64,
    compression: Option<i32>,
) -> blake3::Hash {
    let mut body = BodyBuilder::new(compression).unwrap();
    let mut hasher = blake3::Hasher::new();
    let mut noise = Noise::new(len);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = noise.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        body.write_all(&buf[..n]).unwrap();
    }
    let body = body.finish().unwrap();
    let receipt = statement_receipt(&key(), &body.claims(idx), idx + 1, None).unwrap();
    body.commit(store, idx, idx + 1, &receipt).unwrap();
    hasher.finalize()
}

/// `(VmRSS, VmHWM)` of this process, in KiB.
pub(crate) fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/self/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the peak (`VmHWM`) to the current resident set (Linux >= 4.0) and returns that, in
/// KiB, so that the next [`rss_kib`] peak says how much a step added.
pub(crate) fn reset_peak() -> u64 {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM via /proc/self/clear_refs");
    rss_kib().0
}

/// Reads `reader` to its end through a 64 KiB buffer, returning the BLAKE3 digest of what it
/// read and how many bytes.
pub(crate) fn digest_of(reader: &mut dyn Read) -> io::Result<(blake3::Hash, u64)> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0u64;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok((hasher.finalize(), total)),
            Ok(n) => {
                hasher.update(&buf[..n]);
                total += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
