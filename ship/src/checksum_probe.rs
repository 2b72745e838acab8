//! The `s3://` half of [`Confirm::Auto`]: asking the server, once per remote, whether it
//! verifies the checksum sent with the bytes of every request — by sending a request whose
//! checksum does not match its bytes, and seeing it refused.
//!
//! Both kinds of request that carry an object's bytes are asked: a put, and a part of a
//! multipart upload (started honestly, its part sent with the wrong checksum, then aborted).
//! Only a refusal *as a checksum mismatch* (`BadDigest`, `XAmzContentChecksumMismatch`, or
//! AWS's wording) of both counts: then [`Confirm::Checksum`]. A put accepted means the server
//! ignores the header: [`Confirm::ReadBack`] (the scratch object is deleted). A refusal for
//! another reason (a 4xx that is not about credentials or the bucket) proves nothing:
//! [`Confirm::ReadBack`], logged. A transient or terminal error is returned like any other
//! request's (retried, or stopping the shipper) and decides nothing.
//!
//! The scratch objects are at the remote's prefix, named `.checksum-probe.<pid>.<nanos>`: no
//! node can have that name (node names never start with `.`), so nothing of snapseal's reads
//! or deletes one by mistake. A crash during the probe can leave one (80 bytes), or an upload
//! with no part.

use std::sync::Arc;

use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tracing::{info, warn};

use crate::confirm::{Confirm, Decide};
use crate::error::{describe, ErrorClass, ShipError};
use crate::remote::Remote;
use crate::s3::S3;

impl Decide {
    /// How `Auto` is decided for an `s3://` remote: by its probe, or, where no probe client
    /// could be made, as for an unknown store.
    pub(crate) fn probe(s3: &S3) -> Decide {
        match &s3.liar {
            Some(liar) => Decide::Probe(Probe {
                liar: Arc::clone(liar) as Arc<dyn ObjectStore>,
                liar_parts: Arc::clone(liar) as Arc<dyn MultipartStore>,
                parts: Arc::clone(&s3.store) as Arc<dyn MultipartStore>,
            }),
            None => Decide::Unknown,
        }
    }
}

/// The S3 probe's clients.
pub(crate) struct Probe {
    /// The same server and credentials, sending with every request a checksum header whose
    /// value is not the checksum of the bytes sent.
    pub(crate) liar: Arc<dyn ObjectStore>,
    /// The same client, for a part of a multipart upload.
    pub(crate) liar_parts: Arc<dyn MultipartStore>,
    /// The honest client's multipart calls (to start and abort the probe's upload).
    pub(crate) parts: Arc<dyn MultipartStore>,
}

/// The start of a scratch object's name (see the module docs).
const PROBE_NAME: &str = ".checksum-probe";

/// The bytes a probe sends (the liar client sends a checksum of zeros with them, see `s3.rs`).
const PROBE_BYTES: &[u8] =
    b"snapseal checksum probe: a server that verifies checksums refuses this request";

/// A server's answer to a request whose checksum does not match its bytes.
enum Answer {
    /// Refused as a checksum mismatch: the server verifies.
    Refused,
    /// Accepted: the server does not verify.
    Accepted,
    /// Refused for another reason, which says nothing about checksums.
    Other(String),
}

/// Whether `e` is a server refusing bytes that do not match the checksum sent with them.
/// The codes AWS S3 and the S3-compatible servers use (`BadDigest`,
/// `XAmzContentChecksumMismatch`) and AWS's wording.
fn is_checksum_refusal(e: &object_store::Error) -> bool {
    let text = describe(e);
    [
        "BadDigest",
        "ChecksumMismatch",
        "did not match the calculated checksum",
    ]
    .iter()
    .any(|t| text.contains(t))
}

impl Remote {
    /// Asks the server whether it verifies checksums: a put and a part of a multipart upload,
    /// each with a checksum that does not match its bytes, must both be refused as such.
    /// Whatever the probe created is removed (a failure to is logged: a small object named
    /// `.checksum-probe…` at the prefix, or an empty upload, may then be left).
    pub(crate) async fn probe(&self, probe: &Probe) -> Result<Confirm, ShipError> {
        // Directly under the prefix, where a node's directory would be.
        let key = self.node_prefix(&format!(
            "{PROBE_NAME}.{}.{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let put = probe
            .liar
            .put(&key, PutPayload::from_static(PROBE_BYTES))
            .await;
        let put = self.answer(&key, "checksum probe put", put).await?;
        let part = match put {
            Answer::Refused => self.probe_part(probe, &key).await?,
            other => other,
        };
        let decided = match part {
            Answer::Refused => {
                info!(remote = %self.url(), "the server refuses bytes that do not match their checksum: uploads are confirmed by checksum, not read back");
                Confirm::Checksum
            }
            Answer::Accepted => {
                info!(remote = %self.url(), "the server does not verify checksums: every upload is read back to confirm it");
                Confirm::ReadBack
            }
            Answer::Other(reason) => {
                warn!(remote = %self.url(), reason = %reason, "the checksum probe was refused for another reason: every upload is read back to confirm it");
                Confirm::ReadBack
            }
        };
        Ok(decided)
    }

    /// The multipart half of the probe: an upload started honestly, one part sent with a
    /// wrong checksum, then aborted.
    async fn probe_part(&self, probe: &Probe, key: &Path) -> Result<Answer, ShipError> {
        let id =
            probe.parts.create_multipart(key).await.map_err(|e| {
                ShipError::remote("checksum probe multipart start", key.as_ref(), e)
            })?;
        let part = probe
            .liar_parts
            .put_part(key, &id, 0, PutPayload::from_static(PROBE_BYTES))
            .await
            .map(drop);
        if let Err(e) = probe.parts.abort_multipart(key, &id).await {
            warn!(object = %key, error = %describe(&e), "aborting the checksum probe's upload failed");
        }
        match part {
            Ok(()) => Ok(Answer::Accepted),
            Err(e) if is_checksum_refusal(&e) => Ok(Answer::Refused),
            Err(e) => self.other(key, "checksum probe part", e),
        }
    }

    /// The probe put's answer; an accepted put's object is deleted.
    async fn answer(
        &self,
        key: &Path,
        step: &'static str,
        put: Result<object_store::PutResult, object_store::Error>,
    ) -> Result<Answer, ShipError> {
        match put {
            Ok(_) => {
                if let Err(e) = self.delete(key).await {
                    warn!(object = %key, error = %describe(&e), "removing the checksum probe's object failed");
                }
                Ok(Answer::Accepted)
            }
            Err(e) if is_checksum_refusal(&e) => Ok(Answer::Refused),
            Err(e) => self.other(key, step, e),
        }
    }

    /// A probe request failed for a reason that is not a checksum: a transient or terminal
    /// error is returned (retried, or stopping the shipper, as for any request); anything
    /// else is an answer that proves nothing.
    fn other(
        &self,
        key: &Path,
        step: &'static str,
        e: object_store::Error,
    ) -> Result<Answer, ShipError> {
        let e = ShipError::remote(step, key.as_ref(), e);
        let text = describe(&e);
        // A 4xx that is not about credentials or the bucket (those are terminal): the server
        // understood the request and refused it for a reason of its own.
        if e.class() == ErrorClass::Transient && text.contains("status code: 4") {
            return Ok(Answer::Other(text));
        }
        Err(e)
    }
}
