//! [`LocalError`]: why the `file://` remote ([`LocalStore`](crate::LocalStore)) refused or
//! failed a call, which `object_store` error kind that becomes, and whether retrying can help.

use std::io;
use std::path::PathBuf;

use nix::errno::Errno;
use object_store::path::Path;
use snapseal_persist::internals::fs::UntrustedError;
use snapseal_persist::internals::Escaped;

/// What went wrong on a `file://` remote, naming the file (escaped) and the step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// The key is not one the store accepts.
    #[error("object key {}: {reason}", Escaped::str(.key))]
    BadKey {
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A directory on the way to the object is a symbolic link (never followed).
    #[error("{}: is a symbolic link; links are not followed", Escaped::path(.path))]
    LinkedDir {
        /// The link.
        path: PathBuf,
    },
    /// A name on the way to the object is not a directory.
    #[error("{}: is not a directory", Escaped::path(.path))]
    NotADir {
        /// The name.
        path: PathBuf,
    },
    /// The object is not something that may be read: a link, a FIFO, a device, a directory,
    /// larger than the cap, or truncated while read.
    #[error(transparent)]
    Refused(#[from] UntrustedError),
    /// A system call failed.
    #[error("{}: {step}", Escaped::path(.path))]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        step: &'static str,
        /// The error, with its errno.
        #[source]
        source: io::Error,
    },
}

impl LocalError {
    /// Maps a failed [`open_subdir`](snapseal_persist::internals::fs::DirHandle::open_subdir) of `path`.
    pub(crate) fn subdir(path: PathBuf, e: io::Error) -> LocalError {
        match e.raw_os_error().map(Errno::from_raw) {
            Some(Errno::ELOOP) => LocalError::LinkedDir { path },
            Some(Errno::ENOTDIR) => LocalError::NotADir { path },
            _ => LocalError::Io {
                path,
                step: "opening a directory (links not followed)",
                source: e,
            },
        }
    }

    fn io(&self) -> Option<&io::Error> {
        match self {
            LocalError::Io { source, .. }
            | LocalError::Refused(UntrustedError::Io { source, .. }) => Some(source),
            _ => None,
        }
    }

    /// True when retrying cannot help: the remote is read-only, full, denies access, or holds
    /// something that is not what the key needs (a link, a FIFO, a file where a directory must
    /// be). A failing disk (`EIO`), a file truncated while read, or running out of memory or
    /// descriptors may pass.
    pub fn is_terminal(&self) -> bool {
        match self {
            LocalError::Refused(UntrustedError::Truncated { .. }) => false,
            LocalError::Io { .. } | LocalError::Refused(UntrustedError::Io { .. }) => {
                matches!(
                    self.io()
                        .and_then(io::Error::raw_os_error)
                        .map(Errno::from_raw),
                    Some(
                        Errno::EROFS
                            | Errno::EACCES
                            | Errno::EPERM
                            | Errno::ENOSPC
                            | Errno::EDQUOT
                            | Errno::EFBIG
                            | Errno::ELOOP
                            | Errno::ENOTDIR
                            | Errno::EISDIR
                            | Errno::ENAMETOOLONG
                    )
                )
            }
            _ => true,
        }
    }

    /// The `object_store` error for a call on `key`: `NotFound`, `AlreadyExists` and
    /// `PermissionDenied` (also for a read-only filesystem) by kind, `Generic` otherwise; the
    /// source is always this error (find it with [`LocalError::of`]).
    pub(crate) fn into_store_error(self, key: &Path) -> object_store::Error {
        let path = Escaped::str(key.as_ref()).to_string();
        let errno = self
            .io()
            .and_then(io::Error::raw_os_error)
            .map(Errno::from_raw);
        let kind = self.io().map(io::Error::kind);
        let source = Box::new(self);
        match (kind, errno) {
            (Some(io::ErrorKind::NotFound), _) => object_store::Error::NotFound { path, source },
            (Some(io::ErrorKind::AlreadyExists), _) => {
                object_store::Error::AlreadyExists { path, source }
            }
            (_, Some(Errno::EACCES | Errno::EPERM | Errno::EROFS)) => {
                object_store::Error::PermissionDenied { path, source }
            }
            _ => object_store::Error::Generic {
                store: "LocalDir",
                source,
            },
        }
    }

    /// The [`LocalError`] behind an `object_store` error, if a [`LocalStore`](crate::LocalStore)
    /// made it.
    pub fn of(e: &object_store::Error) -> Option<&LocalError> {
        use object_store::Error as E;
        match e {
            E::Generic { source, .. }
            | E::NotFound { source, .. }
            | E::AlreadyExists { source, .. }
            | E::PermissionDenied { source, .. } => source.downcast_ref::<LocalError>(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(errno: Errno) -> LocalError {
        LocalError::Io {
            path: PathBuf::from("/remote/n1"),
            step: "creating (O_EXCL)",
            source: io::Error::from_raw_os_error(errno as i32),
        }
    }

    #[test]
    fn a_read_only_full_or_forbidden_remote_is_terminal_and_a_failing_disk_is_not() {
        for errno in [
            Errno::EROFS,
            Errno::ENOSPC,
            Errno::EDQUOT,
            Errno::EACCES,
            Errno::EPERM,
        ] {
            assert!(io(errno).is_terminal(), "{errno}");
            let e = io(errno).into_store_error(&Path::from("n1/x"));
            assert_eq!(
                crate::classify(&e),
                crate::ErrorClass::Terminal,
                "{errno}: {e}"
            );
        }
        for errno in [Errno::EIO, Errno::EINTR, Errno::EMFILE] {
            let e = io(errno).into_store_error(&Path::from("n1/x"));
            assert_eq!(crate::classify(&e), crate::ErrorClass::Transient, "{errno}");
        }
    }
}
