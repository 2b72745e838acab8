//! Verifying one committed file, the way `verify`, `latest`, `inspect` and the demo all do:
//! read it (no symlinks followed, memory-mapped), then run every check of
//! [`verify_bytes`] and turn the outcome into a [`Verdict`] with a one-line reason.

use std::io;
use std::path::{Path, PathBuf};

use snapseal::persist::format::{Header, HEADER_LEN};
use snapseal::persist::fs::{DirHandle, FileBytes, RealFs};
use snapseal::persist::receipt::{ReceiptVerifier, SchemeId};
use snapseal::persist::{read_checked, verify_bytes, Check, SnapshotName, VerifyError};

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
        /// The only fault is a signer outside the trusted keys: a starting node leaves such a
        /// file in place (a wrong key set must not destroy good snapshots) instead of
        /// quarantining it.
        untrusted_key: bool,
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

    /// The reason, for anything but a verified file.
    pub(super) fn reason(&self) -> Option<String> {
        match self {
            Verdict::Verified { .. } => None,
            Verdict::Failed { reason, .. } | Verdict::Unreadable { reason } => Some(reason.clone()),
            Verdict::Vanished => Some("deleted while being checked".into()),
        }
    }
}

/// Why verification failed, without the file label (the caller prints the path).
pub(super) fn reason(e: &VerifyError) -> String {
    match e {
        VerifyError::Read { source, .. } => io_reason(source),
        VerifyError::Format { check, source, .. } => format!("{check} check failed: {source}"),
        VerifyError::NameMismatch {
            field,
            from_name,
            from_header,
            ..
        } => format!(
            "{} check failed: name has {field} {from_name}, header has {from_header}",
            Check::Name
        ),
        VerifyError::Receipt { source, .. } => format!("{} check failed: {source}", Check::Receipt),
        VerifyError::NotRegularFile { what, .. } => format!("not a regular file ({what})"),
        VerifyError::Body { source, .. } => {
            // A zstd failure keeps the decoder's words in its source.
            match std::error::Error::source(source) {
                Some(cause) => format!("{} check failed: {source}: {cause}", Check::BodyEncoding),
                None => format!("{} check failed: {source}", Check::BodyEncoding),
            }
        }
        other => other.to_string(),
    }
}

/// An I/O error in words, with a hint for the surprising ones.
pub(super) fn io_reason(e: &io::Error) -> String {
    match e.raw_os_error().map(nix::errno::Errno::from_raw) {
        Some(nix::errno::Errno::ELOOP) => {
            format!("{e} (a symlink: snapseal never follows symlinks inside a snapshot directory)")
        }
        _ => e.to_string(),
    }
}

/// Checks bytes already read. `name`, when the file has one of our names, must agree with
/// the header.
pub(super) fn check_bytes(
    bytes: &[u8],
    name: Option<&SnapshotName>,
    verifier: &dyn ReceiptVerifier,
) -> Verdict {
    match verify_bytes(bytes, name, verifier) {
        Ok(v) => Verdict::Verified {
            header: v.header,
            sig_idx: v.verified.sig_idx,
            signer: v.verified.signer,
            scheme: v.verified.scheme,
        },
        Err(e) => failed(&e),
    }
}

/// The verdict for a verification error.
fn failed(e: &VerifyError) -> Verdict {
    match e.check() {
        Some(check) => Verdict::Failed {
            check,
            reason: reason(e),
            // An unknown key or a scheme not configured: both a matter of the key set.
            untrusted_key: matches!(
                e,
                VerifyError::Receipt { source, .. } if source.is_untrusted()
            ),
        },
        None => Verdict::Unreadable { reason: reason(e) },
    }
}

/// Reads and checks file `file_name` in an open snapshot directory; `name`, when the file has
/// one of our names, must agree with the header. The header and the file's length are checked
/// before the file is mapped ([`read_checked`]), so a huge junk file costs one small read.
fn check_file(
    dir: &dyn DirHandle,
    file_name: &str,
    name: Option<&SnapshotName>,
    verifier: &dyn ReceiptVerifier,
) -> Verdict {
    match read_checked(dir, file_name, name, verifier) {
        Ok(bytes) => check_bytes(&bytes, name, verifier),
        Err(VerifyError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            Verdict::Vanished
        }
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

/// Most bytes [`read_path`] reads of a file whose header does not give its exact length: a
/// damaged file is worth looking at, a huge (say sparse) junk file is not worth its size in
/// memory.
pub(super) const UNPROVEN_READ_CAP: u64 = 64 << 20;

/// Reads a whole file at `path` for inspection (no symlink followed, regular files only).
///
/// The file is copied with `pread`, never mapped: `inspect` holds no lock, and a mapped file
/// truncated by another process would kill it with `SIGBUS`. The header is read first; a file
/// whose header gives its exact length is read whole, any other only up to
/// [`UNPROVEN_READ_CAP`] bytes (a larger one is an `InvalidData` error naming both sizes).
pub(super) fn read_path(path: &Path) -> io::Result<FileBytes> {
    let (parent, name) = split_path(path)?;
    let dir = RealFs::new().open_dir_unmapped(&parent)?;
    let mut check = |head: &[u8], size: u64| {
        let described = Header::decode(head)
            .and_then(|h| h.file_len())
            .is_ok_and(|len| len == size);
        if described || size <= UNPROVEN_READ_CAP {
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the file is {size} bytes and its header does not give that length; \
                 not read (at most {UNPROVEN_READ_CAP} bytes of such a file are)"
            ),
        ))
    };
    dir.open_read_checked(&name, HEADER_LEN, &mut check)
}

/// Reads and checks the file at `path`; its name, if one of ours, must agree with the header.
pub(super) fn check_path(path: &Path, verifier: &dyn ReceiptVerifier) -> Verdict {
    let name = path.file_name().and_then(SnapshotName::parse_os);
    let opened = split_path(path)
        .and_then(|(parent, file)| Ok((RealFs::new().open_dir_unmapped(&parent)?, file)));
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

    #[test]
    fn garbage_bytes_fail_the_header_check_with_a_reason() {
        let verifier = snapseal::persist::receipt::Ed25519Verifier::new(Vec::new());
        let v = check_bytes(b"not a snapshot", None, &verifier);
        match v {
            Verdict::Failed { check, reason, .. } => {
                assert_eq!(check, Check::Header);
                assert!(reason.contains("too short"), "{reason}");
            }
            other => panic!("expected a header failure, got {other:?}"),
        }
    }
}
