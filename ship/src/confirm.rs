//! How an upload is confirmed: by reading the whole object back, or by the store's own proof
//! that it holds exactly the bytes sent — decided once per remote.
//!
//! The upload hashes (BLAKE3) exactly the bytes it hands to the store and makes the object
//! visible only if that hash is the one the file's verification computed. What remains to
//! confirm is that the store kept those bytes. Two ways:
//!
//! - **Read-back**: the object is read back whole and hashed. Works on any store; costs a
//!   second transfer of the object.
//! - **Checksum**: every request carrying bytes also carries their SHA-256
//!   (`x-amz-checksum-sha256`, object_store's `aws_checksum_algorithm`, which `s3.rs` turns on;
//!   object_store computes it in the pass that signs the payload, so it costs no extra read).
//!   A server that verifies it refuses bytes that do not match, so what it acknowledged is what
//!   was sent; a `head` then confirms the object is there with the size sent. A server that
//!   ignores the header proves nothing by accepting it — moto and s3rver both ignore it — so
//!   whether a server verifies is never assumed: it is asked, once per [`Remote`], by a
//!   **probe** (`checksum_probe.rs`).
//!
//! The `file://` store needs neither: it is our own code ([`LocalStore`](crate::LocalStore)),
//! in this process, writing the very buffers whose hash was checked, fsyncing them and renaming
//! them into place. Reading them back right away would read the page cache those writes just
//! filled — it could not see a media error the fsync did not report — so it would prove
//! nothing the write did not. It is confirmed like a verifying server: a `head` for the size.
//!
//! Only an object this upload created is confirmed this way. An object that was already there
//! (a resumed run, or someone else's bytes under our name) is always read back.

use object_store::path::Path;
use tokio::sync::OnceCell;

use crate::error::ShipError;
use crate::remote::Remote;
use crate::upload::{Difference, Source};

/// How the shipper confirms that an object it just uploaded holds exactly the bytes that
/// verified ([`RemoteOptions::confirm`](crate::RemoteOptions::confirm)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Confirm {
    /// Decided per remote (the default): `file://` as [`Checksum`](Self::Checksum) (our own
    /// store wrote the bytes we hashed); `s3://` by a one-time probe — [`Checksum`](Self::Checksum)
    /// if the server refuses a request whose checksum does not match its bytes, else
    /// [`ReadBack`](Self::ReadBack); any other store ([`Remote::with_store`]) reads back.
    #[default]
    Auto,
    /// Read the whole object back (8 MiB ranged reads, two in flight) and compare its BLAKE3.
    ReadBack,
    /// Trust the store's acknowledgement of the bytes sent, each request carrying their
    /// checksum, and check only the object's size (`head`). Sound on a server that verifies
    /// the checksum (AWS S3 does) and on `file://`; on a server that ignores it, this trusts
    /// the transfer and the server.
    Checksum,
}

/// What `Auto` is decided from, by the kind of store.
pub(crate) enum Decide {
    /// The `file://` store: our own code writes the bytes.
    Own,
    /// An S3 server: ask it.
    #[cfg(feature = "s3")]
    Probe(crate::checksum_probe::Probe),
    /// A store built elsewhere: nothing is known of it.
    Unknown,
}

/// A remote's confirmation mode: as asked, and what `Auto` was decided to be.
pub(crate) struct Confirmation {
    asked: Confirm,
    how: Decide,
    decided: OnceCell<Confirm>,
}

impl std::fmt::Debug for Confirmation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Confirmation")
            .field("asked", &self.asked)
            .field("decided", &self.decided.get())
            .finish()
    }
}

impl Confirmation {
    pub(crate) fn new(asked: Confirm, how: Decide) -> Confirmation {
        Confirmation {
            asked,
            how,
            decided: OnceCell::new(),
        }
    }
}

impl Remote {
    /// How uploads to this remote are confirmed: as [`RemoteOptions::confirm`] asks, `Auto`
    /// decided on the first call (for `s3://`, by the probe described in docs/SHIPPING.md)
    /// and then kept for the life of this `Remote`. A transient failure of the probe is
    /// returned and decides nothing (the next call probes again).
    ///
    /// [`RemoteOptions::confirm`]: crate::RemoteOptions::confirm
    pub async fn confirm_mode(&self) -> Result<Confirm, ShipError> {
        let c = &self.confirmation;
        if c.asked != Confirm::Auto {
            return Ok(c.asked);
        }
        c.decided
            .get_or_try_init(|| async {
                match &c.how {
                    Decide::Own => Ok(Confirm::Checksum),
                    Decide::Unknown => Ok(Confirm::ReadBack),
                    #[cfg(feature = "s3")]
                    Decide::Probe(probe) => self.probe(probe).await,
                }
            })
            .await
            .copied()
    }

    /// Confirms that the object at `key` holds exactly the bytes whose BLAKE3 is `verified`
    /// (the local file's, as it verified). An object this upload `created` is confirmed as
    /// [`confirm_mode`](Self::confirm_mode) says: by its size alone where the store proved
    /// the bytes ([`Confirm::Checksum`]), else read back ([`Remote::differs_from`]); an object
    /// found already there is always read back.
    pub(crate) async fn confirm_upload(
        &self,
        key: &Path,
        local: &dyn Source,
        verified: &blake3::Hash,
        created: bool,
    ) -> Result<Option<Difference>, ShipError> {
        if !created || self.confirm_mode().await? != Confirm::Checksum {
            return self.differs_from(key, local, verified).await;
        }
        match self.head(key).await? {
            Some(meta) if meta.size == local.len() => Ok(None),
            Some(meta) => Ok(Some(Difference::Size(meta.size))),
            None => Err(ShipError::remote(
                "head",
                key.as_ref(),
                object_store::Error::NotFound {
                    path: key.to_string(),
                    source: "gone right after the upload".into(),
                },
            )),
        }
    }
}
