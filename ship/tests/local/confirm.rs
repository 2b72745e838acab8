//! How an upload is confirmed (`Confirm`): read back where the store cannot prove what it
//! stored, by size alone where it can, decided per remote.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
};
use snapseal_ship::{
    Confirm, ErrorClass, LocalStore, Remote, RemoteOptions, ShipConfig, ShipError, Shipper,
};

use crate::support::*;

/// A store over a local directory that counts the reads of snapshot objects' bytes (a `head`
/// is not one) and, when told to, stores every snapshot object with one byte changed (in a
/// put, or an upload's first part), as a faulty server or link would, answering success.
#[derive(Debug)]
struct Watched {
    inner: LocalStore,
    reads: AtomicUsize,
    corrupt: AtomicBool,
}

impl std::fmt::Display for Watched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Watched({})", self.inner)
    }
}

fn snapshot(key: &Path) -> bool {
    key.as_ref().ends_with(".committed")
}

fn flipped(payload: PutPayload) -> PutPayload {
    let mut bytes: Vec<u8> = Bytes::from(payload).to_vec();
    if let Some(b) = bytes.get_mut(200) {
        *b ^= 0x01;
    }
    PutPayload::from(bytes)
}

#[async_trait]
impl ObjectStore for Watched {
    async fn put_opts(&self, key: &Path, data: PutPayload, opts: PutOptions) -> Result<PutResult> {
        let data = if self.corrupt.load(Ordering::SeqCst) && snapshot(key) {
            flipped(data)
        } else {
            data
        };
        self.inner.put_opts(key, data, opts).await
    }

    async fn put_multipart_opts(
        &self,
        key: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let inner = self.inner.put_multipart_opts(key, opts).await?;
        Ok(Box::new(Parts {
            inner,
            corrupt_next: self.corrupt.load(Ordering::SeqCst) && snapshot(key),
        }))
    }

    async fn get_opts(&self, key: &Path, options: GetOptions) -> Result<GetResult> {
        if !options.head && snapshot(key) {
            self.reads.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.get_opts(key, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[derive(Debug)]
struct Parts {
    inner: Box<dyn MultipartUpload>,
    corrupt_next: bool,
}

#[async_trait]
impl MultipartUpload for Parts {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let data = if std::mem::take(&mut self.corrupt_next) {
            flipped(data)
        } else {
            data
        };
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        self.inner.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

/// A remote over a [`Watched`] local directory, confirming as `confirm` says.
fn watched(dir: &std::path::Path, confirm: Confirm, corrupt: bool) -> (Arc<Remote>, Arc<Watched>) {
    let store = Arc::new(Watched {
        inner: LocalStore::new(dir.to_path_buf(), 1 << 40),
        reads: AtomicUsize::new(0),
        corrupt: AtomicBool::new(corrupt),
    });
    let mut opts = RemoteOptions::default();
    opts.confirm = confirm;
    let remote = Remote::with_store(
        &file_url(dir),
        Arc::clone(&store) as Arc<dyn ObjectStore>,
        Path::default(),
        &opts,
    )
    .unwrap();
    (Arc::new(remote), store)
}

/// 5 MiB parts, so that a file of 12 MiB goes up in three.
fn config() -> ShipConfig {
    let mut c = ShipConfig::new("n1");
    c.part_size = 5 << 20;
    c.max_attempts = Some(1);
    c
}

fn mode(remote: &Remote) -> Confirm {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(remote.confirm_mode())
        .unwrap()
}

#[test]
fn a_file_remote_and_an_unknown_store_are_decided_without_asking() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        mode(&local_remote(dir.path())),
        Confirm::Checksum,
        "file:// is our own store writing the bytes we hashed"
    );
    let (unknown, _) = watched(dir.path(), Confirm::Auto, false);
    assert_eq!(mode(&unknown), Confirm::ReadBack);
    let mut opts = RemoteOptions::default();
    opts.confirm = Confirm::ReadBack;
    let asked = Remote::open(&file_url(dir.path()), &opts).unwrap();
    assert_eq!(mode(&asked), Confirm::ReadBack, "what the options ask wins");
}

#[test]
fn checksum_confirmation_reads_no_object_back_and_read_back_reads_each_one() {
    for (confirm, reads_back) in [(Confirm::Checksum, false), (Confirm::ReadBack, true)] {
        let (local, remote_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let store = store(local.path());
        let small = persist(&store, 1, 1000);
        let large = persist(&store, 2, 12 << 20);
        let (remote, watched) = watched(remote_dir.path(), confirm, false);
        let shipper = Shipper::new(remote, Arc::clone(&store), config()).unwrap();
        let report = shipper.ship_pending().unwrap();
        assert_eq!(report.uploaded, vec![small, large], "{confirm:?}");
        for name in [small, large] {
            assert_eq!(
                std::fs::read(remote_dir.path().join("n1").join(name.file_name())).unwrap(),
                file_bytes(local.path(), &name)
            );
        }
        let reads = watched.reads.load(Ordering::SeqCst);
        assert_eq!(
            reads > 0,
            reads_back,
            "{confirm:?}: {reads} reads of snapshot objects"
        );
    }
}

#[test]
fn a_store_that_keeps_other_bytes_than_those_sent_is_caught_by_the_read_back() {
    // A store built elsewhere cannot prove what it stored: `Auto` reads it back.
    for len in [1000, 12 << 20] {
        let (local, remote_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let store = store(local.path());
        persist(&store, 1, len);
        let (remote, watched) = watched(remote_dir.path(), Confirm::Auto, true);
        let shipper = Shipper::new(remote, Arc::clone(&store), config()).unwrap();
        let err = shipper.ship_pending().unwrap_err();
        assert!(
            matches!(
                err,
                ShipError::Differs {
                    first_difference: Some(200),
                    ..
                }
            ),
            "{len} bytes: {err}"
        );
        assert_eq!(err.class(), ErrorClass::Terminal);
        assert!(watched.reads.load(Ordering::SeqCst) > 0);
        assert!(shipper.stats().shipped == 0, "{len} bytes: nothing shipped");
    }
}
