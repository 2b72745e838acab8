//! Trusted keys: the `node.pub` file the demo (and `import --key`) writes and `--key` reads,
//! and the one answer every command gives when it has none ([`no_trusted_key`]).
//!
//! Format: text, one Ed25519 public key per line as 64 hex digits (the 32-byte compressed
//! point). Blank lines and lines starting with `#` are ignored, so one file may list several
//! trusted keys. The demo writes a single line.
//!
//! Which keys a command trusts ([`Trusted::load`]): the `--key` files when any is given (then
//! `node.pub` is not even read, so a damaged one never blocks an explicit key); otherwise
//! `DIR/node.pub`. A missing `node.pub` (or a missing DIR) is [`no_trusted_key`]; an empty or
//! malformed one is an error naming it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use ed25519_dalek::VerifyingKey;
use snapseal::persist::fs::{FileSystem, RealFs};
use snapseal::persist::internals::fs::{publish, write_pending, DirHandle, DurableError};
use snapseal::persist::internals::receipt::key_id;
use snapseal::persist::receipt::{Ed25519Verifier, ReceiptVerifier};

use crate::cli::exit;
use crate::cli::output::{hex, Escaped};
use crate::cli::safe_open;

/// Name of the public key file the demo writes next to its snapshots.
pub(super) const NODE_PUB: &str = "node.pub";

/// Where `node.pub` is written before it gets its name: a failed or interrupted write leaves
/// at most this, never a partial `node.pub`. A stale one (a crash before the rename) is
/// removed by the next write of `node.pub`.
pub(super) const NODE_PUB_PENDING: &str = "node.pub.pending";

/// The error of a command that needs a key and has none: the same words everywhere.
pub(super) fn no_trusted_key(dir: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "no trusted key: pass --key FILE or put {NODE_PUB} in {}",
        Escaped::path(dir)
    )
}

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
        let at = || format!("key file {}:{}", Escaped::path(path), n + 1);
        let bytes = snapseal::persist::internals::hash_from_hex(line)
            .with_context(|| format!("{}: expected 64 hex digits (an Ed25519 public key)", at()))?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: not a valid Ed25519 public key: {e}", at()))?;
        keys.push(key);
    }
    if keys.is_empty() {
        let what = if text.is_empty() {
            "is empty"
        } else {
            "holds no key"
        };
        bail!(
            "key file {} {what} (a key file has one hex Ed25519 public key per line); \
             fix or remove it, or pass --key FILE",
            Escaped::path(path)
        );
    }
    Ok(keys)
}

/// Reads one key file the user named (`--key`); a symbolic link is refused.
pub(super) fn read(path: &Path) -> anyhow::Result<Vec<VerifyingKey>> {
    let bytes = safe_open::read_path(path, safe_open::KEY_FILE)?;
    decode(&key_text(bytes, path)?, path)
}

/// Reads `dir/node.pub` relative to the directory; `None` when it, or `dir` itself, does not
/// exist. An empty or malformed file is an error naming it.
pub(super) fn read_node_pub(dir: &Path) -> anyhow::Result<Option<Vec<VerifyingKey>>> {
    let handle = match RealFs::new().open_dir(dir, false) {
        Ok(handle) => handle,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(
                anyhow::Error::new(e).context(format!("opening directory {}", Escaped::path(dir)))
            )
        }
    };
    let path = dir.join(NODE_PUB);
    match safe_open::read_in(&*handle, NODE_PUB, safe_open::KEY_FILE)? {
        Some(bytes) => decode(&key_text(bytes, &path)?, &path).map(Some),
        None => Ok(None),
    }
}

fn key_text(bytes: Vec<u8>, path: &Path) -> anyhow::Result<String> {
    String::from_utf8(bytes)
        .with_context(|| format!("key file {} is not text", Escaped::path(path)))
}

/// Writes `key` to `dir/node.pub` (which must not exist yet), crash-safe: see
/// [`write_node_pub_in`].
pub(super) fn write_node_pub(dir: &Path, key: &VerifyingKey) -> anyhow::Result<PathBuf> {
    let handle = RealFs::new()
        .open_dir(dir, false)
        .with_context(|| format!("opening directory {}", Escaped::path(dir)))?;
    write_node_pub_in(&*handle, key)?;
    Ok(dir.join(NODE_PUB))
}

/// Writes `key` to `node.pub` in `dir`: the text goes to `node.pub.pending` (created
/// exclusively, written, fsynced, closed), which is then renamed without replacing to
/// `node.pub` and the directory fsynced (`persist::fs::{write_pending, publish}`). An existing
/// `node.pub` is never replaced. After any failure there is no `node.pub` of this call: the
/// pending file is removed, and so is the new name when the directory fsync after the rename
/// failed (its entry might not survive a crash, and a later fsync would prove nothing).
pub(super) fn write_node_pub_in(dir: &dyn DirHandle, key: &VerifyingKey) -> anyhow::Result<()> {
    let text = encode(key);
    let path = dir.path().join(NODE_PUB);
    let pending = dir.path().join(NODE_PUB_PENDING);
    if let Err(e) = write_pending(
        dir,
        NODE_PUB_PENDING,
        &mut text.as_bytes(),
        text.len() as u64,
        &mut |_| {},
    ) {
        remove(dir, NODE_PUB_PENDING);
        return Err(anyhow::Error::new(e).context(format!("writing {}", Escaped::path(&pending))));
    }
    if let Err(e) = publish(dir, NODE_PUB_PENDING, NODE_PUB) {
        if e.step == "fsync of the directory" {
            remove(dir, NODE_PUB);
        } else {
            remove(dir, NODE_PUB_PENDING);
        }
        return Err(anyhow::Error::new(e).context(format!(
            "publishing {} as {}",
            Escaped::path(&pending),
            Escaped::path(&path)
        )));
    }
    Ok(())
}

/// For a command given `--key` that brings snapshots into `dir` (`import`): makes the key
/// `dir/node.pub` when `dir` has none, so the other commands find it; returns its path when it
/// wrote one. Only a single key is written (of several, which to trust by default is the
/// operator's choice). An existing `node.pub`, good or bad, is left as it is and never blocks
/// the command: it is only read when no `--key` is given (a bad one is named in a warning).
/// Whether it exists is decided by the rename that would publish it (no check-then-write).
// `import --key` is to call this instead of reading node.pub (which a damaged node.pub would
// make fail); until it does, only the tests do.
#[allow(dead_code)]
pub(super) fn adopt(dir: &Path, trusted: &Trusted) -> anyhow::Result<Option<PathBuf>> {
    let [key] = trusted.keys[..] else {
        return Ok(None);
    };
    match write_node_pub(dir, &key) {
        Ok(path) => Ok(Some(path)),
        Err(e) if is_already_there(&e) => {
            if let Err(bad) = read_node_pub(dir) {
                tracing::warn!(
                    error = %exit::chain(&bad),
                    "kept the existing node.pub; commands run without --key refuse it until \
                     it is fixed or removed"
                );
            }
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The publishing rename found a `node.pub` already there.
#[allow(dead_code)] // see `adopt`
fn is_already_there(e: &anyhow::Error) -> bool {
    e.downcast_ref::<DurableError>().is_some_and(|d| {
        d.step == "rename (no replace)" && d.source.kind() == io::ErrorKind::AlreadyExists
    })
}

/// Removes what a failed write of `node.pub` left; a failure to is logged (the error that
/// caused the cleanup is the one reported).
fn remove(dir: &dyn DirHandle, name: &str) {
    match dir.unlink(name) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(
            file = %Escaped::path(&dir.path().join(name)),
            error = %e,
            "could not remove what a failed write of node.pub left"
        ),
    }
}

/// The trusted keys: every `--key` file, or `default_dir/node.pub` when none was given.
pub(super) struct Trusted {
    /// The keys.
    pub keys: Vec<VerifyingKey>,
    /// The files they came from.
    pub files: Vec<PathBuf>,
}

impl Trusted {
    /// Loads `--key` files, falling back to `default_dir/node.pub`; neither is
    /// [`no_trusted_key`].
    pub(super) fn load(key_files: &[PathBuf], default_dir: &Path) -> anyhow::Result<Trusted> {
        Trusted::optional(key_files, default_dir)?.ok_or_else(|| no_trusted_key(default_dir))
    }

    /// Like [`load`](Self::load), but `None` instead of an error when there is no key at all
    /// (for `inspect`, which checks what it can without one). A `node.pub` that is there but
    /// unusable is still an error.
    pub(super) fn optional(
        key_files: &[PathBuf],
        default_dir: &Path,
    ) -> anyhow::Result<Option<Trusted>> {
        if key_files.is_empty() {
            return Ok(read_node_pub(default_dir)?.map(|keys| Trusted {
                keys,
                files: vec![default_dir.join(NODE_PUB)],
            }));
        }
        let mut keys = Vec::new();
        for f in key_files {
            keys.extend(read(f)?);
        }
        Ok(Some(Trusted {
            keys,
            files: key_files.to_vec(),
        }))
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
    use snapseal::persist::fs::{Fault, FaultKind, Op, SimFs};
    use snapseal_ledger::ledger::Ledger;

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
        assert!(e.contains("k.pub is empty"), "{e}");
        let e = format!(
            "{:#}",
            decode("# only a comment\n", Path::new("k.pub")).unwrap_err()
        );
        assert!(e.contains("k.pub holds no key"), "{e}");
        let not_hex = "g".repeat(64);
        assert!(decode(&not_hex, Path::new("k")).is_err());
        let signed = format!("+{}", "f".repeat(63));
        assert!(
            decode(&signed, Path::new("k")).is_err(),
            "a sign is not a hex digit"
        );
    }

    fn sim_dir(fs: &SimFs) -> Arc<dyn DirHandle> {
        fs.open_dir(Path::new("/d"), true).unwrap()
    }

    /// Bug: ENOSPC while writing node.pub left a 0-byte node.pub (the file was created under
    /// its final name before the write), which every later command then tripped over.
    #[test]
    fn a_failed_write_of_node_pub_leaves_no_node_pub() {
        let key = Ledger::from_seed(3).verifying_key();
        for (op, kind) in [
            (Op::Write, FaultKind::Enospc),
            (Op::Sync, FaultKind::Eio),
            (Op::Close, FaultKind::Eio),
            (Op::Rename, FaultKind::Eio),
            (Op::SyncDir, FaultKind::Eio),
        ] {
            let fs = SimFs::new(1);
            let dir = sim_dir(&fs);
            fs.inject(Fault::always(op, kind));
            let e = format!("{:#}", write_node_pub_in(&*dir, &key).unwrap_err());
            let errno = kind.errno().map(|n| format!("os error {n}")).unwrap();
            assert!(e.contains(&errno) && e.contains("node.pub"), "{op:?}: {e}");
            fs.clear_faults();
            assert!(
                !fs.names(Path::new("/d"))
                    .iter()
                    .any(|n| n.starts_with("node.pub")),
                "{op:?} left {:?}",
                fs.names(Path::new("/d"))
            );
            // Nothing wedged: the next attempt writes it.
            write_node_pub_in(&*dir, &key).unwrap();
            assert_eq!(
                fs.read(Path::new("/d"), NODE_PUB),
                Some(encode(&key).into_bytes())
            );
        }
    }

    #[test]
    fn node_pub_survives_a_crash_once_written_and_is_never_replaced() {
        let (a, b) = (
            Ledger::from_seed(1).verifying_key(),
            Ledger::from_seed(2).verifying_key(),
        );
        let fs = SimFs::new(2);
        let dir = sim_dir(&fs);
        write_node_pub_in(&*dir, &a).unwrap();
        fs.crash();
        assert_eq!(
            fs.read(Path::new("/d"), NODE_PUB),
            Some(encode(&a).into_bytes())
        );
        let dir = sim_dir(&fs);
        let e = format!("{:#}", write_node_pub_in(&*dir, &b).unwrap_err());
        assert!(
            e.contains("File exists") || e.contains("os error 17"),
            "{e}"
        );
        assert_eq!(
            fs.read(Path::new("/d"), NODE_PUB),
            Some(encode(&a).into_bytes())
        );
        assert_eq!(fs.names(Path::new("/d")), vec![NODE_PUB.to_string()]);
    }

    #[test]
    fn adopt_writes_a_missing_node_pub_and_keeps_an_existing_one_good_or_bad() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (
            Ledger::from_seed(1).verifying_key(),
            Ledger::from_seed(2).verifying_key(),
        );
        let one = |key| Trusted {
            keys: vec![key],
            files: Vec::new(),
        };
        let path = tmp.path().join(NODE_PUB);
        assert_eq!(adopt(tmp.path(), &one(a)).unwrap(), Some(path.clone()));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), encode(&a));
        assert_eq!(adopt(tmp.path(), &one(b)).unwrap(), None);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), encode(&a));
        std::fs::write(&path, b"").unwrap();
        assert_eq!(adopt(tmp.path(), &one(b)).unwrap(), None);
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        let two = Trusted {
            keys: vec![a, b],
            files: Vec::new(),
        };
        std::fs::remove_file(&path).unwrap();
        assert_eq!(adopt(tmp.path(), &two).unwrap(), None);
        assert!(!path.exists());
        let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert!(names.is_empty(), "{names:?}");
    }

    #[test]
    fn a_missing_directory_or_node_pub_is_no_trusted_key_and_a_bad_one_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let new_dir = tmp.path().join("new");
        for dir in [tmp.path(), new_dir.as_path()] {
            let e = format!("{:#}", Trusted::load(&[], dir).err().unwrap());
            assert_eq!(
                e,
                format!(
                    "no trusted key: pass --key FILE or put node.pub in {}",
                    dir.display()
                )
            );
            assert!(Trusted::optional(&[], dir).unwrap().is_none());
        }
        std::fs::write(tmp.path().join(NODE_PUB), b"").unwrap();
        let e = format!("{:#}", Trusted::load(&[], tmp.path()).err().unwrap());
        assert!(e.contains("node.pub is empty"), "{e}");
        assert!(Trusted::optional(&[], tmp.path()).is_err());
        // An explicit key is never blocked by it.
        let key = tmp.path().join("k.pub");
        std::fs::write(&key, encode(&Ledger::from_seed(5).verifying_key())).unwrap();
        assert_eq!(Trusted::load(&[key], tmp.path()).unwrap().keys.len(), 1);
    }
}
