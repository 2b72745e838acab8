//! Trusted keys: the `node.pub` file the demo writes and `--key` reads.
//!
//! Format: text, one Ed25519 public key per line as 64 hex digits (the 32-byte compressed
//! point). Blank lines and lines starting with `#` are ignored, so one file may list several
//! trusted keys. The demo writes a single line.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use ed25519_dalek::VerifyingKey;
use snapseal::persist::receipt::{key_id, Ed25519Verifier, ReceiptVerifier};

use crate::cli::output::hex;
use crate::cli::safe_open;

/// Name of the public key file the demo writes next to its snapshots.
pub(super) const NODE_PUB: &str = "node.pub";

/// The text of a key file holding `key`.
pub(super) fn encode(key: &VerifyingKey) -> String {
    format!("{}\n", hex(key.as_bytes()))
}

/// Parses a key file's text; `path` names it in errors (with the line number).
pub(super) fn decode(text: &str, path: &Path) -> anyhow::Result<Vec<VerifyingKey>> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("{}:{}", path.display(), n + 1);
        let bytes = snapseal::persist::hash_from_hex(line)
            .with_context(|| format!("{}: expected 64 hex digits (an Ed25519 public key)", at()))?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: not a valid Ed25519 public key: {e}", at()))?;
        keys.push(key);
    }
    if keys.is_empty() {
        bail!("{}: no key in the file", path.display());
    }
    Ok(keys)
}

/// Reads one key file the user named (`--key`): see [`safe_open`] (a symbolic link is
/// refused).
pub(super) fn read(path: &Path) -> anyhow::Result<Vec<VerifyingKey>> {
    let bytes = safe_open::read_path(path, safe_open::KEY_FILE)?;
    decode(&key_text(bytes, path)?, path)
}

/// Reads `dir/node.pub` relative to the directory (see [`safe_open`]); `None` when missing.
pub(super) fn read_node_pub(dir: &Path) -> anyhow::Result<Option<Vec<VerifyingKey>>> {
    let path = dir.join(NODE_PUB);
    match safe_open::read_in_dir(dir, NODE_PUB, safe_open::KEY_FILE)? {
        Some(bytes) => decode(&key_text(bytes, &path)?, &path).map(Some),
        None => Ok(None),
    }
}

fn key_text(bytes: Vec<u8>, path: &Path) -> anyhow::Result<String> {
    String::from_utf8(bytes).with_context(|| format!("key file {} is not text", path.display()))
}

/// Writes `key` to `dir/node.pub` (must not exist yet), fsyncs it and the directory.
pub(super) fn write_node_pub(dir: &Path, key: &VerifyingKey) -> anyhow::Result<PathBuf> {
    let path = dir.join(NODE_PUB);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(encode(key).as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    sync_dir(dir)?;
    Ok(path)
}

/// fsync of a directory, so a new entry in it survives a crash.
pub(super) fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync of directory {}", dir.display()))
}

/// The trusted keys: every `--key` file, or `default_dir/node.pub` when none was given.
pub(super) struct Trusted {
    /// The keys.
    pub keys: Vec<VerifyingKey>,
    /// The files they came from.
    pub files: Vec<PathBuf>,
}

impl Trusted {
    /// Loads `--key` files, falling back to `default_dir/node.pub`.
    pub(super) fn load(key_files: &[PathBuf], default_dir: &Path) -> anyhow::Result<Trusted> {
        if key_files.is_empty() {
            let default = default_dir.join(NODE_PUB);
            let Some(keys) = read_node_pub(default_dir)? else {
                bail!(
                    "no trusted key: {} does not exist; pass --key FILE (hex Ed25519 public \
                     key, as the demo writes to node.pub)",
                    default.display()
                );
            };
            return Ok(Trusted {
                keys,
                files: vec![default],
            });
        }
        let mut keys = Vec::new();
        for f in key_files {
            keys.extend(read(f)?);
        }
        Ok(Trusted {
            keys,
            files: key_files.to_vec(),
        })
    }

    /// A verifier trusting exactly these keys, for both built-in receipt schemes (Merkle roots
    /// and signed statements). One key may serve both: the scheme id is in the signed protected
    /// header, so a signature made for one scheme never verifies as the other.
    pub(super) fn verifier(&self) -> Arc<dyn ReceiptVerifier> {
        Arc::new(Ed25519Verifier::new(self.keys.clone()).with_statement_keys(self.keys.clone()))
    }

    /// Hex key ids (how receipts name their signer).
    pub(super) fn key_ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| hex(&key_id(k))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use snapseal_sim::ledger::Ledger;

    #[test]
    fn encode_then_decode_gives_the_key_back() {
        let key = Ledger::from_seed(7).verifying_key();
        let text = format!("# the demo node\n\n{}", encode(&key));
        assert_eq!(decode(&text, Path::new("k")).unwrap(), vec![key]);
    }

    #[test]
    fn bad_lines_are_named_with_their_line_number() {
        let e = format!("{:#}", decode("# c\nzz\n", Path::new("k.pub")).unwrap_err());
        assert!(e.contains("k.pub:2") && e.contains("64 hex digits"), "{e}");
        let e = format!("{:#}", decode("", Path::new("k.pub")).unwrap_err());
        assert!(e.contains("no key"), "{e}");
        let not_hex = "g".repeat(64);
        assert!(decode(&not_hex, Path::new("k")).is_err());
        let signed = format!("+{}", "f".repeat(63));
        assert!(
            decode(&signed, Path::new("k")).is_err(),
            "a sign is not a hex digit"
        );
    }
}
