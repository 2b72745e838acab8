//! Index objects on the remote, read as hostile input: the legacy shared index (read to
//! migrate from, never written) and the size-capped read every index object goes through.

use futures::StreamExt;
use object_store::path::Path;
use object_store::ObjectStoreExt;

use crate::error::ShipError;
use crate::index::{LegacyIndex, INDEX_MAX_BYTES};
use crate::local_error::LocalError;
use crate::remote::Remote;

impl Remote {
    /// The bytes of the index object at `key`, `None` when it is absent.
    ///
    /// The object is hostile input: anything but a regular file of at most
    /// [`INDEX_MAX_BYTES`] (a link, a FIFO, a directory, a giant) is an unusable index
    /// ([`ShipError::Index`]) before a byte of it is read, and no more than that many bytes
    /// are ever read, whatever the store claims.
    pub(crate) async fn read_index_bytes(&self, key: &Path) -> Result<Option<Vec<u8>>, ShipError> {
        let unusable = |reason: String| ShipError::Index {
            object: key.to_string(),
            reason,
        };
        let got = match self.store.get(key).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => {
                return Err(match LocalError::of(&e) {
                    Some(refused @ LocalError::Refused(_)) if refused.is_terminal() => {
                        unusable(refused.to_string())
                    }
                    _ => ShipError::remote("get", key.as_ref(), e),
                })
            }
        };
        if got.meta.size > INDEX_MAX_BYTES {
            return Err(unusable(format!(
                "{} bytes, more than the limit of {INDEX_MAX_BYTES}",
                got.meta.size
            )));
        }
        let mut bytes = Vec::new();
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ShipError::remote("get", key.as_ref(), e))?;
            if (bytes.len() + chunk.len()) as u64 > INDEX_MAX_BYTES {
                return Err(unusable(format!(
                    "more than the limit of {INDEX_MAX_BYTES} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some(bytes))
    }

    /// The legacy shared index (`<prefix>/index.json`, format 1), `None` when absent; one
    /// that is not a regular object of that format is [`ShipError::Index`].
    pub(crate) async fn read_legacy_index(&self) -> Result<Option<LegacyIndex>, ShipError> {
        let key = self.index_key();
        let Some(bytes) = self.read_index_bytes(&key).await? else {
            return Ok(None);
        };
        LegacyIndex::decode(&bytes)
            .map(Some)
            .map_err(|reason| ShipError::Index {
                object: key.to_string(),
                reason,
            })
    }
}
