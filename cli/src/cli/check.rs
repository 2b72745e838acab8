//! Verifying one committed file, the way `verify`, `latest`, `gc --dry-run` and the demo all
//! do: open it relative to an open directory through `Untrusted` (no symlinks followed,
//! regular files only), verify it with `verify_file` (`pread` in pieces, so a file truncated
//! meanwhile is a read error, never `SIGBUS`, and memory does not grow with the file), and
//! turn the outcome into a [`Verdict`] with a one-line reason. [`receipt_without_key`] is the receipt step minus the
//! signature, for `inspect` without a key.

use std::io;
use std::path::{Path, PathBuf};

use snapseal::persist::fs::{FileSystem, RealFs};
use snapseal::persist::internals::format::Header;
use snapseal::persist::internals::fs::DirHandle;
use snapseal::persist::internals::{open_for_verify, verify_file_in, Standing};
use snapseal::persist::receipt::{
    Ed25519Verifier, Expected, ReceiptError, ReceiptVerifier, SchemeId,
};
use snapseal::persist::{Check, SnapshotName, VerifyError};

use crate::cli::exit;

/// What checking one file found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Every check passed.
    Verified {
        /// The decoded header.
        header: Header,
        /// The signature index the receipt proves the evidence under.
        sig_idx: u64,
        /// The signer's key id (hex).
        signer: String,
        /// The receipt scheme the file names (and was verified by).
        scheme: SchemeId,
    },
    /// The file was read and failed a check.
    Failed {
        /// The check that failed.
        check: Check,
        /// Why, in one line (without the file name).
        reason: String,
        /// What the store's retention makes of it ([`Standing::of_failure`]): `Unknown` when
        /// the only fault is a signer outside the trusted keys (left in place: a wrong key
        /// set must not destroy good snapshots), `Failed` (quarantined) otherwise.
        standing: Standing,
    },
    /// The file could not be read; nothing is known about its contents.
    Unreadable {
        /// The I/O error.
        reason: String,
    },
    /// The file disappeared between listing and reading (retention, another tool).
    Vanished,
}

impl Verdict {
    /// One word for tables and JSON: `ok`, `failed`, `unreadable`, `vanished`.
    pub(super) fn word(&self) -> &'static str {
        match self {
            Verdict::Verified { .. } => "ok",
            Verdict::Failed { .. } => "failed",
            Verdict::Unreadable { .. } => "unreadable",
            Verdict::Vanished => "vanished",
        }
    }

    /// How the store's retention treats a file with this verdict: a file that could not be
    /// read, or vanished, is `Unknown` (nothing learnt about its contents).
    pub(super) fn standing(&self) -> Standing {
        match self {
            Verdict::Verified { .. } => Standing::Verified,
            Verdict::Failed { standing, .. } => *standing,
            Verdict::Unreadable { .. } | Verdict::Vanished => Standing::Unknown,
        }
    }

    /// The reason, for anything but a verified file.
    pub(super) fn reason(&self) -> Option<String> {
        match self {
            Verdict::Verified { .. } => None,
            Verdict::Failed { reason, .. } | Verdict::Unreadable { reason } => Some(reason.clone()),
            Verdict::Vanished => Some("deleted while being checked".into()),
        }
    }
}

/// Why verification failed, without the file label (the caller prints the path): the check
/// and every cause of the failure, once each ([`exit::causes`]).
pub(super) fn reason(e: &VerifyError) -> String {
    match e {
        VerifyError::Read { source, .. } => io_reason(source),
        VerifyError::Format { check, source, .. } => {
            format!("{check} check failed: {}", exit::causes(source))
        }
        VerifyError::NameMismatch {
            field,
            from_name,
            from_header,
            ..
        } => format!(
            "{} check failed: name has {field} {from_name}, header has {from_header}",
            Check::Name
        ),
        VerifyError::Receipt { source, .. } => {
            format!("{} check failed: {}", Check::Receipt, exit::causes(source))
        }
        VerifyError::NotRegularFile { what, .. } => format!("not a regular file ({what})"),
        VerifyError::Body { source, .. } => {
            format!(
                "{} check failed: {}",
                Check::BodyEncoding,
                exit::causes(source)
            )
        }
        other => exit::causes(other),
    }
}

/// An I/O error in words (with its errno), with a hint for the surprising ones.
pub(super) fn io_reason(e: &io::Error) -> String {
    let text = exit::causes(e);
    match e.raw_os_error().map(nix::errno::Errno::from_raw) {
        Some(nix::errno::Errno::ELOOP) => format!(
            "{text} (a symlink: snapseal never follows symlinks inside a snapshot directory)"
        ),
        _ => text,
    }
}

/// Step 6 of the verification order (docs/FORMAT.md §7) without its last part: everything in
/// `receipt` that needs no key — the scheme it names, strict decoding, its evidence index and
/// claims digest against `expected` (so any change to a header field fails here), the indices'
/// order, and for a Merkle receipt the proof up to the signed root. `Ok` with the signer's key
/// id when only the signature is left unchecked; such a file is *consistent*, not verified:
/// anyone can sign a consistent receipt with a key of their own.
///
/// The built-in schemes check the signer last, after all of the above (their documented
/// order), so a verifier that trusts no key runs every other check and then refuses the
/// signer as untrusted; that refusal is the "only the signature is left" answer.
pub(super) fn receipt_without_key(
    receipt: &[u8],
    expected: &Expected,
) -> Result<String, ReceiptError> {
    let no_key = Ed25519Verifier::new(Vec::new()).with_statement_keys(Vec::new());
    match no_key.verify(receipt, expected) {
        Err(ReceiptError::UntrustedKey { key_id, .. }) => Ok(key_id),
        // Unreachable with no key trusted; if it ever were, the checks above all passed.
        Ok(v) => Ok(v.signer),
        Err(e) => Err(e),
    }
}

/// The verdict for a verification error.
fn failed(e: &VerifyError) -> Verdict {
    match e.check() {
        Some(check) => Verdict::Failed {
            check,
            reason: reason(e),
            standing: Standing::of_failure(e),
        },
        None => Verdict::Unreadable { reason: reason(e) },
    }
}

/// Reads and checks file `file_name` in an open snapshot directory; `name`, when the file has
/// one of our names, must agree with the header. The file is opened through `Untrusted` (no
/// link followed, regular files only, non-blocking) and verified with `verify_file_in` (a
/// chunked body against the directory's chunk packs): read with
/// `pread` in pieces, header and receipt before the body, so a huge junk file costs two small
/// reads, a truncation under us is a read error (never `SIGBUS`), and memory stays a few MiB
/// whatever the file's size.
fn check_file(
    dir: &dyn DirHandle,
    file_name: &str,
    name: Option<&SnapshotName>,
    verifier: &dyn ReceiptVerifier,
) -> Verdict {
    // The reader's own open: not held in memory, so no cap below what the header can describe.
    let file = match open_for_verify(dir, file_name) {
        Ok(Some(file)) => file,
        Ok(None) => return Verdict::Vanished,
        Err(e) => return failed(&e),
    };
    match verify_file_in(dir, &file, name, verifier, &mut |_| {}) {
        Ok(v) => Verdict::Verified {
            header: v.header,
            sig_idx: v.verified.sig_idx,
            signer: v.verified.signer,
            scheme: v.verified.scheme,
        },
        Err(e) => failed(&e),
    }
}

/// Reads and checks file `name` in an open snapshot directory.
pub(super) fn check_in_dir(
    dir: &dyn DirHandle,
    name: &SnapshotName,
    verifier: &dyn ReceiptVerifier,
) -> Verdict {
    check_file(dir, &name.file_name(), Some(name), verifier)
}

/// A path split into its directory (`.` for a bare name) and file name.
pub(super) fn split_path(path: &Path) -> io::Result<(PathBuf, String)> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name.to_string()))
}

/// Reads and checks the file at `path`; its name, if one of ours, must agree with the header.
pub(super) fn check_path(path: &Path, verifier: &dyn ReceiptVerifier) -> Verdict {
    let name = path.file_name().and_then(SnapshotName::parse_os);
    let opened = split_path(path)
        .and_then(|(parent, file)| Ok((RealFs::new().open_dir(&parent, false)?, file)));
    match opened {
        Ok((dir, file)) => match check_file(&*dir, &file, name.as_ref(), verifier) {
            // Vanished only means something in a listing; here the path was given.
            Verdict::Vanished => Verdict::Unreadable {
                reason: io_reason(&io::Error::from(io::ErrorKind::NotFound)),
            },
            v => v,
        },
        Err(e) => Verdict::Unreadable {
            reason: io_reason(&e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_path_gives_dot_for_a_bare_name() {
        assert_eq!(
            split_path(Path::new("snapshot_1_2.committed")).unwrap(),
            (PathBuf::from("."), "snapshot_1_2.committed".to_string())
        );
        assert_eq!(
            split_path(Path::new("/a/b/c")).unwrap(),
            (PathBuf::from("/a/b"), "c".to_string())
        );
        assert!(split_path(Path::new("/")).is_err());
    }

    /// A header and a statement receipt signed for it with a key of the test's own.
    fn signed(idx: u64) -> (Header, Vec<u8>, String) {
        use snapseal::persist::internals::format::body_digest;
        use snapseal::persist::internals::receipt::{key_id, SignedStatement};
        use snapseal::persist::Flags;
        let header = Header {
            idx,
            evidence_idx: 9,
            flags: Flags::from_bits(0).unwrap(),
            body_len: 3,
            receipt_len: 0,
            raw_len: 3,
            body_digest: body_digest(b"abc"),
            receipt_digest: [0; 32],
        };
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let statement = SignedStatement::sign(&key, &header.claims(), 9, None).unwrap();
        let signer = snapseal::persist::to_hex(&key_id(&key.verifying_key()));
        (header, statement.encode().unwrap(), signer)
    }

    fn expected(h: &Header) -> Expected {
        Expected::of(h)
    }

    #[test]
    fn without_a_key_every_receipt_check_but_the_signature_is_made() {
        let (header, receipt, signer) = signed(5);
        assert_eq!(
            receipt_without_key(&receipt, &expected(&header)),
            Ok(signer)
        );
        // Relabelled: the header says idx 6, the receipt proves the claims of idx 5.
        let (_, for_five, _) = signed(5);
        let mut relabelled = header.clone();
        relabelled.idx = 6;
        assert!(matches!(
            receipt_without_key(&for_five, &expected(&relabelled)),
            Err(ReceiptError::DigestMismatch { .. })
        ));
        let mut moved = header;
        moved.evidence_idx = 10;
        assert!(matches!(
            receipt_without_key(&receipt, &expected(&moved)),
            Err(ReceiptError::EvidenceIndexMismatch { .. })
        ));
        assert!(receipt_without_key(b"not a receipt", &expected(&moved)).is_err());
    }

    #[test]
    fn garbage_bytes_fail_the_header_check_with_a_reason() {
        let verifier = snapseal::persist::receipt::Ed25519Verifier::new(Vec::new());
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("junk"), b"not a snapshot").unwrap();
        let v = check_path(&tmp.path().join("junk"), &verifier);
        match v {
            Verdict::Failed { check, reason, .. } => {
                assert_eq!(check, Check::Header);
                assert!(reason.contains("too short"), "{reason}");
            }
            other => panic!("expected a header failure, got {other:?}"),
        }
    }
}
