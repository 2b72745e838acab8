//! Errors, and the transient/terminal split the shipper's retry loop acts on.
//!
//! Every message names its object or file and step once, escaped where the name came from
//! the remote; a cause is never both printed in a message and returned as its source, so
//! [`describe`] (the error and its causes on one line, each once) says everything exactly
//! once.

use std::path::PathBuf;

use snapseal_persist::internals::fs::UntrustedError;
use snapseal_persist::internals::Escaped;
use snapseal_persist::{ErrorChain, IngestError, VerifyError};

use crate::local_error::LocalError;

/// Whether retrying can help.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorClass {
    /// Timeouts, resets, 5xx, throttling: retried with backoff.
    Transient,
    /// Authentication, permission, a missing bucket, a bad configuration, a remote object
    /// that differs from ours: the shipper stops.
    Terminal,
}

/// What went wrong, naming the object or file and the step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShipError {
    /// The remote URL or an option is not usable.
    #[error("remote {url}: {reason}")]
    Config {
        /// The URL as given.
        url: String,
        /// Why it is refused.
        reason: String,
    },
    /// A call to the object store failed.
    #[error("remote {step} {}", Escaped::str(.object))]
    Remote {
        /// What was being done (`put`, `get`, `head`, `delete`, `list`, `multipart`).
        step: &'static str,
        /// The object's key.
        object: String,
        /// The store's error.
        source: object_store::Error,
        /// Whether retrying may help.
        class: ErrorClass,
    },
    /// The remote holds something else under a snapshot's name.
    #[error("remote {}: holds {remote_len} bytes, the local file {local_len}{}", Escaped::str(.object), at_byte(*.first_difference))]
    Differs {
        /// The object's key.
        object: String,
        /// Bytes the remote holds.
        remote_len: u64,
        /// Bytes of the local file.
        local_len: u64,
        /// Offset of the first byte that differs, when the sizes agree.
        first_difference: Option<u64>,
    },
    /// The remote index is not one this version reads: not a regular file, too large, not
    /// JSON of this format.
    #[error("remote index {}: {}", Escaped::str(.object), Escaped::str(.reason))]
    Index {
        /// The index object's key.
        object: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The local snapshot store failed.
    #[error("local store {}", Escaped::path(.dir))]
    Store {
        /// The snapshot directory.
        dir: PathBuf,
        /// The store's error.
        source: snapseal_persist::StoreError,
    },
    /// Opening or reading a local snapshot file failed.
    #[error("local {} {}", Escaped::path(.dir), .step)]
    LocalIo {
        /// The snapshot directory or file.
        dir: PathBuf,
        /// What was being done.
        step: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A remote object is not what its name or the index says (restore refuses it).
    #[error("remote {}: refused: {}", Escaped::str(.object), Escaped::str(.reason))]
    Refused {
        /// The object's key.
        object: String,
        /// What does not match.
        reason: String,
    },
    /// The store refused to ingest a remote object (it does not verify, or a write failed).
    #[error("remote {}: not restored", Escaped::str(.object))]
    Ingest {
        /// The object's key.
        object: String,
        /// The store's error.
        source: snapseal_persist::IngestError,
    },
    /// Remote gc is sweeping the node's chunk objects; the shipper waits for it to end before
    /// relying on a chunk it lists (transient: retried with backoff).
    #[error(
        "remote gc is sweeping the chunks of node {node} (sweep {number}); waiting for it to end"
    )]
    ChunkSweepRunning {
        /// The node.
        node: String,
        /// The sweep's record number.
        number: u64,
    },
    /// Chunk sweeps of remote gc began under every one of `rounds` tries to ship a chunked
    /// snapshot of the node (transient: the next pass tries again).
    #[error("remote gc began a chunk sweep of node {node} during each of {rounds} tries to ship a snapshot; trying again later")]
    ChunkSweepsKeepBeginning {
        /// The node.
        node: String,
        /// The tries.
        rounds: u32,
    },
    /// Reading a chunk out of the local store, or adding one to it, failed.
    #[error("local chunk store of {}", Escaped::path(.dir))]
    LocalChunk {
        /// The snapshot directory.
        dir: std::path::PathBuf,
        /// What failed (naming the chunk, the pack and the step).
        source: snapseal_persist::internals::chunks::ChunkError,
    },
    /// No remote snapshot could be restored.
    #[error(
        "remote {url}: no snapshot restored ({} refused, {} failed locally)",
        passed_over.len(),
        failed_locally.len()
    )]
    NothingRestored {
        /// The remote URL.
        url: String,
        /// Each candidate refused and why, newest first.
        passed_over: Vec<String>,
        /// Each candidate this machine could not store and why (a local I/O error, or a
        /// committed name held by a file that does not verify), newest first.
        failed_locally: Vec<String>,
    },
    /// Another writer wrote this node's index after this shipper claimed the node: a second
    /// shipper with the same node name on the same remote, or `remote repair`.
    #[error("two shippers for node {node} on {url}: its index was written by {} (this shipper is {ours}); stop the other one (or let remote repair finish), then start this one again", Escaped::str(.writer))]
    NodeInUse {
        /// The node name.
        node: String,
        /// The remote URL.
        url: String,
        /// The writer id found in the index.
        writer: String,
        /// This shipper's writer id.
        ours: String,
    },
    /// A remote hold names an object that is not there.
    #[error("remote {}: no such snapshot object", Escaped::str(.object))]
    NoSuchObject {
        /// The object's key.
        object: String,
    },
    /// Setting up the async runtime failed.
    #[error("starting the I/O runtime: {0}")]
    Runtime(std::io::Error),
    /// A transient error was retried the configured number of times.
    #[error("gave up after {attempts} attempts")]
    GaveUp {
        /// How many attempts were made.
        attempts: u32,
        /// The last error.
        #[source]
        last: Box<ShipError>,
    },
}

impl ShipError {
    /// Whether retrying may help.
    pub fn class(&self) -> ErrorClass {
        match self {
            ShipError::Remote { class, .. } => *class,
            ShipError::LocalIo { .. }
            | ShipError::Store { .. }
            | ShipError::ChunkSweepRunning { .. }
            | ShipError::ChunkSweepsKeepBeginning { .. } => ErrorClass::Transient,
            ShipError::GaveUp { last, .. } => last.class(),
            _ => ErrorClass::Terminal,
        }
    }

    /// True when the failure was this machine's, not the remote object's: the store could
    /// not write, sync or rename it (a local I/O error, a full or failed store), or a file
    /// that does not verify holds its committed name. Restore tries older snapshots after
    /// one, and reports it.
    pub fn is_local(&self) -> bool {
        matches!(
            self,
            ShipError::Ingest {
                source: IngestError::Persist(_) | IngestError::Read { .. },
                ..
            } | ShipError::LocalChunk { .. }
        ) || matches!(
            self,
            ShipError::Ingest { source: IngestError::Refused { source, .. }, .. }
                if matches!(**source, VerifyError::Read { .. })
        )
    }

    /// Wraps an object store error with its step and key, classifying it.
    pub(crate) fn remote(step: &'static str, object: &str, source: object_store::Error) -> Self {
        let class = match (&source, step) {
            // Writing to a key cannot find it missing; the bucket (or container) is.
            (
                object_store::Error::NotFound { .. },
                "put" | "multipart start" | "multipart part" | "multipart complete",
            ) => ErrorClass::Terminal,
            _ => classify(&source),
        };
        ShipError::Remote {
            step,
            object: object.to_string(),
            source,
            class,
        }
    }
}

fn at_byte(at: Option<u64>) -> String {
    at.map(|a| format!("; they differ first at byte {a}"))
        .unwrap_or_default()
}

/// The transient/terminal split for an object store error.
///
/// The store's own retries have already run out when an error reaches here (they are kept
/// short so that the shipper's visible backoff does the waiting). Kinds the store names are
/// decided by kind; a generic error is terminal only when the service says so in words that
/// no retry changes (a missing bucket, a rejected key or signature, denied access).
pub fn classify(e: &object_store::Error) -> ErrorClass {
    use object_store::Error as E;
    if let (E::Generic { .. }, Some(local)) = (e, LocalError::of(e)) {
        return if local.is_terminal() {
            ErrorClass::Terminal
        } else {
            ErrorClass::Transient
        };
    }
    match e {
        E::PermissionDenied { .. }
        | E::Unauthenticated { .. }
        | E::NotImplemented { .. }
        | E::NotSupported { .. }
        | E::UnknownConfigurationKey { .. }
        | E::InvalidPath { .. } => ErrorClass::Terminal,
        E::Generic { .. } | E::JoinError { .. } => {
            let text = describe(e);
            const TERMINAL: [&str; 14] = [
                "NoSuchBucket",
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
                "AccessDenied",
                "403 Forbidden",
                "401 Unauthorized",
                "InvalidBucketName",
                "AuthorizationHeaderMalformed",
                // A request that cannot even be built (e.g. http:// without allow_http).
                "builder error",
                "URL scheme is not allowed",
                // Full: no retry makes room.
                "QuotaExceeded",
                "XMinioStorageFull",
                "InsufficientStorage",
                "507 Insufficient Storage",
            ];
            if TERMINAL.iter().any(|t| text.contains(t)) {
                ErrorClass::Terminal
            } else {
                ErrorClass::Transient
            }
        }
        // NotFound, AlreadyExists, Precondition and NotModified are answers the caller acts
        // on; reaching the retry loop unhandled, they mean a race worth one more look.
        _ => ErrorClass::Transient,
    }
}

/// The error and its causes on one line, each said once (a cause whose text an earlier one
/// already contains is left out: several `object_store` errors print their source too, and an
/// `object_store` error's own words around a cause are left out), and
/// safe to print: the text of an error that is not snapseal's own (an S3 server's error body,
/// a path) is shown through [`Escaped`].
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    ErrorChain(e).to_string_with(|link| {
        // An object_store error with a cause only wraps it in its variant's words and the key
        // ours already named ("Object at location k not found: …", "Generic S3 error: …",
        // "Generic LocalDir error"), words that can mislead (a missing bucket is not a missing
        // object); the cause, next, says what happened: the request and the server's answer,
        // or our local error. The outermost error is always said.
        let wrapper = !std::ptr::addr_eq(link, e)
            && link
                .downcast_ref::<object_store::Error>()
                .is_some_and(|o| std::error::Error::source(o).is_some());
        (!wrapper).then(|| shown(link))
    })
}

/// An error's text as it may be printed: ours escape what came from outside themselves.
fn shown(e: &(dyn std::error::Error + 'static)) -> String {
    let text = e.to_string();
    if e.is::<ShipError>() || e.is::<LocalError>() || e.is::<UntrustedError>() {
        text
    } else {
        Escaped::str(&text).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_and_missing_bucket_are_terminal_and_a_reset_is_transient() {
        let generic = |msg: &str| object_store::Error::Generic {
            store: "S3",
            source: msg.to_string().into(),
        };
        assert_eq!(
            classify(&generic("NoSuchBucket: the bucket does not exist")),
            ErrorClass::Terminal
        );
        assert_eq!(
            classify(&generic("InvalidAccessKeyId")),
            ErrorClass::Terminal
        );
        assert_eq!(
            classify(&generic("connection reset by peer")),
            ErrorClass::Transient
        );
        assert_eq!(
            classify(&object_store::Error::Unauthenticated {
                path: "x".into(),
                source: "no".to_string().into()
            }),
            ErrorClass::Terminal
        );
    }

    /// An S3 answer as object_store nests it: the request's error (the server's body), inside
    /// the client's, inside a `NotFound` that calls a missing bucket a missing object.
    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match &self.1 {
                Some(inner) => write!(f, "{}: {inner}", self.0),
                None => f.write_str(self.0),
            }
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn describe_says_the_servers_answer_once_without_object_stores_wrapper_words() {
        let body = "404 Not Found: <Error><Code>NoSuchBucket</Code>\n<Message>The specified bucket does not exist</Message></Error>";
        let request = Layer(
            "Error performing PUT http://127.0.0.1:9000/b/n1/k in 2ms",
            Some(Box::new(Layer(body, None))),
        );
        let e = ShipError::remote(
            "put",
            "n1/k",
            object_store::Error::NotFound {
                path: "n1/k".into(),
                source: Box::new(Layer(
                    "Error performing put request",
                    Some(Box::new(request)),
                )),
            },
        );
        let text = describe(&e);
        assert_eq!(text.matches("NoSuchBucket").count(), 1, "{text}");
        assert_eq!(text.matches("does not exist").count(), 1, "{text}");
        assert!(!text.contains("Object at location"), "{text}");
        assert!(
            text.starts_with("remote put n1/k: Error performing put request: Error performing PUT"),
            "{text}"
        );
        assert!(
            !text.contains('\n'),
            "the body's newline is escaped: {text}"
        );
    }
}
