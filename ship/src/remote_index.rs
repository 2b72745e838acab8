//! The index object on the remote: read as hostile input, updated read-modify-write.

use std::sync::atomic::Ordering;

use futures::StreamExt;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use tracing::debug;

use crate::error::ShipError;
use crate::index::{Index, INDEX_FORMAT, INDEX_MAX_BYTES};
use crate::local_error::LocalError;
use crate::remote::Remote;

impl Remote {
    /// Reads the index and its version; an absent index is an empty one.
    ///
    /// The index is hostile input: anything but a regular file of at most
    /// [`INDEX_MAX_BYTES`] (a link, a FIFO, a directory, a giant) is an unusable index
    /// ([`ShipError::Index`]) before a byte of it is read, and no more than that many bytes
    /// are ever read, whatever the store claims, before it is parsed.
    pub(crate) async fn read_index(&self) -> Result<(Index, Option<UpdateVersion>), ShipError> {
        let key = self.index_key();
        let unusable = |reason: String| ShipError::Index {
            object: key.to_string(),
            reason,
        };
        let got = match self.store.get(&key).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => {
                return Ok((
                    Index {
                        format: INDEX_FORMAT,
                        ..Index::default()
                    },
                    None,
                ))
            }
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
        let version = UpdateVersion {
            e_tag: got.meta.e_tag.clone(),
            version: got.meta.version.clone(),
        };
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
        let index = Index::decode(&bytes).map_err(unusable)?;
        Ok((index, Some(version)))
    }

    /// Reads the index, applies `change` and writes it back. Where the store supports it the
    /// write is conditional on the version read (a concurrent writer makes it start over);
    /// elsewhere it overwrites (one writer per remote at a time, see docs/SHIPPING.md).
    pub(crate) async fn update_index(
        &self,
        mut change: impl FnMut(&mut Index),
    ) -> Result<Index, ShipError> {
        let key = self.index_key();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (mut index, version) = self.read_index().await?;
            change(&mut index);
            let conditional = self.conditional_update.load(Ordering::Relaxed);
            let mode = match (&version, conditional) {
                (None, _) => PutMode::Create,
                (Some(v), true) => PutMode::Update(v.clone()),
                (Some(_), false) => PutMode::Overwrite,
            };
            let opts = PutOptions {
                mode,
                ..PutOptions::default()
            };
            let payload = PutPayload::from(index.encode());
            match self.store.put_opts(&key, payload, opts).await {
                Ok(_) => return Ok(index),
                Err(object_store::Error::NotImplemented { .. }) if version.is_some() => {
                    debug!(remote = %self.url(), "conditional update not supported: overwriting the index");
                    self.conditional_update.store(false, Ordering::Relaxed);
                }
                Err(
                    e @ (object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. }),
                ) => {
                    if attempts >= 20 {
                        return Err(ShipError::remote("put", key.as_ref(), e));
                    }
                    debug!(remote = %self.url(), "index changed under us: reading it again");
                }
                Err(e) => return Err(ShipError::remote("put", key.as_ref(), e)),
            }
        }
    }
}
