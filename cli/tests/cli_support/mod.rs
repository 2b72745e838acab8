//! Helpers shared by the `cli_*` tests: run the built `snapseal` binary, make a demo
//! directory, damage files. Included with `mod cli_support;` (a directory module, so cargo
//! does not build it as a test target of its own).
#![allow(dead_code)] // each test binary uses a different part of it

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
    let key = snapseal_sim::ledger::Ledger::from_seed(seed).verifying_key();
    key.as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        + "\n"
}
