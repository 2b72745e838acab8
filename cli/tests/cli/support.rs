//! What the command tests share: run the built `snapseal` binary, make a demo directory,
//! damage files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use snapseal::persist::{FileState, SnapshotName};

/// What one run of the binary did.
#[derive(Debug)]
pub(crate) struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Stdout parsed as JSON.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// Asserts the exit code, showing the output when it differs.
    pub(crate) fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs `snapseal args...` (stdout is a pipe, so no progress bars; RUST_LOG cleared).
pub(crate) fn snapseal<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_snapseal"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run the snapseal binary");
    Run {
        // A signal death has no code; -1 never matches an expected one.
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The small demo the tests share: a few seconds at most in a debug build.
pub(crate) const SMALL_DEMO: [&str; 6] =
    ["--txs", "3000", "--tx-interval", "500", "--sig-every", "50"];

/// A temp dir holding a finished small demo in `<tmp>/snap`.
pub(crate) fn demo_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snap");
    let mut args = vec!["demo".to_string(), "--quiet".into(), "--dir".into()];
    args.push(dir.display().to_string());
    args.extend(SMALL_DEMO.iter().map(|s| s.to_string()));
    snapseal(&args).expect(0);
    (tmp, dir)
}

/// Committed snapshot files (regular files only) in `dir`, oldest first (by idx, then
/// evidence_idx).
pub(crate) fn committed(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<SnapshotName> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .filter_map(|e| SnapshotName::parse_os(&e.file_name()))
        .filter(|n| n.state == FileState::Committed)
        .collect();
    names.sort();
    names.iter().map(|n| dir.join(n.file_name())).collect()
}

/// Every name in `dir`.
pub(crate) fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Flips every bit of the byte at `offset`.
pub(crate) fn flip_byte(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

/// Hex public key file text for the demo key of `seed`.
pub(crate) fn key_file_text(seed: u64) -> String {
    let key = snapseal_ledger::ledger::Ledger::from_seed(seed).verifying_key();
    key.as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        + "\n"
}

/// Copies the committed `file` into `into` with its header's `idx` lowered by one (checksum
/// recomputed) under the name that matches: every check passes but the receipt's, whose
/// claims digest is for the old `idx`. Returns the new path.
pub(crate) fn relabelled(file: &Path, into: &Path) -> PathBuf {
    use snapseal::persist::internals::format::{Header, HEADER_LEN};
    let mut bytes = std::fs::read(file).unwrap();
    let mut header = Header::decode(&bytes).unwrap();
    header.idx -= 1;
    bytes[..HEADER_LEN].copy_from_slice(&header.encode());
    let path = into.join(format!(
        "snapshot_{}_{}.committed",
        header.idx, header.evidence_idx
    ));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A committed file whose body is `body_len` zero bytes (a hole: no disk used), with a signed
/// statement by the demo key of `seed` as its receipt: it verifies against `node.pub` of that
/// seed. Returns its path and the receipt with its offset (to put it back after a truncation).
pub(crate) fn sparse_signed_snapshot(
    dir: &Path,
    seed: u64,
    body_len: u64,
) -> (PathBuf, Vec<u8>, u64) {
    sparse_signed_snapshot_at(dir, seed, body_len, 10)
}

/// [`sparse_signed_snapshot`] at snapshot index `idx` (evidence at `idx + 1`).
pub(crate) fn sparse_signed_snapshot_at(
    dir: &Path,
    seed: u64,
    body_len: u64,
    idx: u64,
) -> (PathBuf, Vec<u8>, u64) {
    use std::os::unix::fs::FileExt;

    use snapseal::persist::internals::format::{Header, HEADER_LEN};
    use snapseal::persist::internals::receipt::SignedStatement;
    use snapseal::persist::Flags;

    let zeros = vec![0u8; 1 << 20];
    let mut hasher = blake3::Hasher::new();
    let mut left = body_len;
    while left > 0 {
        let n = left.min(zeros.len() as u64);
        hasher.update(&zeros[..n as usize]);
        left -= n;
    }
    let evidence_idx = idx + 1;
    let mut header = Header {
        idx,
        evidence_idx,
        flags: Flags::from_bits(0).unwrap(),
        body_len,
        receipt_len: 0,
        raw_len: body_len,
        body_digest: *hasher.finalize().as_bytes(),
        receipt_digest: [0; 32],
    };
    let key = snapseal_ledger::ledger::Ledger::seed_key(seed);
    let receipt = SignedStatement::sign(&key, &header.claims(), evidence_idx, None)
        .unwrap()
        .encode()
        .unwrap();
    header.receipt_len = receipt.len() as u64;
    header.receipt_digest = *blake3::hash(&receipt).as_bytes();
    let path = dir.join(format!("snapshot_{idx}_{evidence_idx}.committed"));
    let f = std::fs::File::create(&path).unwrap();
    f.write_all_at(&header.encode(), 0).unwrap();
    let at = HEADER_LEN as u64 + body_len;
    f.write_all_at(&receipt, at).unwrap();
    (path, receipt, at)
}
