//! Uploads that become visible only complete, and the confirmation that the remote holds
//! exactly the bytes that verified.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::StreamExt;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    MultipartId, PutMode, PutMultipartOptions, PutOptions, PutPayload, WriteMultipart,
};
use snapseal_persist::internals::format::PARALLEL_HASH_THRESHOLD;
use snapseal_persist::internals::on_hashing_thread;
use tracing::warn;

use crate::error::{describe, ShipError};
use crate::orphans::{Recorded, UploadLog};
use crate::remote::{Remote, READ_IN_FLIGHT, READ_PIECE};

/// What an upload did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Put {
    /// The object was created.
    Created,
    /// A conditional create found it already there.
    Existed,
    /// Not made visible: the file was not ready (it did not verify).
    Withheld,
}

/// How a remote object differs from the local file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Difference {
    /// It has this many bytes.
    Size(u64),
    /// Its first differing byte is at this offset.
    Byte(u64),
    /// It is the local file as it is now, which is not what verified: the file was rewritten
    /// after its verification.
    LocalChanged,
}

/// The bytes of a local file an upload or a read-back reads, one range at a time (never the
/// whole file at once): the shipper's committed file, read with `pread` on a blocking thread.
pub(crate) trait Source: Sync {
    /// Its size.
    fn len(&self) -> u64;

    /// Exactly the bytes `offset..offset + len`.
    fn read(&self, offset: u64, len: usize) -> BoxFuture<'_, Result<Bytes, ShipError>>;
}

/// Adds `bytes` (a piece of at most a few MiB) to `hasher`: a large piece on persist's
/// hashing pool (the CPUs the node granted, never rayon's global pool), a small one here. The
/// upload and the read-back call it from their futures; the few milliseconds a piece takes
/// hold up only the other futures of the same pass, not the parts in flight.
pub(crate) fn hash_piece(hasher: &mut blake3::Hasher, bytes: &[u8]) {
    if bytes.len() < PARALLEL_HASH_THRESHOLD {
        hasher.update(bytes);
        return;
    }
    let hashed = on_hashing_thread(|| {
        hasher.update_rayon(bytes);
    });
    if hashed.is_none() {
        // No pool to be had: hash here, slower but correct.
        hasher.update(bytes);
    }
}

impl Remote {
    /// Uploads the bytes of `local` to `key` so that the object is visible only complete, and
    /// only if `ready` resolves to the BLAKE3 of exactly the bytes sent (`None`: the file did
    /// not verify), in parts of `part_size`, `parts_in_flight` at a time. Up to `part_size`: once `ready` resolved, the file is read, hashed and sent
    /// in one conditional create (`PutMode::Create`). Above it: a multipart upload of
    /// `part_size` parts, each read only when there is room for it (at most `parts_in_flight`
    /// parts in memory), sent while `ready` is pending, completed only after it matched, and
    /// aborted if it does not or anything fails (a failed local read included, returned as
    /// is); `progress` hears the bytes handed over after each part. On a store with upload
    /// ids (S3) the upload is named in `log` after it starts and before its first part, until
    /// it completed or was aborted (see `orphans.rs`).
    ///
    /// The hash of what was sent is what makes the file's verification apply to the object:
    /// the file is read again here, not kept from its verification, and a file rewritten in
    /// place meanwhile is [`Put::Withheld`], never made visible.
    pub(crate) async fn put_file(
        &self,
        key: &Path,
        local: &dyn Source,
        (part_size, parts_in_flight): (usize, usize),
        ready: impl Future<Output = Option<blake3::Hash>>,
        progress: &(dyn Fn(u64) + Sync),
        log: Option<&Arc<UploadLog>>,
    ) -> Result<Put, ShipError> {
        let part_size = part_size.max(5 << 20);
        let len = local.len();
        let mut sent = blake3::Hasher::new();
        if len <= part_size as u64 {
            let Some(verified) = ready.await else {
                return Ok(Put::Withheld);
            };
            // At most part_size: fits in usize.
            let bytes = local.read(0, len as usize).await?;
            hash_piece(&mut sent, &bytes);
            if sent.finalize() != verified {
                return Ok(Put::Withheld);
            }
            let opts = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            return match self
                .store
                .put_opts(key, PutPayload::from_bytes(bytes), opts)
                .await
            {
                Ok(_) => Ok(Put::Created),
                Err(object_store::Error::AlreadyExists { .. })
                | Err(object_store::Error::Precondition { .. }) => Ok(Put::Existed),
                Err(e) => Err(ShipError::remote("put", key.as_ref(), e)),
            };
        }
        let mut upload = self.start_parts(key, part_size, log).await?;
        let mut at = 0u64;
        while at < len {
            // At most part_size: fits in usize.
            let n = (len - at).min(part_size as u64) as usize;
            // Room first, then the read: the part read is the only one not yet in flight.
            if let Err(e) = upload.room_for(parts_in_flight.max(1)).await {
                upload.abort().await;
                return Err(ShipError::remote("multipart part", key.as_ref(), e));
            }
            let part = match local.read(at, n).await {
                Ok(part) => part,
                Err(e) => {
                    upload.abort().await;
                    return Err(e);
                }
            };
            hash_piece(&mut sent, &part);
            // A whole part: handed over as it is, no copy.
            upload.put(part);
            at += n as u64;
            progress(at);
        }
        if ready.await != Some(sent.finalize()) {
            upload.abort().await;
            return Ok(Put::Withheld);
        }
        upload.finish().await.map(|()| Put::Created)
    }

    /// Starts a multipart upload of `key`: by upload id, recorded in `log` before anything
    /// else, where the store has ids; else through object_store's `WriteMultipart`.
    async fn start_parts<'a>(
        &self,
        key: &'a Path,
        part_size: usize,
        log: Option<&Arc<UploadLog>>,
    ) -> Result<Parts<'a>, ShipError> {
        let start = |e| ShipError::remote("multipart start", key.as_ref(), e);
        let Some(store) = &self.multipart else {
            let upload = self
                .store
                .put_multipart_opts(key, PutMultipartOptions::default())
                .await
                .map_err(start)?;
            return Ok(Parts::Writer {
                writer: WriteMultipart::new_with_chunk_size(upload, part_size),
                key,
            });
        };
        let id = store.create_multipart(key).await.map_err(start)?;
        let mut parts = ById {
            store: Arc::clone(store),
            key,
            id,
            log: log.cloned(),
            recorded: None,
            in_flight: FuturesOrdered::new(),
            done: Vec::new(),
        };
        if let Some(log) = &parts.log {
            match log.record(key, &parts.id).await {
                Ok(recorded) => parts.recorded = Some(recorded),
                Err(e) => {
                    // Nothing sent yet: abort at once.
                    Parts::ById(parts).abort().await;
                    return Err(e);
                }
            }
        }
        Ok(Parts::ById(parts))
    }

    /// Confirms that the object holds exactly the bytes whose BLAKE3 is `verified` (the local
    /// file's, as it verified): its size (`head`), then its BLAKE3, read back in ranged pieces
    /// (memory: `READ_PIECE * READ_IN_FLIGHT`). Only when the hash differs is it read again and
    /// compared piece by piece with `local` as it is now, to say where (one local piece more).
    ///
    /// Hashing what the remote returns, rather than comparing it with the file, is what
    /// confirms the object against the bytes that verified: the file is read again, not held.
    pub(crate) async fn differs_from(
        &self,
        key: &Path,
        local: &dyn Source,
        verified: &blake3::Hash,
    ) -> Result<Option<Difference>, ShipError> {
        let Some(meta) = self.head(key).await? else {
            return Err(ShipError::remote(
                "head",
                key.as_ref(),
                object_store::Error::NotFound {
                    path: key.to_string(),
                    source: "gone right after the upload".into(),
                },
            ));
        };
        if meta.size != local.len() {
            return Ok(Some(Difference::Size(meta.size)));
        }
        let mut hasher = blake3::Hasher::new();
        let mut at = 0u64;
        let mut pieces = std::pin::pin!(self.pieces(key, meta.size, READ_PIECE, READ_IN_FLIGHT));
        while let Some(piece) = pieces.next().await {
            let piece = piece?;
            hash_piece(&mut hasher, &piece);
            at += piece.len() as u64;
        }
        if at != meta.size {
            return Ok(Some(Difference::Size(at)));
        }
        if hasher.finalize() == *verified {
            return Ok(None);
        }
        self.first_difference(key, meta.size, local).await.map(Some)
    }

    /// Where the object first differs from `local` (both `size` bytes), read again in ranged
    /// pieces, each compared with the same range of `local`; [`Difference::LocalChanged`]
    /// when no byte does.
    async fn first_difference(
        &self,
        key: &Path,
        size: u64,
        local: &dyn Source,
    ) -> Result<Difference, ShipError> {
        let mut pieces = std::pin::pin!(self.pieces(key, size, READ_PIECE, READ_IN_FLIGHT));
        let mut at = 0u64;
        while let Some(piece) = pieces.next().await {
            let piece = piece?;
            if at + piece.len() as u64 > size {
                return Ok(Difference::Size(at + piece.len() as u64));
            }
            let want = local.read(at, piece.len()).await?;
            // Slice equality is a memcmp; the offset is looked for only when they differ.
            if want != piece {
                let i = want
                    .iter()
                    .zip(piece.iter())
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                return Ok(Difference::Byte(at + i as u64));
            }
            at += piece.len() as u64;
        }
        Ok(if at == size {
            Difference::LocalChanged
        } else {
            Difference::Size(at)
        })
    }
}

/// A multipart upload in progress.
enum Parts<'a> {
    /// Through object_store's `WriteMultipart`: a store without upload ids (`file://`, whose
    /// interrupted uploads leave staging files that remote gc removes).
    Writer {
        writer: WriteMultipart,
        key: &'a Path,
    },
    /// By upload id (S3).
    ById(ById<'a>),
}

/// An upload by id: its parts in flight, in order, and those the store acknowledged.
struct ById<'a> {
    store: Arc<dyn MultipartStore>,
    key: &'a Path,
    id: MultipartId,
    log: Option<Arc<UploadLog>>,
    /// The upload's record in `log`, removed once it completed or was aborted.
    recorded: Option<Recorded>,
    in_flight: FuturesOrdered<BoxFuture<'static, Result<PartId, object_store::Error>>>,
    done: Vec<PartId>,
}

impl Parts<'_> {
    /// Waits until fewer than `max` parts are in flight; a part the store refused is the error.
    async fn room_for(&mut self, max: usize) -> Result<(), object_store::Error> {
        match self {
            Parts::Writer { writer, .. } => writer.wait_for_capacity(max).await,
            Parts::ById(up) => {
                while up.in_flight.len() >= max {
                    if let Some(part) = up.in_flight.next().await {
                        up.done.push(part?);
                    }
                }
                Ok(())
            }
        }
    }

    /// Sends the next part.
    fn put(&mut self, part: Bytes) {
        match self {
            Parts::Writer { writer, .. } => writer.put(part),
            Parts::ById(up) => {
                let (store, key, id) = (Arc::clone(&up.store), up.key.clone(), up.id.clone());
                let idx = up.done.len() + up.in_flight.len();
                up.in_flight.push_back(Box::pin(async move {
                    store
                        .put_part(&key, &id, idx, PutPayload::from_bytes(part))
                        .await
                }));
            }
        }
    }

    /// Waits for every part, then completes the upload (the object becomes visible).
    async fn finish(self) -> Result<(), ShipError> {
        let complete = |key: &Path, e| ShipError::remote("multipart complete", key.as_ref(), e);
        match self {
            Parts::Writer { writer, key } => writer
                .finish()
                .await
                .map(drop)
                .map_err(|e| complete(key, e)),
            Parts::ById(mut up) => {
                while let Some(part) = up.in_flight.next().await {
                    match part {
                        Ok(part) => up.done.push(part),
                        Err(e) => {
                            let key = up.key;
                            Parts::ById(up).abort().await;
                            return Err(ShipError::remote("multipart part", key.as_ref(), e));
                        }
                    }
                }
                let parts = std::mem::take(&mut up.done);
                if let Err(e) = up.store.complete_multipart(up.key, &up.id, parts).await {
                    let key = up.key;
                    Parts::ById(up).abort().await;
                    return Err(complete(key, e));
                }
                let key = up.key;
                if let Err(e) = up.forget().await {
                    // The object is complete; the record's abort finds no upload and goes.
                    warn!(object = %key, error = %describe(&e), "removing a completed upload's record failed; the next shipper removes it");
                }
                Ok(())
            }
        }
    }

    /// Aborts the upload; a failure to abort is logged, and the upload's record kept for the
    /// next shipper (`file://`: its staging file is left for remote gc).
    async fn abort(self) {
        let (key, aborted) = match self {
            Parts::Writer { writer, key } => (key, writer.abort().await),
            Parts::ById(mut up) => {
                // Parts still in flight are dropped: what they sent is discarded with the
                // upload.
                up.in_flight = FuturesOrdered::new();
                match up.store.abort_multipart(up.key, &up.id).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                        let key = up.key;
                        if let Err(e) = up.forget().await {
                            warn!(object = %key, error = %describe(&e), "removing an aborted upload's record failed; the next shipper removes it");
                        }
                        return;
                    }
                    Err(e) => (up.key, Err(e)),
                }
            }
        };
        if let Err(e) = aborted {
            warn!(object = %key, error = %describe(&e), "aborting a failed multipart upload failed");
        }
    }
}

impl ById<'_> {
    /// Removes the upload's record, once it completed or was aborted.
    async fn forget(self) -> Result<(), ShipError> {
        match (self.log, self.recorded) {
            (Some(log), Some(recorded)) => log.forget(recorded).await,
            _ => Ok(()),
        }
    }
}
